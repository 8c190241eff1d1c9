/* test_model.c — the model, carry and optimizers through the public API (plus nn.h internals
 * where the API has no window: the puzzle prefix's local gradient).
 *
 * Checks: hrm_v1 parameter count and names, config validation messages, batch validation, a
 * finite-difference check of one whole training segment (1-step gradient, heads, losses,
 * puzzle prefix), determinism for a seed, evaluation halting after halt_max_steps, the
 * active-row mask, and the optimizers' single-step math against hand-computed values.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static hrm_config tiny_config(void) {
   hrm_config c;
   hrm_config_default(&c);
   c.hidden_size = 8;
   c.num_heads = 2;
   c.expansion = 1.0;
   c.H_layers = 2;
   c.L_layers = 2;
   c.H_cycles = 2;
   c.L_cycles = 2;
   c.halt_max_steps = 4;
   c.halt_exploration_prob = 0.0;
   c.puzzle_emb_ndim = 12;  // P = 2, the second prefix position half zero-padded
   c.num_puzzle_identifiers = 3;
   c.vocab_size = 5;
   c.seq_len = 6;
   return c;
}

static float *param(hrm_model *m, const char *name, int64_t *numel) {
   const int32_t i = hrm_model_find_tensor(m, name);
   if (i < 0) return NULL;
   hrm_tensor *v;
   if (hrm_model_tensor(m, i, NULL, &v, NULL, NULL) != HRM_OK) return NULL;
   float *p = v->data;  // the model keeps the storage alive
   if (numel) *numel = v->numel;
   hrm_tensor_free(v);
   return p;
}

/* A full copy of a carry's state, to rerun a step from the same point. */
typedef struct { void *data[7]; size_t bytes[7]; } snapshot;
static const char *carry_names[7] = {"z_H", "z_L", "steps", "halted", "inputs", "labels",
                                     "puzzle_ids"};
static void snap_take(snapshot *s, hrm_carry *c) {
   for (int i = 0; i < 7; i++) {
      hrm_tensor *t;
      hrm_carry_tensor(&t, c, carry_names[i]);
      s->bytes[i] = (size_t)t->numel * hrm_dtype_size(t->dtype);
      s->data[i] = malloc(s->bytes[i]);
      memcpy(s->data[i], t->data, s->bytes[i]);
      hrm_tensor_free(t);
   }
}
static void snap_restore(const snapshot *s, hrm_carry *c) {
   for (int i = 0; i < 7; i++) {
      hrm_tensor *t;
      hrm_carry_tensor(&t, c, carry_names[i]);
      memcpy(t->data, s->data[i], s->bytes[i]);
      hrm_tensor_free(t);
   }
}
static void snap_free(snapshot *s) {
   for (int i = 0; i < 7; i++) free(s->data[i]);
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static double urand(void) {
   rs ^= rs << 13;
   rs ^= rs >> 7;
   rs ^= rs << 17;
   return (double)(rs >> 11) / 9007199254740992.0;
}

/* ---- parameter count and names ------------------------------------------------------------- */

static void test_num_parameters(void) {
   hrm_config c;
   hrm_config_default(&c);
   c.vocab_size = 11;
   c.seq_len = 81;
   CHECK(c.puzzle_emb_ndim == 512 && c.hidden_size == 512 && c.H_cycles == 2);
   hrm_model *m = NULL;
   CHECK_OK(hrm_model_new(&m, &c, 0, HRM_DEVICE_CPU));
   if (!m) return;
   CHECK(hrm_model_num_parameters(m) == 27275266);
   /* 4 + 32 parameters, then H_init, L_init, puzzle_emb.weights */
   CHECK(hrm_model_num_tensors(m) == 39);
   const char *name;
   hrm_tensor *v, *g;
   int32_t is_param;
   CHECK_OK(hrm_model_tensor(m, 0, &name, &v, &g, &is_param));
   CHECK(strcmp(name, "model.inner.embed_tokens.embedding_weight") == 0);
   CHECK(is_param == 1 && g && v->shape[0] == 11 && v->shape[1] == 512);
   hrm_tensor_free(v);
   hrm_tensor_free(g);
   int32_t i = hrm_model_find_tensor(m, "model.inner.L_level.layers.3.mlp.down_proj.weight");
   CHECK(i == 35);
   CHECK_OK(hrm_model_tensor(m, i, &name, &v, NULL, NULL));
   CHECK(v->shape[0] == 512 && v->shape[1] == 1536);
   /* LeCun init: std 1/√1536 */
   double ss = 0.0, mx = 0.0;
   const float *p = v->data;
   for (int64_t k = 0; k < v->numel; k++) {
      ss += (double)p[k] * p[k];
      mx = fmax(mx, fabs(p[k]));
   }
   CHECK_NEAR(sqrt(ss / v->numel), 1.0 / sqrt(1536.0), 2e-4);
   CHECK(mx <= 2.2736945 / sqrt(1536.0) + 1e-6);
   hrm_tensor_free(v);
   i = hrm_model_find_tensor(m, "model.inner.puzzle_emb.weights");
   CHECK_OK(hrm_model_tensor(m, i, &name, &v, &g, &is_param));
   CHECK(is_param == 0 && g == NULL && v->shape[0] == 1 && v->shape[1] == 512);
   CHECK(hrm_tensor_get(v, 7) == 0.0);
   hrm_tensor_free(v);
   CHECK(hrm_model_find_tensor(m, "model.inner.H_init") >= 0);
   CHECK(hrm_model_find_tensor(m, "model.inner.q_head.bias") == 3);
   CHECK(hrm_model_find_tensor(m, "model.inner.embed_pos.embedding_weight") < 0);
   const float *qb = param(m, "model.inner.q_head.bias", NULL);
   int64_t nq;
   const float *qw = param(m, "model.inner.q_head.weight", &nq);
   CHECK(qb[0] == -5.0f && qb[1] == -5.0f);
   int zero = 1;
   for (int64_t k = 0; k < nq; k++) zero &= qw[k] == 0.0f;
   CHECK(zero);
   hrm_model_free(m);

   /* learned positions add T·D = (81 + 1)·512 */
   c.pos_encodings = HRM_POS_LEARNED;
   c.hidden_size = 64;
   c.num_heads = 4;
   c.puzzle_emb_ndim = 64;
   c.H_layers = c.L_layers = 1;
   CHECK_OK(hrm_model_new(&m, &c, 0, HRM_DEVICE_CPU));
   /* blocks: qkv 3·64², o 64², gate_up 2·256·64, down 64·256 */
   const int64_t block = 3 * 64 * 64 + 64 * 64 + 2 * 256 * 64 + 64 * 256;
   CHECK(hrm_model_num_parameters(m) == 2 * block + 2 * 11 * 64 + 2 * 64 + 2 + 82 * 64);
   CHECK(hrm_model_find_tensor(m, "model.inner.embed_pos.embedding_weight") == 4);
   hrm_model_free(m);
}

/* ---- config and batch validation ----------------------------------------------------------- */

static void expect_config_error(hrm_config c, const char *field) {
   const int rc = hrm_config_check(&c);
   CHECK(rc == HRM_ERR_ARG);
   if (!strstr(hrm_last_error(), field)) {
      fprintf(stderr, "FAIL message \"%s\" does not name %s\n", hrm_last_error(), field);
      CHECK(0);
   }
   hrm_model *m = (hrm_model *)1;
   CHECK(hrm_model_new(&m, &c, 0, HRM_DEVICE_CPU) == HRM_ERR_ARG && m == NULL);
}

static void test_config(void) {
   hrm_config c;
   hrm_config_default(&c);
   CHECK(c.hidden_size == 512 && c.num_heads == 8 && c.expansion == 4.0 && c.H_layers == 4 &&
         c.L_layers == 4 && c.L_cycles == 2 && c.halt_max_steps == 16 &&
         c.halt_exploration_prob == 0.1 && c.pos_encodings == HRM_POS_ROPE &&
         c.rms_norm_eps == 1e-5 && c.rope_theta == 10000.0 && c.loss == HRM_LOSS_STABLEMAX);
   expect_config_error(c, "config.vocab_size");  // still to be set
   c.vocab_size = 11;
   expect_config_error(c, "config.seq_len");
   c.seq_len = 81;
   CHECK_OK(hrm_config_check(&c));
   hrm_config b = c;
   b.num_heads = 7;
   expect_config_error(b, "config.num_heads");
   b = c;
   b.hidden_size = 0;
   expect_config_error(b, "config.hidden_size");
   b = c;
   b.hidden_size = 24;
   b.num_heads = 8;  // head dim 3: odd, RoPE cannot pair it
   expect_config_error(b, "rope");
   b.pos_encodings = HRM_POS_LEARNED;
   CHECK_OK(hrm_config_check(&b));
   b = c;
   b.pos_encodings = 7;
   expect_config_error(b, "config.pos_encodings");
   b = c;
   b.halt_exploration_prob = 1.5;
   expect_config_error(b, "config.halt_exploration_prob");
   b = c;
   b.num_puzzle_identifiers = 0;
   expect_config_error(b, "config.num_puzzle_identifiers");
   b.puzzle_emb_ndim = 0;
   CHECK_OK(hrm_config_check(&b));
   b = c;
   b.loss = 3;
   expect_config_error(b, "config.loss");
   b = c;
   b.H_cycles = 0;
   expect_config_error(b, "config.H_cycles");
   b = c;
   b.expansion = NAN;
   expect_config_error(b, "config.expansion");
   CHECK(hrm_config_check(NULL) == HRM_ERR_ARG);
   hrm_model *m = NULL;
   CHECK(hrm_model_new(&m, &c, 0, HRM_DEVICE_CUDA) == HRM_ERR_DEVICE && m == NULL);
}

static void expect_step_error(hrm_model *m, hrm_carry *c, const hrm_batch *b, int train, int rc,
                              const char *text) {
   hrm_step_opts o = {.train = train};
   hrm_step_out out = {0};
   const int got = hrm_model_step(m, c, b, &o, &out);
   CHECK(got == rc);
   if (!strstr(hrm_last_error(), text)) {
      fprintf(stderr, "FAIL message \"%s\" does not contain \"%s\"\n", hrm_last_error(), text);
      CHECK(0);
   }
}

static void test_batch_validation(void) {
   hrm_config cfg = tiny_config();
   hrm_model *m;
   hrm_carry *c;
   CHECK_OK(hrm_model_new(&m, &cfg, 1, HRM_DEVICE_CPU));
   CHECK_OK(hrm_carry_new(&c, m, 2));
   CHECK(hrm_carry_batch(c) == 2);
   int32_t in[12] = {0}, lab[12] = {0}, pid[2] = {0, 2};
   hrm_batch b = {.inputs = in, .labels = lab, .puzzle_ids = pid, .B = 2};
   in[1 * 6 + 2] = 7;
   expect_step_error(m, c, &b, 0, HRM_ERR_RANGE, "inputs[1][2] = 7");
   in[1 * 6 + 2] = -1;
   expect_step_error(m, c, &b, 0, HRM_ERR_RANGE, "inputs[1][2] = -1");
   in[1 * 6 + 2] = 4;
   lab[5] = -5;
   expect_step_error(m, c, &b, 1, HRM_ERR_RANGE, "labels[0][5] = -5");
   lab[5] = -100;
   pid[1] = 3;
   expect_step_error(m, c, &b, 1, HRM_ERR_RANGE, "puzzle_ids[1] = 3");
   pid[1] = 2;
   b.B = 3;
   expect_step_error(m, c, &b, 0, HRM_ERR_SHAPE, "batch.B = 3");
   b.B = 2;
   b.labels = NULL;
   expect_step_error(m, c, &b, 1, HRM_ERR_ARG, "labels is NULL");
   /* nothing was touched by the failures: all rows still halted, steps 0 */
   hrm_tensor *h;
   CHECK_OK(hrm_carry_tensor(&h, c, "halted"));
   CHECK(((uint8_t *)h->data)[0] == 1 && ((uint8_t *)h->data)[1] == 1);
   hrm_tensor_free(h);
   CHECK(hrm_carry_tensor(&h, c, "nope") == HRM_ERR_ARG && h == NULL);
   /* a wrong output tensor */
   hrm_tensor *bad;
   const int64_t shp[1] = {3};
   hrm_tensor_new(&bad, HRM_DTYPE_F32, 1, shp);
   hrm_step_opts o = {0};
   hrm_step_out out = {.q_halt_logits = bad};
   CHECK(hrm_model_step(m, c, &b, &o, &out) == HRM_ERR_SHAPE);
   hrm_tensor_free(bad);
   /* eval without labels: losses and metrics are zero */
   out = (hrm_step_out){0};
   CHECK_OK(hrm_model_step(m, c, &b, &o, &out));
   CHECK(out.loss == 0.0 && out.count == 0.0);
   hrm_carry_free(c);
   hrm_model_free(m);
}

/* ---- finite differences over one training segment ------------------------------------------ */

typedef struct {
   hrm_model *m;
   hrm_carry *c;
   const snapshot *c0;
   const hrm_batch *batch;
   const float *target;  // (B) target_q_continue of the training step
   hrm_tensor *qc;       // (B) q_continue output
   double G;
} seg_ctx;

/* total / G with the training step's target held fixed, from the same starting carry */
static double segment_loss(seg_ctx *s) {
   snap_restore(s->c0, s->c);
   hrm_step_opts o = {.train = 0};
   hrm_step_out out = {.q_continue_logits = s->qc};
   if (hrm_model_step(s->m, s->c, s->batch, &o, &out) != HRM_OK) return NAN;
   double qcl = 0.0;
   const float *q = s->qc->data;
   for (int b = 0; b < s->batch->B; b++) {
      const double x = q[b], y = s->target[b];
      qcl += (x > 0 ? x : 0) - x * y + log1p(exp(-fabs(x)));
   }
   return (out.lm_loss + 0.5 * (out.q_halt_loss + qcl)) / s->G;
}

static int fd_one(seg_ctx *s, float *x, double analytic, double eps, const char *what,
                  int64_t k) {
   const float x0 = *x;
   *x = (float)(x0 + eps);
   const double lp = segment_loss(s);
   *x = (float)(x0 - eps);
   const double lm = segment_loss(s);
   *x = x0;
   const double fd = (lp - lm) / ((double)(float)(x0 + eps) - (double)(float)(x0 - eps));
   const double err = fabs(fd - analytic);
   const int ok = err <= 5e-5 + 5e-3 * fabs(fd);
   if (!ok)
      fprintf(stderr, "  %s[%lld]: fd %.7g analytic %.7g\n", what, (long long)k, fd, analytic);
   return ok;
}

static void test_segment_gradient(int32_t pos, int32_t loss, int32_t ndim) {
   /* one H and one L call per segment: the 1-step gradient is then the exact gradient of the
    * segment from its (constant) carry; test_cycle_schedule covers more cycles */
   hrm_config cfg = tiny_config();
   cfg.H_cycles = cfg.L_cycles = 1;
   cfg.pos_encodings = pos;
   cfg.loss = loss;
   cfg.puzzle_emb_ndim = ndim;
   printf("segment gradient: pos %d, loss %d, puzzle_emb_ndim %d\n", pos, loss, ndim);
   hrm_model *m;
   hrm_carry *c;
   const int B = 3;
   CHECK_OK(hrm_model_new(&m, &cfg, 7, HRM_DEVICE_CPU));
   CHECK_OK(hrm_carry_new(&c, m, B));
   /* give the Q head and the puzzle table weight so that their paths carry gradient */
   int64_t n;
   float *qw = param(m, "model.inner.q_head.weight", &n);
   for (int64_t k = 0; k < n; k++) qw[k] = (float)(0.5 * (2 * urand() - 1));
   float *qb = param(m, "model.inner.q_head.bias", NULL);
   qb[0] = 0.3f;
   qb[1] = -0.2f;
   float *table = ndim ? m->puzzle->data : NULL;
   for (int64_t k = 0; ndim && k < m->puzzle->numel; k++) table[k] = (float)(2 * urand() - 1);

   int32_t in1[18], lab1[18], pid1[3] = {2, 0, 2}, in2[18], lab2[18], pid2[3] = {1, 1, 0};
   for (int k = 0; k < 18; k++) {
      in1[k] = (k * 7 + 3) % 5;
      lab1[k] = (k * 3 + 1) % 5;
      in2[k] = (k * 2 + 1) % 5;
      lab2[k] = (k * 5 + 2) % 5;
   }
   lab1[4] = -100;
   lab2[7] = -100;
   lab2[8] = -100;
   hrm_batch b1 = {.inputs = in1, .labels = lab1, .puzzle_ids = pid1, .B = B};
   hrm_batch b2 = {.inputs = in2, .labels = lab2, .puzzle_ids = pid2, .B = B};
   hrm_step_opts train = {.train = 1};
   hrm_step_out out = {0};
   CHECK_OK(hrm_model_step(m, c, &b1, &train, &out));
   CHECK(out.count >= 0.0 && out.q_continue_loss > 0.0);
   /* second segment: row 1 restarts on the new batch, rows 0 and 2 continue */
   hrm_tensor *ht;
   hrm_carry_tensor(&ht, c, "halted");
   uint8_t *halted = ht->data;
   halted[0] = 0;
   halted[1] = 1;
   halted[2] = 0;
   hrm_tensor_free(ht);
   snapshot c0;
   snap_take(&c0, c);
   CHECK_OK(hrm_model_zero_grad(m));
   train.global_batch = 5;  // the gradient is of total / 5
   CHECK_OK(hrm_model_step(m, c, &b2, &train, &out));
   const double total_train = out.loss;
   /* the target the step used: sigmoid of the next forward's Q on the new carry */
   float target[3];
   {
      snapshot c1;
      snap_take(&c1, c);
      hrm_carry_tensor(&ht, c, "halted");
      memset(ht->data, 0, 3);
      hrm_tensor_free(ht);
      hrm_tensor *st, *qh, *qc;
      hrm_carry_tensor(&st, c, "steps");
      int32_t steps[3];
      memcpy(steps, st->data, sizeof steps);
      hrm_tensor_free(st);
      const int64_t bs[1] = {B};
      hrm_tensor_new(&qh, HRM_DTYPE_F32, 1, bs);
      hrm_tensor_new(&qc, HRM_DTYPE_F32, 1, bs);
      hrm_step_opts ev = {0};
      hrm_step_out o2 = {.q_halt_logits = qh, .q_continue_logits = qc};
      CHECK_OK(hrm_model_step(m, c, &b2, &ev, &o2));
      for (int b = 0; b < B; b++) {
         const float h = ((float *)qh->data)[b], q = ((float *)qc->data)[b];
         const float x = steps[b] >= cfg.halt_max_steps ? h : (h > q ? h : q);
         target[b] = 1.0f / (1.0f + expf(-x));
      }
      hrm_tensor_free(qh);
      hrm_tensor_free(qc);
      snap_restore(&c1, c);
      snap_free(&c1);
   }
   /* keep the analytic gradients, then probe the loss */
   float *grads = malloc(sizeof(float) * (size_t)m->num_params);
   memcpy(grads, m->grads->data, sizeof(float) * (size_t)m->num_params);
   float pgrad[3 * 12] = {0};
   int32_t pids[3] = {0};
   if (ndim) {
      CHECK(m->pgrad_rows == B);
      memcpy(pgrad, m->pgrad, sizeof pgrad);
      memcpy(pids, m->pgrad_ids, sizeof pids);
      CHECK(pids[0] == 2 && pids[1] == 1 && pids[2] == 2);  // continuing rows keep their ids
   }

   const int64_t bs[1] = {B};
   hrm_tensor *qc;
   hrm_tensor_new(&qc, HRM_DTYPE_F32, 1, bs);
   seg_ctx s = {.m = m, .c = c, .c0 = &c0, .batch = &b2, .target = target, .qc = qc, .G = 5};
   CHECK_NEAR(segment_loss(&s) * 5.0, total_train, 1e-5 * fabs(total_train));

   int bad = 0, tried = 0;
   const float *P0 = m->params->data;
   for (int32_t i = 0; i < hrm_model_num_tensors(m); i++) {
      const char *name;
      hrm_tensor *v, *g;
      int32_t is_param;
      hrm_model_tensor(m, i, &name, &v, &g, &is_param);
      if (is_param) {
         const int64_t off = (float *)v->data - P0;
         int nz = 0;
         for (int64_t k = 0; k < v->numel; k++) nz += grads[off + k] != 0.0f;
         if (nz == 0) {
            fprintf(stderr, "FAIL %s has an all-zero gradient\n", name);
            bad++;
         }
         const int samples = v->numel < 6 ? (int)v->numel : 6;
         for (int j = 0; j < samples; j++) {
            const int64_t k = samples == v->numel ? j : (int64_t)(urand() * v->numel);
            tried++;
            bad += !fd_one(&s, (float *)v->data + k, grads[off + k], 1e-2, name, k);
         }
      }
      hrm_tensor_free(v);
      hrm_tensor_free(g);
   }
   /* puzzle prefix: the table rows of the ids in the data, local grads of equal ids summed */
   for (int id = 0; ndim && id < 3; id++) {
      for (int e = 0; e < 12; e += 3) {
         double an = 0.0;
         int used = 0;
         for (int b = 0; b < B; b++)
            if (pids[b] == id) {
               an += pgrad[b * 12 + e];
               used = 1;
            }
         tried++;
         bad += !fd_one(&s, table + id * 12 + e, an, 1e-2, "puzzle_emb.weights", id * 12 + e);
         if (used) CHECK(an != 0.0);
      }
   }
   printf("  %d of %d coordinates off\n", bad, tried);
   CHECK(bad == 0);
   hrm_tensor_free(qc);
   free(grads);
   snap_free(&c0);
   hrm_carry_free(c);
   hrm_model_free(m);
}

static void test_numeric_error(void) {
   hrm_config cfg = tiny_config();
   hrm_model *m;
   hrm_carry *c;
   CHECK_OK(hrm_model_new(&m, &cfg, 9, HRM_DEVICE_CPU));
   CHECK_OK(hrm_carry_new(&c, m, 2));
   int32_t in[12] = {0}, lab[12] = {0};
   hrm_batch b = {.inputs = in, .labels = lab, .B = 2};
   hrm_step_opts o = {.train = 1};
   hrm_step_out out = {0};
   param(m, "model.inner.lm_head.weight", NULL)[3] = NAN;
   CHECK(hrm_model_step(m, c, &b, &o, &out) == HRM_ERR_NUMERIC);
   CHECK(strstr(hrm_last_error(), "not finite") != NULL);
   hrm_tensor *st;
   hrm_carry_tensor(&st, c, "steps");
   CHECK(((int32_t *)st->data)[0] == 0);  // the carry was not advanced
   hrm_tensor_free(st);
   hrm_carry_free(c);
   hrm_model_free(m);
}

/* ---- the cycle schedule -------------------------------------------------------------------- */

static void set_halted(hrm_carry *c, uint8_t v) { memset(c->halted->data, v, (size_t)c->B); }

/* H_cycles = L_cycles = 2 runs L, L, H, L without gradient, then L, H with it. A model with one
 * cycle of each runs L, H per step, and a step whose z_H is put back afterwards is a lone L.
 * So the 2/2 training step must equal, state and gradients, the 1/1 sequence
 * (L)(L H)(L)[L H] with the last step in training. */
static void test_cycle_schedule(void) {
   hrm_config ca = tiny_config(), cb = tiny_config();
   ca.halt_max_steps = cb.halt_max_steps = 1;  // no target-Q forward in either
   cb.H_cycles = cb.L_cycles = 1;
   hrm_model *A, *Bm;
   CHECK_OK(hrm_model_new(&A, &ca, 11, HRM_DEVICE_CPU));
   CHECK_OK(hrm_model_new(&Bm, &cb, 11, HRM_DEVICE_CPU));
   const size_t pbytes = sizeof(float) * (size_t)A->num_params;
   CHECK(A->num_params == Bm->num_params && memcmp(A->params->data, Bm->params->data, pbytes) == 0);
   float *qw = param(A, "model.inner.q_head.weight", NULL);
   for (int k = 0; k < 16; k++) qw[k] = (float)(0.5 * (2 * urand() - 1));
   float *ta = A->puzzle->data;
   for (int64_t k = 0; k < A->puzzle->numel; k++) ta[k] = (float)(2 * urand() - 1);
   memcpy(Bm->params->data, A->params->data, pbytes);
   memcpy(Bm->puzzle->data, A->puzzle->data, sizeof(float) * (size_t)A->puzzle->numel);
   hrm_carry *cA, *cB;
   hrm_carry_new(&cA, A, 3);
   hrm_carry_new(&cB, Bm, 3);
   int32_t in[18], lab[18], pid[3] = {1, 0, 1};
   for (int j = 0; j < 18; j++) {
      in[j] = (j * 3 + 2) % 5;
      lab[j] = (j * 4 + 1) % 5;
   }
   lab[3] = -100;
   hrm_batch b = {.inputs = in, .labels = lab, .puzzle_ids = pid, .B = 3};
   hrm_step_opts ev = {0}, tr = {.train = 1};
   hrm_step_out oa = {0}, ob = {0};
   /* a common, non-trivial starting state */
   CHECK_OK(hrm_model_step(Bm, cB, &b, &ev, &ob));
   snapshot c0;
   snap_take(&c0, cB);
   snap_restore(&c0, cA);
   set_halted(cA, 0);
   CHECK_OK(hrm_model_step(A, cA, &b, &tr, &oa));
   const size_t zbytes = sizeof(float) * (size_t)cB->z_H->numel;
   float *zh = malloc(zbytes);
   for (int k = 0; k < 4; k++) {
      set_halted(cB, 0);
      memcpy(zh, cB->z_H->data, zbytes);
      CHECK_OK(hrm_model_step(Bm, cB, &b, k == 3 ? &tr : &ev, &ob));
      if (k == 0 || k == 2) memcpy(cB->z_H->data, zh, zbytes);  // a lone L call
   }
   double dz = 0.0, dg = 0.0, gmax = 0.0;
   const float *za = cA->z_H->data, *zb = cB->z_H->data;
   const float *la = cA->z_L->data, *lb = cB->z_L->data;
   for (int64_t k = 0; k < cA->z_H->numel; k++)
      dz = fmax(dz, fmax(fabs(za[k] - zb[k]), fabs(la[k] - lb[k])));
   const float *ga = A->grads->data, *gb = Bm->grads->data;
   for (int64_t k = 0; k < A->num_params; k++) {
      dg = fmax(dg, fabs(ga[k] - gb[k]));
      gmax = fmax(gmax, fabs(ga[k]));
   }
   for (int k = 0; k < 36; k++) dg = fmax(dg, fabs(A->pgrad[k] - Bm->pgrad[k]));
   printf("cycle schedule: |dz| %.3g, |dgrad| %.3g (max grad %.3g)\n", dz, dg, gmax);
   CHECK(dz <= 1e-6);
   CHECK(gmax > 0.0 && dg <= 1e-6 * gmax);
   CHECK_NEAR(oa.loss, ob.loss, 1e-9 * fabs(oa.loss));
   CHECK_NEAR(oa.lm_loss, ob.lm_loss, 1e-9 * fabs(oa.lm_loss));
   /* training steps leave the parameters alone */
   CHECK(memcmp(A->params->data, Bm->params->data, pbytes) == 0);
   free(zh);
   snap_free(&c0);
   hrm_carry_free(cA);
   hrm_carry_free(cB);
   hrm_model_free(A);
   hrm_model_free(Bm);
}

/* ---- determinism, halting, active rows ------------------------------------------------------ */

static void run_steps(hrm_model *m, hrm_carry *c, int n, double *losses) {
   int32_t in[18], lab[18], pid[3] = {0, 1, 2};
   hrm_batch b = {.inputs = in, .labels = lab, .puzzle_ids = pid, .B = 3};
   for (int k = 0; k < n; k++) {
      for (int j = 0; j < 18; j++) {
         in[j] = (j * 7 + k) % 5;
         lab[j] = (j + 3 * k) % 5;
      }
      hrm_step_opts o = {.train = 1};
      hrm_step_out out = {0};
      CHECK_OK(hrm_model_step(m, c, &b, &o, &out));
      losses[k] = out.loss;
   }
}

static void test_determinism(void) {
   hrm_config cfg = tiny_config();
   cfg.halt_exploration_prob = 0.5;
   hrm_model *a, *b, *d;
   CHECK_OK(hrm_model_new(&a, &cfg, 42, HRM_DEVICE_CPU));
   CHECK_OK(hrm_model_new(&b, &cfg, 42, HRM_DEVICE_CPU));
   CHECK_OK(hrm_model_new(&d, &cfg, 43, HRM_DEVICE_CPU));
   const size_t bytes = sizeof(float) * (size_t)a->num_params;
   CHECK(memcmp(a->params->data, b->params->data, bytes) == 0);
   CHECK(memcmp(a->H_init->data, b->H_init->data, sizeof(float) * 8) == 0);
   CHECK(memcmp(a->params->data, d->params->data, bytes) != 0);
   hrm_carry *ca, *cb;
   hrm_carry_new(&ca, a, 3);
   hrm_carry_new(&cb, b, 3);
   double la[5], lb[5];
   run_steps(a, ca, 5, la);
   run_steps(b, cb, 5, lb);
   CHECK(memcmp(la, lb, sizeof la) == 0);
   CHECK(memcmp(a->grads->data, b->grads->data, bytes) == 0);
   CHECK(memcmp(ca->z_H->data, cb->z_H->data, sizeof(float) * (size_t)ca->z_H->numel) == 0);
   CHECK(a->rng.counter == b->rng.counter && a->rng.counter > 0);
   hrm_carry_free(ca);
   hrm_carry_free(cb);
   hrm_model_free(a);
   hrm_model_free(b);
   hrm_model_free(d);
}

static void test_eval_halting(void) {
   hrm_config cfg = tiny_config();
   hrm_model *m;
   hrm_carry *c;
   CHECK_OK(hrm_model_new(&m, &cfg, 3, HRM_DEVICE_CPU));
   CHECK_OK(hrm_carry_new(&c, m, 3));
   int32_t in[18], lab[18];
   for (int j = 0; j < 18; j++) {
      in[j] = j % 5;
      lab[j] = (j + 1) % 5;
   }
   lab[0] = lab[1] = -100;
   hrm_batch b = {.inputs = in, .labels = lab, .puzzle_ids = NULL, .B = 3};
   hrm_tensor *st, *ht, *zh;
   hrm_carry_tensor(&st, c, "steps");
   hrm_carry_tensor(&ht, c, "halted");
   hrm_carry_tensor(&zh, c, "z_H");
   const int32_t *steps = st->data;
   const uint8_t *halted = ht->data;
   const int64_t ls[3] = {3, 6, 5};
   hrm_tensor *logits;
   hrm_tensor_new(&logits, HRM_DTYPE_F32, 3, ls);
   hrm_step_opts o = {0};
   for (int k = 1; k <= cfg.halt_max_steps; k++) {
      hrm_step_out out = {.logits = logits};
      CHECK_OK(hrm_model_step(m, c, &b, &o, &out));
      CHECK(steps[0] == k && steps[1] == k && steps[2] == k);
      const int last = k == cfg.halt_max_steps;
      CHECK(halted[0] == last && halted[1] == last && halted[2] == last);
      CHECK(out.count == (last ? 3.0 : 0.0));
      if (last) CHECK(out.steps == 3.0 * cfg.halt_max_steps);
      CHECK(out.q_continue_loss == 0.0 && out.lm_loss > 0.0);
      CHECK(isfinite(((float *)logits->data)[17]));
   }
   /* halted rows restart */
   hrm_step_out out = {0};
   CHECK_OK(hrm_model_step(m, c, &b, &o, &out));
   CHECK(steps[0] == 1 && halted[0] == 0);
   /* an active mask computes only its rows and leaves the others' carry as it was */
   float *z1 = malloc(sizeof(float) * 6 * 8 * 8);
   const float *zrow1 = (const float *)zh->data + 1 * 8 * 8;
   memcpy(z1, zrow1, sizeof(float) * 8 * 8);
   const uint8_t active[3] = {1, 0, 1};
   o.active = active;
   CHECK_OK(hrm_model_step(m, c, &b, &o, &out));
   CHECK(steps[0] == 2 && steps[1] == 1 && steps[2] == 2);
   CHECK(memcmp(z1, zrow1, sizeof(float) * 8 * 8) == 0);
   /* the active rows match a full step of an identical state */
   o.active = NULL;
   hrm_step_opts tr = {.train = 1, .active = active};
   CHECK(hrm_model_step(m, c, &b, &tr, &out) == HRM_ERR_ARG);
   free(z1);
   hrm_tensor_free(logits);
   hrm_tensor_free(st);
   hrm_tensor_free(ht);
   hrm_tensor_free(zh);
   hrm_carry_free(c);
   hrm_model_free(m);
}

/* Carries of different batch sizes share one model (the arena grows); rows are independent. */
static void test_batch_sizes(void) {
   hrm_config cfg = tiny_config();
   hrm_model *m;
   CHECK_OK(hrm_model_new(&m, &cfg, 21, HRM_DEVICE_CPU));
   hrm_carry *c2, *c4;
   CHECK_OK(hrm_carry_new(&c2, m, 2));
   CHECK_OK(hrm_carry_new(&c4, m, 4));
   int32_t in[24], lab[24], pid[4] = {1, 2, 1, 0};
   for (int j = 0; j < 24; j++) {
      in[j] = (j * 3) % 5;
      lab[j] = (j * 2 + 1) % 5;
   }
   hrm_batch b2 = {.inputs = in, .labels = lab, .puzzle_ids = pid, .B = 2};
   hrm_batch b4 = {.inputs = in, .labels = lab, .puzzle_ids = pid, .B = 4};
   const int64_t s2[3] = {2, 6, 5}, s4[3] = {4, 6, 5};
   hrm_tensor *l2, *l4;
   hrm_tensor_new(&l2, HRM_DTYPE_F32, 3, s2);
   hrm_tensor_new(&l4, HRM_DTYPE_F32, 3, s4);
   hrm_step_opts tr = {.train = 1}, ev = {0};
   hrm_step_out o2 = {.logits = l2}, o4 = {.logits = l4};
   CHECK_OK(hrm_model_step(m, c2, &b2, &tr, &o2));
   CHECK_OK(hrm_model_step(m, c4, &b4, &ev, &o4));  // grows the arena in eval
   CHECK_OK(hrm_model_step(m, c4, &b4, &tr, &o4));  // then trains at the larger size
   CHECK_OK(hrm_model_zero_grad(m));
   hrm_carry_free(c2);
   CHECK_OK(hrm_carry_new(&c2, m, 2));
   hrm_carry_free(c4);
   CHECK_OK(hrm_carry_new(&c4, m, 4));
   CHECK_OK(hrm_model_step(m, c2, &b2, &ev, &o2));
   CHECK_OK(hrm_model_step(m, c4, &b4, &ev, &o4));
   double diff = 0.0;
   for (int k = 0; k < 2 * 6 * 5; k++)
      diff = fmax(diff, fabs(((float *)l2->data)[k] - ((float *)l4->data)[k]));
   CHECK(diff < 1e-5);
   hrm_tensor_free(l2);
   hrm_tensor_free(l4);
   hrm_carry_free(c2);
   hrm_carry_free(c4);
   hrm_model_free(m);
}

/* ---- optimizers ---------------------------------------------------------------------------- */

static void test_optimizers(void) {
   hrm_config cfg = tiny_config();
   hrm_model *m;
   CHECK_OK(hrm_model_new(&m, &cfg, 5, HRM_DEVICE_CPU));
   float *p = m->params->data, *g = m->grads->data;
   const int64_t n = m->num_params;
   hrm_optim_config oc = {.kind = HRM_OPTIM_ADAM_ATAN2, .lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95,
                          .weight_decay = 0.1, .eps = 1e-8, .puzzle_emb_lr = 1e-2,
                          .puzzle_emb_weight_decay = 0.1};
   hrm_optim *o;
   CHECK_OK(hrm_optim_new(&o, m, &oc));
   /* reference in double for three coordinates over two steps */
   const int64_t ks[3] = {0, 17, n - 1};
   double P[3], M[3] = {0}, Vv[3] = {0};
   const double gs[2][3] = {{0.5, -0.25, 0.0}, {-1.0, 3.0, 0.0}};
   const double lr = 2e-3;
   for (int j = 0; j < 3; j++) P[j] = p[ks[j]];
   for (int step = 1; step <= 2; step++) {
      for (int j = 0; j < 3; j++) g[ks[j]] = (float)gs[step - 1][j];
      CHECK_OK(hrm_optim_step(o, lr, 0.0));
      for (int j = 0; j < 3; j++) {
         const double gr = gs[step - 1][j];
         P[j] *= 1.0 - lr * 0.1;
         M[j] += 0.1 * (gr - M[j]);
         Vv[j] += 0.05 * (gr * gr - Vv[j]);
         const double mh = M[j] / (1.0 - pow(0.9, step)), vh = Vv[j] / (1.0 - pow(0.95, step));
         P[j] -= lr * atan2(mh, sqrt(vh));
         CHECK_NEAR(p[ks[j]], P[j], 1e-6);
      }
      CHECK(g[ks[0]] == 0.0f && g[ks[1]] == 0.0f);  // zeroed after the step
   }
   /* first step with g = 0.5: atan2(0.5, 0.5) = π/4 */
   hrm_tensor *t, *mt;
   CHECK_OK(hrm_optim_tensor(&t, o, "t"));
   CHECK(t->dtype == HRM_DTYPE_F64 && ((double *)t->data)[0] == 2.0);
   hrm_tensor_free(t);
   CHECK_OK(hrm_optim_tensor(&mt, o, "m"));
   CHECK(mt->numel == n);
   CHECK_NEAR(((float *)mt->data)[17], M[1], 1e-7);
   hrm_tensor_free(mt);
   CHECK(hrm_optim_tensor(&t, o, "w") == HRM_ERR_ARG);
   hrm_optim_free(o);

   /* AdamW, PyTorch semantics */
   oc.kind = HRM_OPTIM_ADAMW;
   CHECK_OK(hrm_optim_new(&o, m, &oc));
   for (int j = 0; j < 3; j++) {
      P[j] = p[ks[j]];
      M[j] = Vv[j] = 0.0;
   }
   for (int step = 1; step <= 2; step++) {
      for (int j = 0; j < 3; j++) g[ks[j]] = (float)gs[step - 1][j];
      CHECK_OK(hrm_optim_step(o, lr, 0.0));
      for (int j = 0; j < 3; j++) {
         const double gr = gs[step - 1][j];
         P[j] *= 1.0 - lr * 0.1;
         M[j] = 0.9 * M[j] + 0.1 * gr;
         Vv[j] = 0.95 * Vv[j] + 0.05 * gr * gr;
         const double bc1 = 1.0 - pow(0.9, step), bc2 = 1.0 - pow(0.95, step);
         P[j] -= lr / bc1 * M[j] / (sqrt(Vv[j]) / sqrt(bc2) + 1e-8);
         CHECK_NEAR(p[ks[j]], P[j], 1e-6);
      }
   }
   hrm_optim_free(o);
   oc.eps = 0.0;
   CHECK(hrm_optim_new(&o, m, &oc) == HRM_ERR_ARG);
   oc.eps = 1e-8;
   oc.beta2 = 1.0;
   CHECK(hrm_optim_new(&o, m, &oc) == HRM_ERR_ARG);
   oc.beta2 = 0.95;

   /* sign-SGD on the puzzle rows of the batch; duplicate ids summed first */
   oc.kind = HRM_OPTIM_ADAM_ATAN2;
   CHECK_OK(hrm_optim_new(&o, m, &oc));
   float *table = m->puzzle->data;
   for (int64_t k = 0; k < m->puzzle->numel; k++) table[k] = (float)(2 * urand() - 1);
   hrm_carry *c;
   hrm_carry_new(&c, m, 3);
   int32_t in[18] = {0}, lab[18] = {0}, pid[3] = {2, 0, 2};
   for (int j = 0; j < 18; j++) in[j] = lab[j] = j % 5;
   hrm_batch b = {.inputs = in, .labels = lab, .puzzle_ids = pid, .B = 3};
   hrm_step_opts so = {.train = 1};
   hrm_step_out out = {0};
   /* the Q head reads the prefix only through the trunk; zero table rows still get gradient */
   CHECK_OK(hrm_model_step(m, c, &b, &so, &out));
   float before[36], pg[36];
   memcpy(before, table, sizeof before);
   memcpy(pg, m->pgrad, sizeof pg);
   const double plr = 0.01, pwd = 0.1;
   CHECK_OK(hrm_optim_step(o, 0.0, plr));
   int ok = 1;
   for (int e = 0; e < 12; e++) {
      const double g2 = (double)pg[0 * 12 + e] + pg[2 * 12 + e], g0 = pg[1 * 12 + e];
      const double s2 = g2 > 0 ? 1 : g2 < 0 ? -1 : 0, s0 = g0 > 0 ? 1 : g0 < 0 ? -1 : 0;
      ok &= fabs(table[2 * 12 + e] - (before[2 * 12 + e] * (1 - plr * pwd) - plr * s2)) < 1e-6;
      ok &= fabs(table[0 * 12 + e] - (before[0 * 12 + e] * (1 - plr * pwd) - plr * s0)) < 1e-6;
      ok &= table[1 * 12 + e] == before[1 * 12 + e];  // id 1 not in the batch
   }
   CHECK(ok);
   CHECK(m->pgrad_rows == 0 && m->pgrad[5] == 0.0f);
   hrm_carry_free(c);
   hrm_optim_free(o);
   hrm_model_free(m);
}

int main(void) {
   test_config();
   test_batch_validation();
   test_segment_gradient(HRM_POS_ROPE, HRM_LOSS_STABLEMAX, 12);
   test_segment_gradient(HRM_POS_LEARNED, HRM_LOSS_SOFTMAX, 12);
   test_segment_gradient(HRM_POS_NONE, HRM_LOSS_STABLEMAX, 0);
   test_numeric_error();
   test_cycle_schedule();
   test_determinism();
   test_eval_halting();
   test_batch_sizes();
   test_optimizers();
   test_num_parameters();
   return check_summary("test_model");
}
