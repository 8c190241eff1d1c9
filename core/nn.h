/* nn.h — internal layer interface of the model: shape legend, CPU layers, the backend table.
 *
 * Layers are llm.c-style functions over flat float arrays, outputs first, each `_forward` with
 * its `_backward` beside it. Parameter gradients accumulate (+=); activation gradients are
 * written (=) unless an argument says otherwise. Nothing here allocates, fails or touches the
 * public objects; model.c owns memory and validation. Also holds the private layouts of
 * hrm_model, hrm_carry and hrm_optim, shared by model.c, carry.c and optim.c.
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
   /* Optional fused entries; where one is NULL, model.c calls the separate ops above. */
   void (*add_rmsnorm_forward)(float *, float *, const float *, const float *, int64_t, int,
                               float);
   void (*rope_attention_forward)(float *, float *, float *, const float *, const float *, int,
                                  int, int, int);
   void (*rope_attention_backward)(float *, float *, const float *, const float *,
                                   const float *, const float *, const float *, int, int, int,
                                   int);
} hrm_backend;

extern const hrm_backend hrm_cpu_backend;

/* ---- private object layouts (model.c, carry.c, optim.c) ----------------------------------- */

/* Activations of one post-norm block; the 1-step-gradient segment keeps one per layer, the
 * no-grad cycles reuse a single record. */
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
} hrm_block_acts;

/* Named views of one block's weights (PyTorch [out, in]). */
typedef struct hrm_block_params {
   float *qkv;      // (3D, D)
   float *o;        // (D, D)
   float *gate_up;  // (2I, D)
   float *down;     // (D, I)
} hrm_block_params;

typedef struct hrm_named {
   char name[96];
   hrm_tensor *value;  // owned view (parameters: into the flat block)
   hrm_tensor *grad;   // owned view into the gradient block, NULL for buffers
   int32_t is_param;
} hrm_named;

/* The step's working memory, sized for `cap` rows; the train part only once training runs. */
typedef struct hrm_arena {
   int32_t cap, has_train;
   float *base;
   size_t floats;
   /* inputs of the rows being computed (compacted when an active mask is given) */
   int32_t *rows;       // (B) carry row of each computed row
   int32_t *inputs;     // (B, S)
   int32_t *labels;     // (B, S)
   int32_t *pids;       // (B)
   int32_t *pred;       // (B, S) argmax
   int32_t *new_steps;  // (B) steps after this segment
   uint8_t *new_halted; // (B) halted after this segment
   double *tok_loss;    // (B, S)
   double *tok_w;       // (B, S) loss weights for the backward
   double *row_w;       // (B) BCE weights
   double *bce;         // (B)
   float *x;            // (B, T, D) input embedding
   float *prefix;       // (B, E) puzzle rows of the batch
   float *zH, *zL;      // (B, T, D) working carry
   float *inj;          // (B, T, D) input injection / block input
   float *tmp;          // (B, T, D) sublayer output
   hrm_block_acts scratch;  // one record reused by every no-grad block
   float *logits_full;  // (B, T, V)
   float *logits;       // (B, S, V) task positions only
   float *q;            // (B, 2)
   float *qh, *qc;      // (B) q_halt, q_continue
   float *q_next;       // (B, 2) target-Q forward
   float *target;       // (B) target_q_continue
   float *seq_ok;       // (B) seq_is_correct as 0/1
   /* training only */
   hrm_block_acts *saved;   // (L_layers + H_layers) records of the gradient segment
   float *in_L, *in_H;      // (B, T, D) module inputs of the gradient calls
   float *dlogits_full;     // (B, T, V)
   float *dlogits;          // (B, S, V)
   float *dq;               // (B, 2)
   float *dqs;              // (2, B) q_halt then q_continue gradients
   float *dh, *dh2;         // (B, T, D)
   float *dqkv;             // (B, T, 3D)
   float *dgu;              // (B, T, 2I)
   float *dact;             // (B, T, I)
   float *datt;             // (B, NH, T, T)
} hrm_arena;

struct hrm_model {
   hrm_config cfg;
   int32_t device;
   const hrm_backend *be;
   int P, T, I, HD, E;
   int64_t num_params;
   hrm_tensor *params;     // (num_params) flat parameter block
   hrm_tensor *grads;      // (num_params) flat gradient block
   hrm_tensor *puzzle;     // (num_puzzle_identifiers, E) sparse embedding buffer, or NULL
   hrm_tensor *H_init;     // (D)
   hrm_tensor *L_init;     // (D)
   float *w_tok, *w_lm, *w_q, *b_q, *w_pos;      // (V, D) (V, D) (2, D) (2) (T, D)
   float *g_tok, *g_lm, *g_q, *gb_q, *g_pos;
   hrm_block_params *Hp, *Lp, *Hg, *Lg;          // H_layers / L_layers entries
   int32_t ntensors;
   hrm_named *tensors;
   float *rope_cos, *rope_sin;  // (T, HD)
   hrm_rng rng;
   /* puzzle-prefix gradient of the last training step(s), consumed by sign-SGD */
   float *pgrad;           // (pcap, E)
   int32_t *pgrad_ids;     // (pcap)
   int32_t pgrad_rows, pcap;
   hrm_arena arena;
};

struct hrm_carry {
   int32_t B, T, D, S;
   hrm_tensor *z_H, *z_L;              // (B, T, D) f32
   hrm_tensor *steps;                  // (B) i32
   hrm_tensor *halted;                 // (B) u8
   hrm_tensor *inputs, *labels;        // (B, S) i32
   hrm_tensor *puzzle_ids;             // (B) i32
};

struct hrm_optim {
   hrm_optim_config cfg;
   hrm_model *model;
   hrm_tensor *m, *v;   // (num_params) f32
   hrm_tensor *t;       // (1) f64 step count
};

/* SwiGLU inner width: roundup(round(expansion · D · 2/3), 256), round half to even. */
int hrm_swiglu_inter(int D, double expansion);

#endif /* HRM_NN_H */
