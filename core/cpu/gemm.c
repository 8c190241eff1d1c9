/* gemm.c — the CPU GEMM entry point over oneDNN's dnnl_sgemm or OpenBLAS's cblas_sgemm.
 *
 * Both libraries run on the process's OpenMP threads (oneDNN's Debian build uses the OMP
 * runtime; OpenBLAS is told the same count). Double precision, needed only for tensor
 * utilities, goes to OpenBLAS when it is the library and to a plain blocked loop otherwise.
 */
#include "gemm.h"

#include <stdio.h>

#if defined(HRM_GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#else
#include <cblas.h>
#endif

void hrm_cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc) {
   if (M <= 0 || N <= 0) return;
#if defined(HRM_GEMM_DNNL)
   dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C,
              ldc);
#else
   cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
               (int)ldb, beta, C, (int)ldc);
#endif
}

void hrm_cpu_dgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                   const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                   double *C, int64_t ldc) {
#if defined(HRM_GEMM_DNNL)
   for (int64_t i = 0; i < M; i++) {
      for (int64_t j = 0; j < N; j++) {
         double acc = 0.0;
         for (int64_t k = 0; k < K; k++) {
            double a = trans_a ? A[k * lda + i] : A[i * lda + k];
            double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
            acc += a * b;
         }
         C[i * ldc + j] = alpha * acc + (beta == 0.0 ? 0.0 : beta * C[i * ldc + j]);
      }
   }
#else
   cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
               (int)ldb, beta, C, (int)ldc);
#endif
}

const char *hrm_cpu_gemm_name(void) {
   static char name[96];
#if defined(HRM_GEMM_DNNL)
   const dnnl_version_t *v = dnnl_version();
   snprintf(name, sizeof name, "oneDNN %d.%d.%d (OpenMP)", v->major, v->minor, v->patch);
#else
   snprintf(name, sizeof name, "OpenBLAS %s", openblas_get_config());
#endif
   return name;
}

void hrm_cpu_gemm_set_threads(int n) {
#if defined(HRM_GEMM_DNNL)
   (void)n; /* oneDNN follows omp_set_num_threads */
#else
   openblas_set_num_threads(n);
#endif
}
