/* test_cuda_ops.c — every entry of hrm_cuda_backend against the same entry of hrm_cpu_backend.
 *
 * Random inputs on small shapes that still exercise tails (sizes not multiples of 32, T above
 * one key tile, V above one warp, duplicate ids, ignored labels, ties). Errors are measured as
 * max |gpu − cpu| / max |cpu| per output; tolerances: fp32 paths 1e-5, tf32 5e-3, bf16 GEMMs
 * 1e-2, float64 losses 1e-10; memory moves, row lists, the carry reset, halting (the draws are
 * the shared counter generator's), split Q values and the solve bookkeeping are exact. Exits 77
 * (ctest: skipped) when no CUDA device is present.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/ops.h"
#include "cuda.h"
#include "device.h"
#include "tensor_util.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
   rng_state ^= rng_state << 13;
   rng_state ^= rng_state >> 7;
   rng_state ^= rng_state << 17;
   return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float *frand(int64_t n, double scale) {
   float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
   for (int64_t i = 0; i < n; i++) x[i] = (float)((2.0 * urand() - 1.0) * scale);
   return x;
}
static double *drand_pos(int64_t n) {
   double *x = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
   for (int64_t i = 0; i < n; i++) x[i] = 0.1 + urand();
   return x;
}
static void *dev(const void *host, size_t bytes) {  // device copy of host (or zeroed if NULL)
   void *p = NULL;
   if (hrm_cuda_malloc(&p, bytes) != HRM_OK) {
      fprintf(stderr, "device allocation failed: %s\n", hrm_last_error());
      exit(1);
   }
   if (host && hrm_cuda_memcpy(p, HRM_DEVICE_CUDA, host, HRM_DEVICE_CPU, bytes) != HRM_OK) {
      fprintf(stderr, "upload failed: %s\n", hrm_last_error());
      exit(1);
   }
   return p;
}
static void *host_of(const void *d, size_t bytes) {  // malloc'd host copy of device memory
   void *h = malloc(bytes ? bytes : 1);
   if (hrm_cuda_memcpy(h, HRM_DEVICE_CPU, d, HRM_DEVICE_CUDA, bytes) != HRM_OK)
      fprintf(stderr, "download failed: %s\n", hrm_last_error());
   return h;
}
static float *fdup(const float *x, int64_t n) {
   float *y = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
   memcpy(y, x, sizeof(float) * (size_t)n);
   return y;
}

/* max |got − want| / max |want| */
static double rel_err(const float *got, const float *want, int64_t n) {
   double num = 0.0, den = 0.0;
   for (int64_t i = 0; i < n; i++) {
      const double e = fabs((double)got[i] - (double)want[i]);
      if (e > num || isnan(e)) num = isnan(e) ? INFINITY : e;
      if (fabs((double)want[i]) > den) den = fabs((double)want[i]);
   }
   return den > 0.0 ? num / den : num;
}
static double rel_err_d(const double *got, const double *want, int64_t n) {
   double num = 0.0, den = 0.0;
   for (int64_t i = 0; i < n; i++) {
      const double e = fabs(got[i] - want[i]);
      if (e > num || isnan(e)) num = isnan(e) ? INFINITY : e;
      if (fabs(want[i]) > den) den = fabs(want[i]);
   }
   return den > 0.0 ? num / den : num;
}

/* Compares device array d (n floats) with host reference want. */
static void expect_f(const char *what, const void *d, const float *want, int64_t n, double tol) {
   float *got = host_of(d, sizeof(float) * (size_t)n);
   const double e = rel_err(got, want, n);
   if (e <= tol) check_passed_++;
   else {
      check_failed_++;
      fprintf(stderr, "FAIL %s: relative error %.3g > %.3g\n", what, e, tol);
   }
   free(got);
}
static void expect_d(const char *what, const void *d, const double *want, int64_t n, double tol) {
   double *got = host_of(d, sizeof(double) * (size_t)n);
   const double e = rel_err_d(got, want, n);
   if (e <= tol) check_passed_++;
   else {
      check_failed_++;
      fprintf(stderr, "FAIL %s: relative error %.3g > %.3g\n", what, e, tol);
   }
   free(got);
}

static const hrm_backend *cpu = &hrm_cpu_backend, *gpu = &hrm_cuda_backend;
#define SYNC_OK() CHECK_OK(hrm_cuda_sync())
#define FB(n) (sizeof(float) * (size_t)(n))

/* ---- GEMM and linear ------------------------------------------------------------------------ */

static void test_gemm(int mode, double tol, const char *name) {
   hrm_cuda_set_gemm_mode(mode);
   const int64_t M = 33, N = 47, K = 65;
   for (int ta = 0; ta < 2; ta++) {
      for (int tb = 0; tb < 2; tb++) {
         const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
         const int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
         float *A = frand(na, 1.0), *Bm = frand(nb, 1.0), *C = frand(nc, 1.0);
         float *dA = dev(A, FB(na)), *dB = dev(Bm, FB(nb)), *dC = dev(C, FB(nc));
         cpu->gemm(ta, tb, M, N, K, 0.7f, A, lda, Bm, ldb, 0.3f, C, ldc);
         gpu->gemm(ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, 0.3f, dC, ldc);
         SYNC_OK();
         char what[64];
         snprintf(what, sizeof what, "gemm %s ta=%d tb=%d", name, ta, tb);
         expect_f(what, dC, C, nc, tol);
         hrm_cuda_free(dA);
         hrm_cuda_free(dB);
         hrm_cuda_free(dC);
         free(A);
         free(Bm);
         free(C);
      }
   }
}

static void test_linear(int mode, double tol, const char *name) {
   hrm_cuda_set_gemm_mode(mode);
   const int64_t N = 70;
   const int C = 48, OC = 40;
   float *x = frand(N * C, 1.0), *w = frand((int64_t)OC * C, 0.2), *b = frand(OC, 1.0);
   float *out = frand(N * OC, 1.0), *dout = frand(N * OC, 1.0);
   float *dx = frand(N * C, 1.0), *dw = frand((int64_t)OC * C, 1.0), *db = frand(OC, 1.0);
   float *d_x = dev(x, FB(N * C)), *d_w = dev(w, FB(OC * C)), *d_b = dev(b, FB(OC));
   float *d_out = dev(NULL, FB(N * OC)), *d_dout = dev(dout, FB(N * OC));
   float *d_dx = dev(dx, FB(N * C)), *d_dw = dev(dw, FB(OC * C)), *d_db = dev(db, FB(OC));
   cpu->linear_forward(out, x, w, b, N, C, OC);
   gpu->linear_forward(d_out, d_x, d_w, d_b, N, C, OC);
   cpu->linear_backward(dx, dw, db, dout, x, w, N, C, OC, 1.0f);
   gpu->linear_backward(d_dx, d_dw, d_db, d_dout, d_x, d_w, N, C, OC, 1.0f);
   SYNC_OK();
   char what[64];
   snprintf(what, sizeof what, "linear_forward %s", name);
   expect_f(what, d_out, out, N * OC, tol);
   snprintf(what, sizeof what, "linear_backward dinp %s", name);
   expect_f(what, d_dx, dx, N * C, tol);
   snprintf(what, sizeof what, "linear_backward dweight %s", name);
   expect_f(what, d_dw, dw, (int64_t)OC * C, tol);
   expect_f("linear_backward dbias", d_db, db, OC, 1e-5);
   void *ps[] = {d_x, d_w, d_b, d_out, d_dout, d_dx, d_dw, d_db};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) hrm_cuda_free(ps[i]);
   free(x), free(w), free(b), free(out), free(dout), free(dx), free(dw), free(db);
}

static void test_gemm_bf16(void) {
   const int64_t M = 64, N = 96, K = 128;
   for (int ta = 0; ta < 2; ta++) {
      for (int tb = 0; tb < 2; tb++) {
         const int64_t lda = ta ? M : K, ldb = tb ? K : N, na = M * K, nb = K * N;
         float *A = frand(na, 1.0), *Bm = frand(nb, 1.0), *C = frand(M * N, 1.0);
         float *d_Araw = dev(A, FB(na));  // unrounded: the cast kernel rounds it
         uint16_t *hA = malloc(2 * (size_t)na), *hB = malloc(2 * (size_t)nb);
         for (int64_t i = 0; i < na; i++) {
            hA[i] = hrm_f32_to_bf16(A[i]);
            A[i] = hrm_bf16_to_f32(hA[i]);
         }
         for (int64_t i = 0; i < nb; i++) {
            hB[i] = hrm_f32_to_bf16(Bm[i]);
            Bm[i] = hrm_bf16_to_f32(hB[i]);
         }
         uint16_t *dA = dev(NULL, 2 * (size_t)na), *dB = dev(hB, 2 * (size_t)nb);
         float *dC = dev(C, FB(M * N));
         hrm_cuda_f32_to_bf16_forward(dA, d_Araw, na);
         SYNC_OK();
         uint16_t *gA = host_of(dA, 2 * (size_t)na);
         CHECK(memcmp(gA, hA, 2 * (size_t)na) == 0);  // round to nearest even, as the host
         cpu->gemm(ta, tb, M, N, K, 1.0f, A, lda, Bm, ldb, 0.5f, C, N);
         hrm_cuda_gemm_bf16_forward(ta, tb, M, N, K, 1.0f, dA, lda, dB, ldb, 0.5f, dC, N);
         SYNC_OK();
         char what[64];
         snprintf(what, sizeof what, "gemm_bf16 ta=%d tb=%d", ta, tb);
         expect_f(what, dC, C, M * N, 1e-4);
         hrm_cuda_free(d_Araw), hrm_cuda_free(dA), hrm_cuda_free(dB), hrm_cuda_free(dC);
         free(A), free(Bm), free(C), free(hA), free(hB), free(gA);
      }
   }
}

/* ---- embedding ------------------------------------------------------------------------------ */

static void test_embedding(int learned) {
   const int B = 3, S = 7, P = 2, D = 40, E = 70, V = 11, T = S + P;
   const float scale = sqrtf((float)D);
   int32_t inputs[3 * 7];
   for (int i = 0; i < B * S; i++) inputs[i] = (int32_t)(urand() * V);
   inputs[0] = inputs[1] = 4;  // duplicate tokens meet in the scatter
   float *tok = frand((int64_t)V * D, 1.0), *prefix = frand((int64_t)B * E, 1.0);
   float *pos = learned ? frand((int64_t)T * D, 1.0) : NULL;
   float *out = frand((int64_t)B * T * D, 1.0), *dout = frand((int64_t)B * T * D, 1.0);
   float *dtok = frand((int64_t)V * D, 1.0), *dprefix = frand((int64_t)B * E, 1.0);
   float *dpos = learned ? frand((int64_t)T * D, 1.0) : NULL;
   int32_t *d_in = dev(inputs, sizeof inputs);
   float *d_tok = dev(tok, FB(V * D)), *d_prefix = dev(prefix, FB(B * E));
   float *d_pos = learned ? dev(pos, FB(T * D)) : NULL;
   float *d_out = dev(NULL, FB(B * T * D)), *d_dout = dev(dout, FB(B * T * D));
   float *d_dtok = dev(dtok, FB(V * D)), *d_dprefix = dev(dprefix, FB(B * E));
   float *d_dpos = learned ? dev(dpos, FB(T * D)) : NULL;
   cpu->embedding_forward(out, inputs, tok, prefix, pos, B, S, P, D, E, scale);
   gpu->embedding_forward(d_out, d_in, d_tok, d_prefix, d_pos, B, S, P, D, E, scale);
   cpu->embedding_backward(dtok, dprefix, dpos, dout, inputs, B, S, P, D, E, scale, learned);
   gpu->embedding_backward(d_dtok, d_dprefix, d_dpos, d_dout, d_in, B, S, P, D, E, scale,
                           learned);
   SYNC_OK();
   expect_f(learned ? "embedding_forward (learned)" : "embedding_forward", d_out, out,
            (int64_t)B * T * D, 1e-6);
   expect_f("embedding_backward dtok", d_dtok, dtok, (int64_t)V * D, 1e-5);
   expect_f("embedding_backward dprefix", d_dprefix, dprefix, (int64_t)B * E, 1e-6);
   if (learned) expect_f("embedding_backward dpos", d_dpos, dpos, (int64_t)T * D, 1e-5);
   /* no prefix table */
   cpu->embedding_forward(out, inputs, tok, NULL, pos, B, S, P, D, E, scale);
   gpu->embedding_forward(d_out, d_in, d_tok, NULL, d_pos, B, S, P, D, E, scale);
   SYNC_OK();
   expect_f("embedding_forward (no prefix)", d_out, out, (int64_t)B * T * D, 1e-6);
   void *ps[] = {d_in, d_tok, d_prefix, d_pos, d_out, d_dout, d_dtok, d_dprefix, d_dpos};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) hrm_cuda_free(ps[i]);
   free(tok), free(prefix), free(pos), free(out), free(dout), free(dtok), free(dprefix);
   free(dpos);
}

/* ---- RMSNorm, residual, SwiGLU, RoPE -------------------------------------------------------- */

static void test_rmsnorm(void) {
   const int64_t N = 37;
   const int D = 96;
   const float eps = 1e-5f;
   float *x = frand(N * D, 2.0), *b = frand(N * D, 1.0), *dy = frand(N * D, 1.0);
   float *y = frand(N * D, 1.0), *r = frand(N, 1.0), *dx = frand(N * D, 1.0);
   float *d_x = dev(x, FB(N * D)), *d_b = dev(b, FB(N * D)), *d_dy = dev(dy, FB(N * D));
   float *d_y = dev(NULL, FB(N * D)), *d_r = dev(NULL, FB(N)), *d_dx = dev(NULL, FB(N * D));
   cpu->rmsnorm_forward(y, r, x, N, D, eps);
   gpu->rmsnorm_forward(d_y, d_r, d_x, N, D, eps);
   cpu->rmsnorm_backward(dx, dy, y, r, N, D);
   gpu->rmsnorm_backward(d_dx, d_dy, d_y, d_r, N, D);
   SYNC_OK();
   expect_f("rmsnorm_forward", d_y, y, N * D, 1e-5);
   expect_f("rmsnorm_forward rstd", d_r, r, N, 1e-5);
   expect_f("rmsnorm_backward", d_dx, dx, N * D, 1e-5);
   /* in place, as module.c calls it */
   gpu->rmsnorm_backward(d_dy, d_dy, d_y, d_r, N, D);
   SYNC_OK();
   expect_f("rmsnorm_backward in place", d_dy, dx, N * D, 1e-5);
   /* fused residual + rmsnorm against residual then rmsnorm, output aliasing an input */
   float *s = frand(N * D, 1.0), *d_s = dev(NULL, FB(N * D));
   cpu->residual_forward(s, x, b, N * D);
   cpu->rmsnorm_forward(y, r, s, N, D, eps);
   hrm_cuda_residual_rmsnorm_forward(d_y, d_r, d_s, d_x, d_b, N, D, eps);
   SYNC_OK();
   expect_f("residual_rmsnorm sum", d_s, s, N * D, 1e-6);
   expect_f("residual_rmsnorm out", d_y, y, N * D, 1e-5);
   gpu->add_rmsnorm_forward(d_y, d_r, d_x, d_b, N, D, eps);  // the table's fused entry
   SYNC_OK();
   expect_f("add_rmsnorm_forward", d_y, y, N * D, 1e-5);
   hrm_cuda_residual_rmsnorm_forward(d_x, NULL, NULL, d_x, d_b, N, D, eps);
   SYNC_OK();
   expect_f("residual_rmsnorm in place", d_x, y, N * D, 1e-5);
   void *ps[] = {d_x, d_b, d_dy, d_y, d_r, d_dx, d_s};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) hrm_cuda_free(ps[i]);
   free(x), free(b), free(dy), free(y), free(r), free(dx), free(s);
}

static void test_pointwise(void) {
   const int64_t N = 29;
   const int I = 77;
   float *gu = frand(N * 2 * I, 4.0), *dout = frand(N * I, 1.0);
   float *out = frand(N * I, 1.0), *dgu = frand(N * 2 * I, 1.0);
   float *d_gu = dev(gu, FB(N * 2 * I)), *d_dout = dev(dout, FB(N * I));
   float *d_out = dev(NULL, FB(N * I)), *d_dgu = dev(NULL, FB(N * 2 * I));
   cpu->swiglu_forward(out, gu, N, I);
   gpu->swiglu_forward(d_out, d_gu, N, I);
   cpu->swiglu_backward(dgu, dout, gu, N, I);
   gpu->swiglu_backward(d_dgu, d_dout, d_gu, N, I);
   SYNC_OK();
   expect_f("swiglu_forward", d_out, out, N * I, 1e-5);
   expect_f("swiglu_backward", d_dgu, dgu, N * 2 * I, 1e-5);
   /* residual, writing over its first operand */
   const int64_t n = N * I;
   float *a = frand(n, 1.0), *b = frand(n, 1.0), *sum = frand(n, 1.0);
   float *d_a = dev(a, FB(n)), *d_b = dev(b, FB(n));
   cpu->residual_forward(sum, a, b, n);
   gpu->residual_forward(d_a, d_a, d_b, n);
   SYNC_OK();
   expect_f("residual_forward", d_a, sum, n, 0.0);
   /* the token-mixing block's batched transpose, sizes off the 32-tile grid: exact */
   const int TB = 3, TR = 37, TC = 70;
   float *tin = frand((int64_t)TB * TR * TC, 1.0), *tout = frand((int64_t)TB * TR * TC, 1.0);
   float *d_tin = dev(tin, FB((int64_t)TB * TR * TC)), *d_tout = dev(NULL, FB((int64_t)TB * TR * TC));
   cpu->transpose_forward(tout, tin, TB, TR, TC);
   gpu->transpose_forward(d_tout, d_tin, TB, TR, TC);
   SYNC_OK();
   expect_f("transpose_forward", d_tout, tout, (int64_t)TB * TR * TC, 0.0);
   void *ps[] = {d_gu, d_dout, d_out, d_dgu, d_a, d_b, d_tin, d_tout};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) hrm_cuda_free(ps[i]);
   free(gu), free(dout), free(out), free(dgu), free(a), free(b), free(sum), free(tin), free(tout);
}

static void test_rope(void) {
   const int B = 2, T = 13, NH = 3, HD = 64, D = NH * HD;
   const int64_t n = (int64_t)B * T * 3 * D;
   float *cs = malloc(FB(T * HD)), *sn = malloc(FB(T * HD));
   cpu->rope_tables(cs, sn, T, HD, 10000.0);
   float *qkv = frand(n, 1.0), *d_qkv = dev(qkv, FB(n));
   float *d_cs = dev(NULL, FB(T * HD)), *d_sn = dev(NULL, FB(T * HD));
   gpu->rope_tables(d_cs, d_sn, T, HD, 10000.0);
   SYNC_OK();
   expect_f("rope_tables cos", d_cs, cs, T * HD, 0.0);
   expect_f("rope_tables sin", d_sn, sn, T * HD, 0.0);
   cpu->rope_forward(qkv, cs, sn, B, T, NH, HD);
   gpu->rope_forward(d_qkv, d_cs, d_sn, B, T, NH, HD);
   SYNC_OK();
   expect_f("rope_forward", d_qkv, qkv, n, 1e-6);
   cpu->rope_backward(qkv, cs, sn, B, T, NH, HD);
   gpu->rope_backward(d_qkv, d_cs, d_sn, B, T, NH, HD);
   SYNC_OK();
   expect_f("rope_backward", d_qkv, qkv, n, 1e-6);
   /* the fused entries (the CUDA table runs the separate kernels in sequence) */
   const int64_t no = (int64_t)B * T * D, na = (int64_t)B * NH * T * T;
   float *dout = frand(no, 1.0), *out = malloc(FB(no)), *att = malloc(FB(na));
   float *datt = malloc(FB(na)), *dqkv = malloc(FB(n));
   float *d_dout = dev(dout, FB(no)), *d_out = dev(NULL, FB(no)), *d_att = dev(NULL, FB(na));
   float *d_datt = dev(NULL, FB(na)), *d_dqkv = dev(NULL, FB(n));
   cpu->rope_attention_forward(out, att, qkv, cs, sn, B, T, NH, HD);
   gpu->rope_attention_forward(d_out, d_att, d_qkv, d_cs, d_sn, B, T, NH, HD);
   cpu->rope_attention_backward(dqkv, datt, dout, qkv, att, cs, sn, B, T, NH, HD);
   gpu->rope_attention_backward(d_dqkv, d_datt, d_dout, d_qkv, d_att, d_cs, d_sn, B, T, NH, HD);
   SYNC_OK();
   expect_f("rope_attention_forward out", d_out, out, no, 1e-5);
   expect_f("rope_attention_forward qkv", d_qkv, qkv, n, 1e-6);
   expect_f("rope_attention_backward", d_dqkv, dqkv, n, 1e-5);
   /* the untaped attention, with and without RoPE, on fresh inputs */
   for (int rope = 0; rope < 2; rope++) {
      float *x = frand(n, 1.0), *d_x = dev(x, FB(n));
      cpu->attention_infer(out, x, rope ? cs : NULL, sn, B, T, NH, HD);
      gpu->attention_infer(d_out, d_x, rope ? d_cs : NULL, d_sn, B, T, NH, HD);
      SYNC_OK();
      expect_f(rope ? "attention_infer out (RoPE)" : "attention_infer out", d_out, out, no, 1e-5);
      expect_f("attention_infer qkv", d_x, x, n, 1e-6);
      hrm_cuda_free(d_x);
      free(x);
   }
   void *ps[] = {d_qkv, d_cs, d_sn, d_dout, d_out, d_att, d_datt, d_dqkv};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) hrm_cuda_free(ps[i]);
   free(cs), free(sn), free(qkv), free(dout), free(out), free(att), free(datt), free(dqkv);
}

/* ---- memory, rows and the bias -------------------------------------------------------------- */

static void expect_bytes(const char *what, const void *d, const void *want, size_t bytes) {
   void *got = host_of(d, bytes);
   if (memcmp(got, want, bytes) == 0) check_passed_++;
   else {
      check_failed_++;
      fprintf(stderr, "FAIL %s: bytes differ\n", what);
   }
   free(got);
}

static void test_memory(void) {
   const int64_t R = 37, L = 19;  // rows of 19 floats; u8 rows of 3 bytes
   float *src = frand(R * L, 1.0), *dst = frand(R * L, 1.0);
   float *d_src = dev(src, FB(R * L)), *d_dst = dev(dst, FB(R * L));
   int32_t idx[11];
   for (int i = 0; i < 11; i++) idx[i] = (i * 7 + 3) % (int)R;  // distinct rows
   int32_t *d_idx = dev(idx, sizeof idx);
   cpu->gather_rows(dst, src, idx, 11, FB(L));
   gpu->gather_rows(d_dst, d_src, d_idx, 11, FB(L));
   SYNC_OK();
   expect_bytes("gather_rows", d_dst, dst, FB(R * L));
   cpu->scatter_rows(dst, src, idx, 11, FB(L));
   gpu->scatter_rows(d_dst, d_src, d_idx, 11, FB(L));
   cpu->broadcast_row(dst + 20 * L, src + 5 * L, 6, FB(L));
   gpu->broadcast_row(d_dst + 20 * L, d_src + 5 * L, 6, FB(L));
   cpu->copy_rows(dst + 1, FB(L), src + 2, FB(2 * L), R / 2, FB(5));
   gpu->copy_rows(d_dst + 1, FB(L), d_src + 2, FB(2 * L), R / 2, FB(5));
   SYNC_OK();
   expect_bytes("scatter_rows, broadcast_row, copy_rows", d_dst, dst, FB(R * L));
   uint8_t bsrc[R * 3], bdst[R * 3];
   for (int64_t i = 0; i < R * 3; i++) bsrc[i] = (uint8_t)(i * 13), bdst[i] = (uint8_t)i;
   uint8_t *d_bsrc = dev(bsrc, sizeof bsrc), *d_bdst = dev(bdst, sizeof bdst);
   cpu->scatter_rows(bdst, bsrc, idx, 11, 3);
   gpu->scatter_rows(d_bdst, d_bsrc, d_idx, 11, 3);
   cpu->gather_rows(bdst, bsrc, NULL, 4, 3);
   gpu->gather_rows(d_bdst, d_bsrc, NULL, 4, 3);
   SYNC_OK();
   expect_bytes("rows of 3 bytes", d_bdst, bdst, sizeof bdst);
   cpu->zero(dst + 3, FB(40));
   gpu->zero(d_dst + 3, FB(40));
   cpu->copy(dst + 100, src + 9, FB(50));
   gpu->copy(d_dst + 100, d_src + 9, FB(50));
   CHECK_OK(gpu->upload(d_dst + 200, src, FB(30)));
   cpu->copy(dst + 200, src, FB(30));
   SYNC_OK();
   expect_bytes("zero, copy, upload", d_dst, dst, FB(R * L));
   float back[30];
   CHECK_OK(gpu->download(back, d_dst + 200, sizeof back));
   CHECK(memcmp(back, src, sizeof back) == 0);
   /* a bf16 tape's packing and widening: the host's bits, and back exactly */
   uint16_t packed[R * L];
   uint16_t *d_packed = dev(NULL, sizeof packed);
   cpu->pack_bf16(packed, src, R * L);
   gpu->pack_bf16(d_packed, d_src, R * L);
   SYNC_OK();
   expect_bytes("pack_bf16", d_packed, packed, sizeof packed);
   cpu->widen_bf16(dst, packed, R * L);
   gpu->widen_bf16(d_dst, d_packed, R * L);
   SYNC_OK();
   expect_bytes("widen_bf16", d_dst, dst, FB(R * L));
   hrm_cuda_free(d_packed);
   /* the bias of the token-window heads */
   const int64_t N = 45;
   const int OC = 70;
   float *out = frand(N * OC, 1.0), *bias = frand(OC, 1.0), *db = frand(OC, 1.0);
   float *d_out = dev(out, FB(N * OC)), *d_bias = dev(bias, FB(OC)), *d_db = dev(db, FB(OC));
   cpu->add_bias(out, bias, N, OC);
   gpu->add_bias(d_out, d_bias, N, OC);
   cpu->bias_backward(db, out, N, OC);
   gpu->bias_backward(d_db, d_out, N, OC);
   SYNC_OK();
   expect_f("add_bias", d_out, out, N * OC, 0.0);
   expect_f("bias_backward", d_db, db, OC, 1e-5);
   void *ps[] = {d_src, d_dst, d_idx, d_bsrc, d_bdst, d_out, d_bias, d_db};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) gpu->release(ps[i]);
   free(src), free(dst), free(out), free(bias), free(db);
}

/* ---- the ACT wrapper and the loss head ------------------------------------------------------ */

static void test_act(void) {
   enum { B = 9, S = 7, T = 10, D = 12, V = 5, MAXS = 6 };
   uint8_t active[B], halted[B];
   for (int r = 0; r < B; r++) active[r] = (uint8_t)(r % 3 != 1), halted[r] = (uint8_t)(r % 2);
   uint8_t *d_active = dev(active, B), *d_halted = dev(halted, B);
   int32_t rows[B], count = -1, *d_rows = dev(NULL, sizeof rows), *d_count = dev(NULL, 4);
   cpu->list_rows(rows, &count, active, B);
   gpu->list_rows(d_rows, d_count, d_active, B);
   SYNC_OK();
   expect_bytes("list_rows", d_rows, rows, sizeof(int32_t) * (size_t)count);
   expect_bytes("list_rows count", d_count, &count, 4);
   const int32_t n = count;
   /* the carry reset of the listed halted rows */
   float *state = frand(B * T * D, 1.0), *init = frand(D, 1.0);
   float *d_state = dev(state, FB(B * T * D)), *d_init = dev(init, FB(D));
   cpu->reset_state(state, init, halted, rows, n, T, D);
   gpu->reset_state(d_state, d_init, d_halted, d_rows, n, T, D);
   int32_t f[4][B * S], bf[3][B * S];
   for (int k = 0; k < 4; k++)
      for (int i = 0; i < B * S; i++) f[k][i] = 100 * k + i;
   for (int k = 0; k < 3; k++)
      for (int i = 0; i < B * S; i++) bf[k][i] = (i * (k + 3)) % V;
   int32_t *d_f[4], *d_bf[3];
   for (int k = 0; k < 4; k++) d_f[k] = dev(f[k], sizeof f[k]);
   for (int k = 0; k < 3; k++) d_bf[k] = dev(bf[k], sizeof bf[k]);
   cpu->reset_fields(f[0], f[1], f[2], f[3], halted, rows, n, S, bf[0], bf[1], bf[2]);
   gpu->reset_fields(d_f[0], d_f[1], d_f[2], d_f[3], d_halted, d_rows, n, S, d_bf[0], d_bf[1],
                     d_bf[2]);
   cpu->reset_fields(f[0], f[1], f[2], f[3], active, NULL, B, S, bf[1], NULL, NULL);
   gpu->reset_fields(d_f[0], d_f[1], d_f[2], d_f[3], d_active, NULL, B, S, d_bf[1], NULL, NULL);
   SYNC_OK();
   expect_bytes("reset_state", d_state, state, FB(B * T * D));
   for (int k = 0; k < 4; k++) expect_bytes("reset_fields", d_f[k], f[k], sizeof f[k]);
   /* halting, with and without exploration, both rules, at a row offset */
   int32_t steps[B], new_steps[B];
   uint8_t new_halted[B];
   for (int r = 0; r < B; r++) steps[r] = r % MAXS;
   float *q = frand(2 * B, 2.0);
   int32_t *d_steps = dev(steps, sizeof steps), *d_ns = dev(NULL, sizeof new_steps);
   uint8_t *d_nh = dev(NULL, B);
   float *d_q = dev(q, FB(2 * B));
   for (int rule = 0; rule < 2; rule++)
      for (int explore = 0; explore < 2; explore++) {
         cpu->act_halt(new_steps, new_halted, steps, rows, n, q, MAXS, 0.6, explore, rule, 42,
                       7 + rule, 1000);
         gpu->act_halt(d_ns, d_nh, d_steps, d_rows, n, d_q, MAXS, 0.6, explore, rule, 42,
                       7 + rule, 1000);
         SYNC_OK();
         expect_bytes("act_halt steps", d_ns, new_steps, sizeof(int32_t) * (size_t)n);
         expect_bytes("act_halt halted", d_nh, new_halted, (size_t)n);
      }
   float target[B], *d_target = dev(NULL, FB(B));
   cpu->target_q(target, q, new_steps, n, MAXS);
   gpu->target_q(d_target, d_q, d_ns, n, MAXS);
   SYNC_OK();
   expect_f("target_q", d_target, target, n, 1e-6);
   /* the loss head over n rows, with and without the q_continue target */
   double *tok_loss = drand_pos(B * S), metrics[9], tok_w[B * S], row_bce[B];
   float qs[5 * B], dq[2 * B], dqs[2 * B];
   double row_w[B];
   int32_t pred[B * S], labels[B * S];
   for (int i = 0; i < B * S; i++) {
      pred[i] = i % V;
      labels[i] = i % 4 == 0 ? -100 : (i % 3 == 0 ? i % V : (i + 1) % V);
   }
   for (int i = 0; i < S; i++) labels[i] = pred[i];  // row 0 exactly right
   double *d_tl = dev(tok_loss, sizeof(double) * B * S), *d_metrics = dev(NULL, sizeof metrics);
   double *d_tw = dev(NULL, sizeof tok_w), *d_rb = dev(NULL, sizeof row_bce);
   double *d_rw = dev(NULL, sizeof row_w);
   int32_t *d_pred = dev(pred, sizeof pred), *d_labels = dev(labels, sizeof labels);
   float *d_qs = dev(NULL, sizeof qs), *d_dq = dev(NULL, sizeof dq);
   for (int with_target = 0; with_target < 2; with_target++) {
      const float *t = with_target ? target : NULL, *d_t = with_target ? d_target : NULL;
      cpu->loss_head_forward(metrics, tok_w, qs, row_bce, tok_loss, pred, labels, q, new_steps,
                             new_halted, t, n, S, 13.0);
      gpu->loss_head_forward(d_metrics, d_tw, d_qs, d_rb, d_tl, d_pred, d_labels, d_q, d_ns, d_nh,
                             d_t, n, S, 13.0);
      cpu->loss_head_backward(dq, dqs, row_w, qs, t, n, 13.0);
      gpu->loss_head_backward(d_dq, d_qs + 3 * n, d_rw, d_qs, d_t, n, 13.0);
      SYNC_OK();
      expect_d("loss_head_forward metrics", d_metrics, metrics, 9, 1e-12);
      expect_d("loss_head_forward token weights", d_tw, tok_w, (int64_t)n * S, 1e-15);
      expect_f("loss_head_forward q split", d_qs, qs, 3 * n, 0.0);
      expect_f("loss_head_backward", d_dq, dq, 2 * n, 1e-6);
   }
   float qh[B], qc[B], *d_qh = dev(NULL, FB(B)), *d_qc = dev(NULL, FB(B));
   memset(qh, 0, sizeof qh), memset(qc, 0, sizeof qc);
   cpu->split_q_rows(qh, qc, q, rows, n);
   gpu->split_q_rows(d_qh, d_qc, d_q, d_rows, n);
   SYNC_OK();
   expect_bytes("split_q_rows halt", d_qh, qh, sizeof qh);
   expect_bytes("split_q_rows continue", d_qc, qc, sizeof qc);
   /* inference bookkeeping, ties in the logits included */
   float *logits = frand(B * S * V, 1.0);
   for (int k = 0; k < B * S * V; k += 11) logits[k] = logits[k + 1 < B * S * V ? k + 1 : k];
   float *d_logits = dev(logits, FB(B * S * V));
   for (int halt_q = 0; halt_q < 3; halt_q++) {
      int32_t pr[B * S], stp[B], left = -1;
      memset(pr, 0, sizeof pr), memset(stp, 0, sizeof stp);
      uint8_t act[B];
      memcpy(act, active, B);
      int32_t *d_pr = dev(pr, sizeof pr), *d_stp = dev(stp, sizeof stp);
      uint8_t *d_act = dev(act, B);
      cpu->solve_update(&left, pr, stp, qh, qc, act, logits, q, q + B, B, S, V, 3, halt_q);
      gpu->solve_update(d_count, d_pr, d_stp, d_qh, d_qc, d_act, d_logits, d_q, d_q + B, B, S, V,
                        3, halt_q);
      SYNC_OK();
      expect_bytes("solve_update predictions", d_pr, pr, sizeof pr);
      expect_bytes("solve_update steps", d_stp, stp, sizeof stp);
      expect_bytes("solve_update active", d_act, act, B);
      expect_bytes("solve_update count", d_count, &left, 4);
      expect_bytes("solve_update q", d_qh, qh, sizeof qh);
      gpu->release(d_pr), gpu->release(d_stp), gpu->release(d_act);
   }
   float *ema = frand(1000, 1.0), *x = frand(1000, 1.0);
   float *d_ema = dev(ema, FB(1000)), *d_x = dev(x, FB(1000));
   cpu->ema_update(ema, x, 1000, 0.999);
   gpu->ema_update(d_ema, d_x, 1000, 0.999);
   SYNC_OK();
   expect_f("ema_update", d_ema, ema, 1000, 1e-7);
   void *ps[] = {d_active, d_halted, d_rows, d_count, d_state, d_init, d_steps, d_ns, d_nh, d_q,
                 d_target, d_tl, d_metrics, d_tw, d_rb, d_rw, d_pred, d_labels, d_qs, d_dq,
                 d_qh, d_qc, d_logits, d_ema, d_x};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) gpu->release(ps[i]);
   for (int k = 0; k < 4; k++) gpu->release(d_f[k]);
   for (int k = 0; k < 3; k++) gpu->release(d_bf[k]);
   free(state), free(init), free(q), free(tok_loss), free(logits), free(ema), free(x);
}

/* ---- attention ------------------------------------------------------------------------------ */

static void test_attention(int B, int T, int NH, int HD) {
   const int D = NH * HD;
   const int64_t nq = (int64_t)B * T * 3 * D, no = (int64_t)B * T * D;
   const int64_t na = (int64_t)B * NH * T * T;
   float *qkv = frand(nq, 1.5), *dout = frand(no, 1.0);
   float *out = malloc(FB(no)), *att = malloc(FB(na)), *datt = malloc(FB(na));
   float *dqkv = malloc(FB(nq));
   float *d_qkv = dev(qkv, FB(nq)), *d_dout = dev(dout, FB(no)), *d_out = dev(NULL, FB(no));
   float *d_att = dev(NULL, FB(na)), *d_datt = dev(NULL, FB(na)), *d_dqkv = dev(NULL, FB(nq));
   cpu->attention_forward(out, att, qkv, B, T, NH, HD);
   gpu->attention_forward(d_out, d_att, d_qkv, B, T, NH, HD);
   cpu->attention_backward(dqkv, datt, dout, qkv, att, B, T, NH, HD);
   gpu->attention_backward(d_dqkv, d_datt, d_dout, d_qkv, d_att, B, T, NH, HD);
   SYNC_OK();
   char what[96];
   snprintf(what, sizeof what, "attention_forward out B%d T%d NH%d HD%d", B, T, NH, HD);
   expect_f(what, d_out, out, no, 1e-5);
   snprintf(what, sizeof what, "attention_forward att B%d T%d NH%d HD%d", B, T, NH, HD);
   expect_f(what, d_att, att, na, 1e-5);
   snprintf(what, sizeof what, "attention_backward dqkv B%d T%d NH%d HD%d", B, T, NH, HD);
   expect_f(what, d_dqkv, dqkv, nq, 1e-5);
   snprintf(what, sizeof what, "attention_backward dS B%d T%d NH%d HD%d", B, T, NH, HD);
   expect_f(what, d_datt, datt, na, 1e-5);
   void *ps[] = {d_qkv, d_dout, d_out, d_att, d_datt, d_dqkv};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) hrm_cuda_free(ps[i]);
   free(qkv), free(dout), free(out), free(att), free(datt), free(dqkv);
}

/* ---- losses and argmax ---------------------------------------------------------------------- */

static void test_losses(int V) {
   const int64_t N = 50;
   float *x = frand(N * V, 3.0), *dx = malloc(FB(N * V));
   int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
   for (int64_t i = 0; i < N; i++) y[i] = i % 7 == 3 ? HRM_IGNORE_LABEL : (int32_t)(urand() * V);
   double *w = drand_pos(N), *loss = malloc(sizeof(double) * (size_t)N);
   float *d_x = dev(x, FB(N * V)), *d_dx = dev(NULL, FB(N * V));
   int32_t *d_y = dev(y, sizeof(int32_t) * (size_t)N);
   double *d_w = dev(w, sizeof(double) * (size_t)N), *d_loss = dev(NULL, sizeof(double) * (size_t)N);
   char what[64];
   for (int kind = 0; kind < 2; kind++) {
      const char *nm = kind == 0 ? "stablemax" : "softmax";
      if (kind == 0) {
         cpu->stablemax_ce_forward(loss, x, y, N, V);
         gpu->stablemax_ce_forward(d_loss, d_x, d_y, N, V);
         cpu->stablemax_ce_backward(dx, w, x, y, N, V);
         gpu->stablemax_ce_backward(d_dx, d_w, d_x, d_y, N, V);
      } else {
         cpu->softmax_ce_forward(loss, x, y, N, V);
         gpu->softmax_ce_forward(d_loss, d_x, d_y, N, V);
         cpu->softmax_ce_backward(dx, w, x, y, N, V);
         gpu->softmax_ce_backward(d_dx, d_w, d_x, d_y, N, V);
      }
      SYNC_OK();
      snprintf(what, sizeof what, "%s_ce_forward V=%d", nm, V);
      expect_d(what, d_loss, loss, N, 1e-10);
      snprintf(what, sizeof what, "%s_ce_backward V=%d", nm, V);
      expect_f(what, d_dx, dx, N * V, 1e-6);
   }
   /* BCE on N logits against targets in [0, 1] */
   float *t = frand(N, 0.5);
   for (int64_t i = 0; i < N; i++) t[i] += 0.5f;
   float *d_t = dev(t, FB(N)), *g = malloc(FB(N)), *d_g = dev(NULL, FB(N));
   cpu->bce_logits_forward(loss, x, t, N);
   gpu->bce_logits_forward(d_loss, d_x, d_t, N);
   cpu->bce_logits_backward(g, w, x, t, N);
   gpu->bce_logits_backward(d_g, d_w, d_x, d_t, N);
   SYNC_OK();
   expect_d("bce_logits_forward", d_loss, loss, N, 1e-10);
   expect_f("bce_logits_backward", d_g, g, N, 1e-6);
   /* argmax with ties: logits rounded to a coarse grid */
   for (int64_t i = 0; i < N * V; i++) x[i] = roundf(x[i]);
   int32_t *pred = malloc(sizeof(int32_t) * (size_t)N), *d_pred = dev(NULL, sizeof(int32_t) * (size_t)N);
   hrm_cuda_memcpy(d_x, HRM_DEVICE_CUDA, x, HRM_DEVICE_CPU, FB(N * V));
   cpu->argmax_forward(pred, x, N, V);
   gpu->argmax_forward(d_pred, d_x, N, V);
   SYNC_OK();
   int32_t *gp = host_of(d_pred, sizeof(int32_t) * (size_t)N);
   CHECK(memcmp(gp, pred, sizeof(int32_t) * (size_t)N) == 0);
   void *ps[] = {d_x, d_dx, d_y, d_w, d_loss, d_t, d_g, d_pred};
   for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) hrm_cuda_free(ps[i]);
   free(x), free(dx), free(y), free(w), free(loss), free(t), free(g), free(pred), free(gp);
}

/* ---- optimizer updates ---------------------------------------------------------------------- */

static void test_updates(void) {
   const int64_t n = 10007;
   float *p = frand(n, 1.0), *m = frand(n, 0.1), *v = frand(n, 0.1), *g = frand(n, 1.0);
   for (int64_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
   for (int rule = 0; rule < 2; rule++) {
      float *d_p = dev(p, FB(n)), *d_m = dev(m, FB(n)), *d_v = dev(v, FB(n)), *d_g = dev(g, FB(n));
      float *hp = fdup(p, n), *hm = fdup(m, n), *hv = fdup(v, n);
      if (rule == 0) {
         cpu->adam_atan2_update(hp, hm, hv, g, n, 1e-3f, 0.999f, 0.1f, 0.05f, 1.5f, 0.3f);
         gpu->adam_atan2_update(d_p, d_m, d_v, d_g, n, 1e-3f, 0.999f, 0.1f, 0.05f, 1.5f, 0.3f);
      } else {
         cpu->adamw_update(hp, hm, hv, g, n, 1e-3f, 0.999f, 0.1f, 0.95f, 0.3f, 1e-8f);
         gpu->adamw_update(d_p, d_m, d_v, d_g, n, 1e-3f, 0.999f, 0.1f, 0.95f, 0.3f, 1e-8f);
      }
      SYNC_OK();
      expect_f(rule == 0 ? "adam_atan2 p" : "adamw p", d_p, hp, n, 1e-6);
      expect_f(rule == 0 ? "adam_atan2 m" : "adamw m", d_m, hm, n, 1e-6);
      expect_f(rule == 0 ? "adam_atan2 v" : "adamw v", d_v, hv, n, 1e-6);
      hrm_cuda_free(d_p), hrm_cuda_free(d_m), hrm_cuda_free(d_v), hrm_cuda_free(d_g);
      free(hp), free(hm), free(hv);
   }
   /* sign-SGD: duplicate ids are summed before the sign; untouched rows keep their values */
   const int64_t rows = 9, U = 7;
   const int E = 300;
   int32_t ids[7] = {3, 0, 3, 8, 5, 0, 3};
   float *table = frand(rows * E, 1.0), *grad = frand(U * E, 1.0);
   grad[0] = 0.0f, grad[2 * E] = 0.0f, grad[6 * E] = 0.0f;  // a zero sum: sign 0
   float *d_table = dev(table, FB(rows * E)), *d_grad = dev(grad, FB(U * E));
   int32_t *d_ids = dev(ids, sizeof ids);
   cpu->signsgd_update(table, grad, ids, U, E, 0.01f, 0.1f);
   gpu->signsgd_update(d_table, d_grad, d_ids, U, E, 0.01f, 0.1f);
   SYNC_OK();
   expect_f("signsgd_update", d_table, table, rows * E, 1e-6);
   hrm_cuda_free(d_table), hrm_cuda_free(d_grad), hrm_cuda_free(d_ids);
   free(table), free(grad), free(p), free(m), free(v), free(g);
}

int main(void) {
   if (!hrm_cuda_available()) {
      printf("test_cuda_ops: no CUDA device, skipped\n");
      return 77;
   }
   CHECK_OK(hrm_cuda_init());
   test_gemm(HRM_CUDA_GEMM_F32, 1e-5, "f32");
   test_gemm(HRM_CUDA_GEMM_TF32, 5e-3, "tf32");
   test_gemm(HRM_CUDA_GEMM_BF16, 1e-2, "bf16");
   test_linear(HRM_CUDA_GEMM_F32, 1e-5, "f32");
   test_linear(HRM_CUDA_GEMM_BF16, 1e-2, "bf16");
   hrm_cuda_set_gemm_mode(HRM_CUDA_GEMM_F32);
   test_gemm_bf16();
   test_embedding(0);
   test_embedding(1);
   test_rmsnorm();
   test_pointwise();
   test_rope();
   test_attention(2, 82, 2, 64);   // Sudoku: 81 cells + 1 puzzle position
   test_attention(1, 33, 3, 32);
   test_attention(1, 130, 1, 128);
   test_attention(3, 1, 2, 64);
   test_memory();
   test_act();
   test_losses(11);
   test_losses(70);
   test_updates();
   CHECK_OK(hrm_cuda_sync());
   hrm_cuda_shutdown();
   return check_summary("test_cuda_ops");
}
