/* fuzz_checkpoint.c — libFuzzer harness for the .hrm checkpoint reader (core/checkpoint.c).
 *
 * Each input is parsed from memory as a whole file; when it parses, every tensor is read back
 * twice (a new copy, and read_into a tensor of its shape) and the copies are compared. Any
 * crash, sanitizer report, leak or hang is a bug: errors must come back as status codes with a
 * message. Build and run: see spec/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
   hrm_checkpoint *f = NULL;
   hrm_clear_error();
   if (hrm_checkpoint_open_memory(&f, data, size, "fuzz") != HRM_OK) {
      if (f || !hrm_last_error()[0]) abort(); /* failures leave no object and a message */
      return 0;
   }
   if (!hrm_checkpoint_meta(f)) abort();
   int64_t total = 0;
   for (int32_t i = 0; i < hrm_checkpoint_count(f); i++) {
      const char *name = hrm_checkpoint_name(f, i);
      hrm_tensor *t = NULL, *u = NULL;
      if (!name || hrm_checkpoint_get(&t, f, name) != HRM_OK) abort(); /* parsed means readable */
      if (hrm_tensor_new(&u, t->dtype, t->ndim, t->shape) != HRM_OK) abort();
      if (hrm_checkpoint_read_into(u, f, name) != HRM_OK) abort();
      size_t bytes = (size_t)t->numel * hrm_dtype_size(t->dtype);
      if (bytes && memcmp(t->data, u->data, bytes) != 0) abort();
      total += (int64_t)bytes;
      hrm_tensor_free(t);
      hrm_tensor_free(u);
   }
   if (total > (int64_t)size) abort(); /* tensors never claim more bytes than the input holds */
   hrm_checkpoint_free(f);
   return 0;
}
