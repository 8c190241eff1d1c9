/* rng.c — the one seeded generator of hrm: Philox-4x32-10, counter based.
 *
 * State is (seed, counter): every draw encrypts the counter under the seed (counter_rng.h) and
 * advances it, so saving the two numbers saves the stream. Used for initialisation, sampling and
 * augmentation; exploration keys its per-row draws on (seed, counter) and advances the counter
 * once a step. Also the reference's truncated-normal initialiser (spec §1.1).
 */
#include <math.h>

#include "counter_rng.h"
#include "error.h"

void hrm_rng_init(hrm_rng *rng, uint64_t seed) {
   rng->seed = seed;
   rng->counter = 0;
}

uint64_t hrm_rng_next_u64(hrm_rng *rng) {
   uint32_t c[4] = {(uint32_t)rng->counter, (uint32_t)(rng->counter >> 32), 0x68726d00u, 0};
   hrm_philox4x32(c, (uint32_t)rng->seed, (uint32_t)(rng->seed >> 32));
   rng->counter++;
   return ((uint64_t)c[0] << 32) | c[1];
}

double hrm_rng_uniform(hrm_rng *rng) {
   const uint64_t x = hrm_rng_next_u64(rng);
   return hrm_rng_unit((uint32_t)(x >> 32), (uint32_t)x);
}

/* Draw number `index` of the stream after `rng` without touching it: the fills below give
 * element i the draws (counter + 2i, counter + 2i + 1), so they run in parallel and produce
 * the same numbers for any thread count. */
static double uniform_at(const hrm_rng *rng, uint64_t index) {
   hrm_rng r = {rng->seed, rng->counter + index};
   return hrm_rng_uniform(&r);
}

int hrm_tensor_rand(hrm_tensor *t, hrm_rng *rng) {
   HRM_CHECK(t && rng, HRM_ERR_ARG, "rand: tensor or rng is NULL");
#pragma omp parallel for schedule(static) if (t->numel > 65536)
   for (int64_t i = 0; i < t->numel; i++) hrm_tensor_set(t, i, uniform_at(rng, 2 * (uint64_t)i));
   rng->counter += 2 * (uint64_t)t->numel;
   return HRM_OK;
}

int hrm_tensor_randn(hrm_tensor *t, hrm_rng *rng) {
   HRM_CHECK(t && rng, HRM_ERR_ARG, "randn: tensor or rng is NULL");
#pragma omp parallel for schedule(static) if (t->numel > 65536)
   for (int64_t i = 0; i < t->numel; i++) {
      double u1 = uniform_at(rng, 2 * (uint64_t)i), u2 = uniform_at(rng, 2 * (uint64_t)i + 1);
      hrm_tensor_set(t, i, sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2));
   }
   rng->counter += 2 * (uint64_t)t->numel;
   return HRM_OK;
}

/* Inverse error function: Giles' single-precision-style initial guess, then one Newton step
 * on erf in double precision. */
static double erfinv(double x) {
   if (x <= -1.0) return -INFINITY;
   if (x >= 1.0) return INFINITY;
   double w = -log((1.0 - x) * (1.0 + x)), p;
   if (w < 5.0) {
      w -= 2.5;
      p = 2.81022636e-08;
      p = 3.43273939e-07 + p * w;
      p = -3.5233877e-06 + p * w;
      p = -4.39150654e-06 + p * w;
      p = 0.00021858087 + p * w;
      p = -0.00125372503 + p * w;
      p = -0.00417768164 + p * w;
      p = 0.246640727 + p * w;
      p = 1.50140941 + p * w;
   } else {
      w = sqrt(w) - 3.0;
      p = -0.000200214257;
      p = 0.000100950558 + p * w;
      p = 0.00134934322 + p * w;
      p = -0.00367342844 + p * w;
      p = 0.00573950773 + p * w;
      p = -0.0076224613 + p * w;
      p = 0.00943887047 + p * w;
      p = 1.00167406 + p * w;
      p = 2.83297682 + p * w;
   }
   double y = p * x;
   y -= (erf(y) - x) / (1.1283791670955126 * exp(-y * y)); /* one Newton step: ~1e-12 */
   return y;
}

int hrm_tensor_trunc_normal(hrm_tensor *t, hrm_rng *rng, double std) {
   HRM_CHECK(t && rng, HRM_ERR_ARG, "trunc_normal: tensor or rng is NULL");
   HRM_CHECK(std >= 0 && isfinite(std), HRM_ERR_ARG, "trunc_normal: std %g must be >= 0", std);
   if (std == 0.0) return hrm_tensor_fill(t, 0.0);
   const double lower = -2.0, upper = 2.0, sqrt2 = 1.4142135623730951;
   double a = erf(lower / sqrt2), b = erf(upper / sqrt2), z = (b - a) / 2.0;
   double c = 1.0 / sqrt(2.0 * 3.141592653589793);
   double pdf_u = c * exp(-0.5 * lower * lower), pdf_l = c * exp(-0.5 * upper * upper);
   double comp_std = std / sqrt(1.0 - (upper * pdf_u - lower * pdf_l) / z -
                                pow((pdf_u - pdf_l) / z, 2.0));
#pragma omp parallel for schedule(static) if (t->numel > 65536)
   for (int64_t i = 0; i < t->numel; i++) {
      double u = a + (b - a) * uniform_at(rng, 2 * (uint64_t)i);
      double x = erfinv(u) * sqrt2 * comp_std;
      if (x < lower * comp_std) x = lower * comp_std;
      if (x > upper * comp_std) x = upper * comp_std;
      hrm_tensor_set(t, i, x);
   }
   rng->counter += 2 * (uint64_t)t->numel;
   return HRM_OK;
}
