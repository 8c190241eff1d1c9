/* hrmd.c — .hrmd dataset files: one msgpack map, written atomically, read with full validation.
 *
 * Layout: {"format": "hrmd", "version": 2, "meta": {dataset.json's fields, "identifiers"?},
 * "arrays": {name: {"dtype": "u8"|"i32", "shape": [...], "pad": bin, "data": bin, "xxh3": u64}},
 * "header_xxh3": u64 (always 0xcf + 8 bytes, the file's last 9)} for the five arrays of
 * HRM_SPEC §5.1, little-endian. Checksums (XXH3-64): one per payload, one over every other byte
 * before the last 9 (the header). The header and the small index arrays are verified at open;
 * the token payloads, used in place from the mapping, when first touched (dataset.c), so opening
 * a large file does not read it. Version 1 files (no checksums) still load, unchecked.
 * "pad" places every payload at a 64-byte file
 * offset so a read maps the file and uses the arrays in place. A payload past 4 GiB - 1 (the
 * msgpack bin limit) is stored as a list of bins and copied on read. The whole byte stream is
 * walked by msgpack_file.h (sizes against the bytes left, nesting depth, no trailing bytes)
 * before msgpack-c builds objects from it, so no input can make it allocate or read out of
 * bounds; the checksums are checked there too.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "error.h"
#include "fileio.h"
#include "msgpack_file.h"

/* defined in core/dataset.c */
int hrm_dataset_wrap_deferred(hrm_dataset **out, const hrm_dataset_meta *meta,
                              const hrm_dataset_arrays *a, void *owned[5], hrm_file_data *files,
                              int32_t nfiles, const char *label, const int deferred[2],
                              const uint64_t sums[2]);
void hrm_dataset_set_file_version(hrm_dataset *ds, int32_t version);

#define HRMD_VERSION 2            /* written; checksummed */
#define HRMD_VERSION_UNCHECKED 1  /* still read: no checksums */
#define HRMD_ALIGN 64
#define HRMD_MAX_DEPTH 8

static const char *const names[5] = {"inputs", "labels", "puzzle_identifiers", "puzzle_indices",
                                     "group_indices"};

/* Largest single bin payload; larger ones are split. Lowered by tests to exercise the split. */
static size_t bin_limit = UINT32_MAX;

/* Internal (tests): payloads above `limit` bytes are written as lists of bins. 0 restores. */
void hrm_hrmd_set_bin_limit(size_t limit) {
   bin_limit = limit == 0 ? UINT32_MAX : limit < HRMD_ALIGN ? HRMD_ALIGN : limit;
}

/* ---- writer --------------------------------------------------------------------------------- */

static size_t bin_header(size_t n) { return n < 256 ? 2 : n < 65536 ? 3 : 5; }

/* {"dtype", "shape", "pad", "data", "xxh3"} with the payload at a multiple of HRMD_ALIGN. */
static void pack_array(hrm_mp_sink *sink, const char *dtype, int32_t ndim, const int64_t *shape,
                       const void *data, size_t bytes) {
   msgpack_packer *pk = &sink->pk;
   msgpack_pack_map(pk, 5);
   hrm_mp_pack_cstr(pk, "dtype");
   hrm_mp_pack_cstr(pk, dtype);
   hrm_mp_pack_cstr(pk, "shape");
   msgpack_pack_array(pk, (size_t)ndim);
   for (int32_t d = 0; d < ndim; d++) msgpack_pack_int64(pk, shape[d]);
   hrm_mp_pack_cstr(pk, "pad");
   size_t chunk = bin_limit / HRMD_ALIGN * HRMD_ALIGN;
   size_t nchunks = bytes > bin_limit ? (bytes + chunk - 1) / chunk : 0;
   size_t head = nchunks ? (nchunks < 16 ? 1 : nchunks < 65536 ? 3 : 5) + bin_header(chunk)
                         : bin_header(bytes);
   uint64_t at = hrm_file_writer_offset(sink->w) + 2 + 5 + head; /* pad header, "data", head */
   size_t pad = (size_t)((HRMD_ALIGN - at % HRMD_ALIGN) % HRMD_ALIGN);
   static const char zeros[HRMD_ALIGN];
   msgpack_pack_bin(pk, pad);
   msgpack_pack_bin_body(pk, zeros, pad);
   hrm_mp_pack_cstr(pk, "data");
   if (!nchunks) {
      msgpack_pack_bin(pk, bytes);
      hrm_mp_sink_payload(sink, data, bytes);
   } else {
      msgpack_pack_array(pk, nchunks);
      for (size_t i = 0; i < nchunks; i++) {
         size_t n = bytes - i * chunk < chunk ? bytes - i * chunk : chunk;
         msgpack_pack_bin(pk, n);
         hrm_mp_sink_payload(sink, (const char *)data + i * chunk, n);
      }
   }
   hrm_mp_pack_cstr(pk, "xxh3");
   msgpack_pack_uint64(pk, XXH3_64bits(bytes ? data : NULL, bytes));
}

int hrm_dataset_save(const hrm_dataset *ds, const char *path) {
   HRM_CHECK(ds, HRM_ERR_ARG, "dataset_save: dataset is NULL");
   HRM_TRY(hrm_host_little_endian("dataset_save"));
   hrm_dataset_meta m;
   hrm_dataset_arrays a;
   HRM_TRY(hrm_dataset_get_meta(&m, ds));
   HRM_TRY(hrm_dataset_get_arrays(&a, ds));
   int32_t n_ids = 0;
   for (int32_t id = 0; id < m.num_puzzle_identifiers; id++)
      if (hrm_dataset_identifier(ds, id)) n_ids = id + 1;

   hrm_mp_sink sink;
   HRM_TRY(hrm_mp_sink_open(&sink, path, "dataset_save"));
   msgpack_packer *pk = &sink.pk;

   msgpack_pack_map(pk, 5);
   hrm_mp_pack_cstr(pk, "format");
   hrm_mp_pack_cstr(pk, "hrmd");
   hrm_mp_pack_cstr(pk, "version");
   msgpack_pack_int64(pk, HRMD_VERSION);

   hrm_mp_pack_cstr(pk, "meta");
   msgpack_pack_map(pk, n_ids ? 10 : 9);
   const struct { const char *key; int64_t value; } ints[] = {
      {"vocab_size", m.vocab_size}, {"seq_len", m.seq_len}, {"pad_id", m.pad_id},
      {"blank_identifier_id", m.blank_identifier_id},
      {"num_puzzle_identifiers", m.num_puzzle_identifiers}, {"total_groups", m.total_groups}};
   for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
      hrm_mp_pack_cstr(pk, ints[i].key);
      msgpack_pack_int64(pk, ints[i].value);
   }
   hrm_mp_pack_cstr(pk, "ignore_label_id");
   if (m.has_ignore_label) msgpack_pack_int64(pk, m.ignore_label_id);
   else msgpack_pack_nil(pk);
   hrm_mp_pack_cstr(pk, "mean_puzzle_examples");
   msgpack_pack_double(pk, m.mean_puzzle_examples);
   hrm_mp_pack_cstr(pk, "sets");
   msgpack_pack_array(pk, 1);
   hrm_mp_pack_cstr(pk, "all");
   if (n_ids) {
      hrm_mp_pack_cstr(pk, "identifiers");
      msgpack_pack_array(pk, (size_t)n_ids);
      for (int32_t id = 0; id < n_ids; id++) {
         const char *s = hrm_dataset_identifier(ds, id);
         if (s) hrm_mp_pack_cstr(pk, s);
         else msgpack_pack_nil(pk);
      }
   }

   hrm_mp_pack_cstr(pk, "arrays");
   msgpack_pack_map(pk, 5);
   int64_t S = m.seq_len;
   int64_t shapes[5][2] = {{a.n, S}, {a.n, S}, {a.n_puzzles, 1}, {a.n_puzzles + 1, 1},
                           {a.n_groups + 1, 1}};
   const void *data[5] = {a.inputs, a.labels, a.puzzle_identifiers, a.puzzle_indices,
                          a.group_indices};
   for (int k = 0; k < 5; k++) {
      int tokens = k < 2;
      size_t es = tokens ? hrm_dtype_size(a.token_dtype) : 4;
      size_t bytes = (size_t)(shapes[k][0] * shapes[k][1]) * es;
      hrm_mp_pack_cstr(pk, names[k]);
      pack_array(&sink, tokens ? hrm_dtype_name(a.token_dtype) : "i32", tokens ? 2 : 1,
                 shapes[k], data[k], bytes);
   }
   hrm_mp_pack_cstr(pk, "header_xxh3");
   uint64_t sum = hrm_mp_sink_header_sum(&sink);
   unsigned char tail[9] = {0xcf}; /* always uint 64: the reader finds it in the last 9 bytes */
   for (int i = 0; i < 8; i++) tail[1 + i] = (unsigned char)(sum >> (56 - 8 * i));
   hrm_mp_sink_payload(&sink, tail, sizeof tail);
   return hrm_mp_sink_close(&sink);
}

/* ---- semantic checks ------------------------------------------------------------------------ */

static int key_is(const msgpack_object *k, const char *s) {
   size_t n = strlen(s);
   return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
          memcmp(k->via.str.ptr, s, n) == 0;
}

static const char *kind_name(const msgpack_object *o) {
   if (!o) return "missing";
   switch (o->type) {
   case MSGPACK_OBJECT_NIL: return "nil";
   case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
   case MSGPACK_OBJECT_POSITIVE_INTEGER:
   case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
   case MSGPACK_OBJECT_FLOAT32:
   case MSGPACK_OBJECT_FLOAT64: return "a float";
   case MSGPACK_OBJECT_STR: return "a string";
   case MSGPACK_OBJECT_ARRAY: return "a list";
   case MSGPACK_OBJECT_MAP: return "a map";
   case MSGPACK_OBJECT_BIN: return "a bin";
   default: return "an extension";
   }
}

/* Pick the values of `keys` out of a map of string keys; duplicates are refused, and unknown
 * keys too unless allow_unknown. Missing keys leave NULL. */
static int take_keys(const msgpack_object **vals, const msgpack_object *map,
                     const char *const *keys, int nkeys, int allow_unknown, const char *where,
                     const char *label) {
   HRM_CHECK(map->type == MSGPACK_OBJECT_MAP, HRM_ERR_FORMAT, "'%s': %s is %s, expected a map",
             label, where, kind_name(map));
   HRM_CHECK(map->via.map.size <= 4096, HRM_ERR_FORMAT, "'%s': %s has %u entries (at most 4096)",
             label, where, map->via.map.size);
   for (int i = 0; i < nkeys; i++) vals[i] = NULL;
   for (uint32_t e = 0; e < map->via.map.size; e++) {
      const msgpack_object *k = &map->via.map.ptr[e].key;
      HRM_CHECK(k->type == MSGPACK_OBJECT_STR, HRM_ERR_FORMAT, "'%s': %s has a key that is %s, "
                "expected a string", label, where, kind_name(k));
      int found = -1;
      for (int i = 0; i < nkeys && found < 0; i++)
         if (key_is(k, keys[i])) found = i;
      if (found < 0) {
         HRM_CHECK(allow_unknown, HRM_ERR_FORMAT, "'%s': unexpected key \"%.*s\" in %s", label,
                   (int)(k->via.str.size < 64 ? k->via.str.size : 64), k->via.str.ptr, where);
         continue;
      }
      HRM_CHECK(!vals[found], HRM_ERR_FORMAT, "'%s': key \"%s\" appears twice in %s", label,
                keys[found], where);
      vals[found] = &map->via.map.ptr[e].val;
   }
   return HRM_OK;
}

static int get_int(int64_t *out, const msgpack_object *o, int64_t lo, int64_t hi,
                   const char *what, const char *label) {
   int ok = 0;
   if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
      *out = (int64_t)o->via.u64;
      ok = 1;
   } else if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
      *out = o->via.i64;
      ok = 1;
   }
   HRM_CHECK(ok, HRM_ERR_FORMAT, "'%s': %s is %s, expected an integer", label, what, kind_name(o));
   HRM_CHECK(*out >= lo && *out <= hi, HRM_ERR_FORMAT, "'%s': %s = %lld is outside [%lld, %lld]",
             label, what, (long long)*out, (long long)lo, (long long)hi);
   return HRM_OK;
}

static int read_meta(hrm_dataset_meta *m, const msgpack_object **ids, const msgpack_object *o,
                     const char *label) {
   static const char *const keys[] = {"vocab_size", "seq_len", "pad_id", "blank_identifier_id",
                                      "num_puzzle_identifiers", "ignore_label_id", "total_groups",
                                      "mean_puzzle_examples", "sets", "identifiers"};
   const msgpack_object *v[10];
   HRM_TRY(take_keys(v, o, keys, 10, 1, "\"meta\"", label));
   int64_t x[5];
   for (int i = 0; i < 5; i++) {
      char what[64];
      snprintf(what, sizeof what, "meta \"%s\"", keys[i]);
      HRM_TRY(get_int(&x[i], v[i], i == 2 || i == 3 ? 0 : 1, INT32_MAX, what, label));
   }
   memset(m, 0, sizeof *m);
   m->vocab_size = (int32_t)x[0];
   m->seq_len = (int32_t)x[1];
   m->pad_id = (int32_t)x[2];
   m->blank_identifier_id = (int32_t)x[3];
   m->num_puzzle_identifiers = (int32_t)x[4];
   HRM_CHECK(v[5], HRM_ERR_FORMAT, "'%s': meta \"ignore_label_id\" is missing (nil for none)",
             label);
   if (v[5]->type != MSGPACK_OBJECT_NIL) {
      int64_t ign;
      HRM_TRY(get_int(&ign, v[5], INT32_MIN, INT32_MAX, "meta \"ignore_label_id\"", label));
      m->ignore_label_id = (int32_t)ign;
      m->has_ignore_label = 1;
   }
   /* total_groups and mean_puzzle_examples are recomputed from the arrays; sets is "all" */
   if (v[6]) {
      int64_t tg;
      HRM_TRY(get_int(&tg, v[6], 0, INT64_MAX, "meta \"total_groups\"", label));
   }
   HRM_CHECK(!v[7] || v[7]->type == MSGPACK_OBJECT_FLOAT64 ||
             v[7]->type == MSGPACK_OBJECT_FLOAT32 ||
             v[7]->type == MSGPACK_OBJECT_POSITIVE_INTEGER, HRM_ERR_FORMAT,
             "'%s': meta \"mean_puzzle_examples\" is %s, expected a number", label,
             kind_name(v[7]));
   HRM_CHECK(!v[8] || v[8]->type == MSGPACK_OBJECT_ARRAY, HRM_ERR_FORMAT,
             "'%s': meta \"sets\" is %s, expected a list", label, kind_name(v[8]));
   if (v[9]) {
      HRM_CHECK(v[9]->type == MSGPACK_OBJECT_ARRAY, HRM_ERR_FORMAT,
                "'%s': meta \"identifiers\" is %s, expected a list", label, kind_name(v[9]));
      HRM_CHECK(v[9]->via.array.size <= (uint32_t)m->num_puzzle_identifiers, HRM_ERR_FORMAT,
                "'%s': meta \"identifiers\" names %u ids, num_puzzle_identifiers is %d", label,
                v[9]->via.array.size, m->num_puzzle_identifiers);
      for (uint32_t i = 0; i < v[9]->via.array.size; i++) {
         const msgpack_object *e = &v[9]->via.array.ptr[i];
         HRM_CHECK(e->type == MSGPACK_OBJECT_STR || e->type == MSGPACK_OBJECT_NIL,
                   HRM_ERR_FORMAT, "'%s': identifier %u is %s, expected a string or nil", label,
                   i, kind_name(e));
      }
   }
   *ids = v[9];
   return HRM_OK;
}

typedef struct hrmd_array {
   int32_t dtype;             /* HRM_DTYPE_U8 or HRM_DTYPE_I32 */
   int32_t ndim;
   int64_t shape[2];
   uint64_t bytes;
   const msgpack_object *data; /* a bin, or a list of bins */
   const msgpack_object *sum;  /* "xxh3" (version 2), or NULL */
} hrmd_array;

static int read_array(hrmd_array *a, const msgpack_object *o, const char *name, int32_t ndim,
                      int tokens, const char *label) {
   static const char *const keys[] = {"dtype", "shape", "data", "pad", "xxh3"};
   const msgpack_object *v[5];
   char where[64];
   snprintf(where, sizeof where, "array \"%s\"", name);
   HRM_TRY(take_keys(v, o, keys, 5, 0, where, label));
   HRM_CHECK(!v[4] || v[4]->type == MSGPACK_OBJECT_POSITIVE_INTEGER, HRM_ERR_FORMAT,
             "'%s': %s: xxh3 is %s, expected an unsigned integer", label, where, kind_name(v[4]));
   a->sum = v[4];
   HRM_CHECK(v[0] && v[0]->type == MSGPACK_OBJECT_STR, HRM_ERR_FORMAT,
             "'%s': %s: dtype is %s, expected a string", label, where, kind_name(v[0]));
   if (key_is(v[0], "u8") && tokens) a->dtype = HRM_DTYPE_U8;
   else if (key_is(v[0], "i32")) a->dtype = HRM_DTYPE_I32;
   else
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s': %s: dtype \"%.*s\" is not %s", label, where,
                      (int)(v[0]->via.str.size < 16 ? v[0]->via.str.size : 16), v[0]->via.str.ptr,
                      tokens ? "\"u8\" or \"i32\"" : "\"i32\"");
   HRM_CHECK(v[1] && v[1]->type == MSGPACK_OBJECT_ARRAY && v[1]->via.array.size == (uint32_t)ndim,
             HRM_ERR_FORMAT, "'%s': %s: shape is %s, expected a list of %d sizes", label, where,
             kind_name(v[1]), ndim);
   uint64_t numel = 1;
   for (int32_t d = 0; d < ndim; d++) {
      HRM_TRY(get_int(&a->shape[d], &v[1]->via.array.ptr[d], 0, INT32_MAX, "a size", label));
      numel *= (uint64_t)a->shape[d]; /* <= 2^62: no overflow */
   }
   a->ndim = ndim;
   a->bytes = numel * (a->dtype == HRM_DTYPE_U8 ? 1u : 4u);
   HRM_CHECK(!v[3] || v[3]->type == MSGPACK_OBJECT_BIN, HRM_ERR_FORMAT,
             "'%s': %s: pad is %s, expected a bin", label, where, kind_name(v[3]));
   const msgpack_object *d = v[2];
   uint64_t have = 0;
   if (d && d->type == MSGPACK_OBJECT_BIN) {
      have = d->via.bin.size;
   } else if (d && d->type == MSGPACK_OBJECT_ARRAY) {
      for (uint32_t i = 0; i < d->via.array.size; i++) {
         const msgpack_object *c = &d->via.array.ptr[i];
         HRM_CHECK(c->type == MSGPACK_OBJECT_BIN, HRM_ERR_FORMAT, "'%s': %s: data chunk %u is "
                   "%s, expected a bin", label, where, i, kind_name(c));
         have += c->via.bin.size;
      }
   } else {
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s': %s: data is %s, expected a bin", label, where,
                      kind_name(d));
   }
   HRM_CHECK(have == a->bytes, HRM_ERR_FORMAT, "'%s': %s: shape and dtype need %llu bytes, the "
             "data holds %llu", label, where, (unsigned long long)a->bytes,
             (unsigned long long)have);
   a->data = d;
   return HRM_OK;
}

/* The array's bytes in dtype `to`: in place when possible, else a new block *owned. */
static int array_bytes(const void **ptr, void **owned, const hrmd_array *a, int32_t to,
                       const char *name, const char *label) {
   *owned = NULL;
   const msgpack_object *d = a->data;
   if (d->type == MSGPACK_OBJECT_BIN && a->dtype == to &&
       (to == HRM_DTYPE_U8 || ((uintptr_t)d->via.bin.ptr & 3) == 0)) {
      *ptr = d->via.bin.ptr;
      return HRM_OK;
   }
   uint8_t *raw = malloc(a->bytes ? (size_t)a->bytes : 1);
   HRM_CHECK(raw, HRM_ERR_MEMORY, "'%s': cannot allocate %llu bytes for %s", label,
             (unsigned long long)a->bytes, name);
   if (d->type == MSGPACK_OBJECT_BIN) {
      if (a->bytes) memcpy(raw, d->via.bin.ptr, (size_t)a->bytes);
   } else {
      size_t at = 0;
      for (uint32_t i = 0; i < d->via.array.size; i++) {
         memcpy(raw + at, d->via.array.ptr[i].via.bin.ptr, d->via.array.ptr[i].via.bin.size);
         at += d->via.array.ptr[i].via.bin.size;
      }
   }
   if (a->dtype == to) {
      *ptr = *owned = raw;
      return HRM_OK;
   }
   uint64_t n = a->dtype == HRM_DTYPE_U8 ? a->bytes : a->bytes / 4;
   void *conv = malloc(n ? (size_t)n * hrm_dtype_size(to) : 1);
   if (!conv) {
      free(raw);
      return HRM_FAIL(HRM_ERR_MEMORY, "'%s': cannot allocate %s", label, name);
   }
   for (uint64_t i = 0; i < n; i++) {
      if (to == HRM_DTYPE_I32) {
         ((int32_t *)conv)[i] = raw[i];
      } else {
         int32_t v;
         memcpy(&v, raw + 4 * i, 4);
         if (v < 0 || v > 255) {
            free(raw);
            free(conv);
            return HRM_FAIL(HRM_ERR_RANGE, "'%s': %s element %llu = %d does not fit the u8 "
                            "token storage", label, name, (unsigned long long)i, v);
         }
         ((uint8_t *)conv)[i] = (uint8_t)v;
      }
   }
   free(raw);
   *ptr = *owned = conv;
   return HRM_OK;
}

/* ---- checksums ------------------------------------------------------------------------------ */

/* The payload bins of array a (1 or a list), appended to spans. */
static size_t payload_spans(hrm_mp_span *spans, size_t k, const hrmd_array *a) {
   const msgpack_object *d = a->data;
   if (d->type == MSGPACK_OBJECT_BIN) {
      spans[k++] = (hrm_mp_span){(const uint8_t *)d->via.bin.ptr, d->via.bin.size};
   } else {
      for (uint32_t i = 0; i < d->via.array.size; i++)
         spans[k++] = (hrm_mp_span){(const uint8_t *)d->via.array.ptr[i].via.bin.ptr,
                                  d->via.array.ptr[i].via.bin.size};
   }
   return k;
}

/* Version 2: the header (every byte before the last 9, less the payloads) and each payload
 * whose bit is set in `now` match their checksums, the header first; the payload's name is in
 * the error. */
static int verify_hrmd(const hrm_file_data *file, const hrmd_array arr[5], uint64_t header_sum,
                       int now, const char *label) {
   size_t total = 0;
   for (int k = 0; k < 5; k++)
      total += arr[k].data->type == MSGPACK_OBJECT_BIN ? 1 : arr[k].data->via.array.size;
   hrm_mp_span *spans = malloc((total ? total : 1) * sizeof *spans);
   HRM_CHECK(spans, HRM_ERR_MEMORY, "'%s': out of memory verifying checksums", label);
   size_t n = 0;
   for (int k = 0; k < 5; k++) n = payload_spans(spans, n, &arr[k]);
   int rc = hrm_mp_check_header(spans, n, file->data, file->data + file->size - 9, header_sum,
                                label, "the header (format, version, meta, array dtypes and "
                                "shapes)", "rebuild it");
   for (int k = 0; k < 5 && rc == HRM_OK; k++) {
      if (!(now & (1 << k))) continue;
      char what[64];
      snprintf(what, sizeof what, "the data of array \"%s\"", names[k]);
      rc = hrm_mp_check_sum(spans, payload_spans(spans, 0, &arr[k]), arr[k].sum->via.u64,
                            0, label, what, "rebuild it");
   }
   free(spans);
   return rc;
}

/* Parse a whole .hrmd image held by file (taken over, whatever happens). */
static int parse_hrmd(hrm_dataset **out, hrm_file_data *file, const char *label) {
   *out = NULL;
   int rc;
   msgpack_unpacked res;
   msgpack_unpacked_init(&res);
   void *owned[5] = {NULL, NULL, NULL, NULL, NULL};
   const msgpack_object *top[5], *arrays[5], *ids = NULL;
   hrmd_array arr[5];
   hrm_dataset_meta meta;
   if ((rc = hrm_mp_scan(file->data, file->size, HRMD_MAX_DEPTH, label))) goto fail;
   size_t off = 0;
   if (msgpack_unpack_next(&res, (const char *)file->data, file->size, &off) !=
          MSGPACK_UNPACK_SUCCESS || off != file->size) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': msgpack decoding failed", label);
      goto fail;
   }
   static const char *const top_keys[] = {"format", "version", "meta", "arrays", "header_xxh3"};
   if ((rc = take_keys(top, &res.data, top_keys, 5, 0, "the file", label))) {
      if (res.data.type != MSGPACK_OBJECT_MAP)
         rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s' is not an .hrmd file (not a msgpack map)", label);
      goto fail;
   }
   if (!top[0] || !key_is(top[0], "hrmd")) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s' is not an .hrmd file (\"format\" is %s)", label,
                    top[0] ? kind_name(top[0]) : "missing");
      goto fail;
   }
   int64_t version;
   if ((rc = get_int(&version, top[1], 1, INT64_MAX, "\"version\"", label))) goto fail;
   if (version != HRMD_VERSION && version != HRMD_VERSION_UNCHECKED) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': .hrmd version %lld is not supported (this reader "
                    "reads versions %d and %d)", label, (long long)version,
                    HRMD_VERSION_UNCHECKED, HRMD_VERSION);
      goto fail;
   }
   /* version 2: "header_xxh3" is the last key, a uint 64 in the file's last 9 bytes */
   const msgpack_object *last = &res.data.via.map.ptr[res.data.via.map.size - 1].key;
   if (version == HRMD_VERSION &&
       (!top[4] || top[4]->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !key_is(last, "header_xxh3") ||
        file->size < 9 || file->data[file->size - 9] != 0xcf)) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': a version %d .hrmd without a well-placed "
                    "\"header_xxh3\"\n---> HINT: the header is damaged", label, HRMD_VERSION);
      goto fail;
   }
   if (version == HRMD_VERSION_UNCHECKED && top[4]) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s' says .hrmd version %d (no checksums) but carries "
                    "checksums\n---> HINT: its version is damaged", label, HRMD_VERSION_UNCHECKED);
      goto fail;
   }
   if (!top[2] || !top[3]) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': \"%s\" is missing", label, top[2] ? "arrays" : "meta");
      goto fail;
   }
   if ((rc = read_meta(&meta, &ids, top[2], label))) goto fail;
   if ((rc = take_keys(arrays, top[3], names, 5, 0, "\"arrays\"", label))) goto fail;
   for (int k = 0; k < 5; k++) {
      if (!arrays[k]) {
         rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': array \"%s\" is missing", label, names[k]);
         goto fail;
      }
      if ((rc = read_array(&arr[k], arrays[k], names[k], k < 2 ? 2 : 1, k < 2, label))) goto fail;
      if ((version == HRMD_VERSION) != (arr[k].sum != NULL)) {
         rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': array \"%s\" %s a checksum in a version %lld "
                       ".hrmd\n---> HINT: the header is damaged", label, names[k],
                       arr[k].sum ? "has" : "lacks", (long long)version);
         goto fail;
      }
   }
   /* token payloads used in place are verified when first touched; the rest now */
   int32_t token = meta.vocab_size <= 256 ? HRM_DTYPE_U8 : HRM_DTYPE_I32;
   int deferred[2] = {0, 0}, now = 0x1f;
   uint64_t sums[2] = {0, 0};
   for (int k = 0; k < 2 && version == HRMD_VERSION; k++) {
      const msgpack_object *d = arr[k].data;
      deferred[k] = d->type == MSGPACK_OBJECT_BIN && arr[k].dtype == token &&
                    (token == HRM_DTYPE_U8 || ((uintptr_t)d->via.bin.ptr & 3) == 0);
      if (deferred[k]) {
         now &= ~(1 << k);
         sums[k] = arr[k].sum->via.u64;
      }
   }
   if (version == HRMD_VERSION && (rc = verify_hrmd(file, arr, top[4]->via.u64, now, label)))
      goto fail;
   if (arr[0].shape[1] != meta.seq_len || arr[1].shape[0] != arr[0].shape[0] ||
       arr[1].shape[1] != arr[0].shape[1] || arr[1].dtype != arr[0].dtype) {
      rc = HRM_FAIL(HRM_ERR_SHAPE, "'%s': inputs (%lld, %lld) and labels (%lld, %lld) must agree "
                    "with each other, in dtype, and with seq_len %d", label,
                    (long long)arr[0].shape[0], (long long)arr[0].shape[1],
                    (long long)arr[1].shape[0], (long long)arr[1].shape[1], meta.seq_len);
      goto fail;
   }
   if (arr[3].shape[0] != arr[2].shape[0] + 1 || arr[4].shape[0] < 1) {
      rc = HRM_FAIL(HRM_ERR_SHAPE, "'%s': puzzle_indices has %lld entries for %lld puzzles and "
                    "group_indices %lld (each needs one more than its count)", label,
                    (long long)arr[3].shape[0], (long long)arr[2].shape[0],
                    (long long)arr[4].shape[0]);
      goto fail;
   }
   const void *ptr[5];
   for (int k = 0; k < 5; k++)
      if ((rc = array_bytes(&ptr[k], &owned[k], &arr[k], k < 2 ? token : HRM_DTYPE_I32,
                            names[k], label)))
         goto fail;
   hrm_dataset_arrays a = {
      .inputs = ptr[0], .labels = ptr[1], .puzzle_identifiers = ptr[2], .puzzle_indices = ptr[3],
      .group_indices = ptr[4], .n = arr[0].shape[0], .n_puzzles = arr[2].shape[0],
      .n_groups = arr[4].shape[0] - 1, .token_dtype = token};
   /* The object tree points into the mapping: keep it alive until the identifiers are copied. */
   hrm_file_data keep = *file;
   memset(file, 0, sizeof *file);
   rc = hrm_dataset_wrap_deferred(out, &meta, &a, owned, &keep, 1, label, deferred, sums);
   if (rc == HRM_OK) hrm_dataset_set_file_version(*out, (int32_t)version);
   if (rc == HRM_OK && ids) {
      for (uint32_t i = 0; i < ids->via.array.size && rc == HRM_OK; i++) {
         const msgpack_object *e = &ids->via.array.ptr[i];
         if (e->type != MSGPACK_OBJECT_STR) continue;
         char *s = malloc(e->via.str.size + 1);
         if (!s) {
            rc = HRM_FAIL(HRM_ERR_MEMORY, "'%s': out of memory for identifiers", label);
            break;
         }
         memcpy(s, e->via.str.ptr, e->via.str.size);
         s[e->via.str.size] = '\0';
         rc = hrm_dataset_set_identifier(*out, (int32_t)i, s);
         free(s);
      }
      if (rc != HRM_OK) {
         hrm_dataset_free(*out);
         *out = NULL;
      }
   }
   msgpack_unpacked_destroy(&res);
   return rc;
fail:
   for (int k = 0; k < 5; k++) free(owned[k]);
   msgpack_unpacked_destroy(&res);
   hrm_file_release(file);
   return rc;
}

/* Internal (dataset.c): read an .hrmd file, memory-mapped. */
int hrm_dataset_read_hrmd(hrm_dataset **out, const char *path) {
   *out = NULL;
   hrm_file_data f;
   HRM_TRY(hrm_image_load(&f, "hrmd", path, NULL, 0));
   return parse_hrmd(out, &f, path);
}

/* Internal (tests, fuzzing): parse an .hrmd image held in memory (copied). */
int hrm_dataset_open_hrmd_memory(hrm_dataset **out, const void *data, size_t size,
                                 const char *label) {
   HRM_CHECK(out, HRM_ERR_ARG, "hrmd: out is NULL");
   *out = NULL;
   hrm_file_data f;
   HRM_TRY(hrm_image_load(&f, "hrmd", NULL, data, size));
   return parse_hrmd(out, &f, label ? label : "memory");
}
