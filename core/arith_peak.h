/* arith_peak.h — what the arithmetic-peak benchmarks (fma_peak.c, bf16_peak.c) share: a thread's
 * own CPU clock, a register the compiler must treat as unknown, twelve independent chains of one
 * vector instruction, and the best of three runs on all OpenMP threads, their rates added up.
 *
 * Timing on the thread's CPU clock (time it spends running) means a thread preempted by another
 * process does not read as a slower core. Header-only and static: each peak file compiles its
 * kernels under its own target attributes, whatever the build's -march.
 */
#ifndef HRM_ARITH_PEAK_H
#define HRM_ARITH_PEAK_H

#include <omp.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HRM_X86 1
/* x made unknown to the compiler each round, so nothing is hoisted out of the loop */
#define OPAQUE(x) __asm__ volatile("" : "+x"(x))
#else
static volatile float opaque __attribute__((unused)) = 1e-9f;
#define OPAQUE(x) ((x) = opaque)  // a load per round: the scalar fallback only
#endif

static volatile float peak_sink;  // where the chains' results go, so they are computed

static inline double thread_cpu_seconds(void) {
   struct timespec ts;
   clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
   return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The body of a rate function `double rate(long iters, float *sink)`: twelve accumulator chains
 * (type ACC, made by ACC_SET) each updated `iters` times by OP(x, y, acc) on operands of type SRC
 * (made by SRC_SET), their lane sum into *sink, the GFLOP/s as the result (OP does FLOP_PER_OP). */
#define CHAINS(ACC, ACC_SET, SRC, SRC_SET, OP, SUM, FLOP_PER_OP)                                   \
   ACC a0 = ACC_SET(1), a1 = ACC_SET(2), a2 = ACC_SET(3), a3 = ACC_SET(4), a4 = ACC_SET(5);        \
   ACC a5 = ACC_SET(6), a6 = ACC_SET(7), a7 = ACC_SET(8), a8 = ACC_SET(9), a9 = ACC_SET(10);       \
   ACC a10 = ACC_SET(11), a11 = ACC_SET(12);                                                       \
   SRC x = SRC_SET(1e-9f);                                                                         \
   const SRC y = SRC_SET(1.0f);                                                                    \
   const double t0 = thread_cpu_seconds();                                                         \
   for (long i = 0; i < iters; i++) {                                                              \
      a0 = OP(x, y, a0), a1 = OP(x, y, a1), a2 = OP(x, y, a2), a3 = OP(x, y, a3);                  \
      a4 = OP(x, y, a4), a5 = OP(x, y, a5), a6 = OP(x, y, a6), a7 = OP(x, y, a7);                  \
      a8 = OP(x, y, a8), a9 = OP(x, y, a9), a10 = OP(x, y, a10), a11 = OP(x, y, a11);              \
      OPAQUE(x);                                                                                   \
   }                                                                                               \
   const double dt = thread_cpu_seconds() - t0;                                                    \
   *sink = SUM(a0) + SUM(a1) + SUM(a2) + SUM(a3) + SUM(a4) + SUM(a5) + SUM(a6) + SUM(a7) +         \
           SUM(a8) + SUM(a9) + SUM(a10) + SUM(a11);                                                \
   return dt > 0 ? 12.0 * (FLOP_PER_OP) * (double)iters / dt / 1e9 : 0.0

/* The best of three runs of rate(iters) on every OpenMP thread at once, the threads' GFLOP/s
 * added up. */
static inline double peak_on_all_threads(double (*rate)(long iters, float *sink), long iters) {
   double best = 0.0;
   for (int run = 0; run < 3; run++) {
      double total = 0.0, sinks = 0.0;
#pragma omp parallel reduction(+ : total, sinks)
      {
         float sink;
         total += rate(iters, &sink);
         sinks += sink;
      }
      peak_sink = (float)sinks;
      if (total > best) best = total;
   }
   return best;
}

#endif
