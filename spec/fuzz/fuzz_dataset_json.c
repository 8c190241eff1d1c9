/* fuzz_dataset_json.c — libFuzzer harness for dataset.json and identifiers.json (core/npy.c).
 *
 * Each input is parsed both ways. dataset.json: a parse fills the metadata and a set name that
 * is a plain file-name part; the metadata then goes through hrm_dataset_new's checks.
 * identifiers.json: names are set on a dataset with 64 puzzle ids. Any crash, sanitizer
 * report, leak or hang is a bug. Build and run: see spec/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hrm.h"

/* internal, defined in core/npy.c */
int hrm_dataset_parse_json(hrm_dataset_meta *meta, char set[64], const void *data, size_t size,
                           const char *label);
int hrm_dataset_parse_identifiers(hrm_dataset *ds, const void *data, size_t size,
                                  const char *label);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
   hrm_dataset_meta m;
   char set[64];
   if (hrm_dataset_parse_json(&m, set, data, size, "fuzz") == HRM_OK) {
      size_t n = strnlen(set, sizeof set);
      if (n == 0 || n == sizeof set || strchr(set, '/')) abort();
      hrm_dataset *ds = NULL;
      if (hrm_dataset_new(&ds, &m) == HRM_OK) hrm_dataset_free(ds);
      else if (ds) abort();
   } else if (!hrm_last_error()[0]) {
      abort();
   }
   hrm_dataset_meta im;
   memset(&im, 0, sizeof im);
   im.vocab_size = 2;
   im.seq_len = 1;
   im.num_puzzle_identifiers = 64;
   hrm_dataset *ds = NULL;
   if (hrm_dataset_new(&ds, &im) != HRM_OK) abort();
   if (hrm_dataset_parse_identifiers(ds, data, size, "fuzz") == HRM_OK) {
      for (int32_t id = 0; id < 64; id++) {
         const char *s = hrm_dataset_identifier(ds, id);
         if (s) (void)strlen(s);
      }
   }
   hrm_dataset_free(ds);
   return 0;
}
