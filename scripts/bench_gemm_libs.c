/* bench_gemm_libs.c — one GEMM library's fp32 and bf16 speed on the hrm_v1 training step's
 * linear-layer GEMMs, for scripts/bench_gemm_libs.sh, which builds it once per library:
 * -DGEMM_DNNL against oneDNN 2.x or 3.x (fp32: dnnl_sgemm, as core/cpu/gemm.c calls it; bf16: a
 * matmul primitive with bf16 src and weights and f32 dst), -DGEMM_MKL against oneMKL (cblas_sgemm,
 * cblas_gemm_bf16bf16f32). bf16 operands are converted before timing: library speed only.
 *
 *   bench_gemm_libs ITERS THREADS  ->  one line "library<TAB>fp32 GFLOP/s<TAB>bf16 GFLOP/s"
 *
 * Per shape, the median of ITERS timed runs after a warm-up; the step's rate is its GEMM FLOPs
 * over the sum of count x median time (each shape weighted by its FLOPs, as scripts/bench.lua's
 * "GEMM library" line). Two elements of each result are checked against a double-precision dot
 * product, so a wrong layout cannot pass as a fast one. A benchmark: it asserts nothing.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#elif defined(GEMM_MKL)
#include <mkl.h>
#else
#error "build with -DGEMM_DNNL or -DGEMM_MKL"
#endif

/* row-major C(M,N) = op(A) op(B); op transposes where the flag is set; `count` per training step */
typedef struct { int64_t M, N, K; int ta, tb, count; } shape;

enum { B = 32, T = 82, BT = B * T, D = 512, I = 1536, V = 11, S = 81, FWD = 48, GRAD = 8 };
/* a linear layer's forward y = x Wᵀ, input gradient dx = dy W, weight gradient dW = dyᵀ x */
#define LINEAR(out, in) \
   {BT, out, in, 0, 1, FWD}, {BT, in, out, 0, 0, GRAD}, {out, in, BT, 1, 0, GRAD}
static const shape step_shapes[] = {
   LINEAR(3 * D, D), LINEAR(D, D), LINEAR(2 * I, D), LINEAR(D, I),  // qkv, o, gate_up, down
   {B * S, V, D, 0, 1, 1}, {B * S, D, V, 0, 0, 1}, {V, D, B * S, 1, 0, 1},  // lm_head
};
enum { NSHAPES = sizeof step_shapes / sizeof step_shapes[0] };

static double now(void) {
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint16_t to_bf16(float f) {  // round to nearest even
   uint32_t u;
   memcpy(&u, &f, sizeof u);
   return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t h) {
   uint32_t u = (uint32_t)h << 16;
   float f;
   memcpy(&f, &u, sizeof f);
   return f;
}

/* ---- the library: prepare once per shape, run many times ------------------------------------ */
typedef struct {
   const shape *s;
   int bf16;
   const void *a, *b;  // float or bf16 (uint16_t) operands
   float *c;
#if defined(GEMM_DNNL)
   dnnl_primitive_t prim;
   dnnl_memory_t mem[3];
#endif
} gemm_run;

#if defined(GEMM_DNNL)
static dnnl_engine_t engine;
static dnnl_stream_t stream;

static const char *library_name(void) {
   static char name[64];
   const dnnl_version_t *v = dnnl_version();
   snprintf(name, sizeof name, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
   return name;
}

/* A bf16 matmul primitive for r->s over r's buffers; 0 on success. The only place the 2.x and 3.x
 * APIs differ: 3.x memory descriptors are opaque handles, created and destroyed. */
static int dnnl_prepare(gemm_run *r) {
   const shape *s = r->s;
   const dnnl_dims_t ad = {s->M, s->K}, bd = {s->K, s->N}, cd = {s->M, s->N};
   const dnnl_dims_t as = {s->ta ? 1 : s->K, s->ta ? s->M : 1};
   const dnnl_dims_t bs = {s->tb ? 1 : s->N, s->tb ? s->K : 1}, cs = {s->N, 1};
   dnnl_primitive_desc_t pd = NULL;
   int ok;
#if DNNL_VERSION_MAJOR >= 3
   dnnl_memory_desc_t md[3] = {NULL, NULL, NULL};
   ok = dnnl_memory_desc_create_with_strides(&md[0], 2, ad, dnnl_bf16, as) == dnnl_success &&
        dnnl_memory_desc_create_with_strides(&md[1], 2, bd, dnnl_bf16, bs) == dnnl_success &&
        dnnl_memory_desc_create_with_strides(&md[2], 2, cd, dnnl_f32, cs) == dnnl_success &&
        dnnl_matmul_primitive_desc_create(&pd, engine, md[0], md[1], NULL, md[2], NULL) ==
           dnnl_success;
   const_dnnl_memory_desc_t desc[3] = {md[0], md[1], md[2]};
#else
   dnnl_memory_desc_t md[3];
   dnnl_matmul_desc_t mm;
   ok = dnnl_memory_desc_init_by_strides(&md[0], 2, ad, dnnl_bf16, as) == dnnl_success &&
        dnnl_memory_desc_init_by_strides(&md[1], 2, bd, dnnl_bf16, bs) == dnnl_success &&
        dnnl_memory_desc_init_by_strides(&md[2], 2, cd, dnnl_f32, cs) == dnnl_success &&
        dnnl_matmul_desc_init(&mm, &md[0], &md[1], NULL, &md[2]) == dnnl_success &&
        dnnl_primitive_desc_create(&pd, &mm, NULL, engine, NULL) == dnnl_success;
   const dnnl_memory_desc_t *desc[3] = {&md[0], &md[1], &md[2]};
#endif
   void *buf[3] = {(void *)r->a, (void *)r->b, r->c};
   for (int i = 0; i < 3; i++)
      ok = ok && dnnl_memory_create(&r->mem[i], desc[i], engine, buf[i]) == dnnl_success;
   ok = ok && dnnl_primitive_create(&r->prim, pd) == dnnl_success;
#if DNNL_VERSION_MAJOR >= 3
   for (int i = 0; i < 3; i++) dnnl_memory_desc_destroy(md[i]);
#endif
   if (pd) dnnl_primitive_desc_destroy(pd);
   return ok ? 0 : -1;
}
#else
static const char *library_name(void) {
   static char name[64];
   MKLVersion v;
   mkl_get_version(&v);
   snprintf(name, sizeof name, "oneMKL %d.%d", v.MajorVersion, v.UpdateVersion);  // 2026 Update 2
   return name;
}
#endif

static int gemm_prepare(gemm_run *r) {
#if defined(GEMM_DNNL)
   if (!engine && (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
                   dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success))
      return -1;
   if (r->bf16) return dnnl_prepare(r);
#else
   (void)r;  // MKL takes the operands at each call
#endif
   return 0;
}

static int gemm_execute(const gemm_run *r) {
   const shape *s = r->s;
   const int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
#if defined(GEMM_DNNL)
   if (!r->bf16)
      return dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->M, s->N, s->K, 1.0f, r->a, lda,
                        r->b, ldb, 0.0f, r->c, s->N) == dnnl_success ? 0 : -1;
   const dnnl_exec_arg_t args[3] = {
      {DNNL_ARG_SRC, r->mem[0]}, {DNNL_ARG_WEIGHTS, r->mem[1]}, {DNNL_ARG_DST, r->mem[2]}};
   return dnnl_primitive_execute(r->prim, stream, 3, args) == dnnl_success &&
          dnnl_stream_wait(stream) == dnnl_success ? 0 : -1;
#else
   const CBLAS_TRANSPOSE ta = s->ta ? CblasTrans : CblasNoTrans;
   const CBLAS_TRANSPOSE tb = s->tb ? CblasTrans : CblasNoTrans;
   if (r->bf16)
      cblas_gemm_bf16bf16f32(CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, r->a, lda, r->b, ldb,
                             0.0f, r->c, s->N);
   else
      cblas_sgemm(CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, r->a, lda, r->b, ldb, 0.0f, r->c,
                  s->N);
   return 0;
#endif
}

static void gemm_release(gemm_run *r) {
#if defined(GEMM_DNNL)
   if (r->prim) dnnl_primitive_destroy(r->prim);
   for (int i = 0; i < 3; i++)
      if (r->mem[i]) dnnl_memory_destroy(r->mem[i]);
#else
   (void)r;
#endif
}

/* ---- the measurement ------------------------------------------------------------------------ */
static int by_value(const void *x, const void *y) {
   const double a = *(const double *)x, b = *(const double *)y;
   return (a > b) - (a < b);
}

/* Element (i, j) of op(A) op(B) in double precision, from the operands the library was given. */
static double reference(const gemm_run *r, int64_t i, int64_t j) {
   const shape *s = r->s;
   double sum = 0.0;
   for (int64_t k = 0; k < s->K; k++) {
      const int64_t ai = s->ta ? k * s->M + i : i * s->K + k;
      const int64_t bi = s->tb ? j * s->K + k : k * s->N + j;
      sum += r->bf16 ? (double)from_bf16(((const uint16_t *)r->a)[ai]) *
                          from_bf16(((const uint16_t *)r->b)[bi])
                     : (double)((const float *)r->a)[ai] * ((const float *)r->b)[bi];
   }
   return sum;
}

/* The median seconds of `iters` runs of shape s after a warm-up; < 0 on a failure or a wrong
 * result. a32/b32 hold fp32 operands, a16/b16 room for their bf16 copies. */
static double median_seconds(const shape *s, int bf16, int iters, const float *a32,
                             const float *b32, uint16_t *a16, uint16_t *b16, float *c,
                             double *times) {
   gemm_run r = {.s = s, .bf16 = bf16, .a = a32, .b = b32, .c = c};
   if (bf16) {
      for (int64_t i = 0; i < s->M * s->K; i++) a16[i] = to_bf16(a32[i]);
      for (int64_t i = 0; i < s->K * s->N; i++) b16[i] = to_bf16(b32[i]);
      r.a = a16, r.b = b16;
   }
   double median = -1.0;
   if (gemm_prepare(&r) == 0 && gemm_execute(&r) == 0) {
      int ok = 1;
      for (int i = 0; i < iters && ok; i++) {
         const double t0 = now();
         ok = gemm_execute(&r) == 0;
         times[i] = now() - t0;
      }
      const int64_t last_i = s->M - 1, last_j = s->N - 1;
      const double want0 = reference(&r, 0, 0), want1 = reference(&r, last_i, last_j);
      ok = ok && fabs(c[0] - want0) <= 1e-3 * (1 + fabs(want0)) &&
           fabs(c[last_i * s->N + last_j] - want1) <= 1e-3 * (1 + fabs(want1));
      if (ok) {
         qsort(times, (size_t)iters, sizeof *times, by_value);
         median = 0.5 * (times[(iters - 1) / 2] + times[iters / 2]);
      }
   }
   gemm_release(&r);
   if (median < 0)
      fprintf(stderr, "bench_gemm_libs: %s %s GEMM M=%lld N=%lld K=%lld ta=%d tb=%d failed or "
              "gave a wrong result\n", library_name(), bf16 ? "bf16" : "fp32", (long long)s->M,
              (long long)s->N, (long long)s->K, s->ta, s->tb);
   return median;
}

int main(int argc, char **argv) {
   const int iters = argc > 1 ? atoi(argv[1]) : 0, threads = argc > 2 ? atoi(argv[2]) : 0;
   if (argc != 3 || iters < 1 || threads < 1) {
      fprintf(stderr, "usage: bench_gemm_libs ITERS THREADS (both positive integers)\n");
      return 2;
   }
   omp_set_num_threads(threads);
#if defined(GEMM_MKL)
   mkl_set_num_threads(threads);
#endif
   int64_t most = 0;  // the largest operand or result, in elements
   for (int k = 0; k < NSHAPES; k++) {
      const shape *s = &step_shapes[k];
      const int64_t sizes[3] = {s->M * s->K, s->K * s->N, s->M * s->N};
      for (int i = 0; i < 3; i++) most = sizes[i] > most ? sizes[i] : most;
   }
   float *a32 = malloc((size_t)most * sizeof *a32), *b32 = malloc((size_t)most * sizeof *b32);
   float *c = malloc((size_t)most * sizeof *c);
   uint16_t *a16 = malloc((size_t)most * sizeof *a16), *b16 = malloc((size_t)most * sizeof *b16);
   double *times = malloc((size_t)iters * sizeof *times);
   if (!a32 || !b32 || !c || !a16 || !b16 || !times) {
      fprintf(stderr, "bench_gemm_libs: out of memory\n");
      return 1;
   }
   uint32_t state = 1;  // operands uniform in [-1, 1)
   for (int64_t i = 0; i < most; i++) {
      state = state * 1664525u + 1013904223u, a32[i] = (float)(state >> 8) / (1 << 23) - 1.0f;
      state = state * 1664525u + 1013904223u, b32[i] = (float)(state >> 8) / (1 << 23) - 1.0f;
   }
   double rate[2];
   for (int bf16 = 0; bf16 < 2; bf16++) {
      double flops = 0.0, seconds = 0.0;
      for (int k = 0; k < NSHAPES && seconds >= 0; k++) {
         const shape *s = &step_shapes[k];
         const double t = median_seconds(s, bf16, iters, a32, b32, a16, b16, c, times);
         flops += 2.0 * (double)s->M * (double)s->N * (double)s->K * s->count;
         seconds = t < 0 ? -1.0 : seconds + t * s->count;
      }
      rate[bf16] = seconds > 0 ? flops / seconds / 1e9 : 0.0;
   }
   printf("%s\t%.1f\t%.1f\n", library_name(), rate[0], rate[1]);
   free(a32), free(b32), free(c), free(a16), free(b16), free(times);
   return rate[0] > 0 && rate[1] > 0 ? 0 : 1;
}
