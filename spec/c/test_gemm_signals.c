/* test_gemm_signals.c — GEMMs stay correct, and the heap intact, while signals rain on them.
 *
 * oneDNN's generated f32 GEMM kernels (2.x, AVX2 and AVX-512) point the stack pointer into a
 * heap workspace while they run; a signal handled on that thread then has its frame (several KB
 * with the AVX-512 state) written over the heap, and glibc later aborts with "corrupted size vs.
 * prev_size" (or a pointer read back from the damaged heap faults) — what Ctrl-C did to long
 * training runs. A 50 µs interval timer with a handler that only counts delivers thousands of
 * signals during a fixed number of GEMMs on the training step's shapes, with 1, 2 and 3 threads
 * (the workers started outside any GEMM), while malloc/free run between the calls so that a
 * damaged heap ends the test; products are then checked against a double-precision loop.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "check.h"
#include "cpu/gemm.h"

static volatile sig_atomic_t signals_seen;
static void count_signal(int sig) {
   (void)sig;
   signals_seen++;
}

/* max |C - op(A)·op(B)| over every 7th row of the (M, N) result, the reference in double. */
static double max_error(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                        const float *B, const float *C) {
   double worst = 0.0;
   for (int64_t i = 0; i < M; i += 7)
      for (int64_t j = 0; j < N; j++) {
         double acc = 0.0;
         for (int64_t k = 0; k < K; k++)
            acc += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
         const double e = fabs(acc - C[i * N + j]);
         if (e > worst) worst = e;
      }
   return worst;
}

/* shapes of the tiny/small configs' linear layers and their backward (B*T rows, D, 4D, ...) */
static const int64_t shapes[][3] = {
   {960, 64, 64}, {960, 256, 64}, {960, 64, 256}, {64, 64, 960}, {64, 256, 960}, {256, 64, 960},
   {1312, 128, 128}, {128, 384, 1312},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0], ROUNDS = 12 };

static void run(int threads) {
   CHECK_OK(hrm_set_threads(threads));
   /* start the OpenMP workers outside any GEMM, with signals open, as the CPU kernels' own loops
    * do: the GEMMs must then block them on the workers too */
   int team = 0;
#pragma omp parallel reduction(+ : team)
   team += 1;
   CHECK(team == threads);
   const size_t cap = 1312 * 1312;
   float *A = malloc(cap * sizeof(float)), *B = malloc(cap * sizeof(float));
   float *C = malloc(cap * sizeof(float));
   for (size_t i = 0; i < cap; i++) {
      A[i] = (float)((i * 7919u) % 97) / 97.0f - 0.5f;
      B[i] = (float)((i * 104729u) % 89) / 89.0f - 0.5f;
   }
   const int before = signals_seen;
   int bad = 0;
   for (int r = 0; r < ROUNDS; r++)
      for (int s = 0; s < NSHAPES; s++)
         for (int t = 0; t < 4; t++) {
            const int ta = t & 1, tb = t >> 1;
            const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            hrm_cpu_gemm_linear(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
            void *p = malloc(512 + (size_t)((r * 131 + s * 17 + t) % 4096)); /* glibc checks */
            free(p);
            if (r == ROUNDS - 1 && max_error(ta, tb, M, N, K, A, B, C) > 1e-3 * (double)K) bad++;
         }
   printf("%d threads: %d GEMMs, %d signals\n", threads, ROUNDS * NSHAPES * 4,
          (int)(signals_seen - before));
   CHECK(bad == 0);
   CHECK(signals_seen > before); /* the timer did interrupt this run */
   free(A);
   free(B);
   free(C);
}

int main(void) {
   struct sigaction sa;
   memset(&sa, 0, sizeof sa);
   sa.sa_handler = count_signal;
   sa.sa_flags = SA_RESTART;
   sigemptyset(&sa.sa_mask);
   CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
   struct itimerval every = {{0, 50}, {0, 50}}, off = {{0, 0}, {0, 0}};
   CHECK(setitimer(ITIMER_REAL, &every, NULL) == 0);
   run(1);
   run(2);
   run(3); /* teams of 1..3: libgomp replaces surplus workers */
   setitimer(ITIMER_REAL, &off, NULL);
   return check_summary("test_gemm_signals");
}
