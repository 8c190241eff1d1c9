/* act.c — the ACT wrapper's batch ops (spec §2, §3): batch checks, carry reset, row gathers,
 * halting with exploration, the target-Q, the loss head with its gradients, the commit and the
 * inference bookkeeping; plus argmax and the EMA update.
 *
 * These are the reference's ACTLossHead and HierarchicalReasoningModel_ACTV1 outer loop as ops
 * over whole batches, shared by every recurrent model file. "Rows" are the carry rows a segment
 * computes (all in training; the active ones at inference), listed in a (B) i32 tensor.
 * The loss head keeps per-token work in a grow-only buffer of this thread.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cpu/fastmath.h"
#include "error.h"
#include "nn.h"

#define I32(t) ((int32_t *)(t)->data)
#define F32(t) ((float *)(t)->data)

static int64_t row_len(const hrm_tensor *t) { return t->numel / (t->ndim ? t->shape[0] : 1); }
static int32_t row_at(const hrm_tensor *rows, int32_t i) { return rows ? I32(rows)[i] : i; }

int hrm_act_check_batch(const hrm_act_carry *c, const hrm_batch *batch, int32_t vocab,
                        int32_t num_ids) {
   HRM_CHECK(c && batch, HRM_ERR_ARG, "step: carry or batch is NULL");
   HRM_CHECK(c->nstates >= 1 && c->nstates <= 4, HRM_ERR_ARG,
             "step: the carry has %d states (1 to 4)", c->nstates);
   HRM_CHECK(c->steps && c->halted && c->inputs && c->labels && c->puzzle_ids, HRM_ERR_ARG,
             "step: the carry is missing a field");
   const int32_t B = (int32_t)c->steps->numel, S = (int32_t)row_len(c->inputs);
   for (int32_t k = 0; k < c->nstates; k++) {
      HRM_CHECK(c->states[k] && c->inits[k] && c->states[k]->dtype == HRM_DTYPE_F32 &&
                c->states[k]->ndim == 3 && c->states[k]->shape[0] == B &&
                c->inits[k]->numel == c->states[k]->shape[2],
                HRM_ERR_SHAPE, "step: carry state %d is not (B, T, D) f32 with a (D) init", k + 1);
   }
   HRM_CHECK(batch->B == B, HRM_ERR_SHAPE, "step: batch.B = %d differs from the carry's batch %d",
             batch->B, B);
   HRM_CHECK(batch->inputs, HRM_ERR_ARG, "step: batch.inputs is NULL");
   for (int32_t b = 0; b < B; b++) {
      for (int32_t s = 0; s < S; s++) {
         const int32_t x = batch->inputs[(int64_t)b * S + s];
         HRM_CHECK(x >= 0 && x < vocab, HRM_ERR_RANGE,
                   "step: batch.inputs[%d][%d] = %d is out of range [0, %d)", b, s, x, vocab);
         if (batch->labels) {
            const int32_t y = batch->labels[(int64_t)b * S + s];
            HRM_CHECK((y >= 0 && y < vocab) || y == HRM_IGNORE_LABEL, HRM_ERR_RANGE,
                      "step: batch.labels[%d][%d] = %d is neither in [0, %d) nor -100", b, s, y,
                      vocab);
         }
      }
      if (batch->puzzle_ids) {
         const int32_t id = batch->puzzle_ids[b];
         HRM_CHECK(id >= 0 && (id < num_ids || (num_ids == 0 && id == 0)), HRM_ERR_RANGE,
                   "step: batch.puzzle_ids[%d] = %d is out of range [0, %d)", b, id, num_ids);
      }
   }
   return HRM_OK;
}

int hrm_act_rows(int32_t *n, hrm_tensor *rows, const hrm_tensor *active) {
   HRM_CHECK(n && rows && rows->dtype == HRM_DTYPE_I32, HRM_ERR_ARG,
             "act_rows: n or an i32 rows tensor is missing");
   HRM_CHECK(!active || (active->dtype == HRM_DTYPE_U8 && active->numel == rows->numel),
             HRM_ERR_SHAPE, "act_rows: active must be u8 of the batch size %lld",
             (long long)rows->numel);
   int32_t k = 0;
   const uint8_t *a = active ? active->data : NULL;
   for (int32_t r = 0; r < (int32_t)rows->numel; r++)
      if (!a || a[r]) I32(rows)[k++] = r;
   *n = k;
   return HRM_OK;
}

int hrm_act_reset(const hrm_act_carry *c, const hrm_batch *batch, const hrm_tensor *rows,
                  int32_t n) {
   HRM_CHECK(c && batch, HRM_ERR_ARG, "act_reset: carry or batch is NULL");
   const int32_t S = (int32_t)row_len(c->inputs);
   const uint8_t *halted = c->halted->data;
   for (int32_t i = 0; i < n; i++) {
      const int32_t r = row_at(rows, i);
      if (!halted[r]) continue;
      for (int32_t k = 0; k < c->nstates; k++) {
         const int64_t T = c->states[k]->shape[1], D = c->states[k]->shape[2];
         float *z = F32(c->states[k]) + (int64_t)r * T * D;
         for (int64_t t = 0; t < T; t++)
            memcpy(z + t * D, c->inits[k]->data, sizeof(float) * (size_t)D);
      }
      I32(c->steps)[r] = 0;
      memcpy(I32(c->inputs) + (int64_t)r * S, batch->inputs + (int64_t)r * S,
             sizeof(int32_t) * (size_t)S);
      int32_t *lab = I32(c->labels) + (int64_t)r * S;
      if (batch->labels) memcpy(lab, batch->labels + (int64_t)r * S, sizeof(int32_t) * (size_t)S);
      else for (int32_t s = 0; s < S; s++) lab[s] = HRM_IGNORE_LABEL;
      I32(c->puzzle_ids)[r] = batch->puzzle_ids ? batch->puzzle_ids[r] : 0;
   }
   return HRM_OK;
}

static int check_rows(const hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows,
                      int32_t n, const char *fn) {
   HRM_CHECK(dst && src, HRM_ERR_ARG, "%s: dst or src is NULL", fn);
   HRM_CHECK(dst->dtype == src->dtype && row_len(dst) == row_len(src), HRM_ERR_SHAPE,
             "%s: dst and src rows differ (%s of %lld, %s of %lld)", fn, hrm_dtype_name(dst->dtype),
             (long long)row_len(dst), hrm_dtype_name(src->dtype), (long long)row_len(src));
   HRM_CHECK(!rows || (rows->dtype == HRM_DTYPE_I32 && rows->numel >= n), HRM_ERR_ARG,
             "%s: rows must be i32 with at least %d entries", fn, n);
   return HRM_OK;
}

/* dst[i] = src[rows[i]] (gather) or dst[rows[i]] = src[i] (scatter), i < n. */
static int rows_copy(hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows, int32_t n,
                     int scatter) {
   const char *fn = scatter ? "rows_scatter" : "rows_gather";
   HRM_TRY(check_rows(dst, src, rows, n, fn));
   const size_t len = (size_t)row_len(src) * hrm_dtype_size(src->dtype);
   const int64_t srows = src->numel / row_len(src), drows = dst->numel / row_len(dst);
   const int64_t dense = scatter ? srows : drows, indexed = scatter ? drows : srows;
   HRM_CHECK(n <= dense, HRM_ERR_SHAPE, "%s: %d rows, the tensor has %lld", fn, n,
             (long long)dense);
   for (int32_t i = 0; i < n; i++) {
      const int32_t r = row_at(rows, i);
      HRM_CHECK(r >= 0 && r < indexed, HRM_ERR_RANGE, "%s: row %d of %lld", fn, r,
                (long long)indexed);
      char *d = (char *)dst->data + (size_t)(scatter ? r : i) * len;
      const char *s = (const char *)src->data + (size_t)(scatter ? i : r) * len;
      if (d != s) memcpy(d, s, len);
   }
   return HRM_OK;
}

int hrm_rows_gather(hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows, int32_t n) {
   return rows_copy(dst, src, rows, n, 0);
}

int hrm_rows_scatter(hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows, int32_t n) {
   return rows_copy(dst, src, rows, n, 1);
}

int hrm_act_halt(hrm_tensor *new_steps, hrm_tensor *new_halted, const hrm_tensor *steps,
                 const hrm_tensor *rows, int32_t n, const hrm_tensor *q, int32_t max_steps,
                 double exploration_prob, int32_t train, int32_t rule, hrm_rng *rng) {
   HRM_CHECK(new_steps && new_halted && steps && q && rng, HRM_ERR_ARG,
             "act_halt: NULL argument");
   HRM_CHECK(max_steps >= 1, HRM_ERR_ARG, "act_halt: max_steps = %d must be >= 1", max_steps);
   HRM_CHECK(rule == HRM_HALT_COMPARE || rule == HRM_HALT_POSITIVE, HRM_ERR_ARG,
             "act_halt: rule = %d is not HRM_HALT_COMPARE (0) or HRM_HALT_POSITIVE (1)", rule);
   const int act = train && max_steps > 1;
   const float *qv = F32(q);
   for (int32_t i = 0; i < n; i++) {
      const int32_t s = I32(steps)[row_at(rows, i)] + 1;
      int h = s >= max_steps;
      if (act) {
         h = h || (qv[2 * i] > (rule == HRM_HALT_POSITIVE ? 0.0f : qv[2 * i + 1]));
         const double u = hrm_rng_uniform(rng);
         const int k = 2 + (int)floor(hrm_rng_uniform(rng) * (max_steps - 1));
         const int min_halt = u < exploration_prob ? k : 0;
         h = h && s >= min_halt;
      }
      I32(new_steps)[i] = s;
      ((uint8_t *)new_halted->data)[i] = (uint8_t)h;
   }
   return HRM_OK;
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + hrm_expf(-x)); }

int hrm_act_target_q(hrm_tensor *target, const hrm_tensor *q_next, const hrm_tensor *new_steps,
                     int32_t n, int32_t max_steps) {
   HRM_CHECK(target && q_next && new_steps, HRM_ERR_ARG, "act_target_q: NULL argument");
   const float *q = F32(q_next);
   for (int32_t i = 0; i < n; i++) {
      const float nh = q[2 * i], nc = q[2 * i + 1];
      const int is_last = I32(new_steps)[i] >= max_steps;
      F32(target)[i] = sigmoidf(is_last ? nh : (nh > nc ? nh : nc));
   }
   return HRM_OK;
}

/* Per-token and per-row work of the loss head, grown on first use. */
typedef struct loss_work {
   size_t cap;              // rows · S capacity of the token arrays
   size_t rcap;             // rows capacity of the row arrays
   double *tok_loss, *tok_w;  // (n, S)
   int32_t *pred;             // (n, S)
   double *row_w, *bce;       // (n)
   float *qh, *qc, *seq_ok, *dqs;  // (n) (n) (n) (2n)
} loss_work;

static _Thread_local loss_work work;

/* The buffers hold nothing between calls, so growing replaces them. */
static int work_reserve(size_t tokens, size_t rows) {
   if (work.cap < tokens) {
      hrm_buf_free(work.tok_loss);
      hrm_buf_free(work.tok_w);
      hrm_buf_free(work.pred);
      work.tok_loss = hrm_buf_alloc(sizeof(double) * tokens);
      work.tok_w = hrm_buf_alloc(sizeof(double) * tokens);
      work.pred = hrm_buf_alloc(sizeof(int32_t) * tokens);
      work.cap = work.tok_loss && work.tok_w && work.pred ? tokens : 0;
      HRM_CHECK(work.cap, HRM_ERR_MEMORY, "loss: out of memory");
   }
   if (work.rcap < rows) {
      hrm_buf_free(work.row_w);
      hrm_buf_free(work.qh);
      work.row_w = hrm_buf_alloc(sizeof(double) * rows * 2);
      work.qh = hrm_buf_alloc(sizeof(float) * rows * 5);
      work.rcap = work.row_w && work.qh ? rows : 0;
      HRM_CHECK(work.rcap, HRM_ERR_MEMORY, "loss: out of memory");
   }
   work.bce = work.row_w + work.rcap;
   work.qc = work.qh + work.rcap;
   work.seq_ok = work.qc + work.rcap;
   work.dqs = work.seq_ok + work.rcap;
   return HRM_OK;
}

int hrm_act_loss(hrm_act_metrics *out, hrm_tensor *dlogits, hrm_tensor *dq,
                 const hrm_tensor *logits, const hrm_tensor *q, const hrm_tensor *labels,
                 const hrm_tensor *new_steps, const hrm_tensor *new_halted,
                 const hrm_tensor *target, int32_t n, int32_t loss_kind, double global_batch) {
   HRM_CHECK(out && logits && q && labels && new_steps && new_halted, HRM_ERR_ARG,
             "act_loss: NULL argument");
   HRM_CHECK(global_batch > 0, HRM_ERR_ARG, "act_loss: global_batch = %g must be > 0",
             global_batch);
   memset(out, 0, sizeof *out);
   if (n == 0) return HRM_OK;
   const hrm_backend *be = &hrm_cpu_backend;
   const int32_t S = (int32_t)row_len(labels), V = (int32_t)(logits->numel / logits->shape[0] / S);
   HRM_CHECK(logits->numel >= (int64_t)n * S * V && labels->numel >= (int64_t)n * S, HRM_ERR_SHAPE,
             "act_loss: logits or labels hold fewer than %d rows", n);
   HRM_TRY(work_reserve((size_t)n * (size_t)S, (size_t)n));
   const int64_t NS = (int64_t)n * S;
   const float *lg = F32(logits);
   const int32_t *lab = I32(labels);
   const double G = global_batch;
   if (loss_kind == HRM_LOSS_STABLEMAX) be->stablemax_ce_forward(work.tok_loss, lg, lab, NS, V);
   else be->softmax_ce_forward(work.tok_loss, lg, lab, NS, V);
   be->argmax_forward(work.pred, lg, NS, V);
   double lm = 0.0, qhl = 0.0, qcl = 0.0, acc = 0.0, exact = 0.0, qacc = 0.0, nsteps = 0.0;
   double count = 0.0;
   const uint8_t *halted = new_halted->data;
   for (int32_t i = 0; i < n; i++) {
      work.qh[i] = F32(q)[2 * i];
      work.qc[i] = F32(q)[2 * i + 1];
      int cnt = 0, ok = 0;
      double row = 0.0;
      for (int32_t s = 0; s < S; s++) {
         const int64_t k = (int64_t)i * S + s;
         if (lab[k] == HRM_IGNORE_LABEL) continue;
         cnt++;
         ok += work.pred[k] == lab[k];
         row += work.tok_loss[k];
      }
      const double div = cnt > 0 ? cnt : 1;
      lm += row / div;
      for (int32_t s = 0; s < S; s++) work.tok_w[(int64_t)i * S + s] = 1.0 / (div * G);
      const int seq_ok = ok == cnt;
      work.seq_ok[i] = (float)seq_ok;
      if (halted[i] && cnt > 0) {
         count += 1.0;
         acc += ok / div;
         exact += seq_ok;
         qacc += (work.qh[i] >= 0.0f) == seq_ok;
         nsteps += I32(new_steps)[i];
      }
   }
   be->bce_logits_forward(work.bce, work.qh, work.seq_ok, n);
   for (int32_t i = 0; i < n; i++) qhl += work.bce[i];
   if (target) {
      be->bce_logits_forward(work.bce, work.qc, F32(target), n);
      for (int32_t i = 0; i < n; i++) qcl += work.bce[i];
   }
   const double total = lm + 0.5 * (qhl + qcl);
   HRM_CHECK(isfinite(total), HRM_ERR_NUMERIC,
             "step: the loss is not finite (lm %g, q_halt %g, q_continue %g)", lm, qhl, qcl);
   *out = (hrm_act_metrics){.loss = total, .lm_loss = lm, .q_halt_loss = qhl,
                            .q_continue_loss = qcl, .accuracy = acc, .exact_accuracy = exact,
                            .q_halt_accuracy = qacc, .steps = nsteps, .count = count};
   if (!dlogits || !dq) return HRM_OK;
   /* the gradients of total / global_batch */
   HRM_CHECK(dlogits->numel >= NS * V && dq->numel >= 2 * (int64_t)n, HRM_ERR_SHAPE,
             "act_loss: dlogits or dq hold fewer than %d rows", n);
   if (loss_kind == HRM_LOSS_STABLEMAX)
      be->stablemax_ce_backward(F32(dlogits), work.tok_w, lg, lab, NS, V);
   else be->softmax_ce_backward(F32(dlogits), work.tok_w, lg, lab, NS, V);
   for (int32_t i = 0; i < n; i++) work.row_w[i] = 0.5 / G;
   be->bce_logits_backward(work.dqs, work.row_w, work.qh, work.seq_ok, n);
   if (target) be->bce_logits_backward(work.dqs + n, work.row_w, work.qc, F32(target), n);
   else memset(work.dqs + n, 0, sizeof(float) * (size_t)n);
   for (int32_t i = 0; i < n; i++) {
      F32(dq)[2 * i] = work.dqs[i];
      F32(dq)[2 * i + 1] = work.dqs[n + i];
   }
   return HRM_OK;
}

int hrm_act_commit(const hrm_act_carry *c, const hrm_tensor *new_steps,
                   const hrm_tensor *new_halted, const hrm_tensor *rows, int32_t n,
                   hrm_tensor *logits_out, hrm_tensor *q_halt_out, hrm_tensor *q_continue_out,
                   const hrm_tensor *logits, const hrm_tensor *q) {
   HRM_CHECK(c && new_steps && new_halted, HRM_ERR_ARG, "act_commit: NULL argument");
   HRM_TRY(hrm_rows_scatter(c->steps, new_steps, rows, n));
   HRM_TRY(hrm_rows_scatter(c->halted, new_halted, rows, n));
   if (logits_out && logits) HRM_TRY(hrm_rows_scatter(logits_out, logits, rows, n));
   for (int32_t i = 0; q && i < n; i++) {
      const int32_t r = row_at(rows, i);
      if (q_halt_out) F32(q_halt_out)[r] = F32(q)[2 * i];
      if (q_continue_out) F32(q_continue_out)[r] = F32(q)[2 * i + 1];
   }
   return HRM_OK;
}

int hrm_act_solve_update(int32_t *n_active, hrm_tensor *predictions, hrm_tensor *steps,
                         hrm_tensor *q_halt, hrm_tensor *q_continue, hrm_tensor *active,
                         const hrm_tensor *logits, const hrm_tensor *q_halt_logits,
                         const hrm_tensor *q_continue_logits, int32_t segment, int32_t halt_q) {
   HRM_CHECK(n_active && predictions && steps && q_halt && q_continue && active && logits &&
             q_halt_logits && q_continue_logits, HRM_ERR_ARG, "solve_update: NULL argument");
   const int64_t B = active->numel, S = row_len(predictions);
   const int32_t V = (int32_t)(logits->numel / (B * S));
   uint8_t *a = active->data;
   int32_t left = 0;
   for (int64_t r = 0; r < B; r++) {
      if (a[r]) {
         I32(steps)[r] = segment;
         F32(q_halt)[r] = F32(q_halt_logits)[r];
         F32(q_continue)[r] = F32(q_continue_logits)[r];
         hrm_cpu_backend.argmax_forward(I32(predictions) + r * S, F32(logits) + r * S * V, S, V);
         const float bar = halt_q == 2 ? 0.0f : F32(q_continue_logits)[r];
         if (halt_q && F32(q_halt_logits)[r] > bar) a[r] = 0;
      }
      left += a[r] != 0;
   }
   *n_active = left;
   return HRM_OK;
}

int hrm_argmax_rows(hrm_tensor *pred, const hrm_tensor *x) {
   HRM_CHECK(pred && x && pred->dtype == HRM_DTYPE_I32 && x->dtype == HRM_DTYPE_F32 &&
             x->ndim >= 1, HRM_ERR_DTYPE, "argmax_rows: pred must be i32 and x f32");
   const int64_t V = x->shape[x->ndim - 1], N = x->numel / V;
   HRM_CHECK(pred->numel == N, HRM_ERR_SHAPE, "argmax_rows: pred has %lld elements, x %lld rows",
             (long long)pred->numel, (long long)N);
   hrm_cpu_backend.argmax_forward(pred->data, x->data, N, (int)V);
   return HRM_OK;
}

int hrm_ema_update(hrm_tensor *ema, const hrm_tensor *x, double decay) {
   HRM_CHECK(ema && x && ema->dtype == HRM_DTYPE_F32 && x->dtype == HRM_DTYPE_F32 &&
             ema->numel == x->numel, HRM_ERR_SHAPE,
             "ema_update: ema and x must be f32 tensors of equal size");
   const double e = 1 - decay;
   float *d = ema->data;
   const float *s = x->data;
   for (int64_t j = 0; j < x->numel; j++) d[j] = (float)(decay * d[j] + e * s[j]);
   return HRM_OK;
}
