/* fuzz_safetensors.c — libFuzzer harness for the safetensors reader (core/safetensors.c).
 *
 * Each input is parsed from memory as a whole file; when it parses, every tensor is read back
 * and checked against the header's byte count. Any crash, sanitizer report, leak or hang is a
 * bug: errors must come back as status codes. Build and run: see spec/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hrm.h"
#include "safetensors.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
   hrm_safetensors *f = NULL;
   if (hrm_safetensors_open_memory(&f, data, size, "fuzz") != HRM_OK) {
      if (f || !hrm_last_error()[0]) abort(); /* failures must leave no object and a message */
      return 0;
   }
   int64_t total = 0;
   for (int32_t i = 0; i < hrm_safetensors_count(f); i++) {
      const char *name = hrm_safetensors_name(f, i);
      hrm_tensor *t = NULL;
      if (!name || hrm_safetensors_get(&t, f, name) != HRM_OK) abort(); /* parsed means readable */
      total += t->numel * (int64_t)hrm_dtype_size(t->dtype);
      hrm_tensor_free(t);
   }
   if (total > (int64_t)size) abort(); /* tensors never claim more bytes than the file holds */
   hrm_safetensors_free(f);
   return 0;
}
