/* device.h — internal hooks between the C core and a device backend (kernels/, CUDA).
 *
 * The core calls only these: they forward to kernels/ when the library is built with
 * HRM_WITH_CUDA and fail with HRM_ERR_DEVICE otherwise, so the CPU-only build needs no CUDA
 * symbol. Device tensors are internal (Lua never sees device pointers): only C code creates
 * them, with hrm_tensor_new_device, and moves data with hrm_tensor_copy.
 */
#ifndef HRM_DEVICE_H
#define HRM_DEVICE_H

#include <stddef.h>

#include "hrm.h"

/* [OUT] out: a zeroed tensor in the memory of `device` (CPU or CUDA). tensor.c */
int hrm_tensor_new_device(hrm_tensor **out, int32_t dtype, int32_t ndim, const int64_t *shape,
                          int32_t device);
/* dst = src across devices (either side may be CUDA); dtypes must agree. */
int hrm_device_tensor_copy(hrm_tensor *dst, const hrm_tensor *src);
/* [OUT] out: zeroed device memory of `bytes`; freed with hrm_device_free. */
int hrm_device_malloc(void **out, size_t bytes, int32_t device);
void hrm_device_free(void *p, int32_t device);
/* HRM_OK when a model can be created on `device`; otherwise the reason, as model_new reports it. */
int hrm_device_model_check(int32_t device);

#endif /* HRM_DEVICE_H */
