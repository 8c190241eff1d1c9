/* msgpack_file.c — msgpack container files (.hrm, .hrmd): byte kinds, the bounded cursor, the
 * structural walk and the checksum checks of the reader, and the writer's sink (msgpack_file.h).
 *
 * msgpack_unpack allocates a declared container size before checking that the input can hold
 * it (a 5-byte file can ask for 100 GB), so files are first read here, where every count and
 * length is checked against the bytes left before it is used.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "msgpack_file.h"

#define MP_MAX_DEPTH 16
#define MP_HASH_BLOCK ((size_t)64 << 20) /* bytes hashed before mapped pages are dropped */

/* How a value is laid out after its first byte. */
typedef struct mp_form {
   uint8_t kind;    /* enum hrm_mp_kind */
   uint8_t width;   /* big-endian bytes holding the count, length or integer value */
   uint8_t fixed;   /* payload bytes of a fixed size: floats, an extension's type and data */
   uint8_t sign;    /* 1: a set top bit makes the integer negative; 2: always negative */
} mp_form;

static mp_form form_of(uint8_t b) {
   if (b <= 0x7f) return (mp_form){HRM_MP_INT, 0, 0, 0};
   if (b <= 0x8f) return (mp_form){HRM_MP_MAP, 0, 0, 0};
   if (b <= 0x9f) return (mp_form){HRM_MP_ARRAY, 0, 0, 0};
   if (b <= 0xbf) return (mp_form){HRM_MP_STR, 0, 0, 0};
   if (b >= 0xe0) return (mp_form){HRM_MP_INT, 0, 0, 2};
   static const mp_form forms[32] = {
      {HRM_MP_NIL, 0, 0, 0}, {HRM_MP_RESERVED, 0, 0, 0}, {HRM_MP_BOOL, 0, 0, 0},
      {HRM_MP_BOOL, 0, 0, 0}, {HRM_MP_BIN, 1, 0, 0}, {HRM_MP_BIN, 2, 0, 0},
      {HRM_MP_BIN, 4, 0, 0}, {HRM_MP_EXT, 1, 1, 0}, {HRM_MP_EXT, 2, 1, 0},
      {HRM_MP_EXT, 4, 1, 0}, {HRM_MP_FLOAT, 0, 4, 0}, {HRM_MP_FLOAT, 0, 8, 0},
      {HRM_MP_INT, 1, 0, 0}, {HRM_MP_INT, 2, 0, 0}, {HRM_MP_INT, 4, 0, 0},
      {HRM_MP_INT, 8, 0, 0}, {HRM_MP_INT, 1, 0, 1}, {HRM_MP_INT, 2, 0, 1},
      {HRM_MP_INT, 4, 0, 1}, {HRM_MP_INT, 8, 0, 1}, {HRM_MP_EXT, 0, 2, 0},
      {HRM_MP_EXT, 0, 3, 0}, {HRM_MP_EXT, 0, 5, 0}, {HRM_MP_EXT, 0, 9, 0},
      {HRM_MP_EXT, 0, 17, 0}, {HRM_MP_STR, 1, 0, 0}, {HRM_MP_STR, 2, 0, 0},
      {HRM_MP_STR, 4, 0, 0}, {HRM_MP_ARRAY, 2, 0, 0}, {HRM_MP_ARRAY, 4, 0, 0},
      {HRM_MP_MAP, 2, 0, 0}, {HRM_MP_MAP, 4, 0, 0}};
   return forms[b - 0xc0];
}

/* The count, length or value a one-byte head carries itself. */
static uint64_t inline_value(uint8_t b) {
   return b <= 0x7f ? b : b <= 0x9f ? b & 0x0fu : b <= 0xbf ? b & 0x1fu : 0;
}

static uint64_t read_be(const uint8_t *p, int n) {
   uint64_t v = 0;
   for (int i = 0; i < n; i++) v = (v << 8) | p[i];
   return v;
}

int hrm_mp_kind_of(uint8_t first_byte) { return form_of(first_byte).kind; }

const char *hrm_mp_describe(uint8_t first_byte) {
   static const char *const names[] = {
      [HRM_MP_MAP] = "a map", [HRM_MP_ARRAY] = "an array", [HRM_MP_STR] = "a string",
      [HRM_MP_BIN] = "binary data", [HRM_MP_INT] = "an integer", [HRM_MP_NIL] = "nil",
      [HRM_MP_BOOL] = "a boolean", [HRM_MP_FLOAT] = "a float",
      [HRM_MP_EXT] = "an extension value", [HRM_MP_RESERVED] = "the reserved byte 0xc1"};
   return names[form_of(first_byte).kind];
}

/* ---- the bounded cursor ------------------------------------------------------------------------ */

int hrm_mp_head(hrm_mp_reader *r, int want, uint64_t *out, const char *what) {
   static const char *const wanted[] = {"a map", "an array", "a string", "binary data",
                                        "a non-negative integer"};
   size_t at = r->pos;
   HRM_CHECK(at < r->size, HRM_ERR_FORMAT, "'%s': the file ends where %s was expected (byte %zu)"
             "\n---> HINT: the file is truncated", r->label, what, at);
   uint8_t b = r->p[at];
   mp_form f = form_of(b);
   HRM_CHECK(f.kind == want, HRM_ERR_FORMAT, "'%s': %s is %s, expected %s (byte %zu)", r->label,
             what, hrm_mp_describe(b), wanted[want], at);
   HRM_CHECK((uint64_t)f.width < r->size - at, HRM_ERR_FORMAT, "'%s': the file ends inside the "
             "head of %s (byte %zu)\n---> HINT: the file is truncated", r->label, what, at);
   uint64_t v = f.width ? read_be(r->p + at + 1, f.width) : inline_value(b);
   int negative = f.sign == 2 || (f.sign == 1 && (v >> (8 * f.width - 1)) & 1);
   HRM_CHECK(!negative, HRM_ERR_FORMAT, "'%s': %s is negative, expected %s (byte %zu)",
             r->label, what, wanted[want], at);
   r->pos = at + 1 + f.width;
   size_t left = r->size - r->pos;
   if (want == HRM_MP_STR || want == HRM_MP_BIN)
      HRM_CHECK(v <= left, HRM_ERR_FORMAT, "'%s': %s declares %llu bytes but only %zu remain "
                "(byte %zu)\n---> HINT: the file is truncated or corrupt", r->label, what,
                (unsigned long long)v, left, at);
   if (want == HRM_MP_MAP || want == HRM_MP_ARRAY) /* an item takes at least a byte, a pair 2 */
      HRM_CHECK(v <= (want == HRM_MP_MAP ? left / 2 : left), HRM_ERR_FORMAT, "'%s': %s declares "
                "%llu %s but only %zu bytes remain (byte %zu)\n---> HINT: the file is truncated "
                "or corrupt", r->label, what, (unsigned long long)v,
                want == HRM_MP_MAP ? "entries" : "items", left, at);
   *out = v;
   return HRM_OK;
}

int hrm_mp_str(hrm_mp_reader *r, const char **s, uint64_t *n, const char *what) {
   HRM_TRY(hrm_mp_head(r, HRM_MP_STR, n, what));
   *s = (const char *)r->p + r->pos;
   r->pos += (size_t)*n;
   return HRM_OK;
}

int hrm_mp_str_is(const char *s, uint64_t n, const char *lit) {
   return strlen(lit) == n && memcmp(s, lit, (size_t)n) == 0;
}

/* ---- the structural walk ----------------------------------------------------------------------- */

int hrm_mp_scan(const uint8_t *p, size_t n, int max_depth, const char *label) {
   uint64_t left[MP_MAX_DEPTH + 1]; /* values still to read at each open level */
   if (max_depth > MP_MAX_DEPTH) max_depth = MP_MAX_DEPTH;
   int depth = 0;
   size_t pos = 0;
   left[0] = 1;
   while (depth >= 0) {
      if (left[depth] == 0) {
         depth--;
         continue;
      }
      left[depth]--;
      HRM_CHECK(pos < n, HRM_ERR_FORMAT, "'%s': truncated (%zu bytes, a value is missing)",
                label, n);
      uint8_t b = p[pos++];
      mp_form f = form_of(b);
      HRM_CHECK(f.kind != HRM_MP_RESERVED, HRM_ERR_FORMAT, "'%s': invalid msgpack byte 0x%02x "
                "at %zu", label, b, pos - 1);
      uint64_t len = inline_value(b);
      if (f.width && f.kind != HRM_MP_INT) {
         HRM_CHECK(n - pos >= f.width, HRM_ERR_FORMAT, "'%s': truncated at byte %zu", label,
                   pos);
         len = read_be(p + pos, f.width);
         pos += f.width;
      }
      uint64_t skip = f.kind == HRM_MP_INT ? f.width
                      : f.kind == HRM_MP_STR || f.kind == HRM_MP_BIN || f.kind == HRM_MP_EXT
                         ? len + f.fixed : f.fixed;
      uint64_t count = f.kind == HRM_MP_MAP ? 2 * len : f.kind == HRM_MP_ARRAY ? len : 0;
      HRM_CHECK(skip <= n - pos, HRM_ERR_FORMAT, "'%s': a value at byte %zu declares %llu bytes, "
                "only %zu are left (truncated file?)", label, pos,
                (unsigned long long)skip, n - pos);
      pos += (size_t)skip;
      if (count) {
         HRM_CHECK(count <= n - pos, HRM_ERR_FORMAT, "'%s': a container at byte %zu declares "
                   "%llu entries, only %zu bytes are left", label, pos,
                   (unsigned long long)count, n - pos);
         HRM_CHECK(depth < max_depth, HRM_ERR_FORMAT, "'%s': nested deeper than %d levels",
                   label, max_depth);
         left[++depth] = count;
      }
   }
   HRM_CHECK(pos == n, HRM_ERR_FORMAT, "'%s': %zu trailing bytes after the msgpack map", label,
             n - pos);
   return HRM_OK;
}

/* ---- checksums --------------------------------------------------------------------------------- */

/* Feed [src, src + len) to st; with `mapped`, pages are dropped from the process once hashed
 * (they stay in the page cache). */
static void hash_bytes(XXH3_state_t *st, const uint8_t *src, uint64_t len, int mapped) {
   size_t page = (size_t)sysconf(_SC_PAGESIZE);
   while (len > 0) {
      size_t k = len < MP_HASH_BLOCK ? (size_t)len : MP_HASH_BLOCK;
      XXH3_64bits_update(st, src, k);
      if (mapped && page > 0 && k == MP_HASH_BLOCK) {
         uintptr_t a = ((uintptr_t)src + page - 1) / page * page;
         uintptr_t z = ((uintptr_t)src + k) / page * page;
         if (z > a) madvise((void *)a, z - a, MADV_DONTNEED);
      }
      src += k;
      len -= k;
   }
}

/* st's digest is `stored`; frees st. */
static int digest_is(XXH3_state_t *st, uint64_t stored, const char *label, const char *what,
                     const char *remedy) {
   uint64_t got = XXH3_64bits_digest(st);
   XXH3_freeState(st);
   HRM_CHECK(got == stored, HRM_ERR_FORMAT, "'%s': %s fails its checksum (stored %016llx, "
             "computed %016llx)\n---> HINT: the file is damaged; %s", label, what,
             (unsigned long long)stored, (unsigned long long)got, remedy);
   return HRM_OK;
}

static XXH3_state_t *new_state(void) {
   XXH3_state_t *st = XXH3_createState();
   if (st) XXH3_64bits_reset(st);
   return st;
}

int hrm_mp_check_sum(const hrm_mp_span *spans, size_t n, uint64_t stored, int mapped,
                     const char *label, const char *what, const char *remedy) {
   XXH3_state_t *st = new_state();
   HRM_CHECK(st, HRM_ERR_MEMORY, "'%s': out of memory verifying checksums", label);
   for (size_t i = 0; i < n; i++) hash_bytes(st, spans[i].p, spans[i].n, mapped);
   return digest_is(st, stored, label, what, remedy);
}

static int cmp_span(const void *a, const void *b) {
   const uint8_t *x = ((const hrm_mp_span *)a)->p, *y = ((const hrm_mp_span *)b)->p;
   return (x > y) - (x < y);
}

int hrm_mp_check_header(hrm_mp_span *payloads, size_t n, const uint8_t *begin,
                        const uint8_t *end, uint64_t stored, const char *label,
                        const char *what, const char *remedy) {
   XXH3_state_t *st = new_state();
   HRM_CHECK(st, HRM_ERR_MEMORY, "'%s': out of memory verifying checksums", label);
   if (n > 1) qsort(payloads, n, sizeof *payloads, cmp_span);
   const uint8_t *at = begin;
   for (size_t i = 0; i < n; i++) { /* disjoint, inside [begin, end) */
      if (payloads[i].p > at) XXH3_64bits_update(st, at, (size_t)(payloads[i].p - at));
      at = payloads[i].p + payloads[i].n;
   }
   if (end > at) XXH3_64bits_update(st, at, (size_t)(end - at));
   return digest_is(st, stored, label, what, remedy);
}

/* ---- writing ----------------------------------------------------------------------------------- */

static int sink_write(void *data, const char *buf, size_t len) {
   hrm_mp_sink *s = data;
   if (!s->payload && s->header) XXH3_64bits_update(s->header, buf, len);
   if (s->rc == HRM_OK) s->rc = hrm_file_writer_write(s->w, buf, len);
   return s->rc == HRM_OK ? 0 : -1;
}

int hrm_mp_sink_open(hrm_mp_sink *s, const char *path, const char *who) {
   memset(s, 0, sizeof *s);
   s->header = new_state();
   HRM_CHECK(s->header, HRM_ERR_MEMORY, "%s '%s': out of memory", who, path);
   int rc = hrm_file_writer_open(&s->w, path);
   if (rc != HRM_OK) {
      XXH3_freeState(s->header);
      return rc;
   }
   msgpack_packer_init(&s->pk, s, sink_write);
   return HRM_OK;
}

void hrm_mp_sink_payload(hrm_mp_sink *s, const void *data, size_t n) {
   s->payload = 1;
   sink_write(s, data, n);
   s->payload = 0;
}

void hrm_mp_pack_cstr(msgpack_packer *pk, const char *str) {
   size_t n = strlen(str);
   msgpack_pack_str(pk, n);
   msgpack_pack_str_body(pk, str, n);
}

uint64_t hrm_mp_sink_header_sum(hrm_mp_sink *s) {
   uint64_t sum = XXH3_64bits_digest(s->header);
   XXH3_freeState(s->header);
   s->header = NULL;
   return sum;
}

int hrm_mp_sink_close(hrm_mp_sink *s) {
   XXH3_freeState(s->header);
   if (s->rc == HRM_OK) return hrm_file_writer_commit(s->w);
   hrm_file_writer_abort(s->w);
   return s->rc;
}
