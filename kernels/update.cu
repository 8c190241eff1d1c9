/* update.cu — optimizer updates on the GPU: AdamATan2, AdamW and the puzzle table's sign-SGD.
 *
 * The Adam kernels are one thread per element with the same fp32 operations as
 * core/cpu/update.c (the per-step scalars come from optim.c). Sign-SGD runs one block per
 * batch row u: a row whose id appeared earlier is skipped, otherwise the gradients of every
 * row with the same id are summed in batch order (as the CPU does) and the sign is applied.
 */
#include <math.h>

#include "common.cuh"

static __global__ void adam_atan2_update_kernel1(float *p, float *m, float *v, const float *g,
                                                 int64_t n, float lr, float wd_alpha,
                                                 float mbeta1, float mbeta2, float bc1_rcp,
                                                 float bc2_sqrt) {
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
        i += (int64_t)gridDim.x * blockDim.x) {
      float param = p[i] * wd_alpha;
      const float grad = g[i];
      const float mi = fmaf(mbeta1, grad, fmaf(-mbeta1, m[i], m[i]));
      const float vi = fmaf(mbeta2, grad * grad, fmaf(-mbeta2, v[i], v[i]));
      const float denom = sqrtf(vi) / bc2_sqrt;
      param -= lr * atan2f(bc1_rcp * mi, denom);
      p[i] = param;
      m[i] = mi;
      v[i] = vi;
   }
}

static __global__ void adamw_update_kernel1(float *p, float *m, float *v, const float *g,
                                            int64_t n, float step_size, float wd_alpha,
                                            float mbeta1, float beta2, float bc2_sqrt, float eps) {
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
        i += (int64_t)gridDim.x * blockDim.x) {
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

// one block per batch row u; table (rows, E), grad (U, E), ids (U)
static __global__ void signsgd_update_kernel1(float *table, const float *grad, const int32_t *ids,
                                              int64_t U, int E, float lr, float decay) {
   for (int64_t u = blockIdx.x; u < U; u += gridDim.x) {
      const int32_t id = ids[u];
      int dup = 0;
      for (int64_t k = threadIdx.x; k < u; k += blockDim.x) dup |= ids[k] == id;
      if (__syncthreads_or(dup)) continue;  // uniform across the block
      float *w = table + (int64_t)id * E;
      for (int d = threadIdx.x; d < E; d += blockDim.x) {
         float acc = 0.0f;
         for (int64_t k = u; k < U; k++)
            if (ids[k] == id) acc += grad[k * E + d];
         const float s = acc > 0.0f ? 1.0f : (acc < 0.0f ? -1.0f : 0.0f);
         w[d] = w[d] * decay + (-lr) * s;
      }
   }
}

extern "C" void hrm_cuda_adam_atan2_update(float *p, float *m, float *v, const float *g,
                                           int64_t n, float lr, float wd_alpha, float mbeta1,
                                           float mbeta2, float bc1_rcp, float bc2_sqrt) {
   if (n <= 0) return;
   HRM_READY();
   adam_atan2_update_kernel1<<<hrm_blocks(n, 256), 256, 0, hrm_cuda_stream()>>>(
      p, m, v, g, n, lr, wd_alpha, mbeta1, mbeta2, bc1_rcp, bc2_sqrt);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_adamw_update(float *p, float *m, float *v, const float *g, int64_t n,
                                      float step_size, float wd_alpha, float mbeta1, float beta2,
                                      float bc2_sqrt, float eps) {
   if (n <= 0) return;
   HRM_READY();
   adamw_update_kernel1<<<hrm_blocks(n, 256), 256, 0, hrm_cuda_stream()>>>(
      p, m, v, g, n, step_size, wd_alpha, mbeta1, beta2, bc2_sqrt, eps);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_signsgd_update(float *table, const float *grad, const int32_t *ids,
                                        int64_t U, int E, float lr, float wd) {
   if (U <= 0 || E <= 0) return;
   HRM_READY();
   const float decay = (float)(1.0 - (double)lr * (double)wd);
   const unsigned int blocks = U < 65535 * 8 ? (unsigned int)U : 65535u * 8u;
   signsgd_update_kernel1<<<blocks, 256, 0, hrm_cuda_stream()>>>(table, grad, ids, U, E, lr,
                                                                 decay);
   HRM_LAUNCHED();
}
