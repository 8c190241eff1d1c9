/* test_alloc.c — hrm_buf_alloc: sizes, alignment, and (guard builds) a fault one byte out.
 *
 * Every build: buffers of awkward sizes are writable end to end, aligned as alloc.h promises,
 * and freed; tensors of those sizes too. Guard builds (-DHRM_GUARD=ON, with or without
 * HRM_GUARD=front): a child process touching the first byte past the end (end mode) or the
 * byte before the start (front mode) must die of SIGSEGV, and touching the last/first byte
 * inside must not.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "check.h"

static const size_t sizes[] = {0, 1, 3, 4, 60, 63, 64, 65, 4 * 129, 4095, 4096, 4097, 40000};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

static size_t largest_pow2_dividing(size_t n) { return n ? n & (~n + 1) : 4096; }

/* Run `touch(p, bytes)` on a fresh buffer in a child; the child's wait status. */
static int in_child(size_t bytes, long offset) {
   fflush(stdout);
   pid_t pid = fork();
   if (pid == 0) {
      signal(SIGSEGV, SIG_DFL);
      volatile char *p = hrm_buf_alloc(bytes);
      if (!p) _exit(3);
      p[offset] = 1;
      _exit(0);
   }
   int status = 0;
   waitpid(pid, &status, 0);
   return status;
}

int main(void) {
   const int mode = hrm_buf_guard_mode();
   printf("guard mode %d (%s)\n", mode, mode == 0 ? "none" : mode == 1 ? "end" : "front");
   for (int i = 0; i < NSIZES; i++) {
      const size_t n = sizes[i];
      unsigned char *p = hrm_buf_alloc(n);
      CHECK(p != NULL);
      if (!p) continue;
      memset(p, 0xA5, n);
      CHECK(n == 0 || (p[0] == 0xA5 && p[n - 1] == 0xA5));
      const uintptr_t a = (uintptr_t)p;
      if (mode == 0) CHECK(a % 64 == 0);
      if (mode == 1) CHECK(a % (largest_pow2_dividing(n) < 64 ? largest_pow2_dividing(n) : 64) == 0);
      if (mode == 2) CHECK(a % 4096 == 0);
      hrm_buf_free(p);
   }
   hrm_buf_free(NULL);

   /* tensors use the same allocator: every size holds zeros */
   for (int64_t len = 1; len <= 131; len += 13) {
      hrm_tensor *t = NULL;
      CHECK_OK(hrm_tensor_new(&t, HRM_DTYPE_F32, 1, &len));
      if (!t) continue;
      const float *x = t->data;
      int zero = 1;
      for (int64_t k = 0; k < len; k++) zero &= x[k] == 0.0f;
      CHECK(zero);
      hrm_tensor_free(t);
   }

   if (mode != 0) {
      for (int i = 1; i < NSIZES; i++) {
         const size_t n = sizes[i];
         const long inside = mode == 1 ? (long)n - 1 : 0, outside = mode == 1 ? (long)n : -1;
         const int ok = in_child(n, inside), bad = in_child(n, outside);
         CHECK(WIFEXITED(ok) && WEXITSTATUS(ok) == 0);
         CHECK(WIFSIGNALED(bad) && WTERMSIG(bad) == SIGSEGV);
      }
   }
   return check_summary("test_alloc");
}
