/* tensor_util.h — internal tensor helpers shared by the core (not part of the public API).
 *
 * bf16 conversions (round to nearest even, NaN stays NaN) and tensors that borrow memory
 * they do not own (storage NULL: freeing the tensor leaves the memory alone).
 */
#ifndef HRM_TENSOR_UTIL_H
#define HRM_TENSOR_UTIL_H

#include <string.h>

#include "hrm.h"

/* bf16 bits of f, rounded to nearest even; a NaN stays a (quiet) NaN. Inline so that loops over
 * arrays vectorise. */
static inline uint16_t hrm_f32_to_bf16(float f) {
   uint32_t u;
   memcpy(&u, &f, 4);
   const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
   return (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u) : (uint16_t)r;
}

static inline float hrm_bf16_to_f32(uint16_t h) {
   const uint32_t u = (uint32_t)h << 16;
   float f;
   memcpy(&f, &u, 4);
   return f;
}

/* [OUT] out: a tensor over caller-owned memory `data`; the caller keeps it alive. */
int hrm_tensor_wrap(hrm_tensor **out, void *data, int32_t dtype, int32_t ndim,
                    const int64_t *shape);

#endif
