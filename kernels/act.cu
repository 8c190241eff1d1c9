/* act.cu — the CUDA table's ACT and loss-head entries: row lists, the carry reset, halting with
 * the counter generator's exploration draws, the target-Q, the loss head's reductions and
 * gradient packing, split Q values, the inference bookkeeping and the EMA.
 *
 * Same contracts as core/cpu/act.c. The draws are bitwise those of the CPU (counter_rng.h is
 * shared); the reductions run in one block in a fixed order (deterministic, not the CPU's
 * order), and sigmoid / exp use the device's math.
 */
#include "common.cuh"
#include "counter_rng.h"

__device__ __forceinline__ int32_t row_at(const int32_t *rows, int32_t i) {
   return rows ? rows[i] : i;
}

#define GRID_STRIDE(k, n)                                                                   \
   for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < (n);                \
        k += (int64_t)gridDim.x * blockDim.x)

/* One thread: the compaction is a few thousand rows at most (inference only). */
static __global__ void list_rows_kernel1(int32_t *rows, int32_t *count, const uint8_t *active,
                                         int32_t B) {
   int32_t k = 0;
   for (int32_t r = 0; r < B; r++)
      if (!active || active[r]) rows[k++] = r;
   *count = k;
}

extern "C" void hrm_cuda_list_rows(int32_t *rows, int32_t *count, const uint8_t *active,
                                   int32_t B) {
   HRM_READY();
   list_rows_kernel1<<<1, 1, 0, hrm_cuda_stream()>>>(rows, count, active, B);
   HRM_LAUNCHED();
}

static __global__ void reset_state_kernel1(float *state, const float *init, const uint8_t *halted,
                                           const int32_t *rows, int32_t n, int64_t T, int64_t D) {
   GRID_STRIDE(k, (int64_t)n * T * D) {
      const int32_t r = row_at(rows, (int32_t)(k / (T * D)));
      if (halted[r]) state[(int64_t)r * T * D + k % (T * D)] = init[k % D];
   }
}

extern "C" void hrm_cuda_reset_state(float *state, const float *init, const uint8_t *halted,
                                     const int32_t *rows, int32_t n, int64_t T, int64_t D) {
   if (n <= 0) return;
   HRM_READY();
   reset_state_kernel1<<<hrm_blocks((int64_t)n * T * D, 256), 256, 0, hrm_cuda_stream()>>>(
      state, init, halted, rows, n, T, D);
   HRM_LAUNCHED();
}

static __global__ void reset_fields_kernel1(int32_t *steps, int32_t *inputs, int32_t *labels,
                                            int32_t *puzzle_ids, const uint8_t *halted,
                                            const int32_t *rows, int32_t n, int32_t S,
                                            const int32_t *batch_inputs,
                                            const int32_t *batch_labels,
                                            const int32_t *batch_puzzle_ids) {
   GRID_STRIDE(k, (int64_t)n * S) {
      const int32_t r = row_at(rows, (int32_t)(k / S));
      const int64_t s = k % S, at = (int64_t)r * S + s;
      if (!halted[r]) continue;
      inputs[at] = batch_inputs[at];
      labels[at] = batch_labels ? batch_labels[at] : HRM_IGNORE_LABEL;
      if (s == 0) {
         steps[r] = 0;
         puzzle_ids[r] = batch_puzzle_ids ? batch_puzzle_ids[r] : 0;
      }
   }
}

extern "C" void hrm_cuda_reset_fields(int32_t *steps, int32_t *inputs, int32_t *labels,
                                      int32_t *puzzle_ids, const uint8_t *halted,
                                      const int32_t *rows, int32_t n, int32_t S,
                                      const int32_t *batch_inputs, const int32_t *batch_labels,
                                      const int32_t *batch_puzzle_ids) {
   if (n <= 0 || S <= 0) return;
   HRM_READY();
   reset_fields_kernel1<<<hrm_blocks((int64_t)n * S, 256), 256, 0, hrm_cuda_stream()>>>(
      steps, inputs, labels, puzzle_ids, halted, rows, n, S, batch_inputs, batch_labels,
      batch_puzzle_ids);
   HRM_LAUNCHED();
}

static __global__ void act_halt_kernel1(int32_t *new_steps, uint8_t *new_halted,
                                        const int32_t *steps, const int32_t *rows, int32_t n,
                                        const float *q, int32_t max_steps,
                                        double exploration_prob, int32_t explore, int32_t rule,
                                        uint64_t seed, uint64_t step, int64_t row_offset) {
   GRID_STRIDE(i, n) {
      const int32_t r = row_at(rows, (int32_t)i);
      const int32_t s = steps[r] + 1;
      int h = s >= max_steps;
      if (explore) {
         h = h || (q[2 * i] > (rule == 1 ? 0.0f : q[2 * i + 1]));
         double u[2];
         hrm_rng_row_uniforms(u, seed, step, (uint64_t)(row_offset + r));
         const int k = 2 + (int)floor(u[1] * (max_steps - 1));
         const int min_halt = u[0] < exploration_prob ? k : 0;
         h = h && s >= min_halt;
      }
      new_steps[i] = s;
      new_halted[i] = (uint8_t)h;
   }
}

extern "C" void hrm_cuda_act_halt(int32_t *new_steps, uint8_t *new_halted, const int32_t *steps,
                                  const int32_t *rows, int32_t n, const float *q,
                                  int32_t max_steps, double exploration_prob, int32_t explore,
                                  int32_t rule, uint64_t seed, uint64_t step,
                                  int64_t row_offset) {
   if (n <= 0) return;
   HRM_READY();
   act_halt_kernel1<<<hrm_blocks(n, 128), 128, 0, hrm_cuda_stream()>>>(
      new_steps, new_halted, steps, rows, n, q, max_steps, exploration_prob, explore, rule, seed,
      step, row_offset);
   HRM_LAUNCHED();
}

static __global__ void target_q_kernel1(float *target, const float *q_next,
                                        const int32_t *new_steps, int32_t n, int32_t max_steps) {
   GRID_STRIDE(i, n) {
      const float nh = q_next[2 * i], nc = q_next[2 * i + 1];
      const float x = new_steps[i] >= max_steps ? nh : (nh > nc ? nh : nc);
      target[i] = 1.0f / (1.0f + expf(-x));
   }
}

extern "C" void hrm_cuda_target_q(float *target, const float *q_next, const int32_t *new_steps,
                                  int32_t n, int32_t max_steps) {
   if (n <= 0) return;
   HRM_READY();
   target_q_kernel1<<<hrm_blocks(n, 128), 128, 0, hrm_cuda_stream()>>>(target, q_next, new_steps,
                                                                       n, max_steps);
   HRM_LAUNCHED();
}

__device__ __forceinline__ double bce_logit(double x, double y) {
   return (x > 0.0 ? x : 0.0) - x * y + log1p(exp(-fabs(x)));
}

enum { LOSS_THREADS = 256, NSUMS = 8 };

/* One block: thread t takes rows t, t + 256, ...; per-thread sums are reduced in shared memory
 * in a fixed tree (lm, q_halt, q_continue, accuracy, exact, q_halt accuracy, steps, count). */
static __global__ void loss_head_forward_kernel1(double *metrics, double *tok_w, float *q_split,
                                                 const double *tok_loss, const int32_t *pred,
                                                 const int32_t *labels, const float *q,
                                                 const int32_t *new_steps,
                                                 const uint8_t *new_halted, const float *target,
                                                 int32_t n, int32_t S, double global_batch) {
   __shared__ double sums[NSUMS][LOSS_THREADS];
   double acc[NSUMS] = {0, 0, 0, 0, 0, 0, 0, 0};
   float *qh = q_split, *qc = q_split + n, *seq_ok = q_split + 2 * n;
   for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
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
      acc[0] += row / div;
      for (int32_t s = 0; s < S; s++) tok_w[(int64_t)i * S + s] = 1.0 / (div * global_batch);
      const int exact_row = ok == cnt;
      seq_ok[i] = (float)exact_row;
      acc[1] += bce_logit(qh[i], exact_row);
      if (target) acc[2] += bce_logit(qc[i], target[i]);
      if (new_halted[i] && cnt > 0) {
         acc[3] += ok / div;
         acc[4] += exact_row;
         acc[5] += (qh[i] >= 0.0f) == exact_row;
         acc[6] += new_steps[i];
         acc[7] += 1.0;
      }
   }
   for (int j = 0; j < NSUMS; j++) sums[j][threadIdx.x] = acc[j];
   __syncthreads();
   for (int stride = LOSS_THREADS / 2; stride > 0; stride >>= 1) {
      if (threadIdx.x < stride)
         for (int j = 0; j < NSUMS; j++) sums[j][threadIdx.x] += sums[j][threadIdx.x + stride];
      __syncthreads();
   }
   if (threadIdx.x == 0) {
      const double lm = sums[0][0], qhl = sums[1][0], qcl = sums[2][0];
      metrics[0] = lm + 0.5 * (qhl + qcl);
      metrics[1] = lm;
      metrics[2] = qhl;
      metrics[3] = qcl;
      for (int j = 3; j < NSUMS; j++) metrics[j + 1] = sums[j][0];
   }
}

extern "C" void hrm_cuda_loss_head_forward(double *metrics, double *tok_w, float *q_split,
                                           double *row_bce, const double *tok_loss,
                                           const int32_t *pred, const int32_t *labels,
                                           const float *q, const int32_t *new_steps,
                                           const uint8_t *new_halted, const float *target,
                                           int32_t n, int32_t S, double global_batch) {
   (void)row_bce; /* the BCE terms are summed in registers */
   HRM_READY();
   loss_head_forward_kernel1<<<1, LOSS_THREADS, 0, hrm_cuda_stream()>>>(
      metrics, tok_w, q_split, tok_loss, pred, labels, q, new_steps, new_halted, target, n, S,
      global_batch);
   HRM_LAUNCHED();
}

__device__ __forceinline__ float bce_grad(double w, double x, double y) {
   const double sig = x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
   return (float)(w * (sig - y));
}

static __global__ void loss_head_backward_kernel1(float *dq, const float *q_split,
                                                  const float *target, int32_t n,
                                                  double global_batch) {
   GRID_STRIDE(i, n) {
      const double w = 0.5 / global_batch;
      dq[2 * i] = bce_grad(w, q_split[i], q_split[2 * n + i]);
      dq[2 * i + 1] = target ? bce_grad(w, q_split[n + i], target[i]) : 0.0f;
   }
}

extern "C" void hrm_cuda_loss_head_backward(float *dq, float *dq_split, double *row_w,
                                            const float *q_split, const float *target,
                                            int32_t n, double global_batch) {
   (void)dq_split;
   (void)row_w; /* one pass writes dq directly */
   if (n <= 0) return;
   HRM_READY();
   loss_head_backward_kernel1<<<hrm_blocks(n, 128), 128, 0, hrm_cuda_stream()>>>(
      dq, q_split, target, n, global_batch);
   HRM_LAUNCHED();
}

static __global__ void split_q_rows_kernel1(float *q_halt, float *q_continue, const float *q,
                                            const int32_t *rows, int32_t n) {
   GRID_STRIDE(i, n) {
      const int32_t r = row_at(rows, (int32_t)i);
      if (q_halt) q_halt[r] = q[2 * i];
      if (q_continue) q_continue[r] = q[2 * i + 1];
   }
}

extern "C" void hrm_cuda_split_q_rows(float *q_halt, float *q_continue, const float *q,
                                      const int32_t *rows, int32_t n) {
   if (n <= 0) return;
   HRM_READY();
   split_q_rows_kernel1<<<hrm_blocks(n, 128), 128, 0, hrm_cuda_stream()>>>(q_halt, q_continue, q,
                                                                           rows, n);
   HRM_LAUNCHED();
}

/* Token argmax of the active rows (first maximum), one thread a token. */
static __global__ void solve_argmax_kernel1(int32_t *predictions, const uint8_t *active,
                                            const float *logits, int64_t B, int32_t S,
                                            int32_t V) {
   GRID_STRIDE(k, B * S) {
      if (!active[k / S]) continue;
      const float *x = logits + k * V;
      int best = 0;
      for (int j = 1; j < V; j++)
         if (x[j] > x[best]) best = j;
      predictions[k] = best;
   }
}

/* The per-row bookkeeping and the count of rows left, in row order (one thread). */
static __global__ void solve_rows_kernel1(int32_t *count, int32_t *steps, float *q_halt,
                                          float *q_continue, uint8_t *active,
                                          const float *q_halt_logits,
                                          const float *q_continue_logits, int64_t B,
                                          int32_t segment, int32_t halt_q) {
   int32_t left = 0;
   for (int64_t r = 0; r < B; r++) {
      if (active[r]) {
         steps[r] = segment;
         q_halt[r] = q_halt_logits[r];
         q_continue[r] = q_continue_logits[r];
         const float bar = halt_q == 2 ? 0.0f : q_continue_logits[r];
         if (halt_q && q_halt_logits[r] > bar) active[r] = 0;
      }
      left += active[r] != 0;
   }
   *count = left;
}

extern "C" void hrm_cuda_solve_update(int32_t *count, int32_t *predictions, int32_t *steps,
                                      float *q_halt, float *q_continue, uint8_t *active,
                                      const float *logits, const float *q_halt_logits,
                                      const float *q_continue_logits, int64_t B, int32_t S,
                                      int32_t V, int32_t segment, int32_t halt_q) {
   HRM_READY();
   if (B > 0 && S > 0) {
      solve_argmax_kernel1<<<hrm_blocks(B * S, 256), 256, 0, hrm_cuda_stream()>>>(
         predictions, active, logits, B, S, V);
      HRM_LAUNCHED();
   }
   solve_rows_kernel1<<<1, 1, 0, hrm_cuda_stream()>>>(count, steps, q_halt, q_continue, active,
                                                      q_halt_logits, q_continue_logits, B,
                                                      segment, halt_q);
   HRM_LAUNCHED();
}

static __global__ void ema_update_kernel1(float *ema, const float *x, int64_t n, double decay) {
   GRID_STRIDE(j, n) ema[j] = (float)(decay * ema[j] + (1 - decay) * x[j]);
}

extern "C" void hrm_cuda_ema_update(float *ema, const float *x, int64_t n, double decay) {
   if (n <= 0) return;
   HRM_READY();
   ema_update_kernel1<<<hrm_blocks(n, 256), 256, 0, hrm_cuda_stream()>>>(ema, x, n, decay);
   HRM_LAUNCHED();
}
