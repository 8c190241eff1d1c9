/* rmsnorm.c — the reference's gain-free rms_norm: y = x · rsqrt(mean(x²) + eps), fp32.
 *
 * The forward keeps rstd (one float per row) for the backward, which needs only y and rstd:
 * dx = rstd · (dy − y · mean(dy · y)). Sums of squares accumulate in double (vectorised).
 * add_rmsnorm fuses the post-norm block's residual add: y = rms_norm(a + b) in one pass, the
 * sum rounded to fp32 first exactly as the separate residual_forward would store it.
 */
#include <math.h>

#include "ops.h"
#include "scalar.h"

void hrm_cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, int64_t N, int D,
                             float eps) {
   if (hrm_cpu_scalar()) {
      for (int64_t n = 0; n < N; n++) {
         const float r = hrm_cpu_scalar_rmsnorm_row(out + n * D, inp + n * D, NULL, D, eps);
         if (rstd) rstd[n] = r;
      }
      return;
   }
#pragma omp parallel for schedule(static) if (N * D >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const float *restrict x = inp + n * D;  // (D)
      float *y = out + n * D;                 // (D) may alias inp
      double ss = 0.0;
#pragma omp simd reduction(+ : ss)
      for (int d = 0; d < D; d++) ss += (double)x[d] * x[d];
      const float r = 1.0f / sqrtf((float)(ss / D) + eps);
#pragma omp simd
      for (int d = 0; d < D; d++) y[d] = x[d] * r;
      if (rstd) rstd[n] = r;
   }
}

void hrm_cpu_add_rmsnorm_forward(float *out, float *rstd, const float *a, const float *b,
                                 int64_t N, int D, float eps) {
   if (hrm_cpu_scalar()) {
      for (int64_t n = 0; n < N; n++) {
         const float r = hrm_cpu_scalar_rmsnorm_row(out + n * D, a + n * D, b + n * D, D, eps);
         if (rstd) rstd[n] = r;
      }
      return;
   }
#pragma omp parallel for schedule(static) if (N * D >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const float *x1 = a + n * D;  // (D)
      const float *x2 = b + n * D;  // (D)
      float *y = out + n * D;                // (D) may alias a or b
      double ss = 0.0;
#pragma omp simd reduction(+ : ss)
      for (int d = 0; d < D; d++) {
         const float x = x1[d] + x2[d];
         ss += (double)x * x;
      }
      const float r = 1.0f / sqrtf((float)(ss / D) + eps);
#pragma omp simd
      for (int d = 0; d < D; d++) y[d] = (x1[d] + x2[d]) * r;
      if (rstd) rstd[n] = r;
   }
}

void hrm_cpu_rmsnorm_backward(float *dinp, const float *dout, const float *out,
                              const float *rstd, int64_t N, int D) {
   if (hrm_cpu_scalar()) {
      for (int64_t n = 0; n < N; n++)
         hrm_cpu_scalar_rmsnorm_row_backward(dinp + n * D, dout + n * D, out + n * D, rstd[n], D);
      return;
   }
#pragma omp parallel for schedule(static) if (N * D >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const float *dy = dout + n * D;  // (D)
      const float *y = out + n * D;    // (D)
      float *dx = dinp + n * D;        // (D)
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int d = 0; d < D; d++) dot += (double)dy[d] * y[d];
      const float mean = (float)(dot / D), r = rstd[n];
#pragma omp simd
      for (int d = 0; d < D; d++) dx[d] = r * (dy[d] - y[d] * mean);
   }
}
