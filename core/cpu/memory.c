/* memory.c — the CPU table's memory entries: allocation, zeroing, copies, row gathers.
 *
 * Device memory of the CPU table is host memory from hrm_buf_alloc, so uploads and downloads
 * are plain copies and sync has nothing to wait for.
 */
#include <string.h>

#include "../alloc.h"
#include "../error.h"
#include "../tensor_util.h"
#include "ops.h"

int hrm_cpu_alloc(void **out, size_t bytes) {
   *out = hrm_buf_alloc(bytes);
   HRM_CHECK(*out, HRM_ERR_MEMORY, "cannot allocate %zu MiB ---> HINT: use a smaller batch",
             bytes >> 20);
   memset(*out, 0, bytes);
   return HRM_OK;
}

void hrm_cpu_release(void *ptr) { hrm_buf_free(ptr); }

void hrm_cpu_zero(void *dst, size_t bytes) { memset(dst, 0, bytes); }

void hrm_cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

int hrm_cpu_transfer(void *dst, const void *src, size_t bytes) {
   memcpy(dst, src, bytes);
   return HRM_OK;
}

int hrm_cpu_sync(void) { return HRM_OK; }

void hrm_cpu_copy_rows(void *dst, int64_t dst_pitch, const void *src, int64_t src_pitch,
                       int64_t rows, size_t row_bytes) {
   for (int64_t r = 0; r < rows; r++)
      memcpy((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, row_bytes);
}

void hrm_cpu_gather_rows(void *dst, const void *src, const int32_t *index, int64_t n,
                         size_t row_bytes) {
   for (int64_t i = 0; i < n; i++) {
      char *d = (char *)dst + (size_t)i * row_bytes;
      const char *s = (const char *)src + (size_t)(index ? index[i] : i) * row_bytes;
      if (d != s) memcpy(d, s, row_bytes);
   }
}

void hrm_cpu_scatter_rows(void *dst, const void *src, const int32_t *index, int64_t n,
                          size_t row_bytes) {
   for (int64_t i = 0; i < n; i++) {
      char *d = (char *)dst + (size_t)(index ? index[i] : i) * row_bytes;
      const char *s = (const char *)src + (size_t)i * row_bytes;
      if (d != s) memcpy(d, s, row_bytes);
   }
}

void hrm_cpu_broadcast_row(void *dst, const void *row, int64_t n, size_t row_bytes) {
   for (int64_t i = 0; i < n; i++) memcpy((char *)dst + (size_t)i * row_bytes, row, row_bytes);
}

void hrm_cpu_pack_bf16(uint16_t *dst, const float *src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= HRM_OMP_MIN_WORK)
   for (int64_t i = 0; i < n; i++) dst[i] = hrm_f32_to_bf16(src[i]);
}

void hrm_cpu_widen_bf16(float *dst, const uint16_t *src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= HRM_OMP_MIN_WORK)
   for (int64_t i = 0; i < n; i++) dst[i] = hrm_bf16_to_f32(src[i]);
}
