/* loss.cu — the loss head's per-element pieces on the GPU: stablemax and softmax cross-entropy,
 * BCE with logits, argmax.
 *
 * One warp per row of logits (N, V), float64 math as core/cpu/loss.c (stablemax s(x) = 1/(1 −
 * x + 1e-30) for x < 0, x + 1 otherwise). Ignored labels (−100) give zero losses and zero
 * gradient rows. Only the order of the row sums differs from the CPU (lane-strided, then a
 * warp reduction). Argmax returns the first index of the row maximum.
 */
#include <math.h>

#include "common.cuh"

__device__ __forceinline__ double stab_s(double x) {
   return x < 0.0 ? 1.0 / (1.0 - x + 1e-30) : x + 1.0;
}

__device__ __forceinline__ double stab_ds(double x) {
   if (x < 0.0) {
      const double r = 1.0 / (1.0 - x + 1e-30);
      return r * r;
   }
   return 1.0;
}

#define ROW_LOOP(N)                                                                          \
   const int lane = threadIdx.x & 31;                                                        \
   const int64_t warps_ = (int64_t)gridDim.x * (blockDim.x >> 5);                            \
   for (int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); n < (N);    \
        n += warps_)

static __global__ void stablemax_ce_forward_kernel1(double *losses, const float *logits,
                                                    const int32_t *labels, int64_t N, int V) {
   ROW_LOOP(N) {
      const int32_t y = labels[n];
      if (y == HRM_IGNORE_LABEL) {
         if (lane == 0) losses[n] = 0.0;
         continue;
      }
      const float *x = logits + n * V;
      double sum = 0.0;
      for (int j = lane; j < V; j += 32) sum += stab_s(x[j]);
      sum = warp_sum_d(sum);
      if (lane == 0) losses[n] = -log(stab_s(x[y]) / sum);
   }
}

static __global__ void stablemax_ce_backward_kernel1(float *dlogits, const double *dloss,
                                                     const float *logits, const int32_t *labels,
                                                     int64_t N, int V) {
   ROW_LOOP(N) {
      const int32_t y = labels[n];
      float *dx = dlogits + n * V;
      if (y == HRM_IGNORE_LABEL) {
         for (int j = lane; j < V; j += 32) dx[j] = 0.0f;
         continue;
      }
      const float *x = logits + n * V;
      double sum = 0.0;
      for (int j = lane; j < V; j += 32) sum += stab_s(x[j]);
      sum = warp_sum_d(sum);
      const double w = dloss[n];
      for (int j = lane; j < V; j += 32) {
         double g = stab_ds(x[j]) / sum;
         if (j == y) g -= stab_ds(x[j]) / stab_s(x[j]);
         dx[j] = (float)(w * g);
      }
   }
}

static __global__ void softmax_ce_forward_kernel1(double *losses, const float *logits,
                                                  const int32_t *labels, int64_t N, int V) {
   ROW_LOOP(N) {
      const int32_t y = labels[n];
      if (y == HRM_IGNORE_LABEL) {
         if (lane == 0) losses[n] = 0.0;
         continue;
      }
      const float *x = logits + n * V;
      double mx = -INFINITY, sum = 0.0;
      for (int j = lane; j < V; j += 32) mx = fmax(mx, (double)x[j]);
      mx = warp_max_d(mx);
      for (int j = lane; j < V; j += 32) sum += exp((double)x[j] - mx);
      sum = warp_sum_d(sum);
      if (lane == 0) losses[n] = log(sum) + mx - (double)x[y];
   }
}

static __global__ void softmax_ce_backward_kernel1(float *dlogits, const double *dloss,
                                                   const float *logits, const int32_t *labels,
                                                   int64_t N, int V) {
   ROW_LOOP(N) {
      const int32_t y = labels[n];
      float *dx = dlogits + n * V;
      if (y == HRM_IGNORE_LABEL) {
         for (int j = lane; j < V; j += 32) dx[j] = 0.0f;
         continue;
      }
      const float *x = logits + n * V;
      double mx = -INFINITY, sum = 0.0;
      for (int j = lane; j < V; j += 32) mx = fmax(mx, (double)x[j]);
      mx = warp_max_d(mx);
      for (int j = lane; j < V; j += 32) sum += exp((double)x[j] - mx);
      sum = warp_sum_d(sum);
      const double w = dloss[n];
      for (int j = lane; j < V; j += 32) {
         const double p = exp((double)x[j] - mx) / sum;
         dx[j] = (float)(w * (p - (j == y ? 1.0 : 0.0)));
      }
   }
}

static __global__ void argmax_forward_kernel1(int32_t *pred, const float *logits, int64_t N,
                                              int V) {
   ROW_LOOP(N) {
      const float *x = logits + n * V;
      float best = -INFINITY;
      int bi = -1;
      for (int j = lane; j < V; j += 32)
         if (bi < 0 || x[j] > best) {
            best = x[j];
            bi = j;
         }
      for (int o = 16; o > 0; o >>= 1) {
         const float ob = __shfl_xor_sync(0xffffffffu, best, o);
         const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
         if (oi >= 0 && (bi < 0 || ob > best || (ob == best && oi < bi))) {
            best = ob;
            bi = oi;
         }
      }
      if (lane == 0) pred[n] = bi < 0 ? 0 : bi;
   }
}

static __global__ void bce_logits_forward_kernel1(double *losses, const float *logits,
                                                  const float *targets, int64_t N) {
   for (int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; n < N;
        n += (int64_t)gridDim.x * blockDim.x) {
      const double x = logits[n], y = targets[n];
      losses[n] = (x > 0.0 ? x : 0.0) - x * y + log1p(exp(-fabs(x)));
   }
}

static __global__ void bce_logits_backward_kernel1(float *dlogits, const double *dloss,
                                                   const float *logits, const float *targets,
                                                   int64_t N) {
   for (int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; n < N;
        n += (int64_t)gridDim.x * blockDim.x) {
      const double x = logits[n];
      const double sig = x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
      dlogits[n] = (float)(dloss[n] * (sig - (double)targets[n]));
   }
}

static unsigned int warp_rows(int64_t N) {  // 8 rows per 256-thread block
   int64_t b = (N + 7) / 8;
   if (b > 65535 * 8) b = 65535 * 8;
   return (unsigned int)(b < 1 ? 1 : b);
}

extern "C" void hrm_cuda_stablemax_ce_forward(double *losses, const float *logits,
                                              const int32_t *labels, int64_t N, int V) {
   if (N <= 0) return;
   HRM_READY();
   stablemax_ce_forward_kernel1<<<warp_rows(N), 256, 0, hrm_cuda_stream()>>>(losses, logits,
                                                                             labels, N, V);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_stablemax_ce_backward(float *dlogits, const double *dloss,
                                               const float *logits, const int32_t *labels,
                                               int64_t N, int V) {
   if (N <= 0) return;
   HRM_READY();
   stablemax_ce_backward_kernel1<<<warp_rows(N), 256, 0, hrm_cuda_stream()>>>(
      dlogits, dloss, logits, labels, N, V);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_softmax_ce_forward(double *losses, const float *logits,
                                            const int32_t *labels, int64_t N, int V) {
   if (N <= 0) return;
   HRM_READY();
   softmax_ce_forward_kernel1<<<warp_rows(N), 256, 0, hrm_cuda_stream()>>>(losses, logits, labels,
                                                                           N, V);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_softmax_ce_backward(float *dlogits, const double *dloss,
                                             const float *logits, const int32_t *labels,
                                             int64_t N, int V) {
   if (N <= 0) return;
   HRM_READY();
   softmax_ce_backward_kernel1<<<warp_rows(N), 256, 0, hrm_cuda_stream()>>>(dlogits, dloss,
                                                                            logits, labels, N, V);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_argmax_forward(int32_t *pred, const float *logits, int64_t N, int V) {
   if (N <= 0) return;
   HRM_READY();
   argmax_forward_kernel1<<<warp_rows(N), 256, 0, hrm_cuda_stream()>>>(pred, logits, N, V);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_bce_logits_forward(double *losses, const float *logits,
                                            const float *targets, int64_t N) {
   if (N <= 0) return;
   HRM_READY();
   bce_logits_forward_kernel1<<<hrm_blocks(N, 256), 256, 0, hrm_cuda_stream()>>>(losses, logits,
                                                                                 targets, N);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_bce_logits_backward(float *dlogits, const double *dloss,
                                             const float *logits, const float *targets,
                                             int64_t N) {
   if (N <= 0) return;
   HRM_READY();
   bce_logits_backward_kernel1<<<hrm_blocks(N, 256), 256, 0, hrm_cuda_stream()>>>(
      dlogits, dloss, logits, targets, N);
   HRM_LAUNCHED();
}
