/* test_simd.c — the vectorised kernels against their scalar twins (core/cpu/scalar.h).
 *
 * Each kernel runs twice on the same input, once as built (AVX-512 intrinsics, `omp simd`) and
 * once in the scalar reference mode, at every length that occurs: sequence lengths T = 1..130
 * with head sizes 16..128 for attention (RoPE and plain, forward and backward), every even head
 * size 2..128 for RoPE rows, widths 1..130 plus the configs' sizes for SwiGLU and residual +
 * RMSNorm (odd hidden sizes included), and the 16-lane expf lane by lane. Outputs sit between
 * sentinel floats, so a vector tail that writes past a row's end fails here even without the
 * guard build. Differences allowed: summation order (softmax, norms) and SwiGLU's refined
 * reciprocal; everything elementwise-identical must match to 1 ulp-level tolerances.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/fastmath.h"
#include "cpu/scalar.h"
#include "cpu/ops.h"

enum { PAD = 32 };  // sentinel floats on each side of every output
static const float SENTINEL = -12345.5f;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float urand(void) {  // [-1, 1)
   rng_state ^= rng_state << 13;
   rng_state ^= rng_state >> 7;
   rng_state ^= rng_state << 17;
   return (float)((double)(rng_state >> 11) / 4503599627370496.0 - 1.0);
}

/* n floats between PAD sentinels on each side; the returned pointer is the first element. */
static float *padded(int64_t n) {
   float *p = malloc((size_t)(n + 2 * PAD) * sizeof(float));
   for (int64_t i = 0; i < n + 2 * PAD; i++) p[i] = SENTINEL;
   return p + PAD;
}
static void padded_free(float *p) { free(p ? p - PAD : NULL); }
static int sentinels_intact(const float *p, int64_t n) {
   for (int i = 1; i <= PAD; i++)
      if (p[-i] != SENTINEL || p[n - 1 + i] != SENTINEL) return 0;
   return 1;
}
static void fill(float *x, int64_t n, float scale) {
   for (int64_t i = 0; i < n; i++) x[i] = scale * urand();
}

/* max |a - b| over n, relative to max(|b|, floor). NaN anywhere counts as infinite. */
static double gap(const float *a, const float *b, int64_t n, double floor) {
   double worst = 0.0, big = floor;
   for (int64_t i = 0; i < n; i++) big = fmax(big, fabs((double)b[i]));
   for (int64_t i = 0; i < n; i++) {
      const double d = fabs((double)a[i] - b[i]);
      if (d != d) return INFINITY;
      worst = fmax(worst, d);
   }
   return worst / big;
}

typedef struct { const char *name; double worst; int bad_pad; } tally;
static void note(tally *t, double g, int pad_ok) {
   t->worst = fmax(t->worst, g);
   t->bad_pad += !pad_ok;
}
static void report(const tally *t, double tol) {
   printf("%-34s worst gap %.2e (tol %.0e)%s\n", t->name, t->worst, tol,
          t->bad_pad ? ", WRITES OUTSIDE ITS OUTPUT" : "");
   CHECK(t->worst <= tol);
   CHECK(t->bad_pad == 0);
}

/* ---- attention: T = 1..130, head sizes 16..128, RoPE and plain, forward and backward ---------- */

static void run_attention(int use_rope, int T, int NH, int HD, tally *fwd, tally *att_t,
                          tally *bwd) {
   const int B = 1, D = NH * HD;
   const int64_t nqkv = (int64_t)B * T * 3 * D, nout = (int64_t)B * T * D;
   const int64_t natt = (int64_t)B * NH * T * T;
   float *qkv0 = padded(nqkv), *dout = padded(nout);
   float *cos_t = padded((int64_t)T * HD), *sin_t = padded((int64_t)T * HD);
   fill(qkv0, nqkv, 2.0f);
   fill(dout, nout, 1.0f);
   hrm_cpu_rope_tables(cos_t, sin_t, T, HD, 10000.0);
   float *qkv[2], *out[2], *att[2], *dqkv[2], *datt[2];
   for (int m = 0; m < 2; m++) {
      hrm_cpu_set_scalar(m);
      qkv[m] = padded(nqkv);
      out[m] = padded(nout);
      att[m] = padded(natt);
      dqkv[m] = padded(nqkv);
      datt[m] = padded(natt);
      memcpy(qkv[m], qkv0, (size_t)nqkv * sizeof(float));
      if (use_rope) {
         hrm_cpu_rope_attention_forward(out[m], att[m], qkv[m], cos_t, sin_t, B, T, NH, HD);
         hrm_cpu_rope_attention_backward(dqkv[m], datt[m], dout, qkv[m], att[m], cos_t, sin_t, B,
                                         T, NH, HD);
      } else {
         hrm_cpu_attention_forward(out[m], att[m], qkv[m], B, T, NH, HD);
         hrm_cpu_attention_backward(dqkv[m], datt[m], dout, qkv[m], att[m], B, T, NH, HD);
      }
   }
   hrm_cpu_set_scalar(0);
   note(fwd, gap(out[0], out[1], nout, 1e-3), sentinels_intact(out[0], nout));
   note(att_t, gap(att[0], att[1], natt, 1e-3), sentinels_intact(att[0], natt));
   note(bwd, gap(dqkv[0], dqkv[1], nqkv, 1e-3), sentinels_intact(dqkv[0], nqkv));
   for (int m = 0; m < 2; m++) {
      padded_free(qkv[m]);
      padded_free(out[m]);
      padded_free(att[m]);
      padded_free(dqkv[m]);
      padded_free(datt[m]);
   }
   padded_free(qkv0);
   padded_free(dout);
   padded_free(cos_t);
   padded_free(sin_t);
}

/* Which (T, HD) pairs run: every T at HD 16 (two heads) and 64; at 32 and 128 every T up to 20
 * and past 120 and every third between; the plain (RoPE-free) path: HD 16 at every T. */
static int every_t(int use_rope, int HD, int T) {
   if (HD == 16) return 1;
   if (!use_rope) return T % 7 == 0;
   return HD == 64 || T <= 20 || T > 120 || T % 3 == 0;
}

static void test_attention(void) {
   static const int head_sizes[] = {16, 32, 64, 128};
   for (int use_rope = 1; use_rope >= 0; use_rope--) {
      tally fwd = {use_rope ? "rope attention forward" : "attention forward", 0, 0};
      tally att = {use_rope ? "rope attention probabilities" : "attention probabilities", 0, 0};
      tally bwd = {use_rope ? "rope attention backward" : "attention backward", 0, 0};
      for (size_t h = 0; h < sizeof head_sizes / sizeof head_sizes[0]; h++)
         for (int T = 1; T <= 130; T++)
            if (every_t(use_rope, head_sizes[h], T))
               run_attention(use_rope, T, head_sizes[h] == 16 ? 2 : 1, head_sizes[h], &fwd, &att,
                             &bwd);
      report(&fwd, 1e-5);
      report(&att, 1e-5);
      report(&bwd, 1e-5);
   }
}

/* ---- RoPE rows: every even head size 2..128, a row stride wider than the head ---------------- */

static void test_rope_rows(void) {
   tally t = {"rope rows (both signs)", 0, 0};
   const int T = 5;
   for (int HD = 2; HD <= 128; HD += 2) {
      const int64_t ld = HD + 3, n = (int64_t)T * ld;
      float *x0 = padded(n), *x[2], *cos_t = padded((int64_t)T * HD), *sin_t = padded((int64_t)T * HD);
      fill(x0, n, 2.0f);
      hrm_cpu_rope_tables(cos_t, sin_t, T, HD, 10000.0);
      for (float sign = -1.0f; sign <= 1.0f; sign += 2.0f) {
         for (int m = 0; m < 2; m++) {
            hrm_cpu_set_scalar(m);
            x[m] = padded(n);
            memcpy(x[m], x0, (size_t)n * sizeof(float));
            hrm_cpu_rope_rows(x[m], ld, T, HD, cos_t, sin_t, sign);
         }
         hrm_cpu_set_scalar(0);
         note(&t, gap(x[0], x[1], n, 1e-3), sentinels_intact(x[0], n));
         padded_free(x[0]);
         padded_free(x[1]);
      }
      padded_free(x0);
      padded_free(cos_t);
      padded_free(sin_t);
   }
   report(&t, 1e-6);
}

/* ---- SwiGLU, residual + RMSNorm: widths 1..130 and the configs' sizes --------------------------- */

static const int big_widths[] = {96, 128, 192, 256, 384, 512, 1024, 1536};
static int width(int k) { return k < 130 ? k + 1 : big_widths[k - 130]; }
enum { NWIDTHS = 130 + sizeof big_widths / sizeof big_widths[0] };

static void test_swiglu(void) {
   tally f = {"swiglu forward", 0, 0}, b = {"swiglu backward", 0, 0};
   const int64_t N = 3;
   for (int k = 0; k < NWIDTHS; k++) {
      const int I = width(k);
      float *gu = padded(N * 2 * I), *dy = padded(N * I), *out[2], *dgu[2];
      fill(gu, N * 2 * I, 6.0f);
      fill(dy, N * I, 1.0f);
      for (int m = 0; m < 2; m++) {
         hrm_cpu_set_scalar(m);
         out[m] = padded(N * I);
         dgu[m] = padded(N * 2 * I);
         hrm_cpu_swiglu_forward(out[m], gu, N, I);
         hrm_cpu_swiglu_backward(dgu[m], dy, gu, N, I);
      }
      hrm_cpu_set_scalar(0);
      note(&f, gap(out[0], out[1], N * I, 1e-3), sentinels_intact(out[0], N * I));
      note(&b, gap(dgu[0], dgu[1], N * 2 * I, 1e-3), sentinels_intact(dgu[0], N * 2 * I));
      for (int m = 0; m < 2; m++) {
         padded_free(out[m]);
         padded_free(dgu[m]);
      }
      padded_free(gu);
      padded_free(dy);
   }
   report(&f, 2e-6);
   report(&b, 2e-6);
}

static void test_norms(void) {
   tally res = {"residual add", 0, 0}, rf = {"rmsnorm forward", 0, 0};
   tally af = {"residual + rmsnorm forward", 0, 0}, rb = {"rmsnorm backward", 0, 0};
   tally rs = {"rmsnorm rstd", 0, 0};
   const int64_t N = 3;
   for (int k = 0; k < NWIDTHS; k++) {
      const int D = width(k);
      const int64_t n = N * D;
      float *a = padded(n), *b = padded(n), *dy = padded(n);
      float *sum[2], *y[2], *ya[2], *dx[2], *rstd[2], *rstda[2];
      fill(a, n, 3.0f);
      fill(b, n, 3.0f);
      fill(dy, n, 1.0f);
      for (int m = 0; m < 2; m++) {
         hrm_cpu_set_scalar(m);
         sum[m] = padded(n);
         y[m] = padded(n);
         ya[m] = padded(n);
         dx[m] = padded(n);
         rstd[m] = padded(N);
         rstda[m] = padded(N);
         hrm_cpu_residual_forward(sum[m], a, b, n);
         hrm_cpu_rmsnorm_forward(y[m], rstd[m], a, N, D, 1e-5f);
         hrm_cpu_add_rmsnorm_forward(ya[m], rstda[m], a, b, N, D, 1e-5f);
         hrm_cpu_rmsnorm_backward(dx[m], dy, y[m], rstd[m], N, D);
      }
      hrm_cpu_set_scalar(0);
      note(&res, gap(sum[0], sum[1], n, 1e-3), sentinels_intact(sum[0], n));
      note(&rf, gap(y[0], y[1], n, 1e-3), sentinels_intact(y[0], n));
      note(&af, gap(ya[0], ya[1], n, 1e-3), sentinels_intact(ya[0], n));
      note(&rb, gap(dx[0], dx[1], n, 1e-3), sentinels_intact(dx[0], n));
      note(&rs, fmax(gap(rstd[0], rstd[1], N, 1e-3), gap(rstda[0], rstda[1], N, 1e-3)),
           sentinels_intact(rstd[0], N) && sentinels_intact(rstda[0], N));
      for (int m = 0; m < 2; m++) {
         padded_free(sum[m]);
         padded_free(y[m]);
         padded_free(ya[m]);
         padded_free(dx[m]);
         padded_free(rstd[m]);
         padded_free(rstda[m]);
      }
      padded_free(a);
      padded_free(b);
      padded_free(dy);
   }
   report(&res, 0.0);
   report(&rf, 1e-6);
   report(&af, 1e-6);
   report(&rb, 1e-6);
   report(&rs, 1e-6);
}

/* ---- the 16-lane expf against the scalar one, lane by lane ----------------------------------- */

static void test_expf16(void) {
#if defined(__AVX512F__)
   double worst = 0.0;
   float in[16], out[16];
   for (int k = 0; k < 40000; k++) {
      for (int l = 0; l < 16; l++) in[l] = -100.0f + 200.0f * (float)(k * 16 + l) / (40000.0f * 16);
      _mm512_storeu_ps(out, hrm_expf16(_mm512_loadu_ps(in)));
      for (int l = 0; l < 16; l++) {
         const double s = hrm_expf(in[l]);
         worst = fmax(worst, fabs(out[l] - s) / s);
      }
   }
   printf("%-34s worst gap %.2e over [-100, 100]\n", "expf16 lanes vs hrm_expf", worst);
   CHECK(worst <= 2.5e-7);
#else
   printf("expf16: not built (no AVX-512)\n");
#endif
}

int main(void) {
   CHECK_OK(hrm_set_threads(1)); /* the rows are the same code at any thread count */
   test_expf16();
   test_rope_rows();
   test_swiglu();
   test_norms();
   test_attention();
   CHECK(hrm_cpu_scalar() == 0);
   return check_summary("test_simd");
}
