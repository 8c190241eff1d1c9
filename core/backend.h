/* backend.h — the backend interface: one table of ops per device, every pointer in the memory of
 * the table's device.
 *
 * The model path (modules, tape, store, ACT and loss ops, optimizers) reaches memory and
 * arithmetic only through a table, chosen by the device of the tensors or store an op is given
 * (hrm_backend_for). core/cpu/ fills the CPU table, kernels/ the CUDA table, entry for entry with
 * the same arguments, shapes and accumulate-or-write rules. Parameter gradients accumulate (+=);
 * activation gradients are written (=) unless an argument says otherwise. Entries that can fail
 * return an int status; the others return nothing and a device keeps its first failure until
 * `sync` reports it. This header is all a backend sees of the core.
 */
#ifndef HRM_BACKEND_H
#define HRM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Shape legend (fixed letters, used in every `// (...)` comment)
 *   B   batch rows                      S   task tokens (seq_len)
 *   P   puzzle-prefix positions         T   model tokens = S + P
 *   D   hidden size                     NH  attention heads, HD = D / NH head dim
 *   I   SwiGLU inner width              V   vocabulary size
 *   E   puzzle_emb_ndim (E <= P·D)      N   flattened rows (B·T, B·S or B)
 */

#define HRM_IGNORE_LABEL (-100)
#define HRM_POS_SCALE 0.707106781f /* learned positions: 1/√2, as the reference writes it */

typedef struct hrm_backend {
   const char *name;

   /* ---- memory --------------------------------------------------------------------------------- */

   /* [OUT] out: `bytes` zeroed bytes of device memory (0 allowed), aligned for any element
    * type; on failure *out is NULL and the error is set. */
   int (*alloc)(void **out, size_t bytes);
   void (*release)(void *ptr);                                  /* NULL is a no-op */
   void (*zero)(void *dst, size_t bytes);
   /* dst = src within the device (no overlap). */
   void (*copy)(void *dst, const void *src, size_t bytes);
   /* Between host memory and the device; both return once the copy is complete. */
   int (*upload)(void *dst, const void *host_src, size_t bytes);
   int (*download)(void *host_dst, const void *src, size_t bytes);
   /* Waits for the device's queued work; HRM_OK or its first recorded failure. */
   int (*sync)(void);
   /* rows × row_bytes from src to dst, row r at src + r·src_pitch and dst + r·dst_pitch (bytes). */
   void (*copy_rows)(void *dst, int64_t dst_pitch, const void *src, int64_t src_pitch,
                     int64_t rows, size_t row_bytes);
   /* dst[i] = src[index[i]] (gather) and dst[index[i]] = src[i] (scatter) for i < n, rows of
    * row_bytes; index NULL means index[i] = i. */
   void (*gather_rows)(void *dst, const void *src, const int32_t *index, int64_t n,
                       size_t row_bytes);
   void (*scatter_rows)(void *dst, const void *src, const int32_t *index, int64_t n,
                        size_t row_bytes);
   /* Every one of the n rows of dst (row_bytes each) = row. */
   void (*broadcast_row)(void *dst, const void *row, int64_t n, size_t row_bytes);

   /* ---- GEMM and layers ---------------------------------------------------------------------- */

   /* Row-major C (M, N) = alpha·op(A)·op(B) + beta·C, op(X) = X or Xᵀ. */
   void (*gemm)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                int64_t ldc);
   /* out (N, OC) = inp (N, C) · weightᵀ (OC, C) + bias (OC, may be NULL) */
   void (*linear_forward)(float *out, const float *inp, const float *weight, const float *bias,
                          int64_t N, int C, int OC);
   /* dinp (N, C) = dinp_beta·dinp + dout · weight (skipped when dinp is NULL);
    * dweight (OC, C) += doutᵀ · inp; dbias (OC) += Σ_n dout (when not NULL) */
   void (*linear_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int64_t N, int C, int OC,
                           float dinp_beta);
   /* out (B, T, D) = scale · [prefix (B, E) zero-padded to (P, D) ; tok[inputs] (B, S, D)],
    * with learned positions pos (T, D): scale · HRM_POS_SCALE · (… + pos). prefix, pos may be
    * NULL. */
   void (*embedding_forward)(float *out, const int32_t *inputs, const float *tok,
                             const float *prefix, const float *pos, int B, int S, int P, int D,
                             int E, float scale);
   /* dtok (V, D) +=, dprefix (B, E) += (may be NULL), dpos (T, D) += (NULL without learned
    * positions; `learned` says whether the forward used them) from dout (B, T, D). */
   void (*embedding_backward)(float *dtok, float *dprefix, float *dpos, const float *dout,
                              const int32_t *inputs, int B, int S, int P, int D, int E,
                              float scale, int learned);
   /* out (N, OC) += bias (OC); dbias (OC) += Σ_n dout (N, OC), rows in order. */
   void (*add_bias)(float *out, const float *bias, int64_t N, int OC);
   void (*bias_backward)(float *dbias, const float *dout, int64_t N, int OC);
   /* Gain-free RMSNorm: out (N, D) = inp · rsqrt(mean(inp²) + eps); rstd (N) may be NULL. */
   void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, int64_t N, int D,
                           float eps);
   /* dinp (N, D) from dout (N, D), the forward's out (N, D) and rstd (N). */
   void (*rmsnorm_backward)(float *dinp, const float *dout, const float *out, const float *rstd,
                            int64_t N, int D);
   /* cos_t, sin_t (T, HD): the reference's fp32 tables, emb = cat(freqs, freqs). */
   void (*rope_tables)(float *cos_t, float *sin_t, int T, int HD, double theta);
   /* In place on the Q and K blocks of qkv (B, T, 3·NH·HD), half-split pairing (j, j + HD/2),
    * tables cos_t, sin_t (T, HD); the backward applies the transpose rotation to dqkv. */
   void (*rope_forward)(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                        int HD);
   void (*rope_backward)(float *dqkv, const float *cos_t, const float *sin_t, int B, int T,
                         int NH, int HD);
   /* Non-causal softmax attention over fused qkv (B, T, 3·NH·HD) = [Q | K | V], scale 1/√HD:
    * out (B, T, NH·HD) head-major; att (B, NH, T, T) keeps the probabilities. */
   void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int NH,
                             int HD);
   /* dqkv (B, T, 3·NH·HD) from dout (B, T, NH·HD); datt (B, NH, T, T) is scratch. */
   void (*attention_backward)(float *dqkv, float *datt, const float *dout, const float *qkv,
                              const float *att, int B, int T, int NH, int HD);
   /* out (N, I) = silu(gate) · up, with gu (N, 2I) = [gate | up]; dgu (N, 2I) from dout (N, I). */
   void (*swiglu_forward)(float *out, const float *gu, int64_t N, int I);
   void (*swiglu_backward)(float *dgu, const float *dout, const float *gu, int64_t N, int I);
   /* out (n) = a + b; out may alias a or b. */
   void (*residual_forward)(float *out, const float *a, const float *b, int64_t n);
   /* out (B, C, R) = in (B, R, C), each batch's matrix transposed (out must not alias in); the
    * token-mixing block's op. NULL where a backend lacks it (the block then refuses the device). */
   void (*transpose_forward)(float *out, const float *in, int B, int R, int C);

   /* ---- losses -------------------------------------------------------------------------------- */

   /* Stablemax cross-entropy in float64: losses (N) = -log_stablemax(logits (N, V))[label], 0
    * where label == HRM_IGNORE_LABEL; the backward writes dlogits (N, V) = dloss[n] · ∂loss_n /
    * ∂logits (rows of ignored labels zero). Softmax: the same contract, fp32 logits. */
   void (*stablemax_ce_forward)(double *losses, const float *logits, const int32_t *labels,
                                int64_t N, int V);
   void (*stablemax_ce_backward)(float *dlogits, const double *dloss, const float *logits,
                                 const int32_t *labels, int64_t N, int V);
   void (*softmax_ce_forward)(double *losses, const float *logits, const int32_t *labels,
                              int64_t N, int V);
   void (*softmax_ce_backward)(float *dlogits, const double *dloss, const float *logits,
                               const int32_t *labels, int64_t N, int V);
   /* Binary cross-entropy with logits: losses (N) from logits (N), targets (N) in [0, 1];
    * dlogits (N) = dloss[n] · (sigmoid(logit) - target). */
   void (*bce_logits_forward)(double *losses, const float *logits, const float *targets,
                              int64_t N);
   void (*bce_logits_backward)(float *dlogits, const double *dloss, const float *logits,
                               const float *targets, int64_t N);
   /* pred (N) = first index of the maximum of each row of logits (N, V). */
   void (*argmax_forward)(int32_t *pred, const float *logits, int64_t N, int V);

   /* ---- the ACT wrapper and the loss head (HRM_SPEC §2, §3) ----------------------------------
    * "rows" lists the n carry rows a segment computes (NULL: rows[i] = i); q (n, 2) holds
    * [q_halt, q_continue] per computed row. */

   /* rows (B) = indices of the nonzero entries of active (B) in order (active NULL: every
    * row); count (1) = how many. */
   void (*list_rows)(int32_t *rows, int32_t *count, const uint8_t *active, int32_t B);
   /* Each listed row r that is halted: state[r] (T, D) = init (D) at every position. */
   void (*reset_state)(float *state, const float *init, const uint8_t *halted,
                       const int32_t *rows, int32_t n, int64_t T, int64_t D);
   /* Each listed row r that is halted: steps 0, inputs and labels (S) from the batch (labels
    * HRM_IGNORE_LABEL when batch_labels is NULL), puzzle id (0 when batch_puzzle_ids is NULL). */
   void (*reset_fields)(int32_t *steps, int32_t *inputs, int32_t *labels, int32_t *puzzle_ids,
                        const uint8_t *halted, const int32_t *rows, int32_t n, int32_t S,
                        const int32_t *batch_inputs, const int32_t *batch_labels,
                        const int32_t *batch_puzzle_ids);
   /* Halting (§2.2): new_steps (n) = steps[row] + 1; new_halted (n) at max_steps, and when
    * `explore` also by the rule (0: q_halt > q_continue, 1: q_halt > 0) unless the row's
    * exploration draw sets a higher minimum. The draws of computed row i come from the counter
    * generator (counter_rng.h) at (seed, step, row_offset + rows[i]). */
   void (*act_halt)(int32_t *new_steps, uint8_t *new_halted, const int32_t *steps,
                    const int32_t *rows, int32_t n, const float *q, int32_t max_steps,
                    double exploration_prob, int32_t explore, int32_t rule, uint64_t seed,
                    uint64_t step, int64_t row_offset);
   /* target (n) = sigmoid(q_halt' if new_steps >= max_steps else max(q_halt', q_continue')). */
   void (*target_q)(float *target, const float *q_next, const int32_t *new_steps, int32_t n,
                    int32_t max_steps);
   /* The loss head's reductions over n rows of S tokens, from the token losses tok_loss (n, S),
    * predictions pred (n, S), labels (n, S), q (n, 2), new_steps, new_halted (n) and target
    * (n, NULL: no q_continue loss): metrics (9) = loss, lm_loss, q_halt_loss, q_continue_loss,
    * accuracy, exact_accuracy, q_halt_accuracy, steps, count (hrm_act_metrics' order, sums as
    * the reference); tok_w (n, S) = the lm loss's token weights of total / global_batch;
    * q_split (3n) = q_halt, q_continue, exact correctness; row_bce (n) is scratch. */
   void (*loss_head_forward)(double *metrics, double *tok_w, float *q_split, double *row_bce,
                             const double *tok_loss, const int32_t *pred, const int32_t *labels,
                             const float *q, const int32_t *new_steps, const uint8_t *new_halted,
                             const float *target, int32_t n, int32_t S, double global_batch);
   /* dq (n, 2) = the gradient of total / global_batch w.r.t. q, from the forward's q_split and
    * target (NULL: zero q_continue gradient); dq_split (2n) and row_w (n) are scratch. */
   void (*loss_head_backward)(float *dq, float *dq_split, double *row_w, const float *q_split,
                              const float *target, int32_t n, double global_batch);
   /* q_halt[rows[i]] = q[i][0], q_continue[rows[i]] = q[i][1] for i < n (either may be NULL). */
   void (*split_q_rows)(float *q_halt, float *q_continue, const float *q, const int32_t *rows,
                        int32_t n);
   /* Inference bookkeeping of B rows after a segment: every active row records segment, the
    * argmax predictions (S) of its logits (S, V) and its Q values; halt_q 1 stops rows whose
    * q_halt > q_continue, 2 those whose q_halt > 0. count (1) = rows still active. */
   void (*solve_update)(int32_t *count, int32_t *predictions, int32_t *steps, float *q_halt,
                        float *q_continue, uint8_t *active, const float *logits,
                        const float *q_halt_logits, const float *q_continue_logits, int64_t B,
                        int32_t S, int32_t V, int32_t segment, int32_t halt_q);
   /* ema (n) = decay · ema + (1 - decay) · x, in double. */
   void (*ema_update)(float *ema, const float *x, int64_t n, double decay);

   /* ---- optimizers ---------------------------------------------------------------------------- */

   /* AdamATan2 (a = b = 1) over n elements, fp32 opmath: p *= wd_alpha; m, v lerp toward g, g²;
    * p -= lr · atan2(bc1_rcp · m, √v / bc2_sqrt). */
   void (*adam_atan2_update)(float *p, float *m, float *v, const float *g, int64_t n, float lr,
                             float wd_alpha, float mbeta1, float mbeta2, float bc1_rcp,
                             float bc2_sqrt);
   /* AdamW, PyTorch semantics: p *= wd_alpha; m lerp; v = β2·v + (1-β2)·g²;
    * p -= step_size · m / (√v / bc2_sqrt + eps). */
   void (*adamw_update)(float *p, float *m, float *v, const float *g, int64_t n,
                        float step_size, float wd_alpha, float mbeta1, float beta2,
                        float bc2_sqrt, float eps);
   /* Sign-SGD with decoupled decay on the rows of table (rows, E) named by ids (U): gradients
    * grad (U, E) of duplicate ids are summed first, then w = w·(1 - lr·wd) - lr·sign(G). */
   void (*signsgd_update)(float *table, const float *grad, const int32_t *ids, int64_t U, int E,
                          float lr, float wd);

   /* ---- optional fused entries (NULL: the modules call the separate ops) ---------------------- */

   /* out (N, D) = rms_norm(a + b), the post-norm residual fused in (out may alias a or b). */
   void (*add_rmsnorm_forward)(float *out, float *rstd, const float *a, const float *b,
                               int64_t N, int D, float eps);
   /* RoPE fused into attention: rotates Q, K of qkv in place and attends; the backward ends
    * with the transposed rotation of dQ, dK. Same results as the separate calls. */
   void (*rope_attention_forward)(float *out, float *att, float *qkv, const float *cos_t,
                                  const float *sin_t, int B, int T, int NH, int HD);
   void (*rope_attention_backward)(float *dqkv, float *datt, const float *dout,
                                   const float *qkv, const float *att, const float *cos_t,
                                   const float *sin_t, int B, int T, int NH, int HD);
   /* The untaped forward of rope_attention_forward (cos_t NULL: no RoPE): the same output, the
    * probabilities not kept (NULL: untaped calls pass rope_attention_forward a scratch att). */
   void (*attention_infer)(float *out, float *qkv, const float *cos_t, const float *sin_t, int B,
                           int T, int NH, int HD);
   /* A bf16 model's tape keeps its activations in bf16 (NULL: in fp32): dst (n) = the bf16 bits
    * of src (n), nearest even; and back, exactly. */
   void (*pack_bf16)(uint16_t *dst, const float *src, int64_t n);
   void (*widen_bf16)(float *dst, const uint16_t *src, int64_t n);
} hrm_backend;

#ifdef __cplusplus
}
#endif

#endif /* HRM_BACKEND_H */
