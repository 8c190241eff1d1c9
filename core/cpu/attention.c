/* attention.c — non-causal full softmax attention over the fused qkv projection.
 *
 * qkv (B, T, 3D) holds [Q | K | V], each block head-major (head h at channels h·HD…); the
 * output (B, T, D) is head-major too, ready for o_proj. Scale 1/√HD, no mask, no dropout:
 * every position (puzzle prefix included) attends to all T. Each (b, h) pair is three GEMMs on
 * strided views; the pairs run in parallel and the GEMM library runs single-threaded inside.
 * The probabilities are kept for the backward.
 */
#include <math.h>

#include "fastmath.h"
#include "../nn.h"
#include "gemm.h"

void hrm_cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                               int HD) {
   const int D = NH * HD;
   const float scale = 1.0f / sqrtf((float)HD);
#pragma omp parallel for schedule(dynamic, 1)
   for (int64_t bh = 0; bh < (int64_t)B * NH; bh++) {
      const int64_t b = bh / NH, h = bh % NH;
      const float *q = qkv + b * T * 3 * D + h * HD;  // (T, HD) stride 3D
      const float *k = q + D;                         // (T, HD) stride 3D
      const float *v = q + 2 * D;                     // (T, HD) stride 3D
      float *a = att + bh * T * T;                    // (T, T)
      hrm_cpu_sgemm(0, 1, T, T, HD, scale, q, 3 * D, k, 3 * D, 0.0f, a, T);
      for (int i = 0; i < T; i++) {
         float *row = a + (int64_t)i * T;
         float mx = row[0];
         for (int j = 1; j < T; j++) mx = row[j] > mx ? row[j] : mx;
         double sum = 0.0;
         for (int j = 0; j < T; j++) {
            row[j] = hrm_expf(row[j] - mx);
            sum += row[j];
         }
         const float inv = (float)(1.0 / sum);
         for (int j = 0; j < T; j++) row[j] *= inv;
      }
      // out (T, HD) stride D = a (T, T) · v (T, HD)
      hrm_cpu_sgemm(0, 0, T, HD, T, 1.0f, a, T, v, 3 * D, 0.0f, out + b * T * D + h * HD, D);
   }
}

void hrm_cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                const float *att, int B, int T, int NH, int HD) {
   const int D = NH * HD;
   const float scale = 1.0f / sqrtf((float)HD);
#pragma omp parallel for schedule(dynamic, 1)
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
         const float *p = a + (int64_t)i * T;
         float *dp = da + (int64_t)i * T;
         double dot = 0.0;
         for (int j = 0; j < T; j++) dot += (double)p[j] * dp[j];
         const float fd = (float)dot;
         for (int j = 0; j < T; j++) dp[j] = p[j] * (dp[j] - fd);
      }
      // dQ = scale · dS · K ; dK = scale · dSᵀ · Q
      hrm_cpu_sgemm(0, 0, T, HD, T, scale, da, T, k, 3 * D, 0.0f, dq, 3 * D);
      hrm_cpu_sgemm(1, 0, T, HD, T, scale, da, T, q, 3 * D, 0.0f, dk, 3 * D);
   }
}
