/* dataset.c — the puzzle dataset engine: storage, validation and batch sampling.
 *
 * A dataset holds the reference's arrays (HRM_SPEC §5.1) either in growable malloc'ed blocks
 * (built with add) or in place inside read-only file mappings (made by npy.c and hrmd.c through
 * hrm_dataset_wrap). Every array is validated before it becomes visible. Samplers fill
 * caller-owned i32 tensors and never allocate per batch: train by groups exactly as §5.2 (one
 * Philox stream per epoch), test in order with a padded last batch. Parsing files is not done
 * here (npy.c, hrmd.c); nothing here knows about Lua.
 * The token payloads of a checksummed .hrmd are verified (checksum, then token range) when first
 * touched — the first batch, get_arrays, add or save — not at open, so opening a large file
 * reads only its header and index arrays. A payload that fails stays refused on every touch.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "fileio.h"
#include "msgpack_file.h"

/* defined in core/npy.c and core/hrmd.c */
int hrm_dataset_read_dir(hrm_dataset **out, const char *dir, const char *split);
int hrm_dataset_read_hrmd(hrm_dataset **out, const char *path);
int hrm_dataset_wrap_deferred(hrm_dataset **out, const hrm_dataset_meta *meta,
                              const hrm_dataset_arrays *a, void *owned[5], hrm_file_data *files,
                              int32_t nfiles, const char *label, const int deferred[2],
                              const uint64_t sums[2]);

enum { A_INPUTS, A_LABELS, A_PIDS, A_PIDX, A_GIDX, A_COUNT };

static const char *const array_names[A_COUNT] = {"inputs", "labels", "puzzle_identifiers",
                                                 "puzzle_indices", "group_indices"};

typedef struct ds_array {
   const void *data;  /* the contents (inside a mapping, or == owned) */
   void *owned;       /* malloc'ed block behind data; NULL when data lives in a file mapping */
   int64_t cap;       /* elements the owned block holds */
   int pending;       /* inputs/labels only: checksum and tokens not yet verified */
   uint64_t sum;      /* the XXH3-64 the payload must have, when pending */
} ds_array;

struct hrm_dataset {
   hrm_dataset_meta meta;
   int32_t token_dtype;       /* HRM_DTYPE_U8 (V <= 256) or HRM_DTYPE_I32 */
   int32_t max_puzzle_size;   /* largest puzzle, for the sampler's scratch */
   int64_t n, n_puzzles, n_groups;
   int64_t max_yield;         /* sum over groups of its largest puzzle: most one epoch yields */
   ds_array a[A_COUNT];       /* (N, S) (N, S) (P) (P + 1) (G + 1) */
   hrm_file_data *files;      /* mappings the arrays point into */
   int32_t nfiles;
   int32_t refs;              /* the caller's reference plus one per sampler */
   uint64_t version;          /* bumped by every add (samplers check it) */
   char **ids;                /* identifier names, n_ids entries (NULL = unnamed) */
   int32_t n_ids;
   int32_t file_version;      /* .hrmd version it was read from (0: not read from an .hrmd) */
   char *label;               /* the file, for messages of deferred verification */
};

static size_t elem_size(const hrm_dataset *ds, int k) {
   return (k == A_INPUTS || k == A_LABELS) ? hrm_dtype_size(ds->token_dtype) : sizeof(int32_t);
}

static int64_t elem_count(const hrm_dataset *ds, int k) {
   switch (k) {
   case A_INPUTS:
   case A_LABELS: return ds->n * ds->meta.seq_len;
   case A_PIDS: return ds->n_puzzles;
   case A_PIDX: return ds->n_puzzles + 1;
   default: return ds->n_groups + 1;
   }
}

/* ---- metadata ------------------------------------------------------------------------------- */

static int check_meta(const hrm_dataset_meta *m, const char *label) {
   HRM_CHECK(m, HRM_ERR_ARG, "dataset: metadata is NULL");
   HRM_CHECK(m->vocab_size >= 1, HRM_ERR_ARG, "dataset '%s': vocab_size %d must be >= 1", label,
             m->vocab_size);
   HRM_CHECK(m->seq_len >= 1, HRM_ERR_ARG, "dataset '%s': seq_len %d must be >= 1", label,
             m->seq_len);
   HRM_CHECK(m->num_puzzle_identifiers >= 1, HRM_ERR_ARG,
             "dataset '%s': num_puzzle_identifiers %d must be >= 1 (id 0 is the blank puzzle)",
             label, m->num_puzzle_identifiers);
   HRM_CHECK(m->pad_id >= 0 && m->pad_id < m->vocab_size, HRM_ERR_ARG,
             "dataset '%s': pad_id %d is outside the vocabulary [0, %d)", label, m->pad_id,
             m->vocab_size);
   HRM_CHECK(m->blank_identifier_id >= 0 && m->blank_identifier_id < m->num_puzzle_identifiers,
             HRM_ERR_ARG, "dataset '%s': blank_identifier_id %d is outside [0, %d) "
             "(num_puzzle_identifiers)", label, m->blank_identifier_id,
             m->num_puzzle_identifiers);
   HRM_CHECK(m->has_ignore_label == 0 || m->has_ignore_label == 1, HRM_ERR_ARG,
             "dataset '%s': has_ignore_label is %d, expected 0 or 1", label, m->has_ignore_label);
   return HRM_OK;
}

/* ---- validation of one batch of arrays --------------------------------------------------------
 * `a` is checked against the metadata: counts, CSR offsets and every id. NULL CSR arrays mean
 * one puzzle per example / one group per puzzle. On success *P, *G are the counts, *max_size the
 * largest puzzle and *yield the sum over groups of their largest puzzle. */

static int resolve_counts(const hrm_dataset_arrays *a, int64_t *P, int64_t *G, const char *label) {
   HRM_CHECK(a->n >= 0 && a->n <= INT32_MAX, HRM_ERR_RANGE,
             "dataset '%s': %lld examples is outside 0..%d", label, (long long)a->n, INT32_MAX);
   *P = a->puzzle_indices ? a->n_puzzles : a->n;
   HRM_CHECK(a->puzzle_indices || a->n_puzzles == 0 || a->n_puzzles == a->n, HRM_ERR_ARG,
             "dataset '%s': n_puzzles %lld without puzzle_indices (NULL means one puzzle per "
             "example, so it must be 0 or n = %lld)", label, (long long)a->n_puzzles,
             (long long)a->n);
   HRM_CHECK(*P >= 0 && *P <= INT32_MAX - 1, HRM_ERR_RANGE,
             "dataset '%s': %lld puzzles is outside 0..%d", label, (long long)*P, INT32_MAX - 1);
   *G = a->group_indices ? a->n_groups : *P;
   HRM_CHECK(a->group_indices || a->n_groups == 0 || a->n_groups == *P, HRM_ERR_ARG,
             "dataset '%s': n_groups %lld without group_indices (NULL means one group per "
             "puzzle, so it must be 0 or n_puzzles = %lld)", label, (long long)a->n_groups,
             (long long)*P);
   HRM_CHECK(*G >= 0 && *G <= INT32_MAX - 1, HRM_ERR_RANGE,
             "dataset '%s': %lld groups is outside 0..%d", label, (long long)*G, INT32_MAX - 1);
   return HRM_OK;
}

/* First token in t[0..count) outside the allowed set, or -1. The allowed set is [0, V), plus
 * `extra` when use_extra, plus -100 when allow_ignored (i32 labels already ignored). */
static int64_t find_bad_token(const void *t, int32_t dtype, int64_t count, int32_t V,
                              int use_extra, int32_t extra, int allow_ignored) {
   if (dtype == HRM_DTYPE_U8) {
      const uint8_t *p = t;
      if (V >= 256) return -1;
      uint8_t mx = 0;
      for (int64_t i = 0; i < count; i++) mx = p[i] > mx ? p[i] : mx; /* fast path */
      if (mx < V) return -1;
      for (int64_t i = 0; i < count; i++)
         if (p[i] >= V && !(use_extra && p[i] == extra)) return i;
      return -1;
   }
   const int32_t *p = t;
   uint32_t mx = 0;
   for (int64_t i = 0; i < count; i++) mx = (uint32_t)p[i] > mx ? (uint32_t)p[i] : mx;
   if (mx < (uint32_t)V) return -1;
   for (int64_t i = 0; i < count; i++) {
      int32_t v = p[i];
      if (v >= 0 && v < V) continue;
      if (use_extra && v == extra) continue;
      if (allow_ignored && v == -100) continue;
      return i;
   }
   return -1;
}

static double token_at(const void *t, int32_t dtype, int64_t i) {
   return dtype == HRM_DTYPE_U8 ? ((const uint8_t *)t)[i] : ((const int32_t *)t)[i];
}

/* skip_tokens: bit 0 leaves the inputs' tokens unchecked, bit 1 the labels' (verified later). */
static int check_arrays(const hrm_dataset_meta *m, const hrm_dataset_arrays *a, const char *label,
                        int64_t *P_out, int64_t *G_out, int32_t *max_size, int64_t *yield,
                        int skip_tokens) {
   HRM_CHECK(a, HRM_ERR_ARG, "dataset '%s': arrays is NULL", label);
   HRM_CHECK(a->token_dtype == HRM_DTYPE_U8 || a->token_dtype == HRM_DTYPE_I32, HRM_ERR_DTYPE,
             "dataset '%s': token_dtype %d must be u8 (%d) or i32 (%d)", label, a->token_dtype,
             HRM_DTYPE_U8, HRM_DTYPE_I32);
   int64_t N = a->n, P = 0, G = 0, S = m->seq_len;
   HRM_TRY(resolve_counts(a, &P, &G, label));
   HRM_CHECK(N <= INT64_MAX / S, HRM_ERR_RANGE, "dataset '%s': %lld x %lld tokens overflow", label,
             (long long)N, (long long)S);
   HRM_CHECK(N == 0 || (a->inputs && a->labels), HRM_ERR_ARG,
             "dataset '%s': %s is NULL for %lld examples", label, a->inputs ? "labels" : "inputs",
             (long long)N);

   /* puzzle CSR over examples */
   const int32_t *pi = a->puzzle_indices;
   int32_t biggest = N > 0 ? 1 : 0;
   if (pi) {
      HRM_CHECK(pi[0] == 0, HRM_ERR_FORMAT, "dataset '%s': puzzle_indices[0] is %d, expected 0",
                label, pi[0]);
      for (int64_t p = 0; p < P; p++) {
         HRM_CHECK(pi[p + 1] >= pi[p], HRM_ERR_FORMAT,
                   "dataset '%s': puzzle_indices is not monotone: [%lld] = %d < [%lld] = %d",
                   label, (long long)(p + 1), pi[p + 1], (long long)p, pi[p]);
         if (pi[p + 1] - pi[p] > biggest) biggest = pi[p + 1] - pi[p];
      }
      HRM_CHECK(pi[P] == N, HRM_ERR_FORMAT,
                "dataset '%s': puzzle_indices ends at %d, expected the %lld examples", label,
                pi[P], (long long)N);
   }
   /* group CSR over puzzles; every group holds at least one puzzle */
   const int32_t *gi = a->group_indices;
   int64_t y = 0;
   if (gi) {
      HRM_CHECK(gi[0] == 0, HRM_ERR_FORMAT, "dataset '%s': group_indices[0] is %d, expected 0",
                label, gi[0]);
      for (int64_t g = 0; g < G; g++) {
         HRM_CHECK(gi[g + 1] > gi[g] && gi[g + 1] <= P, HRM_ERR_FORMAT,
                   "dataset '%s': group_indices must increase up to the %lld puzzles (every "
                   "group holds a puzzle): [%lld] = %d, [%lld] = %d", label, (long long)P,
                   (long long)g, gi[g], (long long)(g + 1), gi[g + 1]);
         int32_t most = 0;
         for (int32_t p = gi[g]; p < gi[g + 1]; p++) {
            int32_t size = pi ? pi[p + 1] - pi[p] : 1;
            if (size > most) most = size;
         }
         y += most;
      }
      HRM_CHECK(gi[G] == P, HRM_ERR_FORMAT,
                "dataset '%s': group_indices ends at %d, expected the %lld puzzles", label, gi[G],
                (long long)P);
   } else {
      for (int64_t p = 0; p < P; p++) y += pi ? pi[p + 1] - pi[p] : 1;
   }
   /* ids */
   if (a->puzzle_identifiers) {
      for (int64_t p = 0; p < P; p++) {
         int32_t id = a->puzzle_identifiers[p];
         HRM_CHECK(id >= 0 && id < m->num_puzzle_identifiers, HRM_ERR_RANGE,
                   "dataset '%s': puzzle_identifiers[%lld] = %d is outside [0, %d) "
                   "(num_puzzle_identifiers)", label, (long long)p, id,
                   m->num_puzzle_identifiers);
      }
   }
   /* tokens */
   int64_t count = N * S;
   if (count > 0 && !(skip_tokens & 1)) {
      int64_t bad = find_bad_token(a->inputs, a->token_dtype, count, m->vocab_size, 0, 0, 0);
      HRM_CHECK(bad < 0, HRM_ERR_RANGE,
                "dataset '%s': inputs[%lld, %lld] = %.0f is outside the vocabulary [0, %d)", label,
                (long long)(bad / S), (long long)(bad % S),
                token_at(a->inputs, a->token_dtype, bad < 0 ? 0 : bad), m->vocab_size);
   }
   if (count > 0 && !(skip_tokens & 2)) {
      int64_t bad = find_bad_token(a->labels, a->token_dtype, count, m->vocab_size,
                                   m->has_ignore_label, m->ignore_label_id, 1);
      HRM_CHECK(bad < 0, HRM_ERR_RANGE,
                "dataset '%s': labels[%lld, %lld] = %.0f is outside the vocabulary [0, %d) and is "
                "not the ignore label", label, (long long)(bad / S), (long long)(bad % S),
                token_at(a->labels, a->token_dtype, bad < 0 ? 0 : bad), m->vocab_size);
   }
   *P_out = P;
   *G_out = G;
   *max_size = biggest;
   *yield = y;
   return HRM_OK;
}

/* ---- construction --------------------------------------------------------------------------- */

static hrm_dataset *dataset_alloc(const hrm_dataset_meta *meta) {
   hrm_dataset *ds = calloc(1, sizeof *ds);
   if (!ds) return NULL;
   ds->meta = *meta;
   ds->meta.reserved = 0;
   ds->token_dtype = meta->vocab_size <= 256 ? HRM_DTYPE_U8 : HRM_DTYPE_I32;
   ds->refs = 1;
   return ds;
}

static void dataset_destroy(hrm_dataset *ds) {
   for (int k = 0; k < A_COUNT; k++) free(ds->a[k].owned);
   free(ds->label);
   for (int32_t i = 0; i < ds->nfiles; i++) hrm_file_release(&ds->files[i]);
   free(ds->files);
   for (int32_t i = 0; i < ds->n_ids; i++) free(ds->ids[i]);
   free(ds->ids);
   free(ds);
}

/* Make array k an owned block of at least `need` elements, keeping its current contents. */
static int reserve(hrm_dataset *ds, int k, int64_t need) {
   ds_array *arr = &ds->a[k];
   if (arr->owned && arr->cap >= need) return HRM_OK;
   size_t es = elem_size(ds, k);
   int64_t cap = arr->owned ? arr->cap : 0;
   cap = cap > INT64_MAX / 2 ? need : cap * 2;
   if (cap < need) cap = need;
   if (cap < 64) cap = 64;
   HRM_CHECK((uint64_t)cap <= SIZE_MAX / es, HRM_ERR_MEMORY, "dataset: %s of %lld elements is "
             "too large", array_names[k], (long long)cap);
   void *p;
   if (arr->owned) {
      p = realloc(arr->owned, (size_t)cap * es);
   } else {
      p = malloc((size_t)cap * es);
      int64_t have = elem_count(ds, k);
      if (p && have > 0 && arr->data) memcpy(p, arr->data, (size_t)have * es);
   }
   HRM_CHECK(p, HRM_ERR_MEMORY, "dataset: cannot allocate %lld bytes for %s", (long long)cap *
             (long long)es, array_names[k]);
   arr->owned = p;
   arr->data = p;
   arr->cap = cap;
   return HRM_OK;
}

int hrm_dataset_new(hrm_dataset **out, const hrm_dataset_meta *meta) {
   HRM_CHECK(out, HRM_ERR_ARG, "dataset_new: out is NULL");
   *out = NULL;
   HRM_TRY(check_meta(meta, "new"));
   hrm_dataset *ds = dataset_alloc(meta);
   HRM_CHECK(ds, HRM_ERR_MEMORY, "dataset_new: out of memory");
   if (reserve(ds, A_PIDX, 1) != HRM_OK || reserve(ds, A_GIDX, 1) != HRM_OK) {
      dataset_destroy(ds);
      return HRM_FAIL(HRM_ERR_MEMORY, "dataset_new: out of memory");
   }
   ((int32_t *)ds->a[A_PIDX].owned)[0] = 0;
   ((int32_t *)ds->a[A_GIDX].owned)[0] = 0;
   *out = ds;
   return HRM_OK;
}

/* Verify the payloads still pending (deferred .hrmd checks): the checksum, then the tokens. A
 * failure leaves the payload pending, so every later touch fails too. The verification state is
 * a cache of facts about the read-only mapping, so const datasets may update it. */
static int verify_pending(const hrm_dataset *cds) {
   hrm_dataset *ds = (hrm_dataset *)cds;
   int64_t count = ds->n * ds->meta.seq_len;
   for (int k = 0; k < 2; k++) {
      ds_array *arr = &ds->a[k];
      if (!arr->pending) continue;
      size_t bytes = (size_t)count * elem_size(ds, k);
      char what[64];
      snprintf(what, sizeof what, "the data of array \"%s\"", array_names[k]);
      HRM_TRY(hrm_mp_check_sum(&(hrm_mp_span){arr->data, bytes}, 1, arr->sum, 0, ds->label, what,
                               "rebuild it"));
      int64_t bad = k == A_INPUTS
         ? find_bad_token(arr->data, ds->token_dtype, count, ds->meta.vocab_size, 0, 0, 0)
         : find_bad_token(arr->data, ds->token_dtype, count, ds->meta.vocab_size,
                          ds->meta.has_ignore_label, ds->meta.ignore_label_id, 1);
      HRM_CHECK(bad < 0, HRM_ERR_RANGE, "dataset '%s': %s[%lld, %lld] = %.0f is outside the "
                "vocabulary [0, %d)%s", ds->label, array_names[k],
                (long long)(bad / ds->meta.seq_len), (long long)(bad % ds->meta.seq_len),
                token_at(arr->data, ds->token_dtype, bad < 0 ? 0 : bad), ds->meta.vocab_size,
                k == A_LABELS ? " and is not the ignore label" : "");
      arr->pending = 0;
   }
   return HRM_OK;
}

/* Internal (npy.c, hrmd.c): a dataset over arrays already in storage dtype (tokens u8 when
 * V <= 256 else i32; the rest i32, 4-byte aligned), used in place. It takes the blocks owned[k]
 * (the malloc'ed memory behind array k, or NULL) and the nfiles mappings in files, whether or not
 * it succeeds; files[] itself stays the caller's. Validates exactly like add. */
int hrm_dataset_wrap(hrm_dataset **out, const hrm_dataset_meta *meta, const hrm_dataset_arrays *a,
                     void *owned[5], hrm_file_data *files, int32_t nfiles, const char *label) {
   return hrm_dataset_wrap_deferred(out, meta, a, owned, files, nfiles, label, NULL, NULL);
}

/* Internal (hrmd.c): wrap, with the inputs (k = 0) and labels (k = 1) whose deferred[k] is set
 * verified when first touched: their XXH3-64 must be sums[k], then their tokens are checked. */
int hrm_dataset_wrap_deferred(hrm_dataset **out, const hrm_dataset_meta *meta,
                              const hrm_dataset_arrays *a, void *owned[5], hrm_file_data *files,
                              int32_t nfiles, const char *label, const int deferred[2],
                              const uint64_t sums[2]) {
   int rc = HRM_OK;
   hrm_dataset *ds = NULL;
   *out = NULL;
   int64_t P = 0, G = 0, yield = 0;
   int32_t biggest = 0;
   if ((rc = check_meta(meta, label)) != HRM_OK) goto fail;
   int skip = (deferred && deferred[0] ? 1 : 0) | (deferred && deferred[1] ? 2 : 0);
   if ((rc = check_arrays(meta, a, label, &P, &G, &biggest, &yield, skip)) != HRM_OK) goto fail;
   if (a->token_dtype != (meta->vocab_size <= 256 ? HRM_DTYPE_U8 : HRM_DTYPE_I32) ||
       !a->puzzle_indices || !a->group_indices || !a->puzzle_identifiers) {
      rc = HRM_FAIL(HRM_ERR_ARG, "dataset '%s': wrap needs every array in storage dtype", label);
      goto fail;
   }
   ds = dataset_alloc(meta);
   if (!ds || (nfiles > 0 && !(ds->files = calloc((size_t)nfiles, sizeof *ds->files)))) {
      rc = HRM_FAIL(HRM_ERR_MEMORY, "dataset '%s': out of memory", label);
      goto fail;
   }
   for (int32_t i = 0; i < nfiles; i++) {
      ds->files[i] = files[i];
      memset(&files[i], 0, sizeof files[i]);
   }
   ds->nfiles = nfiles;
   ds->n = a->n;
   ds->n_puzzles = P;
   ds->n_groups = G;
   ds->max_puzzle_size = biggest;
   ds->max_yield = yield;
   const void *ptrs[A_COUNT] = {a->inputs, a->labels, a->puzzle_identifiers, a->puzzle_indices,
                                a->group_indices};
   for (int k = 0; k < A_COUNT; k++) {
      ds->a[k].data = ptrs[k];
      ds->a[k].owned = owned[k];
      ds->a[k].cap = owned[k] ? elem_count(ds, k) : 0;
      owned[k] = NULL;
   }
   if (skip) {
      ds->a[A_INPUTS].pending = skip & 1;
      ds->a[A_LABELS].pending = (skip & 2) != 0;
      for (int k = 0; k < 2; k++) ds->a[k].sum = ds->a[k].pending ? sums[k] : 0;
      if (!(ds->label = strdup(label))) {
         rc = HRM_FAIL(HRM_ERR_MEMORY, "dataset '%s': out of memory", label);
         goto fail;
      }
   }
   *out = ds;
   return HRM_OK;
fail:
   for (int k = 0; k < A_COUNT; k++) {
      free(owned[k]);
      owned[k] = NULL;
   }
   for (int32_t i = 0; i < nfiles; i++) hrm_file_release(&files[i]);
   if (ds) dataset_destroy(ds);
   return rc;
}

void hrm_dataset_free(hrm_dataset *ds) {
   if (ds && --ds->refs == 0) dataset_destroy(ds);
}

/* Copy count tokens of dtype `from` into the dataset's storage dtype at dst. Values were
 * validated, so narrowing to u8 only meets values < V <= 256. */
static void copy_tokens(void *dst, int32_t to, const void *src, int32_t from, int64_t count) {
   if (count <= 0) return;
   if (to == from) {
      memcpy(dst, src, (size_t)count * hrm_dtype_size(to));
   } else if (to == HRM_DTYPE_I32) {
      const uint8_t *s = src;
      int32_t *d = dst;
      for (int64_t i = 0; i < count; i++) d[i] = s[i];
   } else {
      const int32_t *s = src;
      uint8_t *d = dst;
      for (int64_t i = 0; i < count; i++) d[i] = (uint8_t)s[i];
   }
}

int hrm_dataset_add(hrm_dataset *ds, const hrm_dataset_arrays *a) {
   HRM_CHECK(ds, HRM_ERR_ARG, "dataset_add: dataset is NULL");
   HRM_TRY(verify_pending(ds)); /* the stored payloads are copied below */
   int64_t P, G, yield;
   int32_t biggest;
   HRM_TRY(check_arrays(&ds->meta, a, "add", &P, &G, &biggest, &yield, 0));
   int64_t N = a->n, S = ds->meta.seq_len;
   if (ds->token_dtype == HRM_DTYPE_U8 && a->token_dtype == HRM_DTYPE_I32 && N > 0) {
      /* i32 labels may hold -100 or an ignore id > 255, which u8 storage cannot */
      const int32_t *l = a->labels;
      for (int64_t i = 0; i < N * S; i++)
         HRM_CHECK(l[i] >= 0 && l[i] <= 255, HRM_ERR_RANGE,
                   "dataset_add: labels[%lld, %lld] = %d cannot be stored as u8\n---> HINT: "
                   "mark ignored labels with ignore_label_id",
                   (long long)(i / S), (long long)(i % S), l[i]);
   }
   HRM_CHECK(ds->n + N <= INT32_MAX && ds->n_puzzles + P <= INT32_MAX - 1 &&
             ds->n_groups + G <= INT32_MAX - 1, HRM_ERR_RANGE,
             "dataset_add: more than %d examples, puzzles or groups (offsets are i32)",
             INT32_MAX - 1);
   int64_t n0 = ds->n, p0 = ds->n_puzzles, g0 = ds->n_groups;
   HRM_TRY(reserve(ds, A_INPUTS, (n0 + N) * S));
   HRM_TRY(reserve(ds, A_LABELS, (n0 + N) * S));
   HRM_TRY(reserve(ds, A_PIDS, p0 + P));
   HRM_TRY(reserve(ds, A_PIDX, p0 + P + 1));
   HRM_TRY(reserve(ds, A_GIDX, g0 + G + 1));
   /* every array is owned now: the mappings (if any) are no longer needed */
   for (int32_t i = 0; i < ds->nfiles; i++) hrm_file_release(&ds->files[i]);
   free(ds->files);
   ds->files = NULL;
   ds->nfiles = 0;

   size_t es = hrm_dtype_size(ds->token_dtype);
   copy_tokens((char *)ds->a[A_INPUTS].owned + (size_t)(n0 * S) * es, ds->token_dtype, a->inputs,
               a->token_dtype, N * S);
   copy_tokens((char *)ds->a[A_LABELS].owned + (size_t)(n0 * S) * es, ds->token_dtype, a->labels,
               a->token_dtype, N * S);
   int32_t *pids = (int32_t *)ds->a[A_PIDS].owned + p0;
   int32_t *pidx = (int32_t *)ds->a[A_PIDX].owned + p0;
   int32_t *gidx = (int32_t *)ds->a[A_GIDX].owned + g0;
   for (int64_t p = 0; p < P; p++) {
      pids[p] = a->puzzle_identifiers ? a->puzzle_identifiers[p] : ds->meta.blank_identifier_id;
      pidx[p + 1] = (int32_t)(n0 + (a->puzzle_indices ? a->puzzle_indices[p + 1] : p + 1));
   }
   for (int64_t g = 0; g < G; g++)
      gidx[g + 1] = (int32_t)(p0 + (a->group_indices ? a->group_indices[g + 1] : g + 1));
   ds->n += N;
   ds->n_puzzles += P;
   ds->n_groups += G;
   if (biggest > ds->max_puzzle_size) ds->max_puzzle_size = biggest;
   ds->max_yield += yield;
   ds->version++;
   return HRM_OK;
}

/* True when path ends with suffix. */
static int ends_with(const char *path, const char *suffix) {
   size_t n = strlen(path), k = strlen(suffix);
   return n >= k && strcmp(path + n - k, suffix) == 0;
}

int hrm_dataset_load(hrm_dataset **out, const char *path, const char *split) {
   HRM_CHECK(out, HRM_ERR_ARG, "dataset_load: out is NULL");
   *out = NULL;
   HRM_CHECK(path && path[0], HRM_ERR_ARG, "dataset_load: path is NULL or empty");
   struct stat st;
   HRM_CHECK(stat(path, &st) == 0, HRM_ERR_IO, "dataset_load: cannot find '%s'\n---> HINT: give "
             "a .hrmd file or a folder holding dataset.json", path);
   if (S_ISDIR(st.st_mode)) return hrm_dataset_read_dir(out, path, split);
   HRM_CHECK(split == NULL || split[0] == '\0', HRM_ERR_ARG, "dataset_load: '%s' is a file, "
             "so split '%s' means nothing\n---> HINT: give the dataset's folder with a split",
             path, split);
   if (ends_with(path, "dataset.json")) {
      size_t n = strlen(path) - strlen("dataset.json");
      char *dir = malloc(n + 2);
      HRM_CHECK(dir, HRM_ERR_MEMORY, "dataset_load: out of memory");
      if (n == 0) strcpy(dir, ".");
      else {
         memcpy(dir, path, n);
         dir[n] = '\0';
      }
      int rc = hrm_dataset_read_dir(out, dir, NULL);
      free(dir);
      return rc;
   }
   HRM_CHECK(!ends_with(path, ".npy"), HRM_ERR_ARG, "dataset_load: '%s' is one array of a "
             "dataset\n---> HINT: give the folder holding dataset.json", path);
   return hrm_dataset_read_hrmd(out, path);
}

int hrm_dataset_get_meta(hrm_dataset_meta *out, const hrm_dataset *ds) {
   HRM_CHECK(out && ds, HRM_ERR_ARG, "dataset_get_meta: out or dataset is NULL");
   *out = ds->meta;
   out->total_groups = ds->n_groups;
   out->mean_puzzle_examples = ds->n_puzzles > 0 ? (double)ds->n / (double)ds->n_puzzles : 0.0;
   return HRM_OK;
}

int hrm_dataset_get_arrays(hrm_dataset_arrays *out, const hrm_dataset *ds) {
   HRM_CHECK(out && ds, HRM_ERR_ARG, "dataset_get_arrays: out or dataset is NULL");
   memset(out, 0, sizeof *out);
   HRM_TRY(verify_pending(ds));
   out->inputs = ds->a[A_INPUTS].data;
   out->labels = ds->a[A_LABELS].data;
   out->puzzle_identifiers = ds->a[A_PIDS].data;
   out->puzzle_indices = ds->a[A_PIDX].data;
   out->group_indices = ds->a[A_GIDX].data;
   out->n = ds->n;
   out->n_puzzles = ds->n_puzzles;
   out->n_groups = ds->n_groups;
   out->token_dtype = ds->token_dtype;
   return HRM_OK;
}

int hrm_dataset_set_identifier(hrm_dataset *ds, int32_t id, const char *name) {
   HRM_CHECK(ds, HRM_ERR_ARG, "dataset_set_identifier: dataset is NULL");
   HRM_CHECK(id >= 0 && id < ds->meta.num_puzzle_identifiers, HRM_ERR_RANGE,
             "dataset_set_identifier: id %d is outside [0, %d) (num_puzzle_identifiers)", id,
             ds->meta.num_puzzle_identifiers);
   if (id >= ds->n_ids) {
      if (!name) return HRM_OK;
      int32_t n = ds->n_ids ? ds->n_ids : 16;
      while (n <= id) n = n > INT32_MAX / 2 ? id + 1 : n * 2;
      char **ids = realloc(ds->ids, (size_t)n * sizeof *ids);
      HRM_CHECK(ids, HRM_ERR_MEMORY, "dataset_set_identifier: out of memory");
      memset(ids + ds->n_ids, 0, (size_t)(n - ds->n_ids) * sizeof *ids);
      ds->ids = ids;
      ds->n_ids = n;
   }
   char *copy = NULL;
   if (name) {
      copy = strdup(name);
      HRM_CHECK(copy, HRM_ERR_MEMORY, "dataset_set_identifier: out of memory");
   }
   free(ds->ids[id]);
   ds->ids[id] = copy;
   return HRM_OK;
}

int32_t hrm_dataset_file_version(const hrm_dataset *ds) { return ds ? ds->file_version : 0; }

/* Internal (hrmd.c): the .hrmd version the dataset was read from. */
void hrm_dataset_set_file_version(hrm_dataset *ds, int32_t version) {
   if (ds) ds->file_version = version;
}

const char *hrm_dataset_identifier(const hrm_dataset *ds, int32_t id) {
   if (!ds || id < 0 || id >= ds->n_ids) return NULL;
   return ds->ids[id];
}

/* ---- sampling ------------------------------------------------------------------------------- */

struct hrm_sampler {
   hrm_dataset *ds;          /* holds one reference */
   hrm_sampler_config cfg;
   uint64_t ds_version;      /* the dataset's version when the sampler was made */
   int64_t epoch, index;     /* the position (hrm_sampler_state) */
   hrm_rng rng;              /* train: this epoch's stream */
   int64_t order_epoch;      /* the epoch `order` was drawn for, -1 for none */
   int64_t order_len;        /* G x epochs_per_iter */
   int32_t *order;           /* (order_len) group ids */
   int32_t *scratch;         /* (max_puzzle_size) example slots for choice without replacement */
   int32_t *rows;            /* (B) train: the example behind each batch row */
   int32_t *row_puzzle;      /* (B) train: its puzzle */
};

/* splitmix64's finaliser: a bijective mix of 64 bits. */
static uint64_t mix64(uint64_t x) {
   x += 0x9E3779B97F4A7C15ull;
   x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
   x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
   return x ^ (x >> 31);
}

/* Uniform integer in [0, n) without modulo bias; n <= 1 draws nothing. */
static uint64_t below(hrm_rng *rng, uint64_t n) {
   if (n <= 1) return 0;
   uint64_t threshold = (0 - n) % n, x;
   do x = hrm_rng_next_u64(rng);
   while (x < threshold);
   return x % n;
}

/* Key this epoch's stream and draw its order: epochs_per_iter permutations of the groups. */
static void start_epoch(hrm_sampler *s, int64_t epoch) {
   hrm_rng_init(&s->rng, mix64(s->cfg.seed ^ mix64((uint64_t)epoch)));
   int64_t G = s->ds->n_groups, reps = G ? s->order_len / G : 0;
   for (int64_t r = 0; r < reps; r++) {
      int32_t *perm = s->order + r * G;
      for (int64_t i = 0; i < G; i++) perm[i] = (int32_t)i;
      for (int64_t i = G - 1; i > 0; i--) {
         int64_t j = (int64_t)below(&s->rng, (uint64_t)i + 1);
         int32_t t = perm[i];
         perm[i] = perm[j];
         perm[j] = t;
      }
   }
   s->order_epoch = epoch;
}

int hrm_sampler_new(hrm_sampler **out, hrm_dataset *ds, const hrm_sampler_config *cfg) {
   HRM_CHECK(out, HRM_ERR_ARG, "sampler_new: out is NULL");
   *out = NULL;
   HRM_CHECK(ds && cfg, HRM_ERR_ARG, "sampler_new: dataset or config is NULL");
   HRM_CHECK(cfg->batch_size >= 1, HRM_ERR_ARG, "sampler_new: batch_size %d must be >= 1",
             cfg->batch_size);
   HRM_CHECK(cfg->train == 0 || cfg->train == 1, HRM_ERR_ARG, "sampler_new: train is %d, "
             "expected 0 or 1", cfg->train);
   HRM_CHECK(cfg->epochs_per_iter >= 0 && cfg->epochs_per_iter <= 1000000, HRM_ERR_ARG,
             "sampler_new: epochs_per_iter %d is outside 0..1000000", cfg->epochs_per_iter);
   HRM_CHECK(cfg->max_epochs >= 0, HRM_ERR_ARG, "sampler_new: max_epochs %lld must be >= 0",
             (long long)cfg->max_epochs);
   int64_t epi = cfg->epochs_per_iter ? cfg->epochs_per_iter : 1;
   if (cfg->train) {
      HRM_CHECK(ds->max_yield * epi >= cfg->batch_size, HRM_ERR_ARG,
                "sampler_new: a train batch of %d needs more examples than one epoch can yield "
                "(%lld from %lld groups)\n---> HINT: use a smaller batch_size or a larger "
                "epochs_per_iter", cfg->batch_size, (long long)(ds->max_yield * epi),
                (long long)ds->n_groups);
   }
   hrm_sampler *s = calloc(1, sizeof *s);
   HRM_CHECK(s, HRM_ERR_MEMORY, "sampler_new: out of memory");
   s->cfg = *cfg;
   s->cfg.epochs_per_iter = (int32_t)epi;
   s->order_epoch = -1;
   if (cfg->train) {
      s->order_len = ds->n_groups * epi;
      s->order = malloc((size_t)(s->order_len ? s->order_len : 1) * sizeof *s->order);
      s->scratch = malloc((size_t)(ds->max_puzzle_size ? ds->max_puzzle_size : 1) *
                          sizeof *s->scratch);
      s->rows = malloc((size_t)cfg->batch_size * sizeof *s->rows);
      s->row_puzzle = malloc((size_t)cfg->batch_size * sizeof *s->row_puzzle);
      if (!s->order || !s->scratch || !s->rows || !s->row_puzzle) {
         free(s->order);
         free(s->scratch);
         free(s->rows);
         free(s->row_puzzle);
         free(s);
         return HRM_FAIL(HRM_ERR_MEMORY, "sampler_new: cannot allocate the order of %lld groups",
                         (long long)ds->n_groups * epi);
      }
   }
   s->ds = ds;
   s->ds_version = ds->version;
   ds->refs++;
   *out = s;
   return HRM_OK;
}

void hrm_sampler_free(hrm_sampler *s) {
   if (!s) return;
   hrm_dataset_free(s->ds);
   free(s->order);
   free(s->scratch);
   free(s->rows);
   free(s->row_puzzle);
   free(s);
}

static int check_out(const hrm_tensor *t, const char *name, int32_t ndim, int64_t B, int64_t S) {
   HRM_CHECK(t->dtype == HRM_DTYPE_I32 && t->device == HRM_DEVICE_CPU && t->data, HRM_ERR_DTYPE,
             "sampler_next: %s must be an i32 CPU tensor", name);
   HRM_CHECK(t->ndim == ndim && t->shape[0] == B && (ndim == 1 || t->shape[1] == S),
             HRM_ERR_SHAPE, "sampler_next: %s has shape (%lld, %lld) in %d dims, expected (%lld%s"
             "%lld)", name, (long long)t->shape[0], (long long)t->shape[1], t->ndim, (long long)B,
             ndim == 2 ? ", " : ")", ndim == 2 ? (long long)S : 0LL);
   return HRM_OK;
}

/* Write example e of ds into batch row r (inputs, labels as i32; ignore_label_id -> -100). */
static void put_row(const hrm_dataset *ds, int64_t e, int32_t *in, int32_t *lab, int64_t r) {
   int64_t S = ds->meta.seq_len;
   int32_t *di = in + r * S;
   int32_t ign = ds->meta.has_ignore_label ? ds->meta.ignore_label_id : -100;
   if (ds->token_dtype == HRM_DTYPE_U8) {
      const uint8_t *si = (const uint8_t *)ds->a[A_INPUTS].data + e * S;
      for (int64_t j = 0; j < S; j++) di[j] = si[j];
      if (lab) {
         const uint8_t *sl = (const uint8_t *)ds->a[A_LABELS].data + e * S;
         int32_t *dl = lab + r * S;
         for (int64_t j = 0; j < S; j++) dl[j] = sl[j] == ign ? -100 : sl[j];
      }
   } else {
      const int32_t *si = (const int32_t *)ds->a[A_INPUTS].data + e * S;
      memcpy(di, si, (size_t)S * sizeof *di);
      if (lab) {
         const int32_t *sl = (const int32_t *)ds->a[A_LABELS].data + e * S;
         int32_t *dl = lab + r * S;
         for (int64_t j = 0; j < S; j++) dl[j] = sl[j] == ign ? -100 : sl[j];
      }
   }
}

/* One full train batch (spec §5.2), or *count = 0 once max_epochs are done. */
static int next_train(hrm_sampler *s, int32_t *count, int32_t *in, int32_t *lab, int32_t *pid) {
   const hrm_dataset *ds = s->ds;
   const int32_t *gidx = ds->a[A_GIDX].data, *pidx = ds->a[A_PIDX].data;
   const int32_t *pids = ds->a[A_PIDS].data;
   int32_t B = s->cfg.batch_size;
   for (int spent = 0;; spent++) { /* epochs ended during this call without a full batch */
      if (s->cfg.max_epochs > 0 && s->epoch >= s->cfg.max_epochs) {
         *count = 0;
         return HRM_OK;
      }
      HRM_CHECK(spent <= 1000, HRM_ERR_STATE, "sampler_next: 1000 epochs in a row yielded no "
                "full batch of %d", B);
      if (s->order_epoch != s->epoch) start_epoch(s, s->epoch);
      /* choose the rows first (spec §5.2), then copy them with the next rows prefetched:
       * on a large dataset nearly every row is a cache and TLB miss */
      int32_t filled = 0;
      while (s->index < s->order_len && filled < B) {
         if (s->index + 16 < s->order_len) __builtin_prefetch(&gidx[s->order[s->index + 16]]);
         int32_t g = s->order[s->index++];
         int32_t p = gidx[g] + (int32_t)below(&s->rng, (uint64_t)(gidx[g + 1] - gidx[g]));
         int32_t start = pidx[p], size = pidx[p + 1] - pidx[p];
         int32_t take = size < B - filled ? size : B - filled;
         for (int32_t i = 0; i < size; i++) s->scratch[i] = i;
         for (int32_t i = 0; i < take; i++) { /* partial Fisher-Yates: without replacement */
            int32_t j = i + (int32_t)below(&s->rng, (uint64_t)(size - i));
            int32_t t = s->scratch[i];
            s->scratch[i] = s->scratch[j];
            s->scratch[j] = t;
            s->rows[filled] = start + s->scratch[i];
            s->row_puzzle[filled] = p;
            filled++;
         }
      }
      if (filled == B) {
         size_t row_bytes = (size_t)ds->meta.seq_len * hrm_dtype_size(ds->token_dtype);
         const char *tin = ds->a[A_INPUTS].data, *tlab = ds->a[A_LABELS].data;
         for (int32_t r = 0; r < B; r++) {
            if (r + 8 < B) {
               size_t at = (size_t)s->rows[r + 8] * row_bytes;
               __builtin_prefetch(tin + at);
               __builtin_prefetch(tin + at + row_bytes - 1);
               if (lab) {
                  __builtin_prefetch(tlab + at);
                  __builtin_prefetch(tlab + at + row_bytes - 1);
               }
               if (pid) __builtin_prefetch(&pids[s->row_puzzle[r + 8]]);
            }
            put_row(ds, s->rows[r], in, lab, r);
            if (pid) pid[r] = pids[s->row_puzzle[r]];
         }
         *count = B;
         return HRM_OK;
      }
      /* the order is spent: the incomplete batch is dropped and the next epoch begins */
      s->epoch++;
      s->index = 0;
   }
}

/* The next B examples in order; rows past the end are padding. */
static int next_test(hrm_sampler *s, int32_t *count, int32_t *in, int32_t *lab, int32_t *pid) {
   const hrm_dataset *ds = s->ds;
   const int32_t *pidx = ds->a[A_PIDX].data, *pids = ds->a[A_PIDS].data;
   int64_t B = s->cfg.batch_size, S = ds->meta.seq_len, N = ds->n, P = ds->n_puzzles;
   if ((s->cfg.max_epochs > 0 && s->epoch >= s->cfg.max_epochs) || N == 0) {
      *count = 0;
      return HRM_OK;
   }
   int64_t start = s->index, rows = N - start < B ? N - start : B;
   /* the puzzle holding `start`: the last p with pidx[p] <= start (searchsorted right - 1) */
   int64_t lo = 0, hi = P; /* pidx[lo] <= start < pidx[hi] */
   while (hi - lo > 1) {
      int64_t mid = lo + (hi - lo) / 2;
      if (pidx[mid] <= start) lo = mid;
      else hi = mid;
   }
   int64_t p = lo;
   for (int64_t r = 0; r < rows; r++) {
      int64_t e = start + r;
      while (p + 1 < P && e >= pidx[p + 1]) p++;
      put_row(ds, e, in, lab, r);
      if (pid) pid[r] = pids[p];
   }
   for (int64_t r = rows; r < B; r++) {
      for (int64_t j = 0; j < S; j++) in[r * S + j] = ds->meta.pad_id;
      if (lab)
         for (int64_t j = 0; j < S; j++) lab[r * S + j] = -100;
      if (pid) pid[r] = ds->meta.blank_identifier_id;
   }
   s->index = start + B;
   if (s->index >= N) {
      s->epoch++;
      s->index = 0;
   }
   *count = (int32_t)rows;
   return HRM_OK;
}

int hrm_sampler_next(int32_t *count, hrm_tensor *inputs, hrm_tensor *labels,
                     hrm_tensor *puzzle_identifiers, hrm_sampler *s) {
   HRM_CHECK(count && inputs && s, HRM_ERR_ARG, "sampler_next: count, inputs or sampler is NULL");
   *count = 0;
   HRM_CHECK(s->ds_version == s->ds->version, HRM_ERR_STATE, "sampler_next: the dataset grew "
             "after this sampler was made\n---> HINT: make a new sampler after add");
   int64_t B = s->cfg.batch_size, S = s->ds->meta.seq_len;
   HRM_TRY(verify_pending(s->ds));
   HRM_TRY(check_out(inputs, "inputs", 2, B, S));
   if (labels) HRM_TRY(check_out(labels, "labels", 2, B, S));
   if (puzzle_identifiers) HRM_TRY(check_out(puzzle_identifiers, "puzzle_identifiers", 1, B, S));
   int32_t *in = inputs->data, *lab = labels ? labels->data : NULL;
   int32_t *pid = puzzle_identifiers ? puzzle_identifiers->data : NULL;
   return s->cfg.train ? next_train(s, count, in, lab, pid) : next_test(s, count, in, lab, pid);
}

int hrm_sampler_get_state(hrm_sampler_state *out, const hrm_sampler *s) {
   HRM_CHECK(out && s, HRM_ERR_ARG, "sampler_get_state: out or sampler is NULL");
   out->seed = s->cfg.seed;
   out->epoch = s->epoch;
   out->index = s->index;
   out->draws = s->cfg.train && s->order_epoch == s->epoch ? s->rng.counter : 0;
   return HRM_OK;
}

int hrm_sampler_set_state(hrm_sampler *s, const hrm_sampler_state *st) {
   HRM_CHECK(s && st, HRM_ERR_ARG, "sampler_set_state: sampler or state is NULL");
   HRM_CHECK(st->seed == s->cfg.seed, HRM_ERR_ARG, "sampler_set_state: the state is from a "
             "sampler seeded %llu, this one is seeded %llu", (unsigned long long)st->seed,
             (unsigned long long)s->cfg.seed);
   HRM_CHECK(st->epoch >= 0, HRM_ERR_RANGE, "sampler_set_state: epoch %lld is negative",
             (long long)st->epoch);
   /* train: index == order_len means the order is spent; test wraps to 0 at the end */
   int64_t limit = s->cfg.train ? s->order_len : (s->ds->n > 0 ? s->ds->n - 1 : 0);
   HRM_CHECK(st->index >= 0 && st->index <= limit, HRM_ERR_RANGE, "sampler_set_state: index "
             "%lld is outside 0..%lld", (long long)st->index, (long long)limit);
   if (s->cfg.train && (st->draws > 0 || st->index > 0)) {
      /* redraw the epoch's order, then continue its stream where the state left it */
      hrm_rng saved = s->rng;
      int64_t saved_epoch = s->order_epoch;
      start_epoch(s, st->epoch);
      uint64_t base = s->rng.counter;
      if (st->draws < base) {
         if (saved_epoch >= 0) start_epoch(s, saved_epoch);
         s->order_epoch = saved_epoch;
         s->rng = saved;
         return HRM_FAIL(HRM_ERR_RANGE, "sampler_set_state: draws %llu is fewer than the %llu "
                         "drawing epoch %lld's order takes", (unsigned long long)st->draws,
                         (unsigned long long)base, (long long)st->epoch);
      }
      s->rng.counter = st->draws;
   } else if (s->cfg.train) {
      s->order_epoch = -1; /* drawn on the next call */
   }
   s->epoch = st->epoch;
   s->index = st->index;
   return HRM_OK;
}
