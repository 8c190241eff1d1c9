/* test_safetensors.c — safetensors round trips, malformed files, atomic writes, model import.
 *
 * Every malformed input must come back as an error with a message, never a crash or a read
 * out of bounds (run under HRM_SANITIZE=ON to make the last part strict). Files live in a
 * mkdtemp folder under /tmp, removed at the end. Inputs in spec/fuzz/regress/safetensors and
 * spec/fuzz/corpus/safetensors are replayed; the corpus must parse.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tiny_store.h"
#include "tmpfiles.h"
#include "fileio.h"
#include "safetensors.h"

/* A safetensors image: 8-byte length, header (not padded), data. Caller frees. */
static unsigned char *image(size_t *n, const char *header, const void *data, size_t ndata) {
   size_t h = strlen(header);
   unsigned char *p = malloc(8 + h + ndata + 1);
   for (int i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)h >> (8 * i));
   memcpy(p + 8, header, h);
   if (ndata) memcpy(p + 8 + h, data, ndata);
   *n = 8 + h + ndata;
   return p;
}

/* Parse from memory; return the status, reading every tensor when it parses. */
static int parse_mem(const void *data, size_t n) {
   hrm_safetensors *f;
   int rc = hrm_safetensors_open_memory(&f, data, n, "mem");
   if (rc != HRM_OK) return rc;
   for (int32_t i = 0; i < hrm_safetensors_count(f); i++) {
      hrm_tensor *t;
      int r = hrm_safetensors_get(&t, f, hrm_safetensors_name(f, i));
      if (r != HRM_OK) rc = r;
      hrm_tensor_free(t);
   }
   hrm_safetensors_free(f);
   return rc;
}

/* The header must fail to parse with a message containing `needle` (if not NULL). */
static void expect_bad_header(int line, const char *header, const void *data, size_t ndata,
                              const char *needle) {
   size_t n;
   unsigned char *p = image(&n, header, data, ndata);
   hrm_clear_error();
   int rc = parse_mem(p, n);
   int ok = rc != HRM_OK && hrm_last_error()[0] && (!needle || strstr(hrm_last_error(), needle));
   if (!ok)
      fprintf(stderr, "  line %d: header %.80s -> rc %d, message '%s' (wanted '%s')\n", line,
              header, rc, hrm_last_error(), needle ? needle : "");
   CHECK(ok);
   free(p);
}
#define BAD(header, data, ndata, needle) expect_bad_header(__LINE__, header, data, ndata, needle)

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

/* ---- round trip ------------------------------------------------------------------------------ */

#define NRT 8
static const char *rt_names[NRT] = {"w.f32", "b.f64", "a.bf16", "z.i32", "s.i64", "u8", "empty",
                                    "we\"ird\\name\n"};

static void make_roundtrip_tensors(hrm_tensor **t) {
   t[0] = filled(HRM_DTYPE_F32, 2, (int64_t[]){2, 3}, 0.5);
   t[1] = filled(HRM_DTYPE_F64, 1, (int64_t[]){5}, 1e-3);
   t[2] = filled(HRM_DTYPE_BF16, 3, (int64_t[]){3, 1, 2}, 0.25);
   t[3] = filled(HRM_DTYPE_I32, 4, (int64_t[]){2, 2, 2, 3}, 7);
   t[4] = filled(HRM_DTYPE_I64, 0, NULL, -5);
   t[5] = filled(HRM_DTYPE_U8, 1, (int64_t[]){7}, 20);
   t[6] = filled(HRM_DTYPE_F32, 2, (int64_t[]){0, 3}, 0);
   t[7] = filled(HRM_DTYPE_F32, 1, (int64_t[]){1}, 3);
}

static void test_roundtrip(void) {
   hrm_tensor *t[NRT];
   make_roundtrip_tensors(t);
   const char *path = tmp_path("rt.safetensors");
   CHECK_OK(hrm_safetensors_write(path, NRT, rt_names, (const hrm_tensor *const *)t));

   size_t n;
   unsigned char *raw = read_raw(path, &n);
   CHECK(raw && n >= 8);
   if (raw) {
      uint64_t h = 0;
      for (int i = 7; i >= 0; i--) h = (h << 8) | raw[i];
      CHECK(h % 8 == 0 && 8 + h <= n);
      CHECK(raw[8] == '{');
      /* names appear in sorted order in the header */
      const char *hdr = (const char *)raw + 8;
      char *text = strndup(hdr, (size_t)h);
      const char *pa = strstr(text, "\"a.bf16\""), *pb = strstr(text, "\"b.f64\""),
                 *pz = strstr(text, "\"z.i32\"");
      CHECK(pa && pb && pz && pa < pb && pb < pz);
      free(text);
      free(raw);
   }

   hrm_safetensors *f;
   CHECK_OK(hrm_safetensors_open(&f, path));
   if (f) {
      CHECK(hrm_safetensors_count(f) == NRT);
      for (int32_t i = 1; i < hrm_safetensors_count(f); i++)
         CHECK(strcmp(hrm_safetensors_name(f, i - 1), hrm_safetensors_name(f, i)) < 0);
      CHECK(hrm_safetensors_name(f, -1) == NULL && hrm_safetensors_name(f, NRT) == NULL);
      for (int i = 0; i < NRT; i++) {
         hrm_tensor *r = NULL;
         CHECK_OK(hrm_safetensors_get(&r, f, rt_names[i]));
         if (!same_tensor(r, t[i])) fprintf(stderr, "  round trip differs: %s\n", rt_names[i]);
         CHECK(same_tensor(r, t[i]));
         CHECK(r && r->device == HRM_DEVICE_CPU);
         hrm_tensor_free(r);
      }
      hrm_tensor *r = (hrm_tensor *)1;
      CHECK(hrm_safetensors_get(&r, f, "nope") == HRM_ERR_ARG && r == NULL);
      CHECK(strstr(hrm_last_error(), "nope") != NULL);
      hrm_safetensors_free(f);
   }
   hrm_safetensors_free(NULL);

   /* an empty file set is valid too */
   CHECK_OK(hrm_safetensors_write(tmp_path("none.safetensors"), 0, NULL, NULL));
   CHECK_OK(hrm_safetensors_open(&f, tmp_path("none.safetensors")));
   CHECK(hrm_safetensors_count(f) == 0);
   hrm_safetensors_free(f);

   /* writer misuse */
   const char *dup[2] = {"x", "x"};
   const hrm_tensor *two[2] = {t[0], t[1]};
   CHECK(hrm_safetensors_write(tmp_path("dup"), 2, dup, two) == HRM_ERR_ARG);
   CHECK(strstr(hrm_last_error(), "'x'") != NULL);
   const char *meta[1] = {"__metadata__"};
   CHECK(hrm_safetensors_write(tmp_path("meta"), 1, meta, two) == HRM_ERR_ARG);
   const hrm_tensor *null_t[1] = {NULL};
   CHECK(hrm_safetensors_write(tmp_path("null"), 1, dup, null_t) == HRM_ERR_ARG);
   CHECK(hrm_safetensors_write(NULL, 0, NULL, NULL) == HRM_ERR_ARG);
   CHECK(hrm_safetensors_write(tmp_path("neg"), -1, NULL, NULL) == HRM_ERR_ARG);
   CHECK(hrm_safetensors_write(tmp_path("no/such/folder/x.safetensors"), 1, dup, two) ==
         HRM_ERR_IO);
   CHECK(strstr(hrm_last_error(), "no/such/folder") != NULL);
   CHECK(access(tmp_path("dup"), F_OK) != 0 && no_temp_files());

   for (int i = 0; i < NRT; i++) hrm_tensor_free(t[i]);
}

/* ---- malformed files ------------------------------------------------------------------------- */

static void test_malformed_files(void) {
   hrm_safetensors *f = (hrm_safetensors *)1;
   /* empty, short, missing, a folder, a FIFO (must not block) */
   CHECK(write_raw(tmp_path("empty"), "", 0) == 0);
   CHECK(hrm_safetensors_open(&f, tmp_path("empty")) == HRM_ERR_FORMAT && f == NULL);
   CHECK(strstr(hrm_last_error(), "empty") != NULL);
   CHECK(write_raw(tmp_path("short"), "\x02\0\0\0", 4) == 0);
   CHECK(hrm_safetensors_open(&f, tmp_path("short")) == HRM_ERR_FORMAT);
   CHECK(strstr(hrm_last_error(), "short") != NULL);
   CHECK(hrm_safetensors_open(&f, tmp_path("missing")) == HRM_ERR_IO);
   CHECK(strstr(hrm_last_error(), "missing") != NULL);
   CHECK(hrm_safetensors_open(&f, tmpdir) == HRM_ERR_IO);
   CHECK(strstr(hrm_last_error(), "folder") != NULL);
   if (mkfifo(tmp_path("fifo"), 0600) == 0) {
      CHECK(hrm_safetensors_open(&f, tmp_path("fifo")) == HRM_ERR_IO);
      unlink(tmp_path("fifo"));
   }
   CHECK(hrm_safetensors_open(NULL, "x") == HRM_ERR_ARG);
   CHECK(hrm_safetensors_open(&f, NULL) == HRM_ERR_ARG);

   /* header length past EOF and absurd, through a real file */
   unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
   CHECK(write_raw(tmp_path("huge"), big, 10) == 0);
   CHECK(hrm_safetensors_open(&f, tmp_path("huge")) == HRM_ERR_FORMAT);
   CHECK(strstr(hrm_last_error(), "limit") != NULL);
   unsigned char past[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
   CHECK(write_raw(tmp_path("past"), past, 10) == 0);
   CHECK(hrm_safetensors_open(&f, tmp_path("past")) == HRM_ERR_FORMAT);
   CHECK(strstr(hrm_last_error(), "past the end") != NULL);

   /* truncated data */
   hrm_tensor *t = filled(HRM_DTYPE_F32, 2, (int64_t[]){4, 4}, 1);
   const char *nm[1] = {"t"};
   CHECK_OK(hrm_safetensors_write(tmp_path("trunc"), 1, nm, (const hrm_tensor *const *)&t));
   size_t n;
   unsigned char *raw = read_raw(tmp_path("trunc"), &n);
   CHECK(raw != NULL);
   if (raw) {
      CHECK(write_raw(tmp_path("trunc"), raw, n - 1) == 0);
      CHECK(hrm_safetensors_open(&f, tmp_path("trunc")) == HRM_ERR_FORMAT);
      CHECK(strstr(hrm_last_error(), "'t'") != NULL);
      free(raw);
   }
   hrm_tensor_free(t);
}

static void test_malformed_headers(void) {
   unsigned char d[64] = {0};
   /* length too short for an object, not JSON, not an object, trailing bytes, NUL */
   BAD("", d, 0, "too short");
   BAD("{  ", d, 0, "not valid JSON");
   BAD("{\"a\": {\"dtype\": \"F32\",", d, 0, "not valid JSON");
   BAD("[1, 2]", d, 0, "a list");
   BAD("\"str\"", d, 0, "a string");
   BAD("12345678", d, 0, "a number");
   BAD("{} xyz", d, 0, "after its JSON");
   {
      size_t n;
      unsigned char *p = image(&n, "{}      ", d, 0);
      p[10] = '\0';
      CHECK(parse_mem(p, n) == HRM_ERR_FORMAT && strstr(hrm_last_error(), "NUL"));
      free(p);
   }
   /* entries of the wrong kind, missing fields */
   BAD("{\"a\": 3}", d, 0, "'a'");
   BAD("{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", d, 4, "dtype");
   BAD("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", d, 4, "shape");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", d, 4, "data_offsets");
   BAD("{\"a\": {\"dtype\": 5, \"shape\": [1], \"data_offsets\": [0, 4]}}", d, 4, "dtype");
   /* dtypes: unknown is named; a valid but unsupported one is a dtype error */
   BAD("{\"a\": {\"dtype\": \"Q7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", d, 4, "Q7");
   BAD("{\"a\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", d, 4, "f32");
   {
      size_t n;
      unsigned char *p =
         image(&n, "{\"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", d, 4);
      CHECK(parse_mem(p, n) == HRM_ERR_DTYPE && strstr(hrm_last_error(), "F16"));
      free(p);
   }
   /* shapes */
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", d, 4, "shape");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", d, 4, "shape");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", d, 4,
       "shape");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", d, 4, "shape");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 4]}}", d, 4, NULL);
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], "
       "\"data_offsets\": [0, 0]}}", d, 0, "overflow");
   {
      size_t n;
      unsigned char *p = image(&n, "{\"a\": {\"dtype\": \"U8\", \"shape\": [1, 1, 1, 1, 1], "
                               "\"data_offsets\": [0, 1]}}", d, 1);
      CHECK(parse_mem(p, n) == HRM_ERR_SHAPE && strstr(hrm_last_error(), "5 dims"));
      free(p);
   }
   /* offsets out of range, reversed, wrong arity or type; sizes that disagree */
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 400]}}", d, 4,
       "outside");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", d, 8, "outside");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [60, 64]}}", d, 62,
       "outside");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", d, 4,
       "data_offsets");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", d, 8,
       "data_offsets");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", d, 4,
       "data_offsets");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.5]}}", d, 8,
       "data_offsets");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {}}}", d, 4,
       "data_offsets");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", d, 4, "span");
   BAD("{\"a\": {\"dtype\": \"F64\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", d, 16,
       "span");
   /* overlap, duplicates, metadata */
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
       "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", d, 12, "overlap");
   BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
       "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", d, 8, "twice");
   BAD("{\"__metadata__\": {\"format\": 1}}", d, 0, "__metadata__");
   BAD("{\"__metadata__\": [\"pt\"]}", d, 0, "__metadata__");
   BAD("{\"__metadata__\": {}, \"__metadata__\": {}}", d, 0, "twice");

   /* and some that are fine: metadata, empty tensors, gaps, padding, unknown extra keys */
   size_t n;
   unsigned char *p = image(&n, "{\"__metadata__\": {\"format\": \"pt\"}, "
                            "\"e\": {\"dtype\": \"BF16\", \"shape\": [0, 5], \"data_offsets\": "
                            "[4, 4]}, \"s\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": "
                            "[8, 12], \"extra\": 1}}   \n", d, 16);
   CHECK_OK(parse_mem(p, n));
   free(p);
   CHECK(hrm_safetensors_open_memory(NULL, d, 0, "x") == HRM_ERR_ARG);
}

/* Random bit flips, byte stores and truncations of a valid file: errors, never crashes. */
static void test_corruptions(void) {
   hrm_tensor *t[NRT];
   make_roundtrip_tensors(t);
   const char *path = tmp_path("fuzz.safetensors");
   CHECK_OK(hrm_safetensors_write(path, NRT, rt_names, (const hrm_tensor *const *)t));
   for (int i = 0; i < NRT; i++) hrm_tensor_free(t[i]);
   size_t n;
   unsigned char *orig = read_raw(path, &n);
   CHECK(orig != NULL);
   if (!orig) return;
   unsigned char *buf = malloc(n);
   uint64_t state = 0x9e3779b97f4a7c15ull;
   int ok = 0, errors = 0, silent = 0;
   for (int round = 0; round < 600; round++) {
      memcpy(buf, orig, n);
      size_t len = n;
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      int kind = round % 3;
      if (kind == 0) { /* flip 1..4 bits, mostly in the length and header */
         for (int k = 0; k <= (int)(state >> 60) % 4; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(state >> 33) % (round % 2 ? n : (n < 300 ? n : 300));
            buf[at] ^= (unsigned char)(1u << ((state >> 20) % 8));
         }
      } else if (kind == 1) { /* store a random byte */
         size_t at = (size_t)(state >> 33) % n;
         buf[at] = (unsigned char)(state >> 12);
      } else { /* truncate */
         len = (size_t)(state >> 33) % n;
      }
      hrm_clear_error();
      int rc = parse_mem(buf, len);
      if (rc == HRM_OK) ok++;
      else if (hrm_last_error()[0]) errors++;
      else silent++;
   }
   CHECK(silent == 0);
   CHECK(errors > 100);
   printf("corruptions: %d parsed, %d rejected\n", ok, errors);
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
   const char *path = tmp_path("atomic.safetensors");
   hrm_tensor *small = filled(HRM_DTYPE_F32, 1, (int64_t[]){4}, 2);
   hrm_tensor *large = filled(HRM_DTYPE_F32, 1, (int64_t[]){1 << 20}, 3);
   const char *nm[1] = {"x"};
   CHECK_OK(hrm_safetensors_write(path, 1, nm, (const hrm_tensor *const *)&small));
   size_t n0;
   unsigned char *before = read_raw(path, &n0);

   /* a write that fails midway (file size limit -> EFBIG) keeps the old file, leaves no temp */
   struct rlimit old, lim;
   getrlimit(RLIMIT_FSIZE, &old);
   lim = old;
   lim.rlim_cur = 64 * 1024;
   void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
   if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
      int rc = hrm_safetensors_write(path, 1, nm, (const hrm_tensor *const *)&large);
      setrlimit(RLIMIT_FSIZE, &old);
      CHECK(rc == HRM_ERR_IO);
      CHECK(strstr(hrm_last_error(), "atomic.safetensors") != NULL);
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
   CHECK(hrm_safetensors_write(dir, 1, nm, (const hrm_tensor *const *)&small) == HRM_ERR_IO);
   CHECK(strstr(hrm_last_error(), "occupied") != NULL);
   CHECK(access(inside, F_OK) == 0 && no_temp_files());
   unlink(inside);
   rmdir(dir);

   /* a folder we may not write to (meaningless as root, who may write anywhere) */
   if (geteuid() != 0) {
      const char *ro = tmp_path("readonly");
      mkdir(ro, 0700);
      char target[300];
      snprintf(target, sizeof target, "%s/x.safetensors", ro);
      CHECK_OK(hrm_safetensors_write(target, 1, nm, (const hrm_tensor *const *)&small));
      chmod(ro, 0500);
      CHECK(hrm_safetensors_write(target, 1, nm, (const hrm_tensor *const *)&large) == HRM_ERR_IO);
      CHECK(strstr(hrm_last_error(), "readonly") != NULL);
      chmod(ro, 0700);
      hrm_safetensors *f;
      CHECK_OK(hrm_safetensors_open(&f, target));
      hrm_tensor *r = NULL;
      CHECK_OK(hrm_safetensors_get(&r, f, "x"));
      CHECK(same_tensor(r, small));
      hrm_tensor_free(r);
      hrm_safetensors_free(f);
      unlink(target);
      rmdir(ro);
   }

   /* a successful rewrite replaces the file */
   CHECK_OK(hrm_safetensors_write(path, 1, nm, (const hrm_tensor *const *)&large));
   hrm_safetensors *f;
   CHECK_OK(hrm_safetensors_open(&f, path));
   hrm_tensor *r = NULL;
   CHECK_OK(hrm_safetensors_get(&r, f, "x"));
   CHECK(same_tensor(r, large));
   hrm_tensor_free(r);
   hrm_safetensors_free(f);
   free(before);
   hrm_tensor_free(small);
   hrm_tensor_free(large);
}

static void test_fileio(void) {
   /* streaming writes across the buffer boundary, then commit */
   const char *path = tmp_path("stream.bin");
   size_t total = 3u << 20;
   unsigned char *src = malloc(total);
   for (size_t i = 0; i < total; i++) src[i] = (unsigned char)(i * 31 + (i >> 9));
   hrm_file_writer *w;
   CHECK_OK(hrm_file_writer_open(&w, path));
   size_t sizes[] = {1, 7, 100000, 262143, 262145, 1 << 20, 3};
   size_t at = 0;
   for (size_t k = 0; at < total; k++) {
      size_t s = sizes[k % 7] < total - at ? sizes[k % 7] : total - at;
      CHECK_OK(hrm_file_writer_write(w, src + at, s));
      at += s;
   }
   CHECK(hrm_file_writer_offset(w) == total);
   CHECK(access(path, F_OK) != 0); /* nothing visible before commit */
   CHECK_OK(hrm_file_writer_commit(w));
   hrm_file_data fd;
   CHECK_OK(hrm_file_load(&fd, path, 0, HRM_FILE_MMAP));
   CHECK(fd.size == total && memcmp(fd.data, src, total) == 0);
   hrm_file_release(&fd);
   hrm_file_release(&fd); /* twice is harmless */
   CHECK_OK(hrm_file_load(&fd, path, 0, HRM_FILE_READ));
   CHECK(fd.size == total && memcmp(fd.data, src, total) == 0);
   hrm_file_release(&fd);
   CHECK(hrm_file_load(&fd, path, 1000, HRM_FILE_READ) == HRM_ERR_FORMAT);
   CHECK(fd.data == NULL && fd.size == 0);

   /* abort leaves neither the target nor a temporary file */
   const char *never = tmp_path("never.bin");
   CHECK_OK(hrm_file_writer_open(&w, never));
   CHECK_OK(hrm_file_writer_write(w, src, 1000));
   hrm_file_writer_abort(w);
   hrm_file_writer_abort(NULL);
   CHECK(access(never, F_OK) != 0 && no_temp_files());

   /* the one-shot form, and an empty file */
   CHECK_OK(hrm_file_write_atomic(never, src, 10));
   CHECK_OK(hrm_file_write_atomic(never, NULL, 0));
   CHECK_OK(hrm_file_load(&fd, never, 0, HRM_FILE_MMAP));
   CHECK(fd.size == 0);
   hrm_file_release(&fd);
   CHECK(hrm_file_writer_open(&w, "") == HRM_ERR_ARG);
   CHECK(hrm_file_writer_open(&w, "/tmp/") == HRM_ERR_ARG);
   free(src);
   unlink(path);
   unlink(never);
}

/* ---- model import / export ------------------------------------------------------------------- */

static hrm_params *tiny_model(uint64_t seed) { return tiny_store(seed); }

/* All model tensor values, concatenated as doubles. */
static double *snapshot(const hrm_params *m, int64_t *total) {
   int32_t n = hrm_params_count(m);
   int64_t size = 0, at = 0;
   for (int pass = 0; pass < 2; pass++) {
      double *out = pass ? malloc((size_t)(size ? size : 1) * sizeof *out) : NULL;
      for (int32_t i = 0; i < n; i++) {
         const char *name;
         hrm_tensor *v, *g;
         int32_t p;
         if (hrm_params_tensor(m, i, &name, &v, &g, &p) != HRM_OK) continue;
         if (!pass) size += v->numel;
         else
            for (int64_t k = 0; k < v->numel; k++) out[at++] = hrm_tensor_get(v, k);
         hrm_tensor_free(v);
         hrm_tensor_free(g);
      }
      if (pass) {
         *total = size;
         return out;
      }
   }
   return NULL;
}

static int same_snapshot(const double *a, const double *b, int64_t n) {
   return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* Write the model's tensors under `prefix` + name as `dtype`, skipping tensor `skip`, optionally
 * adding an extra tensor `extra` and reshaping tensor `reshape` to one dim. */
static int write_model_file(const char *path, const hrm_params *m, const char *prefix,
                            int32_t dtype, int32_t skip, const char *extra, int32_t reshape) {
   int32_t n = hrm_params_count(m);
   char **names = calloc((size_t)n + 1, sizeof *names);
   hrm_tensor **ts = calloc((size_t)n + 1, sizeof *ts);
   int32_t k = 0;
   for (int32_t i = 0; i < n; i++) {
      const char *name;
      hrm_tensor *v, *g;
      int32_t p;
      hrm_params_tensor(m, i, &name, &v, &g, &p);
      hrm_tensor_free(g);
      if (i != skip) {
         names[k] = malloc(strlen(prefix) + strlen(name) + 1);
         sprintf(names[k], "%s%s", prefix, name);
         int64_t flat[1] = {v->numel};
         hrm_tensor_new(&ts[k], dtype, i == reshape ? 1 : v->ndim, i == reshape ? flat : v->shape);
         hrm_tensor_copy(ts[k], v);
         k++;
      }
      hrm_tensor_free(v);
   }
   if (extra) {
      names[k] = strdup(extra);
      hrm_tensor_new(&ts[k], HRM_DTYPE_F32, 1, (int64_t[]){3});
      k++;
   }
   int rc = hrm_safetensors_write(path, k, (const char *const *)names,
                                  (const hrm_tensor *const *)ts);
   for (int32_t i = 0; i < k; i++) {
      free(names[i]);
      hrm_tensor_free(ts[i]);
   }
   free(names);
   free(ts);
   return rc;
}

static void test_model(void) {
   hrm_params *a = tiny_model(1), *b = tiny_model(2);
   CHECK(a && b);
   if (!a || !b) {
      hrm_params_free(a);
      hrm_params_free(b);
      return;
   }
   int64_t na, nb;
   double *sa = snapshot(a, &na), *sb = snapshot(b, &nb);
   CHECK(na == nb && na > 0 && !same_snapshot(sa, sb, na));

   /* save and load: b becomes a */
   const char *path = tmp_path("model.safetensors");
   CHECK_OK(hrm_params_save_safetensors(a, path));
   CHECK_OK(hrm_params_load_safetensors(b, path));
   double *s2 = snapshot(b, &nb);
   CHECK(same_snapshot(sa, s2, na));
   free(s2);

   /* saved as F32 under the model's own names */
   hrm_safetensors *f;
   CHECK_OK(hrm_safetensors_open(&f, path));
   if (f) {
      CHECK(hrm_safetensors_count(f) == hrm_params_count(a));
      hrm_tensor *t = NULL;
      CHECK_OK(hrm_safetensors_get(&t, f, hrm_safetensors_name(f, 0)));
      CHECK(t && t->dtype == HRM_DTYPE_F32);
      hrm_tensor_free(t);
      hrm_safetensors_free(f);
   }

   /* BF16 with the _orig_mod. prefix and an ignored reference buffer */
   hrm_params *c = tiny_model(3);
   const char *bf = tmp_path("bf16.safetensors");
   CHECK_OK(write_model_file(bf, a, "_orig_mod.", HRM_DTYPE_BF16, -1,
                             "_orig_mod.model.inner.rotary_emb.cos_cached", -1));
   CHECK_OK(hrm_params_load_safetensors(c, bf));
   int64_t nc;
   double *sc = snapshot(c, &nc);
   int close = nc == na;
   for (int64_t i = 0; close && i < na; i++)
      close = fabs(sc[i] - sa[i]) <= 1e-2 * fabs(sa[i]) + 1e-30;
   CHECK(close);
   free(sc);

   /* F64 converts too */
   CHECK_OK(write_model_file(bf, a, "", HRM_DTYPE_F64, -1, NULL, -1));
   CHECK_OK(hrm_params_load_safetensors(c, bf));
   sc = snapshot(c, &nc);
   CHECK(same_snapshot(sa, sc, na));
   free(sc);

   /* failures name the tensors and leave the model untouched */
   hrm_params *d = tiny_model(4);
   int64_t nd;
   double *sd = snapshot(d, &nd);
   const char *bad = tmp_path("bad.safetensors");
   const char *name0;
   hrm_tensor *v, *g;
   int32_t p;
   hrm_params_tensor(a, 0, &name0, &v, &g, &p);
   hrm_tensor_free(v);
   hrm_tensor_free(g);

   CHECK_OK(write_model_file(bad, a, "", HRM_DTYPE_F32, 0, "model.not_a_tensor", -1));
   CHECK(hrm_params_load_safetensors(d, bad) == HRM_ERR_FORMAT);
   CHECK(strstr(hrm_last_error(), name0) && strstr(hrm_last_error(), "model.not_a_tensor"));
   CHECK(strstr(hrm_last_error(), "missing") != NULL);

   int32_t last = hrm_params_count(a) - 1;
   const char *name_last;
   hrm_params_tensor(a, last, &name_last, &v, &g, &p);
   int reshape_ok = v->ndim != 1;
   hrm_tensor_free(v);
   hrm_tensor_free(g);
   if (reshape_ok) {
      CHECK_OK(write_model_file(bad, a, "", HRM_DTYPE_F32, -1, NULL, last));
      CHECK(hrm_params_load_safetensors(d, bad) == HRM_ERR_SHAPE);
      CHECK(strstr(hrm_last_error(), name_last) != NULL);
   }
   CHECK(hrm_params_load_safetensors(d, tmp_path("absent.safetensors")) == HRM_ERR_IO);
   CHECK(write_raw(bad, "junk", 4) == 0);
   CHECK(hrm_params_load_safetensors(d, bad) == HRM_ERR_FORMAT);
   double *sd2 = snapshot(d, &nd);
   CHECK(same_snapshot(sd, sd2, nd));
   free(sd);
   free(sd2);

   CHECK(hrm_params_save_safetensors(a, tmp_path("no/such/dir.safetensors")) == HRM_ERR_IO);
   CHECK(no_temp_files());

   free(sa);
   free(sb);
   hrm_params_free(a);
   hrm_params_free(b);
   hrm_params_free(c);
   hrm_params_free(d);
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
   snprintf(tmpdir, sizeof tmpdir, "/tmp/hrm_test_st_XXXXXX");
   if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      return 1;
   }
   test_roundtrip();
   test_malformed_files();
   test_malformed_headers();
   test_corruptions();
   replay_folder("spec/fuzz/regress/safetensors", 0);
   replay_folder("spec/fuzz/corpus/safetensors", 1);
   test_atomic_write();
   test_fileio();
   test_model();
   cleanup();
   return check_summary("test_safetensors");
}
