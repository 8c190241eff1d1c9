/* checkpoint.c — .hrm checkpoint files: an atomic streaming writer and a validating reader.
 *
 * A file is one msgpack map (docs/checkpoint.md):
 *    {"format": "hrm", "version": 2, "meta": <JSON object as a string>,
 *     "tensors": {name: {"dtype": "f32", "shape": [..], "data": bin | [bin, ...], "xxh3": u64}},
 *     "header_xxh3": u64}
 * Version 2 carries checksums (XXH3-64, libxxhash): one over each tensor's bytes, and one over
 * every other byte before "header_xxh3"'s value (the header: format, version, meta, names,
 * dtypes, shapes, bin heads). A file is verified in full on open, and an error names the damaged
 * part. Version 1 files (no checksums) still load, unchecked (hrm_checkpoint_version says so).
 * The writer packs the small headers with msgpack-c and writes every tensor's bytes straight
 * from its memory through the atomic file writer (no staging copy). Data longer than a msgpack
 * bin can hold (2^32 - 1 bytes) is a list of bins. The reader maps the file and walks it with
 * the bounded cursor of msgpack_file.h, which checks every count and length against the bytes
 * left; nothing is allocated in proportion to a declared size. Tensor data stays in the mapping
 * until it is copied out. Bytes are little-endian as in memory: a big-endian host is refused.
 */
#include <cjson/cJSON.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "checkpoint.h"
#include "error.h"
#include "fileio.h"
#include "msgpack_file.h"
#include "tensor_file.h"

#define CK_FORMAT "hrm"
#define CK_VERSION 2                      /* written; checksummed */
#define CK_VERSION_UNCHECKED 1            /* still read: no checksums */
#define CK_MAX_NAME 1024                  /* bytes in a tensor name */
#define CK_MAX_META ((uint64_t)1 << 28)   /* 256 MiB of JSON */
#define CK_MAX_SPANS 65536                /* bins in one tensor's data list */
#define CK_BIN_MAX 0xffffffffull          /* the largest msgpack bin */
#define CK_COPY_BLOCK ((size_t)64 << 20)  /* bytes copied before mapped pages are dropped */
#define CK_NAME "%.200s"                  /* tensor names in messages, cut at 200 bytes */

typedef struct ck_entry {
   char *name;
   int32_t dtype;        /* enum hrm_dtype */
   int32_t ndim;         /* 0..4 */
   int64_t shape[4];
   uint64_t bytes;       /* numel x dtype size == sum of the spans */
   uint32_t nspans;
   hrm_mp_span one;      /* the data when nspans <= 1 */
   hrm_mp_span *spans;   /* owned list when nspans > 1 */
   uint64_t sum;         /* XXH3-64 of the bytes (version 2) */
   int has_sum;
} ck_entry;

struct hrm_checkpoint {
   hrm_image img;        /* the bytes and the path (or a caller's label) for messages */
   char *meta;           /* NUL-terminated copy of the JSON text */
   int32_t count;
   ck_entry *entries;    /* sorted by name */
   int32_t version;      /* 1 (unchecked) or 2 (verified on open) */
   uint64_t header_sum;  /* "header_xxh3" */
   uint64_t header_end;  /* file offset of that value: the header is [0, header_end) less data */
   int has_header_sum;
};

static uint64_t ck_chunk_max = CK_BIN_MAX;

uint64_t hrm_checkpoint_set_chunk_limit(uint64_t bytes) {
   uint64_t old = ck_chunk_max;
   ck_chunk_max = (bytes == 0 || bytes > CK_BIN_MAX) ? CK_BIN_MAX : bytes;
   return old;
}

static int cmp_entry_name(const void *a, const void *b) {
   return strcmp(((const ck_entry *)a)->name, ((const ck_entry *)b)->name);
}

static const hrm_mp_span *ck_spans(const ck_entry *e) {
   return e->nspans > 1 ? e->spans : &e->one;
}

static const ck_entry *ck_find(const hrm_checkpoint *f, const char *name) {
   ck_entry key = {.name = (char *)name};
   return f->count ? bsearch(&key, f->entries, (size_t)f->count, sizeof key, cmp_entry_name)
                   : NULL;
}

/* ---- parsing -------------------------------------------------------------------------------- */

static int parse_meta(hrm_checkpoint *f, hrm_mp_reader *r) {
   const char *s;
   uint64_t n;
   HRM_TRY(hrm_mp_str(r, &s, &n, "\"meta\""));
   HRM_CHECK(n <= CK_MAX_META, HRM_ERR_FORMAT, "'%s': meta is %llu bytes, over the limit of "
             "%llu", r->label, (unsigned long long)n, (unsigned long long)CK_MAX_META);
   const char *nul = memchr(s, '\0', (size_t)n);
   HRM_CHECK(!nul, HRM_ERR_FORMAT, "'%s': meta has a NUL byte at offset %zu of its %llu",
             r->label, (size_t)(nul - s), (unsigned long long)n);
   f->meta = malloc((size_t)n + 1);
   HRM_CHECK(f->meta, HRM_ERR_MEMORY, "'%s': cannot allocate %llu bytes for meta", r->label,
             (unsigned long long)n);
   memcpy(f->meta, s, (size_t)n);
   f->meta[n] = '\0';
   return HRM_OK;
}

/* 0 when text[0..n) is one JSON object and blanks; else 1 (not JSON: *at near the fault), 2
 * (JSON, not an object) or 3 (bytes after the object, the first at *at). */
static int json_object_fault(const char *text, size_t n, size_t *at) {
   const char *stop = NULL;
   cJSON *root = cJSON_ParseWithLengthOpts(text, n, &stop, 0);
   int fault = !root ? 1 : !cJSON_IsObject(root) ? 2 : 0;
   cJSON_Delete(root);
   *at = stop && stop >= text && stop <= text + n ? (size_t)(stop - text) : 0;
   for (; fault == 0 && *at < n; ++*at) {
      char c = text[*at];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return 3;
   }
   return fault;
}

/* meta is one JSON object (checked after the checksums, so that damage is reported as such). */
static int check_meta_json(hrm_checkpoint *f) {
   size_t n = strlen(f->meta), at;
   int fault = json_object_fault(f->meta, n, &at);
   HRM_CHECK(fault != 1, HRM_ERR_FORMAT, "'%s': meta is not valid JSON (near byte %zu of %llu)",
             f->img.label, at, (unsigned long long)n);
   HRM_CHECK(fault != 2, HRM_ERR_FORMAT, "'%s': meta is JSON but not an object", f->img.label);
   HRM_CHECK(fault != 3, HRM_ERR_FORMAT, "'%s': meta has bytes after its JSON object (byte %zu "
             "of %llu)", f->img.label, at, (unsigned long long)n);
   return HRM_OK;
}

/* The "data" value of entry e: one bin or a list of bins. */
static int parse_data(ck_entry *e, hrm_mp_reader *r, const char *what) {
   HRM_CHECK(r->pos < r->size, HRM_ERR_FORMAT, "'%s': the file ends where %s was expected "
             "(byte %zu)\n---> HINT: the file is truncated", r->label, what, r->pos);
   uint8_t b = r->p[r->pos];
   uint64_t len, total = 0;
   if (hrm_mp_kind_of(b) == HRM_MP_BIN) {
      HRM_TRY(hrm_mp_head(r, HRM_MP_BIN, &len, what));
      e->nspans = 1;
      e->one = (hrm_mp_span){r->p + r->pos, len};
      r->pos += (size_t)len;
      e->bytes = len;
      return HRM_OK;
   }
   HRM_CHECK(hrm_mp_kind_of(b) == HRM_MP_ARRAY, HRM_ERR_FORMAT,
             "'%s': %s is %s, expected binary data or a list of binary data (byte %zu)",
             r->label, what, hrm_mp_describe(b), r->pos);
   uint64_t k;
   HRM_TRY(hrm_mp_head(r, HRM_MP_ARRAY, &k, what));
   HRM_CHECK(k <= CK_MAX_SPANS, HRM_ERR_FORMAT, "'%s': %s is split into %llu parts, over the "
             "limit of %d", r->label, what, (unsigned long long)k, CK_MAX_SPANS);
   if (k > 1) {
      e->spans = malloc((size_t)k * sizeof *e->spans);
      HRM_CHECK(e->spans, HRM_ERR_MEMORY, "'%s': out of memory", r->label);
   }
   for (uint64_t i = 0; i < k; i++) {
      HRM_TRY(hrm_mp_head(r, HRM_MP_BIN, &len, what));
      hrm_mp_span s = {r->p + r->pos, len};
      if (k > 1) e->spans[i] = s;
      else e->one = s;
      r->pos += (size_t)len;
      total += len; /* each len <= file size: no overflow */
   }
   e->nspans = (uint32_t)k;
   e->bytes = total;
   return HRM_OK;
}

/* One tensor entry's value map {"dtype", "shape", "data"}; e->name is set. */
static int parse_entry(ck_entry *e, hrm_mp_reader *r) {
   char what[300];
   snprintf(what, sizeof what, "tensor '" CK_NAME "'", e->name);
   uint64_t n;
   HRM_TRY(hrm_mp_head(r, HRM_MP_MAP, &n, what));
   int seen_dtype = 0, seen_shape = 0, seen_data = 0;
   uint64_t numel = 1;
   for (uint64_t i = 0; i < n; i++) {
      const char *key;
      uint64_t klen;
      char kwhat[340];
      snprintf(kwhat, sizeof kwhat, "a key of tensor '" CK_NAME "'", e->name);
      HRM_TRY(hrm_mp_str(r, &key, &klen, kwhat));
      if (hrm_mp_str_is(key, klen, "dtype")) {
         HRM_CHECK(!seen_dtype++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two dtypes",
                   r->label, e->name);
         const char *s;
         uint64_t slen;
         snprintf(kwhat, sizeof kwhat, "the dtype of tensor '" CK_NAME "'", e->name);
         HRM_TRY(hrm_mp_str(r, &s, &slen, kwhat));
         e->dtype = -1;
         for (int32_t d = 0; d < HRM_DTYPE_COUNT; d++)
            if (hrm_mp_str_is(s, slen, hrm_dtype_name(d))) e->dtype = d;
         HRM_CHECK(e->dtype >= 0, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has unknown "
                   "dtype '%.*s' (f32, f64, bf16, i32, i64, u8)", r->label, e->name,
                   (int)(slen < 40 ? slen : 40), s);
      } else if (hrm_mp_str_is(key, klen, "shape")) {
         HRM_CHECK(!seen_shape++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two shapes",
                   r->label, e->name);
         uint64_t nd;
         snprintf(kwhat, sizeof kwhat, "the shape of tensor '" CK_NAME "'", e->name);
         HRM_TRY(hrm_mp_head(r, HRM_MP_ARRAY, &nd, kwhat));
         HRM_CHECK(nd <= 4, HRM_ERR_SHAPE, "'%s': tensor '" CK_NAME "' has %llu dims; hrm "
                   "tensors have at most 4", r->label, e->name, (unsigned long long)nd);
         e->ndim = (int32_t)nd;
         for (int32_t d = 0; d < 4; d++) e->shape[d] = 1;
         for (int32_t d = 0; d < e->ndim; d++) {
            uint64_t size;
            snprintf(kwhat, sizeof kwhat, "size %d of tensor '" CK_NAME "'", d + 1, e->name);
            HRM_TRY(hrm_mp_head(r, HRM_MP_INT, &size, kwhat));
            HRM_CHECK(size <= (uint64_t)INT64_MAX / 16 &&
                      (size == 0 || numel <= ((uint64_t)INT64_MAX / 16) / size), HRM_ERR_FORMAT,
                      "'%s': tensor '" CK_NAME "': its shape's element count overflows",
                      r->label, e->name);
            numel *= size;
            e->shape[d] = (int64_t)size;
         }
      } else if (hrm_mp_str_is(key, klen, "data")) {
         HRM_CHECK(!seen_data++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two data "
                   "fields", r->label, e->name);
         snprintf(kwhat, sizeof kwhat, "the data of tensor '" CK_NAME "'", e->name);
         HRM_TRY(parse_data(e, r, kwhat));
      } else if (hrm_mp_str_is(key, klen, "xxh3")) {
         HRM_CHECK(!e->has_sum++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two "
                   "checksums", r->label, e->name);
         snprintf(kwhat, sizeof kwhat, "the checksum of tensor '" CK_NAME "'", e->name);
         HRM_TRY(hrm_mp_head(r, HRM_MP_INT, &e->sum, kwhat));
      } else {
         return HRM_FAIL(HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has an unknown field "
                         "'%.*s' (expected dtype, shape, data, xxh3)", r->label, e->name,
                         (int)(klen < 40 ? klen : 40), key);
      }
   }
   HRM_CHECK(seen_dtype && seen_shape && seen_data, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME
             "' has no %s", r->label, e->name,
             !seen_dtype ? "dtype" : !seen_shape ? "shape" : "data");
   uint64_t bytes = numel * hrm_dtype_size(e->dtype); /* numel < 2^59, size <= 8 */
   char shape[80];
   hrm_format_shape(shape, sizeof shape, e->ndim, e->shape);
   HRM_CHECK(bytes == e->bytes, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' is %s %s (%llu "
             "bytes) but holds %llu bytes of data\n---> HINT: the file is corrupt", r->label,
             e->name, hrm_dtype_name(e->dtype), shape, (unsigned long long)bytes,
             (unsigned long long)e->bytes);
   return HRM_OK;
}

static int parse_tensors(hrm_checkpoint *f, hrm_mp_reader *r) {
   uint64_t n;
   HRM_TRY(hrm_mp_head(r, HRM_MP_MAP, &n, "\"tensors\""));
   HRM_CHECK(n <= INT32_MAX, HRM_ERR_FORMAT, "'%s': %llu tensors is too many", r->label,
             (unsigned long long)n);
   int32_t cap = 0;
   for (uint64_t i = 0; i < n; i++) {
      if (f->count == cap) { /* grown as entries parse: never sized by the declared count */
         int32_t ncap = cap ? (cap < INT32_MAX / 2 ? cap * 2 : INT32_MAX) : 16;
         ck_entry *p = realloc(f->entries, (size_t)ncap * sizeof *p);
         HRM_CHECK(p, HRM_ERR_MEMORY, "'%s': out of memory for %d tensors", r->label, ncap);
         f->entries = p;
         cap = ncap;
      }
      const char *s;
      uint64_t len;
      HRM_TRY(hrm_mp_str(r, &s, &len, "a tensor name"));
      HRM_CHECK(len >= 1 && len <= CK_MAX_NAME, HRM_ERR_FORMAT, "'%s': tensor %llu's name is "
                "%llu bytes (1 to %d allowed)", r->label, (unsigned long long)i + 1,
                (unsigned long long)len, CK_MAX_NAME);
      HRM_CHECK(!memchr(s, '\0', (size_t)len), HRM_ERR_FORMAT, "'%s': tensor %llu's name has a "
                "NUL byte", r->label, (unsigned long long)i + 1);
      ck_entry *e = &f->entries[f->count];
      memset(e, 0, sizeof *e);
      e->name = malloc((size_t)len + 1);
      HRM_CHECK(e->name, HRM_ERR_MEMORY, "'%s': out of memory", r->label);
      memcpy(e->name, s, (size_t)len);
      e->name[len] = '\0';
      f->count++; /* owned from here on, freed with f */
      HRM_TRY(parse_entry(e, r));
   }
   if (f->count > 1) qsort(f->entries, (size_t)f->count, sizeof *f->entries, cmp_entry_name);
   for (int32_t i = 1; i < f->count; i++)
      HRM_CHECK(strcmp(f->entries[i - 1].name, f->entries[i].name) != 0, HRM_ERR_FORMAT,
                "'%s': tensor '" CK_NAME "' appears twice", r->label, f->entries[i].name);
   return HRM_OK;
}

/* ---- checksums ------------------------------------------------------------------------------ */

/* Version 2: every checksum present and matching (the header first). Version 1: none present. */
static int ck_verify(hrm_checkpoint *f) {
   int any = f->has_header_sum;
   for (int32_t i = 0; i < f->count; i++) any |= f->entries[i].has_sum;
   if (f->version == CK_VERSION_UNCHECKED) {
      HRM_CHECK(!any, HRM_ERR_FORMAT, "'%s' says version %d (no checksums) but carries "
                "checksums\n---> HINT: its version is damaged", f->img.label, CK_VERSION_UNCHECKED);
      return HRM_OK;
   }
   HRM_CHECK(f->has_header_sum, HRM_ERR_FORMAT, "'%s': a version %d checkpoint without its "
             "\"header_xxh3\"\n---> HINT: the header is damaged", f->img.label, CK_VERSION);
   for (int32_t i = 0; i < f->count; i++)
      HRM_CHECK(f->entries[i].has_sum, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has no "
                "checksum in a version %d checkpoint\n---> HINT: the header is damaged",
                f->img.label, f->entries[i].name, CK_VERSION);
   size_t total = 0, k = 0;
   for (int32_t i = 0; i < f->count; i++) total += f->entries[i].nspans;
   hrm_mp_span *all = malloc((total ? total : 1) * sizeof *all);
   HRM_CHECK(all, HRM_ERR_MEMORY, "'%s': out of memory verifying checksums", f->img.label);
   for (int32_t i = 0; i < f->count; i++)
      for (uint32_t j = 0; j < f->entries[i].nspans; j++) all[k++] = ck_spans(&f->entries[i])[j];
   int rc = hrm_mp_check_header(all, total, f->img.file.data, f->img.file.data + f->header_end,
                                f->header_sum, f->img.label, "the header (format, version, "
                                "meta, tensor names, dtypes and shapes)", "use another copy");
   free(all);
   for (int32_t i = 0; i < f->count && rc == HRM_OK; i++) {
      const ck_entry *e = &f->entries[i];
      char what[240];
      snprintf(what, sizeof what, "the data of tensor '" CK_NAME "'", e->name);
      rc = hrm_mp_check_sum(ck_spans(e), e->nspans, e->sum, f->img.file.mapped_, f->img.label,
                            what, "use another copy");
   }
   return rc;
}

static int ck_parse(hrm_checkpoint *f) {
   hrm_mp_reader r = {f->img.file.data, f->img.file.size, 0, f->img.label};
   HRM_CHECK(r.size > 0, HRM_ERR_FORMAT, "'%s' is empty\n---> HINT: was its write interrupted? "
             "hrm writes checkpoints atomically, so another program made this file", r.label);
   uint8_t b = r.p[0];
   HRM_CHECK((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf, HRM_ERR_FORMAT,
             "'%s' is not an hrm checkpoint (it does not start with a msgpack map)%s", r.label,
             r.size >= 9 && r.p[8] == '{' ? "\n---> HINT: it looks like safetensors: use "
             "model:load_safetensors" : "");
   uint64_t n;
   HRM_TRY(hrm_mp_head(&r, HRM_MP_MAP, &n, "the top level"));
   int seen_format = 0, seen_version = 0, seen_meta = 0, seen_tensors = 0;
   for (uint64_t i = 0; i < n; i++) {
      const char *key;
      uint64_t klen;
      HRM_TRY(hrm_mp_str(&r, &key, &klen, "a top-level key"));
      if (hrm_mp_str_is(key, klen, "format")) {
         HRM_CHECK(!seen_format++, HRM_ERR_FORMAT, "'%s': \"format\" appears twice", r.label);
         const char *s;
         uint64_t slen;
         HRM_TRY(hrm_mp_str(&r, &s, &slen, "\"format\""));
         HRM_CHECK(hrm_mp_str_is(s, slen, CK_FORMAT), HRM_ERR_FORMAT, "'%s' is not an hrm checkpoint "
                   "(format '%.*s', expected '" CK_FORMAT "')", r.label,
                   (int)(slen < 40 ? slen : 40), s);
      } else if (hrm_mp_str_is(key, klen, "version")) {
         HRM_CHECK(!seen_version++, HRM_ERR_FORMAT, "'%s': \"version\" appears twice", r.label);
         uint64_t v;
         HRM_TRY(hrm_mp_head(&r, HRM_MP_INT, &v, "\"version\""));
         HRM_CHECK(v == CK_VERSION || v == CK_VERSION_UNCHECKED, HRM_ERR_FORMAT, "'%s' is a "
                   "version %llu checkpoint; this build of hrm reads versions %d and %d\n"
                   "---> HINT: %s", r.label, (unsigned long long)v, CK_VERSION_UNCHECKED,
                   CK_VERSION, v > CK_VERSION ? "a newer hrm wrote it, or its version is damaged"
                                              : "the file is damaged");
         f->version = (int32_t)v;
      } else if (hrm_mp_str_is(key, klen, "meta")) {
         HRM_CHECK(!seen_meta++, HRM_ERR_FORMAT, "'%s': \"meta\" appears twice", r.label);
         HRM_TRY(parse_meta(f, &r));
      } else if (hrm_mp_str_is(key, klen, "tensors")) {
         HRM_CHECK(!seen_tensors++, HRM_ERR_FORMAT, "'%s': \"tensors\" appears twice", r.label);
         HRM_TRY(parse_tensors(f, &r));
      } else if (hrm_mp_str_is(key, klen, "header_xxh3")) {
         HRM_CHECK(i + 1 == n, HRM_ERR_FORMAT, "'%s': \"header_xxh3\" is not the last top-level "
                   "key\n---> HINT: the header is damaged", r.label);
         f->header_end = r.pos;
         HRM_TRY(hrm_mp_head(&r, HRM_MP_INT, &f->header_sum, "\"header_xxh3\""));
         f->has_header_sum = 1;
      } else {
         return HRM_FAIL(HRM_ERR_FORMAT, "'%s': unknown top-level key '%.*s' (expected format, "
                         "version, meta, tensors, header_xxh3)", r.label,
                         (int)(klen < 40 ? klen : 40), key);
      }
   }
   HRM_CHECK(seen_format && seen_version && seen_meta && seen_tensors, HRM_ERR_FORMAT,
             "'%s': the top-level map has no \"%s\"%s", r.label,
             !seen_format ? "format" : !seen_version ? "version" : !seen_meta ? "meta" : "tensors",
             seen_format ? "" : "\n---> HINT: is this an hrm checkpoint?");
   HRM_CHECK(r.pos == r.size, HRM_ERR_FORMAT, "'%s' has %zu bytes after the checkpoint's end "
             "(byte %zu of %zu)\n---> HINT: the file is corrupt or two files were joined",
             r.label, r.size - r.pos, r.pos, r.size);
   HRM_TRY(ck_verify(f));
   return check_meta_json(f);
}

void hrm_checkpoint_free(hrm_checkpoint *f) {
   if (!f) return;
   for (int32_t i = 0; i < f->count; i++) {
      free(f->entries[i].name);
      free(f->entries[i].spans);
   }
   free(f->entries);
   free(f->meta);
   hrm_file_release(&f->img.file);
   free(f->img.label);
   free(f);
}

static int ck_parse_image(void *f) { return ck_parse(f); }
static void ck_release(void *f) { hrm_checkpoint_free(f); }

int hrm_checkpoint_open(hrm_checkpoint **out, const char *path) {
   HRM_CHECK(out, HRM_ERR_ARG, "checkpoint_open: out is NULL");
   *out = NULL;
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "checkpoint_open: path is NULL or empty");
   void *f;
   int rc = hrm_image_open(&f, sizeof **out, "checkpoint", path, NULL, 0, path, ck_parse_image,
                           ck_release);
   *out = f;
   return rc;
}

int hrm_checkpoint_open_memory(hrm_checkpoint **out, const void *data, size_t size,
                               const char *label) {
   HRM_CHECK(out, HRM_ERR_ARG, "checkpoint_open_memory: out is NULL");
   void *f;
   int rc = hrm_image_open(&f, sizeof **out, "checkpoint", NULL, data, size,
                           label ? label : "<memory>", ck_parse_image, ck_release);
   *out = f;
   return rc;
}

const char *hrm_checkpoint_meta(const hrm_checkpoint *f) { return f ? f->meta : NULL; }

int32_t hrm_checkpoint_version(const hrm_checkpoint *f) { return f ? f->version : 0; }

int32_t hrm_checkpoint_count(const hrm_checkpoint *f) { return f ? f->count : 0; }

const char *hrm_checkpoint_name(const hrm_checkpoint *f, int32_t i) {
   return (f && i >= 0 && i < f->count) ? f->entries[i].name : NULL;
}

static int ck_lookup(const ck_entry **out, const hrm_checkpoint *f, const char *name,
                     const char *fname) {
   HRM_CHECK(f && name, HRM_ERR_ARG, "%s: checkpoint or name is NULL", fname);
   *out = ck_find(f, name);
   HRM_CHECK(*out, HRM_ERR_ARG, "'%s' has no tensor named '" CK_NAME "' (it has %d)", f->img.label,
             name, f->count);
   return HRM_OK;
}

int hrm_checkpoint_info(int32_t *dtype, int32_t *ndim, int64_t *shape, const hrm_checkpoint *f,
                        const char *name) {
   const ck_entry *e;
   HRM_TRY(ck_lookup(&e, f, name, "checkpoint_info"));
   if (dtype) *dtype = e->dtype;
   if (ndim) *ndim = e->ndim;
   if (shape) memcpy(shape, e->shape, sizeof e->shape);
   return HRM_OK;
}

/* Copy e's bytes to dst. Pages of a mapped file are dropped from the process once copied (they
 * stay in the page cache), so a large tensor costs its own memory and a bounded window of the
 * file, not both in full. */
static void ck_copy(void *dst, const hrm_checkpoint *f, const ck_entry *e) {
   const hrm_mp_span *spans = ck_spans(e);
   uint8_t *out = dst;
   size_t page = (size_t)sysconf(_SC_PAGESIZE);
   for (uint32_t s = 0; s < e->nspans; s++) {
      const uint8_t *src = spans[s].p;
      size_t left = (size_t)spans[s].n;
      while (left > 0) {
         size_t k = left < CK_COPY_BLOCK ? left : CK_COPY_BLOCK;
         memcpy(out, src, k);
         if (f->img.file.mapped_ && page > 0) {
            uintptr_t a = (uintptr_t)src / page * page, z = ((uintptr_t)src + k) / page * page;
            if (z > a) madvise((void *)a, z - a, MADV_DONTNEED);
         }
         out += k;
         src += k;
         left -= k;
      }
   }
}

int hrm_checkpoint_get(hrm_tensor **out, const hrm_checkpoint *f, const char *name) {
   HRM_CHECK(out, HRM_ERR_ARG, "checkpoint_get: out is NULL");
   *out = NULL;
   const ck_entry *e;
   HRM_TRY(ck_lookup(&e, f, name, "checkpoint_get"));
   hrm_tensor *t;
   HRM_TRY(hrm_tensor_new(&t, e->dtype, e->ndim, e->shape));
   if ((uint64_t)t->numel * hrm_dtype_size(e->dtype) != e->bytes) { /* parse_entry rules it out */
      hrm_tensor_free(t);
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' size mismatch", f->img.label,
                      e->name);
   }
   ck_copy(t->data, f, e);
   *out = t;
   return HRM_OK;
}

int hrm_checkpoint_read_into(hrm_tensor *dst, const hrm_checkpoint *f, const char *name) {
   HRM_CHECK(dst, HRM_ERR_ARG, "checkpoint_read_into: dst is NULL");
   const ck_entry *e;
   HRM_TRY(ck_lookup(&e, f, name, "checkpoint_read_into"));
   HRM_CHECK(dst->device == HRM_DEVICE_CPU, HRM_ERR_DEVICE, "checkpoint_read_into: tensor '"
             CK_NAME "': dst is not on the CPU\n---> HINT: read into a host tensor, then copy",
             name);
   HRM_CHECK(dst->dtype == e->dtype, HRM_ERR_DTYPE, "checkpoint_read_into: tensor '" CK_NAME
             "' is %s in '%s' but dst is %s", name, hrm_dtype_name(e->dtype), f->img.label,
             hrm_dtype_name(dst->dtype) ? hrm_dtype_name(dst->dtype) : "of an unknown dtype");
   int same = dst->ndim == e->ndim;
   for (int32_t d = 0; same && d < e->ndim; d++) same = dst->shape[d] == e->shape[d];
   if (!same) {
      char fs[80], ds[80];
      hrm_format_shape(fs, sizeof fs, e->ndim, e->shape);
      hrm_format_shape(ds, sizeof ds, dst->ndim >= 0 && dst->ndim <= 4 ? dst->ndim : 0, dst->shape);
      return HRM_FAIL(HRM_ERR_SHAPE, "checkpoint_read_into: tensor '" CK_NAME "' has shape %s "
                      "in '%s' but dst has %s", name, fs, f->img.label, ds);
   }
   HRM_CHECK((uint64_t)dst->numel * hrm_dtype_size(dst->dtype) == e->bytes, HRM_ERR_SHAPE,
             "checkpoint_read_into: tensor '" CK_NAME "': dst holds %lld elements, not %llu "
             "bytes", name, (long long)dst->numel, (unsigned long long)e->bytes);
   HRM_CHECK(e->bytes == 0 || dst->data, HRM_ERR_ARG, "checkpoint_read_into: tensor '" CK_NAME
             "': dst has no data", name);
   ck_copy(dst->data, f, e);
   return HRM_OK;
}

/* ---- writing -------------------------------------------------------------------------------- */

static int check_meta(const char *path, const char *meta, size_t len) {
   HRM_CHECK(len <= CK_MAX_META, HRM_ERR_ARG, "checkpoint_write '%s': meta is %zu bytes, over "
             "the limit of %llu", path, len, (unsigned long long)CK_MAX_META);
   size_t at;
   HRM_CHECK(!json_object_fault(meta, len, &at), HRM_ERR_ARG, "checkpoint_write '%s': meta must "
             "be the text of one JSON object", path);
   return HRM_OK;
}

int hrm_checkpoint_write(const char *path, const char *meta, int32_t n, const char *const *names,
                         const hrm_tensor *const *tensors) {
   hrm_named_tensor *order;
   HRM_TRY(hrm_named_tensors(&order, "checkpoint_write", path, n, names, tensors, CK_MAX_NAME,
                             NULL));
   if (!meta) meta = "{}";
   size_t meta_len = strlen(meta);
   hrm_mp_sink sink;
   int rc = check_meta(path, meta, meta_len);
   if (rc == HRM_OK) rc = hrm_mp_sink_open(&sink, path, "checkpoint_write");
   if (rc != HRM_OK) {
      free(order);
      return rc;
   }
   msgpack_packer *pk = &sink.pk;
   msgpack_pack_map(pk, 5);
   hrm_mp_pack_cstr(pk, "format");
   hrm_mp_pack_cstr(pk, CK_FORMAT);
   hrm_mp_pack_cstr(pk, "version");
   msgpack_pack_uint32(pk, CK_VERSION);
   hrm_mp_pack_cstr(pk, "meta");
   msgpack_pack_str(pk, meta_len);
   msgpack_pack_str_body(pk, meta, meta_len);
   hrm_mp_pack_cstr(pk, "tensors");
   msgpack_pack_map(pk, (size_t)n);
   for (int32_t i = 0; i < n; i++) {
      const hrm_tensor *t = order[i].t;
      uint64_t bytes = (uint64_t)t->numel * hrm_dtype_size(t->dtype);
      hrm_mp_pack_cstr(pk, order[i].name);
      msgpack_pack_map(pk, 4);
      hrm_mp_pack_cstr(pk, "dtype");
      hrm_mp_pack_cstr(pk, hrm_dtype_name(t->dtype));
      hrm_mp_pack_cstr(pk, "shape");
      msgpack_pack_array(pk, (size_t)t->ndim);
      for (int32_t d = 0; d < t->ndim; d++) msgpack_pack_uint64(pk, (uint64_t)t->shape[d]);
      hrm_mp_pack_cstr(pk, "data");
      const uint8_t *p = t->data;
      if (bytes <= ck_chunk_max) {
         msgpack_pack_bin(pk, (size_t)bytes);
         hrm_mp_sink_payload(&sink, p, (size_t)bytes); /* straight from the tensor */
      } else {
         uint64_t parts = (bytes + ck_chunk_max - 1) / ck_chunk_max;
         msgpack_pack_array(pk, (size_t)parts);
         for (uint64_t off = 0; off < bytes; off += ck_chunk_max) {
            uint64_t k = bytes - off < ck_chunk_max ? bytes - off : ck_chunk_max;
            msgpack_pack_bin(pk, (size_t)k);
            hrm_mp_sink_payload(&sink, p + off, (size_t)k);
         }
      }
      hrm_mp_pack_cstr(pk, "xxh3");
      msgpack_pack_uint64(pk, XXH3_64bits(bytes ? p : NULL, (size_t)bytes));
   }
   hrm_mp_pack_cstr(pk, "header_xxh3");
   msgpack_pack_uint64(pk, hrm_mp_sink_header_sum(&sink));
   free(order);
   return hrm_mp_sink_close(&sink); /* reports the first failed write, if any */
}
