/* counter_rng.h — Philox-4x32-10, the counter-based generator of hrm, written once for the CPU
 * code and the CUDA kernels.
 *
 * A draw is a pure function of (key, counter): nothing is carried from one draw to the next, so
 * any thread, device or process computes the same number for the same counter. The seeded
 * stream of rng.c puts its 64-bit position in words 0-1 of the counter (words 2-3 fixed); the
 * per-row draws put (step, global row) there instead, with a stream tag in word 3 that keeps
 * them apart. A row's draws therefore do not depend on the batch split, the row's position in
 * a call, the order of calls or the device. Included by backend.h users; no state, no symbols.
 */
#ifndef HRM_COUNTER_RNG_H
#define HRM_COUNTER_RNG_H

#include <stdint.h>

#if defined(__CUDACC__)
#define HRM_RNG_FN __host__ __device__ static inline
#else
#define HRM_RNG_FN static inline
#endif

/* The tag of the per-row streams in counter word 3 (the seeded stream has 0 there). */
#define HRM_RNG_ROW_STREAM 0x65787000u

/* Encrypts ctr (4 words) in place under the key (k0, k1): 10 Philox rounds. */
HRM_RNG_FN void hrm_philox4x32(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
   const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
   for (int r = 0; r < 10; r++) {
      const uint64_t p0 = (uint64_t)M0 * ctr[0], p1 = (uint64_t)M1 * ctr[2];
      const uint32_t n0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0;
      const uint32_t n1 = (uint32_t)p1;
      const uint32_t n2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
      const uint32_t n3 = (uint32_t)p0;
      ctr[0] = n0, ctr[1] = n1, ctr[2] = n2, ctr[3] = n3;
      k0 += W0, k1 += W1;
   }
}

/* [0, 1) from the 53 high bits of (hi, lo). */
HRM_RNG_FN double hrm_rng_unit(uint32_t hi, uint32_t lo) {
   return (double)((((uint64_t)hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

/* The two uniforms in [0, 1) of global row `row` at step `step` of the stream of `seed`. */
HRM_RNG_FN void hrm_rng_row_uniforms(double u[2], uint64_t seed, uint64_t step, uint64_t row) {
   uint32_t c[4] = {(uint32_t)step, (uint32_t)(step >> 32), (uint32_t)row,
                    (uint32_t)(row >> 32) ^ HRM_RNG_ROW_STREAM};
   hrm_philox4x32(c, (uint32_t)seed, (uint32_t)(seed >> 32));
   u[0] = hrm_rng_unit(c[0], c[1]);
   u[1] = hrm_rng_unit(c[2], c[3]);
}

#endif /* HRM_COUNTER_RNG_H */
