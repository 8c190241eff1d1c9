/* msgpack_file.h — msgpack container files (.hrm checkpoints, .hrmd datasets): one reader and
 * the writer's sink (internal to the core).
 *
 * Both formats are one msgpack map whose large payloads are bins, with an XXH3-64 checksum per
 * payload and one over every other byte, the header (docs/checkpoint.md). The reader takes a
 * file's bytes without trusting them: what each first byte means, a bounded cursor that reads
 * heads of the kind a parser expects, a structural walk of a whole value, and the checksum
 * checks. Every count and length is compared with the bytes left before it is used, and nothing
 * is allocated in proportion to a declared size. Errors name the file ('label').
 */
#ifndef HRM_MSGPACK_FILE_H
#define HRM_MSGPACK_FILE_H

#include <msgpack.h>
#include <stdint.h>
#include <xxhash.h>

#include "fileio.h"
#include "hrm.h"

/* What a value is, by its first byte. The first five are the kinds a cursor can ask for. */
enum hrm_mp_kind {
   HRM_MP_MAP, HRM_MP_ARRAY, HRM_MP_STR, HRM_MP_BIN,
   HRM_MP_INT,  /* any integer; the cursor reads only non-negative ones */
   HRM_MP_NIL, HRM_MP_BOOL, HRM_MP_FLOAT, HRM_MP_EXT, HRM_MP_RESERVED
};

int hrm_mp_kind_of(uint8_t first_byte);
/* "a map", "an integer", ... for messages. */
const char *hrm_mp_describe(uint8_t first_byte);

/* ---- the bounded cursor ------------------------------------------------------------------------
 * Reads p[pos..size); `label` names the file in messages. */
typedef struct hrm_mp_reader {
   const uint8_t *p;
   size_t size, pos;
   const char *label;
} hrm_mp_reader;

/* The head of a value of kind `want` (HRM_MP_MAP .. HRM_MP_INT) at the cursor: its count (map
 * entries, array items), length (string, bin: the payload follows at r->pos) or value (a
 * non-negative integer). `what` names the value in messages. */
int hrm_mp_head(hrm_mp_reader *r, int want, uint64_t *out, const char *what);
/* A string value: [*s, *s + *n) inside the buffer; the cursor moves past it. */
int hrm_mp_str(hrm_mp_reader *r, const char **s, uint64_t *n, const char *what);
/* s[0..n) equals the C string lit. */
int hrm_mp_str_is(const char *s, uint64_t n, const char *lit);

/* ---- the structural walk -----------------------------------------------------------------------
 * p[0..n) is exactly one msgpack value nested at most max_depth (<= 16) levels, every length and
 * count within the bytes left: after this, a decoder that builds objects cannot be made to
 * allocate or read out of bounds. */
int hrm_mp_scan(const uint8_t *p, size_t n, int max_depth, const char *label);

/* ---- checksums --------------------------------------------------------------------------------- */

typedef struct hrm_mp_span { const uint8_t *p; uint64_t n; } hrm_mp_span; /* bytes [p, p + n) */

/* The XXH3-64 of the spans' bytes in order is `stored`; else HRM_ERR_FORMAT "'label': <what>
 * fails its checksum (stored .., computed ..)" with the hint "the file is damaged; <remedy>".
 * mapped: the bytes are a mapped file whose pages may be dropped once hashed, so verifying a
 * large file does not keep it resident. */
int hrm_mp_check_sum(const hrm_mp_span *spans, size_t n, uint64_t stored, int mapped,
                     const char *label, const char *what, const char *remedy);
/* The header's checksum: every byte of [begin, end) outside the payloads (disjoint spans inside
 * it, sorted here) hashes to `stored`; messages as hrm_mp_check_sum's. */
int hrm_mp_check_header(hrm_mp_span *payloads, size_t n, const uint8_t *begin,
                        const uint8_t *end, uint64_t stored, const char *label,
                        const char *what, const char *remedy);

/* ---- writing -----------------------------------------------------------------------------------
 * msgpack-c packs through pk into the sink: bytes go to an atomic file writer (the first failure
 * is kept) and, all but the payloads, into the header's checksum. The sink must not move. */
typedef struct hrm_mp_sink {
   msgpack_packer pk;
   hrm_file_writer *w;
   int rc;                 /* the first failed write */
   int payload;            /* set while payload bytes pass */
   XXH3_state_t *header;
} hrm_mp_sink;

/* [OUT] s: packing into a new atomic writer for path; `who` begins messages. */
int hrm_mp_sink_open(hrm_mp_sink *s, const char *path, const char *who);
/* Payload bytes: written as they are, outside the header's checksum. */
void hrm_mp_sink_payload(hrm_mp_sink *s, const void *data, size_t n);
void hrm_mp_pack_cstr(msgpack_packer *pk, const char *str);
/* The header's checksum of the bytes so far (once: its state is freed). */
uint64_t hrm_mp_sink_header_sum(hrm_mp_sink *s);
/* Commit the file, or remove it after a failed write; returns the first failure. */
int hrm_mp_sink_close(hrm_mp_sink *s);

#endif /* HRM_MSGPACK_FILE_H */
