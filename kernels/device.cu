/* device.cu — the CUDA context: device 0, one stream, cuBLAS and cuBLASLt handles, memory and
 * the sticky status behind the void launchers.
 *
 * The context is process-wide and created on first use (hrm_cuda_init); it is not thread-safe,
 * as the model drives one step at a time. The first failing CUDA/cuBLAS call is kept with its
 * message until hrm_cuda_clear_status(); later launchers still run (a failed context makes them
 * return at once). Nothing here aborts: no device, no driver or an out-of-memory all become
 * HRM_ERR_DEVICE / HRM_ERR_MEMORY with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

typedef struct hrm_cuda_context {
   int ready;                // 1 once init succeeded
   int gemm_mode;            // enum hrm_cuda_gemm_mode
   cudaStream_t stream;
   cublasHandle_t blas;
   cublasLtHandle_t lt;
   void *lt_ws;              // cuBLASLt workspace
   size_t lt_ws_bytes;
   void *scratch;            // hrm_cuda_scratch's buffer
   size_t scratch_bytes;
} hrm_cuda_context;

static hrm_cuda_context ctx = {0, HRM_CUDA_GEMM_BF16, 0, 0, 0, 0, 0, 0, 0};
static int status_code = HRM_OK;
static char status_msg[768];

/* ---- status ------------------------------------------------------------------------------- */

void hrm_cuda_record(const char *file, int line, const char *call, const char *detail) {
   const char *base = strrchr(file, '/');
   base = base ? base + 1 : file;
   if (status_code == HRM_OK) {
      status_code = HRM_ERR_DEVICE;
      snprintf(status_msg, sizeof status_msg, "CUDA: %s failed: %s (%s:%d)", call,
               detail ? detail : "?", base, line);
   }
   hrm_fail(HRM_ERR_DEVICE, file, line, "CUDA: %s failed: %s", call, detail ? detail : "?");
}

const char *hrm_cublas_status_name(cublasStatus_t s) {
   switch (s) {
   case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
   case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
   case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
   case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
   case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
   case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
   case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
   case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
   case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
   default: return "cuBLAS error";
   }
}

extern "C" int hrm_cuda_status(void) {
   if (status_code == HRM_OK) return HRM_OK;
   return hrm_fail(status_code, __FILE__, __LINE__, "%s", status_msg);
}

extern "C" void hrm_cuda_clear_status(void) {
   status_code = HRM_OK;
   status_msg[0] = '\0';
}

/* ---- context ------------------------------------------------------------------------------ */

extern "C" int hrm_cuda_device_count(void) {
   int n = 0;
   if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the runtime's sticky "no driver" error
      return 0;
   }
   return n;
}

static int parse_gemm_mode(const char *s, int fallback) {
   if (!s || !*s) return fallback;
   if (strcmp(s, "f32") == 0 || strcmp(s, "fp32") == 0) return HRM_CUDA_GEMM_F32;
   if (strcmp(s, "tf32") == 0) return HRM_CUDA_GEMM_TF32;
   if (strcmp(s, "bf16") == 0) return HRM_CUDA_GEMM_BF16;
   return fallback;
}

extern "C" void hrm_cuda_shutdown(void) {
   if (ctx.scratch) cudaFree(ctx.scratch);
   if (ctx.lt_ws) cudaFree(ctx.lt_ws);
   if (ctx.lt) cublasLtDestroy(ctx.lt);
   if (ctx.blas) cublasDestroy(ctx.blas);
   if (ctx.stream) cudaStreamDestroy(ctx.stream);
   const int mode = ctx.gemm_mode;
   memset(&ctx, 0, sizeof ctx);
   ctx.gemm_mode = mode;
}

extern "C" int hrm_cuda_init(void) {
   if (ctx.ready) return HRM_OK;
   HRM_CHECK(hrm_cuda_device_count() > 0, HRM_ERR_DEVICE,
             "CUDA: no device is present (or no driver) ---> HINT: use the CPU device");
   HRM_CU_RC(cudaSetDevice(0));
   HRM_CU_RC(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
   cublasStatus_t s = cublasCreate(&ctx.blas);
   if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(ctx.blas, ctx.stream);
   if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtCreate(&ctx.lt);
   if (s != CUBLAS_STATUS_SUCCESS) {
      hrm_cuda_record(__FILE__, __LINE__, "cublasCreate/cublasLtCreate",
                      hrm_cublas_status_name(s));
      hrm_cuda_shutdown();
      return HRM_ERR_DEVICE;
   }
   ctx.lt_ws_bytes = (size_t)32 << 20;
   cudaError_t e = cudaMalloc(&ctx.lt_ws, ctx.lt_ws_bytes);
   if (e != cudaSuccess) {
      hrm_cuda_record(__FILE__, __LINE__, "cudaMalloc(cuBLASLt workspace)", cudaGetErrorString(e));
      hrm_cuda_shutdown();
      return HRM_ERR_DEVICE;
   }
   ctx.gemm_mode = parse_gemm_mode(getenv("HRM_CUDA_GEMM"), ctx.gemm_mode);
   ctx.ready = 1;
   return HRM_OK;
}

int hrm_cuda_ready(void) {
   if (ctx.ready) return 1;
   if (hrm_cuda_init() == HRM_OK) return 1;
   if (status_code == HRM_OK) {  // keep the init message as the sticky failure
      status_code = HRM_ERR_DEVICE;
      snprintf(status_msg, sizeof status_msg, "%s", hrm_last_error());
   }
   return 0;
}

cudaStream_t hrm_cuda_stream(void) { return ctx.stream; }
cublasHandle_t hrm_cuda_blas(void) { return ctx.blas; }
cublasLtHandle_t hrm_cuda_lt(void) { return ctx.lt; }

void *hrm_cuda_lt_workspace(size_t *bytes) {
   *bytes = ctx.lt_ws_bytes;
   return ctx.lt_ws;
}

extern "C" void *hrm_cuda_scratch(size_t bytes) {
   if (!hrm_cuda_ready()) return NULL;
   if (bytes <= ctx.scratch_bytes) return ctx.scratch;
   if (ctx.scratch) { /* queued kernels may still read the old buffer */
      cudaStreamSynchronize(ctx.stream);
      cudaFree(ctx.scratch);
      ctx.scratch = NULL;
      ctx.scratch_bytes = 0;
   }
   const cudaError_t e = cudaMalloc(&ctx.scratch, bytes);
   if (e != cudaSuccess) {
      (void)cudaGetLastError();
      ctx.scratch = NULL;
      hrm_cuda_record(__FILE__, __LINE__, "cudaMalloc(scratch)", cudaGetErrorString(e));
      return NULL;
   }
   ctx.scratch_bytes = bytes;
   return ctx.scratch;
}

extern "C" void hrm_cuda_set_gemm_mode(int mode) {
   if (mode >= HRM_CUDA_GEMM_F32 && mode <= HRM_CUDA_GEMM_BF16) ctx.gemm_mode = mode;
}

extern "C" int hrm_cuda_gemm_mode(void) { return ctx.gemm_mode; }

extern "C" int hrm_cuda_sync(void) {
   if (ctx.ready) {
      cudaError_t e = cudaStreamSynchronize(ctx.stream);
      if (e != cudaSuccess) hrm_cuda_record(__FILE__, __LINE__, "cudaStreamSynchronize",
                                            cudaGetErrorString(e));
   }
   return hrm_cuda_status();
}

/* ---- memory ------------------------------------------------------------------------------- */

extern "C" int hrm_cuda_malloc(void **out, size_t bytes) {
   HRM_CHECK(out, HRM_ERR_ARG, "cuda_malloc: out is NULL");
   *out = NULL;
   HRM_TRY(hrm_cuda_init());
   const size_t padded = bytes ? (bytes + 255) / 256 * 256 : 256;
   void *p = NULL;
   cudaError_t e = cudaMalloc(&p, padded);
   if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return HRM_FAIL(e == cudaErrorMemoryAllocation ? HRM_ERR_MEMORY : HRM_ERR_DEVICE,
                      "CUDA: cannot allocate %zu bytes of device memory: %s", bytes,
                      cudaGetErrorString(e));
   }
   e = cudaMemsetAsync(p, 0, padded, ctx.stream);
   if (e == cudaSuccess) e = cudaStreamSynchronize(ctx.stream);
   if (e != cudaSuccess) {
      cudaFree(p);
      hrm_cuda_record(__FILE__, __LINE__, "cudaMemsetAsync", cudaGetErrorString(e));
      return HRM_ERR_DEVICE;
   }
   *out = p;
   return HRM_OK;
}

extern "C" void hrm_cuda_free(void *p) {
   if (!p) return;
   /* the stream may still use p: finish its work first (frees are rare, outside steps) */
   if (ctx.ready) cudaStreamSynchronize(ctx.stream);
   cudaFree(p);
}

extern "C" int hrm_cuda_memcpy(void *dst, int32_t dst_device, const void *src,
                               int32_t src_device, size_t bytes) {
   HRM_CHECK(dst && src, HRM_ERR_ARG, "cuda_memcpy: NULL pointer");
   HRM_CHECK((dst_device == HRM_DEVICE_CPU || dst_device == HRM_DEVICE_CUDA) &&
                (src_device == HRM_DEVICE_CPU || src_device == HRM_DEVICE_CUDA),
             HRM_ERR_ARG, "cuda_memcpy: unknown device %d -> %d", src_device, dst_device);
   if (bytes == 0) return HRM_OK;
   if (dst_device == HRM_DEVICE_CPU && src_device == HRM_DEVICE_CPU) {
      memmove(dst, src, bytes);
      return HRM_OK;
   }
   HRM_TRY(hrm_cuda_init());
   const cudaMemcpyKind kind = dst_device == HRM_DEVICE_CUDA
                                  ? (src_device == HRM_DEVICE_CUDA ? cudaMemcpyDeviceToDevice
                                                                   : cudaMemcpyHostToDevice)
                                  : cudaMemcpyDeviceToHost;
   HRM_CU_RC(cudaMemcpyAsync(dst, src, bytes, kind, ctx.stream));
   if (kind != cudaMemcpyDeviceToDevice) HRM_CU_RC(cudaStreamSynchronize(ctx.stream));
   return HRM_OK;
}

extern "C" int hrm_cuda_memset0(void *p, size_t bytes) {
   HRM_CHECK(p || bytes == 0, HRM_ERR_ARG, "cuda_memset0: NULL pointer");
   if (bytes == 0) return HRM_OK;
   HRM_TRY(hrm_cuda_init());
   HRM_CU_RC(cudaMemsetAsync(p, 0, bytes, ctx.stream));
   return HRM_OK;
}

/* ---- the table's memory entries (asynchronous except upload / download) -------------------- */

extern "C" void hrm_cuda_zero(void *dst, size_t bytes) {
   if (bytes == 0) return;
   HRM_READY();
   HRM_CU(cudaMemsetAsync(dst, 0, bytes, ctx.stream));
}

extern "C" void hrm_cuda_copy(void *dst, const void *src, size_t bytes) {
   if (bytes == 0) return;
   HRM_READY();
   HRM_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx.stream));
}

extern "C" int hrm_cuda_upload(void *dst, const void *host_src, size_t bytes) {
   return hrm_cuda_memcpy(dst, HRM_DEVICE_CUDA, host_src, HRM_DEVICE_CPU, bytes);
}

extern "C" int hrm_cuda_download(void *host_dst, const void *src, size_t bytes) {
   return hrm_cuda_memcpy(host_dst, HRM_DEVICE_CPU, src, HRM_DEVICE_CUDA, bytes);
}

extern "C" void hrm_cuda_copy_rows(void *dst, int64_t dst_pitch, const void *src,
                                   int64_t src_pitch, int64_t rows, size_t row_bytes) {
   if (rows <= 0 || row_bytes == 0) return;
   HRM_READY();
   HRM_CU(cudaMemcpy2DAsync(dst, (size_t)dst_pitch, src, (size_t)src_pitch, row_bytes,
                            (size_t)rows, cudaMemcpyDeviceToDevice, ctx.stream));
}

/* Rows of `words` 4-byte words (or bytes when a row is not a whole number of words), one
 * thread an element: dst row i <- src row index[i] (gather), the reverse (scatter), or every
 * dst row <- src row 0 (broadcast, index unused). */
enum { ROWS_GATHER = 0, ROWS_SCATTER = 1, ROWS_BROADCAST = 2 };

template <typename T>
static __global__ void rows_kernel1(T *dst, const T *src, const int32_t *index, int64_t n,
                                    int64_t len, int mode) {
   for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n * len;
        k += (int64_t)gridDim.x * blockDim.x) {
      const int64_t i = k / len, j = k % len;
      const int64_t r = index ? index[i] : i;
      if (mode == ROWS_GATHER) dst[i * len + j] = src[r * len + j];
      else if (mode == ROWS_SCATTER) dst[r * len + j] = src[i * len + j];
      else dst[i * len + j] = src[j];
   }
}

static void rows_launch(void *dst, const void *src, const int32_t *index, int64_t n,
                        size_t row_bytes, int mode) {
   if (n <= 0 || row_bytes == 0) return;
   HRM_READY();
   if (row_bytes % 4 == 0) {
      const int64_t len = (int64_t)(row_bytes / 4);
      rows_kernel1<uint32_t><<<hrm_blocks(n * len, 256), 256, 0, ctx.stream>>>(
         (uint32_t *)dst, (const uint32_t *)src, index, n, len, mode);
   } else {
      const int64_t len = (int64_t)row_bytes;
      rows_kernel1<uint8_t><<<hrm_blocks(n * len, 256), 256, 0, ctx.stream>>>(
         (uint8_t *)dst, (const uint8_t *)src, index, n, len, mode);
   }
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_gather_rows(void *dst, const void *src, const int32_t *index, int64_t n,
                                     size_t row_bytes) {
   if (dst != src || index) rows_launch(dst, src, index, n, row_bytes, ROWS_GATHER);
}

extern "C" void hrm_cuda_scatter_rows(void *dst, const void *src, const int32_t *index,
                                      int64_t n, size_t row_bytes) {
   if (dst != src || index) rows_launch(dst, src, index, n, row_bytes, ROWS_SCATTER);
}

extern "C" void hrm_cuda_broadcast_row(void *dst, const void *row, int64_t n, size_t row_bytes) {
   rows_launch(dst, row, NULL, n, row_bytes, ROWS_BROADCAST);
}
