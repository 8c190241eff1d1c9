/* tensor_file.c — the helpers of tensor_file.h: shapes in messages and the writers' checked,
 * sorted list of named tensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileio.h"
#include "tensor_file.h"

#define TF_NAME "%.200s" /* tensor names in messages, cut at 200 bytes */

void hrm_format_shape(char *buf, size_t cap, int32_t ndim, const int64_t *shape) {
   size_t len = (size_t)snprintf(buf, cap, "[");
   for (int32_t i = 0; i < ndim && len < cap; i++)
      len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
   if (len < cap) snprintf(buf + len, cap - len, "]");
}

static int check_tensor(const char *who, const char *path, const char *name, const hrm_tensor *t,
                        int32_t i, size_t max_name, const char *reserved) {
   HRM_CHECK(name && name[0], HRM_ERR_ARG, "%s '%s': name %d is NULL or empty", who, path, i + 1);
   HRM_CHECK(strlen(name) <= max_name, HRM_ERR_ARG, "%s '%s': name %d is longer than %zu bytes",
             who, path, i + 1, max_name);
   HRM_CHECK(!reserved || strcmp(name, reserved) != 0, HRM_ERR_ARG, "%s '%s': '%s' is reserved "
             "and cannot name a tensor", who, path, reserved);
   HRM_CHECK(t, HRM_ERR_ARG, "%s '%s': tensor '" TF_NAME "' is NULL", who, path, name);
   HRM_CHECK(t->device == HRM_DEVICE_CPU, HRM_ERR_DEVICE, "%s '%s': tensor '" TF_NAME "' is not "
             "on the CPU\n---> HINT: copy it to the host first", who, path, name);
   HRM_CHECK(hrm_dtype_size(t->dtype), HRM_ERR_DTYPE, "%s '%s': tensor '" TF_NAME "' has "
             "unknown dtype %d", who, path, name, t->dtype);
   HRM_CHECK(t->ndim >= 0 && t->ndim <= 4, HRM_ERR_SHAPE, "%s '%s': tensor '" TF_NAME "' has %d "
             "dims", who, path, name, t->ndim);
   int64_t numel = 1;
   for (int32_t d = 0; d < t->ndim; d++) {
      HRM_CHECK(t->shape[d] >= 0 && (t->shape[d] == 0 || numel <= INT64_MAX / 16 / t->shape[d]),
                HRM_ERR_SHAPE, "%s '%s': tensor '" TF_NAME "' has a bad size %lld", who, path,
                name, (long long)t->shape[d]);
      numel *= t->shape[d];
   }
   HRM_CHECK(numel == t->numel, HRM_ERR_SHAPE, "%s '%s': tensor '" TF_NAME "' has numel %lld "
             "but its shape holds %lld", who, path, name, (long long)t->numel, (long long)numel);
   HRM_CHECK(numel == 0 || t->data, HRM_ERR_ARG, "%s '%s': tensor '" TF_NAME "' has no data", who,
             path, name);
   return HRM_OK;
}

static int cmp_named(const void *a, const void *b) {
   return strcmp(((const hrm_named_tensor *)a)->name, ((const hrm_named_tensor *)b)->name);
}

int hrm_named_tensors(hrm_named_tensor **out, const char *who, const char *path, int32_t n,
                      const char *const *names, const hrm_tensor *const *tensors,
                      size_t max_name, const char *reserved) {
   *out = NULL;
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "%s: path is NULL or empty", who);
   HRM_CHECK(n >= 0, HRM_ERR_ARG, "%s: tensor count %d is negative", who, n);
   HRM_CHECK(n == 0 || (names && tensors), HRM_ERR_ARG, "%s: names or tensors is NULL", who);
   HRM_TRY(hrm_host_little_endian(who));
   for (int32_t i = 0; i < n; i++)
      HRM_TRY(check_tensor(who, path, names[i], tensors[i], i, max_name, reserved));
   hrm_named_tensor *order = malloc((n ? (size_t)n : 1) * sizeof *order);
   HRM_CHECK(order, HRM_ERR_MEMORY, "%s '%s': out of memory", who, path);
   for (int32_t i = 0; i < n; i++) order[i] = (hrm_named_tensor){names[i], tensors[i]};
   if (n > 1) qsort(order, (size_t)n, sizeof *order, cmp_named);
   for (int32_t i = 1; i < n; i++) {
      if (strcmp(order[i - 1].name, order[i].name) == 0) {
         int rc = HRM_FAIL(HRM_ERR_ARG, "%s '%s': tensor name '" TF_NAME "' is given twice", who,
                           path, order[i].name);
         free(order);
         return rc;
      }
   }
   *out = order;
   return HRM_OK;
}
