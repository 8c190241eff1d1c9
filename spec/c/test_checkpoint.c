/* test_checkpoint.c — .hrm checkpoints: round trips, chunked data, read_into checks, malformed
 * and corrupted files, atomic writes, and replay of the fuzzing inputs.
 *
 * Every malformed input must come back as an error with a message, never a crash, a hang or a
 * read out of bounds (run under HRM_SANITIZE=ON to make the last part strict). Hand-made images
 * are packed with msgpack-c. Files live in a mkdtemp folder under /tmp, removed at the end.
 * spec/fuzz/regress/checkpoint (must not crash) and spec/fuzz/corpus/checkpoint (must parse)
 * are replayed.
 */
#include <dirent.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tmpfiles.h"
#include "checkpoint.h"
#include "fileio.h"

static hrm_tensor *filled(int32_t dtype, int32_t ndim, const int64_t *shape, double base) {
   hrm_tensor *t = NULL;
   if (hrm_tensor_new(&t, dtype, ndim, shape) != HRM_OK) return NULL;
   for (int64_t i = 0; i < t->numel; i++) hrm_tensor_set(t, i, base + (double)(i % 97) - 13);
   return t;
}

static int same_tensor(const hrm_tensor *a, const hrm_tensor *b) {
   if (!a || !b || a->dtype != b->dtype || a->ndim != b->ndim || a->numel != b->numel) return 0;
   for (int d = 0; d < a->ndim; d++)
      if (a->shape[d] != b->shape[d]) return 0;
   size_t bytes = (size_t)a->numel * hrm_dtype_size(a->dtype);
   return bytes == 0 || memcmp(a->data, b->data, bytes) == 0;
}

static int no_temp_files(void) {
   DIR *d = opendir(tmpdir);
   int clean = 1;
   for (struct dirent *e; d && (e = readdir(d));)
      if (strstr(e->d_name, ".tmp.")) {
         fprintf(stderr, "  temporary file left: %s\n", e->d_name);
         clean = 0;
      }
   if (d) closedir(d);
   return clean;
}

/* Parse from memory; when it parses, read every tensor (get, and read_into a fresh tensor). */
static int parse_mem(const void *data, size_t n) {
   hrm_checkpoint *f;
   int rc = hrm_checkpoint_open_memory(&f, data, n, "mem");
   if (rc != HRM_OK) return rc;
   if (!hrm_checkpoint_meta(f)) rc = HRM_ERR_STATE;
   for (int32_t i = 0; i < hrm_checkpoint_count(f) && rc == HRM_OK; i++) {
      const char *name = hrm_checkpoint_name(f, i);
      hrm_tensor *t = NULL, *u = NULL;
      int r = hrm_checkpoint_get(&t, f, name);
      if (r == HRM_OK) r = hrm_tensor_new(&u, t->dtype, t->ndim, t->shape);
      if (r == HRM_OK) r = hrm_checkpoint_read_into(u, f, name);
      if (r == HRM_OK && !same_tensor(t, u)) r = HRM_ERR_STATE;
      if (r != HRM_OK) rc = r;
      hrm_tensor_free(t);
      hrm_tensor_free(u);
   }
   hrm_checkpoint_free(f);
   return rc;
}

/* ---- round trip ------------------------------------------------------------------------------ */

#define NRT 8
static const char *rt_names[NRT] = {"w.f32", "b.f64", "a.bf16", "z.i32", "s.i64", "u8", "empty",
                                    "we\"ird\\name\n"};

static void make_tensors(hrm_tensor **t) {
   t[0] = filled(HRM_DTYPE_F32, 2, (int64_t[]){2, 3}, 0.5);
   t[1] = filled(HRM_DTYPE_F64, 1, (int64_t[]){5}, 1e-3);
   t[2] = filled(HRM_DTYPE_BF16, 3, (int64_t[]){3, 1, 2}, 0.25);
   t[3] = filled(HRM_DTYPE_I32, 4, (int64_t[]){2, 2, 2, 3}, 7);
   t[4] = filled(HRM_DTYPE_I64, 0, NULL, -5);
   t[5] = filled(HRM_DTYPE_U8, 1, (int64_t[]){7}, 20);
   t[6] = filled(HRM_DTYPE_F32, 2, (int64_t[]){0, 3}, 0);
   t[7] = filled(HRM_DTYPE_F32, 1, (int64_t[]){1}, 3);
}

static void free_tensors(hrm_tensor **t, int n) {
   for (int i = 0; i < n; i++) hrm_tensor_free(t[i]);
}

static const char *META = "{\"step\": 12, \"extra\": {\"note\": \"h\\u00e9\"}, \"list\": [1, 2.5]}";

/* Open path and compare it with the tensors and meta that were written. */
static void check_file(const char *path, hrm_tensor **t, const char *meta) {
   hrm_checkpoint *f = NULL;
   CHECK_OK(hrm_checkpoint_open(&f, path));
   if (!f) return;
   CHECK(strcmp(hrm_checkpoint_meta(f), meta) == 0);
   CHECK(hrm_checkpoint_count(f) == NRT);
   for (int32_t i = 1; i < hrm_checkpoint_count(f); i++)
      CHECK(strcmp(hrm_checkpoint_name(f, i - 1), hrm_checkpoint_name(f, i)) < 0);
   CHECK(hrm_checkpoint_name(f, -1) == NULL && hrm_checkpoint_name(f, NRT) == NULL);
   for (int i = 0; i < NRT; i++) {
      hrm_tensor *r = NULL;
      CHECK_OK(hrm_checkpoint_get(&r, f, rt_names[i]));
      CHECK(same_tensor(r, t[i]));
      hrm_tensor *u = NULL;
      CHECK_OK(hrm_tensor_new(&u, t[i]->dtype, t[i]->ndim, t[i]->shape));
      CHECK_OK(hrm_checkpoint_read_into(u, f, rt_names[i]));
      CHECK(same_tensor(u, t[i]));
      int32_t dtype = -1, ndim = -1;
      int64_t shape[4] = {0};
      CHECK_OK(hrm_checkpoint_info(&dtype, &ndim, shape, f, rt_names[i]));
      CHECK(dtype == t[i]->dtype && ndim == t[i]->ndim);
      CHECK(memcmp(shape, t[i]->shape, sizeof shape) == 0);
      hrm_tensor_free(r);
      hrm_tensor_free(u);
   }
   hrm_checkpoint_free(f);
}

static void test_roundtrip(void) {
   hrm_tensor *t[NRT];
   make_tensors(t);
   const char *path = tmp_path("rt.hrm");
   CHECK_OK(hrm_checkpoint_write(path, META, NRT, rt_names, (const hrm_tensor *const *)t));
   check_file(path, t, META);
   CHECK(no_temp_files());

   /* the same input gives the same bytes (names are sorted, nothing time-dependent) */
   const char *names2[NRT];
   const hrm_tensor *t2[NRT];
   for (int i = 0; i < NRT; i++) names2[i] = rt_names[NRT - 1 - i], t2[i] = t[NRT - 1 - i];
   CHECK_OK(hrm_checkpoint_write(tmp_path("rt2.hrm"), META, NRT, names2, t2));
   size_t n1, n2;
   unsigned char *a = read_raw(path, &n1), *b = read_raw(tmp_path("rt2.hrm"), &n2);
   CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
   CHECK(parse_mem(a, n1) == HRM_OK);
   free(a);
   free(b);

   /* a tensor stored as a list of bins (the layout of tensors over 4 GiB), 7-byte parts */
   uint64_t old = hrm_checkpoint_set_chunk_limit(7);
   CHECK_OK(hrm_checkpoint_write(tmp_path("chunked.hrm"), META, NRT, rt_names,
                                 (const hrm_tensor *const *)t));
   hrm_checkpoint_set_chunk_limit(old);
   CHECK(hrm_checkpoint_set_chunk_limit(0) == 0xffffffffull);
   check_file(tmp_path("chunked.hrm"), t, META);

   /* no tensors, default meta */
   hrm_checkpoint *f = NULL;
   CHECK_OK(hrm_checkpoint_write(tmp_path("none.hrm"), NULL, 0, NULL, NULL));
   CHECK_OK(hrm_checkpoint_open(&f, tmp_path("none.hrm")));
   CHECK(f && hrm_checkpoint_count(f) == 0 && strcmp(hrm_checkpoint_meta(f), "{}") == 0);
   hrm_checkpoint_free(f);
   hrm_checkpoint_free(NULL);
   CHECK(hrm_checkpoint_count(NULL) == 0 && hrm_checkpoint_meta(NULL) == NULL);
   free_tensors(t, NRT);
}

/* read_into: wrong dtype, shape, name and device are refused; dst is left as it was. */
static void test_read_into(void) {
   hrm_tensor *t[NRT];
   make_tensors(t);
   const char *path = tmp_path("ri.hrm");
   CHECK_OK(hrm_checkpoint_write(path, META, NRT, rt_names, (const hrm_tensor *const *)t));
   hrm_checkpoint *f = NULL;
   CHECK_OK(hrm_checkpoint_open(&f, path));
   hrm_tensor *d = filled(HRM_DTYPE_F64, 2, (int64_t[]){2, 3}, 9);
   hrm_tensor *keep = filled(HRM_DTYPE_F64, 2, (int64_t[]){2, 3}, 9);
   CHECK(hrm_checkpoint_read_into(d, f, "w.f32") == HRM_ERR_DTYPE);
   CHECK(strstr(hrm_last_error(), "is f32 in") && strstr(hrm_last_error(), "dst is f64"));
   hrm_tensor *s = filled(HRM_DTYPE_F32, 2, (int64_t[]){3, 2}, 9);
   CHECK(hrm_checkpoint_read_into(s, f, "w.f32") == HRM_ERR_SHAPE);
   CHECK(strstr(hrm_last_error(), "[2, 3]") && strstr(hrm_last_error(), "[3, 2]"));
   hrm_tensor *s1 = filled(HRM_DTYPE_F32, 1, (int64_t[]){6}, 9);
   CHECK(hrm_checkpoint_read_into(s1, f, "w.f32") == HRM_ERR_SHAPE);
   CHECK(hrm_checkpoint_read_into(d, f, "nope") == HRM_ERR_ARG);
   CHECK(strstr(hrm_last_error(), "no tensor named 'nope'"));
   CHECK(hrm_checkpoint_read_into(NULL, f, "w.f32") == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_read_into(d, NULL, "w.f32") == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_read_into(d, f, NULL) == HRM_ERR_ARG);
   CHECK(same_tensor(d, keep));
   hrm_tensor *g = (hrm_tensor *)1;
   CHECK(hrm_checkpoint_get(&g, f, "nope") == HRM_ERR_ARG && g == NULL);
   CHECK(hrm_checkpoint_get(NULL, f, "w.f32") == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_info(NULL, NULL, NULL, f, "nope") == HRM_ERR_ARG);
   CHECK_OK(hrm_checkpoint_info(NULL, NULL, NULL, f, "u8"));
   /* a view into a larger tensor is a valid destination */
   hrm_tensor *big = filled(HRM_DTYPE_F32, 1, (int64_t[]){20}, 0), *view = NULL;
   CHECK_OK(hrm_tensor_view(&view, big, 4, 2, (int64_t[]){2, 3}));
   CHECK_OK(hrm_checkpoint_read_into(view, f, "w.f32"));
   CHECK(same_tensor(view, t[0]));
   CHECK(hrm_tensor_get(big, 3) == 0 - 13 + 3 && hrm_tensor_get(big, 10) == 0 - 13 + 10);
   hrm_tensor_free(view);
   hrm_tensor_free(big);
   hrm_tensor_free(d);
   hrm_tensor_free(keep);
   hrm_tensor_free(s);
   hrm_tensor_free(s1);
   hrm_checkpoint_free(f);
   free_tensors(t, NRT);
}

/* The writer refuses bad arguments before it creates any file. */
static void test_write_errors(void) {
   hrm_tensor *t[NRT];
   make_tensors(t);
   const hrm_tensor *const *ct = (const hrm_tensor *const *)t;
   const char *path = tmp_path("bad.hrm");
   CHECK(hrm_checkpoint_write(path, "{", NRT, rt_names, ct) == HRM_ERR_ARG);
   CHECK(strstr(hrm_last_error(), "one JSON object"));
   CHECK(hrm_checkpoint_write(path, "[1]", NRT, rt_names, ct) == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_write(path, "{} {}", NRT, rt_names, ct) == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_write(path, "", NRT, rt_names, ct) == HRM_ERR_ARG);
   const char *dup[2] = {"a", "a"};
   CHECK(hrm_checkpoint_write(path, NULL, 2, dup, ct) == HRM_ERR_ARG);
   CHECK(strstr(hrm_last_error(), "given twice"));
   const char *empty[1] = {""};
   CHECK(hrm_checkpoint_write(path, NULL, 1, empty, ct) == HRM_ERR_ARG);
   const hrm_tensor *nul[1] = {NULL};
   CHECK(hrm_checkpoint_write(path, NULL, 1, rt_names, nul) == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_write(path, NULL, -1, rt_names, ct) == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_write(path, NULL, 1, NULL, ct) == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_write(NULL, NULL, 0, NULL, NULL) == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_write("", NULL, 0, NULL, NULL) == HRM_ERR_ARG);
   char longname[1100];
   memset(longname, 'x', sizeof longname - 1);
   longname[sizeof longname - 1] = '\0';
   const char *ln[1] = {longname};
   CHECK(hrm_checkpoint_write(path, NULL, 1, ln, ct) == HRM_ERR_ARG);
   hrm_tensor fake = *t[0];
   fake.device = HRM_DEVICE_CUDA;
   const hrm_tensor *fk[1] = {&fake};
   CHECK(hrm_checkpoint_write(path, NULL, 1, rt_names, fk) == HRM_ERR_DEVICE);
   fake = *t[0];
   fake.numel = 7;
   CHECK(hrm_checkpoint_write(path, NULL, 1, rt_names, fk) == HRM_ERR_SHAPE);
   fake = *t[0];
   fake.dtype = 99;
   CHECK(hrm_checkpoint_write(path, NULL, 1, rt_names, fk) == HRM_ERR_DTYPE);
   CHECK(access(path, F_OK) != 0 && no_temp_files());
   CHECK(hrm_checkpoint_write(tmp_path("no/such/folder.hrm"), NULL, 0, NULL, NULL) == HRM_ERR_IO);
   free_tensors(t, NRT);
}

/* ---- malformed files ------------------------------------------------------------------------ */

typedef struct img {
   msgpack_sbuffer sb;
   msgpack_packer pk;
} img;

static msgpack_packer *img_new(img *m) {
   msgpack_sbuffer_init(&m->sb);
   msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
   return &m->pk;
}

static void raw(img *m, const void *bytes, size_t n) { msgpack_sbuffer_write(&m->sb, bytes, n); }

static void str(msgpack_packer *pk, const char *s) {
   msgpack_pack_str(pk, strlen(s));
   msgpack_pack_str_body(pk, s, strlen(s));
}

/* format, version, meta and the "tensors" key with a map head of n entries (4 top keys). */
static void head(msgpack_packer *pk, const char *meta, uint32_t n) {
   msgpack_pack_map(pk, 4);
   str(pk, "format");
   str(pk, "hrm");
   str(pk, "version");
   msgpack_pack_uint8(pk, 1);
   str(pk, "meta");
   str(pk, meta);
   str(pk, "tensors");
   msgpack_pack_map(pk, n);
}

/* One f32 tensor entry with `bytes` bytes of data. */
static void tensor(msgpack_packer *pk, const char *name, const char *dtype, int ndim,
                   const int64_t *shape, size_t bytes) {
   static const unsigned char zeros[64];
   str(pk, name);
   msgpack_pack_map(pk, 3);
   str(pk, "dtype");
   str(pk, dtype);
   str(pk, "shape");
   msgpack_pack_array(pk, (size_t)ndim);
   for (int d = 0; d < ndim; d++) msgpack_pack_int64(pk, shape[d]);
   str(pk, "data");
   msgpack_pack_bin(pk, bytes);
   msgpack_pack_bin_body(pk, zeros, bytes);
}

static void expect_bad(int line, img *m, const char *needle) {
   hrm_clear_error();
   int rc = parse_mem(m->sb.data, m->sb.size);
   int ok = rc != HRM_OK && hrm_last_error()[0] && (!needle || strstr(hrm_last_error(), needle));
   if (!ok)
      fprintf(stderr, "  line %d: rc %d, message '%s' (wanted '%s')\n", line, rc,
              hrm_last_error(), needle ? needle : "");
   CHECK(ok);
   msgpack_sbuffer_destroy(&m->sb);
}
#define BAD(m, needle) expect_bad(__LINE__, m, needle)

static void expect_good(int line, img *m) {
   int rc = parse_mem(m->sb.data, m->sb.size);
   if (rc != HRM_OK) fprintf(stderr, "  line %d: %s\n", line, hrm_last_error());
   CHECK(rc == HRM_OK);
   msgpack_sbuffer_destroy(&m->sb);
}
#define GOOD(m) expect_good(__LINE__, m)

static void test_malformed(void) {
   img m;
   msgpack_packer *pk;
   const int64_t s2[1] = {2};

   pk = img_new(&m);
   BAD(&m, "is empty");
   pk = img_new(&m);
   raw(&m, "\x10\0\0\0\0\0\0\0{\"a\":1}        ", 24);
   BAD(&m, "looks like safetensors");
   pk = img_new(&m);
   msgpack_pack_array(pk, 0);
   BAD(&m, "does not start with a msgpack map");
   pk = img_new(&m);
   msgpack_pack_map(pk, 0);
   BAD(&m, "has no \"format\"");

   /* the top level */
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   str(pk, "format");
   str(pk, "pt");
   BAD(&m, "format 'pt'");
   pk = img_new(&m);
   msgpack_pack_map(pk, 2);
   str(pk, "format");
   str(pk, "hrm");
   str(pk, "version");
   msgpack_pack_uint8(pk, 3);
   BAD(&m, "version 3 checkpoint");
   pk = img_new(&m);
   msgpack_pack_map(pk, 2);
   str(pk, "format");
   str(pk, "hrm");
   str(pk, "version");
   str(pk, "1");
   BAD(&m, "\"version\" is a string, expected a non-negative integer");
   pk = img_new(&m);
   msgpack_pack_map(pk, 2);
   str(pk, "format");
   str(pk, "hrm");
   str(pk, "version");
   msgpack_pack_int8(pk, -1);
   BAD(&m, "\"version\" is negative");
   pk = img_new(&m);
   msgpack_pack_map(pk, 2);
   str(pk, "format");
   str(pk, "hrm");
   str(pk, "version");
   msgpack_pack_int16(pk, -300);
   BAD(&m, "negative");
   pk = img_new(&m);
   msgpack_pack_map(pk, 3);
   str(pk, "format");
   str(pk, "hrm");
   str(pk, "version");
   msgpack_pack_uint8(pk, 1);
   str(pk, "meta");
   str(pk, "{}");
   BAD(&m, "no \"tensors\"");
   pk = img_new(&m);
   msgpack_pack_map(pk, 2);
   str(pk, "format");
   str(pk, "hrm");
   str(pk, "format");
   str(pk, "hrm");
   BAD(&m, "\"format\" appears twice");
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   str(pk, "weights");
   msgpack_pack_nil(pk);
   BAD(&m, "unknown top-level key 'weights'");
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   msgpack_pack_uint8(pk, 7);
   msgpack_pack_nil(pk);
   BAD(&m, "a top-level key is an integer, expected a string");
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   raw(&m, "\xc1\xc0", 2);
   BAD(&m, "reserved byte 0xc1");
   pk = img_new(&m);
   head(pk, "{}", 0);
   raw(&m, "\0", 1);
   BAD(&m, "1 bytes after the checkpoint's end");

   /* meta */
   pk = img_new(&m);
   head(pk, "{", 0);
   BAD(&m, "meta is not valid JSON");
   pk = img_new(&m);
   head(pk, "[1, 2]", 0);
   BAD(&m, "meta is JSON but not an object");
   pk = img_new(&m);
   head(pk, "{} x", 0);
   BAD(&m, "after its JSON object");
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   str(pk, "meta");
   msgpack_pack_str(pk, 3);
   msgpack_pack_str_body(pk, "{\0}", 3);
   BAD(&m, "meta has a NUL byte");
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   str(pk, "meta");
   msgpack_pack_bin(pk, 2);
   msgpack_pack_bin_body(pk, "{}", 2);
   BAD(&m, "\"meta\" is binary data, expected a string");

   /* tensor entries */
   pk = img_new(&m);
   head(pk, "{}", 1);
   tensor(pk, "w", "f16", 1, s2, 4);
   BAD(&m, "unknown dtype 'f16'");
   pk = img_new(&m);
   head(pk, "{}", 1);
   tensor(pk, "w", "f32", 5, (int64_t[]){1, 1, 1, 1, 2}, 8);
   BAD(&m, "has 5 dims");
   pk = img_new(&m);
   head(pk, "{}", 1);
   tensor(pk, "w", "f32", 1, (int64_t[]){-2}, 8);
   BAD(&m, "size 1 of tensor 'w' is negative");
   pk = img_new(&m);
   head(pk, "{}", 1);
   tensor(pk, "w", "f32", 1, s2, 4);
   BAD(&m, "f32 [2] (8 bytes) but holds 4 bytes");
   pk = img_new(&m);
   head(pk, "{}", 1);
   tensor(pk, "w", "f32", 2, (int64_t[]){0, INT64_MAX}, 0);
   BAD(&m, "overflows");
   pk = img_new(&m);
   head(pk, "{}", 1);
   tensor(pk, "w", "f32", 2, (int64_t[]){1 << 20, 1 << 20}, 0);
   BAD(&m, "holds 0 bytes");
   pk = img_new(&m);
   head(pk, "{}", 2);
   tensor(pk, "w", "f32", 1, s2, 8);
   tensor(pk, "w", "f32", 1, s2, 8);
   BAD(&m, "tensor 'w' appears twice");
   pk = img_new(&m);
   head(pk, "{}", 1);
   tensor(pk, "", "f32", 1, s2, 8);
   BAD(&m, "name is 0 bytes");
   pk = img_new(&m);
   head(pk, "{}", 1);
   msgpack_pack_str(pk, 3);
   msgpack_pack_str_body(pk, "a\0b", 3);
   BAD(&m, "name has a NUL byte");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 1);
   str(pk, "strides");
   msgpack_pack_nil(pk);
   BAD(&m, "unknown field 'strides'");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 2);
   str(pk, "dtype");
   str(pk, "f32");
   str(pk, "shape");
   msgpack_pack_array(pk, 0);
   BAD(&m, "tensor 'w' has no data");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 2);
   str(pk, "dtype");
   str(pk, "f32");
   str(pk, "dtype");
   str(pk, "f32");
   BAD(&m, "has two dtypes");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 1);
   str(pk, "data");
   str(pk, "abcd");
   BAD(&m, "expected binary data or a list of binary data");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 1);
   str(pk, "data");
   msgpack_pack_array(pk, 2);
   msgpack_pack_bin(pk, 1);
   msgpack_pack_bin_body(pk, "x", 1);
   msgpack_pack_uint8(pk, 1);
   BAD(&m, "is an integer, expected binary data");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 1);
   str(pk, "data");
   msgpack_pack_array(pk, 65537);
   for (int i = 0; i < 65537; i++) msgpack_pack_bin(pk, 0);
   BAD(&m, "split into 65537 parts");

   /* data as a list of bins, keys in another order: valid */
   pk = img_new(&m);
   msgpack_pack_map(pk, 4);
   str(pk, "tensors");
   msgpack_pack_map(pk, 1);
   str(pk, "w");
   msgpack_pack_map(pk, 3);
   str(pk, "data");
   msgpack_pack_array(pk, 3);
   msgpack_pack_bin(pk, 3);
   msgpack_pack_bin_body(pk, "abc", 3);
   msgpack_pack_bin(pk, 0);
   msgpack_pack_bin(pk, 5);
   msgpack_pack_bin_body(pk, "defgh", 5);
   str(pk, "shape");
   msgpack_pack_array(pk, 1);
   msgpack_pack_int32(pk, 2);
   str(pk, "dtype");
   str(pk, "f32");
   str(pk, "meta");
   str(pk, "{}");
   str(pk, "version");
   msgpack_pack_int64(pk, 1);
   str(pk, "format");
   str(pk, "hrm");
   GOOD(&m);

   /* declared sizes past the end of the file: refused before anything is allocated */
   pk = img_new(&m);
   raw(&m, "\xdf\xff\xff\xff\xff", 5);
   BAD(&m, "declares 4294967295 entries");
   pk = img_new(&m);
   head(pk, "{}", 0);
   m.sb.size--;                                   /* drop the empty tensors map */
   raw(&m, "\xdf\x7f\xff\xff\xff", 5);
   BAD(&m, "\"tensors\" declares 2147483647 entries");
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   str(pk, "meta");
   raw(&m, "\xdb\xff\xff\xff\xf0{}", 7);
   BAD(&m, "\"meta\" declares 4294967280 bytes but only 2 remain");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 1);
   str(pk, "data");
   raw(&m, "\xc6\xff\xff\xff\xff\0\0", 7);
   BAD(&m, "declares 4294967295 bytes but only 2 remain");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 1);
   str(pk, "shape");
   raw(&m, "\xdd\xff\xff\xff\xff", 5);
   BAD(&m, "declares 4294967295 items but only 0 bytes remain");
   pk = img_new(&m);
   head(pk, "{}", 1);
   str(pk, "w");
   msgpack_pack_map(pk, 1);
   str(pk, "data");
   raw(&m, "\xdd\x00\x01\x00\x00\xc4", 6);
   BAD(&m, "declares 65536 items but only 1 bytes remain");
   pk = img_new(&m);
   msgpack_pack_map(pk, 1);
   str(pk, "version");
   raw(&m, "\xcf\0\0", 3);
   BAD(&m, "ends inside the head of \"version\"");
   pk = img_new(&m);
   msgpack_pack_map(pk, 2);
   str(pk, "format");
   BAD(&m, "ends where \"format\" was expected");

   unsigned char d[1] = {0};
   CHECK(hrm_checkpoint_open_memory(NULL, d, 0, "x") == HRM_ERR_ARG);
   hrm_checkpoint *f = (hrm_checkpoint *)1;
   CHECK(hrm_checkpoint_open_memory(&f, NULL, 5, "x") == HRM_ERR_ARG && f == NULL);
}

static void test_bad_files(void) {
   hrm_checkpoint *f = (hrm_checkpoint *)1;
   CHECK(hrm_checkpoint_open(&f, tmp_path("missing.hrm")) == HRM_ERR_IO && f == NULL);
   CHECK(strstr(hrm_last_error(), "missing.hrm"));
   CHECK(hrm_checkpoint_open(&f, tmpdir) == HRM_ERR_IO);
   CHECK(strstr(hrm_last_error(), "a folder"));
   CHECK(write_raw(tmp_path("empty.hrm"), "", 0) == 0);
   CHECK(hrm_checkpoint_open(&f, tmp_path("empty.hrm")) == HRM_ERR_FORMAT);
   CHECK(strstr(hrm_last_error(), "is empty"));
   const char *fifo = tmp_path("fifo.hrm");
   if (mkfifo(fifo, 0600) == 0) {
      CHECK(hrm_checkpoint_open(&f, fifo) == HRM_ERR_IO); /* refused, never blocks */
      unlink(fifo);
   }
   CHECK(hrm_checkpoint_open(NULL, "x") == HRM_ERR_ARG);
   CHECK(hrm_checkpoint_open(&f, NULL) == HRM_ERR_ARG);
}

/* Every truncation of a valid file, then random bit flips and byte stores: errors, never
 * crashes; a file that still parses reads back in full. */
static void test_corruptions(void) {
   hrm_tensor *t[NRT];
   make_tensors(t);
   const char *path = tmp_path("fuzz.hrm");
   uint64_t old = hrm_checkpoint_set_chunk_limit(16); /* include lists of bins */
   CHECK_OK(hrm_checkpoint_write(path, META, NRT, rt_names, (const hrm_tensor *const *)t));
   hrm_checkpoint_set_chunk_limit(old);
   free_tensors(t, NRT);
   size_t n;
   unsigned char *orig = read_raw(path, &n);
   CHECK(orig != NULL);
   if (!orig) return;
   int truncated_ok = 1;
   for (size_t len = 0; len < n; len++) {
      hrm_clear_error();
      int rc = parse_mem(orig, len);
      if (rc == HRM_OK || !hrm_last_error()[0]) truncated_ok = 0;
   }
   CHECK(truncated_ok);

   unsigned char *buf = malloc(n);
   uint64_t state = 0x9e3779b97f4a7c15ull;
   int ok = 0, errors = 0, silent = 0;
   for (int round = 0; round < 3000; round++) {
      memcpy(buf, orig, n);
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      if (round % 2 == 0) { /* flip 1..4 bits */
         for (int k = 0; k <= (int)(state >> 60) % 4; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(state >> 33) % n;
            buf[at] ^= (unsigned char)(1u << ((state >> 20) % 8));
         }
      } else { /* store a random byte, often one of the length bytes 0xc4..0xdf */
         size_t at = (size_t)(state >> 33) % n;
         buf[at] = (state >> 9) % 2 ? (unsigned char)(0xc4 + (state >> 12) % 28)
                                    : (unsigned char)(state >> 12);
      }
      hrm_clear_error();
      int rc = parse_mem(buf, n);
      if (rc == HRM_OK) ok++;
      else if (hrm_last_error()[0]) errors++;
      else silent++;
   }
   CHECK(silent == 0);
   CHECK(errors > 1000);
   printf("corruptions: %zu truncations rejected; %d flips parsed, %d rejected\n", n, ok, errors);
   free(buf);
   free(orig);
}

/* Files found by fuzzing (must not crash) and the seed corpus (must parse). */
static void replay_folder(const char *folder, int must_parse) {
   DIR *d = opendir(folder);
   if (!d) return;
   int count = 0;
   for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.' || strstr(e->d_name, ".md")) continue;
      char path[512];
      snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
      struct stat st;
      if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      size_t n;
      unsigned char *p = read_raw(path, &n);
      if (!p) continue;
      hrm_clear_error();
      int rc = parse_mem(p, n);
      if (must_parse && rc != HRM_OK) fprintf(stderr, "  %s: %s\n", path, hrm_last_error());
      CHECK(must_parse ? rc == HRM_OK : (rc == HRM_OK || hrm_last_error()[0]));
      free(p);
      count++;
   }
   closedir(d);
   printf("replayed %d files from %s\n", count, folder);
}

/* ---- atomic writes --------------------------------------------------------------------------- */

static void test_atomic_write(void) {
   const char *path = tmp_path("atomic.hrm");
   hrm_tensor *small = filled(HRM_DTYPE_F32, 1, (int64_t[]){4}, 2);
   hrm_tensor *large = filled(HRM_DTYPE_F32, 1, (int64_t[]){1 << 20}, 3);
   const char *nm[1] = {"x"};
   CHECK_OK(hrm_checkpoint_write(path, "{\"v\": 1}", 1, nm, (const hrm_tensor *const *)&small));
   size_t n0;
   unsigned char *before = read_raw(path, &n0);

   /* a write that fails midway (file size limit -> EFBIG) keeps the old file, leaves no temp */
   struct rlimit old, lim;
   getrlimit(RLIMIT_FSIZE, &old);
   lim = old;
   lim.rlim_cur = 64 * 1024;
   void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
   if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
      int rc = hrm_checkpoint_write(path, "{\"v\": 2}", 1, nm, (const hrm_tensor *const *)&large);
      setrlimit(RLIMIT_FSIZE, &old);
      CHECK(rc == HRM_ERR_IO);
      CHECK(strstr(hrm_last_error(), "atomic.hrm") != NULL);
      size_t n1;
      unsigned char *after = read_raw(path, &n1);
      CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0);
      free(after);
      CHECK(no_temp_files());
   }
   signal(SIGXFSZ, prev);

   /* a rename that fails (the target is a non-empty folder) leaves no temporary file */
   const char *dir = tmp_path("occupied");
   mkdir(dir, 0700);
   char inside[300];
   snprintf(inside, sizeof inside, "%s/keep", dir);
   write_raw(inside, "k", 1);
   CHECK(hrm_checkpoint_write(dir, NULL, 1, nm, (const hrm_tensor *const *)&small) == HRM_ERR_IO);
   CHECK(access(inside, F_OK) == 0 && no_temp_files());
   unlink(inside);
   rmdir(dir);

   /* a successful rewrite replaces the file */
   CHECK_OK(hrm_checkpoint_write(path, "{\"v\": 3}", 1, nm, (const hrm_tensor *const *)&large));
   hrm_checkpoint *f = NULL;
   CHECK_OK(hrm_checkpoint_open(&f, path));
   hrm_tensor *r = NULL;
   CHECK_OK(hrm_checkpoint_get(&r, f, "x"));
   CHECK(same_tensor(r, large));
   CHECK(f && strcmp(hrm_checkpoint_meta(f), "{\"v\": 3}") == 0);
   hrm_tensor_free(r);
   hrm_checkpoint_free(f);
   free(before);
   hrm_tensor_free(small);
   hrm_tensor_free(large);
}

/* A tensor larger than the reader's copy block (64 MiB), so mapped pages are released while
 * it is copied; the bytes must come through unchanged. */
static void test_large_tensor(void) {
   const int64_t n = (66 << 20) / 4;
   hrm_tensor *t = NULL, *u = NULL;
   CHECK_OK(hrm_tensor_new(&t, HRM_DTYPE_F32, 1, &n));
   CHECK_OK(hrm_tensor_new(&u, HRM_DTYPE_F32, 1, &n));
   if (!t || !u) return;
   float *p = t->data;
   for (int64_t i = 0; i < n; i++) p[i] = (float)(i % 1000003) * 0.5f;
   const char *nm[1] = {"big"};
   const char *path = tmp_path("large.hrm");
   CHECK_OK(hrm_checkpoint_write(path, NULL, 1, nm, (const hrm_tensor *const *)&t));
   hrm_checkpoint *f = NULL;
   CHECK_OK(hrm_checkpoint_open(&f, path));
   CHECK_OK(hrm_checkpoint_read_into(u, f, "big"));
   CHECK(same_tensor(t, u));
   hrm_checkpoint_free(f);
   unlink(path);
   hrm_tensor_free(t);
   hrm_tensor_free(u);
}

/* Remove everything left in tmpdir (one level). */
static void cleanup(void) {
   DIR *d = opendir(tmpdir);
   for (struct dirent *e; d && (e = readdir(d));) {
      if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
         continue;
      unlink(tmp_path(e->d_name));
   }
   if (d) closedir(d);
   rmdir(tmpdir);
}

int main(void) {
   snprintf(tmpdir, sizeof tmpdir, "/tmp/hrm_test_ck_XXXXXX");
   if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      return 1;
   }
   test_roundtrip();
   test_read_into();
   test_write_errors();
   test_malformed();
   test_bad_files();
   test_corruptions();
   replay_folder("spec/fuzz/regress/checkpoint", 0);
   replay_folder("spec/fuzz/corpus/checkpoint", 1);
   test_atomic_write();
   test_large_tensor();
   cleanup();
   return check_summary("test_checkpoint");
}
