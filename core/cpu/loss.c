/* loss.c — the loss head's per-element pieces: stablemax and softmax cross-entropy, BCE with
 * logits, argmax.
 *
 * Stablemax (the reference default) runs in float64: s(x) = 1/(1 − x + 1e-30) for x < 0 and
 * x + 1 otherwise, log_stablemax = log(s(x_i) / Σ s(x_j)). Ignored labels (−100) give a zero
 * loss and a zero gradient row. Reductions (per-sequence means, batch sums) live in act.c.
 */
#include <math.h>

#include "ops.h"

static inline double stab_s(double x) { return x < 0.0 ? 1.0 / (1.0 - x + 1e-30) : x + 1.0; }

static inline double stab_ds(double x) {
   if (x < 0.0) {
      const double r = 1.0 / (1.0 - x + 1e-30);
      return r * r;
   }
   return 1.0;
}

void hrm_cpu_stablemax_ce_forward(double *losses, const float *logits, const int32_t *labels,
                                  int64_t N, int V) {
#pragma omp parallel for schedule(static) if (N * V >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const int32_t y = labels[n];
      if (y == HRM_IGNORE_LABEL) {
         losses[n] = 0.0;
         continue;
      }
      const float *x = logits + n * V;  // (V)
      double sum = 0.0;
      for (int j = 0; j < V; j++) sum += stab_s(x[j]);
      losses[n] = -log(stab_s(x[y]) / sum);
   }
}

void hrm_cpu_stablemax_ce_backward(float *dlogits, const double *dloss, const float *logits,
                                   const int32_t *labels, int64_t N, int V) {
#pragma omp parallel for schedule(static) if (N * V >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const int32_t y = labels[n];
      float *dx = dlogits + n * V;  // (V)
      if (y == HRM_IGNORE_LABEL) {
         for (int j = 0; j < V; j++) dx[j] = 0.0f;
         continue;
      }
      const float *x = logits + n * V;
      double sum = 0.0;
      for (int j = 0; j < V; j++) sum += stab_s(x[j]);
      const double w = dloss[n];
      for (int j = 0; j < V; j++) {
         double g = stab_ds(x[j]) / sum;
         if (j == y) g -= stab_ds(x[j]) / stab_s(x[j]);
         dx[j] = (float)(w * g);
      }
   }
}

void hrm_cpu_softmax_ce_forward(double *losses, const float *logits, const int32_t *labels,
                                int64_t N, int V) {
#pragma omp parallel for schedule(static) if (N * V >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const int32_t y = labels[n];
      if (y == HRM_IGNORE_LABEL) {
         losses[n] = 0.0;
         continue;
      }
      const float *x = logits + n * V;
      double mx = x[0], sum = 0.0;
      for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
      for (int j = 0; j < V; j++) sum += exp((double)x[j] - mx);
      losses[n] = log(sum) + mx - (double)x[y];
   }
}

void hrm_cpu_softmax_ce_backward(float *dlogits, const double *dloss, const float *logits,
                                 const int32_t *labels, int64_t N, int V) {
#pragma omp parallel for schedule(static) if (N * V >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const int32_t y = labels[n];
      float *dx = dlogits + n * V;
      if (y == HRM_IGNORE_LABEL) {
         for (int j = 0; j < V; j++) dx[j] = 0.0f;
         continue;
      }
      const float *x = logits + n * V;
      double mx = x[0], sum = 0.0;
      for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
      for (int j = 0; j < V; j++) sum += exp((double)x[j] - mx);
      const double w = dloss[n];
      for (int j = 0; j < V; j++) {
         double p = exp((double)x[j] - mx) / sum;
         dx[j] = (float)(w * (p - (j == y ? 1.0 : 0.0)));
      }
   }
}

void hrm_cpu_bce_logits_forward(double *losses, const float *logits, const float *targets,
                                int64_t N) {
   for (int64_t n = 0; n < N; n++) {
      const double x = logits[n], y = targets[n];
      losses[n] = (x > 0.0 ? x : 0.0) - x * y + log1p(exp(-fabs(x)));
   }
}

void hrm_cpu_bce_logits_backward(float *dlogits, const double *dloss, const float *logits,
                                 const float *targets, int64_t N) {
   for (int64_t n = 0; n < N; n++) {
      const double x = logits[n];
      const double sig = x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
      dlogits[n] = (float)(dloss[n] * (sig - (double)targets[n]));
   }
}

void hrm_cpu_argmax_forward(int32_t *pred, const float *logits, int64_t N, int V) {
#pragma omp parallel for schedule(static) if (N * V >= HRM_OMP_MIN_WORK)
   for (int64_t n = 0; n < N; n++) {
      const float *x = logits + n * V;
      int best = 0;
      for (int j = 1; j < V; j++)
         if (x[j] > x[best]) best = j;
      pred[n] = best;
   }
}
