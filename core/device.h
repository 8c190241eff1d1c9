/* device.h — the core's one door to devices: which backend table serves a device, device
 * memory, copies across devices and the check of the device a model is created on.
 *
 * Model-path code finds its table with hrm_backend_for(device of its tensors or store) and
 * calls nothing else below it. The CPU table is core/cpu/; the CUDA table and the few hooks
 * declared here come from kernels/ when the library is built with HRM_WITH_CUDA, and every
 * CUDA request fails with HRM_ERR_DEVICE otherwise. Device tensors are internal (Lua never sees
 * device pointers): only C code creates them, with hrm_tensor_new_device, and moves data with
 * hrm_tensor_copy.
 */
#ifndef HRM_DEVICE_H
#define HRM_DEVICE_H

#include <stddef.h>

#include "backend.h"
#include "hrm.h"

extern const hrm_backend hrm_cpu_backend;  /* core/cpu/backend.c */
#if defined(HRM_WITH_CUDA)
extern const hrm_backend hrm_cuda_backend; /* kernels/backend.c */
int hrm_cuda_device_count(void);           /* 0 without a driver or device (never fails) */
#endif

/* The table serving `device` (enum hrm_device); NULL when this build has none. */
const hrm_backend *hrm_backend_for(int32_t device);
/* Serve `device` with `be` from now on (NULL restores the built-in table); returns the table
 * it replaces. Stores keep the table they were created with. A table bound to CUDA makes the
 * device available even without a GPU (its memory is then whatever the table allocates): tests
 * use this to run the device paths on a second instance of the CPU table. */
const hrm_backend *hrm_backend_bind(int32_t device, const hrm_backend *be);

/* dst = src across devices (either side may be CUDA); dtypes must agree. */
int hrm_device_tensor_copy(hrm_tensor *dst, const hrm_tensor *src);
/* [OUT] out: zeroed memory of `bytes` on an available device other than the CPU; released by
 * the table of that device (hrm_backend_for). */
int hrm_device_malloc(void **out, size_t bytes, int32_t device);
/* HRM_OK when a model can be created on `device`; otherwise the reason, as model_new reports it. */
int hrm_device_model_check(int32_t device);

#endif /* HRM_DEVICE_H */
