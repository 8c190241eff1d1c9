/* test_act_draws.c — exploration draws do not depend on how a batch is split.
 *
 * Halting with exploration probability 1 makes every row's outcome depend on its draw: a row
 * halts at step s only when s reaches its drawn minimum k in 2..max_steps (the Q rule says halt
 * everywhere). A batch of 8 rows is halted over several steps as one call of 8, as 4 + 4 and as
 * 2 + 6 rows (each part a carry of its own, passing the global index of its first row); every
 * row's new steps and halting must agree bit for bit, and the RNG must advance the same way.
 * The outcomes must also vary across rows and steps, and a part that passes the wrong row
 * offset must draw differently (so the comparison can fail). Then the draw function itself:
 * fixed numbers per (seed, step, row), in [0, 1).
 */
#include <string.h>

#include "check.h"
#include "counter_rng.h"

enum { B = 8, MAX_STEPS = 16, ROUNDS = 6 };

/* Halts rows [first, first + n) of the batch as a carry of their own, at global offset `offset`;
 * new halting (B) receives them at their batch positions. */
static void halt_part(uint8_t *halted_out, const int32_t *steps, int first, int n, int64_t offset,
                      hrm_rng *rng) {
   hrm_tensor *st, *q, *ns, *nh;
   const int64_t s1[1] = {n}, s2[2] = {n, 2};
   CHECK_OK(hrm_tensor_new(&st, HRM_DTYPE_I32, 1, s1));
   CHECK_OK(hrm_tensor_new(&ns, HRM_DTYPE_I32, 1, s1));
   CHECK_OK(hrm_tensor_new(&nh, HRM_DTYPE_U8, 1, s1));
   CHECK_OK(hrm_tensor_new(&q, HRM_DTYPE_F32, 2, s2));
   for (int i = 0; i < n; i++) {
      ((int32_t *)st->data)[i] = steps[first + i];
      ((float *)q->data)[2 * i] = 1.0f;  /* q_halt > q_continue: the rule says halt */
      ((float *)q->data)[2 * i + 1] = -1.0f;
   }
   CHECK_OK(hrm_act_halt(ns, nh, st, NULL, n, q, MAX_STEPS, 1.0, 1, HRM_HALT_COMPARE, rng,
                         offset));
   for (int i = 0; i < n; i++) {
      CHECK(((int32_t *)ns->data)[i] == steps[first + i] + 1);
      halted_out[first + i] = ((uint8_t *)nh->data)[i];
   }
   hrm_tensor_free(st);
   hrm_tensor_free(ns);
   hrm_tensor_free(nh);
   hrm_tensor_free(q);
}

/* One round of halting for the batch split into parts of the given sizes (summing to B). */
static void halt_split(uint8_t *halted, const int32_t *steps, const int *sizes, int nparts,
                       hrm_rng *rng, int wrong_offset) {
   const hrm_rng start = *rng;
   hrm_rng after = start;
   int first = 0;
   for (int p = 0; p < nparts; p++) {
      hrm_rng r = start; /* every part of one step draws at the same (seed, step) */
      halt_part(halted, steps, first, sizes[p], wrong_offset ? 0 : first, &r);
      after = r;
      first += sizes[p];
   }
   *rng = after;
}

int main(void) {
   static const int whole[1] = {8}, halves[2] = {4, 4}, uneven[2] = {2, 6};
   hrm_rng r8, r44, r26, rbad;
   hrm_rng_init(&r8, 1234);
   r44 = r26 = rbad = r8;
   int varied = 0, offset_matters = 0, last = -1;
   for (int round = 0; round < ROUNDS; round++) {
      int32_t steps[B];
      for (int i = 0; i < B; i++) steps[i] = (3 * i + 5 * round) % (MAX_STEPS - 1);
      uint8_t h8[B], h44[B], h26[B], hbad[B];
      halt_split(h8, steps, whole, 1, &r8, 0);
      halt_split(h44, steps, halves, 2, &r44, 0);
      halt_split(h26, steps, uneven, 2, &r26, 0);
      halt_split(hbad, steps, halves, 2, &rbad, 1);
      CHECK(memcmp(h8, h44, B) == 0);
      CHECK(memcmp(h8, h26, B) == 0);
      offset_matters |= memcmp(h8, hbad, B) != 0;
      for (int i = 0; i < B; i++) {
         varied |= last >= 0 && h8[i] != last;
         last = h8[i];
      }
      CHECK(r8.seed == r44.seed && r8.counter == r44.counter && r8.counter == r26.counter);
   }
   CHECK(r8.counter == ROUNDS); /* one step of the per-row streams per call */
   CHECK(varied);
   CHECK(offset_matters);

   /* the draws themselves: a pure function of (seed, step, row), in [0, 1) */
   double a[2], b[2], c[2];
   hrm_rng_row_uniforms(a, 7, 3, 5);
   hrm_rng_row_uniforms(b, 7, 3, 5);
   CHECK(a[0] == b[0] && a[1] == b[1]);
   CHECK(a[0] >= 0 && a[0] < 1 && a[1] >= 0 && a[1] < 1 && a[0] != a[1]);
   hrm_rng_row_uniforms(c, 7, 3, 6);
   CHECK(c[0] != a[0]);
   hrm_rng_row_uniforms(c, 7, 4, 5);
   CHECK(c[0] != a[0]);
   hrm_rng_row_uniforms(c, 8, 3, 5);
   CHECK(c[0] != a[0]);

   /* a negative offset is refused by name */
   hrm_tensor *st, *q, *ns, *nh;
   const int64_t s1[1] = {1}, s2[2] = {1, 2};
   CHECK_OK(hrm_tensor_new(&st, HRM_DTYPE_I32, 1, s1));
   CHECK_OK(hrm_tensor_new(&ns, HRM_DTYPE_I32, 1, s1));
   CHECK_OK(hrm_tensor_new(&nh, HRM_DTYPE_U8, 1, s1));
   CHECK_OK(hrm_tensor_new(&q, HRM_DTYPE_F32, 2, s2));
   CHECK(hrm_act_halt(ns, nh, st, NULL, 1, q, 4, 0.5, 1, 0, &r8, -1) == HRM_ERR_ARG);
   CHECK(strstr(hrm_last_error(), "row_offset") != NULL);
   hrm_tensor_free(st);
   hrm_tensor_free(ns);
   hrm_tensor_free(nh);
   hrm_tensor_free(q);
   return check_summary("test_act_draws");
}
