/* backend.c — the CUDA backend table: the same entries as hrm_cpu_backend, pointing at kernels/.
 *
 * Pointers passed through this table are device memory. Entries return nothing; a failed CUDA
 * or cuBLAS call is kept in the context's sticky status (hrm_cuda_status / hrm_cuda_sync), so a
 * caller checks once per step. The gemm entry follows the context's GEMM mode (default bf16
 * tensor-core math with fp32 accumulation; HRM_CUDA_GEMM=f32 for the exact fp32 path).
 */
#include "cuda.h"

const hrm_backend hrm_cuda_backend = {
   .name = "cuda",
   .gemm = hrm_cuda_gemm_forward,
   .linear_forward = hrm_cuda_linear_forward,
   .linear_backward = hrm_cuda_linear_backward,
   .embedding_forward = hrm_cuda_embedding_forward,
   .embedding_backward = hrm_cuda_embedding_backward,
   .rmsnorm_forward = hrm_cuda_rmsnorm_forward,
   .rmsnorm_backward = hrm_cuda_rmsnorm_backward,
   .rope_forward = hrm_cuda_rope_forward,
   .rope_backward = hrm_cuda_rope_backward,
   .attention_forward = hrm_cuda_attention_forward,
   .attention_backward = hrm_cuda_attention_backward,
   .swiglu_forward = hrm_cuda_swiglu_forward,
   .swiglu_backward = hrm_cuda_swiglu_backward,
   .residual_forward = hrm_cuda_residual_forward,
   .transpose_forward = hrm_cuda_transpose_forward,
   .stablemax_ce_forward = hrm_cuda_stablemax_ce_forward,
   .stablemax_ce_backward = hrm_cuda_stablemax_ce_backward,
   .softmax_ce_forward = hrm_cuda_softmax_ce_forward,
   .softmax_ce_backward = hrm_cuda_softmax_ce_backward,
   .bce_logits_forward = hrm_cuda_bce_logits_forward,
   .bce_logits_backward = hrm_cuda_bce_logits_backward,
   .argmax_forward = hrm_cuda_argmax_forward,
   .adam_atan2_update = hrm_cuda_adam_atan2_update,
   .adamw_update = hrm_cuda_adamw_update,
   .signsgd_update = hrm_cuda_signsgd_update,
};
