/* tensor_file.h — what the tensor file formats (.hrm checkpoints, safetensors) share (internal).
 *
 * A shape as messages print it, and the writers' list of named tensors: every one checked as
 * writable and the list sorted by name, before a byte is written.
 */
#ifndef HRM_TENSOR_FILE_H
#define HRM_TENSOR_FILE_H

#include <stddef.h>

#include "hrm.h"

/* "[2, 3]" into buf (cut to cap). */
void hrm_format_shape(char *buf, size_t cap, int32_t ndim, const int64_t *shape);

typedef struct hrm_named_tensor { const char *name; const hrm_tensor *t; } hrm_named_tensor;

/* [OUT] out: names[i] with tensors[i] sorted by name (malloc'ed, the caller frees it), after
 * checking the arguments, the host (little-endian) and each tensor: a name of 1 to max_name
 * bytes, not `reserved` (NULL: none), no name twice, and a host tensor of a known dtype, at most
 * 4 dims, numel matching its shape, with data. Messages begin with `who`. */
int hrm_named_tensors(hrm_named_tensor **out, const char *who, const char *path, int32_t n,
                      const char *const *names, const hrm_tensor *const *tensors,
                      size_t max_name, const char *reserved);

#endif /* HRM_TENSOR_FILE_H */
