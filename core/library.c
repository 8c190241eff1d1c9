/* library.c — library-wide facts and settings: version, ABI, struct sizes, threads, BLAS.
 *
 * hrm_sizeof lets the Lua side check that its FFI view of every cdef struct agrees with the
 * compiler's (the ABI spec). Threads: one count for OpenMP and the GEMM library.
 */
#include <omp.h>
#include <string.h>

#include "cpu/gemm.h"
#include "error.h"

const char *hrm_version(void) { return HRM_VERSION_STRING; }

int32_t hrm_abi_version(void) { return 1; }

size_t hrm_sizeof(const char *type_name) {
   static const struct { const char *name; size_t size; } table[] = {
      {"hrm_tensor", sizeof(hrm_tensor)},         {"hrm_rng", sizeof(hrm_rng)},
      {"hrm_config", sizeof(hrm_config)},         {"hrm_batch", sizeof(hrm_batch)},
      {"hrm_step_opts", sizeof(hrm_step_opts)},   {"hrm_step_out", sizeof(hrm_step_out)},
      {"hrm_optim_config", sizeof(hrm_optim_config)},
   };
   if (!type_name) return 0;
   for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
      if (strcmp(table[i].name, type_name) == 0) return table[i].size;
   return 0;
}

const char *hrm_blas_info(void) { return hrm_cpu_gemm_name(); }

int32_t hrm_cuda_available(void) { return 0; }

int hrm_set_threads(int32_t n) {
   HRM_CHECK(n >= 1 && n <= 4096, HRM_ERR_ARG, "set_threads: %d threads is out of range 1..4096", n);
   omp_set_num_threads(n);
   hrm_cpu_gemm_set_threads(n);
   return HRM_OK;
}

int32_t hrm_get_threads(void) { return omp_get_max_threads(); }
