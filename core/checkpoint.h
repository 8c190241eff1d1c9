/* checkpoint.h — internal entry points of core/checkpoint.c (not part of the public API).
 *
 * The public reader and writer of .hrm checkpoints are declared in hrm.h. What is here lets the
 * fuzz harness and the C tests parse images held in memory and exercise the chunked layout that
 * tensors over 4 GiB use, without writing 4 GiB.
 */
#ifndef HRM_CHECKPOINT_H
#define HRM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "hrm.h"

/* [OUT] out: a checkpoint parsed from a private copy of `size` bytes at data, validated exactly
 * as hrm_checkpoint_open validates a file; `label` names it in messages. */
int hrm_checkpoint_open_memory(hrm_checkpoint **out, const void *data, size_t size,
                               const char *label);

/* The largest msgpack bin the writer emits (default and maximum 2^32 - 1 bytes); tensors with
 * more bytes are stored as a list of bins. Returns the previous limit; 0 restores the default. */
uint64_t hrm_checkpoint_set_chunk_limit(uint64_t bytes);

#endif /* HRM_CHECKPOINT_H */
