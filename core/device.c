/* device.c — the core's side of device support: availability, device memory and copies, and
 * the check of the device a model is created on.
 *
 * With HRM_WITH_CUDA these forward to kernels/ (cuda.h); without it every CUDA request fails
 * with HRM_ERR_DEVICE and hrm_cuda_available() is 0. The CUDA backend table exists
 * (hrm_cuda_backend), but a model does not run on it yet: modules and ACT ops keep host-side loops
 * over its activations, so a CUDA model is refused here with a clear message.
 */
#include "device.h"

#include "error.h"

#if defined(HRM_WITH_CUDA)
#include "../kernels/cuda.h"
#endif

int32_t hrm_cuda_available(void) {
#if defined(HRM_WITH_CUDA)
   return hrm_cuda_device_count() > 0 ? 1 : 0;
#else
   return 0;
#endif
}

int hrm_device_malloc(void **out, size_t bytes, int32_t device) {
   HRM_CHECK(out, HRM_ERR_ARG, "device_malloc: out is NULL");
   *out = NULL;
   HRM_CHECK(device == HRM_DEVICE_CUDA, HRM_ERR_ARG, "device_malloc: device %d is not a GPU",
             device);
#if defined(HRM_WITH_CUDA)
   return hrm_cuda_malloc(out, bytes);
#else
   (void)bytes;
   return HRM_FAIL(HRM_ERR_DEVICE, "CUDA is not available (this build has the CPU backend only)");
#endif
}

void hrm_device_free(void *p, int32_t device) {
#if defined(HRM_WITH_CUDA)
   if (device == HRM_DEVICE_CUDA) hrm_cuda_free(p);
#else
   (void)p;
   (void)device;
#endif
}

int hrm_device_tensor_copy(hrm_tensor *dst, const hrm_tensor *src) {
   HRM_CHECK(dst && src, HRM_ERR_ARG, "copy: tensor is NULL");
   HRM_CHECK(dst->numel == src->numel, HRM_ERR_SHAPE,
             "copy: destination has %lld elements, source %lld", (long long)dst->numel,
             (long long)src->numel);
   HRM_CHECK(dst->dtype == src->dtype, HRM_ERR_DTYPE,
             "copy: between devices the dtypes must agree (%s -> %s) ---> HINT: convert on the "
             "CPU first", hrm_dtype_name(src->dtype), hrm_dtype_name(dst->dtype));
#if defined(HRM_WITH_CUDA)
   return hrm_cuda_memcpy(dst->data, dst->device, src->data, src->device,
                          (size_t)src->numel * hrm_dtype_size(src->dtype));
#else
   return HRM_FAIL(HRM_ERR_DEVICE, "copy: CUDA is not available (this build has the CPU "
                   "backend only)");
#endif
}

int hrm_device_model_check(int32_t device) {
   if (device == HRM_DEVICE_CPU) return HRM_OK;
   HRM_CHECK(device == HRM_DEVICE_CUDA, HRM_ERR_ARG, "model: device %d is unknown", device);
#if defined(HRM_WITH_CUDA)
   HRM_CHECK(hrm_cuda_available(), HRM_ERR_DEVICE,
             "model: device %d (cuda) is not available: no CUDA device or driver is present",
             device);
   return HRM_FAIL(HRM_ERR_DEVICE, "model: the CUDA model is not wired yet (the CUDA "
                   "backend table exists, the model runs on the CPU only) ---> HINT: use device "
                   "cpu");
#else
   return HRM_FAIL(HRM_ERR_DEVICE, "model: device %d is not available (this build has the "
                   "CPU backend only)", device);
#endif
}
