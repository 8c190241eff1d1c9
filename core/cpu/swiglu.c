/* swiglu.c — the SwiGLU activation silu(gate) · up over gate_up (N, 2I) = [gate | up], and the
 * plain residual add used around every sublayer.
 *
 * silu(x) = x / (1 + e^−x) as PyTorch computes it; its derivative is σ(x)(1 + x(1 − σ(x))).
 */
#include <math.h>

#include "fastmath.h"
#include "ops.h"
#include "scalar.h"

/* One row: o = silu(g) * u, (I) each. With AVX-512 the division becomes a reciprocal estimate
 * refined by one Newton step (within 1 ulp; vdivps alone was the row's bottleneck, 1.07 ->
 * 0.73 ms for the small config's 5248 x 512 on 2 threads); the rest of the row, or every
 * element elsewhere, is the plain loop. */
static void swiglu_row(float *restrict o, const float *restrict g, const float *restrict u, int I) {
   int i = 0;
#if defined(__AVX512F__)
   const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
   for (; i + 16 <= I; i += 16) {
      const __m512 x = _mm512_loadu_ps(g + i);
      const __m512 d = _mm512_add_ps(one, hrm_expf16(_mm512_sub_ps(_mm512_setzero_ps(), x)));
      __m512 r = _mm512_rcp14_ps(d);                       // 1/d to 14 bits
      r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, two));    // r (2 - d r): to ~28 bits
      _mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_mul_ps(x, r), _mm512_loadu_ps(u + i)));
   }
#endif
   for (; i < I; i++) o[i] = (g[i] / (1.0f + hrm_expf(-g[i]))) * u[i];
}

void hrm_cpu_swiglu_forward(float *out, const float *gu, int64_t N, int I) {
   const int scalar = hrm_cpu_scalar();
#pragma omp parallel for schedule(static) if (N * I >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const float *g = gu + n * 2 * I;  // (I) gate
      if (scalar) hrm_cpu_scalar_swiglu_row(out + n * I, g, g + I, I);
      else swiglu_row(out + n * I, g, g + I, I);
   }
}

static void swiglu_row_backward(float *restrict dg, float *restrict du, const float *restrict dy,
                                const float *restrict g, const float *restrict u, int I) {
   for (int i = 0; i < I; i++) {
      const float sig = 1.0f / (1.0f + hrm_expf(-g[i]));
      const float silu = g[i] * sig;
      du[i] = dy[i] * silu;
      dg[i] = dy[i] * u[i] * (sig * (1.0f + g[i] * (1.0f - sig)));
   }
}

void hrm_cpu_swiglu_backward(float *dgu, const float *dout, const float *gu, int64_t N, int I) {
   const int scalar = hrm_cpu_scalar();
#pragma omp parallel for schedule(static) if (N * I >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const float *g = gu + n * 2 * I;  // (I) gate, then (I) up
      float *dg = dgu + n * 2 * I;      // (I) d gate, then (I) d up
      if (scalar) hrm_cpu_scalar_swiglu_row_backward(dg, dg + I, dout + n * I, g, g + I, I);
      else swiglu_row_backward(dg, dg + I, dout + n * I, g, g + I, I);
   }
}

void hrm_cpu_residual_forward(float *out, const float *a, const float *b, int64_t n) {
   if (hrm_cpu_scalar()) {
      hrm_cpu_scalar_residual(out, a, b, n);
      return;
   }
#pragma omp parallel for schedule(static) if (n >= HRM_OMP_MIN_WORK)
   for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
