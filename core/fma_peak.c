/* fma_peak.c — the machine's vector FMA rate, the ceiling every FLOP figure is measured against.
 *
 * Each OpenMP thread runs twelve independent chains of fused multiply-adds (enough to hide the
 * FMA latency on two ports) on the widest vectors the CPU has — AVX-512, else AVX2 + FMA, chosen
 * at run time whatever this build's -march, as the GEMM library chooses its kernels — and times
 * itself on its own CPU clock (time it spends running, so a thread preempted by another process
 * does not read as a slower core); the rates of all threads add up. No memory traffic, so this is
 * the arithmetic peak that no fp32 GEMM can pass.
 */
#include "arith_peak.h"
#include "hrm.h"

#if HRM_X86
__attribute__((target("avx512f"))) static double rate_avx512(long iters, float *sink) {
   CHAINS(__m512, _mm512_set1_ps, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps,
          2 * 16);
}

__attribute__((target("avx2,fma"))) static float sum8(__m256 v) {
   float t[8], s = 0.0f;
   _mm256_storeu_ps(t, v);
   for (int i = 0; i < 8; i++) s += t[i];
   return s;
}

__attribute__((target("avx2,fma"))) static double rate_avx2(long iters, float *sink) {
   CHAINS(__m256, _mm256_set1_ps, __m256, _mm256_set1_ps, _mm256_fmadd_ps, sum8, 2 * 8);
}
#endif

#define SCALAR_SET(v) ((float)(v))
#define SCALAR_FMA(a, b, c) ((a) * (b) + (c))
#define SCALAR_SUM(v) (v)
static double rate_scalar(long iters, float *sink) {
   CHAINS(float, SCALAR_SET, float, SCALAR_SET, SCALAR_FMA, SCALAR_SUM, 2);
}

double hrm_fma_peak_gflops(void) {
   double (*rate)(long, float *) = rate_scalar;
   long lanes = 1;
#if HRM_X86
   if (__builtin_cpu_supports("avx512f")) rate = rate_avx512, lanes = 16;
   else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      rate = rate_avx2, lanes = 8;
#endif
   return peak_on_all_threads(rate, 640000000L / lanes);  // ~0.1 s a run on a 2.7 GHz AVX-512 core
}
