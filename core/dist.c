/* dist.c — the process group and its collectives: MPI for CPU tensors, NCCL for CUDA tensors.
 *
 * hrm_dist_init joins the job an MPI launcher started (OpenMPI, MPICH and PMIx environments are
 * recognised); anything else is world size 1 and starts nothing, so a plain `hrm script.lua`
 * needs no MPI. Collectives work in place, reject mismatched dtypes, shapes and devices on the
 * calling rank, and return MPI's own message on a communication failure (the communicator
 * returns errors instead of aborting). hrm_dist_reduce_gradients is the data-parallel step's
 * exchange: the flat gradient block summed, the sparse table's rows gathered in one process's order.
 * Does not: exit or abort on its own (hrm_dist_abort is the caller's explicit request), or
 * allocate per step once its scratch has grown to a step's size.
 */
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "dist.h"
#include "error.h"
#include "nn.h"

#if defined(HRM_WITH_MPI)
#include <mpi.h>
#endif

static struct {
   int inited, mpi, finalized;
   int32_t rank, size, local_size;
   /* host scratch of the sparse-row exchange, grown to the largest step seen */
   int32_t *counts; // (2 size) rows per rank and their displacements
   int32_t *ids;    // (2 ids_cap) the gathered ids (rank-major), then their ordered copy
   float *rows;     // (2 rows_cap) the same for the gradient rows
   size_t ids_cap, rows_cap;
} dist = {0, 0, 0, 0, 1, 1, NULL, NULL, NULL, 0, 0};

int32_t hrm_dist_rank(void) { return dist.rank; }
int32_t hrm_dist_size(void) { return dist.size; }
int32_t hrm_dist_local_size(void) { return dist.local_size; }

int32_t hrm_dist_mpi_built(void) {
#if defined(HRM_WITH_MPI)
   return 1;
#else
   return 0;
#endif
}

int32_t hrm_dist_nccl_built(void) {
#if defined(HRM_WITH_NCCL)
   return 1;
#else
   return 0;
#endif
}

#if defined(HRM_WITH_MPI)
/* 1 when an MPI launcher started this process (it sets the rank in the environment). */
static int launched(void) {
   static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
   for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
      if (getenv(vars[i])) return 1;
   return 0;
}

static int mpi_failed(int rc, const char *what) {
   char msg[MPI_MAX_ERROR_STRING];
   int len = 0;
   if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
   return HRM_FAIL(HRM_ERR_DEVICE, "%s: MPI failed on rank %d: %s", what, dist.rank, msg);
}
#define MPI_TRY(call, what)                                   \
   do {                                                       \
      int mpi_rc_ = (call);                                   \
      if (mpi_rc_ != MPI_SUCCESS) return mpi_failed(mpi_rc_, what); \
   } while (0)

static MPI_Datatype mpi_type(int32_t dtype) {
   switch (dtype) {
   case HRM_DTYPE_F32: return MPI_FLOAT;
   case HRM_DTYPE_F64: return MPI_DOUBLE;
   case HRM_DTYPE_I32: return MPI_INT32_T;
   case HRM_DTYPE_I64: return MPI_INT64_T;
   case HRM_DTYPE_U8: return MPI_UINT8_T;
   case HRM_DTYPE_BF16: return MPI_UINT16_T; /* moved as bits: broadcast and gather only */
   default: return MPI_DATATYPE_NULL;
   }
}

static void at_exit(void) { hrm_dist_finalize(); }
#endif

#if defined(HRM_WITH_NCCL)
/* The NCCL bootstrap: rank 0's unique id to every rank. */
static int share_id(void *id, size_t bytes) {
#if defined(HRM_WITH_MPI)
   if (dist.mpi) MPI_TRY(MPI_Bcast(id, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD), "dist (NCCL bootstrap)");
#else
   (void)id;
   (void)bytes;
#endif
   return HRM_OK;
}
#endif

int hrm_dist_init(void) {
   if (dist.inited) return HRM_OK;
#if defined(HRM_WITH_MPI)
   if (launched()) {
      int provided = 0, ready = 0;
      MPI_Initialized(&ready);
      if (!ready) MPI_TRY(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "dist_init");
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      int r = 0, n = 1, local = 1;
      MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &r), "dist_init");
      MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &n), "dist_init");
      MPI_Comm host;
      MPI_TRY(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, r, MPI_INFO_NULL, &host),
              "dist_init");
      MPI_Comm_size(host, &local);
      MPI_Comm_free(&host);
      dist.mpi = 1;
      dist.rank = r;
      dist.size = n;
      dist.local_size = local;
      atexit(at_exit);
      /* threads: the host's cores shared among its ranks, unless the user chose a count
       * (HRM_THREADS, OMP_NUM_THREADS, or hrm_set_threads before this call) */
      if (local > 1 && !getenv("HRM_THREADS") && !getenv("OMP_NUM_THREADS") &&
          hrm_get_threads() == omp_get_num_procs()) {
         int t = omp_get_num_procs() / local;
         HRM_TRY(hrm_set_threads(t < 1 ? 1 : t));
      }
   }
#endif
   dist.inited = 1;
   return HRM_OK;
}

int hrm_dist_finalize(void) {
   if (!dist.inited || dist.finalized) return HRM_OK;
   dist.finalized = 1;
#if defined(HRM_WITH_NCCL)
   hrm_nccl_shutdown();
#endif
   free(dist.counts);
   free(dist.ids);
   free(dist.rows);
   dist.counts = dist.ids = NULL;
   dist.rows = NULL;
   dist.ids_cap = dist.rows_cap = 0;
#if defined(HRM_WITH_MPI)
   if (dist.mpi) {
      int done = 0;
      MPI_Finalized(&done);
      if (!done) MPI_TRY(MPI_Finalize(), "dist_finalize");
   }
#endif
   return HRM_OK;
}

int hrm_dist_abort(int32_t status) {
#if defined(HRM_WITH_MPI)
   if (dist.mpi && dist.size > 1 && !dist.finalized) MPI_Abort(MPI_COMM_WORLD, status);
#endif
   (void)status;
   return HRM_OK;
}

/* The checks every collective makes of a tensor before any rank moves data. */
static int usable(const hrm_tensor *t, const char *fname, const char *arg) {
   HRM_CHECK(dist.inited && !dist.finalized, HRM_ERR_STATE,
             "%s: call hrm_dist_init first (and not after hrm_dist_finalize)", fname);
   HRM_CHECK(t, HRM_ERR_ARG, "%s: %s is NULL", fname, arg);
   HRM_CHECK(t->dtype >= 0 && t->dtype < HRM_DTYPE_COUNT, HRM_ERR_DTYPE, "%s: %s has dtype %d",
             fname, arg, t->dtype);
   HRM_CHECK(t->device == HRM_DEVICE_CPU || t->device == HRM_DEVICE_CUDA, HRM_ERR_ARG,
             "%s: %s is on device %d", fname, arg, t->device);
#if !defined(HRM_WITH_NCCL)
   HRM_CHECK(t->device != HRM_DEVICE_CUDA, HRM_ERR_DEVICE,
             "%s: %s is a CUDA tensor and this build has no NCCL\n---> HINT: build with CUDA and "
             "NCCL (its headers and library ship with the CUDA toolkit), or move it to the CPU",
             fname, arg);
#endif
   return HRM_OK;
}

int hrm_dist_all_reduce(hrm_tensor *t, int32_t op) {
   HRM_TRY(usable(t, "dist_all_reduce", "t"));
   HRM_CHECK(op == HRM_DIST_SUM || op == HRM_DIST_MAX, HRM_ERR_ARG,
             "dist_all_reduce: op = %d is not HRM_DIST_SUM (0) or HRM_DIST_MAX (1)", op);
   HRM_CHECK(t->dtype != HRM_DTYPE_BF16, HRM_ERR_DTYPE,
             "dist_all_reduce: bf16 tensors are not reduced (f32, f64, i32, i64, u8)");
#if defined(HRM_WITH_NCCL)
   if (t->device == HRM_DEVICE_CUDA)
      return hrm_nccl_all_reduce(t->data, t->numel, t->dtype, op, dist.rank, dist.size, share_id);
#endif
#if defined(HRM_WITH_MPI)
   if (dist.mpi) {
      const size_t esize = hrm_dtype_size(t->dtype);
      for (int64_t done = 0; done < t->numel;) { /* MPI counts are int: chunks of 2^30 */
         const int64_t n = t->numel - done < (1 << 30) ? t->numel - done : (1 << 30);
         MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, (char *)t->data + done * esize, (int)n,
                               mpi_type(t->dtype), op == HRM_DIST_SUM ? MPI_SUM : MPI_MAX,
                               MPI_COMM_WORLD),
                 "dist_all_reduce");
         done += n;
      }
   }
#endif
   return HRM_OK;
}

int hrm_dist_broadcast(hrm_tensor *t, int32_t root) {
   HRM_TRY(usable(t, "dist_broadcast", "t"));
   HRM_CHECK(root >= 0 && root < dist.size, HRM_ERR_RANGE,
             "dist_broadcast: root = %d is not a rank (0..%d)", root, dist.size - 1);
#if defined(HRM_WITH_NCCL)
   if (t->device == HRM_DEVICE_CUDA)
      return hrm_nccl_broadcast(t->data, t->numel, t->dtype, root, dist.rank, dist.size, share_id);
#endif
#if defined(HRM_WITH_MPI)
   if (dist.mpi) {
      const size_t esize = hrm_dtype_size(t->dtype);
      for (int64_t done = 0; done < t->numel;) {
         const int64_t n = t->numel - done < (1 << 30) ? t->numel - done : (1 << 30);
         MPI_TRY(MPI_Bcast((char *)t->data + done * esize, (int)n, mpi_type(t->dtype), root,
                           MPI_COMM_WORLD),
                 "dist_broadcast");
         done += n;
      }
   }
#endif
   return HRM_OK;
}

int hrm_dist_all_gather(hrm_tensor *out, const hrm_tensor *in) {
   HRM_TRY(usable(out, "dist_all_gather", "out"));
   HRM_TRY(usable(in, "dist_all_gather", "in"));
   HRM_CHECK(out->dtype == in->dtype && out->device == in->device, HRM_ERR_DTYPE,
             "dist_all_gather: out (%s) and in (%s) differ in dtype or device",
             hrm_dtype_name(out->dtype), hrm_dtype_name(in->dtype));
   HRM_CHECK(out->numel == in->numel * dist.size, HRM_ERR_SHAPE,
             "dist_all_gather: out has %lld elements, %d ranks x %lld = %lld expected",
             (long long)out->numel, dist.size, (long long)in->numel,
             (long long)(in->numel * dist.size));
   HRM_CHECK(in->numel <= INT_MAX, HRM_ERR_RANGE,
             "dist_all_gather: in has %lld elements, at most %d are gathered at once",
             (long long)in->numel, INT_MAX);
#if defined(HRM_WITH_NCCL)
   if (in->device == HRM_DEVICE_CUDA)
      return hrm_nccl_all_gather(out->data, in->data, in->numel, in->dtype, dist.rank, dist.size,
                                 share_id);
#endif
   const size_t bytes = (size_t)in->numel * hrm_dtype_size(in->dtype);
#if defined(HRM_WITH_MPI)
   if (dist.mpi) {
      MPI_TRY(MPI_Allgather(in->data, (int)in->numel, mpi_type(in->dtype), out->data,
                            (int)in->numel, mpi_type(in->dtype), MPI_COMM_WORLD),
              "dist_all_gather");
      return HRM_OK;
   }
#endif
   if (bytes > 0 && out->data != in->data) memmove(out->data, in->data, bytes);
   return HRM_OK;
}

int hrm_dist_barrier(void) {
   HRM_CHECK(dist.inited && !dist.finalized, HRM_ERR_STATE,
             "dist_barrier: call hrm_dist_init first (and not after hrm_dist_finalize)");
#if defined(HRM_WITH_MPI)
   if (dist.mpi) MPI_TRY(MPI_Barrier(MPI_COMM_WORLD), "dist_barrier");
#endif
   return HRM_OK;
}

#if defined(HRM_WITH_MPI)
/* Grow one scratch buffer to 2 x n elements of `esize` bytes (kept for the next steps). */
static int grow(void **buf, size_t *cap, size_t n, size_t esize) {
   if (n <= *cap) return HRM_OK;
   void *p = realloc(*buf, 2 * n * esize);
   HRM_CHECK(p, HRM_ERR_MEMORY, "dist_reduce_gradients: out of memory for %zu gathered rows", n);
   *buf = p;
   *cap = n;
   return HRM_OK;
}

/* The sparse rows of every rank onto each, reordered as one process appends them. */
static int gather_sparse_rows(hrm_params *p, int32_t chunks) {
   const int n = dist.size;
   const int64_t E = p->sparse_dim;
   if (!dist.counts) {
      dist.counts = calloc((size_t)n * 2, sizeof(int32_t));
      HRM_CHECK(dist.counts, HRM_ERR_MEMORY, "dist_reduce_gradients: out of memory");
   }
   int32_t *counts = dist.counts, *displs = dist.counts + n;
   int32_t mine = p->srows;
   MPI_TRY(MPI_Allgather(&mine, 1, MPI_INT32_T, counts, 1, MPI_INT32_T, MPI_COMM_WORLD),
           "dist_reduce_gradients");
   int64_t total = 0;
   int uniform = chunks >= 1;
   for (int r = 0; r < n; r++) {
      displs[r] = (int32_t)total;
      total += counts[r];
      uniform = uniform && counts[r] % chunks == 0;
   }
   if (total == 0) return HRM_OK;
   HRM_CHECK(total * E <= INT_MAX, HRM_ERR_RANGE,
             "dist_reduce_gradients: %lld sparse rows of %lld are more than one exchange holds",
             (long long)total, (long long)E);
   HRM_TRY(grow((void **)&dist.ids, &dist.ids_cap, (size_t)total, sizeof(int32_t)));
   HRM_TRY(grow((void **)&dist.rows, &dist.rows_cap, (size_t)(total * E), sizeof(float)));
   /* the second halves first hold this rank's rows (a host copy of device memory), then the
    * ordered result; the first halves receive the rank-major gather */
   int32_t *ids_all = dist.ids, *ids_ord = dist.ids + dist.ids_cap;
   float *rows_all = dist.rows, *rows_ord = dist.rows + dist.rows_cap;
   if (mine > 0) {
      HRM_TRY(p->be->download(ids_ord, p->sgrad_ids, sizeof(int32_t) * (size_t)mine));
      HRM_TRY(p->be->download(rows_ord, p->sgrad, sizeof(float) * (size_t)(mine * E)));
   }
   MPI_TRY(MPI_Allgatherv(ids_ord, mine, MPI_INT32_T, ids_all, counts, displs,
                          MPI_INT32_T, MPI_COMM_WORLD),
           "dist_reduce_gradients");
   for (int r = 0; r < n; r++) { /* the same call in units of floats */
      counts[r] = (int32_t)(counts[r] * E);
      displs[r] = (int32_t)(displs[r] * E);
   }
   MPI_TRY(MPI_Allgatherv(rows_ord, (int)(mine * E), MPI_FLOAT, rows_all, counts,
                          displs, MPI_FLOAT, MPI_COMM_WORLD),
           "dist_reduce_gradients");
   int64_t at = 0;
   if (uniform) { /* block j of every rank in rank order, for j = 1..chunks */
      for (int32_t j = 0; j < chunks; j++)
         for (int r = 0; r < n; r++) {
            const int64_t len = counts[r] / E / chunks, from = displs[r] / E + j * len;
            memcpy(ids_ord + at, ids_all + from, sizeof(int32_t) * (size_t)len);
            memcpy(rows_ord + at * E, rows_all + from * E, sizeof(float) * (size_t)(len * E));
            at += len;
         }
   } else {
      memcpy(ids_ord, ids_all, sizeof(int32_t) * (size_t)total);
      memcpy(rows_ord, rows_all, sizeof(float) * (size_t)(total * E));
   }
   p->srows = 0;
   float *g = NULL;
   int32_t *ids = NULL;
   HRM_TRY(hrm_params_sparse_append(p, (int32_t)total, &g, &ids));
   HRM_TRY(p->be->upload(ids, ids_ord, sizeof(int32_t) * (size_t)total));
   return p->be->upload(g, rows_ord, sizeof(float) * (size_t)(total * E));
}
#endif

int hrm_dist_reduce_gradients(hrm_params *p, int32_t chunks) {
   HRM_CHECK(p, HRM_ERR_ARG, "dist_reduce_gradients: store is NULL");
   HRM_CHECK(p->built, HRM_ERR_STATE, "dist_reduce_gradients: the store is not built yet");
   HRM_CHECK(chunks >= 1, HRM_ERR_ARG, "dist_reduce_gradients: chunks = %d must be >= 1", chunks);
   HRM_CHECK(dist.inited && !dist.finalized, HRM_ERR_STATE,
             "dist_reduce_gradients: call hrm_dist_init first (and not after hrm_dist_finalize)");
   if (dist.size == 1) return HRM_OK;
   HRM_TRY(hrm_dist_all_reduce(p->grads, HRM_DIST_SUM));
#if defined(HRM_WITH_MPI)
   if (p->sparse >= 0) return gather_sparse_rows(p, chunks);
#endif
   return HRM_OK;
}
