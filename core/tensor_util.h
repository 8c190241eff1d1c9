/* tensor_util.h — internal tensor helpers shared by the core (not part of the public API).
 *
 * bf16 conversions (round to nearest even, NaN stays NaN) and tensors that borrow memory
 * they do not own (storage NULL: freeing the tensor leaves the memory alone).
 */
#ifndef HRM_TENSOR_UTIL_H
#define HRM_TENSOR_UTIL_H

#include "hrm.h"

uint16_t hrm_f32_to_bf16(float f);
float hrm_bf16_to_f32(uint16_t h);
/* [OUT] out: a tensor over caller-owned memory `data`; the caller keeps it alive. */
int hrm_tensor_wrap(hrm_tensor **out, void *data, int32_t dtype, int32_t ndim,
                    const int64_t *shape);

#endif
