/* test_layers.c — every CPU layer's backward against central finite differences.
 *
 * Each check perturbs one input coordinate at a time on a tiny shape and compares the change of
 * a fixed random projection of the layer output (accumulated in double) with the analytic
 * gradient. Forwards are also checked against plain double-precision references where the math
 * is easy to restate (attention, RoPE tables, embedding layout, SwiGLU width).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/fastmath.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "nn.h"
#include "tensor_util.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) {  // [0, 1)
   rng_state ^= rng_state << 13;
   rng_state ^= rng_state >> 7;
   rng_state ^= rng_state << 17;
   return (double)(rng_state >> 11) / 9007199254740992.0;
}
static void fill(float *x, int64_t n, double scale) {
   for (int64_t i = 0; i < n; i++) x[i] = (float)((2.0 * urand() - 1.0) * scale);
}
static void fill_d(double *x, int64_t n) {
   for (int64_t i = 0; i < n; i++) x[i] = 2.0 * urand() - 1.0;
}
static float *fnew(int64_t n) { return calloc((size_t)n, sizeof(float)); }
static double *dnew(int64_t n) { return calloc((size_t)n, sizeof(double)); }

static double project(const float *out, const double *w, int64_t n) {
   double s = 0.0;
   for (int64_t i = 0; i < n; i++) s += w[i] * out[i];
   return s;
}

/* The forward under test, as a closure: recompute the outputs from the current inputs and
 * return the projection of the outputs. */
typedef double (*objective_fn)(void *ctx);

/* Central differences on x (n) against the analytic gradient g (n); every coordinate when n is
 * small, a stride sample otherwise. Returns the worst scaled error. */
static double fd_check(const char *what, float *x, const float *g, int64_t n, objective_fn f,
                       void *ctx, double eps, double tol) {
   double worst = 0.0;
   const int64_t step = n > 400 ? n / 200 : 1;
   int bad = 0;
   for (int64_t i = 0; i < n; i += step) {
      const float x0 = x[i];
      x[i] = (float)(x0 + eps);
      const double lp = f(ctx);
      x[i] = (float)(x0 - eps);
      const double lm = f(ctx);
      x[i] = x0;
      const double h = ((double)(float)(x0 + eps) - (double)(float)(x0 - eps));
      const double fd = (lp - lm) / h;
      const double err = fabs(fd - g[i]) / (1.0 + fabs(fd));
      if (err > worst) worst = err;
      if (err > tol && bad++ < 5)
         fprintf(stderr, "  %s[%lld]: fd %.7g analytic %.7g\n", what, (long long)i, fd, g[i]);
   }
   printf("%-28s worst scaled error %.2e\n", what, worst);
   return worst;
}

/* ---- linear -------------------------------------------------------------------------------- */

typedef struct { float *out, *inp, *w, *b; double *pw; int64_t N; int C, OC; } linear_ctx;
static double linear_obj(void *p) {
   linear_ctx *c = p;
   hrm_cpu_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
   return project(c->out, c->pw, c->N * c->OC);
}

static void test_linear(void) {
   linear_ctx c = {.N = 6, .C = 5, .OC = 7};
   c.out = fnew(c.N * c.OC);
   c.inp = fnew(c.N * c.C);
   c.w = fnew(c.OC * c.C);
   c.b = fnew(c.OC);
   c.pw = dnew(c.N * c.OC);
   fill(c.inp, c.N * c.C, 1);
   fill(c.w, c.OC * c.C, 1);
   fill(c.b, c.OC, 1);
   fill_d(c.pw, c.N * c.OC);
   float *dout = fnew(c.N * c.OC), *dinp = fnew(c.N * c.C), *dw = fnew(c.OC * c.C);
   float *db = fnew(c.OC);
   for (int64_t i = 0; i < c.N * c.OC; i++) dout[i] = (float)c.pw[i];
   /* dinp with beta = 1 on a preset value checks the accumulate path */
   for (int64_t i = 0; i < c.N * c.C; i++) dinp[i] = 0.5f;
   hrm_cpu_linear_backward(dinp, dw, db, dout, c.inp, c.w, c.N, c.C, c.OC, 1.0f);
   for (int64_t i = 0; i < c.N * c.C; i++) dinp[i] -= 0.5f;
   CHECK(fd_check("linear d_inp", c.inp, dinp, c.N * c.C, linear_obj, &c, 1e-2, 1e-3) < 1e-3);
   CHECK(fd_check("linear d_weight", c.w, dw, c.OC * c.C, linear_obj, &c, 1e-2, 1e-3) < 1e-3);
   CHECK(fd_check("linear d_bias", c.b, db, c.OC, linear_obj, &c, 1e-2, 1e-3) < 1e-3);
   /* weight gradients accumulate */
   hrm_cpu_linear_backward(NULL, dw, NULL, dout, c.inp, c.w, c.N, c.C, c.OC, 0.0f);
   float *dw1 = fnew(c.OC * c.C);
   hrm_cpu_linear_backward(NULL, dw1, NULL, dout, c.inp, c.w, c.N, c.C, c.OC, 0.0f);
   CHECK_NEAR(dw[3], 2.0 * dw1[3], 1e-5);
   free(c.out); free(c.inp); free(c.w); free(c.b); free(c.pw);
   free(dout); free(dinp); free(dw); free(db); free(dw1);
}

/* ---- rmsnorm ------------------------------------------------------------------------------- */

typedef struct { float *out, *rstd, *inp; double *pw; int64_t N; int D; } rms_ctx;
static double rms_obj(void *p) {
   rms_ctx *c = p;
   hrm_cpu_rmsnorm_forward(c->out, c->rstd, c->inp, c->N, c->D, 1e-5f);
   return project(c->out, c->pw, c->N * c->D);
}

static void test_rmsnorm(void) {
   rms_ctx c = {.N = 4, .D = 16};
   c.out = fnew(c.N * c.D);
   c.rstd = fnew(c.N);
   c.inp = fnew(c.N * c.D);
   c.pw = dnew(c.N * c.D);
   fill(c.inp, c.N * c.D, 2);
   fill_d(c.pw, c.N * c.D);
   rms_obj(&c);
   /* forward against double */
   double ss = 0;
   for (int d = 0; d < c.D; d++) ss += (double)c.inp[d] * c.inp[d];
   CHECK_NEAR(c.out[5], c.inp[5] / sqrt(ss / c.D + 1e-5), 1e-6);
   float *dout = fnew(c.N * c.D), *dinp = fnew(c.N * c.D);
   for (int64_t i = 0; i < c.N * c.D; i++) dout[i] = (float)c.pw[i];
   hrm_cpu_rmsnorm_backward(dinp, dout, c.out, c.rstd, c.N, c.D);
   CHECK(fd_check("rmsnorm d_inp", c.inp, dinp, c.N * c.D, rms_obj, &c, 1e-3, 2e-3) < 2e-3);
   /* in place (dinp == dout), as the model uses it */
   rms_obj(&c);  // fd_check leaves the last perturbed forward behind
   hrm_cpu_rmsnorm_backward(dout, dout, c.out, c.rstd, c.N, c.D);
   double diff = 0.0;
   for (int64_t i = 0; i < c.N * c.D; i++) diff = fmax(diff, fabs(dout[i] - dinp[i]));
   CHECK(diff == 0.0);
   free(c.out); free(c.rstd); free(c.inp); free(c.pw); free(dout); free(dinp);
}

/* ---- rope ---------------------------------------------------------------------------------- */

typedef struct { float *qkv, *work, *cos_t, *sin_t; double *pw; int B, T, NH, HD; } rope_ctx;
static double rope_obj(void *p) {
   rope_ctx *c = p;
   const int64_t n = (int64_t)c->B * c->T * 3 * c->NH * c->HD;
   memcpy(c->work, c->qkv, sizeof(float) * (size_t)n);
   hrm_cpu_rope_forward(c->work, c->cos_t, c->sin_t, c->B, c->T, c->NH, c->HD);
   return project(c->work, c->pw, n);
}

static void test_rope(void) {
   rope_ctx c = {.B = 2, .T = 5, .NH = 2, .HD = 8};
   const int D = c.NH * c.HD;
   const int64_t n = (int64_t)c.B * c.T * 3 * D;
   c.qkv = fnew(n);
   c.work = fnew(n);
   c.cos_t = fnew(c.T * c.HD);
   c.sin_t = fnew(c.T * c.HD);
   c.pw = dnew(n);
   hrm_cpu_rope_tables(c.cos_t, c.sin_t, c.T, c.HD, 10000.0);
   /* tables: cos(t · θ^(-2i/HD)), duplicated halves */
   CHECK_NEAR(c.cos_t[3 * c.HD + 1], cos(3.0 * pow(10000.0, -2.0 / 8)), 1e-6);
   CHECK_NEAR(c.sin_t[4 * c.HD + 1 + 4], sin(4.0 * pow(10000.0, -2.0 / 8)), 1e-6);
   fill(c.qkv, n, 1);
   fill_d(c.pw, n);
   rope_obj(&c);
   /* forward: pair (j, j + HD/2) of head 1's K at (b 1, t 3) */
   {
      const int64_t base = ((int64_t)1 * c.T + 3) * 3 * D + D + 1 * c.HD;
      const int j = 2;
      const double ang = 3.0 * pow(10000.0, -2.0 * j / c.HD);
      const double x1 = c.qkv[base + j], x2 = c.qkv[base + j + 4];
      CHECK_NEAR(c.work[base + j], x1 * cos(ang) - x2 * sin(ang), 1e-5);
      CHECK_NEAR(c.work[base + j + 4], x2 * cos(ang) + x1 * sin(ang), 1e-5);
      const int64_t vb = ((int64_t)1 * c.T + 3) * 3 * D + 2 * D;  // V untouched
      CHECK(c.work[vb + 3] == c.qkv[vb + 3]);
   }
   float *g = fnew(n);
   for (int64_t i = 0; i < n; i++) g[i] = (float)c.pw[i];
   hrm_cpu_rope_backward(g, c.cos_t, c.sin_t, c.B, c.T, c.NH, c.HD);
   CHECK(fd_check("rope d_qkv", c.qkv, g, n, rope_obj, &c, 1e-2, 1e-3) < 1e-3);
   free(c.qkv); free(c.work); free(c.cos_t); free(c.sin_t); free(c.pw); free(g);
}

/* ---- attention ----------------------------------------------------------------------------- */

typedef struct { float *out, *att, *qkv; double *pw; int B, T, NH, HD; } att_ctx;
static double att_obj(void *p) {
   att_ctx *c = p;
   hrm_cpu_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->NH, c->HD);
   return project(c->out, c->pw, (int64_t)c->B * c->T * c->NH * c->HD);
}

static void test_attention(void) {
   att_ctx c = {.B = 2, .T = 5, .NH = 2, .HD = 4};
   const int D = c.NH * c.HD;
   const int64_t nqkv = (int64_t)c.B * c.T * 3 * D, nout = (int64_t)c.B * c.T * D;
   c.out = fnew(nout);
   c.att = fnew((int64_t)c.B * c.NH * c.T * c.T);
   c.qkv = fnew(nqkv);
   c.pw = dnew(nout);
   fill(c.qkv, nqkv, 1.5);
   fill_d(c.pw, nout);
   att_obj(&c);
   /* forward against a double reference for (b 1, h 1, query 2) */
   {
      const int b = 1, h = 1, i = 2;
      double s[5], mx = -1e300, sum = 0.0;
      for (int j = 0; j < c.T; j++) {
         double acc = 0.0;
         for (int d = 0; d < c.HD; d++)
            acc += (double)c.qkv[((int64_t)b * c.T + i) * 3 * D + h * c.HD + d] *
                   c.qkv[((int64_t)b * c.T + j) * 3 * D + D + h * c.HD + d];
         s[j] = acc / sqrt((double)c.HD);
         if (s[j] > mx) mx = s[j];
      }
      for (int j = 0; j < c.T; j++) sum += (s[j] = exp(s[j] - mx));
      for (int d = 0; d < c.HD; d++) {
         double o = 0.0;
         for (int j = 0; j < c.T; j++)
            o += s[j] / sum * c.qkv[((int64_t)b * c.T + j) * 3 * D + 2 * D + h * c.HD + d];
         CHECK_NEAR(c.out[((int64_t)b * c.T + i) * D + h * c.HD + d], o, 1e-5);
      }
   }
   float *dout = fnew(nout), *dqkv = fnew(nqkv), *datt = fnew((int64_t)c.B * c.NH * c.T * c.T);
   for (int64_t i = 0; i < nout; i++) dout[i] = (float)c.pw[i];
   hrm_cpu_attention_backward(dqkv, datt, dout, c.qkv, c.att, c.B, c.T, c.NH, c.HD);
   CHECK(fd_check("attention d_qkv", c.qkv, dqkv, nqkv, att_obj, &c, 1e-3, 2e-3) < 2e-3);
   free(c.out); free(c.att); free(c.qkv); free(c.pw); free(dout); free(dqkv); free(datt);
}

static double exact(float x) { return x; }
static double bf(float x) { return hrm_bf16_to_f32(hrm_f32_to_bf16(x)); }

/* p (T) = softmax over j of q_i · k_j / √HD in double, for query row i of one head: x holds the
 * head's rows (stride 3D), q at x[·] and k at x[D + ·]; every operand through r (exact or bf). */
static void ref_probs(double *p, const float *x, int i, int T, int D, int HD, double (*r)(float)) {
   double mx = -1e300, sum = 0.0;
   for (int j = 0; j < T; j++) {
      double acc = 0.0;
      for (int d = 0; d < HD; d++)
         acc += r(x[(int64_t)i * 3 * D + d]) * r(x[(int64_t)j * 3 * D + D + d]);
      p[j] = acc / sqrt((double)HD);
      if (p[j] > mx) mx = p[j];
   }
   for (int j = 0; j < T; j++) sum += (p[j] = exp(p[j] - mx));
   for (int j = 0; j < T; j++) p[j] /= sum;
}

/* Every output and probability of the forward against a double reference, over sequence
 * lengths around the 16-wide vectors and the 4-row groups of the softmax (T < 16, = 16, one past,
 * several vectors plus a tail, the Sudoku length). */
static void test_attention_lengths(void) {
   static const int lengths[] = {1, 3, 15, 16, 17, 40, 82};
   const int B = 1, NH = 2, HD = 8, D = NH * HD;
   double worst = 0.0;
   for (size_t n = 0; n < sizeof lengths / sizeof lengths[0]; n++) {
      const int T = lengths[n];
      float *qkv = fnew((int64_t)B * T * 3 * D), *out = fnew((int64_t)B * T * D);
      float *att = fnew((int64_t)B * NH * T * T);
      double *s = dnew(T);
      fill(qkv, (int64_t)B * T * 3 * D, 3.0);
      hrm_cpu_attention_forward(out, att, qkv, B, T, NH, HD);
      for (int h = 0; h < NH; h++)
         for (int i = 0; i < T; i++) {
            ref_probs(s, qkv + h * HD, i, T, D, HD, exact);
            for (int j = 0; j < T; j++)
               worst = fmax(worst, fabs(att[((int64_t)h * T + i) * T + j] - s[j]));
            for (int d = 0; d < HD; d++) {
               double o = 0.0;
               for (int j = 0; j < T; j++) o += s[j] * qkv[(int64_t)j * 3 * D + 2 * D + h * HD + d];
               worst = fmax(worst, fabs(out[(int64_t)i * D + h * HD + d] - o));
            }
         }
      free(qkv); free(out); free(att); free(s);
   }
   printf("%-28s worst gap %.2e over T = 1 ... 82\n", "attention forward", worst);
   CHECK(worst < 1e-5);
}

/* The bf16 head (with bf16 GEMMs set): its probabilities against softmax(scale · bf16(q)·bf16(k)ᵀ)
 * and its output against bf16(P)·bf16(v), both in double from the same rounded operands (P
 * rounded from the kernel's own fp32 probabilities, so only the fp32 sums differ); lengths
 * around the 16/32-wide blocks, the 4-row groups and the 96-key groups up to the limit, head
 * sizes 32, 64 and 128. Skipped where the CPU
 * has no AVX-512 BF16 (the fp32 path then runs, checked above). */
static void test_attention_bf16(void) {
   static const int lengths[] = {1, 5, 16, 31, 33, 82, 130, 256};  // 130, 256: two key groups
   static const int heads[] = {32, 64, 128};
   if (!__builtin_cpu_supports("avx512bf16") || hrm_cpu_gemm_set_dtype(HRM_DTYPE_BF16) != 0) {
      printf("%-28s skipped: no AVX-512 BF16 or no bf16 GEMMs here\n", "attention forward bf16");
      return;
   }
   double worst_p = 0.0, worst_o = 0.0, rounding = 0.0;
   for (size_t hn = 0; hn < sizeof heads / sizeof heads[0]; hn++)
      for (size_t n = 0; n < sizeof lengths / sizeof lengths[0]; n++) {
         const int T = lengths[n], B = 2, NH = 2, HD = heads[hn], D = NH * HD;
         float *qkv = fnew((int64_t)B * T * 3 * D), *out = fnew((int64_t)B * T * D);
         float *att = fnew((int64_t)B * NH * T * T);
         double *s = dnew(T);
         fill(qkv, (int64_t)B * T * 3 * D, 2.0);
         hrm_cpu_attention_forward(out, att, qkv, B, T, NH, HD);
         for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
               const float *x = qkv + (int64_t)b * T * 3 * D + h * HD;
               const float *a = att + ((int64_t)b * NH + h) * T * T;
               for (int i = 0; i < T; i++) {
                  ref_probs(s, x, i, T, D, HD, bf);
                  for (int j = 0; j < T; j++)
                     worst_p = fmax(worst_p, fabs(a[(int64_t)i * T + j] - s[j]));
                  for (int d = 0; d < HD; d++) {
                     double o = 0.0, o_exact = 0.0;
                     for (int j = 0; j < T; j++) {
                        const double v = x[(int64_t)j * 3 * D + 2 * D + d];
                        o += bf(a[(int64_t)i * T + j]) * bf((float)v);
                        o_exact += s[j] * v;
                     }
                     const float got = out[((int64_t)b * T + i) * D + h * HD + d];
                     worst_o = fmax(worst_o, fabs(got - o));
                     rounding = fmax(rounding, fabs(got - o_exact));
                  }
               }
            }
         free(qkv); free(out); free(att); free(s);
      }
   hrm_cpu_gemm_set_dtype(HRM_DTYPE_F32);
   printf("%-28s worst gap %.2e (P), %.2e (out) over T = 1 ... 256; bf16 rounding itself %.2e\n",
          "attention forward bf16", worst_p, worst_o, rounding);
   CHECK(worst_p < 1e-5);
   CHECK(worst_o < 1e-5);
   CHECK(rounding > 1e-4);  // the operands were rounded: the exact fp64 result is further away
}

/* ---- swiglu -------------------------------------------------------------------------------- */

typedef struct { float *out, *gu; double *pw; int64_t N; int I; } swiglu_ctx;
static double swiglu_obj(void *p) {
   swiglu_ctx *c = p;
   hrm_cpu_swiglu_forward(c->out, c->gu, c->N, c->I);
   return project(c->out, c->pw, c->N * c->I);
}

static void test_swiglu(void) {
   CHECK(hrm_swiglu_inter(512, 4.0) == 1536);
   CHECK(hrm_swiglu_inter(8, 4.0) == 256);
   CHECK(hrm_swiglu_inter(384, 4.0) == 1024);
   swiglu_ctx c = {.N = 3, .I = 20};  // one 16-wide vector and a scalar tail per row
   c.out = fnew(c.N * c.I);
   c.gu = fnew(c.N * 2 * c.I);
   c.pw = dnew(c.N * c.I);
   fill(c.gu, c.N * 2 * c.I, 3);
   fill_d(c.pw, c.N * c.I);
   swiglu_obj(&c);
   double worst = 0.0;
   for (int64_t n = 0; n < c.N; n++)
      for (int i = 0; i < c.I; i++) {
         const double g = c.gu[n * 2 * c.I + i], u = c.gu[n * 2 * c.I + c.I + i];
         worst = fmax(worst, fabs(c.out[n * c.I + i] - g / (1.0 + exp(-g)) * u));
      }
   printf("%-28s worst gap %.2e\n", "swiglu forward", worst);
   CHECK(worst < 2e-6);
   float *dout = fnew(c.N * c.I), *dgu = fnew(c.N * 2 * c.I);
   for (int64_t i = 0; i < c.N * c.I; i++) dout[i] = (float)c.pw[i];
   hrm_cpu_swiglu_backward(dgu, dout, c.gu, c.N, c.I);
   CHECK(fd_check("swiglu d_gate_up", c.gu, dgu, c.N * 2 * c.I, swiglu_obj, &c, 1e-3, 2e-3) <
         2e-3);
   free(c.out); free(c.gu); free(c.pw); free(dout); free(dgu);
}

/* ---- embedding ----------------------------------------------------------------------------- */

typedef struct {
   float *out, *tok, *prefix, *pos;
   int32_t *inputs;
   double *pw;
   int B, S, P, D, E;
   float scale;
} emb_ctx;
static double emb_obj(void *p) {
   emb_ctx *c = p;
   hrm_cpu_embedding_forward(c->out, c->inputs, c->tok, c->prefix, c->pos, c->B, c->S, c->P, c->D,
                             c->E, c->scale);
   return project(c->out, c->pw, (int64_t)c->B * (c->S + c->P) * c->D);
}

static void test_embedding(int learned) {
   emb_ctx c = {.B = 3, .S = 4, .P = 2, .D = 4, .E = 6, .scale = 2.0f};
   const int V = 5, T = c.S + c.P;
   const int64_t nout = (int64_t)c.B * T * c.D;
   c.out = fnew(nout);
   c.tok = fnew(V * c.D);
   c.prefix = fnew(c.B * c.E);
   c.pos = learned ? fnew(T * c.D) : NULL;
   c.inputs = calloc((size_t)(c.B * c.S), sizeof(int32_t));
   c.pw = dnew(nout);
   fill(c.tok, V * c.D, 1);
   fill(c.prefix, c.B * c.E, 1);
   if (c.pos) fill(c.pos, T * c.D, 1);
   for (int i = 0; i < c.B * c.S; i++) c.inputs[i] = (i * 3 + 1) % V;
   c.inputs[5] = c.inputs[6];  // a repeated token within a row
   fill_d(c.pw, nout);
   emb_obj(&c);
   /* layout: row 1, prefix position 1 holds prefix dims 4, 5 then zero padding */
   const float k = learned ? HRM_POS_SCALE : 1.0f;
   const float *pos = c.pos;
   {
      const int b = 1, t = 1;
      for (int d = 0; d < c.D; d++) {
         const int j = t * c.D + d;
         double e = j < c.E ? c.prefix[b * c.E + j] : 0.0;
         if (pos) e = k * (e + pos[t * c.D + d]);
         CHECK_NEAR(c.out[((int64_t)b * T + t) * c.D + d], c.scale * e, 1e-6);
      }
      const int s = 2;
      double e = c.tok[c.inputs[b * c.S + s] * c.D + 3];
      if (pos) e = k * (e + pos[(c.P + s) * c.D + 3]);
      CHECK_NEAR(c.out[((int64_t)b * T + c.P + s) * c.D + 3], c.scale * e, 1e-6);
   }
   float *dout = fnew(nout), *dtok = fnew(V * c.D), *dpre = fnew(c.B * c.E);
   float *dpos = learned ? fnew(T * c.D) : NULL;
   for (int64_t i = 0; i < nout; i++) dout[i] = (float)c.pw[i];
   hrm_cpu_embedding_backward(dtok, dpre, dpos, dout, c.inputs, c.B, c.S, c.P, c.D, c.E, c.scale,
                              learned);
   const char *tn = learned ? "embedding(pos) d_tok" : "embedding d_tok";
   CHECK(fd_check(tn, c.tok, dtok, V * c.D, emb_obj, &c, 1e-2, 1e-3) < 1e-3);
   tn = learned ? "embedding(pos) d_prefix" : "embedding d_prefix";
   CHECK(fd_check(tn, c.prefix, dpre, c.B * c.E, emb_obj, &c, 1e-2, 1e-3) < 1e-3);
   if (learned)
      CHECK(fd_check("embedding(pos) d_pos", c.pos, dpos, T * c.D, emb_obj, &c, 1e-2, 1e-3) <
            1e-3);
   free(c.out); free(c.tok); free(c.prefix); free(c.pos); free(c.inputs); free(c.pw);
   free(dout); free(dtok); free(dpre); free(dpos);
}

/* ---- block (composition of the layers, post-norm) ------------------------------------------- */

typedef struct {
   int B, T, NH, HD, I;
   float *in, *wqkv, *wo, *wgu, *wd, *cos_t, *sin_t;
   float *qkv, *att, *atty, *tmp, *h1, *r1, *gu, *act, *h2, *r2;
   double *pw;
} block_ctx;

static void block_fwd(block_ctx *c) {
   const int D = c->NH * c->HD;
   const int64_t N = (int64_t)c->B * c->T;
   hrm_cpu_linear_forward(c->qkv, c->in, c->wqkv, NULL, N, D, 3 * D);
   hrm_cpu_rope_forward(c->qkv, c->cos_t, c->sin_t, c->B, c->T, c->NH, c->HD);
   hrm_cpu_attention_forward(c->atty, c->att, c->qkv, c->B, c->T, c->NH, c->HD);
   hrm_cpu_linear_forward(c->tmp, c->atty, c->wo, NULL, N, D, D);
   hrm_cpu_residual_forward(c->tmp, c->in, c->tmp, N * D);
   hrm_cpu_rmsnorm_forward(c->h1, c->r1, c->tmp, N, D, 1e-5f);
   hrm_cpu_linear_forward(c->gu, c->h1, c->wgu, NULL, N, D, 2 * c->I);
   hrm_cpu_swiglu_forward(c->act, c->gu, N, c->I);
   hrm_cpu_linear_forward(c->tmp, c->act, c->wd, NULL, N, c->I, D);
   hrm_cpu_residual_forward(c->tmp, c->h1, c->tmp, N * D);
   hrm_cpu_rmsnorm_forward(c->h2, c->r2, c->tmp, N, D, 1e-5f);
}
static double block_obj(void *p) {
   block_ctx *c = p;
   block_fwd(c);
   return project(c->h2, c->pw, (int64_t)c->B * c->T * c->NH * c->HD);
}

static void test_block(void) {
   block_ctx c = {.B = 2, .T = 4, .NH = 2, .HD = 4, .I = 6};
   const int D = c.NH * c.HD, I = c.I;
   const int64_t N = (int64_t)c.B * c.T;
   c.in = fnew(N * D);
   c.wqkv = fnew(3 * D * D);
   c.wo = fnew(D * D);
   c.wgu = fnew(2 * I * D);
   c.wd = fnew(D * I);
   c.cos_t = fnew(c.T * c.HD);
   c.sin_t = fnew(c.T * c.HD);
   c.qkv = fnew(N * 3 * D);
   c.att = fnew((int64_t)c.B * c.NH * c.T * c.T);
   c.atty = fnew(N * D);
   c.tmp = fnew(N * D);
   c.h1 = fnew(N * D);
   c.r1 = fnew(N);
   c.gu = fnew(N * 2 * I);
   c.act = fnew(N * I);
   c.h2 = fnew(N * D);
   c.r2 = fnew(N);
   c.pw = dnew(N * D);
   fill(c.in, N * D, 1);
   fill(c.wqkv, 3 * D * D, 1.0 / sqrt(D));
   fill(c.wo, D * D, 1.0 / sqrt(D));
   fill(c.wgu, 2 * I * D, 1.0 / sqrt(D));
   fill(c.wd, D * I, 1.0 / sqrt(I));
   fill_d(c.pw, N * D);
   hrm_cpu_rope_tables(c.cos_t, c.sin_t, c.T, c.HD, 10000.0);
   block_fwd(&c);
   /* backward, in the model's order and buffer reuse */
   float *dA = fnew(N * D), *din = fnew(N * D), *dact = fnew(N * I), *dgu = fnew(N * 2 * I);
   float *dqkv = fnew(N * 3 * D), *datt = fnew((int64_t)c.B * c.NH * c.T * c.T);
   float *gqkv = fnew(3 * D * D), *go = fnew(D * D), *ggu = fnew(2 * I * D), *gd = fnew(D * I);
   for (int64_t i = 0; i < N * D; i++) dA[i] = (float)c.pw[i];
   hrm_cpu_rmsnorm_backward(dA, dA, c.h2, c.r2, N, D);
   hrm_cpu_linear_backward(dact, gd, NULL, dA, c.act, c.wd, N, I, D, 0.0f);
   hrm_cpu_swiglu_backward(dgu, dact, c.gu, N, I);
   hrm_cpu_linear_backward(dA, ggu, NULL, dgu, c.h1, c.wgu, N, D, 2 * I, 1.0f);
   hrm_cpu_rmsnorm_backward(din, dA, c.h1, c.r1, N, D);
   hrm_cpu_linear_backward(dA, go, NULL, din, c.atty, c.wo, N, D, D, 0.0f);
   hrm_cpu_attention_backward(dqkv, datt, dA, c.qkv, c.att, c.B, c.T, c.NH, c.HD);
   hrm_cpu_rope_backward(dqkv, c.cos_t, c.sin_t, c.B, c.T, c.NH, c.HD);
   hrm_cpu_linear_backward(din, gqkv, NULL, dqkv, c.in, c.wqkv, N, D, 3 * D, 1.0f);
   CHECK(fd_check("block d_in", c.in, din, N * D, block_obj, &c, 1e-3, 3e-3) < 3e-3);
   CHECK(fd_check("block d_qkv_proj", c.wqkv, gqkv, 3 * D * D, block_obj, &c, 1e-3, 3e-3) <
         3e-3);
   CHECK(fd_check("block d_o_proj", c.wo, go, D * D, block_obj, &c, 1e-3, 3e-3) < 3e-3);
   CHECK(fd_check("block d_gate_up_proj", c.wgu, ggu, 2 * I * D, block_obj, &c, 1e-3, 3e-3) <
         3e-3);
   CHECK(fd_check("block d_down_proj", c.wd, gd, D * I, block_obj, &c, 1e-3, 3e-3) < 3e-3);
   float *bufs[] = {c.in, c.wqkv, c.wo, c.wgu, c.wd, c.cos_t, c.sin_t, c.qkv, c.att, c.atty,
                    c.tmp, c.h1, c.r1, c.gu, c.act, c.h2, c.r2, dA, din, dact, dgu, dqkv, datt,
                    gqkv, go, ggu, gd};
   for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
   free(c.pw);
}

/* ---- losses -------------------------------------------------------------------------------- */

typedef struct { float *logits; int32_t *labels; double *w, *tmp; int64_t N; int V, kind; } ce_ctx;
static double ce_obj(void *p) {
   ce_ctx *c = p;
   if (c->kind == 0) hrm_cpu_stablemax_ce_forward(c->tmp, c->logits, c->labels, c->N, c->V);
   else hrm_cpu_softmax_ce_forward(c->tmp, c->logits, c->labels, c->N, c->V);
   double s = 0.0;
   for (int64_t i = 0; i < c->N; i++) s += c->w[i] * c->tmp[i];
   return s;
}

static void test_ce(int kind) {
   ce_ctx c = {.N = 5, .V = 7, .kind = kind};
   c.logits = fnew(c.N * c.V);
   c.labels = calloc((size_t)c.N, sizeof(int32_t));
   c.w = dnew(c.N);
   c.tmp = dnew(c.N);
   fill(c.logits, c.N * c.V, 3);
   for (int64_t i = 0; i < c.N; i++) {
      c.labels[i] = (int32_t)((i * 2 + 1) % c.V);
      c.w[i] = 0.5 + urand();
   }
   c.labels[3] = HRM_IGNORE_LABEL;
   c.logits[2 * c.V + 4] = 0.0f;  // exactly at the stablemax branch point
   ce_obj(&c);
   CHECK(c.tmp[3] == 0.0);
   /* forward against the definitions */
   {
      const float *x = c.logits + 1 * c.V;
      const int y = c.labels[1];
      double sum = 0.0, want;
      if (kind == 0) {
         for (int j = 0; j < c.V; j++) sum += x[j] < 0 ? 1.0 / (1.0 - x[j]) : x[j] + 1.0;
         const double sy = x[y] < 0 ? 1.0 / (1.0 - x[y]) : x[y] + 1.0;
         want = -log(sy / sum);
      } else {
         for (int j = 0; j < c.V; j++) sum += exp((double)x[j]);
         want = log(sum) - x[y];
      }
      CHECK_NEAR(c.tmp[1], want, 1e-12);
   }
   float *g = fnew(c.N * c.V);
   if (kind == 0) hrm_cpu_stablemax_ce_backward(g, c.w, c.logits, c.labels, c.N, c.V);
   else hrm_cpu_softmax_ce_backward(g, c.w, c.logits, c.labels, c.N, c.V);
   int zero = 1;
   for (int j = 0; j < c.V; j++) zero &= g[3 * c.V + j] == 0.0f;
   CHECK(zero);
   /* s is C¹ at 0 (both sides have slope 1), so central differences hold across the kink */
   const char *nm = kind == 0 ? "stablemax_ce d_logits" : "softmax_ce d_logits";
   const double worst = fd_check(nm, c.logits, g, c.N * c.V, ce_obj, &c, 1e-3, 5e-3);
   CHECK(worst < 5e-3);
   free(c.logits); free(c.labels); free(c.w); free(c.tmp); free(g);
}

typedef struct { float *x, *y; double *w, *tmp; int64_t N; } bce_ctx;
static double bce_obj(void *p) {
   bce_ctx *c = p;
   hrm_cpu_bce_logits_forward(c->tmp, c->x, c->y, c->N);
   double s = 0.0;
   for (int64_t i = 0; i < c->N; i++) s += c->w[i] * c->tmp[i];
   return s;
}

static void test_bce(void) {
   bce_ctx c = {.N = 6};
   c.x = fnew(c.N);
   c.y = fnew(c.N);
   c.w = dnew(c.N);
   c.tmp = dnew(c.N);
   const float xs[6] = {-30.0f, -5.0f, -0.3f, 0.0f, 2.0f, 40.0f};
   const float ys[6] = {0.0f, 1.0f, 0.25f, 1.0f, 0.0f, 0.7f};
   for (int i = 0; i < 6; i++) {
      c.x[i] = xs[i];
      c.y[i] = ys[i];
      c.w[i] = 0.5 + urand();
   }
   bce_obj(&c);
   for (int i = 0; i < 6; i++) {
      const double s = 1.0 / (1.0 + exp(-(double)xs[i]));
      const double want = -(ys[i] * log(s) + (1.0 - ys[i]) * log1p(-s));
      if (fabs(xs[i]) < 20) CHECK_NEAR(c.tmp[i], want, 1e-9);
   }
   CHECK_NEAR(c.tmp[5], 40.0 * (1.0 - (double)0.7f), 1e-9);  // stable for large logits
   float *g = fnew(c.N);
   hrm_cpu_bce_logits_backward(g, c.w, c.x, c.y, c.N);
   CHECK(fd_check("bce d_logits", c.x, g, c.N, bce_obj, &c, 1e-3, 1e-3) < 1e-3);
   free(c.x); free(c.y); free(c.w); free(c.tmp); free(g);
}

static void test_argmax(void) {
   const float x[8] = {1, 3, 3, 2, -1, -1, -1, -2};
   int32_t p[2];
   hrm_cpu_argmax_forward(p, x, 2, 4);
   CHECK(p[0] == 1);  // first of the tied maxima
   CHECK(p[1] == 0);
}

/* ---- fused kernels: the same numbers as the separate ops -------------------------------------- */

static double max_abs_diff(const float *a, const float *b, int64_t n) {
   double m = 0.0;
   for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
   return m;
}

static void test_fused(void) {
   const int B = 2, T = 7, NH = 2, HD = 8, D = NH * HD;
   const int64_t nqkv = (int64_t)B * T * 3 * D, nout = (int64_t)B * T * D;
   const int64_t natt = (int64_t)B * NH * T * T;
   float *cos_t = fnew((int64_t)T * HD), *sin_t = fnew((int64_t)T * HD);
   hrm_cpu_rope_tables(cos_t, sin_t, T, HD, 10000.0);
   float *qkv1 = fnew(nqkv), *qkv2 = fnew(nqkv), *o1 = fnew(nout), *o2 = fnew(nout);
   float *a1 = fnew(natt), *a2 = fnew(natt), *dout = fnew(nout), *d1 = fnew(nqkv), *d2 = fnew(nqkv);
   float *s1 = fnew(natt), *s2 = fnew(natt);
   fill(qkv1, nqkv, 1.5);
   fill(dout, nout, 1.0);
   memcpy(qkv2, qkv1, sizeof(float) * (size_t)nqkv);
   hrm_cpu_rope_forward(qkv1, cos_t, sin_t, B, T, NH, HD);
   hrm_cpu_attention_forward(o1, a1, qkv1, B, T, NH, HD);
   hrm_cpu_rope_attention_forward(o2, a2, qkv2, cos_t, sin_t, B, T, NH, HD);
   CHECK(max_abs_diff(qkv1, qkv2, nqkv) == 0.0);  // rotated Q, K kept for the backward
   CHECK(max_abs_diff(o1, o2, nout) == 0.0);
   CHECK(max_abs_diff(a1, a2, natt) == 0.0);
   hrm_cpu_attention_backward(d1, s1, dout, qkv1, a1, B, T, NH, HD);
   hrm_cpu_rope_backward(d1, cos_t, sin_t, B, T, NH, HD);
   hrm_cpu_rope_attention_backward(d2, s2, dout, qkv2, a2, cos_t, sin_t, B, T, NH, HD);
   CHECK(max_abs_diff(d1, d2, nqkv) == 0.0);
   /* residual + rms_norm in one pass, also in place */
   float *x = fnew(nout), *y = fnew(nout), *r1 = fnew(nout), *r2 = fnew(nout), *sum = fnew(nout);
   float *rs1 = fnew(B * T), *rs2 = fnew(B * T);
   fill(x, nout, 2.0);
   fill(y, nout, 2.0);
   hrm_cpu_residual_forward(sum, x, y, nout);
   hrm_cpu_rmsnorm_forward(r1, rs1, sum, (int64_t)B * T, D, 1e-5f);
   hrm_cpu_add_rmsnorm_forward(r2, rs2, x, y, (int64_t)B * T, D, 1e-5f);
   CHECK(max_abs_diff(r1, r2, nout) == 0.0);
   CHECK(max_abs_diff(rs1, rs2, B * T) == 0.0);
   hrm_cpu_add_rmsnorm_forward(y, NULL, x, y, (int64_t)B * T, D, 1e-5f);
   CHECK(max_abs_diff(r1, y, nout) == 0.0);
   printf("%-28s identical to the separate ops\n", "fused rope+attention, norm");
   free(cos_t); free(sin_t); free(qkv1); free(qkv2); free(o1); free(o2); free(a1); free(a2);
   free(dout); free(d1); free(d2); free(s1); free(s2);
   free(x); free(y); free(r1); free(r2); free(sum); free(rs1); free(rs2);
}

/* The untaped attention (no probabilities kept) against the taped entries: the same output and
 * rotated qkv, bit for bit, in fp32 and (where the CPU has it) with the bf16 head, with and
 * without RoPE, over lengths around the 4-row blocks and head sizes of both paths. */
static void test_attention_infer(void) {
   static const int shapes[][2] = {{7, 8}, {17, 32}, {82, 64}, {130, 32}, {5, 8}};  // {T, HD}
   int compared = 0;
   for (int dtype = 0; dtype < 2; dtype++) {
      if (dtype == 1 && hrm_cpu_gemm_set_dtype(HRM_DTYPE_BF16) != 0) break;
      for (size_t n = 0; n < sizeof shapes / sizeof shapes[0]; n++)
         for (int rope = 0; rope < 2; rope++) {
            const int T = shapes[n][0], HD = shapes[n][1], B = 2, NH = 2, D = NH * HD;
            const int64_t nqkv = (int64_t)B * T * 3 * D, nout = (int64_t)B * T * D;
            float *cos_t = fnew((int64_t)T * HD), *sin_t = fnew((int64_t)T * HD);
            hrm_cpu_rope_tables(cos_t, sin_t, T, HD, 10000.0);
            float *q1 = fnew(nqkv), *q2 = fnew(nqkv), *o1 = fnew(nout), *o2 = fnew(nout);
            float *att = fnew((int64_t)B * NH * T * T);
            fill(q1, nqkv, 2.0);
            memcpy(q2, q1, sizeof(float) * (size_t)nqkv);
            if (rope) hrm_cpu_rope_attention_forward(o1, att, q1, cos_t, sin_t, B, T, NH, HD);
            else hrm_cpu_attention_forward(o1, att, q1, B, T, NH, HD);
            hrm_cpu_attention_infer(o2, q2, rope ? cos_t : NULL, sin_t, B, T, NH, HD);
            CHECK(max_abs_diff(o1, o2, nout) == 0.0);
            CHECK(max_abs_diff(q1, q2, nqkv) == 0.0);
            compared++;
            free(cos_t); free(sin_t); free(q1); free(q2); free(o1); free(o2); free(att);
         }
   }
   hrm_cpu_gemm_set_dtype(HRM_DTYPE_F32);
   printf("%-28s identical to the taped forward (%d cases%s)\n", "untaped attention", compared,
          compared > 10 ? ", fp32 and bf16" : ", fp32 only: no bf16 GEMMs here");
}

/* The optimizer's vectorisable atan2 against libm over signs and magnitudes. */
static void test_atan2(void) {
   double worst = 0.0;
   for (int i = 0; i < 200000; i++) {
      const float y = (float)ldexp(2.0 * urand() - 1.0, (int)(urand() * 60) - 30);
      const float x = (float)ldexp(2.0 * urand() - (i % 3 == 0 ? 1.0 : 0.0), (int)(urand() * 60) - 30);
      const double want = atan2((double)y, (double)x);
      worst = fmax(worst, fabs(hrm_atan2f(y, x) - want) / fmax(fabs(want), 1e-30));
   }
   printf("%-28s worst relative error %.2e\n", "atan2f", worst);
   CHECK(worst < 5e-7);
   CHECK(hrm_atan2f(0.0f, 0.0f) == 0.0f);
   CHECK(hrm_atan2f(1.0f, 0.0f) == (float)(M_PI / 2));
   CHECK(isnan(hrm_atan2f(NAN, 1.0f)));
}

/* The vectorisable expf (and its AVX-512 twin, in builds that have it) against libm over the
 * clamped range, and NaN passing through both. */
static void test_expf(void) {
   double worst = 0.0, worst16 = 0.0;
   for (int i = 0; i < 200000; i += 16) {
      float x[16];
      for (int l = 0; l < 16; l++) x[l] = (float)(-87.0 + 175.0 * urand());
      for (int l = 0; l < 16; l++) {
         const double want = exp((double)x[l]);
         worst = fmax(worst, fabs(hrm_expf(x[l]) - want) / want);
      }
#if defined(__AVX512F__)
      float y[16];
      _mm512_storeu_ps(y, hrm_expf16(_mm512_loadu_ps(x)));
      for (int l = 0; l < 16; l++) {
         const double want = exp((double)x[l]);
         worst16 = fmax(worst16, fabs(y[l] - want) / want);
      }
#endif
   }
   printf("%-28s worst relative error %.2e (16 lanes: %.2e)\n", "expf", worst, worst16);
   CHECK(worst < 3e-7);
   CHECK(worst16 < 3e-7);
   CHECK(isnan(hrm_expf(NAN)));
#if defined(__AVX512F__)
   float y[16];
   _mm512_storeu_ps(y, hrm_expf16(_mm512_set1_ps(NAN)));
   CHECK(isnan(y[0]) && isnan(y[15]));
#endif
}

int main(void) {
   test_linear();
   test_rmsnorm();
   test_rope();
   test_attention();
   test_attention_lengths();
   test_attention_bf16();
   test_swiglu();
   test_embedding(0);
   test_embedding(1);
   test_block();
   test_ce(0);
   test_ce(1);
   test_bce();
   test_argmax();
   test_fused();
   test_attention_infer();
   test_atan2();
   test_expf();
   return check_summary("test_layers");
}
