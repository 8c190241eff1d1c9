/* tensor.c — CPU tensors: reference-counted storage, views, dtype conversion and small ops.
 *
 * Tensors are contiguous and row-major with up to 4 dims. Storage is shared between a tensor
 * and its views through a reference count, so a view outlives its source safely. The ops here
 * are utilities for scripts and tests (element loops over doubles); the model's hot paths live
 * in core/cpu/ and never go through them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cpu/gemm.h"
#include "device.h"
#include "error.h"
#include "tensor_util.h"

struct hrm_storage {
   void *data;
   size_t bytes;
   int64_t refs;
   int32_t device;          // enum hrm_device of data
   const hrm_backend *be;   // off the CPU: the table that allocated data (and releases it)
};

static const char *const dtype_names[HRM_DTYPE_COUNT] = {"f32", "f64", "bf16", "i32", "i64", "u8"};
static const size_t dtype_sizes[HRM_DTYPE_COUNT] = {4, 8, 2, 4, 8, 1};

size_t hrm_dtype_size(int32_t dtype) {
   return (dtype >= 0 && dtype < HRM_DTYPE_COUNT) ? dtype_sizes[dtype] : 0;
}

const char *hrm_dtype_name(int32_t dtype) {
   return (dtype >= 0 && dtype < HRM_DTYPE_COUNT) ? dtype_names[dtype] : NULL;
}

int32_t hrm_dtype_from_name(const char *name) {
   if (!name) return -1;
   for (int32_t i = 0; i < HRM_DTYPE_COUNT; i++)
      if (strcmp(name, dtype_names[i]) == 0) return i;
   return -1;
}

/* ---- construction ------------------------------------------------------------------------------ */

static int check_shape(int32_t ndim, const int64_t *shape, int64_t *numel) {
   HRM_CHECK(ndim >= 0 && ndim <= 4, HRM_ERR_ARG, "tensor: ndim %d out of range 0..4", ndim);
   HRM_CHECK(ndim == 0 || shape, HRM_ERR_ARG, "tensor: shape is NULL");
   int64_t n = 1;
   for (int32_t i = 0; i < ndim; i++) {
      HRM_CHECK(shape[i] >= 0, HRM_ERR_ARG, "tensor: size %lld of dim %d is negative",
                (long long)shape[i], i + 1);
      HRM_CHECK(shape[i] == 0 || n <= INT64_MAX / 16 / shape[i], HRM_ERR_ARG,
                "tensor: sizes overflow");
      n *= shape[i];
   }
   *numel = n;
   return HRM_OK;
}

static void set_shape(hrm_tensor *t, int32_t ndim, const int64_t *shape, int64_t numel) {
   t->ndim = ndim;
   for (int i = 0; i < 4; i++) t->shape[i] = i < ndim ? shape[i] : 1;
   t->numel = numel;
}

int hrm_tensor_new(hrm_tensor **out, int32_t dtype, int32_t ndim, const int64_t *shape) {
   HRM_CHECK(out, HRM_ERR_ARG, "tensor_new: out is NULL");
   *out = NULL;
   HRM_CHECK(hrm_dtype_size(dtype), HRM_ERR_DTYPE, "tensor_new: unknown dtype %d", dtype);
   int64_t numel;
   HRM_TRY(check_shape(ndim, shape, &numel));
   size_t bytes = (size_t)numel * hrm_dtype_size(dtype);
   hrm_tensor *t = calloc(1, sizeof *t);
   hrm_storage *s = calloc(1, sizeof *s);
   void *data = hrm_buf_alloc(bytes); /* never NULL on success, even for 0 bytes */
   if (!t || !s || !data) {
      free(t);
      free(s);
      hrm_buf_free(data);
      return HRM_FAIL(HRM_ERR_MEMORY, "tensor_new: cannot allocate %zu bytes", bytes);
   }
   memset(data, 0, bytes);
   s->data = data;
   s->bytes = bytes;
   s->refs = 1;
   t->storage = s;
   t->data = data;
   t->dtype = dtype;
   t->device = HRM_DEVICE_CPU;
   set_shape(t, ndim, shape, numel);
   *out = t;
   return HRM_OK;
}

int hrm_tensor_wrap(hrm_tensor **out, void *data, int32_t dtype, int32_t ndim,
                    const int64_t *shape) {
   HRM_CHECK(out, HRM_ERR_ARG, "tensor_wrap: out is NULL");
   *out = NULL;
   HRM_CHECK(hrm_dtype_size(dtype), HRM_ERR_DTYPE, "tensor_wrap: unknown dtype %d", dtype);
   int64_t numel;
   HRM_TRY(check_shape(ndim, shape, &numel));
   hrm_tensor *t = calloc(1, sizeof *t);
   HRM_CHECK(t, HRM_ERR_MEMORY, "tensor_wrap: out of memory");
   t->data = data;
   t->dtype = dtype;
   t->device = HRM_DEVICE_CPU;
   set_shape(t, ndim, shape, numel);
   *out = t;
   return HRM_OK;
}

int hrm_tensor_view(hrm_tensor **out, const hrm_tensor *src, int64_t offset, int32_t ndim,
                    const int64_t *shape) {
   HRM_CHECK(out, HRM_ERR_ARG, "tensor_view: out is NULL");
   *out = NULL;
   HRM_CHECK(src, HRM_ERR_ARG, "tensor_view: source tensor is NULL");
   int64_t numel;
   HRM_TRY(check_shape(ndim, shape, &numel));
   HRM_CHECK(offset >= 0 && offset <= src->numel && numel <= src->numel - offset, HRM_ERR_RANGE,
             "tensor_view: %lld elements at offset %lld exceed the source's %lld",
             (long long)numel, (long long)offset, (long long)src->numel);
   hrm_tensor *t = calloc(1, sizeof *t);
   HRM_CHECK(t, HRM_ERR_MEMORY, "tensor_view: out of memory");
   *t = *src;
   t->data = (char *)src->data + (size_t)offset * hrm_dtype_size(src->dtype);
   set_shape(t, ndim, shape, numel);
   if (t->storage) t->storage->refs++;
   *out = t;
   return HRM_OK;
}

void hrm_tensor_free(hrm_tensor *t) {
   if (!t) return;
   if (t->storage && --t->storage->refs == 0) {
      if (t->storage->device != HRM_DEVICE_CPU)
         t->storage->be->release(t->storage->data);
      else
         hrm_buf_free(t->storage->data);
      free(t->storage);
   }
   free(t);
}

/* ---- element access -------------------------------------------------------------------------------- */

double hrm_tensor_get(const hrm_tensor *t, int64_t i) {
   switch (t->dtype) {
   case HRM_DTYPE_F32: return ((const float *)t->data)[i];
   case HRM_DTYPE_F64: return ((const double *)t->data)[i];
   case HRM_DTYPE_BF16: return hrm_bf16_to_f32(((const uint16_t *)t->data)[i]);
   case HRM_DTYPE_I32: return ((const int32_t *)t->data)[i];
   case HRM_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
   case HRM_DTYPE_U8: return ((const uint8_t *)t->data)[i];
   default: return NAN;
   }
}

/* Integer conversion saturates instead of invoking undefined behaviour. */
static int64_t to_int(double v, double lo, double hi) {
   if (isnan(v)) return 0;
   if (v < lo) v = lo;
   if (v > hi) v = hi;
   return (int64_t)v;
}

void hrm_tensor_set(hrm_tensor *t, int64_t i, double v) {
   switch (t->dtype) {
   case HRM_DTYPE_F32: ((float *)t->data)[i] = (float)v; break;
   case HRM_DTYPE_F64: ((double *)t->data)[i] = v; break;
   case HRM_DTYPE_BF16: ((uint16_t *)t->data)[i] = hrm_f32_to_bf16((float)v); break;
   case HRM_DTYPE_I32: ((int32_t *)t->data)[i] = (int32_t)to_int(v, INT32_MIN, INT32_MAX); break;
   case HRM_DTYPE_I64:
      ((int64_t *)t->data)[i] = to_int(v, -9223372036854775808.0, 9223372036854774784.0);
      break;
   case HRM_DTYPE_U8: ((uint8_t *)t->data)[i] = (uint8_t)to_int(v, 0, 255); break;
   default: break;
   }
}

int hrm_tensor_fill(hrm_tensor *t, double v) {
   HRM_CHECK(t, HRM_ERR_ARG, "fill: tensor is NULL");
   if (t->dtype == HRM_DTYPE_F32) {
      float f = (float)v;
      float *p = t->data;
      for (int64_t i = 0; i < t->numel; i++) p[i] = f;
   } else {
      for (int64_t i = 0; i < t->numel; i++) hrm_tensor_set(t, i, v);
   }
   return HRM_OK;
}

int hrm_tensor_copy(hrm_tensor *dst, const hrm_tensor *src) {
   HRM_CHECK(dst && src, HRM_ERR_ARG, "copy: tensor is NULL");
   HRM_CHECK(dst->numel == src->numel, HRM_ERR_SHAPE,
             "copy: destination has %lld elements, source %lld", (long long)dst->numel,
             (long long)src->numel);
   if (dst->data == src->data && dst->dtype == src->dtype) return HRM_OK;
   if (dst->device != HRM_DEVICE_CPU || src->device != HRM_DEVICE_CPU)
      return hrm_device_tensor_copy(dst, src);
   if (dst->dtype == src->dtype) { /* the table's copy, unless two views of one block overlap */
      const size_t bytes = (size_t)src->numel * hrm_dtype_size(src->dtype);
      const char *d = dst->data, *s = src->data;
      if (d + bytes <= s || s + bytes <= d)
         hrm_backend_for(HRM_DEVICE_CPU)->copy(dst->data, s, bytes);
      else memmove(dst->data, s, bytes);
   } else if (dst->dtype == HRM_DTYPE_BF16 && src->dtype == HRM_DTYPE_F32) {
      const float *s = src->data;
      uint16_t *d = dst->data;
      for (int64_t i = 0; i < src->numel; i++) d[i] = hrm_f32_to_bf16(s[i]);
   } else {
      for (int64_t i = 0; i < src->numel; i++) hrm_tensor_set(dst, i, hrm_tensor_get(src, i));
   }
   return HRM_OK;
}

int hrm_tensor_round_bf16(hrm_tensor *t) {
   HRM_CHECK(t, HRM_ERR_ARG, "round_bf16: tensor is NULL");
   HRM_CHECK(t->dtype == HRM_DTYPE_F32 && t->device == HRM_DEVICE_CPU, HRM_ERR_ARG,
             "round_bf16: expected an f32 CPU tensor, got %s on %s", hrm_dtype_name(t->dtype),
             t->device == HRM_DEVICE_CPU ? "the CPU" : "CUDA");
   float *x = t->data;
#pragma omp parallel for schedule(static) if (t->numel > 65536)
   for (int64_t i = 0; i < t->numel; i++) x[i] = hrm_bf16_to_f32(hrm_f32_to_bf16(x[i]));
   return HRM_OK;
}

/* ---- elementwise and reductions ---------------------------------------------------------------------- */

static double apply(double a, double b, int32_t op) {
   switch (op) {
   case HRM_OP_ADD: return a + b;
   case HRM_OP_SUB: return a - b;
   case HRM_OP_MUL: return a * b;
   default: return a / b;
   }
}

int hrm_tensor_binary(hrm_tensor *out, const hrm_tensor *a, const hrm_tensor *b, int32_t op) {
   HRM_CHECK(out && a && b, HRM_ERR_ARG, "binary op: tensor is NULL");
   HRM_CHECK(op >= HRM_OP_ADD && op <= HRM_OP_DIV, HRM_ERR_ARG, "binary op: unknown op %d", op);
   HRM_CHECK(b->numel == a->numel || b->numel == 1, HRM_ERR_SHAPE,
             "binary op: operands have %lld and %lld elements", (long long)a->numel,
             (long long)b->numel);
   HRM_CHECK(out->numel == a->numel, HRM_ERR_SHAPE, "binary op: output has %lld elements, not %lld",
             (long long)out->numel, (long long)a->numel);
   int64_t bstep = b->numel == 1 ? 0 : 1;
   for (int64_t i = 0; i < a->numel; i++)
      hrm_tensor_set(out, i, apply(hrm_tensor_get(a, i), hrm_tensor_get(b, i * bstep), op));
   return HRM_OK;
}

int hrm_tensor_scalar(hrm_tensor *out, const hrm_tensor *a, double s, int32_t op) {
   HRM_CHECK(out && a, HRM_ERR_ARG, "scalar op: tensor is NULL");
   HRM_CHECK(op >= HRM_OP_ADD && op <= HRM_OP_DIV, HRM_ERR_ARG, "scalar op: unknown op %d", op);
   HRM_CHECK(out->numel == a->numel, HRM_ERR_SHAPE, "scalar op: output has %lld elements, not %lld",
             (long long)out->numel, (long long)a->numel);
   for (int64_t i = 0; i < a->numel; i++) hrm_tensor_set(out, i, apply(hrm_tensor_get(a, i), s, op));
   return HRM_OK;
}

int hrm_tensor_reduce(hrm_tensor *out, const hrm_tensor *a, int32_t dim, int32_t op) {
   HRM_CHECK(out && a, HRM_ERR_ARG, "reduce: tensor is NULL");
   HRM_CHECK(op >= HRM_REDUCE_SUM && op <= HRM_REDUCE_ARGMIN, HRM_ERR_ARG, "reduce: unknown op %d",
             op);
   int64_t outer = 1, n = a->numel, inner = 1;
   if (dim >= 0) {
      HRM_CHECK(dim < a->ndim, HRM_ERR_RANGE, "reduce: dimension %d out of range for a %d-D tensor",
                dim + 1, a->ndim);
      n = a->shape[dim];
      for (int32_t i = 0; i < dim; i++) outer *= a->shape[i];
      for (int32_t i = dim + 1; i < a->ndim; i++) inner *= a->shape[i];
   }
   HRM_CHECK(out->numel == outer * inner, HRM_ERR_SHAPE, "reduce: output has %lld elements, not %lld",
             (long long)out->numel, (long long)(outer * inner));
   int is_arg = op == HRM_REDUCE_ARGMAX || op == HRM_REDUCE_ARGMIN;
   int want_max = op == HRM_REDUCE_MAX || op == HRM_REDUCE_ARGMAX;
   HRM_CHECK(n > 0 || op == HRM_REDUCE_SUM, HRM_ERR_SHAPE, "reduce: empty dimension");
   for (int64_t o = 0; o < outer; o++) {
      for (int64_t in = 0; in < inner; in++) {
         double acc = 0.0, best = 0.0;
         int64_t best_k = 0;
         for (int64_t k = 0; k < n; k++) {
            double v = hrm_tensor_get(a, (o * n + k) * inner + in);
            acc += v;
            if (k == 0 || (want_max ? v > best : v < best) || (isnan(v) && !isnan(best))) {
               best = v;
               best_k = k;
            }
         }
         double r = op == HRM_REDUCE_SUM ? acc
                  : op == HRM_REDUCE_MEAN ? acc / (double)n
                  : is_arg ? (double)best_k : best;
         hrm_tensor_set(out, o * inner + in, r);
      }
   }
   return HRM_OK;
}

int hrm_tensor_matmul(hrm_tensor *out, const hrm_tensor *a, const hrm_tensor *b) {
   HRM_CHECK(out && a && b, HRM_ERR_ARG, "matmul: tensor is NULL");
   HRM_CHECK(a->ndim == 2 && b->ndim == 2 && out->ndim == 2, HRM_ERR_SHAPE,
             "matmul: expected 2-D tensors, got %dD x %dD -> %dD", a->ndim, b->ndim, out->ndim);
   int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
   HRM_CHECK(b->shape[0] == K, HRM_ERR_SHAPE,
             "matmul: size mismatch, %lldx%lld times %lldx%lld (inner sizes %lld and %lld differ)",
             (long long)M, (long long)K, (long long)b->shape[0], (long long)N, (long long)K,
             (long long)b->shape[0]);
   HRM_CHECK(out->shape[0] == M && out->shape[1] == N, HRM_ERR_SHAPE,
             "matmul: output is %lldx%lld, expected %lldx%lld", (long long)out->shape[0],
             (long long)out->shape[1], (long long)M, (long long)N);
   HRM_CHECK(a->dtype == b->dtype && a->dtype == out->dtype &&
                (a->dtype == HRM_DTYPE_F32 || a->dtype == HRM_DTYPE_F64),
             HRM_ERR_DTYPE, "matmul: needs f32 or f64 operands of one dtype, got %s, %s -> %s",
             hrm_dtype_name(a->dtype), hrm_dtype_name(b->dtype), hrm_dtype_name(out->dtype));
   HRM_CHECK(out->data != a->data && out->data != b->data, HRM_ERR_ARG,
             "matmul: output must not alias an operand");
   if (K == 0) return hrm_tensor_fill(out, 0.0);
   if (a->dtype == HRM_DTYPE_F32)
      hrm_cpu_sgemm(0, 0, M, N, K, 1.0f, a->data, K, b->data, N, 0.0f, out->data, N);
   else
      hrm_cpu_dgemm(0, 0, M, N, K, 1.0, a->data, K, b->data, N, 0.0, out->data, N);
   return HRM_OK;
}

int hrm_tensor_transpose(hrm_tensor *out, const hrm_tensor *a, int32_t d0, int32_t d1) {
   HRM_CHECK(out && a, HRM_ERR_ARG, "transpose: tensor is NULL");
   HRM_CHECK(d0 >= 0 && d0 < a->ndim && d1 >= 0 && d1 < a->ndim, HRM_ERR_RANGE,
             "transpose: dimensions %d,%d out of range for a %d-D tensor", d0 + 1, d1 + 1, a->ndim);
   HRM_CHECK(out->numel == a->numel && out->dtype == a->dtype, HRM_ERR_SHAPE,
             "transpose: output must have the input's size and dtype");
   HRM_CHECK(out->data != a->data, HRM_ERR_ARG, "transpose: output must not alias the input");
   int64_t shp[4], stride[4], ostride[4];
   for (int i = 0; i < 4; i++) shp[i] = a->shape[i];
   stride[3] = 1;
   for (int i = 2; i >= 0; i--) stride[i] = stride[i + 1] * a->shape[i + 1];
   int64_t oshape[4] = {shp[0], shp[1], shp[2], shp[3]};
   oshape[d0] = shp[d1];
   oshape[d1] = shp[d0];
   ostride[3] = 1;
   for (int i = 2; i >= 0; i--) ostride[i] = ostride[i + 1] * oshape[i + 1];
   size_t es = hrm_dtype_size(a->dtype);
   int64_t idx[4];
   for (idx[0] = 0; idx[0] < shp[0]; idx[0]++)
      for (idx[1] = 0; idx[1] < shp[1]; idx[1]++)
         for (idx[2] = 0; idx[2] < shp[2]; idx[2]++)
            for (idx[3] = 0; idx[3] < shp[3]; idx[3]++) {
               int64_t oi[4] = {idx[0], idx[1], idx[2], idx[3]};
               oi[d0] = idx[d1];
               oi[d1] = idx[d0];
               int64_t s = idx[0] * stride[0] + idx[1] * stride[1] + idx[2] * stride[2] + idx[3];
               int64_t o = oi[0] * ostride[0] + oi[1] * ostride[1] + oi[2] * ostride[2] + oi[3];
               memcpy((char *)out->data + o * es, (const char *)a->data + s * es, es);
            }
   for (int i = 0; i < a->ndim; i++) out->shape[i] = oshape[i];
   out->ndim = a->ndim;
   return HRM_OK;
}

/* ---- device tensors ---------------------------------------------------- */

int hrm_tensor_new_device(hrm_tensor **out, int32_t dtype, int32_t ndim, const int64_t *shape,
                          int32_t device) {
   if (device == HRM_DEVICE_CPU) return hrm_tensor_new(out, dtype, ndim, shape);
   HRM_CHECK(out, HRM_ERR_ARG, "tensor_new: out is NULL");
   *out = NULL;
   HRM_CHECK(hrm_dtype_size(dtype), HRM_ERR_DTYPE, "tensor_new: unknown dtype %d", dtype);
   int64_t numel;
   HRM_TRY(check_shape(ndim, shape, &numel));
   const size_t bytes = (size_t)numel * hrm_dtype_size(dtype);
   void *data = NULL;
   HRM_TRY(hrm_device_malloc(&data, bytes, device));
   hrm_tensor *t = calloc(1, sizeof *t);
   hrm_storage *s = calloc(1, sizeof *s);
   if (!t || !s) {
      free(t);
      free(s);
      hrm_backend_for(device)->release(data);
      return HRM_FAIL(HRM_ERR_MEMORY, "tensor_new: out of memory");
   }
   s->data = data;
   s->bytes = bytes;
   s->refs = 1;
   s->device = device;
   s->be = hrm_backend_for(device);
   t->storage = s;
   t->data = data;
   t->dtype = dtype;
   t->device = device;
   set_shape(t, ndim, shape, numel);
   *out = t;
   return HRM_OK;
}
