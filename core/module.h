/* module.h — private layout of a module and the taped forward/backward the tape drives.
 *
 * module.c implements every kind; tape.c records calls and replays them through the two
 * functions below. Inputs handed to them carry stable data (the tape copies what a backward
 * reads unless it is a call output of the same tape).
 */
#ifndef HRM_MODULE_H
#define HRM_MODULE_H

#include <stddef.h>

#include "nn.h"

struct hrm_module {
   int32_t kind;                   // enum hrm_module_kind
   int32_t refs;
   hrm_params *store;
   char name[96];
   /* parameter indices in the store (-1: none) */
   int32_t w, b;                   // embedding table / linear weight; linear bias
   int32_t qkv, o, gate_up, down;  // block
   int32_t tgu, tdown;             // block with mlp_t: the token SwiGLU's gate_up and down
   /* embedding (rows, dim); linear (in -> out) over tokens [first, first + count), 0: all */
   int32_t rows, dim;
   int32_t in, out, first, count;
   /* block */
   hrm_block_config bc;
   int32_t I, HD, A;               // SwiGLU width, head dim, attention width NH·HD
   int32_t IT;                     // mlp_t: the token SwiGLU's width (from T)
   float *rope_cos, *rope_sin;     // (T, HD), NULL without RoPE
   /* reasoning */
   int32_t nblocks;
   hrm_module **blocks;
   /* input embedding */
   hrm_module *tokens, *positions, *puzzle;
   int32_t prefix;
   double scale;
};

/* Floats a taped call saves for these inputs (activations and output; 64-byte slices). */
size_t hrm_module_saved_floats(const hrm_module *m, int32_t n, const hrm_tensor *const *in);
/* 1 when the backward reads input i itself (so the tape must keep it unchanged). */
int hrm_module_reads_input(const hrm_module *m, int32_t i);
/* Forward keeping activations in `saved`; *out points at the output inside it. */
int hrm_module_forward_saved(hrm_module *m, int32_t n, const hrm_tensor *const *in, float *saved,
                             float **out);
/* Backward of a taped call from dout (read only): parameter gradients +=, and for each input i
 * with dins[i] != NULL its gradient written (accumulate[i] == 0) or added (1). */
int hrm_module_backward(hrm_module *m, int32_t n, const hrm_tensor *const *in, float *saved,
                        const float *dout, float *const *dins, const int *accumulate);

#endif /* HRM_MODULE_H */
