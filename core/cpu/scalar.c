/* scalar.c — plain scalar twins of the vectorised kernels' rows (see scalar.h).
 *
 * Built with -fno-tree-vectorize (CMakeLists.txt) and without simd pragmas: every loop here is
 * one element per iteration, in index order. The formulas are the kernels' own (hrm_expf, double
 * sums of squares, silu as x / (1 + e^-x)), so the two paths agree to rounding; what differs is
 * only the order of the sums and the SIMD reciprocal in SwiGLU.
 */
#include "scalar.h"

#include <math.h>
#include <stdlib.h>

#include "fastmath.h"

static int scalar_mode = -1;  // -1: not read yet

int hrm_cpu_scalar(void) {
   if (scalar_mode < 0) {
      const char *env = getenv("HRM_SCALAR");
      scalar_mode = env && *env && *env != '0';
   }
   return scalar_mode;
}

void hrm_cpu_set_scalar(int on) { scalar_mode = on != 0; }

void hrm_cpu_scalar_softmax_row(float *row, int T) {
   float mx = row[0];
   for (int j = 1; j < T; j++) mx = row[j] > mx ? row[j] : mx;
   float sum = 0.0f;
   for (int j = 0; j < T; j++) {
      row[j] = hrm_expf(row[j] - mx);
      sum += row[j];
   }
   const float inv = 1.0f / sum;
   for (int j = 0; j < T; j++) row[j] *= inv;
}

void hrm_cpu_scalar_softmax_row_backward(float *dp, const float *p, int T) {
   float dot = 0.0f;
   for (int j = 0; j < T; j++) dot += p[j] * dp[j];
   for (int j = 0; j < T; j++) dp[j] = p[j] * (dp[j] - dot);
}

void hrm_cpu_scalar_rope_rows(float *x, int64_t ld, int T, int HD, const float *cos_t,
                              const float *sin_t, float sign) {
   const int half = HD / 2;
   for (int t = 0; t < T; t++) {
      float *r = x + (int64_t)t * ld;            // (HD)
      const float *c = cos_t + (int64_t)t * HD;  // (HD)
      const float *s = sin_t + (int64_t)t * HD;  // (HD)
      for (int j = 0; j < half; j++) {
         const float x1 = r[j], x2 = r[j + half];
         r[j] = x1 * c[j] - sign * (x2 * s[j]);
         r[j + half] = x2 * c[j + half] + sign * (x1 * s[j + half]);
      }
   }
}

void hrm_cpu_scalar_swiglu_row(float *o, const float *g, const float *u, int I) {
   for (int i = 0; i < I; i++) o[i] = (g[i] / (1.0f + hrm_expf(-g[i]))) * u[i];
}

void hrm_cpu_scalar_swiglu_row_backward(float *dg, float *du, const float *dy, const float *g,
                                        const float *u, int I) {
   for (int i = 0; i < I; i++) {
      const float sig = 1.0f / (1.0f + hrm_expf(-g[i]));
      const float silu = g[i] * sig;
      const float gi = g[i], ui = u[i], dyi = dy[i];
      du[i] = dyi * silu;
      dg[i] = dyi * ui * (sig * (1.0f + gi * (1.0f - sig)));
   }
}

float hrm_cpu_scalar_rmsnorm_row(float *y, const float *a, const float *b, int D, float eps) {
   double ss = 0.0;
   for (int d = 0; d < D; d++) {
      const float x = b ? a[d] + b[d] : a[d];
      ss += (double)x * x;
   }
   const float r = 1.0f / sqrtf((float)(ss / D) + eps);
   for (int d = 0; d < D; d++) y[d] = (b ? a[d] + b[d] : a[d]) * r;
   return r;
}

void hrm_cpu_scalar_rmsnorm_row_backward(float *dx, const float *dy, const float *y, float rstd,
                                         int D) {
   double dot = 0.0;
   for (int d = 0; d < D; d++) dot += (double)dy[d] * y[d];
   const float mean = (float)(dot / D);
   for (int d = 0; d < D; d++) dx[d] = rstd * (dy[d] - y[d] * mean);
}

void hrm_cpu_scalar_residual(float *out, const float *a, const float *b, int64_t n) {
   for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
