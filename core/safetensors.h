/* safetensors.h — internal entry points of core/safetensors.c (not part of the public API).
 *
 * The public reader and writer are declared in hrm.h. What is here lets the fuzz harness and the
 * C tests parse images held in memory, without a file.
 */
#ifndef HRM_SAFETENSORS_H
#define HRM_SAFETENSORS_H

#include <stddef.h>

#include "hrm.h"

/* [OUT] out: a safetensors image parsed from a private copy of `size` bytes at data, validated
 * exactly as hrm_safetensors_open validates a file; `label` names it in messages. */
int hrm_safetensors_open_memory(hrm_safetensors **out, const void *data, size_t size,
                                const char *label);

#endif /* HRM_SAFETENSORS_H */
