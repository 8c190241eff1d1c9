/* fuzz_npy.c — libFuzzer harness for the .npy reader (core/npy.c).
 *
 * Each input is parsed from memory as a whole .npy file. A parse either fails with a message
 * and no tensor, or yields a tensor whose elements all came from the input's data bytes (so it
 * can never hold more elements than the input has bytes). Any crash, sanitizer report, leak or
 * hang is a bug. Build and run: see spec/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hrm.h"

/* internal, defined in core/npy.c */
int hrm_npy_load_memory(hrm_tensor **out, const void *data, size_t size, const char *label);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
   hrm_tensor *t = NULL;
   if (hrm_npy_load_memory(&t, data, size, "fuzz") != HRM_OK) {
      if (t || !hrm_last_error()[0]) abort(); /* failures leave no tensor and a message */
      return 0;
   }
   if (!t || t->numel < 0 || t->numel > (int64_t)size) abort();
   volatile double sum = 0; /* touch every element */
   for (int64_t i = 0; i < t->numel; i++) sum += hrm_tensor_get(t, i);
   hrm_tensor_free(t);
   return 0;
}
