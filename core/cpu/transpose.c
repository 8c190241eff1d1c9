/* transpose.c — the batched matrix transpose the token-mixing block (TRM-MLP) works through:
 * its SwiGLU, residual and RMSNorm run over the token axis, on (B, D, T) rows.
 *
 * Pure data movement in 32 x 32 tiles (both sides stay in cache); no arithmetic, so the result
 * is exact. The transpose of a transpose is the identity, so the backward is the same call with
 * the two sizes swapped.
 */
#include "ops.h"

#define TILE 32

void hrm_cpu_transpose_forward(float *out, const float *in, int B, int R, int C) {
   const int64_t tr = (R + TILE - 1) / TILE, tc = (C + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)B * R * C >= HRM_OMP_MIN_WORK)
   for (int b = 0; b < B; b++) {
      for (int64_t t = 0; t < tr * tc; t++) {
         const int r0 = (int)(t / tc) * TILE, c0 = (int)(t % tc) * TILE;
         const int r1 = r0 + TILE < R ? r0 + TILE : R, c1 = c0 + TILE < C ? c0 + TILE : C;
         const float *src = in + (int64_t)b * R * C;   // (R, C)
         float *dst = out + (int64_t)b * R * C;         // (C, R)
         for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++) dst[(int64_t)c * R + r] = src[(int64_t)r * C + c];
      }
   }
}
