/* nn.h — internal layer interface of the model: shape legend, CPU layers, the backend table.
 *
 * Layers are llm.c-style functions over flat float arrays, outputs first, each `_forward` with
 * its `_backward` beside it. Parameter gradients accumulate (+=); activation gradients are
 * written (=) unless an argument says otherwise. Nothing here allocates, fails or touches the
 * public objects; the modules (module.c) own validation and the store (params.c) memory. Also
 * holds the private layouts of the store and the optimizer.
 */
#ifndef HRM_NN_H
#define HRM_NN_H

#include <stdint.h>

#include "hrm.h"

/* Shape legend (fixed letters, used in every `// (...)` comment)
 *   B   batch rows                      S   task tokens (seq_len)
 *   P   puzzle-prefix positions         T   model tokens = S + P
 *   D   hidden size                     NH  attention heads, HD = D / NH head dim
 *   I   SwiGLU inner width              V   vocabulary size
 *   E   puzzle_emb_ndim (E <= P·D)      N   flattened rows (B·T, B·S or B)
 */

#define HRM_IGNORE_LABEL (-100)
#define HRM_POS_SCALE 0.707106781f /* learned positions: 1/√2, as the reference writes it */
/* Elementwise CPU loops fork threads only above this many elements (in `if` clauses): below it
 * a fork/join costs more than it saves (tiny models, batch-1 inference). */
#define HRM_OMP_MIN_WORK 32768

/* ---- CPU layers (core/cpu/) --------------------------------------------------------------- */

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

/* ---- the backend table ----------------------------------------------------------------------
 * One entry per op. Model code calls only through a table, so a device fills the same entries;
 * hrm_cpu_backend (core/cpu/backend.c) is the readable reference. Pointers are device memory of
 * the table's device. */
typedef struct hrm_backend {
   const char *name;
   void (*gemm)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                int64_t ldc);
   void (*linear_forward)(float *, const float *, const float *, const float *, int64_t, int,
                          int);
   void (*linear_backward)(float *, float *, float *, const float *, const float *, const float *,
                           int64_t, int, int, float);
   void (*embedding_forward)(float *, const int32_t *, const float *, const float *,
                             const float *, int, int, int, int, int, float);
   void (*embedding_backward)(float *, float *, float *, const float *, const int32_t *, int, int,
                              int, int, int, float, int);
   void (*rmsnorm_forward)(float *, float *, const float *, int64_t, int, float);
   void (*rmsnorm_backward)(float *, const float *, const float *, const float *, int64_t, int);
   void (*rope_forward)(float *, const float *, const float *, int, int, int, int);
   void (*rope_backward)(float *, const float *, const float *, int, int, int, int);
   void (*attention_forward)(float *, float *, const float *, int, int, int, int);
   void (*attention_backward)(float *, float *, const float *, const float *, const float *, int,
                              int, int, int);
   void (*swiglu_forward)(float *, const float *, int64_t, int);
   void (*swiglu_backward)(float *, const float *, const float *, int64_t, int);
   void (*residual_forward)(float *, const float *, const float *, int64_t);
   /* the token-mixing block's (B, R, C) -> (B, C, R); NULL where a backend lacks it (the block
    * then refuses that device) */
   void (*transpose_forward)(float *, const float *, int, int, int);
   void (*stablemax_ce_forward)(double *, const float *, const int32_t *, int64_t, int);
   void (*stablemax_ce_backward)(float *, const double *, const float *, const int32_t *, int64_t,
                                 int);
   void (*softmax_ce_forward)(double *, const float *, const int32_t *, int64_t, int);
   void (*softmax_ce_backward)(float *, const double *, const float *, const int32_t *, int64_t,
                               int);
   void (*bce_logits_forward)(double *, const float *, const float *, int64_t);
   void (*bce_logits_backward)(float *, const double *, const float *, const float *, int64_t);
   void (*argmax_forward)(int32_t *, const float *, int64_t, int);
   void (*adam_atan2_update)(float *, float *, float *, const float *, int64_t, float, float,
                             float, float, float, float);
   void (*adamw_update)(float *, float *, float *, const float *, int64_t, float, float, float,
                        float, float, float);
   void (*signsgd_update)(float *, const float *, const int32_t *, int64_t, int, float, float);
   /* Optional fused entries; where one is NULL, module.c calls the separate ops above. */
   void (*add_rmsnorm_forward)(float *, float *, const float *, const float *, int64_t, int,
                               float);
   void (*rope_attention_forward)(float *, float *, float *, const float *, const float *, int,
                                  int, int, int);
   void (*rope_attention_backward)(float *, float *, const float *, const float *,
                                   const float *, const float *, const float *, int, int, int,
                                   int);
} hrm_backend;

extern const hrm_backend hrm_cpu_backend;

/* ---- private object layouts (params.c, module.c, tape.c, optim.c) ------------------------ */

/* Activations of one post-norm block, kept by a call made with a tape; an untaped call reuses
 * one record in the store's scratch. */
typedef struct hrm_block_acts {
   float *qkv;    // (B, T, 3D) after RoPE
   float *att;    // (B, NH, T, T) attention probabilities
   float *atty;   // (B, T, D) attention output before o_proj
   float *h1;     // (B, T, D) rms_norm(in + attn)
   float *rstd1;  // (B, T)
   float *gu;     // (B, T, 2I) gate_up_proj output
   float *act;    // (B, T, I) silu(gate) · up
   float *h2;     // (B, T, D) block output rms_norm(h1 + mlp)
   float *rstd2;  // (B, T)
   /* the token-mixing sublayer (mlp_t) in place of attention; IT its SwiGLU width */
   float *tx;     // (B, D, T) the block input, transposed
   float *tgu;    // (B, D, 2IT) token gate_up output
   float *tact;   // (B, D, IT) silu(gate) · up
   float *tnorm;  // (B, D, T) rms_norm over T of tx + token mlp (h1 transposed)
   float *trstd;  // (B, D)
} hrm_block_acts;

/* One declared tensor of a store. */
typedef struct hrm_named {
   char name[96];
   int32_t kind;          // enum hrm_kind
   int32_t init;          // enum hrm_init
   double init_arg;
   int32_t ndim;
   int64_t shape[4];
   int64_t offset;        // parameters: element offset in the flat blocks
   hrm_tensor *value;     // owned view (parameters: into the flat block), NULL until built
   hrm_tensor *grad;      // owned view into the gradient block, NULL for buffers and tables
} hrm_named;

struct hrm_params {
   int32_t device, built, refs;
   const hrm_backend *be;
   hrm_rng rng;
   int32_t count, cap;
   hrm_named *tensors;         // (cap) in declaration order
   int64_t num_params;
   hrm_tensor *params;         // (num_params) flat parameter block
   hrm_tensor *grads;          // (num_params) flat gradient block
   /* the sparse table (puzzle embedding): gradient rows of the batches since the last step */
   int32_t sparse;             // index of the table, -1 when none
   int32_t sparse_dim;         // E
   float *sgrad;               // (scap, E) row gradients, appended per backward
   int32_t *sgrad_ids;         // (scap) their table rows
   int32_t srows, scap;
   /* shared scratch of untaped calls and backward passes, grown at first use */
   float *scratch;
   size_t scratch_floats;
   /* the live tapes over this store (an untaped call must not write into their outputs) */
   struct hrm_tape **tapes;
   int32_t ntapes, tape_cap;
};

/* 1 when p lies in the arena of a tape of the store that holds recorded calls. tape.c */
int hrm_tapes_hold(const hrm_params *p, const void *ptr);

/* The store's scratch of at least `floats` floats (64-byte aligned); NULL on failure (with the
 * error set). Growing frees the old block: nothing may hold scratch across calls. */
float *hrm_params_scratch(hrm_params *p, size_t floats);
/* Make room for `rows` more sparse-gradient rows; returns the first free row or NULL. */
int hrm_params_sparse_append(hrm_params *p, int32_t rows, float **grad, int32_t **ids);
/* Raw pointer of tensor i's value / gradient (built stores only). */
float *hrm_params_value_ptr(const hrm_params *p, int32_t i);
float *hrm_params_grad_ptr(const hrm_params *p, int32_t i);

struct hrm_optim {
   hrm_optim_config cfg;
   hrm_params *params;
   hrm_tensor *m, *v;   // (num_params) f32
   hrm_tensor *t;       // (1) f64 step count
};

/* SwiGLU inner width: roundup(round(expansion · D · 2/3), 256), round half to even. */
int hrm_swiglu_inter(int D, double expansion);

#endif /* HRM_NN_H */
