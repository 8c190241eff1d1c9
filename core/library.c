/* library.c — library-wide facts and settings: version, ABI, struct sizes, threads, BLAS.
 *
 * hrm_sizeof lets the Lua side check that its FFI view of every cdef struct agrees with the
 * compiler's (the ABI spec). Threads: one count for OpenMP and the GEMM library.
 */
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/gemm.h"
#include "error.h"
#include "nn.h"

const char *hrm_version(void) { return HRM_VERSION_STRING; }

int32_t hrm_abi_version(void) { return 3; }

size_t hrm_sizeof(const char *type_name) {
   static const struct { const char *name; size_t size; } table[] = {
      {"hrm_tensor", sizeof(hrm_tensor)},         {"hrm_rng", sizeof(hrm_rng)},
      {"hrm_config", sizeof(hrm_config)},         {"hrm_batch", sizeof(hrm_batch)},
      {"hrm_block_config", sizeof(hrm_block_config)}, {"hrm_act_carry", sizeof(hrm_act_carry)},
      {"hrm_act_metrics", sizeof(hrm_act_metrics)},
      {"hrm_optim_config", sizeof(hrm_optim_config)}, {"hrm_tensor_ref", sizeof(hrm_tensor_ref)},
      {"hrm_dataset_meta", sizeof(hrm_dataset_meta)}, {"hrm_dataset_arrays", sizeof(hrm_dataset_arrays)},
      {"hrm_sampler_config", sizeof(hrm_sampler_config)},
      {"hrm_sampler_state", sizeof(hrm_sampler_state)},
   };
   if (!type_name) return 0;
   for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
      if (strcmp(table[i].name, type_name) == 0) return table[i].size;
   return 0;
}

const char *hrm_blas_info(void) { return hrm_cpu_gemm_name(); }

int hrm_set_threads(int32_t n) {
   HRM_CHECK(n >= 1 && n <= 4096, HRM_ERR_ARG, "set_threads: %d threads is out of range 1..4096", n);
   omp_set_num_threads(n);
   hrm_cpu_gemm_set_threads(n);
   return HRM_OK;
}

int32_t hrm_get_threads(void) { return omp_get_max_threads(); }

int hrm_set_gemm_dtype(int32_t dtype) {
   HRM_CHECK(hrm_cpu_gemm_set_dtype(dtype) == 0, HRM_ERR_ARG,
             "set_gemm_dtype: %s GEMMs are not available with %s on this CPU",
             hrm_dtype_name(dtype) ? hrm_dtype_name(dtype) : "unknown-dtype", hrm_cpu_gemm_name());
   return HRM_OK;
}

int32_t hrm_get_gemm_dtype(void) { return hrm_cpu_gemm_dtype(); }

int hrm_params_set_precision(hrm_params *p, int32_t dtype) {
   HRM_CHECK(p, HRM_ERR_ARG, "set_precision: store is NULL");
   HRM_CHECK(dtype == HRM_DTYPE_F32 || dtype == HRM_DTYPE_BF16, HRM_ERR_ARG,
             "set_precision: dtype must be f32 or bf16, got %s",
             hrm_dtype_name(dtype) ? hrm_dtype_name(dtype) : "unknown-dtype");
   hrm_cpu_gemm_weights_bf16(NULL, 0);
   p->precision = HRM_DTYPE_F32;
   if (dtype == HRM_DTYPE_F32) return hrm_set_gemm_dtype(HRM_DTYPE_F32);
   HRM_CHECK(p->device == HRM_DEVICE_CPU, HRM_ERR_ARG,
             "forward_dtype bfloat16 runs on the CPU only; this model is on CUDA\n"
             "---> HINT: forward_dtype = \"float32\" on CUDA");
   HRM_CHECK(p->built, HRM_ERR_STATE, "set_precision: the store is not built yet");
   const int rc = hrm_set_gemm_dtype(HRM_DTYPE_BF16);
   if (rc != HRM_OK) return rc;
   HRM_CHECK(hrm_cpu_gemm_weights_bf16(p->params->data, p->num_params) == 0, HRM_ERR_MEMORY,
             "set_precision: out of memory for the bf16 cast of %lld parameters",
             (long long)p->num_params);
   p->precision = HRM_DTYPE_BF16;
   return HRM_OK;
}

double hrm_wall_time(void) { return omp_get_wtime(); }

static int compare_doubles(const void *a, const void *b) {
   double x = *(const double *)a, y = *(const double *)b;
   return (x > y) - (x < y);
}

double hrm_gemm_gflops(int64_t M, int64_t N, int64_t K, int32_t trans_a, int32_t trans_b,
                       int32_t iters) {
   if (M <= 0 || N <= 0 || K <= 0 || iters < 1 || iters > 10000) return -1.0;
   float *A = malloc(sizeof(float) * (size_t)(M * K));
   float *B = malloc(sizeof(float) * (size_t)(K * N));
   float *Cm = malloc(sizeof(float) * (size_t)(M * N));
   double *times = malloc(sizeof(double) * (size_t)iters);
   double result = -1.0;
   if (A && B && Cm && times) {
      hrm_rng rng;
      hrm_rng_init(&rng, 1);
      for (int64_t i = 0; i < M * K; i++) A[i] = (float)hrm_rng_uniform(&rng) - 0.5f;
      for (int64_t i = 0; i < K * N; i++) B[i] = (float)hrm_rng_uniform(&rng) - 0.5f;
      int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
      hrm_cpu_gemm_linear(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, Cm, N); /* warm-up */
      for (int32_t i = 0; i < iters; i++) {
         double t0 = omp_get_wtime();
         hrm_cpu_gemm_linear(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, Cm, N);
         times[i] = omp_get_wtime() - t0;
      }
      qsort(times, (size_t)iters, sizeof(double), compare_doubles);
      double t = times[iters / 2];
      result = t > 0 ? 2.0 * (double)M * (double)N * (double)K / t / 1e9 : -1.0;
   }
   free(A);
   free(B);
   free(Cm);
   free(times);
   return result;
}

static volatile sig_atomic_t interrupt_deferred, interrupt_pending;
static struct sigaction pipe_saved;   /* SIGPIPE's disposition before deferral */
static int pipe_ignored;

/* While deferred, SIGPIPE is ignored as well: the Ctrl-C that asks a run to stop also kills a
 * `| tee log` reader, and the run's next progress line must fail (EPIPE), not kill the process
 * before its save. The previous disposition comes back when deferral ends. */
void hrm_interrupt_defer(int32_t on) {
   interrupt_deferred = on != 0;
   if (!on) interrupt_pending = 0;
   if (on && !pipe_ignored) {
      struct sigaction ign;
      memset(&ign, 0, sizeof ign);
      ign.sa_handler = SIG_IGN;
      sigemptyset(&ign.sa_mask);
      pipe_ignored = sigaction(SIGPIPE, &ign, &pipe_saved) == 0;
   } else if (!on && pipe_ignored) {
      sigaction(SIGPIPE, &pipe_saved, NULL);
      pipe_ignored = 0;
   }
}

int32_t hrm_sigpipe_ignore(int32_t on) {
   struct sigaction sa, old;
   memset(&sa, 0, sizeof sa);
   sa.sa_handler = on ? SIG_IGN : SIG_DFL;
   sigemptyset(&sa.sa_mask);
   if (sigaction(SIGPIPE, &sa, &old) != 0) return -1;
   return old.sa_handler == SIG_IGN;
}

int32_t hrm_interrupt_deferred(void) { return interrupt_deferred && !interrupt_pending; }

void hrm_interrupt_request(void) { interrupt_pending = 1; }

int32_t hrm_interrupt_take(void) {
   int32_t p = interrupt_pending;
   interrupt_pending = 0;
   return p;
}
