/* alloc.c — hrm_buf_alloc/hrm_buf_free: aligned heap buffers, or guard-page mappings (HRM_GUARD).
 *
 * Guard layout, one mapping per buffer (P = page size, R = bytes rounded up to P):
 *   end mode   [header P][slack | data (R)][PROT_NONE P]     data ends where the guard begins
 *   front mode [header P][PROT_NONE P][data | slack (R)]     data starts where the guard ends
 * The header page records the mapping, so the free needs only the data pointer; it sits at a
 * fixed distance below the data's first page. Every buffer costs at least three pages.
 */
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>

#if defined(HRM_GUARD)
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"

typedef struct guard_header {
   uint64_t magic;
   void *base;     // start of the mapping
   size_t length;  // bytes mapped
} guard_header;

enum { GUARD_MAGIC = 0x64726175476d7268ull };  // "hrmGuard"

static int guard_mode;  // 0 until first use, then 1 (end) or 2 (front)

int hrm_buf_guard_mode(void) {
   if (!guard_mode) {
      const char *env = getenv("HRM_GUARD");
      guard_mode = env && strcmp(env, "front") == 0 ? 2 : 1;
   }
   return guard_mode;
}

static size_t page_size(void) {
   static size_t page;
   if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
   return page;
}

void *hrm_buf_alloc(size_t bytes) {
   const size_t P = page_size();
   if (bytes > SIZE_MAX - 4 * P) return NULL;
   const size_t R = (bytes + P - 1) / P * P;
   const size_t length = R + 2 * P;
   char *base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
   if (base == MAP_FAILED) return NULL;
   char *data, *guard;
   if (hrm_buf_guard_mode() == 2) {
      guard = base + P;
      data = base + 2 * P;
   } else {
      guard = base + P + R;
      data = guard - bytes; /* bytes is a multiple of its own alignment: the end stays exact */
   }
   if (mprotect(guard, P, PROT_NONE) != 0) {
      munmap(base, length);
      return NULL;
   }
   guard_header *h = (guard_header *)base;
   h->magic = GUARD_MAGIC;
   h->base = base;
   h->length = length;
   return data;
}

void hrm_buf_free(void *p) {
   if (!p) return;
   const size_t P = page_size();
   uintptr_t first = (uintptr_t)p / P * P; /* the data's first page */
   if (hrm_buf_guard_mode() == 2) first -= P; /* the guard page sits between */
   guard_header *h = (guard_header *)(first - P);
   HRM_ASSERT(h->magic == GUARD_MAGIC); /* not from hrm_buf_alloc: a bug, never user input */
   h->magic = 0;
   munmap(h->base, h->length);
}

#else

int hrm_buf_guard_mode(void) { return 0; }

void *hrm_buf_alloc(size_t bytes) {
   if (bytes > SIZE_MAX - 64) return NULL;
   const size_t padded = bytes ? (bytes + 63) / 64 * 64 : 64;
   return aligned_alloc(64, padded);
}

void hrm_buf_free(void *p) { free(p); }

#endif
