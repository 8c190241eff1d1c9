/* gemm.c — the CPU GEMM entry point over oneDNN's dnnl_sgemm or OpenBLAS's cblas_sgemm.
 *
 * Both libraries run on the process's OpenMP threads (oneDNN's Debian build uses the OMP
 * runtime; OpenBLAS is told the same count). Double precision, needed only for tensor
 * utilities, goes to OpenBLAS when it is the library and to a plain blocked loop otherwise.
 *
 * The linear layers' GEMMs go through hrm_cpu_gemm_linear: sgemm by default, or, with the bf16
 * option (oneDNN builds), both operands rounded to bf16 (nearest even) into scratch buffers and
 * multiplied by a oneDNN matmul primitive with fp32 accumulation and fp32 output, as the
 * reference's bf16 forward does. Primitives are created once per shape and kept. A model step in
 * bf16 casts its whole parameter block once (hrm_cpu_gemm_weights_bf16); an operand inside that
 * block is then read from the cast copy instead of being rounded again on every call, and a weight
 * operand (B) from a copy in the blocked layout the primitive chose, reordered once per step, so
 * that the kernels skip their per-call packing of B.
 *
 * Signals are held during every library call (see hold_signals): oneDNN 2.x's generated f32
 * GEMM kernels run with the stack pointer inside a heap workspace, so a signal frame pushed
 * there would be written over the heap.
 */
#include "gemm.h"

#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../alloc.h"
#include "../hrm.h"
#include "../tensor_util.h"

#if defined(HRM_GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#else
#include <cblas.h>
#endif

/* ---- signals ------------------------------------------------------------------------------------
 * oneDNN 2.x's generated f32 GEMM kernels (jit_avx512_common_gemm_f32, jit_avx_gemm_f32) point rsp
 * into a heap workspace while they run (fixed upstream in oneDNN 3.11, uxlfoundation/oneDNN#4845);
 * the kernel pushes a signal frame (~3 KB with the AVX-512 state) at rsp, over the heap, and glibc
 * aborts later ("corrupted size vs. prev_size") — what Ctrl-C did to training runs. So every
 * asynchronous signal is held pending on the calling thread for the length of a library call and
 * handled right after it, and blocked for good on the OpenMP worker threads, which only compute.
 * Faults (SEGV, BUS, FPE, ILL, TRAP, ABRT, SYS) stay deliverable: a bad access still stops at once.
 * spec/c/test_gemm_signals.c aborts without this. */

static _Thread_local int held_for_good;  // an OpenMP worker whose asynchronous signals are blocked

static void async_signals(sigset_t *set) {
   static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
   sigfillset(set);
   for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) sigdelset(set, faults[i]);
}

/* Block the asynchronous signals on this thread (saving its mask in *old; returns 0 when there is
 * nothing to restore) and, at the top level, on every worker of the team the library will use.
 * A worker keeps its mask for good, but libgomp ends surplus workers when a smaller team follows
 * (oneDNN sizes its teams to the problem) and starts new ones, with the mask of whichever thread
 * starts that team. With 2 threads teams are 1 or 2 and the pool never changes, so one visit per
 * thread count does; with more, the team is visited on every top-level call (a parallel region in
 * which workers whose flag is set do nothing). */
static int visited_threads;  // the team size whose workers were all blocked (<= 2 threads)

/* A serial section (hrm_cpu_gemm_serial: attention's loop of per-head GEMMs) holds the signals
 * once for its whole length on the thread that opens it, instead of twice per GEMM. */
static _Thread_local int section_open, section_held;
static _Thread_local sigset_t section_mask;  // the opening thread's mask before the section

static int hold_signals(sigset_t *old) {
   if (held_for_good || section_open) return 0;
   sigset_t set;
   async_signals(&set);
   if (omp_get_level() > 0 && omp_get_thread_num() != 0) {
      pthread_sigmask(SIG_BLOCK, &set, NULL); /* a worker calling the library from a loop */
      held_for_good = 1;
      return 0;
   }
   pthread_sigmask(SIG_BLOCK, &set, old);
   const int n = omp_get_max_threads();
   if (omp_get_level() == 0 && n > 1 && (n > 2 || n != visited_threads)) {
#pragma omp parallel
      if (omp_get_thread_num() != 0 && !held_for_good) {
         pthread_sigmask(SIG_BLOCK, &set, NULL);
         held_for_good = 1;
      }
      visited_threads = n;
   }
   return 1;
}

/* Restore the mask saved by hold_signals; a signal that arrived meanwhile is handled now. */
static void release_signals(int held, const sigset_t *old) {
   if (held) pthread_sigmask(SIG_SETMASK, old, NULL);
}

void hrm_cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc) {
   if (M <= 0 || N <= 0) return;
   sigset_t old;
   const int held = hold_signals(&old);
#if defined(HRM_GEMM_DNNL)
   dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C,
              ldc);
#else
   cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
               (int)ldb, beta, C, (int)ldc);
#endif
   release_signals(held, &old);
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

#if defined(HRM_GEMM_DNNL)
static char mm_impl[64];  // oneDNN's name for the last bf16 matmul it made (brg:avx512_core_bf16...)
#endif

const char *hrm_cpu_gemm_name(void) {
   static char name[160];
#if defined(HRM_GEMM_DNNL)
   const dnnl_version_t *v = dnnl_version();
   snprintf(name, sizeof name, "oneDNN %d.%d.%d (OpenMP)%s%s", v->major, v->minor, v->patch,
            mm_impl[0] ? ", bf16 matmul " : "", mm_impl);
#else
   snprintf(name, sizeof name, "OpenBLAS %s", openblas_get_config());
#endif
   return name;
}

#if !defined(HRM_GEMM_DNNL)
static int blas_threads;  // OpenBLAS's own thread count, restored after a serial section
#endif

void hrm_cpu_gemm_set_threads(int n) {
#if defined(HRM_GEMM_DNNL)
   (void)n; /* oneDNN follows omp_set_num_threads */
#else
   openblas_set_num_threads(n);
   blas_threads = n;
#endif
}

void hrm_cpu_gemm_serial(int on) {
   if (on && !section_open) {
      section_held = hold_signals(&section_mask);
      section_open = 1;
   } else if (!on && section_open) {
      section_open = 0;
      release_signals(section_held, &section_mask);
   }
#if defined(HRM_GEMM_DNNL)
   (void)on; /* oneDNN runs single-threaded inside an OpenMP parallel region by itself */
#else
   /* a pthread OpenBLAS would start its own threads from every OpenMP thread */
   if (blas_threads == 0) blas_threads = openblas_get_num_threads();
   openblas_set_num_threads(on ? 1 : blas_threads);
#endif
}

/* ---- the linear layers' GEMMs, optionally in bf16 ------------------------------------------ */

static int gemm_dtype = HRM_DTYPE_F32;

#if defined(HRM_GEMM_DNNL)
typedef struct mm_prim {
   int64_t M, N, K, ldc;
   int ta, tb, nthr;  // nthr: OpenMP threads when created (oneDNN plans its split for them)
   int packed;        // B in the layout oneDNN chose (w) rather than plain (b)
   float alpha, beta;
   dnnl_memory_desc_t a, b, c, w;
   dnnl_primitive_t prim;
} mm_prim;

/* A weight of the step's cast block in a primitive's chosen layout (md), kept across steps and
 * reordered from the cast once per cast (epoch). */
typedef struct packed_w {
   int64_t off;               // the weight's first element in the parameter block
   dnnl_memory_desc_t from;   // how the GEMM reads it there (W or Wᵀ: a square W has both)
   dnnl_memory_desc_t md;
   dnnl_memory_t mem;         // the packed copy (allocated by oneDNN, kept)
   dnnl_primitive_t reorder;  // plain bf16 (the primitive's b) -> md
   unsigned epoch;
} packed_w;
enum { PACKED_MAX = 256 };  // beyond this many (weight, layout) pairs B stays plain

enum { MM_CACHE = 64 };
static pthread_mutex_t mm_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t mm_engine;
static dnnl_stream_t mm_stream;
static mm_prim mm_cache[MM_CACHE];
static int mm_count;
static uint16_t *mm_buf[2];  // bf16 copies of A and B
static size_t mm_cap[2];
/* the parameter block of the model step in progress and its bf16 cast (w_count 0: none) */
static const float *w_base;
static int64_t w_count;
static uint16_t *w_bf16;  // (w_cap)
static size_t w_cap;
static unsigned w_epoch;  // counts the casts
static packed_w packed[PACKED_MAX];
static int npacked;

/* dst (rows, cols) dense = bf16(src (rows, cols) with leading dimension ld). */
static void to_bf16(uint16_t *dst, const float *src, int64_t rows, int64_t cols, int64_t ld) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
   for (int64_t i = 0; i < rows; i++) {
      const float *s = src + i * ld;
      uint16_t *d = dst + i * cols;
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) d[j] = hrm_f32_to_bf16(s[j]);
   }
}

static int mm_reserve(int which, size_t n) {
   if (mm_cap[which] >= n) return 1;
   uint16_t *p = hrm_buf_alloc(n * sizeof(uint16_t));
   if (!p) return 0;
   hrm_buf_free(mm_buf[which]);
   mm_buf[which] = p;
   mm_cap[which] = n;
   return 1;
}

/* An operand's bf16 copy inside the cast parameter block: X (rows, cols) with leading dimension
 * ld, or NULL when X is not (all) in the block or not dense. */
static const uint16_t *cast_weights(const float *X, int64_t rows, int64_t cols, int64_t ld) {
   if (w_count == 0 || ld != cols || X < w_base || X >= w_base + w_count) return NULL;
   if (rows * cols > w_count - (X - w_base)) return NULL;
   return w_bf16 + (X - w_base);
}

/* The matmul primitive for this call's shape, created on first use (NULL if oneDNN refuses). */
static mm_prim *mm_get(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                       int64_t ldc, int pack) {
   const int nthr = omp_get_max_threads();
   for (int i = 0; i < mm_count; i++) {
      mm_prim *e = &mm_cache[i];
      if (e->M == M && e->N == N && e->K == K && e->ta == ta && e->tb == tb &&
          e->alpha == alpha && e->beta == beta && e->ldc == ldc && e->nthr == nthr &&
          e->packed == pack)
         return e;
   }
   if (!mm_engine && (dnnl_engine_create(&mm_engine, dnnl_cpu, 0) != dnnl_success ||
                      dnnl_stream_create(&mm_stream, mm_engine, dnnl_stream_default_flags) !=
                         dnnl_success))
      return NULL;
   mm_prim *e = &mm_cache[mm_count < MM_CACHE ? mm_count : MM_CACHE - 1];
   if (mm_count == MM_CACHE) dnnl_primitive_destroy(e->prim);  // full: reuse the last slot
   memset(e, 0, sizeof *e);
   /* the bf16 copies are dense in the stored layout: A (M, K) or (K, M), B (K, N) or (N, K) */
   const dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
   const dnnl_dims_t as = {ta ? 1 : K, ta ? M : 1}, bs = {tb ? 1 : N, tb ? K : 1};
   const dnnl_dims_t cs = {ldc, 1};
   if (dnnl_memory_desc_init_by_strides(&e->a, 2, ad, dnnl_bf16, as) != dnnl_success ||
       dnnl_memory_desc_init_by_strides(&e->b, 2, bd, dnnl_bf16, bs) != dnnl_success ||
       dnnl_memory_desc_init_by_strides(&e->c, 2, cd, dnnl_f32, cs) != dnnl_success)
      return NULL;
   e->w = e->b;
   if (pack && dnnl_memory_desc_init_by_tag(&e->w, 2, bd, dnnl_bf16, dnnl_format_tag_any) !=
                  dnnl_success)
      return NULL;
   dnnl_primitive_attr_t attr = NULL;
   dnnl_post_ops_t po = NULL;
   dnnl_matmul_desc_t md;
   dnnl_primitive_desc_t pd = NULL;
   int ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
            dnnl_matmul_desc_init(&md, &e->a, &e->w, NULL, &e->c) == dnnl_success;
   if (ok && alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) ==
                                 dnnl_success;
   if (ok && beta != 0.0f) {
      ok = dnnl_post_ops_create(&po) == dnnl_success &&
           dnnl_post_ops_append_sum(po, beta) == dnnl_success &&
           dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
   }
   ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, mm_engine, NULL) == dnnl_success &&
        dnnl_primitive_create(&e->prim, pd) == dnnl_success;
   const char *impl = NULL;
   if (ok && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
       impl)
      snprintf(mm_impl, sizeof mm_impl, "%s", impl);
   if (ok) e->w = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
   if (pd) dnnl_primitive_desc_destroy(pd);
   if (po) dnnl_post_ops_destroy(po);
   if (attr) dnnl_primitive_attr_destroy(attr);
   if (!ok) return NULL;
   e->M = M, e->N = N, e->K = K, e->ta = ta, e->tb = tb, e->alpha = alpha, e->beta = beta;
   e->ldc = ldc, e->nthr = nthr, e->packed = pack;
   if (mm_count < MM_CACHE) mm_count++;
   return e;
}

/* Runs reorder r from src (md from, over ptr) into dst; 1 when done. */
static int run_reorder(dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *ptr,
                       dnnl_memory_t dst) {
   dnnl_memory_t src = NULL;
   int ok = dnnl_memory_create(&src, from, mm_engine, (void *)ptr) == dnnl_success;
   if (ok) {
      const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
      ok = dnnl_primitive_execute(r, mm_stream, 2, args) == dnnl_success &&
           dnnl_stream_wait(mm_stream) == dnnl_success;
   }
   if (src) dnnl_memory_destroy(src);
   return ok;
}

/* The cast weight at b16 in primitive e's layout, reordered from this cast if it was not yet;
 * NULL when it cannot be kept (the caller then uses the plain layout). */
static packed_w *packed_weight(const mm_prim *e, const uint16_t *b16) {
   const int64_t off = b16 - w_bf16;
   packed_w *p = NULL;
   for (int i = 0; i < npacked && !p; i++)
      if (packed[i].off == off && dnnl_memory_desc_equal(&packed[i].from, &e->b) &&
          dnnl_memory_desc_equal(&packed[i].md, &e->w))
         p = &packed[i];
   if (!p) {
      if (npacked == PACKED_MAX) return NULL;
      p = &packed[npacked];
      memset(p, 0, sizeof *p);
      dnnl_primitive_desc_t rpd = NULL;
      int ok = dnnl_memory_create(&p->mem, &e->w, mm_engine, DNNL_MEMORY_ALLOCATE) ==
                  dnnl_success &&
               dnnl_reorder_primitive_desc_create(&rpd, &e->b, mm_engine, &e->w, mm_engine,
                                                  NULL) == dnnl_success &&
               dnnl_primitive_create(&p->reorder, rpd) == dnnl_success;
      if (rpd) dnnl_primitive_desc_destroy(rpd);
      if (!ok) {
         if (p->mem) dnnl_memory_destroy(p->mem);
         return NULL;
      }
      p->off = off, p->from = e->b, p->md = e->w, p->epoch = w_epoch - 1;
      npacked++;
   }
   if (p->epoch != w_epoch) {
      if (!run_reorder(p->reorder, &e->b, b16, p->mem)) return NULL;
      p->epoch = w_epoch;
   }
   return p;
}

/* 1 when done, 0 when the caller should fall back to sgemm. */
static int gemm_bf16(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                     float *C, int64_t ldc) {
   pthread_mutex_lock(&mm_lock);
   int done = 0;
   const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
   const uint16_t *a16 = cast_weights(A, ar, ac, lda), *b16 = cast_weights(B, br, bc, ldb);
   mm_prim *e = b16 ? mm_get(ta, tb, M, N, K, alpha, beta, ldc, 1) : NULL;
   packed_w *pw = e ? packed_weight(e, b16) : NULL;
   if (!pw) e = mm_get(ta, tb, M, N, K, alpha, beta, ldc, 0);
   if (e && (a16 || mm_reserve(0, (size_t)(M * K))) &&
       (b16 || mm_reserve(1, (size_t)(K * N)))) {
      if (!a16) to_bf16(mm_buf[0], A, ar, ac, lda);
      if (!b16) to_bf16(mm_buf[1], B, br, bc, ldb);
      dnnl_memory_t ma = NULL, mb = pw ? pw->mem : NULL, mc = NULL;
      if (dnnl_memory_create(&ma, &e->a, mm_engine, a16 ? (void *)a16 : mm_buf[0]) ==
             dnnl_success &&
          (pw || dnnl_memory_create(&mb, &e->b, mm_engine, b16 ? (void *)b16 : mm_buf[1]) ==
                    dnnl_success) &&
          dnnl_memory_create(&mc, &e->c, mm_engine, C) == dnnl_success) {
         const dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
         sigset_t old;
         const int held = hold_signals(&old);
         done = dnnl_primitive_execute(e->prim, mm_stream, 3, args) == dnnl_success &&
                dnnl_stream_wait(mm_stream) == dnnl_success;
         release_signals(held, &old);
      }
      if (ma) dnnl_memory_destroy(ma);
      if (mb && !pw) dnnl_memory_destroy(mb);
      if (mc) dnnl_memory_destroy(mc);
   }
   pthread_mutex_unlock(&mm_lock);
   return done;
}
#endif

int hrm_cpu_gemm_set_dtype(int dtype) {
   if (dtype == HRM_DTYPE_F32) {
      gemm_dtype = dtype;
      return 0;
   }
#if defined(HRM_GEMM_DNNL)
   if (dtype == HRM_DTYPE_BF16) {
      /* probe: oneDNN must have a bf16 matmul for this CPU */
      float a[4] = {1, 2, 3, 4}, c[4];
      if (!gemm_bf16(0, 0, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2)) return -1;
      gemm_dtype = dtype;
      return 0;
   }
#endif
   return -1;
}

int hrm_cpu_gemm_dtype(void) { return gemm_dtype; }

int hrm_cpu_gemm_weights_bf16(const float *base, int64_t n) {
#if defined(HRM_GEMM_DNNL)
   pthread_mutex_lock(&mm_lock);
   int ok = 1;
   w_count = 0;
   if (base && n > 0) {
      if (w_cap < (size_t)n) {
         uint16_t *p = hrm_buf_alloc((size_t)n * sizeof(uint16_t));
         if (p) {
            hrm_buf_free(w_bf16);
            w_bf16 = p;
            w_cap = (size_t)n;
         }
         ok = p != NULL;
      }
      if (ok) {
#pragma omp parallel for schedule(static)
         for (int64_t i = 0; i < n; i++) w_bf16[i] = hrm_f32_to_bf16(base[i]);
         w_base = base;
         w_count = n;
         w_epoch++;
      }
   }
   pthread_mutex_unlock(&mm_lock);
   return ok ? 0 : -1;
#else
   (void)base;
   (void)n;
   return 0; /* no bf16 GEMMs: nothing to cast */
#endif
}

void hrm_cpu_gemm_linear(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc) {
   if (M <= 0 || N <= 0) return;
#if defined(HRM_GEMM_DNNL)
   if (gemm_dtype == HRM_DTYPE_BF16 && K > 0 &&
       gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
      return;
#endif
   hrm_cpu_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
