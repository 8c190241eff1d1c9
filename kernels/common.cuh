/* common.cuh — helpers shared by the .cu files: status recording, launch checks, reductions.
 *
 * HRM_CU(call) / HRM_CUBLAS(call) record the first failure (file:line, the call, the CUDA
 * message) in the context's sticky status and return from the enclosing void launcher;
 * HRM_CU_RC returns HRM_ERR_DEVICE from int functions. HRM_LAUNCHED() checks a kernel launch
 * without synchronising. Device-side helpers are warp reductions over 32 lanes.
 */
#ifndef HRM_KERNELS_COMMON_CUH
#define HRM_KERNELS_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda.h"

extern "C" {
#include "error.h"
}

/* Records a failure (the first one wins) and sets this thread's last error too. */
void hrm_cuda_record(const char *file, int line, const char *call, const char *detail);
const char *hrm_cublas_status_name(cublasStatus_t s);
/* The context's stream and handles; hrm_cuda_ready() initialises on first use and records a
 * failure when it cannot (launchers then return without doing anything). */
int hrm_cuda_ready(void);
cudaStream_t hrm_cuda_stream(void);
cublasHandle_t hrm_cuda_blas(void);
cublasLtHandle_t hrm_cuda_lt(void);
void *hrm_cuda_lt_workspace(size_t *bytes);

#define HRM_CU(call)                                                                  \
   do {                                                                               \
      cudaError_t hrm_e_ = (call);                                                    \
      if (hrm_e_ != cudaSuccess) {                                                    \
         hrm_cuda_record(__FILE__, __LINE__, #call, cudaGetErrorString(hrm_e_));      \
         return;                                                                      \
      }                                                                               \
   } while (0)

#define HRM_CU_RC(call)                                                               \
   do {                                                                               \
      cudaError_t hrm_e_ = (call);                                                    \
      if (hrm_e_ != cudaSuccess) {                                                    \
         hrm_cuda_record(__FILE__, __LINE__, #call, cudaGetErrorString(hrm_e_));      \
         return HRM_ERR_DEVICE;                                                       \
      }                                                                               \
   } while (0)

#define HRM_CUBLAS(call)                                                              \
   do {                                                                               \
      cublasStatus_t hrm_s_ = (call);                                                 \
      if (hrm_s_ != CUBLAS_STATUS_SUCCESS) {                                          \
         hrm_cuda_record(__FILE__, __LINE__, #call, hrm_cublas_status_name(hrm_s_));  \
         return;                                                                      \
      }                                                                               \
   } while (0)

#define HRM_LAUNCHED() HRM_CU(cudaGetLastError())

#define HRM_READY()                      \
   do {                                  \
      if (!hrm_cuda_ready()) return;     \
   } while (0)

/* Blocks for a grid-stride loop over n items, at most 65535·8 blocks. */
static inline unsigned int hrm_blocks(int64_t n, int threads) {
   int64_t b = (n + threads - 1) / threads;
   if (b < 1) b = 1;
   if (b > 65535 * 8) b = 65535 * 8;
   return (unsigned int)b;
}

__device__ __forceinline__ float warp_sum(float v) {
   for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
   return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
   for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
   return v;
}

__device__ __forceinline__ float warp_max(float v) {
   for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
   return v;
}

__device__ __forceinline__ double warp_max_d(double v) {
   for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
   return v;
}

#endif /* HRM_KERNELS_COMMON_CUH */
