/* gemm.h — the single entry point to the GEMM library (oneDNN or OpenBLAS, chosen at build).
 *
 * Row-major C = alpha·op(A)·op(B) + beta·C with op(X) = X or Xᵀ. A is (M, K) after op, B is
 * (K, N) after op, C is (M, N). Every matrix product of the CPU backend goes through here, so
 * the library can be swapped and measured in one place.
 */
#ifndef HRM_CPU_GEMM_H
#define HRM_CPU_GEMM_H

#include <stdint.h>

void hrm_cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc);
void hrm_cpu_dgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                   const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                   double *C, int64_t ldc);
/* The linear layers' GEMMs (same contract as hrm_cpu_sgemm): fp32 by default, bf16 operands
 * with fp32 accumulation once hrm_cpu_gemm_set_dtype(HRM_DTYPE_BF16) succeeded. */
void hrm_cpu_gemm_linear(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc);
/* 0 on success, -1 when this build or CPU has no such GEMM (HRM_DTYPE_F32 always works). */
int hrm_cpu_gemm_set_dtype(int dtype);
int hrm_cpu_gemm_dtype(void);
/* A model step's parameter block base (n floats), cast to bf16 once here; until the next call,
 * bf16 GEMM operands that lie in it are read from the cast (the block must not change meanwhile).
 * base NULL drops the cast. 0, or -1 when out of memory (then no cast is used). */
int hrm_cpu_gemm_weights_bf16(const float *base, int64_t n);
const char *hrm_cpu_gemm_name(void);   /* "oneDNN 2.6.3" / "OpenBLAS 0.3.21 ..." */
void hrm_cpu_gemm_set_threads(int n);
/* on = 1 before an OpenMP loop whose iterations call hrm_cpu_sgemm, 0 after it: the library then
 * runs single-threaded inside the loop instead of oversubscribing the cores, and the calling
 * thread holds its signals once for the whole loop rather than around each GEMM. */
void hrm_cpu_gemm_serial(int on);

#endif
