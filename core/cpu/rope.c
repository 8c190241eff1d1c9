/* rope.c — rotary position embedding, half-split (GPT-NeoX / HF-Llama) pairing, fp32.
 *
 * Dim j is paired with j + HD/2 and both rotate by t·inv_freq[j mod HD/2]; the tables are
 * built exactly as the reference builds them (fp32 pow, product and cos/sin). RoPE is applied
 * in place to the Q and K blocks of the fused qkv buffer; V is untouched. The backward is the
 * transposed rotation.
 */
#include <math.h>

#include "ops.h"
#include "scalar.h"

void hrm_cpu_rope_tables(float *cos_t, float *sin_t, int T, int HD, double theta) {
   const int half = HD / 2;
   for (int i = 0; i < half; i++) {
      const float expo = (float)(2 * i) / (float)HD;
      const float inv_freq = 1.0f / powf((float)theta, expo);
      for (int t = 0; t < T; t++) {
         const float f = (float)t * inv_freq;
         const float c = cosf(f), s = sinf(f);
         cos_t[(int64_t)t * HD + i] = c;
         cos_t[(int64_t)t * HD + i + half] = c;
         sin_t[(int64_t)t * HD + i] = s;
         sin_t[(int64_t)t * HD + i + half] = s;
      }
   }
}

/* T rows of one head; `half` is a constant in the common head sizes so each row is a few whole
 * vectors with no loop overhead. */
static inline void rope_rows(float *x, int64_t ld, int T, int half, const float *cos_t,
                             const float *sin_t, float sign) {
   const int HD = 2 * half;
   for (int t = 0; t < T; t++) {
      float *restrict r = x + (int64_t)t * ld;              // (HD)
      const float *restrict c = cos_t + (int64_t)t * HD;    // (HD)
      const float *restrict s = sin_t + (int64_t)t * HD;    // (HD)
#pragma omp simd
      for (int j = 0; j < half; j++) {
         const float x1 = r[j], x2 = r[j + half];
         r[j] = x1 * c[j] - sign * (x2 * s[j]);
         r[j + half] = x2 * c[j + half] + sign * (x1 * s[j + half]);
      }
   }
}

void hrm_cpu_rope_rows(float *x, int64_t ld, int T, int HD, const float *cos_t,
                       const float *sin_t, float sign) {
   if (hrm_cpu_scalar()) {
      hrm_cpu_scalar_rope_rows(x, ld, T, HD, cos_t, sin_t, sign);
      return;
   }
   switch (HD) {
   case 32: rope_rows(x, ld, T, 16, cos_t, sin_t, sign); break;
   case 64: rope_rows(x, ld, T, 32, cos_t, sin_t, sign); break;
   case 128: rope_rows(x, ld, T, 64, cos_t, sin_t, sign); break;
   default: rope_rows(x, ld, T, HD / 2, cos_t, sin_t, sign); break;
   }
}

/* sign = +1: forward rotation; sign = -1: its transpose. Q block and K block of every head. */
static void rope_apply(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                       int HD, float sign) {
   const int D = NH * HD;
#pragma omp parallel for schedule(static) if ((int64_t)B * T * 2 * D >= HRM_OMP_MIN_WORK)
   for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
      const int t = (int)(bt % T);
      for (int blk = 0; blk < 2; blk++)
         for (int h = 0; h < NH; h++)
            hrm_cpu_rope_rows(qkv + bt * 3 * D + (int64_t)blk * D + (int64_t)h * HD, 0, 1, HD,
                              cos_t + (int64_t)t * HD, sin_t + (int64_t)t * HD, sign);
   }
}

void hrm_cpu_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T,
                          int NH, int HD) {
   rope_apply(qkv, cos_t, sin_t, B, T, NH, HD, 1.0f);
}

void hrm_cpu_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T,
                           int NH, int HD) {
   rope_apply(dqkv, cos_t, sin_t, B, T, NH, HD, -1.0f);
}
