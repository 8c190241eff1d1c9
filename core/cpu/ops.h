/* ops.h — the CPU backend's ops (core/cpu/): llm.c-style functions over flat host arrays.
 *
 * Outputs first, each `_forward` with its `_backward` beside it; the contracts are the backend
 * table's (backend.h), whose CPU instance (backend.c) points here. Nothing here allocates or
 * fails. Only core/cpu/ and tests call these directly: the model path goes through the table.
 */
#ifndef HRM_CPU_OPS_H
#define HRM_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

/* Elementwise CPU loops fork threads only above this many elements (in `if` clauses): below it
 * a fork/join costs more than it saves (tiny models, batch-1 inference). */
#define HRM_OMP_MIN_WORK 32768

/* out (N, OC) = inp (N, C) · weightᵀ (OC, C) + bias (OC, may be NULL) */
void hrm_cpu_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                            int64_t N, int C, int OC);
/* dinp (N, C) = dinp_beta·dinp + dout · weight (skipped when dinp is NULL);
 * dweight (OC, C) += doutᵀ · inp; dbias (OC) += Σ_n dout (when not NULL) */
void hrm_cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int64_t N, int C, int OC,
                             float dinp_beta);

/* out (B, T, D) = scale · [prefix (B, E) zero-padded to (P, D) ; tok[inputs] (B, S, D)],
 * with learned positions pos (T, D): scale · 0.707106781 · (… + pos).
 * prefix and pos may be NULL. */
void hrm_cpu_embedding_forward(float *out, const int32_t *inputs, const float *tok,
                               const float *prefix, const float *pos, int B, int S, int P, int D,
                               int E, float scale);
/* dtok (V, D) +=, dprefix (B, E) += (may be NULL), dpos (T, D) += (NULL without learned
 * positions; `learned` says whether the forward used them) from dout (B, T, D). */
void hrm_cpu_embedding_backward(float *dtok, float *dprefix, float *dpos, const float *dout,
                                const int32_t *inputs, int B, int S, int P, int D, int E,
                                float scale, int learned);

/* Gain-free RMSNorm: out (N, D) = inp · rsqrt(mean(inp²) + eps); rstd (N) may be NULL. */
void hrm_cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, int64_t N, int D,
                             float eps);
/* out (N, D) = rms_norm(a + b), the post-norm residual fused in (out may alias a or b). */
void hrm_cpu_add_rmsnorm_forward(float *out, float *rstd, const float *a, const float *b,
                                 int64_t N, int D, float eps);
/* dinp (N, D) = from dout (N, D), the forward's out (N, D) and rstd (N). */
void hrm_cpu_rmsnorm_backward(float *dinp, const float *dout, const float *out,
                              const float *rstd, int64_t N, int D);

/* cos, sin (T, HD): the reference's fp32 tables, emb = cat(freqs, freqs). */
void hrm_cpu_rope_tables(float *cos_t, float *sin_t, int T, int HD, double theta);
/* In place on the Q and K blocks of qkv (B, T, 3D), half-split pairing (j, j + HD/2). */
void hrm_cpu_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T,
                          int NH, int HD);
/* In place on dqkv (B, T, 3D): the transpose rotation (gradient w.r.t. the pre-RoPE Q, K). */
void hrm_cpu_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T,
                           int NH, int HD);
/* In place on T rows of one head, row t at x + t·ld (HD), positions 0..T-1 of the tables;
 * sign +1 rotates, -1 applies the transpose. */
void hrm_cpu_rope_rows(float *x, int64_t ld, int T, int HD, const float *cos_t,
                       const float *sin_t, float sign);

/* Non-causal softmax attention over fused qkv (B, T, 3D) = [Q | K | V], head-major inside each
 * block, scale 1/√HD. out (B, T, D) head-major; att (B, NH, T, T) keeps the probabilities. */
void hrm_cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                               int HD);
/* dqkv (B, T, 3D) = from dout (B, T, D); datt (B, NH, T, T) is scratch. */
void hrm_cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                const float *att, int B, int T, int NH, int HD);
/* RoPE fused into attention, one pass per head while its rows are in cache: the forward
 * rotates Q and K of qkv in place (as rope_forward) and attends; the backward ends with the
 * transposed rotation of dQ, dK (as rope_backward). Same results as the separate calls. */
/* The untaped attention: rope_attention_forward's output (cos_t NULL: no RoPE) without keeping
 * the probabilities (a thread's head at a time in L1/L2, never the (B, NH, T, T) block). */
void hrm_cpu_attention_infer(float *out, float *qkv, const float *cos_t, const float *sin_t, int B,
                             int T, int NH, int HD);
/* One head with bf16 operands (attention_bf16.c): o (T, HD) stride D = bf16(P) · bf16(v), a (T, T)
 * = P = softmax(scale · bf16(q) · bf16(k)ᵀ) in fp32 (softmax(a, T, rows) does the rows; a NULL:
 * not kept), q, k, v (T, HD) stride 3D; fp32 accumulation. 1 when done; 0 on a CPU without AVX-512 BF16 or a shape
 * past the limits (T <= 256, HD <= 128 and a multiple of 32), for the caller's fp32 path. */
#define HRM_ATT_BF16_MAX_T 256
#define HRM_ATT_BF16_MAX_HD 128
int hrm_cpu_head_bf16(float *o, float *a, const float *q, const float *k, const float *v, int T,
                      int HD, int D, float scale, void (*softmax)(float *a, int T, int rows));
void hrm_cpu_rope_attention_forward(float *out, float *att, float *qkv, const float *cos_t,
                                    const float *sin_t, int B, int T, int NH, int HD);
void hrm_cpu_rope_attention_backward(float *dqkv, float *datt, const float *dout,
                                     const float *qkv, const float *att, const float *cos_t,
                                     const float *sin_t, int B, int T, int NH, int HD);

/* out (N, I) = silu(gate) · up, with gu (N, 2I) = [gate | up]. */
void hrm_cpu_swiglu_forward(float *out, const float *gu, int64_t N, int I);
/* dgu (N, 2I) = from dout (N, I) and gu (N, 2I). */
void hrm_cpu_swiglu_backward(float *dgu, const float *dout, const float *gu, int64_t N, int I);

/* out (n) = a + b; out may alias a or b. */
void hrm_cpu_residual_forward(float *out, const float *a, const float *b, int64_t n);

/* out (B, C, R) = in (B, R, C) with each batch's matrix transposed (out must not alias in).
 * Its backward is the same op with R and C swapped. */
void hrm_cpu_transpose_forward(float *out, const float *in, int B, int R, int C);

/* Stablemax cross-entropy in float64: losses (N) = -log_stablemax(logits (N, V))[label],
 * 0 where label == -100. */
void hrm_cpu_stablemax_ce_forward(double *losses, const float *logits, const int32_t *labels,
                                  int64_t N, int V);
/* dlogits (N, V) = dloss[n] · ∂loss_n/∂logits, rows of ignored labels zero. */
void hrm_cpu_stablemax_ce_backward(float *dlogits, const double *dloss, const float *logits,
                                   const int32_t *labels, int64_t N, int V);
/* Softmax cross-entropy (fp32 logits, accumulated in float64), same contract as stablemax. */
void hrm_cpu_softmax_ce_forward(double *losses, const float *logits, const int32_t *labels,
                                int64_t N, int V);
void hrm_cpu_softmax_ce_backward(float *dlogits, const double *dloss, const float *logits,
                                 const int32_t *labels, int64_t N, int V);
/* Binary cross-entropy with logits: losses (N) from logits (N) and targets (N) in [0, 1]. */
void hrm_cpu_bce_logits_forward(double *losses, const float *logits, const float *targets,
                                int64_t N);
/* dlogits (N) = dloss[n] · (sigmoid(logit) - target). */
void hrm_cpu_bce_logits_backward(float *dlogits, const double *dloss, const float *logits,
                                 const float *targets, int64_t N);
/* pred (N) = first index of the maximum of each row of logits (N, V). */
void hrm_cpu_argmax_forward(int32_t *pred, const float *logits, int64_t N, int V);

/* AdamATan2 (a = b = 1) over n elements, fp32 opmath as the fused kernel:
 * p *= wd_alpha; m, v lerp toward g, g²; p -= lr · atan2(bc1_rcp · m, √v / bc2_sqrt). */
void hrm_cpu_adam_atan2_update(float *p, float *m, float *v, const float *g, int64_t n, float lr,
                               float wd_alpha, float mbeta1, float mbeta2, float bc1_rcp,
                               float bc2_sqrt);
/* AdamW with PyTorch semantics: p *= wd_alpha; m lerp; v = β2·v + (1-β2)·g²;
 * p -= step_size · m / (√v / bc2_sqrt + eps). */
void hrm_cpu_adamw_update(float *p, float *m, float *v, const float *g, int64_t n,
                          float step_size, float wd_alpha, float mbeta1, float beta2,
                          float bc2_sqrt, float eps);
/* Sign-SGD with decoupled decay on the rows of table (rows, E) named by ids (U): the gradients
 * grad (U, E) of duplicate ids are summed first, then w = w·(1 - lr·wd) - lr·sign(G). */
void hrm_cpu_signsgd_update(float *table, const float *grad, const int32_t *ids, int64_t U, int E,
                            float lr, float wd);

/* ---- memory (memory.c), the linear layer's bias (linear.c), ACT and loss head (act.c) ------
 * Contracts: the entries of the same names in backend.h; host memory throughout. */
int hrm_cpu_alloc(void **out, size_t bytes);
void hrm_cpu_release(void *ptr);
void hrm_cpu_zero(void *dst, size_t bytes);
void hrm_cpu_copy(void *dst, const void *src, size_t bytes);
int hrm_cpu_transfer(void *dst, const void *src, size_t bytes); /* upload and download */
int hrm_cpu_sync(void);
void hrm_cpu_copy_rows(void *dst, int64_t dst_pitch, const void *src, int64_t src_pitch,
                       int64_t rows, size_t row_bytes);
void hrm_cpu_gather_rows(void *dst, const void *src, const int32_t *index, int64_t n,
                         size_t row_bytes);
void hrm_cpu_scatter_rows(void *dst, const void *src, const int32_t *index, int64_t n,
                          size_t row_bytes);
void hrm_cpu_broadcast_row(void *dst, const void *row, int64_t n, size_t row_bytes);
void hrm_cpu_pack_bf16(uint16_t *dst, const float *src, int64_t n);
void hrm_cpu_widen_bf16(float *dst, const uint16_t *src, int64_t n);
void hrm_cpu_add_bias(float *out, const float *bias, int64_t N, int OC);
void hrm_cpu_bias_backward(float *dbias, const float *dout, int64_t N, int OC);
void hrm_cpu_list_rows(int32_t *rows, int32_t *count, const uint8_t *active, int32_t B);
void hrm_cpu_reset_state(float *state, const float *init, const uint8_t *halted,
                         const int32_t *rows, int32_t n, int64_t T, int64_t D);
void hrm_cpu_reset_fields(int32_t *steps, int32_t *inputs, int32_t *labels, int32_t *puzzle_ids,
                          const uint8_t *halted, const int32_t *rows, int32_t n, int32_t S,
                          const int32_t *batch_inputs, const int32_t *batch_labels,
                          const int32_t *batch_puzzle_ids);
void hrm_cpu_act_halt(int32_t *new_steps, uint8_t *new_halted, const int32_t *steps,
                      const int32_t *rows, int32_t n, const float *q, int32_t max_steps,
                      double exploration_prob, int32_t explore, int32_t rule, uint64_t seed,
                      uint64_t step, int64_t row_offset);
void hrm_cpu_target_q(float *target, const float *q_next, const int32_t *new_steps, int32_t n,
                      int32_t max_steps);
void hrm_cpu_loss_head_forward(double *metrics, double *tok_w, float *q_split, double *row_bce,
                               const double *tok_loss, const int32_t *pred,
                               const int32_t *labels, const float *q, const int32_t *new_steps,
                               const uint8_t *new_halted, const float *target, int32_t n,
                               int32_t S, double global_batch);
void hrm_cpu_loss_head_backward(float *dq, float *dq_split, double *row_w, const float *q_split,
                                const float *target, int32_t n, double global_batch);
void hrm_cpu_split_q_rows(float *q_halt, float *q_continue, const float *q, const int32_t *rows,
                          int32_t n);
void hrm_cpu_solve_update(int32_t *count, int32_t *predictions, int32_t *steps, float *q_halt,
                          float *q_continue, uint8_t *active, const float *logits,
                          const float *q_halt_logits, const float *q_continue_logits, int64_t B,
                          int32_t S, int32_t V, int32_t segment, int32_t halt_q);
void hrm_cpu_ema_update(float *ema, const float *x, int64_t n, double decay);

#endif /* HRM_CPU_OPS_H */
