/* rmsnorm.c — the reference's gain-free rms_norm: y = x · rsqrt(mean(x²) + eps), fp32.
 *
 * The forward keeps rstd (one float per row) for the backward, which needs only y and rstd:
 * dx = rstd · (dy − y · mean(dy · y)). Sums of squares accumulate in double.
 */
#include <math.h>

#include "../nn.h"

void hrm_cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, int64_t N, int D,
                             float eps) {
#pragma omp parallel for schedule(static)
   for (int64_t n = 0; n < N; n++) {
      const float *x = inp + n * D;  // (D)
      float *y = out + n * D;        // (D)
      double ss = 0.0;
      for (int d = 0; d < D; d++) ss += (double)x[d] * x[d];
      const float var = (float)(ss / D);
      const float r = 1.0f / sqrtf(var + eps);
      for (int d = 0; d < D; d++) y[d] = x[d] * r;
      if (rstd) rstd[n] = r;
   }
}

void hrm_cpu_rmsnorm_backward(float *dinp, const float *dout, const float *out,
                              const float *rstd, int64_t N, int D) {
#pragma omp parallel for schedule(static)
   for (int64_t n = 0; n < N; n++) {
      const float *dy = dout + n * D;  // (D)
      const float *y = out + n * D;    // (D)
      float *dx = dinp + n * D;        // (D)
      double dot = 0.0;
      for (int d = 0; d < D; d++) dot += (double)dy[d] * y[d];
      const float mean = (float)(dot / D), r = rstd[n];
      for (int d = 0; d < D; d++) dx[d] = r * (dy[d] - y[d] * mean);
   }
}
