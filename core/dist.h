/* dist.h — the collectives' private door to NCCL (kernels/dist_nccl.cu), used by core/dist.c.
 *
 * core/dist.c owns the process group (MPI, or world size 1 without a launcher) and serves CPU
 * tensors itself; a CUDA tensor goes to these hooks, which exist when the library is built with
 * HRM_WITH_NCCL and otherwise fail with HRM_ERR_DEVICE. The communicator is made on first use
 * from a unique id that rank 0 draws and core/dist.c broadcasts (the usual MPI bootstrap).
 * Not part of the public API (hrm.h).
 */
#ifndef HRM_DIST_H
#define HRM_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "hrm.h"

#define HRM_NCCL_ID_BYTES 128  /* sizeof(ncclUniqueId) */

/* The bootstrap: rank 0 fills id (HRM_NCCL_ID_BYTES), every rank receives it (a broadcast). */
typedef int (*hrm_nccl_share_fn)(void *id, size_t bytes);

/* In-place collectives on device memory, on the CUDA backend's stream; they return once the
 * stream has finished them. count in elements of `dtype`; op is enum hrm_dist_op. */
int hrm_nccl_all_reduce(void *data, int64_t count, int32_t dtype, int32_t op, int32_t rank,
                        int32_t size, hrm_nccl_share_fn share);
int hrm_nccl_broadcast(void *data, int64_t count, int32_t dtype, int32_t root, int32_t rank,
                       int32_t size, hrm_nccl_share_fn share);
/* out (size * count) = every rank's in (count), rank-major. */
int hrm_nccl_all_gather(void *out, const void *in, int64_t count, int32_t dtype, int32_t rank,
                        int32_t size, hrm_nccl_share_fn share);
void hrm_nccl_shutdown(void);  /* frees the communicator (at finalize; safe when never made) */

#endif /* HRM_DIST_H */
