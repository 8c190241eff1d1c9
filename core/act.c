/* act.c — the ACT wrapper's batch ops (spec §2, §3): batch checks, carry reset, row gathers,
 * halting with exploration, the target-Q, the loss head with its gradients, the commit and the
 * inference bookkeeping; plus argmax and the EMA update.
 *
 * These are the reference's ACTLossHead and HierarchicalReasoningModel_ACTV1 outer loop as ops
 * over whole batches, shared by every recurrent model file. "Rows" are the carry rows a segment
 * computes (all in training; the active ones at inference), listed in a (B) i32 tensor.
 * Each op validates its tensors and runs on the backend table of their device; the loss head's
 * per-token work lives in a grow-only buffer of this thread per device.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "error.h"
#include "nn.h"

#define I32(t) ((int32_t *)(t)->data)
#define F32(t) ((float *)(t)->data)

static int64_t row_len(const hrm_tensor *t) { return t->numel / (t->ndim ? t->shape[0] : 1); }
static const int32_t *rows_ptr(const hrm_tensor *rows) { return rows ? I32(rows) : NULL; }

/* The table of the device that tensors ts[0..n) share (NULL entries skipped), or NULL with the
 * error set. TABLE_OF(fn, t1, t2, ...) lists them in argument order. */
static const hrm_backend *table_of(const char *fn, int n, const hrm_tensor *const *ts) {
   const int32_t device = ts[0]->device;
   for (int i = 1; i < n; i++)
      if (ts[i] && ts[i]->device != device) {
         HRM_FAIL(HRM_ERR_DEVICE, "%s: its tensors must share one device (tensor %d is on device "
                  "%d, the first on %d)", fn, i + 1, ts[i]->device, device);
         return NULL;
      }
   const hrm_backend *be = hrm_backend_for(device);
   if (!be) HRM_FAIL(HRM_ERR_DEVICE, "%s: no backend serves device %d", fn, device);
   return be;
}
#define TABLE_OF(fn, ...)                                                                     \
   table_of(fn, (int)(sizeof((const hrm_tensor *[]){__VA_ARGS__}) / sizeof(hrm_tensor *)),   \
            (const hrm_tensor *[]){__VA_ARGS__})

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

/* Per-device work of the ops: the loss head's per-token and per-row arrays, the metrics, a
 * row count and, off the CPU, the batch's staged copy. Nothing is held between calls, so growing
 * replaces the buffers. */
typedef struct act_work {
   const hrm_backend *be;     // the table that allocated the buffers
   size_t cap, rcap, scap;    // rows · S, rows and batch-token capacities
   double *tok_loss, *tok_w;  // (n, S)
   int32_t *pred;             // (n, S)
   double *row_w;             // (2n): row weights, then per-row BCE
   float *q_split;            // (5n): q_halt, q_continue, exact, then dq_halt, dq_continue
   double *metrics;           // (9) + one int32 count after it
   int32_t *batch;            // staged batch: inputs (B, S), labels (B, S), puzzle ids (B)
} act_work;

static _Thread_local act_work works[2];

static void work_release(act_work *w) {
   if (!w->be) return;
   void *bufs[] = {w->tok_loss, w->tok_w, w->pred, w->row_w, w->q_split, w->metrics, w->batch};
   for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) w->be->release(bufs[i]);
   memset(w, 0, sizeof *w);
}

/* Grows a buffer to `bytes` (the old contents are dropped). */
static int regrow(const hrm_backend *be, void **buf, size_t bytes) {
   be->release(*buf);
   *buf = NULL;
   return be->alloc(buf, bytes);
}

static act_work *work_for(const hrm_backend *be, int32_t device, size_t tokens, size_t rows,
                          size_t batch_ints) {
   act_work *w = &works[device == HRM_DEVICE_CPU ? 0 : 1];
   if (w->be != be) work_release(w);
   w->be = be;
   if (!w->metrics && be->alloc((void **)&w->metrics, sizeof(double) * 10) != HRM_OK) return NULL;
   if (w->cap < tokens) {
      w->cap = 0;
      if (regrow(be, (void **)&w->tok_loss, sizeof(double) * tokens) != HRM_OK ||
          regrow(be, (void **)&w->tok_w, sizeof(double) * tokens) != HRM_OK ||
          regrow(be, (void **)&w->pred, sizeof(int32_t) * tokens) != HRM_OK)
         return NULL;
      w->cap = tokens;
   }
   if (w->rcap < rows) {
      w->rcap = 0;
      if (regrow(be, (void **)&w->row_w, sizeof(double) * rows * 2) != HRM_OK ||
          regrow(be, (void **)&w->q_split, sizeof(float) * rows * 5) != HRM_OK)
         return NULL;
      w->rcap = rows;
   }
   if (w->scap < batch_ints) {
      w->scap = 0;
      if (regrow(be, (void **)&w->batch, sizeof(int32_t) * batch_ints) != HRM_OK) return NULL;
      w->scap = batch_ints;
   }
   return w;
}

/* The count a list_rows or solve_update entry left after the metrics. */
static int32_t *work_count(act_work *w) { return (int32_t *)(w->metrics + 9); }

int hrm_act_rows(int32_t *n, hrm_tensor *rows, const hrm_tensor *active) {
   HRM_CHECK(n && rows && rows->dtype == HRM_DTYPE_I32, HRM_ERR_ARG,
             "act_rows: n or an i32 rows tensor is missing");
   HRM_CHECK(!active || (active->dtype == HRM_DTYPE_U8 && active->numel == rows->numel &&
                         active->device == rows->device),
             HRM_ERR_SHAPE, "act_rows: active must be u8 of the batch size %lld on its device",
             (long long)rows->numel);
   const hrm_backend *be = TABLE_OF("act_rows", rows, active);
   act_work *w = be ? work_for(be, rows->device, 0, 0, 0) : NULL;
   if (!w) return be ? HRM_ERR_MEMORY : HRM_ERR_DEVICE;
   be->list_rows(I32(rows), work_count(w), active ? active->data : NULL, (int32_t)rows->numel);
   return be->download(n, work_count(w), sizeof *n);
}

int hrm_act_reset(const hrm_act_carry *c, const hrm_batch *batch, const hrm_tensor *rows,
                  int32_t n) {
   HRM_CHECK(c && batch, HRM_ERR_ARG, "act_reset: carry or batch is NULL");
   const hrm_backend *be = TABLE_OF("act_reset", c->steps, c->halted, c->inputs, c->labels,
                                     c->puzzle_ids, rows);
   if (!be) return HRM_ERR_DEVICE;
   for (int32_t k = 0; k < c->nstates; k++)
      HRM_CHECK(c->states[k]->device == c->steps->device && c->inits[k]->device == c->steps->device,
                HRM_ERR_DEVICE, "act_reset: carry state %d or its init is not on the carry's "
                "device %d", k + 1, c->steps->device);
   const int32_t S = (int32_t)row_len(c->inputs), B = (int32_t)c->steps->numel;
   const int32_t *inputs = batch->inputs, *labels = batch->labels, *pids = batch->puzzle_ids;
   if (c->steps->device != HRM_DEVICE_CPU) { /* the batch is host memory: stage it */
      const size_t BS = (size_t)B * (size_t)S;
      act_work *w = work_for(be, c->steps->device, 0, 0, 2 * BS + (size_t)B);
      if (!w) return HRM_ERR_MEMORY;
      HRM_TRY(be->upload(w->batch, inputs, sizeof(int32_t) * BS));
      if (labels) HRM_TRY(be->upload(w->batch + BS, labels, sizeof(int32_t) * BS));
      if (pids) HRM_TRY(be->upload(w->batch + 2 * BS, pids, sizeof(int32_t) * (size_t)B));
      inputs = w->batch;
      labels = labels ? w->batch + BS : NULL;
      pids = pids ? w->batch + 2 * BS : NULL;
   }
   const uint8_t *halted = c->halted->data;
   for (int32_t k = 0; k < c->nstates; k++)
      be->reset_state(F32(c->states[k]), F32(c->inits[k]), halted, rows_ptr(rows), n,
                      c->states[k]->shape[1], c->states[k]->shape[2]);
   be->reset_fields(I32(c->steps), I32(c->inputs), I32(c->labels), I32(c->puzzle_ids), halted,
                    rows_ptr(rows), n, S, inputs, labels, pids);
   return HRM_OK;
}

static int check_rows(const hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows,
                      int32_t n, int64_t indexed, const char *fn) {
   HRM_CHECK(dst && src, HRM_ERR_ARG, "%s: dst or src is NULL", fn);
   HRM_CHECK(dst->dtype == src->dtype && row_len(dst) == row_len(src), HRM_ERR_SHAPE,
             "%s: dst and src rows differ (%s of %lld, %s of %lld)", fn, hrm_dtype_name(dst->dtype),
             (long long)row_len(dst), hrm_dtype_name(src->dtype), (long long)row_len(src));
   HRM_CHECK(dst->device == src->device && (!rows || rows->device == src->device),
             HRM_ERR_DEVICE, "%s: dst, src and rows must be on one device", fn);
   HRM_CHECK(!rows || (rows->dtype == HRM_DTYPE_I32 && rows->numel >= n), HRM_ERR_ARG,
             "%s: rows must be i32 with at least %d entries", fn, n);
   if (rows && rows->device == HRM_DEVICE_CPU) /* device row lists come from act_rows */
      for (int32_t i = 0; i < n; i++)
         HRM_CHECK(I32(rows)[i] >= 0 && I32(rows)[i] < indexed, HRM_ERR_RANGE,
                   "%s: row %d of %lld", fn, I32(rows)[i], (long long)indexed);
   return HRM_OK;
}

/* dst[i] = src[rows[i]] (gather) or dst[rows[i]] = src[i] (scatter), i < n. */
static int rows_copy(hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows, int32_t n,
                     int scatter) {
   const char *fn = scatter ? "rows_scatter" : "rows_gather";
   HRM_CHECK(dst && src, HRM_ERR_ARG, "%s: dst or src is NULL", fn);
   const int64_t len = row_len(src);
   const int64_t srows = src->numel / len, drows = dst->numel / len;
   const int64_t dense = scatter ? srows : drows, indexed = scatter ? drows : srows;
   HRM_TRY(check_rows(dst, src, rows, n, indexed, fn));
   HRM_CHECK(n <= dense, HRM_ERR_SHAPE, "%s: %d rows, the tensor has %lld", fn, n,
             (long long)dense);
   HRM_CHECK(rows || n <= indexed, HRM_ERR_RANGE, "%s: row %d of %lld", fn, n - 1,
             (long long)indexed);
   const hrm_backend *be = TABLE_OF(fn, src);
   if (!be) return HRM_ERR_DEVICE;
   const size_t bytes = (size_t)len * hrm_dtype_size(src->dtype);
   if (scatter) be->scatter_rows(dst->data, src->data, rows_ptr(rows), n, bytes);
   else be->gather_rows(dst->data, src->data, rows_ptr(rows), n, bytes);
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
                 double exploration_prob, int32_t train, int32_t rule, hrm_rng *rng,
                 int64_t row_offset) {
   HRM_CHECK(new_steps && new_halted && steps && q && rng, HRM_ERR_ARG,
             "act_halt: NULL argument");
   HRM_CHECK(max_steps >= 1, HRM_ERR_ARG, "act_halt: max_steps = %d must be >= 1", max_steps);
   HRM_CHECK(rule == HRM_HALT_COMPARE || rule == HRM_HALT_POSITIVE, HRM_ERR_ARG,
             "act_halt: rule = %d is not HRM_HALT_COMPARE (0) or HRM_HALT_POSITIVE (1)", rule);
   const hrm_backend *be = TABLE_OF("act_halt", q, new_steps, new_halted, steps, rows);
   if (!be) return HRM_ERR_DEVICE;
   const int explore = train && max_steps > 1;
   HRM_CHECK(row_offset >= 0, HRM_ERR_ARG, "act_halt: row_offset = %lld must be >= 0",
             (long long)row_offset);
   be->act_halt(I32(new_steps), new_halted->data, I32(steps), rows_ptr(rows), n, F32(q),
                max_steps, exploration_prob, explore, rule, rng->seed, rng->counter, row_offset);
   if (explore) rng->counter++; /* one step of the per-row streams */
   return HRM_OK;
}

int hrm_act_target_q(hrm_tensor *target, const hrm_tensor *q_next, const hrm_tensor *new_steps,
                     int32_t n, int32_t max_steps) {
   HRM_CHECK(target && q_next && new_steps, HRM_ERR_ARG, "act_target_q: NULL argument");
   const hrm_backend *be = TABLE_OF("act_target_q", q_next, target, new_steps);
   if (!be) return HRM_ERR_DEVICE;
   be->target_q(F32(target), F32(q_next), I32(new_steps), n, max_steps);
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
   const hrm_backend *be = TABLE_OF("act_loss", logits, q, labels, new_steps, new_halted,
                                            target, dlogits, dq);
   if (!be) return HRM_ERR_DEVICE;
   const int32_t S = (int32_t)row_len(labels), V = (int32_t)(logits->numel / logits->shape[0] / S);
   HRM_CHECK(logits->numel >= (int64_t)n * S * V && labels->numel >= (int64_t)n * S, HRM_ERR_SHAPE,
             "act_loss: logits or labels hold fewer than %d rows", n);
   act_work *w = work_for(be, logits->device, (size_t)n * (size_t)S, (size_t)n, 0);
   if (!w) return HRM_ERR_MEMORY;
   const int64_t NS = (int64_t)n * S;
   const float *lg = F32(logits);
   const int32_t *lab = I32(labels);
   const float *tq = target ? F32(target) : NULL;
   if (loss_kind == HRM_LOSS_STABLEMAX) be->stablemax_ce_forward(w->tok_loss, lg, lab, NS, V);
   else be->softmax_ce_forward(w->tok_loss, lg, lab, NS, V);
   be->argmax_forward(w->pred, lg, NS, V);
   be->loss_head_forward(w->metrics, w->tok_w, w->q_split, w->row_w + n, w->tok_loss, w->pred,
                         lab, F32(q), I32(new_steps), new_halted->data, tq, n, S, global_batch);
   HRM_TRY(be->download(out, w->metrics, sizeof *out));
   HRM_CHECK(isfinite(out->loss), HRM_ERR_NUMERIC,
             "step: the loss is not finite (lm %g, q_halt %g, q_continue %g)", out->lm_loss,
             out->q_halt_loss, out->q_continue_loss);
   if (!dlogits || !dq) return HRM_OK;
   /* the gradients of total / global_batch */
   HRM_CHECK(dlogits->numel >= NS * V && dq->numel >= 2 * (int64_t)n, HRM_ERR_SHAPE,
             "act_loss: dlogits or dq hold fewer than %d rows", n);
   if (loss_kind == HRM_LOSS_STABLEMAX)
      be->stablemax_ce_backward(F32(dlogits), w->tok_w, lg, lab, NS, V);
   else be->softmax_ce_backward(F32(dlogits), w->tok_w, lg, lab, NS, V);
   be->loss_head_backward(F32(dq), w->q_split + 3 * n, w->row_w, w->q_split, tq, n,
                          global_batch);
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
   if (q && (q_halt_out || q_continue_out)) {
      const hrm_backend *be = TABLE_OF("act_commit", q, q_halt_out, q_continue_out);
      if (!be) return HRM_ERR_DEVICE;
      be->split_q_rows(q_halt_out ? F32(q_halt_out) : NULL,
                       q_continue_out ? F32(q_continue_out) : NULL, F32(q), rows_ptr(rows), n);
   }
   return HRM_OK;
}

int hrm_act_solve_update(int32_t *n_active, hrm_tensor *predictions, hrm_tensor *steps,
                         hrm_tensor *q_halt, hrm_tensor *q_continue, hrm_tensor *active,
                         const hrm_tensor *logits, const hrm_tensor *q_halt_logits,
                         const hrm_tensor *q_continue_logits, int32_t segment, int32_t halt_q) {
   HRM_CHECK(n_active && predictions && steps && q_halt && q_continue && active && logits &&
             q_halt_logits && q_continue_logits, HRM_ERR_ARG, "solve_update: NULL argument");
   const hrm_backend *be = TABLE_OF("solve_update", logits, predictions, steps, q_halt,
                                      q_continue, active, q_halt_logits, q_continue_logits);
   act_work *w = be ? work_for(be, logits->device, 0, 0, 0) : NULL;
   if (!w) return be ? HRM_ERR_MEMORY : HRM_ERR_DEVICE;
   const int64_t B = active->numel, S = row_len(predictions);
   const int32_t V = (int32_t)(logits->numel / (B * S));
   be->solve_update(work_count(w), I32(predictions), I32(steps), F32(q_halt), F32(q_continue),
                    active->data, F32(logits), F32(q_halt_logits), F32(q_continue_logits), B,
                    (int32_t)S, V, segment, halt_q);
   return be->download(n_active, work_count(w), sizeof *n_active);
}

int hrm_argmax_rows(hrm_tensor *pred, const hrm_tensor *x) {
   HRM_CHECK(pred && x && pred->dtype == HRM_DTYPE_I32 && x->dtype == HRM_DTYPE_F32 &&
             x->ndim >= 1, HRM_ERR_DTYPE, "argmax_rows: pred must be i32 and x f32");
   const int64_t V = x->shape[x->ndim - 1], N = x->numel / V;
   HRM_CHECK(pred->numel == N, HRM_ERR_SHAPE, "argmax_rows: pred has %lld elements, x %lld rows",
             (long long)pred->numel, (long long)N);
   const hrm_backend *be = TABLE_OF("argmax_rows", x, pred);
   if (!be) return HRM_ERR_DEVICE;
   be->argmax_forward(pred->data, x->data, N, (int)V);
   return HRM_OK;
}

int hrm_ema_update(hrm_tensor *ema, const hrm_tensor *x, double decay) {
   HRM_CHECK(ema && x && ema->dtype == HRM_DTYPE_F32 && x->dtype == HRM_DTYPE_F32 &&
             ema->numel == x->numel, HRM_ERR_SHAPE,
             "ema_update: ema and x must be f32 tensors of equal size");
   const hrm_backend *be = TABLE_OF("ema_update", x, ema);
   if (!be) return HRM_ERR_DEVICE;
   be->ema_update(ema->data, x->data, x->numel, decay);
   return HRM_OK;
}
