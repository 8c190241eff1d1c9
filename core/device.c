/* device.c — device selection and the core's side of device memory: which table serves a
 * device, device allocations and copies across devices (through the tables' memory entries),
 * and the check of the device a model is created on.
 *
 * Without HRM_WITH_CUDA no table serves CUDA: every CUDA request fails with HRM_ERR_DEVICE and
 * hrm_cuda_available() is 0.
 */
#include "device.h"

#include "error.h"

#if defined(HRM_WITH_CUDA)
#define CUDA_TABLE (&hrm_cuda_backend)
#else
#define CUDA_TABLE NULL
#endif

static const hrm_backend *const builtin[2] = {&hrm_cpu_backend, CUDA_TABLE};
static const hrm_backend *bound[2] = {&hrm_cpu_backend, CUDA_TABLE};

const hrm_backend *hrm_backend_for(int32_t device) {
   return device == HRM_DEVICE_CPU || device == HRM_DEVICE_CUDA ? bound[device] : NULL;
}

const hrm_backend *hrm_backend_bind(int32_t device, const hrm_backend *be) {
   if (device != HRM_DEVICE_CPU && device != HRM_DEVICE_CUDA) return NULL;
   const hrm_backend *old = bound[device];
   bound[device] = be ? be : builtin[device];
   return old;
}

int32_t hrm_cuda_available(void) {
   if (!bound[HRM_DEVICE_CUDA]) return 0;
   if (bound[HRM_DEVICE_CUDA] != builtin[HRM_DEVICE_CUDA]) return 1; /* a table bound by a test */
#if defined(HRM_WITH_CUDA)
   return hrm_cuda_device_count() > 0 ? 1 : 0;
#else
   return 0;
#endif
}

/* The table of a device that is present, or NULL with the reason set. */
static const hrm_backend *present(int32_t device, const char *what) {
   const hrm_backend *be = hrm_backend_for(device);
   if (!be) {
      HRM_FAIL(HRM_ERR_DEVICE, "%s: CUDA is not available (this build has the CPU backend only)",
               what);
      return NULL;
   }
   if (device == HRM_DEVICE_CUDA && !hrm_cuda_available()) {
      HRM_FAIL(HRM_ERR_DEVICE, "%s: CUDA is not available: no CUDA device or driver is present",
               what);
      return NULL;
   }
   return be;
}

int hrm_device_malloc(void **out, size_t bytes, int32_t device) {
   HRM_CHECK(out, HRM_ERR_ARG, "device_malloc: out is NULL");
   *out = NULL;
   HRM_CHECK(device == HRM_DEVICE_CUDA, HRM_ERR_ARG, "device_malloc: device %d is not a GPU",
             device);
   const hrm_backend *be = present(device, "device_malloc");
   return be ? be->alloc(out, bytes) : HRM_ERR_DEVICE;
}

int hrm_device_tensor_copy(hrm_tensor *dst, const hrm_tensor *src) {
   HRM_CHECK(dst && src, HRM_ERR_ARG, "copy: tensor is NULL");
   HRM_CHECK(dst->numel == src->numel, HRM_ERR_SHAPE,
             "copy: destination has %lld elements, source %lld", (long long)dst->numel,
             (long long)src->numel);
   HRM_CHECK(dst->dtype == src->dtype, HRM_ERR_DTYPE,
             "copy: between devices the dtypes must agree (%s -> %s) ---> HINT: convert on the "
             "CPU first", hrm_dtype_name(src->dtype), hrm_dtype_name(dst->dtype));
   const size_t bytes = (size_t)src->numel * hrm_dtype_size(src->dtype);
   const int32_t device = dst->device != HRM_DEVICE_CPU ? dst->device : src->device;
   const hrm_backend *be = present(device, "copy");
   if (!be) return HRM_ERR_DEVICE;
   if (src->device == HRM_DEVICE_CPU) return be->upload(dst->data, src->data, bytes);
   if (dst->device == HRM_DEVICE_CPU) return be->download(dst->data, src->data, bytes);
   HRM_CHECK(dst->device == src->device, HRM_ERR_DEVICE, "copy: between two devices (%d -> %d)",
             src->device, dst->device);
   be->copy(dst->data, src->data, bytes);
   return be->sync();
}

int hrm_device_model_check(int32_t device) {
   if (device == HRM_DEVICE_CPU) return HRM_OK;
   HRM_CHECK(device == HRM_DEVICE_CUDA, HRM_ERR_ARG, "model: device %d is unknown", device);
   HRM_CHECK(bound[HRM_DEVICE_CUDA], HRM_ERR_DEVICE, "model: device %d (cuda) is not available "
             "(this build has the CPU backend only) ---> HINT: use device cpu", device);
   HRM_CHECK(hrm_cuda_available(), HRM_ERR_DEVICE,
             "model: device %d (cuda) is not available: no CUDA device or driver is present "
             "---> HINT: use device cpu", device);
   return HRM_OK;
}
