/* backend.c — the CPU backend table: every op the model calls, pointing at core/cpu/.
 *
 * This table is the readable reference a device backend mirrors entry for entry. It holds no
 * state; thread counts come from OpenMP (hrm_set_threads).
 */
#include "../nn.h"
#include "gemm.h"

const hrm_backend hrm_cpu_backend = {
   .name = "cpu",
   .gemm = hrm_cpu_sgemm,
   .linear_forward = hrm_cpu_linear_forward,
   .linear_backward = hrm_cpu_linear_backward,
   .embedding_forward = hrm_cpu_embedding_forward,
   .embedding_backward = hrm_cpu_embedding_backward,
   .rmsnorm_forward = hrm_cpu_rmsnorm_forward,
   .rmsnorm_backward = hrm_cpu_rmsnorm_backward,
   .rope_forward = hrm_cpu_rope_forward,
   .rope_backward = hrm_cpu_rope_backward,
   .attention_forward = hrm_cpu_attention_forward,
   .attention_backward = hrm_cpu_attention_backward,
   .swiglu_forward = hrm_cpu_swiglu_forward,
   .swiglu_backward = hrm_cpu_swiglu_backward,
   .residual_forward = hrm_cpu_residual_forward,
   .transpose_forward = hrm_cpu_transpose_forward,
   .stablemax_ce_forward = hrm_cpu_stablemax_ce_forward,
   .stablemax_ce_backward = hrm_cpu_stablemax_ce_backward,
   .softmax_ce_forward = hrm_cpu_softmax_ce_forward,
   .softmax_ce_backward = hrm_cpu_softmax_ce_backward,
   .bce_logits_forward = hrm_cpu_bce_logits_forward,
   .bce_logits_backward = hrm_cpu_bce_logits_backward,
   .argmax_forward = hrm_cpu_argmax_forward,
   .adam_atan2_update = hrm_cpu_adam_atan2_update,
   .adamw_update = hrm_cpu_adamw_update,
   .signsgd_update = hrm_cpu_signsgd_update,
   .add_rmsnorm_forward = hrm_cpu_add_rmsnorm_forward,
   .rope_attention_forward = hrm_cpu_rope_attention_forward,
   .rope_attention_backward = hrm_cpu_rope_attention_backward,
};
