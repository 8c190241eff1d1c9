/* fma_peak.c — the machine's vector FMA rate, the ceiling every FLOP figure is measured against.
 *
 * Each OpenMP thread runs twelve independent chains of fused multiply-adds on the widest vectors
 * this build targets (AVX-512, AVX2 + FMA, or plain floats), enough chains to hide the FMA
 * latency on two ports, and times itself; the rates of all threads add up. No memory traffic,
 * so this is the arithmetic peak that no GEMM library can pass in fp32.
 */
#include <omp.h>

#include "hrm.h"

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 fvec;
enum { LANES = 16 };
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSUM(v) _mm512_reduce_add_ps(v)
#elif defined(__FMA__)
#include <immintrin.h>
typedef __m256 fvec;
enum { LANES = 8 };
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float vsum(__m256 v) {
   float t[8], s = 0.0f;
   _mm256_storeu_ps(t, v);
   for (int i = 0; i < 8; i++) s += t[i];
   return s;
}
#define VSUM(v) vsum(v)
#else
typedef float fvec;
enum { LANES = 1 };
#define VSET(x) (x)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSUM(v) (v)
#endif

/* GFLOP/s of one thread over `iters` rounds of 12 vector FMAs; *sink keeps the result live. */
static double thread_rate(long iters, float *sink) {
   fvec a0 = VSET(1), a1 = VSET(2), a2 = VSET(3), a3 = VSET(4), a4 = VSET(5), a5 = VSET(6);
   fvec a6 = VSET(7), a7 = VSET(8), a8 = VSET(9), a9 = VSET(10), a10 = VSET(11), a11 = VSET(12);
   fvec x = VSET(1e-9f);
   const fvec y = VSET(1.0f);
   const double t0 = omp_get_wtime();
   for (long i = 0; i < iters; i++) {
      a0 = VFMA(x, y, a0), a1 = VFMA(x, y, a1), a2 = VFMA(x, y, a2), a3 = VFMA(x, y, a3);
      a4 = VFMA(x, y, a4), a5 = VFMA(x, y, a5), a6 = VFMA(x, y, a6), a7 = VFMA(x, y, a7);
      a8 = VFMA(x, y, a8), a9 = VFMA(x, y, a9), a10 = VFMA(x, y, a10), a11 = VFMA(x, y, a11);
      __asm__ volatile("" : "+x"(x));  // x is opaque each round: nothing can be hoisted
   }
   const double dt = omp_get_wtime() - t0;
   *sink = VSUM(a0) + VSUM(a1) + VSUM(a2) + VSUM(a3) + VSUM(a4) + VSUM(a5) + VSUM(a6) +
           VSUM(a7) + VSUM(a8) + VSUM(a9) + VSUM(a10) + VSUM(a11);
   return dt > 0 ? 12.0 * 2 * LANES * (double)iters / dt / 1e9 : 0.0;
}

static volatile float fma_sink;  // where the chains' results go, so they are computed

double hrm_fma_peak_gflops(void) {
   const long iters = 40000000L / LANES * 4;  // ~0.1 s per run on a 3 GHz AVX-512 core
   double best = 0.0;
   for (int run = 0; run < 3; run++) {
      double total = 0.0;
#pragma omp parallel reduction(+ : total)
      {
         float sink;
         total += thread_rate(iters, &sink);
         fma_sink = sink;
      }
      if (total > best) best = total;
   }
   return best;
}
