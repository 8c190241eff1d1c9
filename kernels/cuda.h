/* cuda.h — internal interface of the CUDA backend (kernels/): device context, memory, launchers.
 *
 * Plain C declarations, usable from the C tests and the .cu files (the core sees only the table,
 * through core/device.h). Every launcher mirrors the backend.h entry of the same op (same
 * arguments, same shapes, same accumulate-or-write rules); pointers are device memory. Launchers return nothing, like the
 * backend table: a failing CUDA or cuBLAS call is recorded in a sticky status that
 * hrm_cuda_status() / hrm_cuda_sync() turn into HRM_ERR_DEVICE with a message. One stream, no
 * host synchronisation inside a launcher. Not part of the public API (hrm.h).
 */
#ifndef HRM_KERNELS_CUDA_H
#define HRM_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend.h"

/* ---- context and status --------------------------------------------------------------------- */

/* GEMM precision of the table's gemm/linear entries (all accumulate in fp32):
 * F32 exact fp32, TF32 tensor cores with tf32 inputs, BF16 tensor cores with inputs rounded to
 * bf16 (the reference's autocast matmuls). The default is BF16; HRM_CUDA_GEMM=f32|tf32|bf16 in
 * the environment overrides it at context creation. */
enum hrm_cuda_gemm_mode { HRM_CUDA_GEMM_F32 = 0, HRM_CUDA_GEMM_TF32 = 1, HRM_CUDA_GEMM_BF16 = 2 };

int hrm_cuda_device_count(void);          /* 0 when no driver or no device (never fails) */
int hrm_cuda_init(void);                  /* idempotent: device 0, stream, cuBLAS(Lt) handles */
void hrm_cuda_shutdown(void);             /* frees the context (tests; safe when never inited) */
int hrm_cuda_status(void);                /* HRM_OK, or the first recorded failure as HRM_ERR_DEVICE */
void hrm_cuda_clear_status(void);         /* forget a recorded failure */
int hrm_cuda_sync(void);                  /* waits for the stream, then hrm_cuda_status() */
void hrm_cuda_set_gemm_mode(int mode);    /* enum hrm_cuda_gemm_mode */
int hrm_cuda_gemm_mode(void);

/* ---- memory (all on the context's stream; host pointers may be pageable) -------------------- */

int hrm_cuda_malloc(void **out, size_t bytes);   /* zeroed; bytes 0 gives a valid 256-byte block */
void hrm_cuda_free(void *p);                     /* NULL is a no-op */
/* The context's scratch of at least `bytes` (grown on demand once the stream drains, freed at
 * shutdown); NULL with a recorded failure when it cannot be had. One user at a time. */
void *hrm_cuda_scratch(size_t bytes);
/* Copies bytes between any two of host (HRM_DEVICE_CPU) and device (HRM_DEVICE_CUDA) memory;
 * returns after the copy has completed when either side is host memory. */
int hrm_cuda_memcpy(void *dst, int32_t dst_device, const void *src, int32_t src_device,
                    size_t bytes);
int hrm_cuda_memset0(void *p, size_t bytes);     /* asynchronous */

/* ---- GEMM (cuBLAS / cuBLASLt) --------------------------------------------------------------- */

/* Row-major C (M, N) = alpha·op(A)·op(B) + beta·C, as hrm_cpu_sgemm, in the context's mode. */
void hrm_cuda_gemm_forward(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                           float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                           float beta, float *C, int64_t ldc);
/* The same with bf16 operands A, B (raw uint16 bf16 bits) and fp32 C, fp32 accumulation
 * (cuBLASLt). Leading dimensions should be multiples of 8. */
void hrm_cuda_gemm_bf16_forward(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                                float alpha, const uint16_t *A, int64_t lda, const uint16_t *B,
                                int64_t ldb, float beta, float *C, int64_t ldc);
/* out (n) bf16 bits = round-to-nearest-even of inp (n) */
void hrm_cuda_f32_to_bf16_forward(uint16_t *out, const float *inp, int64_t n);
/* out (n) = the bf16 bits inp (n) widened, exactly */
void hrm_cuda_bf16_to_f32_forward(float *out, const uint16_t *inp, int64_t n);

/* ---- the backend table's entries (the contracts of backend.h) -------------------------------- */

void hrm_cuda_zero(void *dst, size_t bytes);
void hrm_cuda_copy(void *dst, const void *src, size_t bytes);
int hrm_cuda_upload(void *dst, const void *host_src, size_t bytes);
int hrm_cuda_download(void *host_dst, const void *src, size_t bytes);
void hrm_cuda_copy_rows(void *dst, int64_t dst_pitch, const void *src, int64_t src_pitch,
                        int64_t rows, size_t row_bytes);
void hrm_cuda_gather_rows(void *dst, const void *src, const int32_t *index, int64_t n,
                          size_t row_bytes);
void hrm_cuda_scatter_rows(void *dst, const void *src, const int32_t *index, int64_t n,
                           size_t row_bytes);
void hrm_cuda_broadcast_row(void *dst, const void *row, int64_t n, size_t row_bytes);
void hrm_cuda_add_bias(float *out, const float *bias, int64_t N, int OC);
void hrm_cuda_bias_backward(float *dbias, const float *dout, int64_t N, int OC);
void hrm_cuda_rope_tables(float *cos_t, float *sin_t, int T, int HD, double theta);
void hrm_cuda_list_rows(int32_t *rows, int32_t *count, const uint8_t *active, int32_t B);
void hrm_cuda_reset_state(float *state, const float *init, const uint8_t *halted,
                          const int32_t *rows, int32_t n, int64_t T, int64_t D);
void hrm_cuda_reset_fields(int32_t *steps, int32_t *inputs, int32_t *labels, int32_t *puzzle_ids,
                           const uint8_t *halted, const int32_t *rows, int32_t n, int32_t S,
                           const int32_t *batch_inputs, const int32_t *batch_labels,
                           const int32_t *batch_puzzle_ids);
void hrm_cuda_act_halt(int32_t *new_steps, uint8_t *new_halted, const int32_t *steps,
                       const int32_t *rows, int32_t n, const float *q, int32_t max_steps,
                       double exploration_prob, int32_t explore, int32_t rule, uint64_t seed,
                       uint64_t step, int64_t row_offset);
void hrm_cuda_target_q(float *target, const float *q_next, const int32_t *new_steps, int32_t n,
                       int32_t max_steps);
void hrm_cuda_loss_head_forward(double *metrics, double *tok_w, float *q_split, double *row_bce,
                                const double *tok_loss, const int32_t *pred,
                                const int32_t *labels, const float *q, const int32_t *new_steps,
                                const uint8_t *new_halted, const float *target, int32_t n,
                                int32_t S, double global_batch);
void hrm_cuda_loss_head_backward(float *dq, float *dq_split, double *row_w, const float *q_split,
                                 const float *target, int32_t n, double global_batch);
void hrm_cuda_split_q_rows(float *q_halt, float *q_continue, const float *q, const int32_t *rows,
                           int32_t n);
void hrm_cuda_solve_update(int32_t *count, int32_t *predictions, int32_t *steps, float *q_halt,
                           float *q_continue, uint8_t *active, const float *logits,
                           const float *q_halt_logits, const float *q_continue_logits, int64_t B,
                           int32_t S, int32_t V, int32_t segment, int32_t halt_q);
void hrm_cuda_ema_update(float *ema, const float *x, int64_t n, double decay);

void hrm_cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                             int64_t N, int C, int OC);
void hrm_cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int64_t N, int C, int OC,
                              float dinp_beta);
void hrm_cuda_embedding_forward(float *out, const int32_t *inputs, const float *tok,
                                const float *prefix, const float *pos, int B, int S, int P, int D,
                                int E, float scale);
void hrm_cuda_embedding_backward(float *dtok, float *dprefix, float *dpos, const float *dout,
                                 const int32_t *inputs, int B, int S, int P, int D, int E,
                                 float scale, int learned);
void hrm_cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, int64_t N, int D,
                              float eps);
void hrm_cuda_rmsnorm_backward(float *dinp, const float *dout, const float *out,
                               const float *rstd, int64_t N, int D);
/* Fused residual + RMSNorm (the table's add_rmsnorm_forward, without sum): sum (N, D) = a + b when sum is not NULL,
 * out (N, D) = rms_norm(a + b), rstd (N) may be NULL. out may alias a or b. */
void hrm_cuda_residual_rmsnorm_forward(float *out, float *rstd, float *sum, const float *a,
                                       const float *b, int64_t N, int D, float eps);
void hrm_cuda_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T,
                           int NH, int HD);
void hrm_cuda_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T,
                            int NH, int HD);
/* Non-causal attention, any T, HD <= 128. */
void hrm_cuda_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                                int HD);
void hrm_cuda_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                 const float *att, int B, int T, int NH, int HD);
void hrm_cuda_swiglu_forward(float *out, const float *gu, int64_t N, int I);
void hrm_cuda_swiglu_backward(float *dgu, const float *dout, const float *gu, int64_t N, int I);
void hrm_cuda_residual_forward(float *out, const float *a, const float *b, int64_t n);
/* out (B, C, R) = in (B, R, C) transposed per batch (the token-mixing block). */
void hrm_cuda_transpose_forward(float *out, const float *in, int B, int R, int C);
void hrm_cuda_stablemax_ce_forward(double *losses, const float *logits, const int32_t *labels,
                                   int64_t N, int V);
void hrm_cuda_stablemax_ce_backward(float *dlogits, const double *dloss, const float *logits,
                                    const int32_t *labels, int64_t N, int V);
void hrm_cuda_softmax_ce_forward(double *losses, const float *logits, const int32_t *labels,
                                 int64_t N, int V);
void hrm_cuda_softmax_ce_backward(float *dlogits, const double *dloss, const float *logits,
                                  const int32_t *labels, int64_t N, int V);
void hrm_cuda_bce_logits_forward(double *losses, const float *logits, const float *targets,
                                 int64_t N);
void hrm_cuda_bce_logits_backward(float *dlogits, const double *dloss, const float *logits,
                                  const float *targets, int64_t N);
void hrm_cuda_argmax_forward(int32_t *pred, const float *logits, int64_t N, int V);
void hrm_cuda_adam_atan2_update(float *p, float *m, float *v, const float *g, int64_t n, float lr,
                                float wd_alpha, float mbeta1, float mbeta2, float bc1_rcp,
                                float bc2_sqrt);
void hrm_cuda_adamw_update(float *p, float *m, float *v, const float *g, int64_t n,
                           float step_size, float wd_alpha, float mbeta1, float beta2,
                           float bc2_sqrt, float eps);
void hrm_cuda_signsgd_update(float *table, const float *grad, const int32_t *ids, int64_t U,
                             int E, float lr, float wd);

extern const hrm_backend hrm_cuda_backend;

#ifdef __cplusplus
}
#endif

#endif /* HRM_KERNELS_CUDA_H */
