/* tmpfiles.h — temporary-file helpers shared by the C tests that write files (spec/c).
 *
 * Each test makes its own folder with mkdtemp into `tmpdir`, builds paths in it with tmp_path
 * (a small ring of buffers, so a few paths can be live at once), and writes or reads whole
 * files with write_raw / read_raw (read_raw: malloc'd copy, caller frees, NULL on failure).
 */
#ifndef HRM_SPEC_TMPFILES_H
#define HRM_SPEC_TMPFILES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

static char tmpdir[64];

static inline const char *tmp_path(const char *name) {
   static char buf[8][512];
   static int k;
   k = (k + 1) % 8;
   snprintf(buf[k], sizeof buf[k], "%s/%.400s", tmpdir, name);
   return buf[k];
}

static inline int write_raw(const char *path, const void *data, size_t n) {
   FILE *fp = fopen(path, "wb");
   if (!fp) return -1;
   size_t k = n ? fwrite(data, 1, n, fp) : 0;
   fclose(fp);
   return k == n ? 0 : -1;
}

static inline unsigned char *read_raw(const char *path, size_t *n) {
   hrm_file_data fd;
   if (hrm_file_load(&fd, path, 0, HRM_FILE_READ) != HRM_OK) return NULL;
   unsigned char *p = malloc(fd.size + 1);
   if (fd.size) memcpy(p, fd.data, fd.size);
   *n = fd.size;
   hrm_file_release(&fd);
   return p;
}

#endif
