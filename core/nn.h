/* nn.h — private layouts of the model path: block activations, the parameter store and the
 * optimizer, shared by params.c, module.c, tape.c, act.c and optim.c.
 *
 * Everything here is host-side bookkeeping; the memory the pointers name lives on the store's
 * device and is touched only through its backend table (backend.h). Backends never include this.
 */
#ifndef HRM_NN_H
#define HRM_NN_H

#include <stdint.h>

#include "backend.h"
#include "hrm.h"

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
   int32_t precision;          // HRM_DTYPE_F32, or BF16 while a bf16 model's calls run
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
