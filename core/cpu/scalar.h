/* scalar.h — the scalar reference mode of the vectorised CPU kernels.
 *
 * Every kernel written with AVX-512 intrinsics or `omp simd` loops (softmax rows, RoPE rows,
 * SwiGLU, residual + RMSNorm) has a plain per-row twin here, compiled without vectorisation
 * (core/cpu/scalar.c, -fno-tree-vectorize, no simd pragmas): the same formulas, one element at
 * a time, no masks, no tails. With the mode on (HRM_SCALAR=1 in the environment, or
 * hrm_cpu_set_scalar(1)) the kernels run these rows instead (GEMMs unchanged), so a whole run
 * can be repeated without any vectorised code of hrm's own. spec/c/test_simd.c checks the two
 * paths against each other at every length that occurs.
 */
#ifndef HRM_CPU_SCALAR_H
#define HRM_CPU_SCALAR_H

#include <stdint.h>

/* 1 when the kernels run their scalar twins (first call reads HRM_SCALAR). */
int hrm_cpu_scalar(void);
void hrm_cpu_set_scalar(int on);

/* row (T) = softmax(row), in place. */
void hrm_cpu_scalar_softmax_row(float *row, int T);
/* dp (T) = p ⊙ (dp − Σ p·dp), in place. */
void hrm_cpu_scalar_softmax_row_backward(float *dp, const float *p, int T);
/* T rows (HD) at stride ld rotated by the (T, HD) tables; sign -1 is the transpose. */
void hrm_cpu_scalar_rope_rows(float *x, int64_t ld, int T, int HD, const float *cos_t,
                              const float *sin_t, float sign);
/* o (I) = silu(g) · u. */
void hrm_cpu_scalar_swiglu_row(float *o, const float *g, const float *u, int I);
/* dg, du (I) from dy (I) and the forward's g, u (I). */
void hrm_cpu_scalar_swiglu_row_backward(float *dg, float *du, const float *dy, const float *g,
                                        const float *u, int I);
/* y (D) = rms_norm(a + b) (b may be NULL); returns rstd. y may alias a or b. */
float hrm_cpu_scalar_rmsnorm_row(float *y, const float *a, const float *b, int D, float eps);
/* dx (D) = rstd · (dy − y · mean(dy · y)); dx may alias dy. */
void hrm_cpu_scalar_rmsnorm_row_backward(float *dx, const float *dy, const float *y, float rstd,
                                         int D);
/* out (n) = a + b. */
void hrm_cpu_scalar_residual(float *out, const float *a, const float *b, int64_t n);

#endif
