/* fileio.c — atomic file writer and whole-file reader used by every file format of the core.
 *
 * Writer: "<path>.tmp.<pid>.<n>" is created with O_EXCL in the target's folder, filled through
 * a buffer, fsync'ed, closed, renamed over <path>, and the folder is fsync'ed. Any failure
 * unlinks the temporary file; the target is only ever replaced by rename(2), never written.
 * Reader: regular files only (opened O_NONBLOCK so a FIFO cannot block us), size-capped,
 * read into memory or mapped read-only. Validating readers (checkpoint, safetensors, .hrmd) open
 * their bytes here. Not thread-safe per object; objects are independent.
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#define WRITER_BUFFER (1u << 18) /* 256 KiB; larger writes bypass the buffer */

struct hrm_file_writer {
   int fd;
   int rc;                /* first failure (sticky), HRM_OK while healthy */
   char *path;            /* the target */
   char *tmp;             /* the temporary file beside it */
   uint64_t offset;       /* bytes accepted so far */
   size_t used;           /* bytes waiting in buf */
   char msg[320];         /* the first failure's message, repeated on later calls */
   unsigned char buf[WRITER_BUFFER];
};

static const char *io_hint(int err) {
   switch (err) {
   case ENOENT: return "\n---> HINT: does the folder exist?";
   case EACCES:
   case EPERM:
   case EROFS: return "\n---> HINT: is the folder writable?";
   case ENOSPC:
   case EDQUOT:
   case EFBIG: return "\n---> HINT: is the disk (or quota) full?";
   default: return "";
   }
}

/* Record the first failure of w (with errno's text) and return its code. */
static int writer_fail(hrm_file_writer *w, const char *what, int err) {
   w->rc = HRM_FAIL(HRM_ERR_IO, "cannot %s '%s' (temporary '%s'): %s%s", what, w->path, w->tmp,
                    strerror(err), io_hint(err));
   snprintf(w->msg, sizeof w->msg, "%s", hrm_last_error());
   return w->rc;
}

static void writer_free(hrm_file_writer *w) {
   if (w->fd >= 0) close(w->fd);
   if (w->tmp) unlink(w->tmp);
   free(w->path);
   free(w->tmp);
   free(w);
}

int hrm_file_writer_open(hrm_file_writer **out, const char *path) {
   static atomic_uint counter;
   HRM_CHECK(out, HRM_ERR_ARG, "file writer: out is NULL");
   *out = NULL;
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "file writer: path is NULL or empty");
   size_t len = strlen(path);
   HRM_CHECK(path[len - 1] != '/', HRM_ERR_ARG, "file writer: '%s' names a folder, not a file",
             path);
   hrm_file_writer *w = malloc(sizeof *w);
   HRM_CHECK(w, HRM_ERR_MEMORY, "file writer: out of memory for '%s'", path);
   w->fd = -1;
   w->rc = HRM_OK;
   w->offset = 0;
   w->used = 0;
   w->msg[0] = '\0';
   w->tmp = NULL;
   w->path = malloc(len + 1);
   size_t cap = len + 48;
   char *tmp = malloc(cap);
   if (!w->path || !tmp) {
      free(w->path);
      free(tmp);
      free(w);
      return HRM_FAIL(HRM_ERR_MEMORY, "file writer: out of memory for '%s'", path);
   }
   memcpy(w->path, path, len + 1);
   int err = 0;
   for (int attempt = 0; attempt < 100; attempt++) {
      snprintf(tmp, cap, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1u));
      w->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (w->fd >= 0 || errno != EEXIST) break;
   }
   if (w->fd < 0) {
      err = errno;
      int rc = HRM_FAIL(HRM_ERR_IO, "cannot create temporary file '%s' to write '%s': %s%s",
                        tmp, path, strerror(err), io_hint(err));
      free(tmp);
      free(w->path);
      free(w);
      return rc;
   }
   w->tmp = tmp;
   *out = w;
   return HRM_OK;
}

/* Write all n bytes to the descriptor, retrying short writes and EINTR. */
static int write_fd(hrm_file_writer *w, const void *data, size_t n) {
   const unsigned char *p = data;
   while (n > 0) {
      size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
      ssize_t k = write(w->fd, p, chunk);
      if (k < 0) {
         if (errno == EINTR) continue;
         return writer_fail(w, "write", errno);
      }
      if (k == 0) return writer_fail(w, "write", EIO);
      p += k;
      n -= (size_t)k;
   }
   return HRM_OK;
}

static int writer_flush(hrm_file_writer *w) {
   if (w->used == 0) return HRM_OK;
   size_t n = w->used;
   w->used = 0;
   return write_fd(w, w->buf, n);
}

static int writer_sticky(const hrm_file_writer *w) {
   return HRM_FAIL(w->rc, "%s", w->msg);
}

int hrm_file_writer_write(hrm_file_writer *w, const void *data, size_t n) {
   HRM_CHECK(w, HRM_ERR_ARG, "file writer: writer is NULL");
   if (w->rc != HRM_OK) return writer_sticky(w);
   if (n == 0) return HRM_OK;
   HRM_CHECK(data, HRM_ERR_ARG, "file writer: %zu bytes from a NULL buffer for '%s'", n, w->path);
   if (w->used + n <= WRITER_BUFFER) {
      memcpy(w->buf + w->used, data, n);
      w->used += n;
   } else {
      HRM_TRY(writer_flush(w));
      if (n >= WRITER_BUFFER) {
         HRM_TRY(write_fd(w, data, n));
      } else {
         memcpy(w->buf, data, n);
         w->used = n;
      }
   }
   w->offset += n;
   return HRM_OK;
}

uint64_t hrm_file_writer_offset(const hrm_file_writer *w) { return w ? w->offset : 0; }

void hrm_file_writer_abort(hrm_file_writer *w) {
   if (w) writer_free(w);
}

/* The folder part of path ("." when there is none). Caller frees. */
static char *folder_of(const char *path) {
   const char *slash = strrchr(path, '/');
   if (!slash) return strdup(".");
   size_t n = slash == path ? 1 : (size_t)(slash - path);
   char *dir = malloc(n + 1);
   if (dir) {
      memcpy(dir, path, n);
      dir[n] = '\0';
   }
   return dir;
}

int hrm_file_writer_commit(hrm_file_writer *w) {
   HRM_CHECK(w, HRM_ERR_ARG, "file writer: writer is NULL");
   int rc = w->rc;
   if (rc != HRM_OK) {
      rc = writer_sticky(w);
      writer_free(w);
      return rc;
   }
   rc = writer_flush(w);
   if (rc == HRM_OK && fsync(w->fd) != 0) rc = writer_fail(w, "fsync", errno);
   int fd = w->fd;
   w->fd = -1;
   if (close(fd) != 0 && rc == HRM_OK) rc = writer_fail(w, "close", errno);
   if (rc == HRM_OK && rename(w->tmp, w->path) != 0) rc = writer_fail(w, "rename over", errno);
   if (rc != HRM_OK) {
      writer_free(w); /* unlinks the temporary file */
      return rc;
   }
   free(w->tmp);
   w->tmp = NULL; /* renamed: nothing left to remove */

   /* Make the rename itself durable. Some file systems cannot fsync a folder (EINVAL). */
   char *dir = folder_of(w->path);
   if (dir) {
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
         if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
            rc = HRM_FAIL(HRM_ERR_IO, "wrote '%s' but cannot fsync its folder '%s': %s", w->path,
                          dir, strerror(errno));
         close(dfd);
      }
      free(dir);
   }
   writer_free(w);
   return rc;
}

int hrm_file_write_atomic(const char *path, const void *data, size_t n) {
   hrm_file_writer *w;
   HRM_TRY(hrm_file_writer_open(&w, path));
   int rc = hrm_file_writer_write(w, data, n);
   if (rc != HRM_OK) {
      hrm_file_writer_abort(w);
      return rc;
   }
   return hrm_file_writer_commit(w);
}

/* ---- reader ---------------------------------------------------------------------------------- */

int hrm_file_load(hrm_file_data *out, const char *path, size_t max_size, int flags) {
   HRM_CHECK(out, HRM_ERR_ARG, "file load: out is NULL");
   memset(out, 0, sizeof *out);
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "file load: path is NULL or empty");
   int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
   if (fd < 0) {
      int err = errno;
      return HRM_FAIL(HRM_ERR_IO, "cannot open '%s': %s%s", path, strerror(err),
                      err == ENOENT ? "\n---> HINT: check the path (relative paths start at the "
                                      "current folder)" : "");
   }
   struct stat st;
   if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return HRM_FAIL(HRM_ERR_IO, "cannot stat '%s': %s", path, strerror(err));
   }
   if (!S_ISREG(st.st_mode)) {
      close(fd);
      return HRM_FAIL(HRM_ERR_IO, "'%s' is %s, not a regular file", path,
                      S_ISDIR(st.st_mode) ? "a folder" : "a device, pipe or socket");
   }
   fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
   uint64_t size = (uint64_t)st.st_size;
   if ((max_size > 0 && size > (uint64_t)max_size) || size > (uint64_t)SIZE_MAX / 2) {
      close(fd);
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s' is %llu bytes, more than the %zu this reader accepts",
                      path, (unsigned long long)size, max_size ? max_size : SIZE_MAX / 2);
   }
   out->size = (size_t)size;
   if (size == 0) {
      close(fd);
      return HRM_OK;
   }
   if (flags & HRM_FILE_MMAP) {
      void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
         close(fd);
         out->base_ = p;
         out->data = p;
         out->mapped_ = 1;
         return HRM_OK;
      }
   }
   unsigned char *buf = malloc((size_t)size);
   if (!buf) {
      close(fd);
      memset(out, 0, sizeof *out);
      return HRM_FAIL(HRM_ERR_MEMORY, "cannot allocate %llu bytes to read '%s'",
                      (unsigned long long)size, path);
   }
   size_t got = 0;
   while (got < (size_t)size) {
      ssize_t k = read(fd, buf + got, (size_t)size - got);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
         int err = k < 0 ? errno : 0;
         close(fd);
         free(buf);
         memset(out, 0, sizeof *out);
         return HRM_FAIL(HRM_ERR_IO, "cannot read '%s' (%zu of %llu bytes read): %s", path, got,
                         (unsigned long long)size, err ? strerror(err) : "file shrank");
      }
      got += (size_t)k;
   }
   close(fd);
   out->base_ = buf;
   out->data = buf;
   return HRM_OK;
}

int hrm_file_from_memory(hrm_file_data *out, const void *data, size_t n) {
   HRM_CHECK(out, HRM_ERR_ARG, "file from memory: out is NULL");
   memset(out, 0, sizeof *out);
   HRM_CHECK(data || n == 0, HRM_ERR_ARG, "file from memory: %zu bytes from a NULL buffer", n);
   if (n == 0) return HRM_OK;
   void *buf = malloc(n);
   HRM_CHECK(buf, HRM_ERR_MEMORY, "file from memory: cannot allocate %zu bytes", n);
   memcpy(buf, data, n);
   out->base_ = buf;
   out->data = buf;
   out->size = n;
   return HRM_OK;
}

void hrm_file_release(hrm_file_data *f) {
   if (!f) return;
   if (f->base_) {
      if (f->mapped_) munmap(f->base_, f->size);
      else free(f->base_);
   }
   memset(f, 0, sizeof *f);
}

/* ---- validating readers ---------------------------------------------------------------------- */

int hrm_host_little_endian(const char *who) {
   const uint16_t one = 1;
   unsigned char first;
   memcpy(&first, &one, 1);
   HRM_CHECK(first == 1, HRM_ERR_STATE, "%s: this host is big-endian; the format stores "
             "little-endian data and hrm does not byte-swap it", who);
   return HRM_OK;
}

int hrm_image_load(hrm_file_data *file, const char *who, const char *path, const void *data,
                   size_t n) {
   memset(file, 0, sizeof *file);
   HRM_TRY(hrm_host_little_endian(who));
   return path ? hrm_file_load(file, path, 0, HRM_FILE_MMAP) : hrm_file_from_memory(file, data, n);
}

int hrm_image_open(void **out, size_t size, const char *who, const char *path, const void *data,
                   size_t n, const char *label, int (*parse)(void *), void (*release)(void *)) {
   *out = NULL;
   hrm_image *img = calloc(1, size);
   HRM_CHECK(img, HRM_ERR_MEMORY, "%s: out of memory opening '%s'", who, label);
   int rc = (img->label = strdup(label))
               ? hrm_image_load(&img->file, who, path, data, n)
               : HRM_FAIL(HRM_ERR_MEMORY, "%s: out of memory opening '%s'", who, label);
   if (rc == HRM_OK) rc = parse(img);
   if (rc != HRM_OK) {
      release(img);
      return rc;
   }
   *out = img;
   return HRM_OK;
}
