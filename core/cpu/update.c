/* update.c — optimizer update kernels: AdamATan2, AdamW and the puzzle table's sign-SGD.
 *
 * The Adam kernels take the per-step scalars already computed in double by optim.c (decay
 * factor, bias corrections) and do fp32 element math as the fused CUDA kernel / PyTorch do.
 * AdamATan2's atan2 is the vectorisable hrm_atan2f (fastmath.h). Sign-SGD touches only the table
 * rows named in the batch; duplicate ids are summed first and sign(0) = 0.
 */
#include <math.h>

#include "fastmath.h"
#include "ops.h"

void hrm_cpu_adam_atan2_update(float *p, float *m, float *v, const float *g, int64_t n, float lr,
                               float wd_alpha, float mbeta1, float mbeta2, float bc1_rcp,
                               float bc2_sqrt) {
#pragma omp parallel for schedule(static) if (n >= HRM_OMP_MIN_WORK)
   for (int64_t i = 0; i < n; i++) {
      float param = p[i] * wd_alpha;
      const float grad = g[i];
      const float mi = fmaf(mbeta1, grad, fmaf(-mbeta1, m[i], m[i]));
      const float vi = fmaf(mbeta2, grad * grad, fmaf(-mbeta2, v[i], v[i]));
      const float denom = sqrtf(vi) / bc2_sqrt;
      param -= lr * hrm_atan2f(bc1_rcp * mi, denom);
      p[i] = param;
      m[i] = mi;
      v[i] = vi;
   }
}

void hrm_cpu_adamw_update(float *p, float *m, float *v, const float *g, int64_t n,
                          float step_size, float wd_alpha, float mbeta1, float beta2,
                          float bc2_sqrt, float eps) {
#pragma omp parallel for schedule(static) if (n >= HRM_OMP_MIN_WORK)
   for (int64_t i = 0; i < n; i++) {
      const float grad = g[i];
      const float param = p[i] * wd_alpha;
      const float mi = m[i] + mbeta1 * (grad - m[i]);
      const float vi = v[i] * beta2 + (1.0f - beta2) * grad * grad;
      const float denom = sqrtf(vi) / bc2_sqrt + eps;
      p[i] = param - step_size * (mi / denom);
      m[i] = mi;
      v[i] = vi;
   }
}

void hrm_cpu_signsgd_update(float *table, const float *grad, const int32_t *ids, int64_t U, int E,
                            float lr, float wd) {
   enum { CHUNK = 256 };
   const float decay = (float)(1.0 - (double)lr * (double)wd);
#pragma omp parallel for schedule(dynamic, 4) if (U * E >= HRM_OMP_MIN_WORK)
   for (int64_t u = 0; u < U; u++) {
      int first = 1;
      for (int64_t k = 0; k < u; k++)
         if (ids[k] == ids[u]) { first = 0; break; }
      if (!first) continue;
      float *w = table + (int64_t)ids[u] * E;  // (E)
      for (int d0 = 0; d0 < E; d0 += CHUNK) {
         const int len = E - d0 < CHUNK ? E - d0 : CHUNK;
         float acc[CHUNK] = {0};
         for (int64_t k = u; k < U; k++) {
            if (ids[k] != ids[u]) continue;
            const float *gk = grad + k * E + d0;
            for (int d = 0; d < len; d++) acc[d] += gk[d];
         }
         for (int d = 0; d < len; d++) {
            const float s = acc[d] > 0.0f ? 1.0f : (acc[d] < 0.0f ? -1.0f : 0.0f);
            w[d0 + d] = w[d0 + d] * decay + (-lr) * s;
         }
      }
   }
}
