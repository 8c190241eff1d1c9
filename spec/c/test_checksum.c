/* test_checksum.c — a damaged .hrm or .hrmd file is refused, naming the damaged part.
 *
 * Every single-byte change (each position, each of the 255 other values) of a small version-2
 * .hrm must be refused with a message; a change inside a tensor's data must name that tensor and
 * a change inside the meta text must name meta (alone, or as part of the header). Then random single-byte changes
 * of a larger .hrm (argv[1] of them, default 10000; argv[2] bytes of data, default 1 MiB), and
 * every single-byte change of a small .hrmd (each position, 8 bit flips and the complement):
 * refused at open or, for its token payloads (verified when first touched), at the first use.
 * A damaged token payload opens and every batch from it is refused; tokens out of range are
 * still caught at the first touch. Version 1 files still open and say they are unchecked
 * (hrm_checkpoint_version, hrm_dataset_file_version). Prints how the refusals were worded
 * (header checksum, data checksum, structure).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "check.h"
#include "tmpfiles.h"
#include "checkpoint.h"

int hrm_dataset_open_hrmd_memory(hrm_dataset **out, const void *data, size_t size,
                                 const char *label);

typedef struct tally { long header, data, other, accepted, silent, misnamed; } tally;

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint64_t next_rand(void) {
   rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
   return rng_state >> 11;
}

/* Sort one refusal into the tally. `want` (may be NULL) must appear in the message. */
static void count(tally *t, int rc, const char *want) {
   const char *msg = hrm_last_error();
   if (rc == HRM_OK) { t->accepted++; return; }
   if (!msg[0]) { t->silent++; return; }
   if (want && !strstr(msg, want)) {
      if (t->misnamed++ < 3) fprintf(stderr, "  message without '%s': %s\n", want, msg);
   }
   if (strstr(msg, "header") && strstr(msg, "checksum")) t->header++;
   else if (strstr(msg, "checksum")) t->data++;
   else t->other++;
}

static void report(const char *what, const tally *t) {
   printf("%s: %ld refused (header checksum %ld, data checksum %ld, structure %ld); "
          "%ld accepted, %ld without a message, %ld not naming the part\n", what,
          t->header + t->data + t->other, t->header, t->data, t->other, t->accepted, t->silent,
          t->misnamed);
}

static int open_ck(const unsigned char *p, size_t n) {
   hrm_checkpoint *f = NULL;
   hrm_clear_error();
   int rc = hrm_checkpoint_open_memory(&f, p, n, "flip.hrm");
   hrm_checkpoint_free(f);
   return rc;
}

/* Where the bytes of `needle` sit in the image (the test's tensors have distinct contents). */
static size_t find(const unsigned char *hay, size_t n, const void *needle, size_t k) {
   const unsigned char *at = memmem(hay, n, needle, k);
   return at ? (size_t)(at - hay) : (size_t)-1;
}

typedef struct part { size_t off, len; char want[64]; } part;

/* The message a change at byte i must carry, given the known parts (NULL: any message). */
static const char *wanted(const part *parts, int np, size_t i) {
   for (int k = 0; k < np; k++)
      if (i >= parts[k].off && i < parts[k].off + parts[k].len) return parts[k].want;
   return NULL;
}

static hrm_tensor *pattern(int32_t dtype, int64_t n, unsigned seed) {
   hrm_tensor *t = NULL;
   if (hrm_tensor_new(&t, dtype, 1, &n) != HRM_OK) return NULL;
   unsigned char *p = t->data;
   for (size_t i = 0; i < (size_t)n * hrm_dtype_size(dtype); i++)
      p[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8) * 13);
   return t;
}

static const char *META = "{\"step\": 1200, \"lr\": 0.0003, \"note\": \"small\"}";

/* ---- small .hrm: every position, every value --------------------------------------------------- */

static void test_small_exhaustive(void) {
   hrm_tensor *t[3] = {pattern(HRM_DTYPE_F32, 24, 1), pattern(HRM_DTYPE_I32, 10, 2),
                       pattern(HRM_DTYPE_U8, 33, 3)};
   const char *names[3] = {"model.w", "optim.t", "carry.1.halted"};
   const char *path = tmp_path("small.hrm");
   CHECK_OK(hrm_checkpoint_write(path, META, 3, names, (const hrm_tensor *const *)t));
   size_t n;
   unsigned char *orig = read_raw(path, &n);
   CHECK(orig != NULL);
   if (!orig) return;
   CHECK_OK(open_ck(orig, n));
   hrm_checkpoint *f = NULL;
   CHECK_OK(hrm_checkpoint_open(&f, path));
   CHECK(hrm_checkpoint_version(f) == 2);
   hrm_checkpoint_free(f);

   part parts[4];
   int np = 0;
   for (int k = 0; k < 3; k++) {
      size_t bytes = (size_t)t[k]->numel * hrm_dtype_size(t[k]->dtype);
      parts[np].off = find(orig, n, t[k]->data, bytes);
      parts[np].len = bytes;
      snprintf(parts[np].want, sizeof parts[np].want, "tensor '%s'", names[k]);
      CHECK(parts[np].off != (size_t)-1);
      np++;
   }
   parts[np].off = find(orig, n, META, strlen(META));
   parts[np].len = strlen(META);
   snprintf(parts[np].want, sizeof parts[np].want, "meta"); /* the header's message lists it */
   CHECK(parts[np].off != (size_t)-1);
   np++;

   tally tl = {0};
   unsigned char *buf = malloc(n);
   memcpy(buf, orig, n);
   for (size_t i = 0; i < n; i++) {
      const char *want = wanted(parts, np, i);
      for (int v = 1; v < 256; v++) {
         buf[i] = (unsigned char)(orig[i] ^ v);
         count(&tl, open_ck(buf, n), want);
      }
      buf[i] = orig[i];
   }
   report("small .hrm, every single-byte change", &tl);
   printf("  (%zu bytes x 255 values = %zu files)\n", n, n * 255);
   CHECK(tl.accepted == 0 && tl.silent == 0 && tl.misnamed == 0);
   CHECK(tl.header > 0 && tl.data > 0);
   free(buf);
   free(orig);
   for (int k = 0; k < 3; k++) hrm_tensor_free(t[k]);
}

/* ---- larger .hrm: random positions, random values ---------------------------------------------- */

static void test_large_random(long flips, int64_t bytes) {
   int64_t n1 = bytes / 4 / 2, n2 = bytes / 4 - n1;
   hrm_tensor *t[2] = {pattern(HRM_DTYPE_F32, n1, 5), pattern(HRM_DTYPE_F32, n2, 6)};
   const char *names[2] = {"model.inner.a", "model.inner.b"};
   const char *path = tmp_path("large.hrm");
   CHECK_OK(hrm_checkpoint_write(path, META, 2, names, (const hrm_tensor *const *)t));
   size_t n;
   unsigned char *orig = read_raw(path, &n);
   CHECK(orig != NULL);
   if (!orig) return;
   part parts[2];
   for (int k = 0; k < 2; k++) {
      parts[k].len = (size_t)t[k]->numel * 4;
      parts[k].off = find(orig, n, t[k]->data, parts[k].len);
      snprintf(parts[k].want, sizeof parts[k].want, "tensor '%s'", names[k]);
      CHECK(parts[k].off != (size_t)-1);
   }
   tally tl = {0};
   for (long r = 0; r < flips; r++) {
      /* a quarter of the changes land in the first 4 KiB (the header and the first data) */
      size_t i = (size_t)(next_rand() % (r % 4 == 0 ? (n < 4096 ? n : 4096) : n));
      unsigned char v = (unsigned char)(1 + next_rand() % 255);
      orig[i] ^= v;
      count(&tl, open_ck(orig, n), wanted(parts, 2, i));
      orig[i] ^= v;
   }
   char what[96];
   snprintf(what, sizeof what, "%.1f MB .hrm, %ld random single-byte changes", n / 1e6, flips);
   report(what, &tl);
   CHECK(tl.accepted == 0 && tl.silent == 0 && tl.misnamed == 0);
   CHECK_OK(open_ck(orig, n)); /* restored */
   free(orig);
   for (int k = 0; k < 2; k++) hrm_tensor_free(t[k]);
}

/* ---- version 1 still opens, unchecked ---------------------------------------------------------- */

static void test_version1(void) {
   /* {"format": "hrm", "version": 1, "meta": "{}", "tensors": {"x": {u8 [2]}}} */
   static const unsigned char v1[] = {
      0x84, 0xa6, 'f', 'o', 'r', 'm', 'a', 't', 0xa3, 'h', 'r', 'm', 0xa7, 'v', 'e', 'r', 's',
      'i', 'o', 'n', 0x01, 0xa4, 'm', 'e', 't', 'a', 0xa2, '{', '}', 0xa7, 't', 'e', 'n', 's',
      'o', 'r', 's', 0x81, 0xa1, 'x', 0x83, 0xa5, 'd', 't', 'y', 'p', 'e', 0xa2, 'u', '8', 0xa5,
      's', 'h', 'a', 'p', 'e', 0x91, 0x02, 0xa4, 'd', 'a', 't', 'a', 0xc4, 0x02, 7, 9};
   hrm_checkpoint *f = NULL;
   CHECK_OK(hrm_checkpoint_open_memory(&f, v1, sizeof v1, "v1.hrm"));
   CHECK(hrm_checkpoint_version(f) == 1);
   hrm_checkpoint_free(f);
   /* a version 2 file whose version byte reads 1 is refused: it carries checksums */
   hrm_tensor *t = pattern(HRM_DTYPE_U8, 4, 9);
   const char *name = "x";
   const char *path = tmp_path("v2.hrm");
   CHECK_OK(hrm_checkpoint_write(path, NULL, 1, &name, (const hrm_tensor *const *)&t));
   size_t n;
   unsigned char *p = read_raw(path, &n);
   size_t at = find(p, n, "version", 7);
   CHECK(at != (size_t)-1 && p[at + 7] == 2);
   p[at + 7] = 1;
   hrm_clear_error();
   CHECK(hrm_checkpoint_open_memory(&f, p, n, "v2.hrm") != HRM_OK);
   CHECK(strstr(hrm_last_error(), "carries checksums") != NULL);
   free(p);
   hrm_tensor_free(t);
}

/* ---- small .hrmd: every position, 9 values ------------------------------------------------------ */

static void test_hrmd(void) {
   hrm_dataset_meta m = {.vocab_size = 11, .seq_len = 6, .pad_id = 0, .blank_identifier_id = 0,
                         .num_puzzle_identifiers = 4};
   hrm_dataset *ds = NULL;
   CHECK_OK(hrm_dataset_new(&ds, &m));
   int32_t in[5 * 6], lab[5 * 6], pid[3] = {1, 2, 3}, pidx[4] = {0, 2, 4, 5}, gidx[3] = {0, 2, 3};
   for (int i = 0; i < 30; i++) { in[i] = (i * 7) % 11; lab[i] = (i * 5 + 3) % 11; }
   hrm_dataset_arrays a = {.inputs = in, .labels = lab, .puzzle_identifiers = pid,
                           .puzzle_indices = pidx, .group_indices = gidx, .n = 5,
                           .n_puzzles = 3, .n_groups = 2, .token_dtype = HRM_DTYPE_I32};
   CHECK_OK(hrm_dataset_add(ds, &a));
   const char *path = tmp_path("small.hrmd");
   CHECK_OK(hrm_dataset_save(ds, path));
   hrm_dataset_free(ds);
   ds = NULL;
   CHECK_OK(hrm_dataset_load(&ds, path, NULL));
   CHECK(hrm_dataset_file_version(ds) == 2);
   hrm_dataset_free(ds);
   ds = NULL; /* a version 1 file (the fuzz seed) still loads, unchecked */
   CHECK_OK(hrm_dataset_load(&ds, "spec/fuzz/corpus/hrmd/small_u8.hrmd", NULL));
   CHECK(hrm_dataset_file_version(ds) == 1);
   hrm_dataset_free(ds);
   size_t n;
   unsigned char *orig = read_raw(path, &n);
   CHECK(orig != NULL);
   if (!orig) return;
   tally tl = {0};
   long touched = 0;
   for (size_t i = 0; i < n; i++) {
      for (int v = 0; v < 9; v++) {
         orig[i] ^= (unsigned char)(v < 8 ? 1u << v : 0xff);
         ds = NULL;
         hrm_clear_error();
         int rc = hrm_dataset_open_hrmd_memory(&ds, orig, n, "flip.hrmd");
         if (rc == HRM_OK) { /* token payloads are verified when first touched */
            hrm_dataset_arrays all;
            rc = hrm_dataset_get_arrays(&all, ds);
            if (rc != HRM_OK) touched++;
         }
         hrm_dataset_free(ds);
         count(&tl, rc, NULL);
         orig[i] ^= (unsigned char)(v < 8 ? 1u << v : 0xff);
      }
   }
   report("small .hrmd, 9 changes of every byte", &tl);
   printf("  (%ld of them opened and were refused when their tokens were first touched)\n", touched);
   CHECK(tl.accepted == 0 && tl.silent == 0);
   CHECK(tl.header > 0 && tl.data > 0 && touched > 0);

   /* a damaged inputs payload: the file opens; the first batch, and every later one, is refused
    * naming the array and the file */
   unsigned char tok[30];
   for (int i = 0; i < 30; i++) tok[i] = (unsigned char)in[i]; /* stored as u8 (V = 11) */
   size_t at = find(orig, n, tok, sizeof tok);
   CHECK(at != (size_t)-1);
   if (at != (size_t)-1) {
      orig[at + 7] ^= 0x01;
      ds = NULL;
      CHECK_OK(hrm_dataset_open_hrmd_memory(&ds, orig, n, "damaged.hrmd"));
      hrm_sampler *smp = NULL;
      hrm_sampler_config cfg = {.batch_size = 2, .train = 0, .max_epochs = 1};
      if (ds) CHECK_OK(hrm_sampler_new(&smp, ds, &cfg));
      hrm_tensor *bin = NULL, *blab = NULL;
      CHECK_OK(hrm_tensor_new(&bin, HRM_DTYPE_I32, 2, (int64_t[]){2, 6}));
      CHECK_OK(hrm_tensor_new(&blab, HRM_DTYPE_I32, 2, (int64_t[]){2, 6}));
      for (int round = 0; round < 2 && smp; round++) {
         int32_t got = -1;
         hrm_clear_error();
         CHECK(hrm_sampler_next(&got, bin, blab, NULL, smp) == HRM_ERR_FORMAT);
         CHECK(strstr(hrm_last_error(), "'damaged.hrmd': the data of array \"inputs\" fails its "
                                        "checksum") != NULL);
      }
      hrm_tensor_free(bin);
      hrm_tensor_free(blab);
      hrm_sampler_free(smp);
      hrm_dataset_free(ds);
      orig[at + 7] ^= 0x01;
   }

   /* tokens are still range-checked at the first touch: the same file with vocab_size 7 in its
    * meta and its header checksum made right again opens, and its first batch is refused */
   const void *pay[5] = {tok, NULL, pid, pidx, gidx};
   unsigned char labtok[30];
   for (int i = 0; i < 30; i++) labtok[i] = (unsigned char)lab[i];
   pay[1] = labtok;
   size_t len[5] = {30, 30, sizeof pid, sizeof pidx, sizeof gidx}, off[5];
   int found = 1;
   for (int k = 0; k < 5; k++) {
      off[k] = find(orig, n, pay[k], len[k]);
      found &= off[k] != (size_t)-1 && !memmem(orig + off[k] + 1, n - off[k] - 1, pay[k], len[k]);
   }
   size_t vs = find(orig, n, "\xaavocab_size", 11);
   CHECK(found && vs != (size_t)-1 && orig[vs + 11] == 11 && orig[n - 9] == 0xcf);
   if (found && vs != (size_t)-1) {
      orig[vs + 11] = 7;
      for (int a = 0; a < 5; a++) /* payloads in file order */
         for (int b = a + 1; b < 5; b++)
            if (off[b] < off[a]) {
               size_t t = off[a]; off[a] = off[b]; off[b] = t;
               t = len[a]; len[a] = len[b]; len[b] = t;
            }
      XXH3_state_t *st = XXH3_createState();
      XXH3_64bits_reset(st);
      size_t pos = 0;
      for (int k = 0; k < 5; k++) {
         XXH3_64bits_update(st, orig + pos, off[k] - pos);
         pos = off[k] + len[k];
      }
      XXH3_64bits_update(st, orig + pos, n - 9 - pos);
      uint64_t h = XXH3_64bits_digest(st);
      XXH3_freeState(st);
      for (int i = 0; i < 8; i++) orig[n - 8 + i] = (unsigned char)(h >> (56 - 8 * i));
      ds = NULL;
      CHECK_OK(hrm_dataset_open_hrmd_memory(&ds, orig, n, "vocab7.hrmd"));
      hrm_dataset_arrays all;
      hrm_clear_error();
      CHECK(ds && hrm_dataset_get_arrays(&all, ds) == HRM_ERR_RANGE);
      CHECK(strstr(hrm_last_error(), "dataset 'vocab7.hrmd': inputs[0, 1] = 7 is outside the "
                                     "vocabulary [0, 7)") != NULL);
      if (!strstr(hrm_last_error(), "inputs[")) fprintf(stderr, "  got: %s\n", hrm_last_error());
      hrm_dataset_free(ds);
   }
   free(orig);
}

static void cleanup(void) {
   const char *files[] = {"small.hrm", "large.hrm", "v2.hrm", "small.hrmd"};
   for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tmp_path(files[i]));
   rmdir(tmpdir);
}

int main(int argc, char **argv) {
   long flips = argc > 1 ? atol(argv[1]) : 10000;
   int64_t bytes = argc > 2 ? atoll(argv[2]) : (int64_t)1 << 20;
   snprintf(tmpdir, sizeof tmpdir, "/tmp/hrm_checksum_XXXXXX");
   if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      return 1;
   }
   test_version1();
   test_small_exhaustive();
   test_large_random(flips, bytes);
   test_hrmd();
   cleanup();
   return check_summary("test_checksum");
}
