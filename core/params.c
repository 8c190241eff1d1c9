/* params.c — the parameter store: every tensor of a model, declared by its modules.
 *
 * Declaration records a name, kind, shape and init rule; build allocates one flat f32 block for
 * the parameters (and one for their gradients, same offsets), a tensor per buffer and the sparse
 * table, then initialises everything in declaration order from the store's RNG (so a model
 * declared in the reference's order draws the reference's init sequence). The store also keeps
 * the sparse table's gradient rows (appended by each backward until the optimizer step) and the
 * scratch that untaped calls and backward passes share.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "error.h"
#include "grow.h"
#include "nn.h"

int hrm_params_new(hrm_params **out, uint64_t seed, int32_t device) {
   HRM_CHECK(out, HRM_ERR_ARG, "params_new: out is NULL");
   *out = NULL;
   HRM_TRY(hrm_device_model_check(device));
   hrm_params *p = calloc(1, sizeof *p);
   HRM_CHECK(p, HRM_ERR_MEMORY, "params_new: out of memory");
   p->device = device;
   p->precision = HRM_DTYPE_F32;
   p->be = hrm_backend_for(device);
   p->refs = 1;
   p->sparse = -1;
   hrm_rng_init(&p->rng, seed);
   *out = p;
   return HRM_OK;
}

static void params_destroy(hrm_params *p) {
   for (int32_t i = 0; i < p->count; i++) {
      hrm_tensor_free(p->tensors[i].value);
      hrm_tensor_free(p->tensors[i].grad);
   }
   free(p->tensors);
   hrm_tensor_free(p->params);
   hrm_tensor_free(p->grads);
   p->be->release(p->sgrad);
   p->be->release(p->sgrad_ids);
   p->be->release(p->scratch);
   free(p->tapes);
   free(p);
}

void hrm_params_free(hrm_params *p) {
   if (p && --p->refs == 0) params_destroy(p);
}

int hrm_params_declare(int32_t *index, hrm_params *p, const char *name, int32_t kind,
                       int32_t ndim, const int64_t *shape, int32_t init, double init_arg) {
   HRM_CHECK(p && name && (ndim == 0 || shape), HRM_ERR_ARG,
             "params_declare: store, name or shape is NULL");
   HRM_CHECK(!p->built, HRM_ERR_STATE,
             "params_declare: '%s' comes after the store was built (declare every module first)",
             name);
   HRM_CHECK(strlen(name) > 0 && strlen(name) < sizeof p->tensors[0].name, HRM_ERR_ARG,
             "params_declare: name '%.60s...' is empty or longer than %zu bytes", name,
             sizeof p->tensors[0].name - 1);
   HRM_CHECK(kind >= HRM_KIND_PARAM && kind <= HRM_KIND_SPARSE, HRM_ERR_ARG,
             "params_declare: '%s': kind %d is unknown", name, kind);
   HRM_CHECK(init >= HRM_INIT_ZERO && init <= HRM_INIT_LECUN, HRM_ERR_ARG,
             "params_declare: '%s': init rule %d is unknown", name, init);
   HRM_CHECK(ndim >= 1 && ndim <= 4, HRM_ERR_ARG, "params_declare: '%s': ndim %d is not 1..4",
             name, ndim);
   HRM_CHECK(kind != HRM_KIND_SPARSE || (ndim == 2 && p->sparse < 0), HRM_ERR_ARG,
             "params_declare: '%s': a store holds one sparse table, of 2 dimensions", name);
   HRM_CHECK(hrm_params_find(p, name) < 0, HRM_ERR_ARG,
             "params_declare: '%s' is declared twice", name);
   int64_t n = 1;
   for (int32_t k = 0; k < ndim; k++) {
      HRM_CHECK(shape[k] >= 1 && shape[k] <= (INT64_C(1) << 40) / n, HRM_ERR_ARG,
                "params_declare: '%s': size %lld of dim %d is out of range", name,
                (long long)shape[k], k + 1);
      n *= shape[k];
   }
   HRM_TRY(hrm_grow((void **)&p->tensors, &p->cap, p->count, sizeof *p->tensors,
                    "params_declare"));
   hrm_named *d = &p->tensors[p->count];
   memset(d, 0, sizeof *d);
   snprintf(d->name, sizeof d->name, "%s", name);
   d->kind = kind;
   d->init = init;
   d->init_arg = init_arg;
   d->ndim = ndim;
   for (int32_t k = 0; k < 4; k++) d->shape[k] = k < ndim ? shape[k] : 1;
   d->offset = -1;
   if (kind == HRM_KIND_PARAM) {
      d->offset = p->num_params;
      p->num_params += n;
   }
   if (kind == HRM_KIND_SPARSE) {
      p->sparse = p->count;
      p->sparse_dim = (int32_t)shape[1];
   }
   if (index) *index = p->count;
   p->count++;
   return HRM_OK;
}

static int init_values(hrm_params *p, hrm_named *d, hrm_tensor *t) {
   switch (d->init) {
   case HRM_INIT_CONST: return hrm_tensor_fill(t, d->init_arg);
   case HRM_INIT_TRUNC_NORMAL: return hrm_tensor_trunc_normal(t, &p->rng, d->init_arg);
   case HRM_INIT_LECUN:
      return hrm_tensor_trunc_normal(t, &p->rng, 1.0 / sqrt((double)d->shape[d->ndim - 1]));
   default: return HRM_OK; /* zero: the blocks are allocated zeroed */
   }
}

/* Init rules draw on the host: off the CPU they fill a host tensor that is then uploaded. */
static int init_tensor(hrm_params *p, hrm_named *d) {
   if (p->device == HRM_DEVICE_CPU || d->init == HRM_INIT_ZERO) return init_values(p, d, d->value);
   hrm_tensor *host;
   HRM_TRY(hrm_tensor_new(&host, HRM_DTYPE_F32, d->ndim, d->shape));
   int rc = init_values(p, d, host);
   if (rc == HRM_OK) rc = hrm_tensor_copy(d->value, host);
   hrm_tensor_free(host);
   return rc;
}

int hrm_params_build(hrm_params *p, int32_t init) {
   HRM_CHECK(p, HRM_ERR_ARG, "params_build: store is NULL");
   HRM_CHECK(!p->built, HRM_ERR_STATE, "params_build: the store is built already");
   HRM_CHECK(p->count > 0, HRM_ERR_STATE, "params_build: nothing was declared");
   const int64_t n = p->num_params > 0 ? p->num_params : 1;
   HRM_TRY(hrm_tensor_new_device(&p->params, HRM_DTYPE_F32, 1, &n, p->device));
   HRM_TRY(hrm_tensor_new_device(&p->grads, HRM_DTYPE_F32, 1, &n, p->device));
   for (int32_t i = 0; i < p->count; i++) {
      hrm_named *d = &p->tensors[i];
      if (d->kind == HRM_KIND_PARAM) {
         HRM_TRY(hrm_tensor_view(&d->value, p->params, d->offset, d->ndim, d->shape));
         HRM_TRY(hrm_tensor_view(&d->grad, p->grads, d->offset, d->ndim, d->shape));
      } else {
         HRM_TRY(hrm_tensor_new_device(&d->value, HRM_DTYPE_F32, d->ndim, d->shape, p->device));
      }
   }
   p->built = 1;
   if (init)
      for (int32_t i = 0; i < p->count; i++) HRM_TRY(init_tensor(p, &p->tensors[i]));
   return HRM_OK;
}

int32_t hrm_params_built(const hrm_params *p) { return p ? p->built : 0; }
int64_t hrm_params_num_parameters(const hrm_params *p) { return p ? p->num_params : 0; }
int32_t hrm_params_count(const hrm_params *p) { return p ? p->count : 0; }
hrm_rng *hrm_params_rng(hrm_params *p) { return p ? &p->rng : NULL; }
int32_t hrm_params_sparse_pending(const hrm_params *p) { return p ? p->srows : 0; }

int hrm_params_tensor(const hrm_params *p, int32_t i, const char **name, hrm_tensor **value,
                      hrm_tensor **grad, int32_t *kind) {
   if (value) *value = NULL;
   if (grad) *grad = NULL;
   HRM_CHECK(p, HRM_ERR_ARG, "params_tensor: store is NULL");
   HRM_CHECK(i >= 0 && i < p->count, HRM_ERR_RANGE,
             "params_tensor: index %d is out of range [0, %d)", i, p->count);
   const hrm_named *d = &p->tensors[i];
   if (name) *name = d->name;
   if (kind) *kind = d->kind;
   if (!value && !grad) return HRM_OK;
   HRM_CHECK(p->built, HRM_ERR_STATE, "params_tensor: '%s': the store is not built yet", d->name);
   if (value) HRM_TRY(hrm_tensor_view(value, d->value, 0, d->ndim, d->shape));
   if (grad && d->grad) {
      const int rc = hrm_tensor_view(grad, d->grad, 0, d->ndim, d->shape);
      if (rc != HRM_OK && value) {
         hrm_tensor_free(*value);
         *value = NULL;
      }
      return rc;
   }
   return HRM_OK;
}

int32_t hrm_params_find(const hrm_params *p, const char *name) {
   if (!p || !name) return -1;
   for (int32_t i = 0; i < p->count; i++)
      if (strcmp(p->tensors[i].name, name) == 0) return i;
   return -1;
}

int hrm_params_zero_grad(hrm_params *p) {
   HRM_CHECK(p, HRM_ERR_ARG, "params_zero_grad: store is NULL");
   if (p->grads) p->be->zero(p->grads->data, sizeof(float) * (size_t)p->grads->numel);
   p->srows = 0;
   return HRM_OK;
}

float *hrm_params_value_ptr(const hrm_params *p, int32_t i) {
   return i >= 0 && i < p->count && p->tensors[i].value ? p->tensors[i].value->data : NULL;
}

float *hrm_params_grad_ptr(const hrm_params *p, int32_t i) {
   return i >= 0 && i < p->count && p->tensors[i].grad ? p->tensors[i].grad->data : NULL;
}

float *hrm_params_scratch(hrm_params *p, size_t floats) {
   if (p->scratch_floats >= floats) return p->scratch;
   p->be->release(p->scratch);
   p->scratch = NULL;
   p->scratch_floats = 0;
   if (p->be->alloc((void **)&p->scratch, floats * sizeof(float)) != HRM_OK) return NULL;
   p->scratch_floats = floats;
   return p->scratch;
}

int hrm_params_sparse_append(hrm_params *p, int32_t rows, float **grad, int32_t **ids) {
   HRM_CHECK(p->sparse >= 0, HRM_ERR_STATE, "the store has no sparse table");
   const int32_t E = p->sparse_dim;
   if (p->srows + rows > p->scap) {
      int32_t cap = p->scap ? p->scap : 16;
      while (cap < p->srows + rows) cap *= 2;
      float *g = NULL;
      int32_t *id = NULL;
      if (p->be->alloc((void **)&g, sizeof(float) * (size_t)cap * (size_t)E) != HRM_OK ||
          p->be->alloc((void **)&id, sizeof(int32_t) * (size_t)cap) != HRM_OK) {
         p->be->release(g);
         return HRM_FAIL(HRM_ERR_MEMORY, "sparse gradient rows: out of memory");
      }
      if (p->srows > 0) {
         p->be->copy(g, p->sgrad, sizeof(float) * (size_t)p->srows * (size_t)E);
         p->be->copy(id, p->sgrad_ids, sizeof(int32_t) * (size_t)p->srows);
      }
      p->be->release(p->sgrad);
      p->be->release(p->sgrad_ids);
      p->sgrad = g;
      p->sgrad_ids = id;
      p->scap = cap;
   }
   *grad = p->sgrad + (size_t)p->srows * (size_t)E;
   *ids = p->sgrad_ids + p->srows;
   p->be->zero(*grad, sizeof(float) * (size_t)rows * (size_t)E);
   p->srows += rows;
   return HRM_OK;
}

int hrm_params_sparse_rows(hrm_tensor **ids, hrm_tensor **grads, const hrm_params *p) {
   HRM_CHECK(ids && grads, HRM_ERR_ARG, "params_sparse_rows: ids or grads is NULL");
   *ids = *grads = NULL;
   HRM_CHECK(p, HRM_ERR_ARG, "params_sparse_rows: store is NULL");
   HRM_CHECK(p->sparse >= 0, HRM_ERR_STATE, "params_sparse_rows: the store has no sparse table");
   const int64_t ishape[1] = {p->srows}, gshape[2] = {p->srows, p->sparse_dim};
   HRM_TRY(hrm_tensor_new(ids, HRM_DTYPE_I32, 1, ishape));
   const int rc = hrm_tensor_new(grads, HRM_DTYPE_F32, 2, gshape);
   if (rc != HRM_OK) {
      hrm_tensor_free(*ids);
      *ids = NULL;
      return rc;
   }
   int rc2 = HRM_OK;
   if (p->srows > 0) { /* host copies of the device rows */
      rc2 = p->be->download((*ids)->data, p->sgrad_ids, sizeof(int32_t) * (size_t)p->srows);
      if (rc2 == HRM_OK)
         rc2 = p->be->download((*grads)->data, p->sgrad,
                               sizeof(float) * (size_t)p->srows * (size_t)p->sparse_dim);
   }
   if (rc2 != HRM_OK) {
      hrm_tensor_free(*ids);
      hrm_tensor_free(*grads);
      *ids = *grads = NULL;
   }
   return rc2;
}
