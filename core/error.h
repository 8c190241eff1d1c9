/* error.h — internal error reporting for the C core (not part of the public API).
 *
 * HRM_CHECK(cond, code, fmt, ...) sets the thread-local message (prefixed with file:line) and
 * returns `code` from the enclosing function when cond is false. HRM_TRY(expr) propagates a
 * failing status. HRM_ASSERT is for internal invariants only (it aborts): never for user input.
 */
#ifndef HRM_ERROR_H
#define HRM_ERROR_H

#include <stdio.h>
#include <stdlib.h>
#include "hrm.h"

#if defined(__GNUC__)
#define HRM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HRM_PRINTF(a, b)
#endif

/* Set the message for the current thread and return code (so `return hrm_fail(...)` works). */
int hrm_fail(int code, const char *file, int line, const char *fmt, ...) HRM_PRINTF(4, 5);

#define HRM_FAIL(code, ...) hrm_fail((code), __FILE__, __LINE__, __VA_ARGS__)

#define HRM_CHECK(cond, code, ...)                                  \
   do {                                                             \
      if (!(cond)) return hrm_fail((code), __FILE__, __LINE__, __VA_ARGS__); \
   } while (0)

#define HRM_TRY(expr)                  \
   do {                                \
      int hrm_try_rc_ = (expr);        \
      if (hrm_try_rc_ != HRM_OK) return hrm_try_rc_; \
   } while (0)

#define HRM_ASSERT(cond)                                                          \
   do {                                                                           \
      if (!(cond)) {                                                              \
         fprintf(stderr, "hrm internal error %s:%d: %s\n", __FILE__, __LINE__, #cond); \
         abort();                                                                 \
      }                                                                           \
   } while (0)

#endif /* HRM_ERROR_H */
