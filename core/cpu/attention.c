/* attention.c — non-causal full softmax attention over the fused qkv projection.
 *
 * qkv (B, T, 3D) holds [Q | K | V], each block head-major (head h at channels h·HD…); the
 * output (B, T, D) is head-major too, ready for o_proj. Scale 1/√HD, no mask, no dropout:
 * every position (puzzle prefix included) attends to all T. Each (b, h) pair is two GEMMs on
 * strided views around a vectorised row softmax; the pairs run in parallel and the GEMM library
 * runs single-threaded inside. The probabilities are kept for the backward. The rope_ variants
 * apply RoPE to the head's Q and K (and its transpose to dQ, dK) inside the same pass. In the
 * scalar reference mode (scalar.h) the softmax rows are the plain scalar twins. With bf16 GEMMs
 * (a bf16 model's step) the forward's two products take bf16 operands (attention_bf16.c), as
 * FlashAttention in the reference's bf16 forward; the backward stays fp32. An untaped call
 * (hrm_cpu_attention_infer) keeps no probabilities: each thread forms one head's in its own
 * buffer (fp32) or four rows at a time (bf16).
 */
#include <math.h>
#include <stdlib.h>

#include "../hrm.h"
#include "fastmath.h"
#include "ops.h"
#include "gemm.h"
#include "scalar.h"

/* row (T) = softmax(row), in place; the reductions vectorise (float partial sums). */
static void softmax_row(float *restrict row, int T) {
   float mx = row[0];
#pragma omp simd reduction(max : mx)
   for (int j = 0; j < T; j++) mx = row[j] > mx ? row[j] : mx;
   float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
   for (int j = 0; j < T; j++) {
      const float e = hrm_expf(row[j] - mx);
      row[j] = e;
      sum += e;
   }
   const float inv = 1.0f / sum;
#pragma omp simd
   for (int j = 0; j < T; j++) row[j] *= inv;
}

/* a (rows, T) = softmax of each row, in place. Alone, a short row is one chain of dependent
 * steps (max, its reduction, exp, the sum's reduction, the reciprocal); with AVX-512 four rows go
 * through each step together, whole vectors plus one masked vector for the last T mod 16
 * columns (for T = 82: 2.8x faster than row by row). */
static void softmax_rows(float *a, int T, int rows, int scalar) {
   int i = 0;
   if (scalar) {
      for (; i < rows; i++) hrm_cpu_scalar_softmax_row(a + (int64_t)i * T, T);
      return;
   }
#if defined(__AVX512F__)
   enum { G = 4 };
   const int full = T / 16 * 16;
   const __mmask16 tail = (__mmask16)((1u << (T - full)) - 1u);
   const __m512 ninf = _mm512_set1_ps(-INFINITY);
   for (; i + G <= rows; i += G) {
      float *r[G];
      __m512 m[G], s[G], et[G];  // (16) each: lane maxima, lane sums, the tail's exponentials
      for (int g = 0; g < G; g++) {
         r[g] = a + (int64_t)(i + g) * T;
         m[g] = _mm512_mask_loadu_ps(ninf, tail, r[g] + full);
      }
      for (int j = 0; j < full; j += 16)
         for (int g = 0; g < G; g++) m[g] = _mm512_max_ps(m[g], _mm512_loadu_ps(r[g] + j));
      for (int g = 0; g < G; g++) {
         m[g] = _mm512_set1_ps(_mm512_reduce_max_ps(m[g]));
         s[g] = _mm512_setzero_ps();
      }
      for (int j = 0; j < full; j += 16)
         for (int g = 0; g < G; g++) {
            const __m512 e = hrm_expf16(_mm512_sub_ps(_mm512_loadu_ps(r[g] + j), m[g]));
            _mm512_storeu_ps(r[g] + j, e);
            s[g] = _mm512_add_ps(s[g], e);
         }
      for (int g = 0; g < G; g++) {
         const __m512 x = _mm512_maskz_loadu_ps(tail, r[g] + full);
         et[g] = _mm512_maskz_mov_ps(tail, hrm_expf16(_mm512_sub_ps(x, m[g])));
         s[g] = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s[g], et[g])));
      }
      for (int j = 0; j < full; j += 16)
         for (int g = 0; g < G; g++)
            _mm512_storeu_ps(r[g] + j, _mm512_mul_ps(_mm512_loadu_ps(r[g] + j), s[g]));
      for (int g = 0; g < G; g++)
         _mm512_mask_storeu_ps(r[g] + full, tail, _mm512_mul_ps(et[g], s[g]));
   }
#endif
   for (; i < rows; i++) softmax_row(a + (int64_t)i * T, T);
}

/* dp (T) = p ⊙ (dp − Σ_j p_j dp_j), in place: the softmax backward of one row. */
static void softmax_row_backward(float *restrict dp, const float *restrict p, int T) {
   float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
   for (int j = 0; j < T; j++) dot += p[j] * dp[j];
#pragma omp simd
   for (int j = 0; j < T; j++) dp[j] = p[j] * (dp[j] - dot);
}

static void softmax_rows_vector(float *a, int T, int rows) { softmax_rows(a, T, rows, 0); }

/* A thread's (T, T) probabilities of an untaped call: grown on first use and kept, so that
 * later calls allocate nothing; NULL when out of memory. */
static float *thread_probs(int T) {
   static _Thread_local float *buf;
   static _Thread_local size_t cap;
   const size_t n = (size_t)T * (size_t)T;
   if (cap < n) {
      float *p = realloc(buf, sizeof(float) * n);
      if (!p) return NULL;
      buf = p;
      cap = n;
   }
   return buf;
}

/* One (b, h) pair: a (T, T) = softmax(scale · q kᵀ), o (T, HD) stride D = a · v. With a NULL the
 * probabilities are not kept (the bf16 head never forms them whole, the fp32 one forms them in
 * the thread's buffer). */
static void head_forward(float *o, float *a, const float *q, const float *k, const float *v,
                         int T, int HD, int D, float scale, int scalar) {
   if (!scalar && hrm_cpu_gemm_dtype() == HRM_DTYPE_BF16 &&
       hrm_cpu_head_bf16(o, a, q, k, v, T, HD, D, scale, softmax_rows_vector))
      return;
   if (!a && !(a = thread_probs(T))) { /* out of memory: a NaN output, found by the loss checks */
      for (int i = 0; i < T; i++)
         for (int d = 0; d < HD; d++) o[(int64_t)i * D + d] = NAN;
      return;
   }
   hrm_cpu_sgemm(0, 1, T, T, HD, scale, q, 3 * D, k, 3 * D, 0.0f, a, T);
   softmax_rows(a, T, T, scalar);
   hrm_cpu_sgemm(0, 0, T, HD, T, 1.0f, a, T, v, 3 * D, 0.0f, o, D);
}

/* Every (b, h) pair of the forward: RoPE on its Q and K rows (cos_t NULL: none, and qkv is not
 * written), then head_forward with its probabilities kept in att (NULL: not kept). The pairs run
 * in parallel, the GEMM library single-threaded inside. */
static void attend(float *out, float *att, float *qkv, const float *cos_t, const float *sin_t,
                   int B, int T, int NH, int HD) {
   const int D = NH * HD;
   const float scale = 1.0f / sqrtf((float)HD);
   const int scalar = hrm_cpu_scalar();
   hrm_cpu_gemm_serial(1);
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)B * NH * T * T * HD >= HRM_OMP_MIN_WORK)
   for (int64_t bh = 0; bh < (int64_t)B * NH; bh++) {
      const int64_t b = bh / NH, h = bh % NH;
      float *q = qkv + b * T * 3 * D + h * HD;  // (T, HD) stride 3D, then K and V
      if (cos_t) {
         hrm_cpu_rope_rows(q, 3 * D, T, HD, cos_t, sin_t, 1.0f);
         hrm_cpu_rope_rows(q + D, 3 * D, T, HD, cos_t, sin_t, 1.0f);
      }
      head_forward(out + b * T * D + h * HD, att ? att + bh * T * T : NULL, q, q + D, q + 2 * D,
                   T, HD, D, scale, scalar);
   }
   hrm_cpu_gemm_serial(0);
}

void hrm_cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                               int HD) {
   attend(out, att, (float *)qkv, NULL, NULL, B, T, NH, HD);  // without RoPE qkv is only read
}

void hrm_cpu_rope_attention_forward(float *out, float *att, float *qkv, const float *cos_t,
                                    const float *sin_t, int B, int T, int NH, int HD) {
   attend(out, att, qkv, cos_t, sin_t, B, T, NH, HD);
}

void hrm_cpu_attention_infer(float *out, float *qkv, const float *cos_t, const float *sin_t, int B,
                             int T, int NH, int HD) {
   attend(out, NULL, qkv, cos_t, sin_t, B, T, NH, HD);
}

void hrm_cpu_rope_attention_backward(float *dqkv, float *datt, const float *dout,
                                     const float *qkv, const float *att, const float *cos_t,
                                     const float *sin_t, int B, int T, int NH, int HD) {
   const int D = NH * HD;
   const float scale = 1.0f / sqrtf((float)HD);
   const int scalar = hrm_cpu_scalar();
   hrm_cpu_gemm_serial(1);
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)B * NH * T * T * HD >= HRM_OMP_MIN_WORK)
   for (int64_t bh = 0; bh < (int64_t)B * NH; bh++) {
      const int64_t b = bh / NH, h = bh % NH;
      const float *q = qkv + b * T * 3 * D + h * HD;  // (T, HD) stride 3D
      const float *k = q + D;
      const float *v = q + 2 * D;
      float *dq = dqkv + b * T * 3 * D + h * HD;      // (T, HD) stride 3D
      float *dk = dq + D;
      float *dv = dq + 2 * D;
      const float *dO = dout + b * T * D + h * HD;    // (T, HD) stride D
      const float *a = att + bh * T * T;              // (T, T)
      float *da = datt + bh * T * T;                  // (T, T)
      // dP = dO · vᵀ ; dV = Pᵀ · dO
      hrm_cpu_sgemm(0, 1, T, T, HD, 1.0f, dO, D, v, 3 * D, 0.0f, da, T);
      hrm_cpu_sgemm(1, 0, T, HD, T, 1.0f, a, T, dO, D, 0.0f, dv, 3 * D);
      // softmax backward in place: dS = P ⊙ (dP − Σ_j P dP)
      for (int i = 0; i < T; i++) {
         if (scalar) hrm_cpu_scalar_softmax_row_backward(da + (int64_t)i * T, a + (int64_t)i * T, T);
         else softmax_row_backward(da + (int64_t)i * T, a + (int64_t)i * T, T);
      }
      // dQ = scale · dS · K ; dK = scale · dSᵀ · Q
      hrm_cpu_sgemm(0, 0, T, HD, T, scale, da, T, k, 3 * D, 0.0f, dq, 3 * D);
      hrm_cpu_sgemm(1, 0, T, HD, T, scale, da, T, q, 3 * D, 0.0f, dk, 3 * D);
      if (cos_t) {
         hrm_cpu_rope_rows(dq, 3 * D, T, HD, cos_t, sin_t, -1.0f);
         hrm_cpu_rope_rows(dk, 3 * D, T, HD, cos_t, sin_t, -1.0f);
      }
   }
   hrm_cpu_gemm_serial(0);
}

void hrm_cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                const float *att, int B, int T, int NH, int HD) {
   hrm_cpu_rope_attention_backward(dqkv, datt, dout, qkv, att, NULL, NULL, B, T, NH, HD);
}
