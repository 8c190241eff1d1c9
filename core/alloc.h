/* alloc.h — the one allocator for large numeric buffers: tensor storage and kernel scratch.
 *
 * A normal build returns 64-byte aligned heap memory (aligned_alloc/free). A guard build
 * (cmake -DHRM_GUARD=ON) gives every buffer its own mapping with a PROT_NONE page touching its
 * end, so the first byte written or read past it faults at once, whoever does it (SIMD tails,
 * oneDNN's JIT kernels, scalar loops); with HRM_GUARD=front in the environment the guard page
 * touches its start instead. Contents are not zeroed in either build. Not for small objects.
 */
#ifndef HRM_ALLOC_H
#define HRM_ALLOC_H

#include <stddef.h>

/* A buffer of `bytes` bytes (0 allowed: a unique pointer with nothing behind it), or NULL when
 * out of memory. Normal build: 64-byte aligned. Guard build, end mode: aligned only to the largest
 * power of two dividing `bytes` (4 for an odd count of floats), so that the end is exact; front
 * mode: page aligned. Nothing in hrm needs more than element alignment (no aligned vector loads). */
void *hrm_buf_alloc(size_t bytes);
/* Release a buffer from hrm_buf_alloc; NULL is a no-op. */
void hrm_buf_free(void *p);
/* 0 in a normal build, 1 when buffers end at a guard page, 2 when they start at one. */
int hrm_buf_guard_mode(void);

#endif
