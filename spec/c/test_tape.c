/* test_tape.c — the parameter store, the modules and the tape on compositions that are not HRM.
 *
 * Each composition is run twice: through a tape (backward seeded with random output gradients,
 * giving every parameter's and every watched input's gradient) and untaped, to probe the scalar
 * loss Σ <y_i, g_i> (float64 sums) by central finite differences along random directions of each
 * whole tensor. Compositions:
 *   repeat   y = head(block(block(block(x))))          one module applied k = 3 times (TRM)
 *   detach   z = R(R(a, b, E(ids)), b)                   a sum of inputs, b a constant
 *   fanout   h = block(x); y1 = wide(h), y2 = q(h), y3 = R(h, h)   one output feeding later calls
 *   repeat again with attention widths NH·HD other than D: 3 heads of 2 at D 8 (width 6, the
 *   baseline's floor rule) and 2 heads of 6 (width 12)
 *   repeat and detach with TRM-MLP's token-mixing block (mlp_t) in place of attention
 * Then: no allocation after the first pass, the store's registry growth, misuse errors, and a
 * bf16 model's tape (activations kept in bf16).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/ops.h"
#include "nn.h"

enum { B = 2, T = 5, D = 8, V = 7, MAXV = 32 };

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static double urand(void) {
   rs ^= rs << 13;
   rs ^= rs >> 7;
   rs ^= rs << 17;
   return (double)(rs >> 11) / 9007199254740992.0;
}

static hrm_tensor *tensor(int32_t dtype, int32_t ndim, int64_t d0, int64_t d1, int64_t d2) {
   const int64_t shape[3] = {d0, d1, d2};
   hrm_tensor *t = NULL;
   hrm_tensor_new(&t, dtype, ndim, shape);
   return t;
}

static void fill_random(hrm_tensor *t, double scale) {
   for (int64_t k = 0; k < t->numel; k++) ((float *)t->data)[k] = (float)(scale * (2 * urand() - 1));
}

/* A pass: through the tape when there is one (outputs are tape views, freed at the end), else
 * untaped into the given buffers. */
typedef struct pass {
   hrm_tape *tape;
   hrm_tensor *views[MAXV];
   int nviews;
} pass;

static const hrm_tensor *call(pass *ps, hrm_module *m, hrm_tensor *out, int32_t n, ...) {
   const hrm_tensor *in[8];
   va_list ap;
   va_start(ap, n);
   for (int32_t i = 0; i < n; i++) in[i] = va_arg(ap, const hrm_tensor *);
   va_end(ap);
   if (!ps->tape) {
      CHECK_OK(hrm_module_forward(m, out, n, in));
      return out;
   }
   hrm_tensor *v = NULL;
   CHECK_OK(hrm_tape_call(&v, ps->tape, m, n, in));
   ps->views[ps->nviews++] = v;
   return v;
}

static void pass_end(pass *ps) {
   for (int i = 0; i < ps->nviews; i++) hrm_tensor_free(ps->views[i]);
   ps->nviews = 0;
}

/* A composition: its modules, inputs, output buffers and output gradients. */
typedef struct comp {
   const char *name;
   hrm_params *store;
   hrm_module *mod[6];
   hrm_tensor *x[3];        // f32 inputs (watched where `watch` says)
   int watch[3];
   hrm_tensor *ids;         // i32 input
   hrm_tensor *buf[6];      // untaped outputs
   hrm_tensor *g[3];        // output gradients
   int nout;
   /* runs the composition; outputs in y[0..nout) */
   void (*run)(struct comp *c, pass *ps, const hrm_tensor **y);
} comp;

static void run_repeat(comp *c, pass *ps, const hrm_tensor **y) {
   const hrm_tensor *h = call(ps, c->mod[0], c->buf[0], 1, c->x[0]);
   h = call(ps, c->mod[0], c->buf[1], 1, h);
   h = call(ps, c->mod[0], c->buf[2], 1, h);
   y[0] = call(ps, c->mod[1], c->buf[3], 1, h);
}

static void run_detach(comp *c, pass *ps, const hrm_tensor **y) {
   const hrm_tensor *e = call(ps, c->mod[1], c->buf[0], 1, c->ids);
   const hrm_tensor *r = call(ps, c->mod[0], c->buf[1], 3, c->x[0], c->x[1], e);
   y[0] = call(ps, c->mod[0], c->buf[2], 2, r, c->x[1]);
}

static void run_fanout(comp *c, pass *ps, const hrm_tensor **y) {
   const hrm_tensor *h = call(ps, c->mod[0], c->buf[0], 1, c->x[0]);
   y[0] = call(ps, c->mod[1], c->buf[1], 1, h);
   y[1] = call(ps, c->mod[2], c->buf[2], 1, h);
   y[2] = call(ps, c->mod[3], c->buf[3], 2, h, h);
}

static double loss_of(comp *c) {
   pass ps = {0};
   const hrm_tensor *y[3];
   c->run(c, &ps, y);
   double l = 0.0;
   for (int i = 0; i < c->nout; i++)
      for (int64_t k = 0; k < y[i]->numel; k++)
         l += (double)((const float *)y[i]->data)[k] * ((const float *)c->g[i]->data)[k];
   return l;
}

/* Relative tolerance of a directional derivative. */
#define FD_REL_TOL 2e-3

/* The directional derivative of the loss along a random ±1 direction over n floats at x,
 * by central differences with one Richardson step (error O(eps^4)), against Σ g·v. A whole
 * tensor moves at once, so the change stands far above the float32 rounding of the loss. The
 * tolerance is relative to the larger of |Σ g·v| and ‖g‖₂, the size Σ g·v has for random signs:
 * where the signs happen to cancel most of it, the float32 noise of the differences is measured
 * against the gradient's own size, not against the small remainder. */
static int fd_ok(comp *c, float *x, const float *g, int64_t n, const char *what) {
   float *x0 = malloc(sizeof(float) * (size_t)n), *v = malloc(sizeof(float) * (size_t)n);
   double analytic = 0.0, norm = 0.0;
   for (int64_t k = 0; k < n; k++) {
      x0[k] = x[k];
      v[k] = urand() < 0.5 ? -1.0f : 1.0f;
      analytic += (double)g[k] * v[k];
      norm += (double)g[k] * g[k];
   }
   double d[2];
   for (int r = 0; r < 2; r++) {
      const double eps = r == 0 ? 2e-3 : 1e-3;
      for (int64_t k = 0; k < n; k++) x[k] = (float)(x0[k] + eps * v[k]);
      const double lp = loss_of(c);
      for (int64_t k = 0; k < n; k++) x[k] = (float)(x0[k] - eps * v[k]);
      const double lm = loss_of(c);
      d[r] = (lp - lm) / (2 * eps);
   }
   memcpy(x, x0, sizeof(float) * (size_t)n);
   const double fd = (4 * d[1] - d[0]) / 3;
   const double size = fmax(fabs(analytic), sqrt(norm));
   const int ok = fabs(fd - analytic) <= 1e-4 + FD_REL_TOL * size;
   if (!ok)
      fprintf(stderr, "  %s: %s: fd %.7g analytic %.7g (|g| %.4g)\n", c->name, what, fd, analytic,
              sqrt(norm));
   free(x0);
   free(v);
   return ok;
}

/* Tape gradients against finite differences for every parameter and watched input. */
static void check_composition(comp *c) {
   printf("composition %s\n", c->name);
   hrm_tape *tape;
   CHECK_OK(hrm_tape_new(&tape, c->store));
   CHECK_OK(hrm_params_zero_grad(c->store));
   for (int i = 0; i < 3; i++)
      if (c->watch[i]) CHECK_OK(hrm_tape_watch(tape, c->x[i]));
   pass ps = {.tape = tape};
   const hrm_tensor *y[3];
   c->run(c, &ps, y);
   CHECK_OK(hrm_tape_backward(tape, c->nout, y, (const hrm_tensor *const *)c->g));
   /* the taped outputs equal the untaped ones */
   pass plain = {0};
   const hrm_tensor *yu[3];
   c->run(c, &plain, yu);
   for (int i = 0; i < c->nout; i++)
      CHECK(memcmp(y[i]->data, yu[i]->data, sizeof(float) * (size_t)y[i]->numel) == 0);
   int bad = 0, tried = 0;
   for (int32_t i = 0; i < hrm_params_count(c->store); i++) {
      const char *name;
      hrm_tensor *v, *g;
      int32_t kind;
      CHECK_OK(hrm_params_tensor(c->store, i, &name, &v, &g, &kind));
      if (kind != HRM_KIND_PARAM) {
         hrm_tensor_free(v);
         continue;
      }
      int nz = 0;
      for (int64_t k = 0; k < g->numel; k++) nz += ((float *)g->data)[k] != 0.0f;
      if (!nz) fprintf(stderr, "  %s: %s has an all-zero gradient\n", c->name, name);
      CHECK(nz > 0);
      for (int j = 0; j < 2; j++) { /* two random directions a tensor */
         tried++;
         bad += !fd_ok(c, v->data, g->data, v->numel, name);
      }
      hrm_tensor_free(v);
      hrm_tensor_free(g);
   }
   for (int i = 0; i < 3; i++) {
      if (!c->x[i]) continue;
      hrm_tensor *gx = NULL;
      const int rc = hrm_tape_grad(&gx, tape, c->x[i]);
      if (!c->watch[i]) { /* a constant input has no gradient to ask for */
         CHECK(rc == HRM_ERR_ARG);
         continue;
      }
      CHECK_OK(rc);
      if (!gx) continue;
      for (int j = 0; j < 3; j++) {
         tried++;
         bad += !fd_ok(c, c->x[i]->data, gx->data, gx->numel, "watched input");
      }
      hrm_tensor_free(gx);
   }
   printf("  %d of %d directional derivatives off\n", bad, tried);
   CHECK(bad == 0);
   /* a second backward over the same calls is refused */
   CHECK(hrm_tape_backward(tape, c->nout, y, (const hrm_tensor *const *)c->g) == HRM_ERR_STATE);
   pass_end(&ps);
   hrm_tape_free(tape);
}

static void comp_free(comp *c) {
   for (int i = 0; i < 6; i++) {
      hrm_module_free(c->mod[i]);
      hrm_tensor_free(c->buf[i]);
   }
   for (int i = 0; i < 3; i++) {
      hrm_tensor_free(c->x[i]);
      hrm_tensor_free(c->g[i]);
   }
   hrm_tensor_free(c->ids);
   hrm_params_free(c->store);
}

static const hrm_block_config block_cfg = {.hidden_size = D, .num_heads = 2, .expansion = 1.5,
                                           .rms_norm_eps = 1e-5, .rope = 1, .tokens = T,
                                           .rope_theta = 10000};

static void build(comp *c) {
   CHECK_OK(hrm_params_build(c->store, 1));
   /* every parameter non-trivial (the zero or constant inits would hide paths) */
   for (int32_t i = 0; i < hrm_params_count(c->store); i++) {
      hrm_tensor *v;
      hrm_params_tensor(c->store, i, NULL, &v, NULL, NULL);
      if (v) {
         for (int64_t k = 0; k < v->numel; k++) ((float *)v->data)[k] += (float)(0.2 * (2 * urand() - 1));
         hrm_tensor_free(v);
      }
   }
}

/* Multiplies every parameter whose name contains `part` by f (after build). */
static void scale_params(hrm_params *p, const char *part, float f) {
   for (int32_t i = 0; i < hrm_params_count(p); i++) {
      const char *name;
      hrm_tensor *v;
      hrm_params_tensor(p, i, &name, &v, NULL, NULL);
      if (v && strstr(name, part))
         for (int64_t k = 0; k < v->numel; k++) ((float *)v->data)[k] *= f;
      hrm_tensor_free(v);
   }
}

/* The token mixer's norm runs over T = 5 values a row: with the test's large random weights a
 * row can come near 0, where the norm's curvature defeats float32 finite differences; smaller
 * token weights keep the residual dominant (the golden fixture trm_mlp checks every gradient
 * against PyTorch to 1e-4). */
static float token_scale = 1.0f;

static void repeat_with(const char *name, const hrm_block_config *bc) {
   comp c = {.name = name, .nout = 1, .run = run_repeat};
   CHECK_OK(hrm_params_new(&c.store, 11, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_block(&c.mod[0], c.store, "block", bc));
   CHECK_OK(hrm_module_linear(&c.mod[1], c.store, "head", D, 3, 1, HRM_INIT_LECUN, 0, 0.1, 0, 0));
   build(&c);
   scale_params(c.store, ".mlp_t.", token_scale);
   c.x[0] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   fill_random(c.x[0], 1.0);
   c.watch[0] = 1;
   for (int i = 0; i < 3; i++) c.buf[i] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   c.buf[3] = tensor(HRM_DTYPE_F32, 3, B, T, 3);
   c.g[0] = tensor(HRM_DTYPE_F32, 3, B, T, 3);
   fill_random(c.g[0], 1.0);
   check_composition(&c);
   comp_free(&c);
}

static void test_repeat(void) { repeat_with("repeat", &block_cfg); }

/* Attention narrower and wider than D: qkv_proj (3·NH·HD, D), o_proj (D, NH·HD). */
static void test_widths(void) {
   hrm_block_config narrow = block_cfg, wide = block_cfg;
   narrow.num_heads = 3;  // head dim 8 / 3 = 2, width 6
   wide.head_dim = 6;     // 2 heads of 6, width 12
   repeat_with("repeat, 3 heads of 2 (width 6 < D 8)", &narrow);
   repeat_with("repeat, 2 heads of 6 (width 12 > D 8)", &wide);
   hrm_params *p;
   hrm_module *m;
   CHECK_OK(hrm_params_new(&p, 1, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_block(&m, p, "b", &narrow));
   hrm_tensor *v;
   CHECK_OK(hrm_params_build(p, 1));
   CHECK_OK(hrm_params_tensor(p, hrm_params_find(p, "b.self_attn.qkv_proj.weight"), NULL, &v, NULL, NULL));
   CHECK(v->shape[0] == 18 && v->shape[1] == D);
   hrm_tensor_free(v);
   CHECK_OK(hrm_params_tensor(p, hrm_params_find(p, "b.self_attn.o_proj.weight"), NULL, &v, NULL, NULL));
   CHECK(v->shape[0] == D && v->shape[1] == 6);
   hrm_tensor_free(v);
   hrm_module_free(m);
   hrm_params_free(p);
   hrm_block_config odd = block_cfg;
   odd.num_heads = 9;  // no head dimension at D 8
   CHECK_OK(hrm_params_new(&p, 1, HRM_DEVICE_CPU));
   CHECK(hrm_module_block(&m, p, "b", &odd) == HRM_ERR_ARG);
   odd = block_cfg;
   odd.head_dim = 3;   // RoPE cannot pair an odd head dimension
   CHECK(hrm_module_block(&m, p, "b", &odd) == HRM_ERR_ARG);
   hrm_params_free(p);
}

static void detach_with(const char *name, const hrm_block_config *bc) {
   comp c = {.name = name, .nout = 1, .run = run_detach};
   CHECK_OK(hrm_params_new(&c.store, 12, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_reasoning(&c.mod[0], c.store, "R", 2, bc));
   CHECK_OK(hrm_module_embedding(&c.mod[1], c.store, "E", V, D, 0.5));
   build(&c);
   scale_params(c.store, ".mlp_t.", token_scale);
   c.x[0] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   c.x[1] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   fill_random(c.x[0], 1.0);
   fill_random(c.x[1], 1.0);
   c.watch[0] = 1;  // x[1] stays a constant
   c.ids = tensor(HRM_DTYPE_I32, 2, B, T, 1);
   for (int k = 0; k < B * T; k++) ((int32_t *)c.ids->data)[k] = (k * 3 + 1) % V;
   for (int i = 0; i < 3; i++) c.buf[i] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   c.g[0] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   fill_random(c.g[0], 1.0);
   check_composition(&c);
   comp_free(&c);
}

static void test_detach(void) {
   hrm_block_config nope = block_cfg;
   nope.rope = 0;
   detach_with("detach", &nope);
}

/* TRM-MLP's token mixing in place of attention: a SwiGLU over the T axis (width from T), the
 * residual and the norm over T taken transposed; alone, repeated, and in a reasoning module. */
static void test_token_mix(void) {
   hrm_block_config tm = block_cfg;
   tm.mlp_t = 1;  // RoPE set but unused, as the reference's rotary tables with mlp_t
   token_scale = 0.25f;
   repeat_with("repeat, token-mixing block", &tm);
   tm.expansion = 4.0;
   detach_with("detach, token-mixing reasoning module", &tm);
   token_scale = 1.0f;
   hrm_params *p;
   hrm_module *m;
   CHECK_OK(hrm_params_new(&p, 1, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_block(&m, p, "b", &tm));
   CHECK_OK(hrm_params_build(p, 1));
   const int32_t i = hrm_params_find(p, "b.mlp_t.gate_up_proj.weight");
   CHECK(i == 0 && hrm_params_find(p, "b.mlp_t.down_proj.weight") == 1 &&
         hrm_params_find(p, "b.mlp.gate_up_proj.weight") == 2 &&
         hrm_params_find(p, "b.self_attn.qkv_proj.weight") < 0);
   hrm_tensor *v;
   CHECK_OK(hrm_params_tensor(p, i, NULL, &v, NULL, NULL));
   CHECK(v->shape[0] == 2 * 256 && v->shape[1] == T);  // roundup(round(4·5·2/3), 256) = 256
   hrm_tensor_free(v);
   /* (2·256·5 + 5·256) + (2·256·8 + 256·8): token and channel SwiGLU */
   CHECK(hrm_module_num_parameters(m) == 2 * 256 * T + T * 256 + 2 * 256 * D + 256 * D);
   hrm_module_free(m);
   hrm_params_free(p);
   /* the transpose op is exact and its own inverse with the sizes swapped */
   float a[2 * 3 * 4], t[2 * 4 * 3], back[2 * 3 * 4];
   for (int k = 0; k < 24; k++) a[k] = (float)k;
   hrm_cpu_transpose_forward(t, a, 2, 3, 4);
   CHECK(t[1] == 4.0f && t[3] == 1.0f && t[12 + 2] == 12.0f + 8.0f);  // t[b][c][r] = a[b][r][c]
   hrm_cpu_transpose_forward(back, t, 2, 4, 3);
   CHECK(memcmp(a, back, sizeof a) == 0);
}

static void test_fanout(void) {
   comp c = {.name = "fanout", .nout = 3, .run = run_fanout};
   CHECK_OK(hrm_params_new(&c.store, 13, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_block(&c.mod[0], c.store, "block", &block_cfg));
   CHECK_OK(hrm_module_linear(&c.mod[1], c.store, "wide", D, 4, 0, HRM_INIT_LECUN, 0, 0, 1, 3));
   CHECK_OK(hrm_module_linear(&c.mod[2], c.store, "q", D, 2, 1, HRM_INIT_LECUN, 0, -1, 0, 1));
   CHECK_OK(hrm_module_reasoning(&c.mod[3], c.store, "R", 1, &block_cfg));
   build(&c);
   c.x[0] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   fill_random(c.x[0], 1.0);
   c.watch[0] = 1;
   c.buf[0] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   c.buf[1] = tensor(HRM_DTYPE_F32, 3, B, 3, 4);
   c.buf[2] = tensor(HRM_DTYPE_F32, 3, B, 1, 2);
   c.buf[3] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   c.g[0] = tensor(HRM_DTYPE_F32, 3, B, 3, 4);
   c.g[1] = tensor(HRM_DTYPE_F32, 3, B, 1, 2);
   c.g[2] = tensor(HRM_DTYPE_F32, 3, B, T, D);
   for (int i = 0; i < 3; i++) fill_random(c.g[i], 1.0);
   check_composition(&c);
   comp_free(&c);
}

/* After the first pass (and the reset that sizes the arena), passes reuse the same memory. */
static void test_arena_reuse(void) {
   hrm_params *p;
   hrm_module *blk;
   CHECK_OK(hrm_params_new(&p, 1, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_reasoning(&blk, p, "R", 3, &block_cfg));
   CHECK_OK(hrm_params_build(p, 1));
   hrm_tensor *x = tensor(HRM_DTYPE_F32, 3, 64, T, D), *g = tensor(HRM_DTYPE_F32, 3, 64, T, D);
   fill_random(x, 1.0);
   fill_random(g, 1.0);
   hrm_tape *tape;
   CHECK_OK(hrm_tape_new(&tape, p));
   const void *seen[4] = {0};
   for (int pass_i = 0; pass_i < 4; pass_i++) {
      CHECK_OK(hrm_tape_reset(tape));
      const hrm_tensor *in[1] = {x};
      hrm_tensor *y = NULL, *y2 = NULL;
      CHECK_OK(hrm_tape_call(&y, tape, blk, 1, in));
      const hrm_tensor *in2[1] = {y};
      CHECK_OK(hrm_tape_call(&y2, tape, blk, 1, in2));
      const hrm_tensor *outs[1] = {y2}, *gs[1] = {g};
      CHECK_OK(hrm_tape_backward(tape, 1, outs, gs));
      seen[pass_i] = y2 ? y2->data : NULL;
      CHECK(hrm_tape_calls(tape) == 2);
      hrm_tensor_free(y);
      hrm_tensor_free(y2);
   }
   CHECK(seen[1] == seen[2] && seen[2] == seen[3]);
   hrm_tape_free(tape);
   hrm_module_free(blk);
   hrm_tensor_free(x);
   hrm_tensor_free(g);
   hrm_params_free(p);
}

static void test_store(void) {
   hrm_params *p;
   CHECK_OK(hrm_params_new(&p, 3, HRM_DEVICE_CPU));
   char name[32];
   const int64_t shape[2] = {2, 3};
   for (int i = 0; i < 100; i++) { /* no fixed capacity */
      snprintf(name, sizeof name, "t.%d", i);
      CHECK_OK(hrm_params_declare(NULL, p, name, HRM_KIND_PARAM, 2, shape, HRM_INIT_CONST, i));
   }
   CHECK(hrm_params_declare(NULL, p, "t.7", HRM_KIND_PARAM, 2, shape, 0, 0) == HRM_ERR_ARG);
   CHECK(hrm_params_declare(NULL, p, "bad", 9, 2, shape, 0, 0) == HRM_ERR_ARG);
   CHECK_OK(hrm_params_declare(NULL, p, "table", HRM_KIND_SPARSE, 2, shape, HRM_INIT_ZERO, 0));
   CHECK(hrm_params_declare(NULL, p, "table2", HRM_KIND_SPARSE, 2, shape, 0, 0) == HRM_ERR_ARG);
   hrm_tensor *v = NULL;
   CHECK(hrm_params_tensor(p, 0, NULL, &v, NULL, NULL) == HRM_ERR_STATE);
   CHECK_OK(hrm_params_build(p, 1));
   CHECK(hrm_params_num_parameters(p) == 600);
   CHECK(hrm_params_count(p) == 101);
   CHECK_OK(hrm_params_tensor(p, 42, NULL, &v, NULL, NULL));
   CHECK(v && ((float *)v->data)[5] == 42.0f);
   hrm_tensor_free(v);
   CHECK(hrm_params_declare(NULL, p, "late", HRM_KIND_PARAM, 2, shape, 0, 0) == HRM_ERR_STATE);
   hrm_module *m = NULL;
   CHECK(hrm_module_embedding(&m, p, "late_emb", 3, 4, 1.0) == HRM_ERR_STATE && m == NULL);
   CHECK(hrm_params_build(p, 1) == HRM_ERR_STATE);
   hrm_params_free(p);
}

static void test_misuse(void) {
   hrm_params *p, *q;
   hrm_module *blk, *other;
   CHECK_OK(hrm_params_new(&p, 1, HRM_DEVICE_CPU));
   CHECK_OK(hrm_params_new(&q, 1, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_block(&blk, p, "blk", &block_cfg));
   CHECK_OK(hrm_module_block(&other, q, "blk", &block_cfg));
   hrm_tensor *x = tensor(HRM_DTYPE_F32, 3, B, T, D), *wrong = tensor(HRM_DTYPE_F32, 3, B, T + 1, D);
   hrm_tensor *ints = tensor(HRM_DTYPE_I32, 3, B, T, D);
   const hrm_tensor *in[1] = {x};
   /* calls before the store is built */
   CHECK(hrm_module_forward(blk, x, 1, in) == HRM_ERR_STATE);
   CHECK_OK(hrm_params_build(p, 1));
   CHECK_OK(hrm_params_build(q, 1));
   hrm_tape *tape;
   CHECK_OK(hrm_tape_new(&tape, p));
   hrm_tensor *y = NULL;
   CHECK(hrm_tape_call(&y, tape, other, 1, in) == HRM_ERR_ARG && y == NULL);
   CHECK(strstr(hrm_last_error(), "another model") != NULL);
   const hrm_tensor *bad[1] = {wrong};
   CHECK(hrm_tape_call(&y, tape, blk, 1, bad) == HRM_ERR_SHAPE);
   const hrm_tensor *badt[1] = {ints};
   CHECK(hrm_tape_call(&y, tape, blk, 1, badt) == HRM_ERR_DTYPE);
   CHECK(hrm_module_forward(blk, wrong, 1, in) == HRM_ERR_SHAPE);
   const hrm_tensor *outs[1] = {x}, *gs[1] = {x};
   CHECK(hrm_tape_backward(tape, 1, outs, gs) == HRM_ERR_STATE);  // no call yet
   CHECK_OK(hrm_tape_call(&y, tape, blk, 1, in));
   CHECK(hrm_tape_backward(tape, 1, outs, gs) == HRM_ERR_ARG);    // x is not a call output
   CHECK(hrm_module_forward(blk, y, 1, in) == HRM_ERR_ARG);        // overwriting a call output
   const hrm_tensor *youts[1] = {y}, *short_g[1] = {wrong};
   CHECK(hrm_tape_backward(tape, 1, youts, short_g) == HRM_ERR_SHAPE);
   hrm_tensor *gx = NULL;
   CHECK(hrm_tape_grad(&gx, tape, y) == HRM_ERR_STATE);           // before backward
   CHECK_OK(hrm_tape_backward(tape, 1, youts, gs));
   hrm_tensor *refused = NULL;
   CHECK(hrm_tape_call(&refused, tape, blk, 1, in) == HRM_ERR_STATE && refused == NULL);  // after backward
   CHECK(hrm_tape_grad(&gx, tape, x) == HRM_ERR_ARG);             // neither output nor watched
   /* a recorded call keeps its module, and the tape its store, alive past their owners */
   hrm_tensor *y2 = NULL;
   CHECK_OK(hrm_tape_reset(tape));
   CHECK_OK(hrm_tape_call(&y2, tape, blk, 1, in));
   hrm_module_free(blk);
   hrm_params_free(p);
   const hrm_tensor *y2o[1] = {y2};
   CHECK_OK(hrm_tape_backward(tape, 1, y2o, gs));
   hrm_tensor_free(y);
   hrm_tensor_free(y2);
   hrm_tape_free(tape);
   hrm_module_free(other);
   hrm_params_free(q);
   hrm_tensor_free(x);
   hrm_tensor_free(wrong);
   hrm_tensor_free(ints);
}

/* One taped forward and backward of R over x at the store's current precision: the output copied
 * into y, every gradient (parameters, then x's) into grads, the arena bytes after the forward into
 * *bytes; returns the backward's status. */
static int bf16_pass(hrm_params *p, hrm_module *R, hrm_tensor *x, hrm_tensor *g, float *y,
                     float *grads, int64_t *bytes, int flip_before_backward) {
   hrm_tape *tape;
   CHECK_OK(hrm_tape_new(&tape, p));
   CHECK_OK(hrm_params_zero_grad(p));
   CHECK_OK(hrm_tape_watch(tape, x));
   const hrm_tensor *in[1] = {x};
   hrm_tensor *out = NULL;
   CHECK_OK(hrm_tape_call(&out, tape, R, 1, in));
   *bytes = hrm_tape_bytes(tape);
   memcpy(y, out->data, sizeof(float) * (size_t)out->numel);
   const int32_t saved = p->precision;
   if (flip_before_backward) p->precision = HRM_DTYPE_F32;
   const hrm_tensor *outs[1] = {out}, *gs[1] = {g};
   const int rc = hrm_tape_backward(tape, 1, outs, gs);
   p->precision = saved;
   if (rc == HRM_OK) {
      hrm_tensor *gx = NULL;
      CHECK_OK(hrm_tape_grad(&gx, tape, x));
      memcpy(grads, p->grads->data, sizeof(float) * (size_t)p->num_params);
      memcpy(grads + p->num_params, gx->data, sizeof(float) * (size_t)x->numel);
      hrm_tensor_free(gx);
   }
   hrm_tensor_free(out);
   hrm_tape_free(tape);
   return rc;
}

/* A bf16 model's tape keeps its activations in bf16: half the bytes, the forward's values
 * unchanged (taped = untaped, bit for bit), and gradients that differ from those of an fp32 tape
 * under the same bf16 GEMMs only by the rounding of what was kept; a backward in another precision
 * than its forward is refused. Attention and token-mixing reasoning modules. */
static void bf16_tape_with(const char *name, const hrm_block_config *bc) {
   hrm_params *p;
   hrm_module *R;
   CHECK_OK(hrm_params_new(&p, 1, HRM_DEVICE_CPU));
   CHECK_OK(hrm_module_reasoning(&R, p, "R", 2, bc));
   CHECK_OK(hrm_params_build(p, 1));
   if (hrm_params_set_precision(p, HRM_DTYPE_BF16) != HRM_OK) {
      printf("bf16 tape (%s): skipped, no bf16 GEMMs here (%s)\n", name, hrm_last_error());
      hrm_module_free(R);
      hrm_params_free(p);
      return;
   }
   enum { BB = 4 };
   hrm_tensor *x = tensor(HRM_DTYPE_F32, 3, BB, T, D), *g = tensor(HRM_DTYPE_F32, 3, BB, T, D);
   hrm_tensor *yu = tensor(HRM_DTYPE_F32, 3, BB, T, D);
   fill_random(x, 1.0);
   fill_random(g, 1.0);
   const int64_t np = p->num_params, ng = np + x->numel;
   float *y16 = malloc(sizeof(float) * (size_t)x->numel), *y32 = malloc(sizeof(float) * (size_t)x->numel);
   float *g16 = malloc(sizeof(float) * (size_t)ng), *g32 = malloc(sizeof(float) * (size_t)ng);
   int64_t bytes16, bytes32;
   CHECK_OK(bf16_pass(p, R, x, g, y16, g16, &bytes16, 0));
   const hrm_tensor *in[1] = {x};
   CHECK_OK(hrm_module_forward(R, yu, 1, in));
   CHECK(memcmp(y16, yu->data, sizeof(float) * (size_t)x->numel) == 0);
   p->precision = HRM_DTYPE_F32;  // the same bf16 GEMMs, an fp32 tape
   CHECK_OK(bf16_pass(p, R, x, g, y32, g32, &bytes32, 0));
   p->precision = HRM_DTYPE_BF16;
   CHECK(memcmp(y16, y32, sizeof(float) * (size_t)x->numel) == 0);
   printf("bf16 tape (%s): %lld bytes, fp32 tape %lld (%.3f)\n", name, (long long)bytes16,
          (long long)bytes32, (double)bytes16 / (double)bytes32);
   CHECK(bytes16 < 0.6 * bytes32);
   /* per tensor: max |g16 - g32| / max |g32|, between 0 (the tape's rounding reached the
    * gradients) and a few bf16 ulps (2^-8) */
   double worst = 0.0;
   int moved = 0;
   for (int32_t i = 0; i <= hrm_params_count(p); i++) {
      int64_t at = np, n = x->numel;  // i == count: x's gradient
      if (i < hrm_params_count(p)) {
         hrm_tensor *v;
         hrm_params_tensor(p, i, NULL, &v, NULL, NULL);
         at = (float *)v->data - (float *)p->params->data;
         n = v->numel;
         hrm_tensor_free(v);
      }
      double diff = 0.0, scale = 0.0;
      for (int64_t k = at; k < at + n; k++) {
         diff = fmax(diff, fabs((double)g16[k] - g32[k]));
         scale = fmax(scale, fabs((double)g32[k]));
      }
      moved += diff > 0.0;
      worst = fmax(worst, diff / scale);
   }
   printf("  gradients against the fp32 tape: worst relative gap %.2e, %d tensors moved\n", worst,
          moved);
   CHECK(moved > 0 && worst < 2e-2);
   int64_t unused;
   CHECK(bf16_pass(p, R, x, g, y32, g32, &unused, 1) == HRM_ERR_STATE);
   CHECK(strstr(hrm_last_error(), "precision") != NULL);
   CHECK_OK(hrm_params_set_precision(p, HRM_DTYPE_F32));
   free(y16), free(y32), free(g16), free(g32);
   hrm_tensor_free(x), hrm_tensor_free(g), hrm_tensor_free(yu);
   hrm_module_free(R);
   hrm_params_free(p);
}

static void test_bf16_tape(void) {
   bf16_tape_with("attention", &block_cfg);
   hrm_block_config tm = block_cfg;
   tm.mlp_t = 1;
   bf16_tape_with("token mixing", &tm);
}

int main(void) {
   if (getenv("TT_SEED")) rs = strtoull(getenv("TT_SEED"), NULL, 0);
   test_repeat();
   test_widths();
   test_detach();
   test_fanout();
   test_arena_reuse();
   test_store();
   test_misuse();
   test_token_mix();
   test_bf16_tape();
   return check_summary("test_tape");
}
