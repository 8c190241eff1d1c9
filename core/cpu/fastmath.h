/* fastmath.h — vectorisable expf and atan2f for the CPU kernels' elementwise loops.
 *
 * libm's expf and atan2f are scalar calls that block vectorisation of the SwiGLU, softmax and
 * optimizer loops. These are branch-free (selects only), so GCC vectorises the loops they sit
 * in. hrm_expf: Cody-Waite range reduction, a degree-6 polynomial, exponent bits built with
 * integer ops; relative error below 2e-7 over the clamped range [-87.3, 88.7]; it never returns
 * Inf or NaN for finite input. hrm_atan2f: octant reduction to |u| <= tan(pi/8) and Cephes'
 * atanf polynomial; relative error below 2.5e-7 against libm, atan2(0, 0) = 0, NaN in gives
 * NaN out. hrm_expf16 (AVX-512 builds) is hrm_expf on a whole vector, for loops written with
 * intrinsics.
 */
#ifndef HRM_CPU_FASTMATH_H
#define HRM_CPU_FASTMATH_H

#include <stdint.h>

static inline float hrm_expf(float x) {
   x = x < -87.3f ? -87.3f : x; /* written so that NaN passes through */
   x = x > 88.7f ? 88.7f : x;
   const float shifter = 12582912.0f; /* 1.5 * 2^23: rounds to the nearest integer */
   float k = (x * 1.44269504088896341f + shifter) - shifter;
   float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
   float p = 1.0f / 720.0f;
   p = p * r + 1.0f / 120.0f;
   p = p * r + 1.0f / 24.0f;
   p = p * r + 1.0f / 6.0f;
   p = p * r + 0.5f;
   p = p * r + 1.0f;
   p = p * r + 1.0f;
   k = k == k ? k : 0.0f; /* NaN: r (hence p) already carries it; keep the int cast defined */
   union { uint32_t i; float f; } scale = {(uint32_t)((int32_t)k + 127) << 23};
   return p * scale.f;
}

#if defined(__AVX512F__)
#include <immintrin.h>

/* hrm_expf on 16 lanes, the same steps (2^k applied by vscalefps). */
static inline __m512 hrm_expf16(__m512 x) {
   /* vmaxps/vminps return their second operand when one is NaN: so NaN passes through */
   x = _mm512_min_ps(_mm512_set1_ps(88.7f), _mm512_max_ps(_mm512_set1_ps(-87.3f), x));
   const __m512 shifter = _mm512_set1_ps(12582912.0f);
   const __m512 k =
      _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter), shifter);
   __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
   r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428606765330187e-06f), r);
   __m512 p = _mm512_set1_ps(1.0f / 720.0f);
   p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
   p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
   p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
   p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
   p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
   p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
   return _mm512_scalef_ps(p, k);
}
#endif

/* atan2(y, x) for finite or NaN arguments (the optimizer's use: x >= 0). */
static inline float hrm_atan2f(float y, float x) {
   const float ax = x < 0.0f ? -x : x, ay = y < 0.0f ? -y : y;
   const int swap = ay > ax;                      /* octant: work with the ratio <= 1 */
   const float num = swap ? ax : ay, den = swap ? ay : ax;
   const float t = den > 0.0f ? num / den : num;  /* 0/0 -> 0; NaN stays NaN */
   const int big = t > 0.41421356237f;            /* tan(pi/8): shift by pi/4 */
   const float u = big ? (t - 1.0f) / (t + 1.0f) : t;
   const float z = u * u;
   float p = 8.05374449538e-2f;
   p = p * z - 1.38776856032e-1f;
   p = p * z + 1.99777106478e-1f;
   p = p * z - 3.33329491539e-1f;
   float r = p * z * u + u;
   r = big ? r + 0.78539816340f : r;
   r = swap ? 1.57079632679f - r : r;
   r = x < 0.0f ? 3.14159265359f - r : r;
   return y < 0.0f ? -r : r;
}

#endif
