/* act.c — the CPU table's ACT and loss-head entries (HRM_SPEC §2, §3): row lists, the carry
 * reset, halting with its exploration draws, the target-Q, the loss head's reductions and
 * gradient packing, the inference bookkeeping and the EMA.
 *
 * Loops run in row order so that every sum is the reference's, bit for bit, at any thread
 * count; core/act.c validates the arguments and orders these calls.
 */
#include <math.h>
#include <string.h>

#include "../counter_rng.h"
#include "../hrm.h"
#include "fastmath.h"
#include "ops.h"

static int32_t row_at(const int32_t *rows, int32_t i) { return rows ? rows[i] : i; }

void hrm_cpu_list_rows(int32_t *rows, int32_t *count, const uint8_t *active, int32_t B) {
   int32_t k = 0;
   for (int32_t r = 0; r < B; r++)
      if (!active || active[r]) rows[k++] = r;
   *count = k;
}

void hrm_cpu_reset_state(float *state, const float *init, const uint8_t *halted,
                         const int32_t *rows, int32_t n, int64_t T, int64_t D) {
   for (int32_t i = 0; i < n; i++) {
      const int32_t r = row_at(rows, i);
      if (!halted[r]) continue;
      float *z = state + (int64_t)r * T * D;
      for (int64_t t = 0; t < T; t++) memcpy(z + t * D, init, sizeof(float) * (size_t)D);
   }
}

void hrm_cpu_reset_fields(int32_t *steps, int32_t *inputs, int32_t *labels, int32_t *puzzle_ids,
                          const uint8_t *halted, const int32_t *rows, int32_t n, int32_t S,
                          const int32_t *batch_inputs, const int32_t *batch_labels,
                          const int32_t *batch_puzzle_ids) {
   for (int32_t i = 0; i < n; i++) {
      const int32_t r = row_at(rows, i);
      if (!halted[r]) continue;
      steps[r] = 0;
      memcpy(inputs + (int64_t)r * S, batch_inputs + (int64_t)r * S, sizeof(int32_t) * (size_t)S);
      int32_t *lab = labels + (int64_t)r * S;
      if (batch_labels) memcpy(lab, batch_labels + (int64_t)r * S, sizeof(int32_t) * (size_t)S);
      else for (int32_t s = 0; s < S; s++) lab[s] = HRM_IGNORE_LABEL;
      puzzle_ids[r] = batch_puzzle_ids ? batch_puzzle_ids[r] : 0;
   }
}

void hrm_cpu_act_halt(int32_t *new_steps, uint8_t *new_halted, const int32_t *steps,
                      const int32_t *rows, int32_t n, const float *q, int32_t max_steps,
                      double exploration_prob, int32_t explore, int32_t rule, uint64_t seed,
                      uint64_t step, int64_t row_offset) {
   for (int32_t i = 0; i < n; i++) {
      const int32_t s = steps[row_at(rows, i)] + 1;
      int h = s >= max_steps;
      if (explore) {
         h = h || (q[2 * i] > (rule == HRM_HALT_POSITIVE ? 0.0f : q[2 * i + 1]));
         double u[2];
         hrm_rng_row_uniforms(u, seed, step, (uint64_t)(row_offset + row_at(rows, i)));
         const int k = 2 + (int)floor(u[1] * (max_steps - 1));
         const int min_halt = u[0] < exploration_prob ? k : 0;
         h = h && s >= min_halt;
      }
      new_steps[i] = s;
      new_halted[i] = (uint8_t)h;
   }
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + hrm_expf(-x)); }

void hrm_cpu_target_q(float *target, const float *q_next, const int32_t *new_steps, int32_t n,
                      int32_t max_steps) {
   for (int32_t i = 0; i < n; i++) {
      const float nh = q_next[2 * i], nc = q_next[2 * i + 1];
      target[i] = sigmoidf(new_steps[i] >= max_steps ? nh : (nh > nc ? nh : nc));
   }
}

void hrm_cpu_loss_head_forward(double *metrics, double *tok_w, float *q_split, double *row_bce,
                               const double *tok_loss, const int32_t *pred,
                               const int32_t *labels, const float *q, const int32_t *new_steps,
                               const uint8_t *new_halted, const float *target, int32_t n,
                               int32_t S, double global_batch) {
   float *qh = q_split, *qc = q_split + n, *seq_ok = q_split + 2 * n;
   double lm = 0.0, qhl = 0.0, qcl = 0.0, acc = 0.0, exact = 0.0, qacc = 0.0, nsteps = 0.0;
   double count = 0.0;
   for (int32_t i = 0; i < n; i++) {
      qh[i] = q[2 * i];
      qc[i] = q[2 * i + 1];
      int cnt = 0, ok = 0;
      double row = 0.0;
      for (int32_t s = 0; s < S; s++) {
         const int64_t k = (int64_t)i * S + s;
         if (labels[k] == HRM_IGNORE_LABEL) continue;
         cnt++;
         ok += pred[k] == labels[k];
         row += tok_loss[k];
      }
      const double div = cnt > 0 ? cnt : 1;
      lm += row / div;
      for (int32_t s = 0; s < S; s++) tok_w[(int64_t)i * S + s] = 1.0 / (div * global_batch);
      const int exact_row = ok == cnt;
      seq_ok[i] = (float)exact_row;
      if (new_halted[i] && cnt > 0) {
         count += 1.0;
         acc += ok / div;
         exact += exact_row;
         qacc += (qh[i] >= 0.0f) == exact_row;
         nsteps += new_steps[i];
      }
   }
   hrm_cpu_bce_logits_forward(row_bce, qh, seq_ok, n);
   for (int32_t i = 0; i < n; i++) qhl += row_bce[i];
   if (target) {
      hrm_cpu_bce_logits_forward(row_bce, qc, target, n);
      for (int32_t i = 0; i < n; i++) qcl += row_bce[i];
   }
   const double out[9] = {lm + 0.5 * (qhl + qcl), lm, qhl, qcl, acc, exact, qacc, nsteps, count};
   memcpy(metrics, out, sizeof out);
}

void hrm_cpu_loss_head_backward(float *dq, float *dq_split, double *row_w, const float *q_split,
                                const float *target, int32_t n, double global_batch) {
   for (int32_t i = 0; i < n; i++) row_w[i] = 0.5 / global_batch;
   hrm_cpu_bce_logits_backward(dq_split, row_w, q_split, q_split + 2 * n, n);
   if (target) hrm_cpu_bce_logits_backward(dq_split + n, row_w, q_split + n, target, n);
   else memset(dq_split + n, 0, sizeof(float) * (size_t)n);
   for (int32_t i = 0; i < n; i++) {
      dq[2 * i] = dq_split[i];
      dq[2 * i + 1] = dq_split[n + i];
   }
}

void hrm_cpu_split_q_rows(float *q_halt, float *q_continue, const float *q, const int32_t *rows,
                          int32_t n) {
   for (int32_t i = 0; i < n; i++) {
      const int32_t r = row_at(rows, i);
      if (q_halt) q_halt[r] = q[2 * i];
      if (q_continue) q_continue[r] = q[2 * i + 1];
   }
}

void hrm_cpu_solve_update(int32_t *count, int32_t *predictions, int32_t *steps, float *q_halt,
                          float *q_continue, uint8_t *active, const float *logits,
                          const float *q_halt_logits, const float *q_continue_logits, int64_t B,
                          int32_t S, int32_t V, int32_t segment, int32_t halt_q) {
   int32_t left = 0;
   for (int64_t r = 0; r < B; r++) {
      if (active[r]) {
         steps[r] = segment;
         q_halt[r] = q_halt_logits[r];
         q_continue[r] = q_continue_logits[r];
         hrm_cpu_argmax_forward(predictions + r * S, logits + r * S * V, S, V);
         const float bar = halt_q == 2 ? 0.0f : q_continue_logits[r];
         if (halt_q && q_halt_logits[r] > bar) active[r] = 0;
      }
      left += active[r] != 0;
   }
   *count = left;
}

void hrm_cpu_ema_update(float *ema, const float *x, int64_t n, double decay) {
   const double e = 1 - decay;
   for (int64_t j = 0; j < n; j++) ema[j] = (float)(decay * ema[j] + e * x[j]);
}
