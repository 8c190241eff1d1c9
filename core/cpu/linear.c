/* linear.c — CastedLinear on the CPU: y = x·Wᵀ (+ b) with PyTorch's [out, in] weights.
 *
 * Both directions are single GEMM calls through hrm_cpu_gemm_linear (fp32, or bf16 operands with
 * the bf16 option) over the flattened rows (N = B·T); the bias gradient is a column sum. No
 * allocation, no validation (module.c and the store own both).
 */
#include "ops.h"
#include "gemm.h"

void hrm_cpu_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                            int64_t N, int C, int OC) {
   // out (N, OC) = inp (N, C) · weightᵀ (C, OC)
   hrm_cpu_gemm_linear(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
   if (bias) {
#pragma omp parallel for schedule(static) if (N * OC >= HRM_OMP_MIN_WORK)
      for (int64_t n = 0; n < N; n++)
         for (int o = 0; o < OC; o++) out[n * OC + o] += bias[o];
   }
}

void hrm_cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int64_t N, int C, int OC,
                             float dinp_beta) {
   // dinp (N, C) = beta·dinp + dout (N, OC) · weight (OC, C)
   if (dinp) hrm_cpu_gemm_linear(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, dinp_beta, dinp, C);
   // dweight (OC, C) += doutᵀ (OC, N) · inp (N, C)
   if (dweight) hrm_cpu_gemm_linear(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
   if (dbias) {
      for (int o = 0; o < OC; o++) {
         double acc = 0.0;
         for (int64_t n = 0; n < N; n++) acc += dout[n * OC + o];
         dbias[o] += (float)acc;
      }
   }
}

void hrm_cpu_add_bias(float *out, const float *bias, int64_t N, int OC) {
   for (int64_t n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) out[n * OC + o] += bias[o];
}

void hrm_cpu_bias_backward(float *dbias, const float *dout, int64_t N, int OC) {
   for (int64_t n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) dbias[o] += dout[n * OC + o];
}
