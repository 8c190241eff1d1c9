/* fma_peak.c — the machine's vector FMA rate, the ceiling every FLOP figure is measured against.
 *
 * Each OpenMP thread runs twelve independent chains of fused multiply-adds (enough to hide the
 * FMA latency on two ports) on the widest vectors the CPU has — AVX-512, else AVX2 + FMA, chosen
 * at run time whatever this build's -march, as the GEMM library chooses its kernels — and times
 * itself on its own CPU clock (time it spends running, so a thread preempted by another process
 * does not read as a slower core); the rates of all threads add up. No memory traffic, so this is
 * the arithmetic peak that no fp32 GEMM can pass.
 */
#include <omp.h>
#include <time.h>

#include "hrm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HRM_X86 1
/* x made unknown to the compiler each round, so nothing is hoisted out of the loop */
#define OPAQUE(x) __asm__ volatile("" : "+x"(x))
#else
static volatile float opaque = 1e-9f;
#define OPAQUE(x) ((x) = opaque)  // a load per round: the scalar fallback only
#endif

static volatile float fma_sink;

static double thread_cpu_seconds(void) {
   struct timespec ts;
   clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
   return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
  // where the chains' results go, so they are computed

/* The body of a rate function: twelve chains of T vectors (LANES floats) for `iters` rounds,
 * their lane sum into *sink, the GFLOP/s as the result. */
#define CHAINS(T, LANES, SET, FMA, SUM)                                                         \
   T a0 = SET(1), a1 = SET(2), a2 = SET(3), a3 = SET(4), a4 = SET(5), a5 = SET(6);              \
   T a6 = SET(7), a7 = SET(8), a8 = SET(9), a9 = SET(10), a10 = SET(11), a11 = SET(12);         \
   T x = SET(1e-9f);                                                                            \
   const T y = SET(1.0f);                                                                       \
   const double t0 = thread_cpu_seconds();                                                      \
   for (long i = 0; i < iters; i++) {                                                           \
      a0 = FMA(x, y, a0), a1 = FMA(x, y, a1), a2 = FMA(x, y, a2), a3 = FMA(x, y, a3);           \
      a4 = FMA(x, y, a4), a5 = FMA(x, y, a5), a6 = FMA(x, y, a6), a7 = FMA(x, y, a7);           \
      a8 = FMA(x, y, a8), a9 = FMA(x, y, a9), a10 = FMA(x, y, a10), a11 = FMA(x, y, a11);       \
      OPAQUE(x);                                                                                \
   }                                                                                            \
   const double dt = thread_cpu_seconds() - t0;                                                 \
   *sink = SUM(a0) + SUM(a1) + SUM(a2) + SUM(a3) + SUM(a4) + SUM(a5) + SUM(a6) + SUM(a7) +      \
           SUM(a8) + SUM(a9) + SUM(a10) + SUM(a11);                                             \
   return dt > 0 ? 12.0 * 2 * (LANES) * (double)iters / dt / 1e9 : 0.0

#if HRM_X86
__attribute__((target("avx512f"))) static double rate_avx512(long iters, float *sink) {
   CHAINS(__m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps);
}

__attribute__((target("avx2,fma"))) static float sum8(__m256 v) {
   float t[8], s = 0.0f;
   _mm256_storeu_ps(t, v);
   for (int i = 0; i < 8; i++) s += t[i];
   return s;
}

__attribute__((target("avx2,fma"))) static double rate_avx2(long iters, float *sink) {
   CHAINS(__m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, sum8);
}
#endif

#define SCALAR_SET(v) ((float)(v))
#define SCALAR_FMA(a, b, c) ((a) * (b) + (c))
#define SCALAR_SUM(v) (v)
static double rate_scalar(long iters, float *sink) {
   CHAINS(float, 1, SCALAR_SET, SCALAR_FMA, SCALAR_SUM);
}

double hrm_fma_peak_gflops(void) {
   double (*rate)(long, float *) = rate_scalar;
   long lanes = 1;
#if HRM_X86
   if (__builtin_cpu_supports("avx512f")) rate = rate_avx512, lanes = 16;
   else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      rate = rate_avx2, lanes = 8;
#endif
   const long iters = 640000000L / lanes;  // ~0.1 s per run on a 2.7 GHz AVX-512 core
   double best = 0.0;
   for (int run = 0; run < 3; run++) {
      double total = 0.0, sinks = 0.0;
#pragma omp parallel reduction(+ : total, sinks)
      {
         float sink;
         total += rate(iters, &sink);
         sinks += sink;
      }
      fma_sink = (float)sinks;
      if (total > best) best = total;
   }
   return best;
}
