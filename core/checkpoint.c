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
 * its own bounded cursor rather than msgpack_unpack, which allocates a declared container size
 * before checking that the input can hold it (a 5-byte file can ask for 100 GB). Every count
 * and length is checked against the bytes left before it is used; nothing is allocated in
 * proportion to a declared size. Tensor data stays in the mapping until it is copied out.
 * Bytes are little-endian as in memory: a big-endian host is refused.
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

#define CK_FORMAT "hrm"
#define CK_VERSION 2                      /* written; checksummed */
#define CK_VERSION_UNCHECKED 1            /* still read: no checksums */
#define CK_MAX_NAME 1024                  /* bytes in a tensor name */
#define CK_MAX_META ((uint64_t)1 << 28)   /* 256 MiB of JSON */
#define CK_MAX_SPANS 65536                /* bins in one tensor's data list */
#define CK_BIN_MAX 0xffffffffull          /* the largest msgpack bin */
#define CK_COPY_BLOCK ((size_t)64 << 20)  /* bytes copied before mapped pages are dropped */
#define CK_NAME "%.200s"                  /* tensor names in messages, cut at 200 bytes */

typedef struct ck_span { uint64_t off, len; } ck_span; /* bytes [off, off + len) of the file */

typedef struct ck_entry {
   char *name;
   int32_t dtype;        /* enum hrm_dtype */
   int32_t ndim;         /* 0..4 */
   int64_t shape[4];
   uint64_t bytes;       /* numel x dtype size == sum of the spans */
   uint32_t nspans;
   ck_span one;          /* the data when nspans <= 1 */
   ck_span *spans;       /* owned list when nspans > 1 */
   uint64_t sum;         /* XXH3-64 of the bytes (version 2) */
   int has_sum;
} ck_entry;

struct hrm_checkpoint {
   hrm_file_data file;
   char *label;          /* the path (or a caller's label), for messages */
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

static int host_check(void) {
   const uint16_t one = 1;
   unsigned char first;
   memcpy(&first, &one, 1);
   HRM_CHECK(first == 1, HRM_ERR_STATE, "checkpoint: this host is big-endian; .hrm files store "
             "little-endian data and hrm does not byte-swap it");
   return HRM_OK;
}

static int cmp_entry_name(const void *a, const void *b) {
   return strcmp(((const ck_entry *)a)->name, ((const ck_entry *)b)->name);
}

static const ck_entry *ck_find(const hrm_checkpoint *f, const char *name) {
   ck_entry key = {.name = (char *)name};
   return f->count ? bsearch(&key, f->entries, (size_t)f->count, sizeof key, cmp_entry_name)
                   : NULL;
}

/* "[2, 3]" */
static void format_shape(char *buf, size_t cap, int32_t ndim, const int64_t *shape) {
   size_t len = (size_t)snprintf(buf, cap, "[");
   for (int32_t i = 0; i < ndim && len < cap; i++)
      len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
   if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* ---- the bounded msgpack cursor ------------------------------------------------------------- */

enum ck_kind { CK_MAP, CK_ARRAY, CK_STR, CK_BIN, CK_UINT };

typedef struct ck_reader {
   const uint8_t *p;
   size_t size, pos;
   const char *label;
} ck_reader;

static const char *const ck_kind_names[] = {"a map", "an array", "a string", "binary data",
                                            "a non-negative integer"};

/* What the msgpack value starting with byte b is, for messages. */
static const char *describe(uint8_t b) {
   if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return "an integer";
   if ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf) return "a map";
   if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) return "an array";
   if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) return "a string";
   if (b >= 0xc4 && b <= 0xc6) return "binary data";
   if (b == 0xc0) return "nil";
   if (b == 0xc2 || b == 0xc3) return "a boolean";
   if (b == 0xca || b == 0xcb) return "a float";
   if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) return "an extension value";
   return "the reserved byte 0xc1";
}

static uint64_t read_be(const uint8_t *p, int n) {
   uint64_t v = 0;
   for (int i = 0; i < n; i++) v = (v << 8) | p[i];
   return v;
}

/* Read the head of a value of kind `want` at the cursor: its count (map entries, array items),
 * length (string, bin: the payload follows at r->pos) or value (integer). `what` names the
 * value in messages. Counts and lengths are checked against the bytes left. */
static int rd_head(ck_reader *r, int want, uint64_t *out, const char *what) {
   size_t at = r->pos;
   HRM_CHECK(at < r->size, HRM_ERR_FORMAT, "'%s': the file ends where %s was expected (byte %zu)"
             "\n---> HINT: the file is truncated", r->label, what, at);
   uint8_t b = r->p[at];
   int kind = -1, extra = 0;     /* extra: big-endian bytes holding the count/length/value */
   uint64_t v = 0;
   int negative = 0;
   if (b <= 0x7f) { kind = CK_UINT; v = b; }
   else if (b >= 0x80 && b <= 0x8f) { kind = CK_MAP; v = b & 0x0f; }
   else if (b >= 0x90 && b <= 0x9f) { kind = CK_ARRAY; v = b & 0x0f; }
   else if (b >= 0xa0 && b <= 0xbf) { kind = CK_STR; v = b & 0x1f; }
   else if (b >= 0xe0) { kind = CK_UINT; negative = 1; }
   else switch (b) {
      case 0xc4: kind = CK_BIN; extra = 1; break;
      case 0xc5: kind = CK_BIN; extra = 2; break;
      case 0xc6: kind = CK_BIN; extra = 4; break;
      case 0xcc: kind = CK_UINT; extra = 1; break;
      case 0xcd: kind = CK_UINT; extra = 2; break;
      case 0xce: kind = CK_UINT; extra = 4; break;
      case 0xcf: kind = CK_UINT; extra = 8; break;
      case 0xd0: kind = CK_UINT; extra = 1; negative = -1; break; /* signed: check the sign */
      case 0xd1: kind = CK_UINT; extra = 2; negative = -1; break;
      case 0xd2: kind = CK_UINT; extra = 4; negative = -1; break;
      case 0xd3: kind = CK_UINT; extra = 8; negative = -1; break;
      case 0xd9: kind = CK_STR; extra = 1; break;
      case 0xda: kind = CK_STR; extra = 2; break;
      case 0xdb: kind = CK_STR; extra = 4; break;
      case 0xdc: kind = CK_ARRAY; extra = 2; break;
      case 0xdd: kind = CK_ARRAY; extra = 4; break;
      case 0xde: kind = CK_MAP; extra = 2; break;
      case 0xdf: kind = CK_MAP; extra = 4; break;
      default: break;
   }
   HRM_CHECK(kind == want, HRM_ERR_FORMAT, "'%s': %s is %s, expected %s (byte %zu)", r->label,
             what, describe(b), ck_kind_names[want], at);
   HRM_CHECK((uint64_t)extra < r->size - at, HRM_ERR_FORMAT, "'%s': the file ends inside the "
             "head of %s (byte %zu)\n---> HINT: the file is truncated", r->label, what, at);
   if (extra) v = read_be(r->p + at + 1, extra);
   if (negative < 0 && (v >> (8 * extra - 1)) & 1) negative = 1;
   HRM_CHECK(negative != 1, HRM_ERR_FORMAT, "'%s': %s is negative, expected %s (byte %zu)",
             r->label, what, ck_kind_names[want], at);
   r->pos = at + 1 + (size_t)extra;
   size_t left = r->size - r->pos;
   if (kind == CK_STR || kind == CK_BIN)
      HRM_CHECK(v <= left, HRM_ERR_FORMAT, "'%s': %s declares %llu bytes but only %zu remain "
                "(byte %zu)\n---> HINT: the file is truncated or corrupt", r->label, what,
                (unsigned long long)v, left, at);
   if (kind == CK_MAP || kind == CK_ARRAY)  /* each item takes at least one byte, a pair two */
      HRM_CHECK(v <= (kind == CK_MAP ? left / 2 : left), HRM_ERR_FORMAT, "'%s': %s declares "
                "%llu %s but only %zu bytes remain (byte %zu)\n---> HINT: the file is truncated "
                "or corrupt", r->label, what, (unsigned long long)v,
                kind == CK_MAP ? "entries" : "items", left, at);
   *out = v;
   return HRM_OK;
}

/* A string value: [*s, *s + *n) inside the file; the cursor moves past it. */
static int rd_str(ck_reader *r, const char **s, uint64_t *n, const char *what) {
   HRM_TRY(rd_head(r, CK_STR, n, what));
   *s = (const char *)r->p + r->pos;
   r->pos += (size_t)*n;
   return HRM_OK;
}

static int str_is(const char *s, uint64_t n, const char *lit) {
   return strlen(lit) == n && memcmp(s, lit, (size_t)n) == 0;
}

/* ---- parsing -------------------------------------------------------------------------------- */

static int parse_meta(hrm_checkpoint *f, ck_reader *r) {
   const char *s;
   uint64_t n;
   HRM_TRY(rd_str(r, &s, &n, "\"meta\""));
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

/* meta is one JSON object (checked after the checksums, so that damage is reported as such). */
static int check_meta_json(hrm_checkpoint *f) {
   size_t n = strlen(f->meta);
   const char *stop = NULL;
   cJSON *root = cJSON_ParseWithLengthOpts(f->meta, n, &stop, 0);
   int rc = HRM_OK;
   if (!root) {
      size_t at = stop && stop >= f->meta && stop <= f->meta + n ? (size_t)(stop - f->meta) : 0;
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': meta is not valid JSON (near byte %zu of %llu)",
                    f->label, at, (unsigned long long)n);
   } else if (!cJSON_IsObject(root)) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': meta is JSON but not an object", f->label);
   } else {
      for (const char *c = stop; c < f->meta + n; c++)
         if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r') {
            rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': meta has bytes after its JSON object (byte %zu "
                          "of %llu)", f->label, (size_t)(c - f->meta), (unsigned long long)n);
            break;
         }
   }
   cJSON_Delete(root);
   return rc;
}

/* The "data" value of entry e: one bin or a list of bins. */
static int parse_data(ck_entry *e, ck_reader *r, const char *what) {
   HRM_CHECK(r->pos < r->size, HRM_ERR_FORMAT, "'%s': the file ends where %s was expected "
             "(byte %zu)\n---> HINT: the file is truncated", r->label, what, r->pos);
   uint8_t b = r->p[r->pos];
   uint64_t len, total = 0;
   if (b >= 0xc4 && b <= 0xc6) {
      HRM_TRY(rd_head(r, CK_BIN, &len, what));
      e->nspans = 1;
      e->one = (ck_span){r->pos, len};
      r->pos += (size_t)len;
      e->bytes = len;
      return HRM_OK;
   }
   HRM_CHECK((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd, HRM_ERR_FORMAT,
             "'%s': %s is %s, expected binary data or a list of binary data (byte %zu)",
             r->label, what, describe(b), r->pos);
   uint64_t k;
   HRM_TRY(rd_head(r, CK_ARRAY, &k, what));
   HRM_CHECK(k <= CK_MAX_SPANS, HRM_ERR_FORMAT, "'%s': %s is split into %llu parts, over the "
             "limit of %d", r->label, what, (unsigned long long)k, CK_MAX_SPANS);
   if (k > 1) {
      e->spans = malloc((size_t)k * sizeof *e->spans);
      HRM_CHECK(e->spans, HRM_ERR_MEMORY, "'%s': out of memory", r->label);
   }
   for (uint64_t i = 0; i < k; i++) {
      HRM_TRY(rd_head(r, CK_BIN, &len, what));
      ck_span s = {r->pos, len};
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
static int parse_entry(ck_entry *e, ck_reader *r) {
   char what[300];
   snprintf(what, sizeof what, "tensor '" CK_NAME "'", e->name);
   uint64_t n;
   HRM_TRY(rd_head(r, CK_MAP, &n, what));
   int seen_dtype = 0, seen_shape = 0, seen_data = 0;
   uint64_t numel = 1;
   for (uint64_t i = 0; i < n; i++) {
      const char *key;
      uint64_t klen;
      char kwhat[340];
      snprintf(kwhat, sizeof kwhat, "a key of tensor '" CK_NAME "'", e->name);
      HRM_TRY(rd_str(r, &key, &klen, kwhat));
      if (str_is(key, klen, "dtype")) {
         HRM_CHECK(!seen_dtype++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two dtypes",
                   r->label, e->name);
         const char *s;
         uint64_t slen;
         snprintf(kwhat, sizeof kwhat, "the dtype of tensor '" CK_NAME "'", e->name);
         HRM_TRY(rd_str(r, &s, &slen, kwhat));
         e->dtype = -1;
         for (int32_t d = 0; d < HRM_DTYPE_COUNT; d++)
            if (str_is(s, slen, hrm_dtype_name(d))) e->dtype = d;
         HRM_CHECK(e->dtype >= 0, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has unknown "
                   "dtype '%.*s' (f32, f64, bf16, i32, i64, u8)", r->label, e->name,
                   (int)(slen < 40 ? slen : 40), s);
      } else if (str_is(key, klen, "shape")) {
         HRM_CHECK(!seen_shape++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two shapes",
                   r->label, e->name);
         uint64_t nd;
         snprintf(kwhat, sizeof kwhat, "the shape of tensor '" CK_NAME "'", e->name);
         HRM_TRY(rd_head(r, CK_ARRAY, &nd, kwhat));
         HRM_CHECK(nd <= 4, HRM_ERR_SHAPE, "'%s': tensor '" CK_NAME "' has %llu dims; hrm "
                   "tensors have at most 4", r->label, e->name, (unsigned long long)nd);
         e->ndim = (int32_t)nd;
         for (int32_t d = 0; d < 4; d++) e->shape[d] = 1;
         for (int32_t d = 0; d < e->ndim; d++) {
            uint64_t size;
            snprintf(kwhat, sizeof kwhat, "size %d of tensor '" CK_NAME "'", d + 1, e->name);
            HRM_TRY(rd_head(r, CK_UINT, &size, kwhat));
            HRM_CHECK(size <= (uint64_t)INT64_MAX / 16 &&
                      (size == 0 || numel <= ((uint64_t)INT64_MAX / 16) / size), HRM_ERR_FORMAT,
                      "'%s': tensor '" CK_NAME "': its shape's element count overflows",
                      r->label, e->name);
            numel *= size;
            e->shape[d] = (int64_t)size;
         }
      } else if (str_is(key, klen, "data")) {
         HRM_CHECK(!seen_data++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two data "
                   "fields", r->label, e->name);
         snprintf(kwhat, sizeof kwhat, "the data of tensor '" CK_NAME "'", e->name);
         HRM_TRY(parse_data(e, r, kwhat));
      } else if (str_is(key, klen, "xxh3")) {
         HRM_CHECK(!e->has_sum++, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has two "
                   "checksums", r->label, e->name);
         snprintf(kwhat, sizeof kwhat, "the checksum of tensor '" CK_NAME "'", e->name);
         HRM_TRY(rd_head(r, CK_UINT, &e->sum, kwhat));
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
   format_shape(shape, sizeof shape, e->ndim, e->shape);
   HRM_CHECK(bytes == e->bytes, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' is %s %s (%llu "
             "bytes) but holds %llu bytes of data\n---> HINT: the file is corrupt", r->label,
             e->name, hrm_dtype_name(e->dtype), shape, (unsigned long long)bytes,
             (unsigned long long)e->bytes);
   return HRM_OK;
}

static int parse_tensors(hrm_checkpoint *f, ck_reader *r) {
   uint64_t n;
   HRM_TRY(rd_head(r, CK_MAP, &n, "\"tensors\""));
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
      HRM_TRY(rd_str(r, &s, &len, "a tensor name"));
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

/* Feed [off, off + len) of the file to st; pages of a mapped file are dropped once hashed, as in
 * ck_copy, so verifying a large file does not keep it resident. */
static void hash_range(XXH3_state_t *st, const hrm_checkpoint *f, uint64_t off, uint64_t len) {
   size_t page = (size_t)sysconf(_SC_PAGESIZE);
   const uint8_t *src = f->file.data + off;
   while (len > 0) {
      size_t k = len < CK_COPY_BLOCK ? (size_t)len : CK_COPY_BLOCK;
      XXH3_64bits_update(st, src, k);
      if (f->file.mapped_ && page > 0 && k == CK_COPY_BLOCK) {
         uintptr_t a = ((uintptr_t)src + page - 1) / page * page;
         uintptr_t z = ((uintptr_t)src + k) / page * page;
         if (z > a) madvise((void *)a, z - a, MADV_DONTNEED);
      }
      src += k;
      len -= k;
   }
}

static int cmp_span_off(const void *a, const void *b) {
   uint64_t x = ((const ck_span *)a)->off, y = ((const ck_span *)b)->off;
   return (x > y) - (x < y);
}

/* The header's checksum: every byte of [0, header_end) outside the tensors' data. */
static int verify_header(const hrm_checkpoint *f, XXH3_state_t *st) {
   size_t total = 0;
   for (int32_t i = 0; i < f->count; i++) total += f->entries[i].nspans;
   ck_span *all = malloc((total ? total : 1) * sizeof *all);
   HRM_CHECK(all, HRM_ERR_MEMORY, "'%s': out of memory verifying the header", f->label);
   size_t k = 0;
   for (int32_t i = 0; i < f->count; i++) {
      const ck_entry *e = &f->entries[i];
      const ck_span *sp = e->nspans > 1 ? e->spans : &e->one;
      for (uint32_t j = 0; j < e->nspans; j++) all[k++] = sp[j];
   }
   qsort(all, total, sizeof *all, cmp_span_off);
   XXH3_64bits_reset(st);
   uint64_t at = 0;
   for (size_t j = 0; j < total; j++) { /* spans are disjoint and before header_end */
      if (all[j].off > at) XXH3_64bits_update(st, f->file.data + at, (size_t)(all[j].off - at));
      at = all[j].off + all[j].len;
   }
   free(all);
   if (f->header_end > at) XXH3_64bits_update(st, f->file.data + at, (size_t)(f->header_end - at));
   uint64_t got = XXH3_64bits_digest(st);
   HRM_CHECK(got == f->header_sum, HRM_ERR_FORMAT, "'%s': the header (format, version, meta, "
             "tensor names, dtypes and shapes) fails its checksum (stored %016llx, computed "
             "%016llx)\n---> HINT: the file is damaged; use another copy", f->label,
             (unsigned long long)f->header_sum, (unsigned long long)got);
   return HRM_OK;
}

static int verify_tensor(const hrm_checkpoint *f, const ck_entry *e, XXH3_state_t *st) {
   const ck_span *sp = e->nspans > 1 ? e->spans : &e->one;
   XXH3_64bits_reset(st);
   for (uint32_t j = 0; j < e->nspans; j++) hash_range(st, f, sp[j].off, sp[j].len);
   uint64_t got = XXH3_64bits_digest(st);
   HRM_CHECK(got == e->sum, HRM_ERR_FORMAT, "'%s': the data of tensor '" CK_NAME "' fails its "
             "checksum (stored %016llx, computed %016llx)\n---> HINT: the file is damaged; use "
             "another copy", f->label, e->name, (unsigned long long)e->sum,
             (unsigned long long)got);
   return HRM_OK;
}

/* Version 2: every checksum present and matching (the header first). Version 1: none present. */
static int ck_verify(hrm_checkpoint *f) {
   int any = f->has_header_sum;
   for (int32_t i = 0; i < f->count; i++) any |= f->entries[i].has_sum;
   if (f->version == CK_VERSION_UNCHECKED) {
      HRM_CHECK(!any, HRM_ERR_FORMAT, "'%s' says version %d (no checksums) but carries "
                "checksums\n---> HINT: its version is damaged", f->label, CK_VERSION_UNCHECKED);
      return HRM_OK;
   }
   HRM_CHECK(f->has_header_sum, HRM_ERR_FORMAT, "'%s': a version %d checkpoint without its "
             "\"header_xxh3\"\n---> HINT: the header is damaged", f->label, CK_VERSION);
   for (int32_t i = 0; i < f->count; i++)
      HRM_CHECK(f->entries[i].has_sum, HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' has no "
                "checksum in a version %d checkpoint\n---> HINT: the header is damaged",
                f->label, f->entries[i].name, CK_VERSION);
   XXH3_state_t *st = XXH3_createState();
   HRM_CHECK(st, HRM_ERR_MEMORY, "'%s': out of memory verifying checksums", f->label);
   int rc = verify_header(f, st);
   for (int32_t i = 0; i < f->count && rc == HRM_OK; i++) rc = verify_tensor(f, &f->entries[i], st);
   XXH3_freeState(st);
   return rc;
}

static int ck_parse(hrm_checkpoint *f) {
   ck_reader r = {f->file.data, f->file.size, 0, f->label};
   HRM_CHECK(r.size > 0, HRM_ERR_FORMAT, "'%s' is empty\n---> HINT: was its write interrupted? "
             "hrm writes checkpoints atomically, so another program made this file", r.label);
   uint8_t b = r.p[0];
   HRM_CHECK((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf, HRM_ERR_FORMAT,
             "'%s' is not an hrm checkpoint (it does not start with a msgpack map)%s", r.label,
             r.size >= 9 && r.p[8] == '{' ? "\n---> HINT: it looks like safetensors: use "
             "model:load_safetensors" : "");
   uint64_t n;
   HRM_TRY(rd_head(&r, CK_MAP, &n, "the top level"));
   int seen_format = 0, seen_version = 0, seen_meta = 0, seen_tensors = 0;
   for (uint64_t i = 0; i < n; i++) {
      const char *key;
      uint64_t klen;
      HRM_TRY(rd_str(&r, &key, &klen, "a top-level key"));
      if (str_is(key, klen, "format")) {
         HRM_CHECK(!seen_format++, HRM_ERR_FORMAT, "'%s': \"format\" appears twice", r.label);
         const char *s;
         uint64_t slen;
         HRM_TRY(rd_str(&r, &s, &slen, "\"format\""));
         HRM_CHECK(str_is(s, slen, CK_FORMAT), HRM_ERR_FORMAT, "'%s' is not an hrm checkpoint "
                   "(format '%.*s', expected '" CK_FORMAT "')", r.label,
                   (int)(slen < 40 ? slen : 40), s);
      } else if (str_is(key, klen, "version")) {
         HRM_CHECK(!seen_version++, HRM_ERR_FORMAT, "'%s': \"version\" appears twice", r.label);
         uint64_t v;
         HRM_TRY(rd_head(&r, CK_UINT, &v, "\"version\""));
         HRM_CHECK(v == CK_VERSION || v == CK_VERSION_UNCHECKED, HRM_ERR_FORMAT, "'%s' is a "
                   "version %llu checkpoint; this build of hrm reads versions %d and %d\n"
                   "---> HINT: %s", r.label, (unsigned long long)v, CK_VERSION_UNCHECKED,
                   CK_VERSION, v > CK_VERSION ? "a newer hrm wrote it, or its version is damaged"
                                              : "the file is damaged");
         f->version = (int32_t)v;
      } else if (str_is(key, klen, "meta")) {
         HRM_CHECK(!seen_meta++, HRM_ERR_FORMAT, "'%s': \"meta\" appears twice", r.label);
         HRM_TRY(parse_meta(f, &r));
      } else if (str_is(key, klen, "tensors")) {
         HRM_CHECK(!seen_tensors++, HRM_ERR_FORMAT, "'%s': \"tensors\" appears twice", r.label);
         HRM_TRY(parse_tensors(f, &r));
      } else if (str_is(key, klen, "header_xxh3")) {
         HRM_CHECK(i + 1 == n, HRM_ERR_FORMAT, "'%s': \"header_xxh3\" is not the last top-level "
                   "key\n---> HINT: the header is damaged", r.label);
         f->header_end = r.pos;
         HRM_TRY(rd_head(&r, CK_UINT, &f->header_sum, "\"header_xxh3\""));
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
   hrm_file_release(&f->file);
   free(f->label);
   free(f);
}

/* Validate `file` (taken over by the new object, released on failure). */
static int ck_open(hrm_checkpoint **out, hrm_file_data *file, const char *label) {
   hrm_checkpoint *f = calloc(1, sizeof *f);
   char *copy = strdup(label);
   if (!f || !copy) {
      free(f);
      free(copy);
      hrm_file_release(file);
      return HRM_FAIL(HRM_ERR_MEMORY, "checkpoint: out of memory opening '%s'", label);
   }
   f->file = *file;
   f->label = copy;
   int rc = ck_parse(f);
   if (rc != HRM_OK) {
      hrm_checkpoint_free(f);
      return rc;
   }
   *out = f;
   return HRM_OK;
}

int hrm_checkpoint_open(hrm_checkpoint **out, const char *path) {
   HRM_CHECK(out, HRM_ERR_ARG, "checkpoint_open: out is NULL");
   *out = NULL;
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "checkpoint_open: path is NULL or empty");
   HRM_TRY(host_check());
   hrm_file_data file;
   HRM_TRY(hrm_file_load(&file, path, 0, HRM_FILE_MMAP));
   return ck_open(out, &file, path);
}

int hrm_checkpoint_open_memory(hrm_checkpoint **out, const void *data, size_t size,
                               const char *label) {
   HRM_CHECK(out, HRM_ERR_ARG, "checkpoint_open_memory: out is NULL");
   *out = NULL;
   HRM_TRY(host_check());
   hrm_file_data file;
   HRM_TRY(hrm_file_from_memory(&file, data, size));
   return ck_open(out, &file, label ? label : "<memory>");
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
   HRM_CHECK(*out, HRM_ERR_ARG, "'%s' has no tensor named '" CK_NAME "' (it has %d)", f->label,
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
   const ck_span *spans = e->nspans > 1 ? e->spans : &e->one;
   uint8_t *out = dst;
   size_t page = (size_t)sysconf(_SC_PAGESIZE);
   for (uint32_t s = 0; s < e->nspans; s++) {
      const uint8_t *src = f->file.data + spans[s].off;
      size_t left = (size_t)spans[s].len;
      while (left > 0) {
         size_t k = left < CK_COPY_BLOCK ? left : CK_COPY_BLOCK;
         memcpy(out, src, k);
         if (f->file.mapped_ && page > 0) {
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
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s': tensor '" CK_NAME "' size mismatch", f->label,
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
             "' is %s in '%s' but dst is %s", name, hrm_dtype_name(e->dtype), f->label,
             hrm_dtype_name(dst->dtype) ? hrm_dtype_name(dst->dtype) : "of an unknown dtype");
   int same = dst->ndim == e->ndim;
   for (int32_t d = 0; same && d < e->ndim; d++) same = dst->shape[d] == e->shape[d];
   if (!same) {
      char fs[80], ds[80];
      format_shape(fs, sizeof fs, e->ndim, e->shape);
      format_shape(ds, sizeof ds, dst->ndim >= 0 && dst->ndim <= 4 ? dst->ndim : 0, dst->shape);
      return HRM_FAIL(HRM_ERR_SHAPE, "checkpoint_read_into: tensor '" CK_NAME "' has shape %s "
                      "in '%s' but dst has %s", name, fs, f->label, ds);
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

typedef struct named { const char *name; const hrm_tensor *t; } named;

static int cmp_named(const void *a, const void *b) {
   return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* msgpack-c's output callback: bytes go to the atomic writer, whose errors are sticky, and
 * into the header's checksum (tensor data is written past the packer, so it is not in it). */
typedef struct pack_ctx {
   hrm_file_writer *w;
   XXH3_state_t *header;
} pack_ctx;

static int pack_sink(void *data, const char *buf, size_t len) {
   pack_ctx *c = data;
   XXH3_64bits_update(c->header, buf, len);
   return hrm_file_writer_write(c->w, buf, len) == HRM_OK ? 0 : -1;
}

static void pack_cstr(msgpack_packer *pk, const char *s) {
   size_t n = strlen(s);
   msgpack_pack_str(pk, n);
   msgpack_pack_str_body(pk, s, n);
}

static int check_tensor(const char *path, const char *name, const hrm_tensor *t, int32_t i) {
   HRM_CHECK(name && name[0], HRM_ERR_ARG, "checkpoint_write '%s': name %d is NULL or empty",
             path, i + 1);
   HRM_CHECK(strlen(name) <= CK_MAX_NAME, HRM_ERR_ARG, "checkpoint_write '%s': name %d is "
             "longer than %d bytes", path, i + 1, CK_MAX_NAME);
   HRM_CHECK(t, HRM_ERR_ARG, "checkpoint_write '%s': tensor '" CK_NAME "' is NULL", path, name);
   HRM_CHECK(t->device == HRM_DEVICE_CPU, HRM_ERR_DEVICE, "checkpoint_write '%s': tensor '"
             CK_NAME "' is not on the CPU\n---> HINT: copy it to the host first", path, name);
   HRM_CHECK(hrm_dtype_size(t->dtype), HRM_ERR_DTYPE, "checkpoint_write '%s': tensor '" CK_NAME
             "' has unknown dtype %d", path, name, t->dtype);
   HRM_CHECK(t->ndim >= 0 && t->ndim <= 4, HRM_ERR_SHAPE, "checkpoint_write '%s': tensor '"
             CK_NAME "' has %d dims", path, name, t->ndim);
   int64_t numel = 1;
   for (int32_t d = 0; d < t->ndim; d++) {
      HRM_CHECK(t->shape[d] >= 0 && (t->shape[d] == 0 || numel <= INT64_MAX / 16 / t->shape[d]),
                HRM_ERR_SHAPE, "checkpoint_write '%s': tensor '" CK_NAME "' has a bad size %lld",
                path, name, (long long)t->shape[d]);
      numel *= t->shape[d];
   }
   HRM_CHECK(numel == t->numel, HRM_ERR_SHAPE, "checkpoint_write '%s': tensor '" CK_NAME "' has "
             "numel %lld but its shape holds %lld", path, name, (long long)t->numel,
             (long long)numel);
   HRM_CHECK(numel == 0 || t->data, HRM_ERR_ARG, "checkpoint_write '%s': tensor '" CK_NAME
             "' has no data", path, name);
   return HRM_OK;
}

static int check_meta(const char *path, const char *meta, size_t len) {
   HRM_CHECK(len <= CK_MAX_META, HRM_ERR_ARG, "checkpoint_write '%s': meta is %zu bytes, over "
             "the limit of %llu", path, len, (unsigned long long)CK_MAX_META);
   const char *stop = NULL;
   cJSON *root = cJSON_ParseWithLengthOpts(meta, len, &stop, 0);
   int ok = root && cJSON_IsObject(root);
   for (const char *c = stop; ok && c && c < meta + len; c++)
      ok = *c == ' ' || *c == '\t' || *c == '\n' || *c == '\r';
   cJSON_Delete(root);
   HRM_CHECK(ok, HRM_ERR_ARG, "checkpoint_write '%s': meta must be the text of one JSON object",
             path);
   return HRM_OK;
}

int hrm_checkpoint_write(const char *path, const char *meta, int32_t n, const char *const *names,
                         const hrm_tensor *const *tensors) {
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "checkpoint_write: path is NULL or empty");
   HRM_CHECK(n >= 0, HRM_ERR_ARG, "checkpoint_write: tensor count %d is negative", n);
   HRM_CHECK(n == 0 || (names && tensors), HRM_ERR_ARG,
             "checkpoint_write: names or tensors is NULL");
   HRM_TRY(host_check());
   if (!meta) meta = "{}";
   size_t meta_len = strlen(meta);
   HRM_TRY(check_meta(path, meta, meta_len));
   for (int32_t i = 0; i < n; i++) HRM_TRY(check_tensor(path, names[i], tensors[i], i));

   named *order = malloc((n ? (size_t)n : 1) * sizeof *order);
   HRM_CHECK(order, HRM_ERR_MEMORY, "checkpoint_write '%s': out of memory", path);
   for (int32_t i = 0; i < n; i++) order[i] = (named){names[i], tensors[i]};
   if (n > 1) qsort(order, (size_t)n, sizeof *order, cmp_named);
   for (int32_t i = 1; i < n; i++) {
      if (strcmp(order[i - 1].name, order[i].name) == 0) {
         int rc = HRM_FAIL(HRM_ERR_ARG, "checkpoint_write '%s': tensor name '" CK_NAME "' is "
                           "given twice", path, order[i].name);
         free(order);
         return rc;
      }
   }

   hrm_file_writer *w;
   XXH3_state_t *header = XXH3_createState();
   int rc = header ? hrm_file_writer_open(&w, path)
                   : HRM_FAIL(HRM_ERR_MEMORY, "checkpoint_write '%s': out of memory", path);
   if (rc != HRM_OK) {
      XXH3_freeState(header);
      free(order);
      return rc;
   }
   XXH3_64bits_reset(header);
   pack_ctx ctx = {w, header};
   msgpack_packer pk;
   msgpack_packer_init(&pk, &ctx, pack_sink);
   msgpack_pack_map(&pk, 5);
   pack_cstr(&pk, "format");
   pack_cstr(&pk, CK_FORMAT);
   pack_cstr(&pk, "version");
   msgpack_pack_uint32(&pk, CK_VERSION);
   pack_cstr(&pk, "meta");
   msgpack_pack_str(&pk, meta_len);
   msgpack_pack_str_body(&pk, meta, meta_len);
   pack_cstr(&pk, "tensors");
   msgpack_pack_map(&pk, (size_t)n);
   for (int32_t i = 0; i < n; i++) {
      const hrm_tensor *t = order[i].t;
      uint64_t bytes = (uint64_t)t->numel * hrm_dtype_size(t->dtype);
      pack_cstr(&pk, order[i].name);
      msgpack_pack_map(&pk, 4);
      pack_cstr(&pk, "dtype");
      pack_cstr(&pk, hrm_dtype_name(t->dtype));
      pack_cstr(&pk, "shape");
      msgpack_pack_array(&pk, (size_t)t->ndim);
      for (int32_t d = 0; d < t->ndim; d++) msgpack_pack_uint64(&pk, (uint64_t)t->shape[d]);
      pack_cstr(&pk, "data");
      const uint8_t *p = t->data;
      if (bytes <= ck_chunk_max) {
         msgpack_pack_bin(&pk, (size_t)bytes);
         if (bytes) hrm_file_writer_write(w, p, (size_t)bytes); /* straight from the tensor */
      } else {
         uint64_t parts = (bytes + ck_chunk_max - 1) / ck_chunk_max;
         msgpack_pack_array(&pk, (size_t)parts);
         for (uint64_t off = 0; off < bytes; off += ck_chunk_max) {
            uint64_t k = bytes - off < ck_chunk_max ? bytes - off : ck_chunk_max;
            msgpack_pack_bin(&pk, (size_t)k);
            hrm_file_writer_write(w, p + off, (size_t)k);
         }
      }
      pack_cstr(&pk, "xxh3");
      msgpack_pack_uint64(&pk, XXH3_64bits(bytes ? p : NULL, (size_t)bytes));
   }
   pack_cstr(&pk, "header_xxh3");
   uint64_t sum = XXH3_64bits_digest(header);
   msgpack_pack_uint64(&pk, sum);
   XXH3_freeState(header);
   free(order);
   return hrm_file_writer_commit(w); /* reports the first failed write, if any */
}
