/* embedding.c — the input embedding: puzzle prefix, token gather, optional learned positions,
 * all scaled by √D (the scale covers the whole embedding, prefix included).
 *
 * Layout of a row: positions [0, P) hold the puzzle vector (E values, zero-padded to P·D,
 * row-major), positions [P, T) the tokens. The backward scatters into the token table, the
 * per-row prefix gradient (the sparse embedding's local gradient) and the position table.
 */
#include <string.h>

#include "ops.h"

void hrm_cpu_embedding_forward(float *out, const int32_t *inputs, const float *tok,
                               const float *prefix, const float *pos, int B, int S, int P, int D,
                               int E, float scale) {
   const int T = S + P;
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D >= HRM_OMP_MIN_WORK)
   for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
      const int b = (int)(bt / T), t = (int)(bt % T);
      float *o = out + bt * D;  // (D)
      if (t < P) {
         for (int d = 0; d < D; d++) {
            const int j = t * D + d;
            o[d] = (prefix && j < E) ? prefix[(int64_t)b * E + j] : 0.0f;
         }
      } else {
         const float *row = tok + (int64_t)inputs[(int64_t)b * S + (t - P)] * D;
         memcpy(o, row, sizeof(float) * (size_t)D);
      }
      if (pos) {
         const float *p = pos + (int64_t)t * D;
         for (int d = 0; d < D; d++) o[d] = HRM_POS_SCALE * (o[d] + p[d]);
      }
      for (int d = 0; d < D; d++) o[d] = scale * o[d];
   }
}

void hrm_cpu_embedding_backward(float *dtok, float *dprefix, float *dpos, const float *dout,
                                const int32_t *inputs, int B, int S, int P, int D, int E,
                                float scale, int learned) {
   const int T = S + P;
   /* parallel over hidden columns: every thread owns its columns of every table, no races */
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D >= HRM_OMP_MIN_WORK)
   for (int d = 0; d < D; d++) {
      for (int b = 0; b < B; b++) {
         for (int t = 0; t < T; t++) {
            float g = scale * dout[((int64_t)b * T + t) * D + d];
            if (learned) {
               g = HRM_POS_SCALE * g;
               if (dpos) dpos[(int64_t)t * D + d] += g;
            }
            if (t < P) {
               const int j = t * D + d;
               if (dprefix && j < E) dprefix[(int64_t)b * E + j] += g;
            } else {
               dtok[(int64_t)inputs[(int64_t)b * S + (t - P)] * D + d] += g;
            }
         }
      }
   }
}
