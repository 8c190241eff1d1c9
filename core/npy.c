/* npy.c — the .npy array reader and the reference's numpy dataset folders (HRM_SPEC §5.1).
 *
 * .npy: format versions 1.0, 2.0 and 3.0; dtypes |u1 |i1 and <|> i2 u2 i4 u4 i8 u8 f4 f8; C
 * order only. The header dict is parsed strictly (exactly the keys descr, fortran_order, shape)
 * and the data must fill the file exactly. A dataset folder is dataset.json plus
 * <set>__{inputs,labels,puzzle_identifiers,puzzle_indices,group_indices}.npy (one set) and an
 * optional identifiers.json at the dataset root. Arrays already in the storage dtype and byte
 * order are used in place inside a read-only mapping; the rest are converted, range-checked.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "fileio.h"

/* defined in core/dataset.c */
int hrm_dataset_wrap(hrm_dataset **out, const hrm_dataset_meta *meta, const hrm_dataset_arrays *a,
                     void *owned[5], hrm_file_data *files, int32_t nfiles, const char *label);

#define NPY_MAX_DIMS 4
#define JSON_MAX_BYTES ((size_t)64 << 20)

typedef struct npy_array {
   const uint8_t *data;      /* the first element, inside the file */
   int32_t ndim;             /* 0..4 */
   int64_t shape[NPY_MAX_DIMS];
   int64_t numel;
   char kind;                /* 'u', 'i' or 'f' */
   int32_t itemsize;         /* 1, 2, 4 or 8 */
   int32_t swap;             /* 1 when stored in the other byte order than this machine's */
   char descr[32];           /* as written, for messages */
} npy_array;

/* ---- the header ----------------------------------------------------------------------------- */

typedef struct cursor {
   const char *p, *begin, *end;
} cursor;

static void skip_space(cursor *c) {
   while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
      c->p++;
}

static int eat(cursor *c, char ch) {
   skip_space(c);
   if (c->p < c->end && *c->p == ch) {
      c->p++;
      return 1;
   }
   return 0;
}

/* A Python string literal without escapes: '...' or "...". */
static int read_string(cursor *c, char *out, size_t cap) {
   skip_space(c);
   if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
   char quote = *c->p++;
   size_t n = 0;
   while (c->p < c->end && *c->p != quote) {
      unsigned char ch = (unsigned char)*c->p;
      if (ch == '\\' || ch < 0x20 || ch >= 0x7f || n + 1 >= cap) return 0;
      out[n++] = *c->p++;
   }
   if (c->p >= c->end) return 0;
   c->p++;
   out[n] = '\0';
   return 1;
}

static int read_word(cursor *c, const char *word) {
   skip_space(c);
   size_t n = strlen(word);
   if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
   c->p += n;
   return 1;
}

/* A non-negative decimal integer (no sign, no leading zeros; Python 2's "L" suffix allowed). */
static int read_size(cursor *c, int64_t *v) {
   skip_space(c);
   if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
   if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9') return 0;
   int64_t x = 0;
   while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      int d = *c->p++ - '0';
      if (x > (INT64_MAX - d) / 10) return 0;
      x = x * 10 + d;
   }
   if (c->p < c->end && *c->p == 'L') c->p++;
   *v = x;
   return 1;
}

#define HEADER_FAIL(what) \
   HRM_FAIL(HRM_ERR_FORMAT, "'%s': malformed .npy header at byte %d of it: %s", label, \
            (int)(c.p - c.begin), what)

static int parse_descr(npy_array *a, const char *d, const char *label) {
   snprintf(a->descr, sizeof a->descr, "%s", d);
   size_t n = strlen(d);
   int ok = n == 3 && (d[0] == '|' || d[0] == '<' || d[0] == '>') &&
            (d[1] == 'u' || d[1] == 'i' || d[1] == 'f') &&
            (d[2] == '1' || d[2] == '2' || d[2] == '4' || d[2] == '8');
   if (ok) {
      a->kind = d[1];
      a->itemsize = d[2] - '0';
      ok = (a->itemsize == 1) == (d[0] == '|') && !(a->kind == 'f' && a->itemsize < 4);
   }
   HRM_CHECK(ok, HRM_ERR_FORMAT, "'%s': unsupported .npy dtype '%.20s'\n---> HINT: supported "
             "are |u1 |i1 and <i2 <u2 <i4 <u4 <i8 <u8 <f4 <f8 (or '>' big-endian)", label, d);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
   a->swap = d[0] == '<';
#else
   a->swap = d[0] == '>';
#endif
   return HRM_OK;
}

/* The dict {'descr': ..., 'fortran_order': False, 'shape': (...), } and its padding. */
static int parse_dict(npy_array *a, const char *text, size_t len, const char *label) {
   cursor c = {text, text, text + len};
   int seen_descr = 0, seen_order = 0, seen_shape = 0;
   char descr[32];
   if (!eat(&c, '{')) return HEADER_FAIL("expected '{'");
   while (!eat(&c, '}')) {
      char key[32];
      if (!read_string(&c, key, sizeof key)) return HEADER_FAIL("expected a quoted key");
      if (!eat(&c, ':')) return HEADER_FAIL("expected ':' after a key");
      if (strcmp(key, "descr") == 0) {
         if (seen_descr++) return HEADER_FAIL("'descr' given twice");
         if (!read_string(&c, descr, sizeof descr))
            return HEADER_FAIL("'descr' must be a simple dtype string such as '<i4' (structured "
                               "dtypes are not supported)");
      } else if (strcmp(key, "fortran_order") == 0) {
         if (seen_order++) return HEADER_FAIL("'fortran_order' given twice");
         if (read_word(&c, "True"))
            return HRM_FAIL(HRM_ERR_FORMAT, "'%s': the array is stored in Fortran order; only C "
                            "order is supported\n---> HINT: save it with "
                            "np.save(path, np.ascontiguousarray(a))", label);
         if (!read_word(&c, "False")) return HEADER_FAIL("'fortran_order' must be True or False");
      } else if (strcmp(key, "shape") == 0) {
         if (seen_shape++) return HEADER_FAIL("'shape' given twice");
         if (!eat(&c, '(')) return HEADER_FAIL("'shape' must be a tuple");
         a->ndim = 0;
         if (!eat(&c, ')')) {
            for (;;) {
               int64_t v;
               if (a->ndim == NPY_MAX_DIMS)
                  return HRM_FAIL(HRM_ERR_FORMAT, "'%s': more than %d dimensions are not "
                                  "supported", label, NPY_MAX_DIMS);
               if (!read_size(&c, &v)) return HEADER_FAIL("expected a size in 'shape'");
               a->shape[a->ndim++] = v;
               if (eat(&c, ',')) {
                  if (eat(&c, ')')) break;
               } else if (eat(&c, ')')) {
                  if (a->ndim == 1) return HEADER_FAIL("a 1-tuple needs a trailing comma: (n,)");
                  break;
               } else {
                  return HEADER_FAIL("expected ',' or ')' in 'shape'");
               }
            }
         }
      } else {
         return HRM_FAIL(HRM_ERR_FORMAT, "'%s': unexpected key '%s' in the .npy header", label,
                         key);
      }
      if (eat(&c, ',')) continue;
      if (!eat(&c, '}')) return HEADER_FAIL("expected ',' or '}'");
      break;
   }
   skip_space(&c);
   if (c.p != c.end) return HEADER_FAIL("unexpected text after the dict");
   if (!seen_descr || !seen_order || !seen_shape)
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s': the .npy header lacks '%s'", label,
                      !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
   return parse_descr(a, descr, label);
}

/* Parse a whole .npy image; out->data points into buf. */
static int npy_parse(npy_array *out, const uint8_t *buf, size_t size, const char *label) {
   memset(out, 0, sizeof *out);
   HRM_CHECK(size >= 10 && memcmp(buf, "\x93NUMPY", 6) == 0, HRM_ERR_FORMAT,
             "'%s' is not a .npy file (no \\x93NUMPY magic)", label);
   int major = buf[6], minor = buf[7];
   HRM_CHECK((major == 1 || major == 2 || major == 3) && minor == 0, HRM_ERR_FORMAT,
             "'%s': .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)", label, major,
             minor);
   size_t start = major == 1 ? 10 : 12;
   HRM_CHECK(size >= start, HRM_ERR_FORMAT, "'%s': truncated .npy header", label);
   uint64_t hlen = major == 1 ? (uint64_t)buf[8] | (uint64_t)buf[9] << 8
                              : (uint64_t)buf[8] | (uint64_t)buf[9] << 8 |
                                   (uint64_t)buf[10] << 16 | (uint64_t)buf[11] << 24;
   HRM_CHECK(hlen <= size - start, HRM_ERR_FORMAT, "'%s': the .npy header claims %llu bytes, "
             "the file has %zu after the preamble", label, (unsigned long long)hlen, size - start);
   HRM_TRY(parse_dict(out, (const char *)buf + start, (size_t)hlen, label));
   int64_t numel = 1;
   for (int32_t d = 0; d < out->ndim; d++) {
      HRM_CHECK(out->shape[d] == 0 || numel <= INT64_MAX / 8 / out->shape[d], HRM_ERR_FORMAT,
                "'%s': the shape's sizes overflow", label);
      numel *= out->shape[d];
   }
   out->numel = numel;
   size_t data_at = start + (size_t)hlen;
   uint64_t bytes = (uint64_t)numel * (uint64_t)out->itemsize;
   HRM_CHECK(bytes == (uint64_t)(size - data_at), HRM_ERR_FORMAT,
             "'%s': shape and dtype %s need %llu data bytes, the file holds %zu", label,
             out->descr, (unsigned long long)bytes, size - data_at);
   out->data = buf + data_at;
   for (int32_t d = out->ndim; d < NPY_MAX_DIMS; d++) out->shape[d] = 1;
   return HRM_OK;
}

/* ---- element access ------------------------------------------------------------------------- */

static inline uint64_t raw_bits(const uint8_t *p, int32_t size, int32_t swap) {
   switch (size) {
   case 1: return p[0];
   case 2: {
      uint16_t x;
      memcpy(&x, p, 2);
      return swap ? __builtin_bswap16(x) : x;
   }
   case 4: {
      uint32_t x;
      memcpy(&x, p, 4);
      return swap ? __builtin_bswap32(x) : x;
   }
   default: {
      uint64_t x;
      memcpy(&x, p, 8);
      return swap ? __builtin_bswap64(x) : x;
   }
   }
}

/* Integer element i; *big is set when a u8 value exceeds INT64_MAX. */
static inline int64_t int_at(const npy_array *a, int64_t i, int *big) {
   uint64_t b = raw_bits(a->data + i * a->itemsize, a->itemsize, a->swap);
   if (a->kind == 'u') {
      if (b > (uint64_t)INT64_MAX) *big = 1;
      return (int64_t)b;
   }
   switch (a->itemsize) {
   case 1: return (int8_t)b;
   case 2: return (int16_t)b;
   case 4: return (int32_t)b;
   default: return (int64_t)b;
   }
}

static inline double float_at(const npy_array *a, int64_t i) {
   uint64_t b = raw_bits(a->data + i * a->itemsize, a->itemsize, a->swap);
   if (a->itemsize == 4) {
      uint32_t u = (uint32_t)b;
      float f;
      memcpy(&f, &u, 4);
      return f;
   }
   double d;
   memcpy(&d, &b, 8);
   return d;
}

/* ---- .npy -> tensor ------------------------------------------------------------------------- */

static int32_t tensor_dtype_for(const npy_array *a) {
   if (a->kind == 'f') return a->itemsize == 4 ? HRM_DTYPE_F32 : HRM_DTYPE_F64;
   if (a->kind == 'u' && a->itemsize == 1) return HRM_DTYPE_U8;
   if (a->itemsize <= 2 || (a->kind == 'i' && a->itemsize == 4)) return HRM_DTYPE_I32;
   return HRM_DTYPE_I64;
}

static int npy_to_tensor(hrm_tensor **out, const npy_array *a, const char *label) {
   int32_t dtype = tensor_dtype_for(a);
   HRM_TRY(hrm_tensor_new(out, dtype, a->ndim, a->shape));
   hrm_tensor *t = *out;
   int big = 0;
   for (int64_t i = 0; i < a->numel; i++) {
      switch (dtype) {
      case HRM_DTYPE_F32: ((float *)t->data)[i] = (float)float_at(a, i); break;
      case HRM_DTYPE_F64: ((double *)t->data)[i] = float_at(a, i); break;
      case HRM_DTYPE_U8: ((uint8_t *)t->data)[i] = a->data[i]; break;
      case HRM_DTYPE_I32: ((int32_t *)t->data)[i] = (int32_t)int_at(a, i, &big); break;
      default: ((int64_t *)t->data)[i] = int_at(a, i, &big); break;
      }
      if (big) {
         hrm_tensor_free(t);
         *out = NULL;
         return HRM_FAIL(HRM_ERR_RANGE, "'%s': element %lld of the u8 array exceeds the i64 "
                         "range", label, (long long)i);
      }
   }
   return HRM_OK;
}

/* Internal (tests, fuzzing): parse a .npy image held in memory. */
int hrm_npy_load_memory(hrm_tensor **out, const void *data, size_t size, const char *label) {
   HRM_CHECK(out, HRM_ERR_ARG, "npy_load: out is NULL");
   *out = NULL;
   HRM_CHECK(data || size == 0, HRM_ERR_ARG, "npy_load: data is NULL");
   if (!label) label = "memory";
   npy_array a;
   HRM_TRY(npy_parse(&a, data, size, label));
   return npy_to_tensor(out, &a, label);
}

int hrm_npy_load(hrm_tensor **out, const char *path) {
   HRM_CHECK(out, HRM_ERR_ARG, "npy_load: out is NULL");
   *out = NULL;
   hrm_file_data f;
   HRM_TRY(hrm_file_load(&f, path, 0, HRM_FILE_MMAP));
   npy_array a;
   int rc = npy_parse(&a, f.data, f.size, path);
   if (rc == HRM_OK) rc = npy_to_tensor(out, &a, path);
   hrm_file_release(&f);
   return rc;
}

/* ---- dataset.json and identifiers.json ------------------------------------------------------ */

static const char *json_kind(const cJSON *v) {
   if (!v) return "missing";
   if (cJSON_IsObject(v)) return "an object";
   if (cJSON_IsArray(v)) return "a list";
   if (cJSON_IsString(v)) return "a string";
   if (cJSON_IsNumber(v)) return "a number";
   if (cJSON_IsBool(v)) return "a boolean";
   if (cJSON_IsNull(v)) return "null";
   return "invalid";
}

/* Integer field `key` of obj in [lo, hi]. */
static int json_int(int64_t *out, const cJSON *obj, const char *key, double lo, double hi,
                    const char *label) {
   const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
   HRM_CHECK(cJSON_IsNumber(v), HRM_ERR_FORMAT, "'%s': \"%s\" is %s, expected an integer", label,
             key, json_kind(v));
   double d = v->valuedouble;
   HRM_CHECK(isfinite(d) && d == floor(d) && d >= lo && d <= hi, HRM_ERR_FORMAT,
             "'%s': \"%s\" = %.17g is not an integer in [%.0f, %.0f]", label, key, d, lo, hi);
   *out = (int64_t)d;
   return HRM_OK;
}

static int parse_json_text(cJSON **out, const void *data, size_t size, const char *label) {
   *out = NULL;
   HRM_CHECK(size <= JSON_MAX_BYTES, HRM_ERR_FORMAT, "'%s': %zu bytes is too large for a JSON "
             "file here (at most %zu)", label, size, JSON_MAX_BYTES);
   const char *end = NULL;
   cJSON *root = cJSON_ParseWithLengthOpts(data, size, &end, 0);
   if (!root) {
      size_t at = end && end >= (const char *)data && end <= (const char *)data + size
                     ? (size_t)(end - (const char *)data) : 0;
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s': invalid JSON near byte %zu", label, at);
   }
   /* only white space may follow the value */
   const char *p = end ? end : (const char *)data + size;
   for (; p < (const char *)data + size; p++) {
      if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
         cJSON_Delete(root);
         return HRM_FAIL(HRM_ERR_FORMAT, "'%s': unexpected bytes after the JSON value at byte "
                         "%zu", label, (size_t)(p - (const char *)data));
      }
   }
   *out = root;
   return HRM_OK;
}

/* Internal (npy.c, tests, fuzzing): dataset.json's fields into meta; set: its one set name. */
int hrm_dataset_parse_json(hrm_dataset_meta *meta, char set[64], const void *data, size_t size,
                           const char *label) {
   memset(meta, 0, sizeof *meta);
   set[0] = '\0';
   cJSON *root;
   HRM_TRY(parse_json_text(&root, data, size, label));
   int rc = HRM_OK;
   int64_t v[6];
   static const char *const keys[6] = {"vocab_size", "seq_len", "pad_id", "blank_identifier_id",
                                       "num_puzzle_identifiers", "total_groups"};
   if (!cJSON_IsObject(root)) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s' is %s, expected an object", label, json_kind(root));
      goto done;
   }
   for (int i = 0; i < 6; i++) {
      double hi = i == 5 ? 9007199254740992.0 : (double)INT32_MAX;
      if ((rc = json_int(&v[i], root, keys[i], i == 2 || i == 3 || i == 5 ? 0 : 1, hi, label)))
         goto done;
   }
   meta->vocab_size = (int32_t)v[0];
   meta->seq_len = (int32_t)v[1];
   meta->pad_id = (int32_t)v[2];
   meta->blank_identifier_id = (int32_t)v[3];
   meta->num_puzzle_identifiers = (int32_t)v[4];
   meta->total_groups = v[5];
   const cJSON *ign = cJSON_GetObjectItemCaseSensitive(root, "ignore_label_id");
   if (cJSON_IsNull(ign)) {
      meta->has_ignore_label = 0;
   } else {
      int64_t x;
      if ((rc = json_int(&x, root, "ignore_label_id", INT32_MIN, INT32_MAX, label))) goto done;
      meta->ignore_label_id = (int32_t)x;
      meta->has_ignore_label = 1;
   }
   const cJSON *mean = cJSON_GetObjectItemCaseSensitive(root, "mean_puzzle_examples");
   if (!cJSON_IsNumber(mean) || !isfinite(mean->valuedouble) || mean->valuedouble < 0) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': \"mean_puzzle_examples\" is %s, expected a number "
                    ">= 0", label, json_kind(mean));
      goto done;
   }
   meta->mean_puzzle_examples = mean->valuedouble;
   const cJSON *sets = cJSON_GetObjectItemCaseSensitive(root, "sets");
   if (!cJSON_IsArray(sets) || cJSON_GetArraySize(sets) != 1 || !cJSON_IsString(sets->child)) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': \"sets\" is %s%s, expected a list of one set name "
                    "(usually [\"all\"])", label, json_kind(sets),
                    cJSON_IsArray(sets) ? " of another length or kind" : "");
      goto done;
   }
   const char *name = sets->child->valuestring;
   size_t n = strlen(name);
   if (n == 0 || n > 63 || strchr(name, '/') || strcmp(name, ".") == 0 ||
       strcmp(name, "..") == 0) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': set name \"%.64s\" is not a plain file-name part",
                    label, name);
      goto done;
   }
   memcpy(set, name, n + 1);
done:
   cJSON_Delete(root);
   return rc;
}

/* Internal (npy.c, tests, fuzzing): identifiers.json, a list of names by puzzle id. */
int hrm_dataset_parse_identifiers(hrm_dataset *ds, const void *data, size_t size,
                                  const char *label) {
   cJSON *root;
   HRM_TRY(parse_json_text(&root, data, size, label));
   int rc = HRM_OK;
   hrm_dataset_meta meta;
   hrm_dataset_get_meta(&meta, ds);
   if (!cJSON_IsArray(root)) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s' is %s, expected a list of names", label,
                    json_kind(root));
   } else if (cJSON_GetArraySize(root) > meta.num_puzzle_identifiers) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s' names %d identifiers, the dataset has %d", label,
                    cJSON_GetArraySize(root), meta.num_puzzle_identifiers);
   } else {
      int32_t id = 0;
      for (const cJSON *e = root->child; e && rc == HRM_OK; e = e->next, id++) {
         if (cJSON_IsString(e)) rc = hrm_dataset_set_identifier(ds, id, e->valuestring);
         else if (!cJSON_IsNull(e))
            rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': entry %d is %s, expected a string", label, id,
                          json_kind(e));
      }
   }
   cJSON_Delete(root);
   return rc;
}

/* ---- the dataset folder --------------------------------------------------------------------- */

static char *join(const char *a, const char *b) {
   size_t na = strlen(a), nb = strlen(b);
   char *s = malloc(na + nb + 2);
   if (!s) return NULL;
   memcpy(s, a, na);
   size_t k = na;
   if (na > 0 && a[na - 1] != '/') s[k++] = '/';
   memcpy(s + k, b, nb + 1);
   return s;
}

static int is_file(const char *path) {
   struct stat st;
   return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Array `a` in the target dtype (u8 or i32): in place when it already is, else a new block
 * *owned with every value range-checked. */
static int npy_as(const void **ptr, void **owned, const npy_array *a, int32_t target,
                  const char *label) {
   *owned = NULL;
   int native_u8 = a->kind == 'u' && a->itemsize == 1;
   int native_i32 = a->kind == 'i' && a->itemsize == 4 && !a->swap && ((uintptr_t)a->data & 3) == 0;
   if ((target == HRM_DTYPE_U8 && native_u8) || (target == HRM_DTYPE_I32 && native_i32)) {
      *ptr = a->data;
      return HRM_OK;
   }
   HRM_CHECK(a->kind != 'f', HRM_ERR_FORMAT, "'%s': dtype %s; dataset arrays must be integers",
             label, a->descr);
   size_t es = target == HRM_DTYPE_U8 ? 1 : 4;
   void *block = malloc(a->numel > 0 ? (size_t)a->numel * es : 1);
   HRM_CHECK(block, HRM_ERR_MEMORY, "'%s': cannot allocate %lld elements to convert %s", label,
             (long long)a->numel, a->descr);
   int64_t lo = target == HRM_DTYPE_U8 ? 0 : INT32_MIN;
   int64_t hi = target == HRM_DTYPE_U8 ? 255 : INT32_MAX;
   for (int64_t i = 0; i < a->numel; i++) {
      int big = 0;
      int64_t v = int_at(a, i, &big);
      if (big || v < lo || v > hi) {
         free(block);
         return HRM_FAIL(HRM_ERR_RANGE, "'%s': element %lld (%s%lld) does not fit the %s "
                         "storage", label, (long long)i, big ? "more than " : "",
                         big ? (long long)INT64_MAX : (long long)v,
                         target == HRM_DTYPE_U8 ? "u8 token" : "i32");
      }
      if (target == HRM_DTYPE_U8) ((uint8_t *)block)[i] = (uint8_t)v;
      else ((int32_t *)block)[i] = (int32_t)v;
   }
   *ptr = block;
   *owned = block;
   return HRM_OK;
}

static const char *const npy_names[5] = {"inputs", "labels", "puzzle_identifiers",
                                         "puzzle_indices", "group_indices"};

/* Internal (dataset.c): read a reference split folder (dir, or dir/split). */
int hrm_dataset_read_dir(hrm_dataset **out, const char *dir, const char *split) {
   *out = NULL;
   int rc = HRM_OK;
   hrm_file_data files[5], json;
   memset(files, 0, sizeof files);
   memset(&json, 0, sizeof json);
   void *owned[5] = {NULL, NULL, NULL, NULL, NULL};
   char *paths[5] = {NULL, NULL, NULL, NULL, NULL};
   char *folder = split && split[0] ? join(dir, split) : strdup(dir);
   char *json_path = folder ? join(folder, "dataset.json") : NULL;
   char *ids_path = NULL;
   hrm_dataset_meta meta;
   char set[64];
   npy_array arr[5];
   const void *ptr[5];
   if (!json_path) {
      rc = HRM_FAIL(HRM_ERR_MEMORY, "dataset_load: out of memory");
      goto done;
   }
   if (!is_file(json_path)) {
      char *train = join(dir, "train/dataset.json");
      int has_splits = (!split || !split[0]) && is_file(train);
      free(train);
      rc = HRM_FAIL(HRM_ERR_IO, "dataset_load: no dataset.json in '%s'%s", folder,
                    has_splits ? "\n---> HINT: the folder holds splits: give one, e.g. "
                                 "load(path, \"train\")" : "");
      goto done;
   }
   if ((rc = hrm_file_load(&json, json_path, JSON_MAX_BYTES, HRM_FILE_READ))) goto done;
   if ((rc = hrm_dataset_parse_json(&meta, set, json.data, json.size, json_path))) goto done;

   for (int k = 0; k < 5; k++) {
      char name[128];
      snprintf(name, sizeof name, "%s__%s.npy", set, npy_names[k]);
      if (!(paths[k] = join(folder, name))) {
         rc = HRM_FAIL(HRM_ERR_MEMORY, "dataset_load: out of memory");
         goto done;
      }
      if ((rc = hrm_file_load(&files[k], paths[k], 0, HRM_FILE_MMAP))) goto done;
      if ((rc = npy_parse(&arr[k], files[k].data, files[k].size, paths[k]))) goto done;
      int32_t want = k < 2 ? 2 : 1;
      if (arr[k].ndim != want) {
         rc = HRM_FAIL(HRM_ERR_SHAPE, "'%s': %d dimensions, expected %d", paths[k], arr[k].ndim,
                       want);
         goto done;
      }
   }
   if (arr[0].shape[1] != meta.seq_len) {
      rc = HRM_FAIL(HRM_ERR_SHAPE, "'%s': rows of %lld tokens, dataset.json says seq_len %d",
                    paths[0], (long long)arr[0].shape[1], meta.seq_len);
      goto done;
   }
   if (arr[1].shape[0] != arr[0].shape[0] || arr[1].shape[1] != arr[0].shape[1]) {
      rc = HRM_FAIL(HRM_ERR_SHAPE, "'%s': shape (%lld, %lld) differs from the inputs' (%lld, "
                    "%lld)", paths[1], (long long)arr[1].shape[0], (long long)arr[1].shape[1],
                    (long long)arr[0].shape[0], (long long)arr[0].shape[1]);
      goto done;
   }
   if (arr[3].shape[0] != arr[2].shape[0] + 1 || arr[4].shape[0] < 1) {
      rc = HRM_FAIL(HRM_ERR_SHAPE, "'%s': %lld entries, expected %lld (one per puzzle, plus one)",
                    arr[4].shape[0] < 1 ? paths[4] : paths[3],
                    (long long)(arr[4].shape[0] < 1 ? arr[4].shape[0] : arr[3].shape[0]),
                    (long long)(arr[4].shape[0] < 1 ? 1 : arr[2].shape[0] + 1));
      goto done;
   }
   int32_t token = meta.vocab_size <= 256 ? HRM_DTYPE_U8 : HRM_DTYPE_I32;
   for (int k = 0; k < 5; k++)
      if ((rc = npy_as(&ptr[k], &owned[k], &arr[k], k < 2 ? token : HRM_DTYPE_I32, paths[k])))
         goto done;
   hrm_dataset_arrays a = {
      .inputs = ptr[0], .labels = ptr[1], .puzzle_identifiers = ptr[2], .puzzle_indices = ptr[3],
      .group_indices = ptr[4], .n = arr[0].shape[0], .n_puzzles = arr[2].shape[0],
      .n_groups = arr[4].shape[0] - 1, .token_dtype = token};
   rc = hrm_dataset_wrap(out, &meta, &a, owned, files, 5, folder);
   if (rc) goto done;

   /* identifiers.json: at the dataset root (the split folder's parent), else beside the data */
   ids_path = join(folder, "../identifiers.json");
   if (ids_path && !is_file(ids_path)) {
      free(ids_path);
      ids_path = join(folder, "identifiers.json");
   }
   if (ids_path && is_file(ids_path)) {
      hrm_file_data ids;
      rc = hrm_file_load(&ids, ids_path, JSON_MAX_BYTES, HRM_FILE_READ);
      if (rc == HRM_OK) {
         rc = hrm_dataset_parse_identifiers(*out, ids.data, ids.size, ids_path);
         hrm_file_release(&ids);
      }
      if (rc) {
         hrm_dataset_free(*out);
         *out = NULL;
      }
   }
done:
   for (int k = 0; k < 5; k++) {
      free(owned[k]);
      hrm_file_release(&files[k]);
      free(paths[k]);
   }
   hrm_file_release(&json);
   free(folder);
   free(json_path);
   free(ids_path);
   return rc;
}
