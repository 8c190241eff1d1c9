/* test_cuda_block.c — the module code on the CUDA table against the CPU table.
 *
 * The same reasoning module (two post-norm blocks over the sum of two inputs, Sudoku-sized:
 * T = 81 + 1, D 128, 2 heads of 64, RoPE) is declared in a CPU store and in a CUDA store with
 * the same seed, so both hold the same initial weights (a device store draws its init on the
 * host). One untaped call, then one taped call with both inputs watched and a backward from the
 * same output gradient, run on each; the outputs, the input gradients and every parameter
 * gradient must agree: 1e-4 with fp32 GEMMs, 5e-2 with bf16 GEMMs (errors compound through the
 * products of two blocks).
 *
 * Without a GPU the CPU table itself is bound to the "cuda" device (hrm_backend_bind), which
 * runs this test's whole path (device store, uploads, downloads) and must match bit for bit;
 * the test then exits 77 (ctest: skipped), having checked only its own plumbing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda.h"
#include "device.h"

enum { B = 2, S = 81, P = 1, T = S + P, D = 128, NH = 2, HD = 64, LAYERS = 2 };

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static float frand1(void) {
   rng_state ^= rng_state << 13;
   rng_state ^= rng_state >> 7;
   rng_state ^= rng_state << 17;
   return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Everything one device computes, copied to the host. */
typedef struct results {
   int32_t n;                   // host tensors below
   hrm_tensor *t[64];
   const char *name[64];
} results;

static void keep(results *r, const char *name, const hrm_tensor *src) {
   hrm_tensor *h = NULL;
   CHECK_OK(hrm_tensor_new(&h, HRM_DTYPE_F32, src->ndim, src->shape));
   if (h) CHECK_OK(hrm_tensor_copy(h, src));
   r->name[r->n] = name;
   r->t[r->n++] = h;
}

/* Builds the module on `device`, runs it on inputs (host) x, inj and output gradient g. */
static void run(results *r, int32_t device, const hrm_tensor *x, const hrm_tensor *inj,
                const hrm_tensor *g) {
   memset(r, 0, sizeof *r);
   hrm_params *p = NULL;
   hrm_module *m = NULL;
   hrm_tape *tape = NULL;
   hrm_tensor *dx = NULL, *dinj = NULL, *dg = NULL, *y = NULL, *y_untaped = NULL;
   const hrm_block_config cfg = {.hidden_size = D, .num_heads = NH, .expansion = 4.0,
                                 .rms_norm_eps = 1e-5, .rope = 1, .tokens = T,
                                 .rope_theta = 10000.0};
   CHECK_OK(hrm_params_new(&p, 7, device));
   if (!p) return;
   CHECK_OK(hrm_module_reasoning(&m, p, "L_level", LAYERS, &cfg));
   CHECK_OK(hrm_params_build(p, 1));
   const int64_t shape[3] = {B, T, D};
   CHECK_OK(hrm_tensor_new_device(&dx, HRM_DTYPE_F32, 3, shape, device));
   CHECK_OK(hrm_tensor_new_device(&dinj, HRM_DTYPE_F32, 3, shape, device));
   CHECK_OK(hrm_tensor_new_device(&dg, HRM_DTYPE_F32, 3, shape, device));
   CHECK_OK(hrm_tensor_new_device(&y_untaped, HRM_DTYPE_F32, 3, shape, device));
   if (!m || !dx || !dinj || !dg || !y_untaped) goto done;
   CHECK_OK(hrm_tensor_copy(dx, x));
   CHECK_OK(hrm_tensor_copy(dinj, inj));
   CHECK_OK(hrm_tensor_copy(dg, g));
   const hrm_tensor *in[2] = {dx, dinj};
   CHECK_OK(hrm_module_forward(m, y_untaped, 2, in));
   keep(r, "untaped output", y_untaped);
   CHECK_OK(hrm_tape_new(&tape, p));
   if (!tape) goto done;
   CHECK_OK(hrm_tape_watch(tape, dx));
   CHECK_OK(hrm_tape_watch(tape, dinj));
   CHECK_OK(hrm_tape_call(&y, tape, m, 2, in));
   if (!y) goto done;
   keep(r, "taped output", y);
   const hrm_tensor *outs[1] = {y}, *grads[1] = {dg};
   CHECK_OK(hrm_tape_backward(tape, 1, outs, grads));
   hrm_tensor *gx = NULL, *ginj = NULL;
   CHECK_OK(hrm_tape_grad(&gx, tape, dx));
   CHECK_OK(hrm_tape_grad(&ginj, tape, dinj));
   if (gx) r->name[r->n] = "input gradient", r->t[r->n++] = gx;
   if (ginj) r->name[r->n] = "injection gradient", r->t[r->n++] = ginj;
   for (int32_t i = 0; i < hrm_params_count(p) && r->n < 64; i++) {
      const char *name;
      hrm_tensor *value = NULL, *grad = NULL;
      CHECK_OK(hrm_params_tensor(p, i, &name, &value, &grad, NULL));
      if (grad) keep(r, name, grad);
      hrm_tensor_free(value);
      hrm_tensor_free(grad);
   }
   CHECK_OK(device == HRM_DEVICE_CPU ? HRM_OK : hrm_backend_for(device)->sync());
done:
   hrm_tensor_free(y);
   hrm_tensor_free(y_untaped);
   hrm_tensor_free(dx);
   hrm_tensor_free(dinj);
   hrm_tensor_free(dg);
   hrm_tape_free(tape);
   hrm_module_free(m);
   hrm_params_free(p);
}

static void free_results(results *r) {
   for (int32_t i = 0; i < r->n; i++) hrm_tensor_free(r->t[i]);
}

/* max |got − want| / max |want| of every kept array */
static void compare(const char *mode, const results *got, const results *want, double tol) {
   CHECK(got->n == want->n && got->n > 2 * LAYERS);
   for (int32_t k = 0; k < got->n && k < want->n; k++) {
      const float *a = got->t[k]->data, *b = want->t[k]->data;
      double num = 0.0, den = 0.0;
      for (int64_t i = 0; i < want->t[k]->numel; i++) {
         const double e = fabs((double)a[i] - (double)b[i]);
         num = isnan(e) ? INFINITY : (e > num ? e : num);
         den = fabs((double)b[i]) > den ? fabs((double)b[i]) : den;
      }
      const double rel = den > 0.0 ? num / den : num;
      if (rel <= tol) check_passed_++;
      else {
         check_failed_++;
         fprintf(stderr, "FAIL module %s %s: relative error %.3g > %.3g\n", mode, want->name[k],
                 rel, tol);
      }
   }
}

int main(void) {
   const int64_t shape[3] = {B, T, D};
   hrm_tensor *x, *inj, *g;
   CHECK_OK(hrm_tensor_new(&x, HRM_DTYPE_F32, 3, shape));
   CHECK_OK(hrm_tensor_new(&inj, HRM_DTYPE_F32, 3, shape));
   CHECK_OK(hrm_tensor_new(&g, HRM_DTYPE_F32, 3, shape));
   for (int64_t i = 0; i < x->numel; i++) {
      ((float *)x->data)[i] = frand1();
      ((float *)inj->data)[i] = frand1();
      ((float *)g->data)[i] = 0.1f * frand1();
   }
   results cpu, dev;
   run(&cpu, HRM_DEVICE_CPU, x, inj, g);
   const int have = hrm_cuda_available();
   if (!have) { /* the plumbing, with the CPU table serving "cuda": exact */
      hrm_backend_bind(HRM_DEVICE_CUDA, &hrm_cpu_backend);
      run(&dev, HRM_DEVICE_CUDA, x, inj, g);
      compare("cpu table as cuda", &dev, &cpu, 0.0);
      free_results(&dev);
      hrm_backend_bind(HRM_DEVICE_CUDA, NULL);
   } else {
      const int modes[2] = {HRM_CUDA_GEMM_F32, HRM_CUDA_GEMM_BF16};
      const double tols[2] = {1e-4, 5e-2};
      const char *names[2] = {"f32", "bf16"};
      for (int k = 0; k < 2; k++) {
         hrm_cuda_set_gemm_mode(modes[k]);
         run(&dev, HRM_DEVICE_CUDA, x, inj, g);
         compare(names[k], &dev, &cpu, tols[k]);
         free_results(&dev);
      }
      hrm_cuda_shutdown();
   }
   free_results(&cpu);
   hrm_tensor_free(x);
   hrm_tensor_free(inj);
   hrm_tensor_free(g);
   if (!have && !check_failed_) {
      printf("test_cuda_block: no CUDA device, %d plumbing checks passed, GPU checks skipped\n",
             check_passed_);
      return 77;
   }
   return check_summary("test_cuda_block");
}
