/* safetensors.c — the safetensors format: a validating reader, an atomic writer, and model
 * import/export under the reference's tensor names.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
 * data_offsets}, "__metadata__": {str: str}}, then the data area. Every header field is checked
 * against the file before any data byte is touched: offsets inside the data area, byte counts
 * equal to dtype size x numel without overflow, no two tensors overlapping. Data is copied as
 * little-endian bytes (no byte swapping), so a big-endian host is refused. Model loads validate
 * the whole file against the model before writing a single element (all or nothing).
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileio.h"
#include "safetensors.h"
#include "tensor_file.h"

#define ST_MAX_HEADER 100000000ull        /* the reference implementation's cap (100 MB) */
#define ST_MAX_INT 9007199254740992.0     /* 2^53: past it JSON numbers are not exact */
#define ST_NAME "%.200s"                  /* tensor names in messages, cut at 200 bytes */
#define ORIG_MOD_PREFIX "_orig_mod."      /* torch.compile's wrapper prefix */

typedef struct st_entry {
   char *name;
   int32_t dtype;        /* enum hrm_dtype */
   int32_t ndim;         /* 0..4 */
   int64_t shape[4];
   uint64_t begin, end;  /* byte range inside the data area */
} st_entry;

struct hrm_safetensors {
   hrm_image img;        /* the bytes and the path (or a caller's label) for messages */
   const uint8_t *data;  /* start of the data area */
   uint64_t data_size;
   int32_t count;
   st_entry *entries;    /* sorted by name */
};

/* The format's dtype names. Those with dtype -1 are valid safetensors but have no hrm type. */
static const struct { const char *name; int32_t dtype; } st_dtypes[] = {
   {"F32", HRM_DTYPE_F32}, {"F64", HRM_DTYPE_F64}, {"BF16", HRM_DTYPE_BF16},
   {"I32", HRM_DTYPE_I32}, {"I64", HRM_DTYPE_I64}, {"U8", HRM_DTYPE_U8},
   {"F16", -1}, {"I8", -1}, {"I16", -1}, {"U16", -1}, {"U32", -1}, {"U64", -1}, {"BOOL", -1},
   {"F8_E4M3", -1}, {"F8_E5M2", -1}, {"F8_E8M0", -1}, {"F6_E2M3", -1}, {"F6_E3M2", -1},
   {"F4", -1}, {"C64", -1},
};
#define ST_NUM_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static const char *st_dtype_name(int32_t dtype) {
   for (int i = 0; i < ST_NUM_DTYPES; i++)
      if (st_dtypes[i].dtype == dtype && dtype >= 0) return st_dtypes[i].name;
   return NULL;
}

static size_t st_dtype_size(int32_t dtype) {
   static const size_t sizes[HRM_DTYPE_COUNT] = {
      [HRM_DTYPE_F32] = 4, [HRM_DTYPE_F64] = 8, [HRM_DTYPE_BF16] = 2,
      [HRM_DTYPE_I32] = 4, [HRM_DTYPE_I64] = 8, [HRM_DTYPE_U8] = 1};
   return (dtype >= 0 && dtype < HRM_DTYPE_COUNT) ? sizes[dtype] : 0;
}

static int is_float_dtype(int32_t d) {
   return d == HRM_DTYPE_F32 || d == HRM_DTYPE_F64 || d == HRM_DTYPE_BF16;
}

static int cmp_entry_name(const void *a, const void *b) {
   return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static const st_entry *st_find(const hrm_safetensors *f, const char *name) {
   st_entry key = {.name = (char *)name};
   return f->count ? bsearch(&key, f->entries, (size_t)f->count, sizeof key, cmp_entry_name)
                   : NULL;
}

/* ---- reading --------------------------------------------------------------------------------- */

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_count(const cJSON *v, uint64_t *out) {
   if (!cJSON_IsNumber(v)) return 0;
   double d = v->valuedouble;
   if (!(d >= 0.0 && d <= ST_MAX_INT) || d != (double)(uint64_t)d) return 0;
   *out = (uint64_t)d;
   return 1;
}

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

/* Check the header entry `item` and fill e (all but the name). */
static int parse_entry(st_entry *e, const cJSON *item, const char *name, const char *label,
                       uint64_t data_size) {
   HRM_CHECK(cJSON_IsObject(item), HRM_ERR_FORMAT,
             "'%s': header entry '" ST_NAME "' is %s, expected an object with dtype, shape and "
             "data_offsets", label, name, json_kind(item));

   const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
   HRM_CHECK(cJSON_IsString(dt), HRM_ERR_FORMAT, "'%s': tensor '" ST_NAME "': dtype is %s, "
             "expected a string such as \"F32\"", label, name, json_kind(dt));
   int known = -1;
   for (int i = 0; i < ST_NUM_DTYPES; i++)
      if (strcmp(dt->valuestring, st_dtypes[i].name) == 0) known = i;
   HRM_CHECK(known >= 0, HRM_ERR_FORMAT, "'%s': tensor '" ST_NAME "' has unknown dtype '%.40s'",
             label, name, dt->valuestring);
   HRM_CHECK(st_dtypes[known].dtype >= 0, HRM_ERR_DTYPE,
             "'%s': tensor '" ST_NAME "' has dtype %s, which hrm does not support (F32, F64, "
             "BF16, I32, I64, U8)\n---> HINT: convert it in PyTorch before export", label, name,
             st_dtypes[known].name);
   e->dtype = st_dtypes[known].dtype;

   const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
   HRM_CHECK(cJSON_IsArray(shape), HRM_ERR_FORMAT,
             "'%s': tensor '" ST_NAME "': shape is %s, expected a list of sizes", label, name,
             json_kind(shape));
   int ndim = cJSON_GetArraySize(shape);
   HRM_CHECK(ndim <= 4, HRM_ERR_SHAPE, "'%s': tensor '" ST_NAME "' has %d dims; hrm tensors "
             "have at most 4", label, name, ndim);
   e->ndim = ndim;
   uint64_t numel = 1;
   int d = 0;
   for (const cJSON *s = shape->child; s; s = s->next, d++) {
      uint64_t size;
      HRM_CHECK(json_count(s, &size), HRM_ERR_FORMAT, "'%s': tensor '" ST_NAME "': size %d of "
                "its shape is not a whole number in [0, 2^53]", label, name, d + 1);
      HRM_CHECK(size == 0 || numel <= ((uint64_t)INT64_MAX / 16) / size, HRM_ERR_FORMAT,
                "'%s': tensor '" ST_NAME "': its shape's element count overflows", label, name);
      numel *= size;
      e->shape[d] = (int64_t)size;
   }
   for (; d < 4; d++) e->shape[d] = 1;
   uint64_t bytes = numel * st_dtype_size(e->dtype); /* numel < 2^59, size <= 8: no overflow */

   const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
   HRM_CHECK(cJSON_IsArray(offs) && cJSON_GetArraySize(offs) == 2, HRM_ERR_FORMAT,
             "'%s': tensor '" ST_NAME "': data_offsets is %s, expected a list [begin, end]",
             label, name, cJSON_IsArray(offs) ? "a list of the wrong length" : json_kind(offs));
   uint64_t begin, end;
   HRM_CHECK(json_count(offs->child, &begin) && json_count(offs->child->next, &end),
             HRM_ERR_FORMAT, "'%s': tensor '" ST_NAME "': data_offsets are not whole numbers in "
             "[0, 2^53]", label, name);
   HRM_CHECK(begin <= end && end <= data_size, HRM_ERR_FORMAT,
             "'%s': tensor '" ST_NAME "': data_offsets [%llu, %llu] fall outside the %llu-byte "
             "data area\n---> HINT: the file is truncated or its header is corrupt", label, name,
             (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
   HRM_CHECK(end - begin == bytes, HRM_ERR_FORMAT,
             "'%s': tensor '" ST_NAME "': %s x %llu elements is %llu bytes but data_offsets "
             "span %llu", label, name, st_dtypes[known].name, (unsigned long long)numel,
             (unsigned long long)bytes, (unsigned long long)(end - begin));
   e->begin = begin;
   e->end = end;
   return HRM_OK;
}

static int check_metadata(const cJSON *meta, const char *label) {
   HRM_CHECK(cJSON_IsObject(meta), HRM_ERR_FORMAT,
             "'%s': __metadata__ is %s, expected an object of strings", label, json_kind(meta));
   for (const cJSON *m = meta->child; m; m = m->next)
      HRM_CHECK(cJSON_IsString(m), HRM_ERR_FORMAT,
                "'%s': __metadata__ value '" ST_NAME "' is %s, expected a string", label,
                m->string, json_kind(m));
   return HRM_OK;
}

static int cmp_entry_begin(const void *a, const void *b) {
   const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
   return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* No two non-empty tensors share a byte. */
static int check_overlap(const hrm_safetensors *f) {
   if (f->count < 2) return HRM_OK;
   const st_entry **by_begin = malloc((size_t)f->count * sizeof *by_begin);
   HRM_CHECK(by_begin, HRM_ERR_MEMORY, "'%s': out of memory", f->img.label);
   for (int32_t i = 0; i < f->count; i++) by_begin[i] = &f->entries[i];
   qsort(by_begin, (size_t)f->count, sizeof *by_begin, cmp_entry_begin);
   const st_entry *last = NULL; /* the non-empty tensor reaching furthest so far */
   int rc = HRM_OK;
   for (int32_t i = 0; i < f->count && rc == HRM_OK; i++) {
      const st_entry *e = by_begin[i];
      if (e->begin == e->end) continue;
      if (last && e->begin < last->end)
         rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': tensors '" ST_NAME "' and '" ST_NAME "' overlap "
                       "in the data area", f->img.label, last->name, e->name);
      if (!last || e->end > last->end) last = e;
   }
   free(by_begin);
   return rc;
}

/* Validate f->img.file as safetensors and build the sorted entry table. */
static int st_parse(hrm_safetensors *f) {
   const uint8_t *p = f->img.file.data;
   size_t size = f->img.file.size;
   const char *label = f->img.label;
   HRM_CHECK(size >= 8, HRM_ERR_FORMAT, "'%s' is %zu bytes, too short for a safetensors file "
             "(8-byte header length, then a JSON header)%s", label, size,
             size == 0 ? "\n---> HINT: the file is empty; was its write interrupted?" : "");
   uint64_t n = 0;
   for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
   HRM_CHECK(n <= ST_MAX_HEADER, HRM_ERR_FORMAT, "'%s': header length %llu exceeds the limit of "
             "%llu bytes\n---> HINT: is this a safetensors file?", label, (unsigned long long)n,
             ST_MAX_HEADER);
   HRM_CHECK(n <= size - 8, HRM_ERR_FORMAT, "'%s': header length %llu runs past the end of the "
             "%zu-byte file\n---> HINT: the file is truncated or is not safetensors", label,
             (unsigned long long)n, size);
   HRM_CHECK(n >= 2, HRM_ERR_FORMAT, "'%s': header length %llu is too short for a JSON object",
             label, (unsigned long long)n);
   const char *hdr = (const char *)p + 8;
   const char *nul = memchr(hdr, '\0', (size_t)n);
   HRM_CHECK(!nul, HRM_ERR_FORMAT, "'%s': the header has a NUL byte at offset %zu", label,
             (size_t)(nul - hdr) + 8);
   f->data = p + 8 + n;
   f->data_size = (uint64_t)size - 8 - n;

   /* cJSON parses a private, NUL-terminated copy: it never sees the file's bounds. */
   char *text = malloc((size_t)n + 1);
   HRM_CHECK(text, HRM_ERR_MEMORY, "'%s': cannot allocate the %llu-byte header", label,
             (unsigned long long)n);
   memcpy(text, hdr, (size_t)n);
   text[n] = '\0';
   const char *stop = NULL;
   cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &stop, 0);
   int rc = HRM_OK;
   if (!root) {
      size_t at = stop && stop >= text && stop <= text + n ? (size_t)(stop - text) : 0;
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': the header is not valid JSON (near byte %zu of %llu)",
                    label, at, (unsigned long long)n);
      goto done;
   }
   for (const char *c = stop; c < text + n; c++) {
      if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r') {
         rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': the header has bytes after its JSON value (at "
                       "byte %zu of %llu)", label, (size_t)(c - text), (unsigned long long)n);
         goto done;
      }
   }
   if (!cJSON_IsObject(root)) {
      rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': the header is %s, expected a JSON object of tensors",
                    label, json_kind(root));
      goto done;
   }

   int total = cJSON_GetArraySize(root);
   f->entries = calloc(total ? (size_t)total : 1, sizeof *f->entries);
   if (!f->entries) {
      rc = HRM_FAIL(HRM_ERR_MEMORY, "'%s': out of memory for %d entries", label, total);
      goto done;
   }
   int seen_meta = 0;
   for (const cJSON *it = root->child; it; it = it->next) {
      const char *name = it->string ? it->string : "";
      if (strcmp(name, "__metadata__") == 0) {
         if (seen_meta++) {
            rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': __metadata__ appears twice", label);
            goto done;
         }
         if ((rc = check_metadata(it, label)) != HRM_OK) goto done;
         continue;
      }
      st_entry *e = &f->entries[f->count];
      if ((rc = parse_entry(e, it, name, label, f->data_size)) != HRM_OK) goto done;
      if (!(e->name = strdup(name))) {
         rc = HRM_FAIL(HRM_ERR_MEMORY, "'%s': out of memory", label);
         goto done;
      }
      f->count++;
   }
   if (f->count > 1) qsort(f->entries, (size_t)f->count, sizeof *f->entries, cmp_entry_name);
   for (int32_t i = 1; i < f->count; i++) {
      if (strcmp(f->entries[i - 1].name, f->entries[i].name) == 0) {
         rc = HRM_FAIL(HRM_ERR_FORMAT, "'%s': tensor '" ST_NAME "' appears twice in the header",
                       label, f->entries[i].name);
         goto done;
      }
   }
   rc = check_overlap(f);
done:
   cJSON_Delete(root);
   free(text);
   return rc;
}

void hrm_safetensors_free(hrm_safetensors *f) {
   if (!f) return;
   for (int32_t i = 0; i < f->count; i++) free(f->entries[i].name);
   free(f->entries);
   hrm_file_release(&f->img.file);
   free(f->img.label);
   free(f);
}

static int st_parse_image(void *f) { return st_parse(f); }
static void st_release(void *f) { hrm_safetensors_free(f); }

int hrm_safetensors_open(hrm_safetensors **out, const char *path) {
   HRM_CHECK(out, HRM_ERR_ARG, "safetensors_open: out is NULL");
   *out = NULL;
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "safetensors_open: path is NULL or empty");
   void *f;
   int rc = hrm_image_open(&f, sizeof **out, "safetensors", path, NULL, 0, path, st_parse_image,
                           st_release);
   *out = f;
   return rc;
}

/* Parse a safetensors image held in memory (copied); declared in safetensors.h. */
int hrm_safetensors_open_memory(hrm_safetensors **out, const void *data, size_t size,
                                const char *label) {
   HRM_CHECK(out, HRM_ERR_ARG, "safetensors_open_memory: out is NULL");
   void *f;
   int rc = hrm_image_open(&f, sizeof **out, "safetensors", NULL, data, size,
                           label ? label : "<memory>", st_parse_image, st_release);
   *out = f;
   return rc;
}

int32_t hrm_safetensors_count(const hrm_safetensors *f) { return f ? f->count : 0; }

const char *hrm_safetensors_name(const hrm_safetensors *f, int32_t i) {
   return (f && i >= 0 && i < f->count) ? f->entries[i].name : NULL;
}

static int st_read(hrm_tensor **out, const hrm_safetensors *f, const st_entry *e) {
   *out = NULL; /* set on every path: callers free *out whether or not this succeeds */
   hrm_tensor *t;
   HRM_TRY(hrm_tensor_new(&t, e->dtype, e->ndim, e->shape));
   uint64_t bytes = e->end - e->begin;
   if ((uint64_t)t->numel * st_dtype_size(e->dtype) != bytes) { /* parse_entry rules this out */
      hrm_tensor_free(t);
      return HRM_FAIL(HRM_ERR_FORMAT, "'%s': tensor '" ST_NAME "' size mismatch", f->img.label,
                      e->name);
   }
   if (bytes) memcpy(t->data, f->data + e->begin, (size_t)bytes);
   *out = t;
   return HRM_OK;
}

int hrm_safetensors_get(hrm_tensor **out, const hrm_safetensors *f, const char *name) {
   HRM_CHECK(out, HRM_ERR_ARG, "safetensors_get: out is NULL");
   *out = NULL;
   HRM_CHECK(f && name, HRM_ERR_ARG, "safetensors_get: file or name is NULL");
   const st_entry *e = st_find(f, name);
   HRM_CHECK(e, HRM_ERR_ARG, "'%s' has no tensor named '" ST_NAME "' (it has %d)", f->img.label,
             name, f->count);
   return st_read(out, f, e);
}

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct strbuf {
   char *p;
   size_t len, cap;
   int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
   if (b->oom) return;
   if (b->len + n + 1 > b->cap) {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + n + 1) cap *= 2;
      char *p = realloc(b->p, cap);
      if (!p) {
         b->oom = 1;
         return;
      }
      b->p = p;
      b->cap = cap;
   }
   memcpy(b->p + b->len, s, n);
   b->len += n;
   b->p[b->len] = '\0';
}

static void sb_printf(strbuf *b, const char *fmt, ...) HRM_PRINTF(2, 3);
static void sb_printf(strbuf *b, const char *fmt, ...) {
   char tmp[128];
   va_list ap;
   va_start(ap, fmt);
   int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
   va_end(ap);
   if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal. */
static void sb_json_string(strbuf *b, const char *s) {
   sb_put(b, "\"", 1);
   for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
      if (*c == '"' || *c == '\\') {
         char esc[2] = {'\\', (char)*c};
         sb_put(b, esc, 2);
      } else if (*c < 0x20) {
         sb_printf(b, "\\u%04x", *c);
      } else {
         sb_put(b, (const char *)c, 1);
      }
   }
   sb_put(b, "\"", 1);
}

int hrm_safetensors_write(const char *path, int32_t n, const char *const *names,
                          const hrm_tensor *const *tensors) {
   hrm_named_tensor *order;
   HRM_TRY(hrm_named_tensors(&order, "safetensors_write", path, n, names, tensors, SIZE_MAX,
                             "__metadata__"));

   /* The header: metadata first, then the tensors by name, data packed in the same order. */
   strbuf h = {0};
   static const char meta[] = "{\"__metadata__\":{\"format\":\"pt\"}";
   sb_put(&h, meta, sizeof meta - 1);
   uint64_t offset = 0;
   for (int32_t i = 0; i < n; i++) {
      const hrm_tensor *t = order[i].t;
      uint64_t bytes = (uint64_t)t->numel * st_dtype_size(t->dtype);
      sb_put(&h, ",", 1);
      sb_json_string(&h, order[i].name);
      sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t->dtype));
      for (int32_t d = 0; d < t->ndim; d++)
         sb_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
      sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                (unsigned long long)(offset + bytes));
      offset += bytes;
   }
   sb_put(&h, "}", 1);
   while (!h.oom && h.len % 8) sb_put(&h, " ", 1);
   if (h.oom || h.len > ST_MAX_HEADER) {
      int rc = h.oom ? HRM_FAIL(HRM_ERR_MEMORY, "safetensors_write '%s': out of memory for the "
                                "header", path)
                     : HRM_FAIL(HRM_ERR_ARG, "safetensors_write '%s': the header would be %zu "
                                "bytes, over the format's %llu limit", path, h.len, ST_MAX_HEADER);
      free(h.p);
      free(order);
      return rc;
   }
   unsigned char len8[8];
   for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));

   hrm_file_writer *w;
   int rc = hrm_file_writer_open(&w, path);
   if (rc == HRM_OK) {
      rc = hrm_file_writer_write(w, len8, 8);
      if (rc == HRM_OK) rc = hrm_file_writer_write(w, h.p, h.len);
      for (int32_t i = 0; i < n && rc == HRM_OK; i++) {
         const hrm_tensor *t = order[i].t;
         rc = hrm_file_writer_write(w, t->data, (size_t)t->numel * st_dtype_size(t->dtype));
      }
      if (rc == HRM_OK) rc = hrm_file_writer_commit(w);
      else hrm_file_writer_abort(w);
   }
   free(h.p);
   free(order);
   return rc;
}

/* ---- model import / export ------------------------------------------------------------------- */

/* Reference buffers that are not persistent state here: rebuilt from the config, never loaded. */
static const char *const ignored_suffixes[] = {
   "rotary_emb.cos_cached", "rotary_emb.sin_cached", "puzzle_emb.local_weights",
   "puzzle_emb.local_ids",
};

static int is_ignored(const char *name) {
   size_t n = strlen(name);
   for (size_t i = 0; i < sizeof ignored_suffixes / sizeof ignored_suffixes[0]; i++) {
      size_t k = strlen(ignored_suffixes[i]);
      if (n >= k && strcmp(name + n - k, ignored_suffixes[i]) == 0 &&
          (n == k || name[n - k - 1] == '.'))
         return 1;
   }
   return 0;
}

/* Names collected for one kind of problem, listed until the text is full. */
typedef struct problems {
   int count, shown;
   size_t len;
   char text[240];
} problems;

static void problem_add(problems *p, const char *fmt, ...) HRM_PRINTF(2, 3);
static void problem_add(problems *p, const char *fmt, ...) {
   char item[200];
   va_list ap;
   va_start(ap, fmt);
   vsnprintf(item, sizeof item, fmt, ap);
   va_end(ap);
   p->count++;
   size_t k = strlen(item);
   if (p->shown == p->count - 1 && p->len + k + 3 < sizeof p->text) {
      p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, "%s%s",
                                 p->len ? ", " : "", item);
      p->shown++;
   }
}

/* "; 3 missing: a, b, c" into msg. */
static void problem_print(char *msg, size_t cap, const problems *p, const char *what) {
   if (!p->count) return;
   size_t len = strlen(msg);
   if (len >= cap) return;
   snprintf(msg + len, cap - len, "%s%d %s: %s%s", len ? "; " : "", p->count, what, p->text,
            p->shown < p->count ? ", ..." : "");
}

#define LOAD_CHUNK ((int64_t)1 << 16) /* elements converted per hrm_tensor_copy */

int hrm_params_load_safetensors(hrm_params *m, const char *path) {
   HRM_CHECK(m, HRM_ERR_ARG, "load_safetensors: parameter store is NULL");
   HRM_CHECK(path, HRM_ERR_ARG, "load_safetensors: path is NULL");
   int32_t n = hrm_params_count(m);
   HRM_CHECK(n >= 0, HRM_ERR_STATE, "load_safetensors: the model reports %d tensors", n);
   hrm_safetensors *f;
   HRM_TRY(hrm_safetensors_open(&f, path));

   typedef struct slot { const char *name; hrm_tensor *value; const st_entry *src; } slot;
   slot *slots = calloc(n ? (size_t)n : 1, sizeof *slots);
   hrm_tensor *src_stage[HRM_DTYPE_COUNT] = {0}, *dst_stage[HRM_DTYPE_COUNT] = {0};
   problems missing = {0}, shaped = {0}, typed = {0}, unknown = {0}, twice = {0};
   int rc = HRM_OK;
   if (!slots) {
      rc = HRM_FAIL(HRM_ERR_MEMORY, "load_safetensors: out of memory");
      goto done;
   }

   /* 1. views of every model tensor */
   for (int32_t i = 0; i < n; i++) {
      hrm_tensor *grad = NULL;
      int32_t is_param = 0;
      rc = hrm_params_tensor(m, i, &slots[i].name, &slots[i].value, &grad, &is_param);
      hrm_tensor_free(grad);
      if (rc != HRM_OK) goto done;
   }

   /* 2. match the file's tensors to the model's */
   for (int32_t j = 0; j < f->count; j++) {
      const st_entry *e = &f->entries[j];
      const char *name = e->name;
      if (strncmp(name, ORIG_MOD_PREFIX, strlen(ORIG_MOD_PREFIX)) == 0)
         name += strlen(ORIG_MOD_PREFIX);
      int32_t k = hrm_params_find(m, name);
      if (k < 0 || k >= n) {
         if (!is_ignored(name)) problem_add(&unknown, "%.120s", e->name);
         continue;
      }
      if (slots[k].src) {
         problem_add(&twice, "%.120s", name);
         continue;
      }
      slots[k].src = e;
   }

   /* 3. every model tensor present, with its shape and a convertible dtype */
   for (int32_t i = 0; i < n; i++) {
      const st_entry *e = slots[i].src;
      const hrm_tensor *v = slots[i].value;
      if (!e) {
         problem_add(&missing, "%.120s", slots[i].name);
         continue;
      }
      int same = e->ndim == v->ndim;
      for (int32_t d = 0; same && d < v->ndim; d++) same = e->shape[d] == v->shape[d];
      if (!same) {
         char fs[64], ms[64];
         hrm_format_shape(fs, sizeof fs, e->ndim, e->shape);
         hrm_format_shape(ms, sizeof ms, v->ndim, v->shape);
         problem_add(&shaped, "%.100s %s in the file, %s in the model", slots[i].name, fs, ms);
         continue;
      }
      if (is_float_dtype(e->dtype) != is_float_dtype(v->dtype)) {
         problem_add(&typed, "%.120s (%s in the file, %s in the model)", slots[i].name,
                     st_dtype_name(e->dtype), hrm_dtype_name(v->dtype));
         continue;
      }
      if (e->dtype != v->dtype && v->device == HRM_DEVICE_CPU) {
         /* chunk buffers for the conversion, allocated now so step 4 allocates nothing */
         if (!src_stage[e->dtype])
            rc = hrm_tensor_new(&src_stage[e->dtype], e->dtype, 1, (int64_t[]){LOAD_CHUNK});
         if (rc == HRM_OK && !dst_stage[v->dtype])
            rc = hrm_tensor_new(&dst_stage[v->dtype], v->dtype, 1, (int64_t[]){LOAD_CHUNK});
         if (rc != HRM_OK) goto done;
      }
   }
   if (missing.count || shaped.count || typed.count || unknown.count || twice.count) {
      char msg[900] = "";
      problem_print(msg, sizeof msg, &missing, "missing");
      problem_print(msg, sizeof msg, &shaped, "with another shape");
      problem_print(msg, sizeof msg, &typed, "with an incompatible dtype");
      problem_print(msg, sizeof msg, &unknown, "not in the model");
      problem_print(msg, sizeof msg, &twice, "given twice (with and without _orig_mod.)");
      const char *hint = shaped.count ? "\n---> HINT: the model's config (hidden_size, "
                                        "vocab_size, seq_len, puzzle ids, ...) must match the "
                                        "checkpoint's"
                         : (missing.count && unknown.count)
                            ? "\n---> HINT: the file may use another naming scheme or model "
                              "variant"
                            : "";
      rc = HRM_FAIL(missing.count || unknown.count || twice.count ? HRM_ERR_FORMAT
                    : shaped.count ? HRM_ERR_SHAPE : HRM_ERR_DTYPE,
                    "cannot load '%.200s' into the model (nothing was changed): %s%s", path, msg,
                    hint);
      goto done;
   }

   /* 4. copy: host tensors need no allocation from here on, so a CPU load cannot stop halfway */
   for (int32_t i = 0; i < n && rc == HRM_OK; i++) {
      const st_entry *e = slots[i].src;
      hrm_tensor *v = slots[i].value;
      const uint8_t *src = f->data + e->begin;
      size_t es = st_dtype_size(e->dtype), vs = hrm_dtype_size(v->dtype);
      if (v->device != HRM_DEVICE_CPU) {
         hrm_tensor *host = NULL;
         rc = st_read(&host, f, e);
         if (rc == HRM_OK) rc = hrm_tensor_copy(v, host);
         hrm_tensor_free(host);
      } else if (e->dtype == v->dtype) {
         if (e->end > e->begin) memcpy(v->data, src, (size_t)(e->end - e->begin));
      } else {
         hrm_tensor *s = src_stage[e->dtype], *d = dst_stage[v->dtype];
         for (int64_t off = 0; off < v->numel && rc == HRM_OK; off += LOAD_CHUNK) {
            int64_t k = v->numel - off < LOAD_CHUNK ? v->numel - off : LOAD_CHUNK;
            memcpy(s->data, src + (size_t)off * es, (size_t)k * es);
            if (k < LOAD_CHUNK) memset((char *)s->data + (size_t)k * es, 0,
                                       (size_t)(LOAD_CHUNK - k) * es);
            rc = hrm_tensor_copy(d, s);
            memcpy((char *)v->data + (size_t)off * vs, d->data, (size_t)k * vs);
         }
      }
   }

done:
   for (int i = 0; i < HRM_DTYPE_COUNT; i++) {
      hrm_tensor_free(src_stage[i]);
      hrm_tensor_free(dst_stage[i]);
   }
   if (slots)
      for (int32_t i = 0; i < n; i++) hrm_tensor_free(slots[i].value);
   free(slots);
   hrm_safetensors_free(f);
   return rc;
}

int hrm_params_save_safetensors(const hrm_params *m, const char *path) {
   HRM_CHECK(m, HRM_ERR_ARG, "save_safetensors: parameter store is NULL");
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "save_safetensors: path is NULL or empty");
   int32_t n = hrm_params_count(m);
   HRM_CHECK(n >= 0, HRM_ERR_STATE, "save_safetensors: the model reports %d tensors", n);
   const char **names = calloc(n ? (size_t)n : 1, sizeof *names);
   hrm_tensor **tensors = calloc(n ? (size_t)n : 1, sizeof *tensors);
   int rc = HRM_OK;
   if (!names || !tensors) {
      rc = HRM_FAIL(HRM_ERR_MEMORY, "save_safetensors: out of memory");
      goto done;
   }
   for (int32_t i = 0; i < n && rc == HRM_OK; i++) {
      hrm_tensor *value = NULL, *grad = NULL;
      int32_t is_param = 0;
      rc = hrm_params_tensor(m, i, &names[i], &value, &grad, &is_param);
      hrm_tensor_free(grad);
      if (rc != HRM_OK) break;
      if (value->dtype == HRM_DTYPE_F32 && value->device == HRM_DEVICE_CPU) {
         tensors[i] = value;
         continue;
      }
      /* every tensor is stored as F32 on the host */
      rc = hrm_tensor_new(&tensors[i], HRM_DTYPE_F32, value->ndim, value->shape);
      if (rc == HRM_OK) rc = hrm_tensor_copy(tensors[i], value);
      hrm_tensor_free(value);
   }
   if (rc == HRM_OK)
      rc = hrm_safetensors_write(path, n, names, (const hrm_tensor *const *)tensors);
done:
   if (tensors)
      for (int32_t i = 0; i < n; i++) hrm_tensor_free(tensors[i]);
   free(tensors);
   free(names);
   return rc;
}
