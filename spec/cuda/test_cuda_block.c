/* test_cuda_block.c — one post-norm HRM block, forward and backward, through the CUDA table
 * against the CPU table.
 *
 * The op sequence (and its aliasing: residual into its second operand, RMSNorm backward in
 * place, linear backward accumulating with beta 1) is module.c's block_forward/block_backward,
 * on a Sudoku-sized shape (T = 81 + 1, D 128, 2 heads of 64, RoPE). All buffers live in one
 * block, uploaded once, so both devices start from identical bytes. Tolerances: 1e-4 with
 * fp32 GEMMs, 5e-2 with bf16 GEMMs (errors compound through 7 products). Exits 77 without a
 * device.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda.h"

enum { B = 2, S = 81, P = 1, T = S + P, D = 128, NH = 2, HD = 64 };
static int I;

/* offsets (in floats) of every array inside the block */
typedef struct layout {
   size_t in, w_qkv, w_o, w_gu, w_down;                          // inputs and weights
   size_t qkv, att, atty, h1, rstd1, gu, act, h2, rstd2, tmp;    // forward activations
   size_t dout, din, g_qkv, g_o, g_gu, g_down, dact, dgu, dqkv, datt;  // backward
   size_t cos, sin, total;
} layout;

static layout make_layout(void) {
   layout L;
   size_t off = 0;
   const size_t N = (size_t)B * T;
#define TAKE(f, n) (L.f = off, off += ((size_t)(n) + 63) / 64 * 64)
   TAKE(in, N * D);
   TAKE(w_qkv, 3 * D * D);
   TAKE(w_o, D * D);
   TAKE(w_gu, (size_t)2 * I * D);
   TAKE(w_down, (size_t)D * I);
   TAKE(qkv, N * 3 * D);
   TAKE(att, (size_t)B * NH * T * T);
   TAKE(atty, N * D);
   TAKE(h1, N * D);
   TAKE(rstd1, N);
   TAKE(gu, N * 2 * I);
   TAKE(act, N * I);
   TAKE(h2, N * D);
   TAKE(rstd2, N);
   TAKE(tmp, N * D);
   TAKE(dout, N * D);
   TAKE(din, N * D);
   TAKE(g_qkv, 3 * D * D);
   TAKE(g_o, D * D);
   TAKE(g_gu, (size_t)2 * I * D);
   TAKE(g_down, (size_t)D * I);
   TAKE(dact, N * I);
   TAKE(dgu, N * 2 * I);
   TAKE(dqkv, N * 3 * D);
   TAKE(datt, (size_t)B * NH * T * T);
   TAKE(cos, T * HD);
   TAKE(sin, T * HD);
#undef TAKE
   L.total = off;
   return L;
}

/* module.c's block_forward then block_backward, on base (device memory of be) */
static void run_block(const hrm_backend *be, float *base, const layout *L) {
   const int64_t N = (int64_t)B * T;
   const float eps = 1e-5f;
#define A(f) (base + L->f)
   be->linear_forward(A(qkv), A(in), A(w_qkv), NULL, N, D, 3 * D);
   be->rope_forward(A(qkv), A(cos), A(sin), B, T, NH, HD);
   be->attention_forward(A(atty), A(att), A(qkv), B, T, NH, HD);
   be->linear_forward(A(tmp), A(atty), A(w_o), NULL, N, D, D);
   be->residual_forward(A(tmp), A(in), A(tmp), N * D);
   be->rmsnorm_forward(A(h1), A(rstd1), A(tmp), N, D, eps);
   be->linear_forward(A(gu), A(h1), A(w_gu), NULL, N, D, 2 * I);
   be->swiglu_forward(A(act), A(gu), N, I);
   be->linear_forward(A(tmp), A(act), A(w_down), NULL, N, I, D);
   be->residual_forward(A(tmp), A(h1), A(tmp), N * D);
   be->rmsnorm_forward(A(h2), A(rstd2), A(tmp), N, D, eps);

   float *dA = A(dout);
   be->rmsnorm_backward(dA, A(dout), A(h2), A(rstd2), N, D);
   be->linear_backward(A(dact), A(g_down), NULL, dA, A(act), A(w_down), N, I, D, 0.0f);
   be->swiglu_backward(A(dgu), A(dact), A(gu), N, I);
   be->linear_backward(dA, A(g_gu), NULL, A(dgu), A(h1), A(w_gu), N, D, 2 * I, 1.0f);
   be->rmsnorm_backward(A(din), dA, A(h1), A(rstd1), N, D);
   be->linear_backward(dA, A(g_o), NULL, A(din), A(atty), A(w_o), N, D, D, 0.0f);
   be->attention_backward(A(dqkv), A(datt), dA, A(qkv), A(att), B, T, NH, HD);
   be->rope_backward(A(dqkv), A(cos), A(sin), B, T, NH, HD);
   be->linear_backward(A(din), A(g_qkv), NULL, A(dqkv), A(in), A(w_qkv), N, D, 3 * D, 1.0f);
#undef A
}

static double rel_err(const float *got, const float *want, size_t n) {
   double num = 0.0, den = 0.0;
   for (size_t i = 0; i < n; i++) {
      const double e = fabs((double)got[i] - (double)want[i]);
      if (e > num || isnan(e)) num = isnan(e) ? INFINITY : e;
      if (fabs((double)want[i]) > den) den = fabs((double)want[i]);
   }
   return den > 0.0 ? num / den : num;
}

static void compare(const char *mode, const float *got, const float *want, const layout *L,
                    double tol) {
   const size_t N = (size_t)B * T;
   const struct { const char *name; size_t off, n; } outs[] = {
      {"h2 (block output)", L->h2, N * D}, {"att", L->att, (size_t)B * NH * T * T},
      {"din", L->din, N * D},              {"g_qkv", L->g_qkv, 3 * D * D},
      {"g_o", L->g_o, D * D},              {"g_gate_up", L->g_gu, (size_t)2 * I * D},
      {"g_down", L->g_down, (size_t)D * I},
   };
   for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
      const double e = rel_err(got + outs[k].off, want + outs[k].off, outs[k].n);
      if (e <= tol) check_passed_++;
      else {
         check_failed_++;
         fprintf(stderr, "FAIL block %s %s: relative error %.3g > %.3g\n", mode, outs[k].name, e,
                 tol);
      }
   }
}

int main(void) {
   if (!hrm_cuda_available()) {
      printf("test_cuda_block: no CUDA device, skipped\n");
      return 77;
   }
   CHECK_OK(hrm_cuda_init());
   I = hrm_swiglu_inter(D, 4.0);
   const layout L = make_layout();
   float *init = calloc(L.total, sizeof(float)), *cpu = malloc(L.total * sizeof(float));
   float *got = malloc(L.total * sizeof(float));
   uint64_t st = 0x243F6A8885A308D3ull;
   const struct { size_t off, n; double scale; } rnd[] = {
      {L.in, (size_t)B * T * D, 1.0},       {L.w_qkv, 3 * D * D, 1.0 / sqrt(D)},
      {L.w_o, D * D, 1.0 / sqrt(D)},        {L.w_gu, (size_t)2 * I * D, 1.0 / sqrt(D)},
      {L.w_down, (size_t)D * I, 0.05},      {L.dout, (size_t)B * T * D, 1.0},
      {L.g_qkv, 3 * D * D, 0.1},            {L.g_o, D * D, 0.1},  // weight grads accumulate
   };
   for (size_t k = 0; k < sizeof rnd / sizeof rnd[0]; k++)
      for (size_t i = 0; i < rnd[k].n; i++) {
         st ^= st << 13, st ^= st >> 7, st ^= st << 17;
         init[rnd[k].off + i] = (float)((2.0 * ((double)(st >> 11) / 9007199254740992.0) - 1.0) *
                                        rnd[k].scale);
      }
   hrm_cpu_rope_tables(init + L.cos, init + L.sin, T, HD, 10000.0);
   void *dbase = NULL;
   CHECK_OK(hrm_cuda_malloc(&dbase, L.total * sizeof(float)));
   const int modes[2] = {HRM_CUDA_GEMM_F32, HRM_CUDA_GEMM_BF16};
   const double tols[2] = {1e-4, 5e-2};
   for (int k = 0; k < 2 && dbase; k++) {
      hrm_cuda_set_gemm_mode(modes[k]);
      memcpy(cpu, init, L.total * sizeof(float));
      run_block(&hrm_cpu_backend, cpu, &L);
      CHECK_OK(hrm_cuda_memcpy(dbase, HRM_DEVICE_CUDA, init, HRM_DEVICE_CPU,
                               L.total * sizeof(float)));
      run_block(&hrm_cuda_backend, dbase, &L);
      CHECK_OK(hrm_cuda_sync());
      CHECK_OK(hrm_cuda_memcpy(got, HRM_DEVICE_CPU, dbase, HRM_DEVICE_CUDA,
                               L.total * sizeof(float)));
      compare(k == 0 ? "f32" : "bf16", got, cpu, &L, tols[k]);
   }
   hrm_cuda_free(dbase);
   free(init), free(cpu), free(got);
   hrm_cuda_shutdown();
   return check_summary("test_cuda_block");
}
