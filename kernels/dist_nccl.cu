/* dist_nccl.cu — the collectives of core/dist.c for CUDA tensors, over NCCL (core/dist.h).
 *
 * One communicator over every rank, made on the first collective: rank 0 draws the unique id and
 * core/dist.c's bootstrap (an MPI broadcast) hands it to the others. Collectives run on the CUDA
 * backend's stream, in place, and return once the stream has finished them, so the caller may
 * read or reuse the memory at once. Each rank drives the context's device: on a host with
 * several GPUs, give each rank its own with CUDA_VISIBLE_DEVICES.
 * Compiled to nothing without HRM_WITH_NCCL (core/dist.c then refuses CUDA tensors).
 */
#if defined(HRM_WITH_NCCL)
#include <nccl.h>
#include <string.h>

#include "common.cuh"

extern "C" {
#include "dist.h"
}

static ncclComm_t comm = nullptr;

static int nccl_failed(ncclResult_t r, const char *what) {
   return HRM_FAIL(HRM_ERR_DEVICE, "%s: NCCL failed: %s", what, ncclGetErrorString(r));
}

#define NCCL_TRY(call, what)                                 \
   do {                                                      \
      ncclResult_t nccl_r_ = (call);                         \
      if (nccl_r_ != ncclSuccess) return nccl_failed(nccl_r_, what); \
   } while (0)

static int nccl_type(int32_t dtype, ncclDataType_t *out) {
   switch (dtype) {
   case HRM_DTYPE_F32: *out = ncclFloat32; return HRM_OK;
   case HRM_DTYPE_F64: *out = ncclFloat64; return HRM_OK;
   case HRM_DTYPE_I32: *out = ncclInt32; return HRM_OK;
   case HRM_DTYPE_I64: *out = ncclInt64; return HRM_OK;
   case HRM_DTYPE_U8: *out = ncclUint8; return HRM_OK;
   case HRM_DTYPE_BF16: *out = ncclBfloat16; return HRM_OK;
   default: return HRM_FAIL(HRM_ERR_DTYPE, "dist (NCCL): dtype %d has no NCCL type", dtype);
   }
}

/* The communicator, made once: the unique id from rank 0 through the bootstrap. */
static int communicator(int32_t rank, int32_t size, hrm_nccl_share_fn share) {
   if (comm) return HRM_OK;
   if (!hrm_cuda_ready()) return hrm_cuda_status();
   static_assert(sizeof(ncclUniqueId) == HRM_NCCL_ID_BYTES, "ncclUniqueId size");
   ncclUniqueId id;
   memset(&id, 0, sizeof id);
   if (rank == 0) NCCL_TRY(ncclGetUniqueId(&id), "dist (NCCL unique id)");
   HRM_TRY(share(&id, sizeof id));
   NCCL_TRY(ncclCommInitRank(&comm, size, id, rank), "dist (NCCL communicator)");
   return HRM_OK;
}

/* Waits for the stream; a failure becomes HRM_ERR_DEVICE with CUDA's message. */
static int finish(void) { return hrm_cuda_sync(); }

int hrm_nccl_all_reduce(void *data, int64_t count, int32_t dtype, int32_t op, int32_t rank,
                        int32_t size, hrm_nccl_share_fn share) {
   ncclDataType_t type = ncclFloat32; /* set by nccl_type */
   HRM_TRY(nccl_type(dtype, &type));
   HRM_TRY(communicator(rank, size, share));
   if (count == 0) return HRM_OK;
   NCCL_TRY(ncclAllReduce(data, data, (size_t)count, type, op == 0 ? ncclSum : ncclMax, comm,
                          hrm_cuda_stream()),
            "dist_all_reduce (NCCL)");
   return finish();
}

int hrm_nccl_broadcast(void *data, int64_t count, int32_t dtype, int32_t root, int32_t rank,
                       int32_t size, hrm_nccl_share_fn share) {
   ncclDataType_t type = ncclFloat32; /* set by nccl_type */
   HRM_TRY(nccl_type(dtype, &type));
   HRM_TRY(communicator(rank, size, share));
   if (count == 0) return HRM_OK;
   NCCL_TRY(ncclBroadcast(data, data, (size_t)count, type, root, comm, hrm_cuda_stream()),
            "dist_broadcast (NCCL)");
   return finish();
}

int hrm_nccl_all_gather(void *out, const void *in, int64_t count, int32_t dtype, int32_t rank,
                        int32_t size, hrm_nccl_share_fn share) {
   ncclDataType_t type = ncclFloat32; /* set by nccl_type */
   HRM_TRY(nccl_type(dtype, &type));
   HRM_TRY(communicator(rank, size, share));
   if (count == 0) return HRM_OK;
   NCCL_TRY(ncclAllGather(in, out, (size_t)count, type, comm, hrm_cuda_stream()),
            "dist_all_gather (NCCL)");
   return finish();
}

void hrm_nccl_shutdown(void) {
   if (comm) ncclCommDestroy(comm);
   comm = nullptr;
}
#endif
