/* fileio.h — internal file helpers shared by every reader and writer of the core (not public).
 *
 * Writers go through hrm_file_writer: bytes stream into a temporary file beside the target,
 * and commit() fsyncs it, renames it over the target and fsyncs the folder, so a reader sees
 * the old file or the whole new one, never a torn one. abort() (or any failure) removes the
 * temporary file and leaves the old file untouched. Readers load or mmap a whole regular file
 * with a size cap; validating readers open through hrm_image_open. Errors are HRM_ERR_IO with
 * the path and strerror; nothing here exits.
 */
#ifndef HRM_FILEIO_H
#define HRM_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "hrm.h"

/* ---- atomic writer ------------------------------------------------------------------------------
 * Usage:
 *    hrm_file_writer *w;
 *    HRM_TRY(hrm_file_writer_open(&w, path));
 *    if ((rc = hrm_file_writer_write(w, hdr, n)) != HRM_OK) {
 *       hrm_file_writer_abort(w);
 *       return rc;
 *    }
 *    ...
 *    return hrm_file_writer_commit(w);        // frees w whether or not it succeeds
 * Failures are sticky: after a failed write, later writes and commit return the same error. */

typedef struct hrm_file_writer hrm_file_writer;

/* [OUT] out: a writer whose bytes go to a new temporary file in path's folder. */
int hrm_file_writer_open(hrm_file_writer **out, const char *path);
/* Append n bytes (buffered; large blocks go straight to the file). */
int hrm_file_writer_write(hrm_file_writer *w, const void *data, size_t n);
/* Bytes accepted so far (the offset the next write lands at). */
uint64_t hrm_file_writer_offset(const hrm_file_writer *w);
/* Flush, fsync, rename over the target, fsync the folder; frees w. On failure the temporary
 * file is removed and the previous file (if any) is left as it was. */
int hrm_file_writer_commit(hrm_file_writer *w);
/* Remove the temporary file and free w; the target is untouched. NULL is a no-op. */
void hrm_file_writer_abort(hrm_file_writer *w);
/* The whole cycle for one buffer already in memory. */
int hrm_file_write_atomic(const char *path, const void *data, size_t n);

/* ---- whole-file reader ----------------------------------------------------------------------- */

enum hrm_file_read_flags {
   HRM_FILE_READ = 0,   /* copy the bytes into a malloc'ed buffer */
   HRM_FILE_MMAP = 1    /* map the file read-only (falls back to reading if mmap fails) */
};

typedef struct hrm_file_data {
   const uint8_t *data;  /* the bytes, size of them; NULL only when size == 0 */
   size_t size;
   void *base_;          /* owned buffer or mapping (internal) */
   int mapped_;          /* 1 when base_ is an mmap (internal) */
} hrm_file_data;

/* [OUT] out: the contents of the regular file at path. max_size > 0 refuses larger files
 * (HRM_ERR_FORMAT naming both sizes); 0 means no cap. Directories, FIFOs and devices are
 * refused rather than read, so a read never blocks. A mapped file that another process
 * truncates while mapped may still raise SIGBUS: use HRM_FILE_READ where that matters. */
int hrm_file_load(hrm_file_data *out, const char *path, size_t max_size, int flags);
/* [OUT] out: a private copy of n bytes of memory, released like a loaded file (lets a parser
 * written against hrm_file_data also run on buffers: fuzzers, tests, embedded files). */
int hrm_file_from_memory(hrm_file_data *out, const void *data, size_t n);
/* Release what hrm_file_load returned; safe on a zeroed struct and on one already released. */
void hrm_file_release(hrm_file_data *f);

/* ---- validating readers ----------------------------------------------------------------------
 * Every format stores little-endian bytes and hrm does not byte-swap: hosts are checked first. */

/* HRM_ERR_STATE on a big-endian host; `who` begins the message ("checkpoint", ...). */
int hrm_host_little_endian(const char *who);

/* [OUT] file: path's bytes (mapped) or, when path is NULL, a private copy of data[0..n); the
 * host is checked first. */
int hrm_image_load(hrm_file_data *file, const char *who, const char *path, const void *data,
                   size_t n);

/* The first member of a validating reader object: its bytes and the name messages give them. */
typedef struct hrm_image {
   hrm_file_data file;
   char *label;          /* the path, or a caller's label for memory */
} hrm_image;

/* [OUT] out: a new reader object of `size` zeroed bytes whose first member is an hrm_image,
 * holding the bytes hrm_image_load reads, labelled `label`, then checked by parse(object). On
 * any failure release(object) frees it (it must accept a zeroed one) and *out is NULL. */
int hrm_image_open(void **out, size_t size, const char *who, const char *path, const void *data,
                   size_t n, const char *label, int (*parse)(void *), void (*release)(void *));

#endif /* HRM_FILEIO_H */
