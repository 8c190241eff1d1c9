/* test_cuda_device.c — CUDA availability, device tensors and the refusals that must hold on any
 * machine.
 *
 * Without a device: hrm_cuda_available() is 0, device tensors and CUDA models are refused with
 * HRM_ERR_DEVICE (never a crash), then the test exits 77 (ctest: skipped). With a device: host
 * ↔ device ↔ device tensor round trips (f32, i32, bf16 bits), cross-device dtype refusal, the
 * sticky status after a recorded failure, and a CUDA parameter store.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "check.h"
#include "cuda.h"
#include "device.h"

static void check_refusals(int have_device) {
   hrm_params *m = NULL;
   const int rc = hrm_params_new(&m, 0, HRM_DEVICE_CUDA);
   if (have_device) { /* a CUDA store is made (the model runs on the CUDA table) */
      CHECK_OK(rc);
      hrm_params_free(m);
      return;
   }
   CHECK(m == NULL);
   CHECK(rc == HRM_ERR_DEVICE);
   CHECK(strstr(hrm_last_error(), "not available") != NULL);
   hrm_tensor *t = NULL;
   const int64_t shape[1] = {4};
   CHECK(hrm_tensor_new_device(&t, HRM_DTYPE_F32, 1, shape, HRM_DEVICE_CUDA) == HRM_ERR_DEVICE);
   CHECK(t == NULL);
   CHECK(strstr(hrm_last_error(), "CUDA") != NULL);
}

static void check_round_trips(void) {
   const int64_t n = 1000, shape[2] = {10, 100};
   hrm_tensor *h = NULL, *d = NULL, *d2 = NULL, *back = NULL;
   CHECK_OK(hrm_tensor_new(&h, HRM_DTYPE_F32, 2, shape));
   CHECK_OK(hrm_tensor_new(&back, HRM_DTYPE_F32, 2, shape));
   CHECK_OK(hrm_tensor_new_device(&d, HRM_DTYPE_F32, 2, shape, HRM_DEVICE_CUDA));
   CHECK_OK(hrm_tensor_new_device(&d2, HRM_DTYPE_F32, 2, shape, HRM_DEVICE_CUDA));
   if (!h || !d || !d2 || !back) goto done;
   CHECK(d->device == HRM_DEVICE_CUDA && d->numel == n);
   for (int64_t i = 0; i < n; i++) ((float *)h->data)[i] = (float)i * 0.25f - 7.0f;
   CHECK_OK(hrm_tensor_copy(d, h));     // host -> device
   CHECK_OK(hrm_tensor_copy(d2, d));    // device -> device
   CHECK_OK(hrm_tensor_copy(back, d2)); // device -> host
   CHECK(memcmp(back->data, h->data, sizeof(float) * (size_t)n) == 0);
   /* a fresh device tensor is zeroed */
   hrm_tensor *z = NULL;
   CHECK_OK(hrm_tensor_new_device(&z, HRM_DTYPE_F32, 2, shape, HRM_DEVICE_CUDA));
   if (z) {
      CHECK_OK(hrm_tensor_copy(back, z));
      int zero = 1;
      for (int64_t i = 0; i < n; i++) zero &= ((float *)back->data)[i] == 0.0f;
      CHECK(zero);
   }
   /* a view of a device tensor copies its slice and keeps the storage alive */
   hrm_tensor *v = NULL, *hv = NULL;
   const int64_t vs[1] = {100};
   CHECK_OK(hrm_tensor_view(&v, d, 300, 1, vs));
   CHECK_OK(hrm_tensor_new(&hv, HRM_DTYPE_F32, 1, vs));
   hrm_tensor_free(d);
   d = NULL;
   if (v && hv) {
      CHECK_OK(hrm_tensor_copy(hv, v));
      CHECK(((float *)hv->data)[0] == ((float *)h->data)[300]);
      CHECK(((float *)hv->data)[99] == ((float *)h->data)[399]);
   }
   /* dtypes must agree across devices */
   hrm_tensor *bf = NULL;
   CHECK_OK(hrm_tensor_new(&bf, HRM_DTYPE_BF16, 2, shape));
   if (bf) CHECK(hrm_tensor_copy(d2, bf) == HRM_ERR_DTYPE);
   /* i32 round trip */
   hrm_tensor *hi = NULL, *di = NULL, *bi = NULL;
   CHECK_OK(hrm_tensor_new(&hi, HRM_DTYPE_I32, 1, &n));
   CHECK_OK(hrm_tensor_new(&bi, HRM_DTYPE_I32, 1, &n));
   CHECK_OK(hrm_tensor_new_device(&di, HRM_DTYPE_I32, 1, &n, HRM_DEVICE_CUDA));
   if (hi && di && bi) {
      for (int64_t i = 0; i < n; i++) ((int32_t *)hi->data)[i] = (int32_t)(i * 7919 % 1013) - 500;
      CHECK_OK(hrm_tensor_copy(di, hi));
      CHECK_OK(hrm_tensor_copy(bi, di));
      CHECK(memcmp(hi->data, bi->data, sizeof(int32_t) * (size_t)n) == 0);
   }
   hrm_tensor_free(hi);
   hrm_tensor_free(di);
   hrm_tensor_free(bi);
   hrm_tensor_free(bf);
   hrm_tensor_free(v);
   hrm_tensor_free(hv);
   hrm_tensor_free(z);
done:
   hrm_tensor_free(h);
   hrm_tensor_free(d);
   hrm_tensor_free(d2);
   hrm_tensor_free(back);
   CHECK_OK(hrm_cuda_sync());
}

/* A failing launch is recorded, reported as HRM_ERR_DEVICE, and cleared on request. */
static void check_sticky_status(void) {
   CHECK_OK(hrm_cuda_status());
   hrm_cuda_attention_forward(NULL, NULL, NULL, 1, 4, 1, 1000);  // head dim 1000 is refused
   CHECK(hrm_cuda_status() == HRM_ERR_DEVICE);
   CHECK(strstr(hrm_last_error(), "attention") != NULL);
   CHECK(hrm_cuda_sync() == HRM_ERR_DEVICE);
   hrm_cuda_clear_status();
   CHECK_OK(hrm_cuda_status());
}

/* The CUDA table fills every entry, the optional fused ones included, with its own functions. */
static void check_table(void) {
   CHECK(strcmp(hrm_cuda_backend.name, "cuda") == 0);
   CHECK(hrm_backend_for(HRM_DEVICE_CUDA) == &hrm_cuda_backend);
   const size_t n = sizeof(hrm_backend) / sizeof(void (*)(void));
   const char *cpu = (const char *)&hrm_cpu_backend, *gpu = (const char *)&hrm_cuda_backend;
   for (size_t i = 1; i < n; i++) {  // slot 0 is the name
      void (*fc)(void), (*fg)(void);
      memcpy(&fc, cpu + i * sizeof fc, sizeof fc);
      memcpy(&fg, gpu + i * sizeof fg, sizeof fg);
      CHECK(fc != NULL && fg != NULL);
      CHECK(fg != fc);
   }
}

int main(void) {
   const int have = hrm_cuda_available();
   check_table();
   CHECK(have == (hrm_cuda_device_count() > 0));
   check_refusals(have);
   if (!have) {
      if (check_failed_) return check_summary("test_cuda_device");
      printf("test_cuda_device: no CUDA device, %d no-device checks passed, GPU checks skipped\n",
             check_passed_);
      return 77;
   }
   CHECK_OK(hrm_cuda_init());
   check_round_trips();
   check_sticky_status();
   hrm_cuda_shutdown();
   return check_summary("test_cuda_device");
}
