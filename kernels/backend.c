/* backend.c — the CUDA backend table: the same entries as hrm_cpu_backend, pointing at kernels/.
 *
 * Pointers passed through this table are device memory. Entries return nothing; a failed CUDA
 * or cuBLAS call is kept in the context's sticky status (hrm_cuda_status / hrm_cuda_sync), so a
 * caller checks once per step. The gemm entry follows the context's GEMM mode (default bf16
 * tensor-core math with fp32 accumulation; HRM_CUDA_GEMM=f32 for the exact fp32 path).
 */
#include "cuda.h"

/* The fused entries as the separate kernels in sequence (same results as the modules' fallback). */
static void add_rmsnorm_forward(float *out, float *rstd, const float *a, const float *b,
                                int64_t N, int D, float eps) {
   hrm_cuda_residual_rmsnorm_forward(out, rstd, NULL, a, b, N, D, eps);
}

static void rope_attention_forward(float *out, float *att, float *qkv, const float *cos_t,
                                   const float *sin_t, int B, int T, int NH, int HD) {
   hrm_cuda_rope_forward(qkv, cos_t, sin_t, B, T, NH, HD);
   hrm_cuda_attention_forward(out, att, qkv, B, T, NH, HD);
}

static void rope_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                    const float *att, const float *cos_t, const float *sin_t,
                                    int B, int T, int NH, int HD) {
   hrm_cuda_attention_backward(dqkv, datt, dout, qkv, att, B, T, NH, HD);
   hrm_cuda_rope_backward(dqkv, cos_t, sin_t, B, T, NH, HD);
}

/* The untaped attention: the same kernels, the probabilities in the context's scratch instead of
 * the caller's memory (the kernel forms them in device memory). */
static void attention_infer(float *out, float *qkv, const float *cos_t, const float *sin_t, int B,
                            int T, int NH, int HD) {
   float *att = hrm_cuda_scratch(sizeof(float) * (size_t)B * (size_t)NH * (size_t)T * (size_t)T);
   if (!att) return; /* recorded: the step's status check reports it */
   if (cos_t) hrm_cuda_rope_forward(qkv, cos_t, sin_t, B, T, NH, HD);
   hrm_cuda_attention_forward(out, att, qkv, B, T, NH, HD);
}

const hrm_backend hrm_cuda_backend = {
   .name = "cuda",
   .alloc = hrm_cuda_malloc,
   .release = hrm_cuda_free,
   .zero = hrm_cuda_zero,
   .copy = hrm_cuda_copy,
   .upload = hrm_cuda_upload,
   .download = hrm_cuda_download,
   .sync = hrm_cuda_sync,
   .copy_rows = hrm_cuda_copy_rows,
   .gather_rows = hrm_cuda_gather_rows,
   .scatter_rows = hrm_cuda_scatter_rows,
   .broadcast_row = hrm_cuda_broadcast_row,
   .gemm = hrm_cuda_gemm_forward,
   .linear_forward = hrm_cuda_linear_forward,
   .linear_backward = hrm_cuda_linear_backward,
   .add_bias = hrm_cuda_add_bias,
   .bias_backward = hrm_cuda_bias_backward,
   .embedding_forward = hrm_cuda_embedding_forward,
   .embedding_backward = hrm_cuda_embedding_backward,
   .rmsnorm_forward = hrm_cuda_rmsnorm_forward,
   .rmsnorm_backward = hrm_cuda_rmsnorm_backward,
   .rope_tables = hrm_cuda_rope_tables,
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
   .list_rows = hrm_cuda_list_rows,
   .reset_state = hrm_cuda_reset_state,
   .reset_fields = hrm_cuda_reset_fields,
   .act_halt = hrm_cuda_act_halt,
   .target_q = hrm_cuda_target_q,
   .loss_head_forward = hrm_cuda_loss_head_forward,
   .loss_head_backward = hrm_cuda_loss_head_backward,
   .split_q_rows = hrm_cuda_split_q_rows,
   .solve_update = hrm_cuda_solve_update,
   .ema_update = hrm_cuda_ema_update,
   .adam_atan2_update = hrm_cuda_adam_atan2_update,
   .adamw_update = hrm_cuda_adamw_update,
   .signsgd_update = hrm_cuda_signsgd_update,
   .add_rmsnorm_forward = add_rmsnorm_forward,
   .rope_attention_forward = rope_attention_forward,
   .rope_attention_backward = rope_attention_backward,
   .attention_infer = attention_infer,
   .pack_bf16 = hrm_cuda_f32_to_bf16_forward,
   .widen_bf16 = hrm_cuda_bf16_to_f32_forward,
};
