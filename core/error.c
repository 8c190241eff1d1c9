/* error.c — the thread-local last-error message behind hrm_last_error().
 *
 * hrm_fail() formats "message (file:line)" into a per-thread buffer and returns the code, so
 * failing paths read `return HRM_FAIL(HRM_ERR_ARG, "...")`. Messages are truncated, never
 * overflowed.
 */
#include <stdarg.h>
#include <string.h>

#include "error.h"

static _Thread_local char last_error[1024];

int hrm_fail(int code, const char *file, int line, const char *fmt, ...) {
   va_list ap;
   va_start(ap, fmt);
   int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
   va_end(ap);
   if (n < 0) n = 0;
   if ((size_t)n < sizeof last_error) {
      const char *base = strrchr(file, '/');
      snprintf(last_error + n, sizeof last_error - (size_t)n, " (%s:%d)", base ? base + 1 : file,
               line);
   }
   return code;
}

const char *hrm_last_error(void) { return last_error; }

void hrm_clear_error(void) { last_error[0] = '\0'; }
