/* fuzz_hrmd.c — libFuzzer harness for the .hrmd dataset reader (core/hrmd.c, core/dataset.c).
 *
 * Each input is parsed from memory as a whole .hrmd file. A parse either fails with a message
 * and no dataset, or yields a dataset that passed validation: then every test batch and some
 * train batches are drawn from it, which reads every example through the CSR indices. Any
 * crash, sanitizer report, leak or hang is a bug. Build and run: see spec/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hrm.h"

/* internal, defined in core/hrmd.c */
int hrm_dataset_open_hrmd_memory(hrm_dataset **out, const void *data, size_t size,
                                 const char *label);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Draw up to `limit` batches of B rows; every row read must be in bounds. */
static void drain(hrm_dataset *ds, int32_t train, int32_t B, int limit) {
   hrm_dataset_meta m;
   hrm_dataset_get_meta(&m, ds);
   if ((int64_t)m.seq_len * B > (1 << 20)) return; /* keep the batch small */
   hrm_sampler_config cfg = {.batch_size = B, .train = train, .max_epochs = 2, .seed = 1};
   hrm_sampler *s;
   if (hrm_sampler_new(&s, ds, &cfg) != HRM_OK) return;
   hrm_tensor *in = NULL, *lab = NULL, *pid = NULL;
   int64_t bs[2] = {B, m.seq_len};
   if (hrm_tensor_new(&in, HRM_DTYPE_I32, 2, bs) == HRM_OK &&
       hrm_tensor_new(&lab, HRM_DTYPE_I32, 2, bs) == HRM_OK &&
       hrm_tensor_new(&pid, HRM_DTYPE_I32, 1, bs) == HRM_OK) {
      int32_t count;
      for (int i = 0; i < limit; i++) {
         if (hrm_sampler_next(&count, in, lab, pid, s) != HRM_OK || count == 0) break;
         const int32_t *p = pid->data;
         for (int32_t r = 0; r < B; r++)
            if (p[r] < 0 || p[r] >= m.num_puzzle_identifiers) abort();
      }
   }
   hrm_tensor_free(in);
   hrm_tensor_free(lab);
   hrm_tensor_free(pid);
   hrm_sampler_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
   hrm_dataset *ds = NULL;
   if (hrm_dataset_open_hrmd_memory(&ds, data, size, "fuzz") != HRM_OK) {
      if (ds || !hrm_last_error()[0]) abort(); /* failures leave no dataset and a message */
      return 0;
   }
   hrm_dataset_arrays a;
   hrm_dataset_get_arrays(&a, ds);
   if (a.n < 0 || a.n_puzzles < 0 || a.n_groups < 0) abort();
   drain(ds, 0, 3, 1000);
   drain(ds, 1, 2, 50);
   hrm_dataset_free(ds);
   return 0;
}
