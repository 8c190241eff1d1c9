/* grow.h — internal: room for one more element in a heap array that grows by doubling. */
#ifndef HRM_GROW_H
#define HRM_GROW_H

#include <stdlib.h>

#include "error.h"

/* Make *items (of *cap elements of `size` bytes, `count` used) hold count + 1; `what` names the
 * array in the error. */
static inline int hrm_grow(void **items, int32_t *cap, int32_t count, size_t size,
                           const char *what) {
   if (count < *cap) return HRM_OK;
   const int32_t n = *cap ? 2 * *cap : 16;
   void *p = realloc(*items, size * (size_t)n);
   HRM_CHECK(p, HRM_ERR_MEMORY, "%s: out of memory", what);
   *items = p;
   *cap = n;
   return HRM_OK;
}

#endif /* HRM_GROW_H */
