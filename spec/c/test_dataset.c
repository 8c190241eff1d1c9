/* test_dataset.c — the dataset engine: build and validation, sampling, .npy, folders, .hrmd.
 *
 * Sampling is checked by its semantics (HRM_SPEC §5.2) on a dataset whose tokens spell out
 * (group, puzzle, example): full train batches, one run per group per epoch, examples without
 * replacement, exact reproduction per seed and after a state restore; test batches in order
 * with padding. Every .npy dtype in both byte orders is written here; malformed .npy, JSON and
 * .hrmd inputs must fail with a message, never crash (run under HRM_SANITIZE=ON to be strict).
 * Files live in a mkdtemp folder; spec/fuzz/{regress,corpus}/{npy,hrmd,dataset_json} replay.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tmpfiles.h"
#include "fileio.h"

/* internal, defined in core/npy.c and core/hrmd.c */
int hrm_npy_load_memory(hrm_tensor **out, const void *data, size_t size, const char *label);
int hrm_dataset_parse_json(hrm_dataset_meta *meta, char set[64], const void *data, size_t size,
                           const char *label);
int hrm_dataset_parse_identifiers(hrm_dataset *ds, const void *data, size_t size,
                                  const char *label);
int hrm_dataset_open_hrmd_memory(hrm_dataset **out, const void *data, size_t size,
                                 const char *label);
void hrm_hrmd_set_bin_limit(size_t limit);

static int write_text(const char *path, const char *text) {
   return write_raw(path, text, strlen(text));
}

static int has_error(const char *needle) {
   int ok = hrm_last_error()[0] && (!needle || strstr(hrm_last_error(), needle));
   if (!ok) fprintf(stderr, "  message '%s' lacks '%s'\n", hrm_last_error(), needle);
   return ok;
}

static hrm_tensor *i32_tensor(int32_t ndim, int64_t d0, int64_t d1) {
   hrm_tensor *t = NULL;
   int64_t shape[2] = {d0, d1};
   hrm_tensor_new(&t, HRM_DTYPE_I32, ndim, shape);
   return t;
}

static hrm_dataset_meta meta_of(int32_t V, int32_t S, int32_t ids) {
   hrm_dataset_meta m;
   memset(&m, 0, sizeof m);
   m.vocab_size = V;
   m.seq_len = S;
   m.num_puzzle_identifiers = ids;
   m.has_ignore_label = 1;
   return m;
}

/* ---- a dataset that spells out where each example comes from -----------------------------------
 * Group g holds g % 3 + 1 puzzles; puzzle p holds p % 4 + 1 examples and has identifier p + 1.
 * Example row: [g, p, k (index inside the puzzle), then (e + j) % 7]; labels (e + j) % 5, so
 * zeros appear and come out as -100 (ignore_label_id 0). */

#define SP_S 6

typedef struct spelled {
   int32_t G, P, N;
   int32_t gidx[64], pidx[160], pids[160], group_of[160];
   uint8_t inputs[600 * SP_S], labels[600 * SP_S];
} spelled;

static void make_spelled(spelled *d, int32_t G) {
   memset(d, 0, sizeof *d);
   d->G = G;
   for (int32_t g = 0; g < G; g++) {
      d->gidx[g] = d->P;
      for (int32_t q = 0; q < g % 3 + 1; q++) {
         int32_t p = d->P++;
         d->pidx[p] = d->N;
         d->pids[p] = p + 1;
         d->group_of[p] = g;
         for (int32_t k = 0; k < p % 4 + 1; k++) {
            int32_t e = d->N++;
            for (int32_t j = 0; j < SP_S; j++) {
               int32_t v = j == 0 ? g : j == 1 ? p : j == 2 ? k : (e + j) % 7;
               d->inputs[e * SP_S + j] = (uint8_t)v;
               d->labels[e * SP_S + j] = (uint8_t)((e + j) % 5);
            }
         }
      }
   }
   d->gidx[G] = d->P;
   d->pidx[d->P] = d->N;
}

static hrm_dataset *spelled_dataset(const spelled *d) {
   hrm_dataset_meta m = meta_of(256, SP_S, d->P + 1);
   hrm_dataset *ds = NULL;
   if (hrm_dataset_new(&ds, &m) != HRM_OK) return NULL;
   hrm_dataset_arrays a = {.inputs = d->inputs, .labels = d->labels,
                           .puzzle_identifiers = d->pids, .puzzle_indices = d->pidx,
                           .group_indices = d->gidx, .n = d->N, .n_puzzles = d->P,
                           .n_groups = d->G, .token_dtype = HRM_DTYPE_U8};
   if (hrm_dataset_add(ds, &a) != HRM_OK) {
      hrm_dataset_free(ds);
      return NULL;
   }
   return ds;
}

/* ---- build and validation ------------------------------------------------------------------- */

static void test_build(void) {
   hrm_dataset *ds = NULL;
   hrm_dataset_meta m = meta_of(10, 4, 5);
   hrm_dataset_meta bad = m;
   bad.vocab_size = 0;
   CHECK(hrm_dataset_new(&ds, &bad) == HRM_ERR_ARG && ds == NULL && has_error("vocab_size"));
   bad = m;
   bad.pad_id = 10;
   CHECK(hrm_dataset_new(&ds, &bad) == HRM_ERR_ARG && has_error("pad_id"));
   bad = m;
   bad.blank_identifier_id = 5;
   CHECK(hrm_dataset_new(&ds, &bad) == HRM_ERR_ARG && has_error("blank_identifier_id"));
   CHECK(hrm_dataset_new(&ds, NULL) == HRM_ERR_ARG);

   CHECK_OK(hrm_dataset_new(&ds, &m));
   hrm_dataset_arrays a;
   CHECK_OK(hrm_dataset_get_arrays(&a, ds));
   CHECK(a.n == 0 && a.n_puzzles == 0 && a.n_groups == 0 && a.token_dtype == HRM_DTYPE_U8);
   CHECK(a.puzzle_indices[0] == 0 && a.group_indices[0] == 0);

   /* 3 examples in 2 puzzles in 1 group, then 2 more with the CSR arrays left out */
   uint8_t in[20], lab[20];
   for (int i = 0; i < 20; i++) {
      in[i] = (uint8_t)(i % 10);
      lab[i] = (uint8_t)((i * 3) % 10);
   }
   int32_t pidx[3] = {0, 2, 3}, gidx[2] = {0, 2}, pids[2] = {4, 1};
   hrm_dataset_arrays add = {.inputs = in, .labels = lab, .puzzle_identifiers = pids,
                             .puzzle_indices = pidx, .group_indices = gidx, .n = 3,
                             .n_puzzles = 2, .n_groups = 1, .token_dtype = HRM_DTYPE_U8};
   CHECK_OK(hrm_dataset_add(ds, &add));
   hrm_dataset_arrays add2 = {.inputs = in + 12, .labels = lab + 12, .n = 2,
                              .token_dtype = HRM_DTYPE_U8};
   CHECK_OK(hrm_dataset_add(ds, &add2));
   CHECK_OK(hrm_dataset_get_arrays(&a, ds));
   CHECK(a.n == 5 && a.n_puzzles == 4 && a.n_groups == 3);
   int32_t want_p[5] = {0, 2, 3, 4, 5}, want_g[4] = {0, 2, 3, 4}, want_id[4] = {4, 1, 0, 0};
   CHECK(memcmp(a.puzzle_indices, want_p, sizeof want_p) == 0);
   CHECK(memcmp(a.group_indices, want_g, sizeof want_g) == 0);
   CHECK(memcmp(a.puzzle_identifiers, want_id, sizeof want_id) == 0);
   CHECK(memcmp(a.inputs, in, 12) == 0 && memcmp((const uint8_t *)a.inputs + 12, in + 12, 8) == 0);
   CHECK(memcmp(a.labels, lab, 20) == 0);
   hrm_dataset_meta got;
   CHECK_OK(hrm_dataset_get_meta(&got, ds));
   CHECK(got.total_groups == 3 && got.mean_puzzle_examples == 1.25 && got.vocab_size == 10);

   /* invalid adds leave the dataset as it was */
   hrm_dataset_arrays b = add;
   int32_t p_bad0[3] = {1, 2, 3}, p_dec[3] = {0, 2, 1}, p_end[3] = {0, 1, 2};
   b.puzzle_indices = p_bad0;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_FORMAT && has_error("puzzle_indices[0]"));
   b.puzzle_indices = p_dec;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_FORMAT && has_error("monotone"));
   b.puzzle_indices = p_end;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_FORMAT && has_error("ends at 2"));
   b = add;
   int32_t g_flat[2] = {0, 0}, g_end[3] = {0, 1, 1};
   b.group_indices = g_flat;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_FORMAT && has_error("group_indices"));
   b.group_indices = g_end;
   b.n_groups = 2;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_FORMAT && has_error("group_indices"));
   b = add;
   int32_t ids_bad[2] = {0, 5};
   b.puzzle_identifiers = ids_bad;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_RANGE && has_error("puzzle_identifiers[1] = 5"));
   b = add;
   uint8_t in_bad[12];
   memcpy(in_bad, in, 12);
   in_bad[9] = 10;
   b.inputs = in_bad;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_RANGE && has_error("inputs[2, 1] = 10"));
   b = add;
   b.labels = in_bad;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_RANGE && has_error("labels[2, 1] = 10"));
   b = add;
   b.n = -1;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_RANGE);
   b = add;
   b.token_dtype = HRM_DTYPE_F32;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_DTYPE);
   b = add2;
   b.n_puzzles = 7;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_ARG && has_error("n_puzzles"));
   b = add;
   b.labels = NULL;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_ARG && has_error("labels is NULL"));
   /* i32 tokens into u8 storage: -100 cannot be stored */
   int32_t in32[12], lab32[12];
   for (int i = 0; i < 12; i++) in32[i] = lab32[i] = i % 10;
   lab32[5] = -100;
   b = add;
   b.inputs = in32;
   b.labels = lab32;
   b.token_dtype = HRM_DTYPE_I32;
   CHECK(hrm_dataset_add(ds, &b) == HRM_ERR_RANGE && has_error("cannot be stored as u8"));
   lab32[5] = 0;
   CHECK_OK(hrm_dataset_add(ds, &b)); /* narrowed */
   CHECK_OK(hrm_dataset_get_arrays(&a, ds));
   CHECK(a.n == 8 && ((const uint8_t *)a.inputs)[5 * 4 + 11] == 1);
   CHECK(hrm_dataset_add(NULL, &add) == HRM_ERR_ARG && hrm_dataset_add(ds, NULL) == HRM_ERR_ARG);

   /* identifiers */
   CHECK_OK(hrm_dataset_set_identifier(ds, 2, "two"));
   CHECK(strcmp(hrm_dataset_identifier(ds, 2), "two") == 0 && !hrm_dataset_identifier(ds, 1));
   CHECK(hrm_dataset_set_identifier(ds, 5, "x") == HRM_ERR_RANGE);
   CHECK_OK(hrm_dataset_set_identifier(ds, 2, NULL));
   CHECK(hrm_dataset_identifier(ds, 2) == NULL && hrm_dataset_identifier(NULL, 0) == NULL);
   hrm_dataset_free(ds);
   hrm_dataset_free(NULL);

   /* vocab > 256: i32 storage, u8 inputs widened; -100 labels kept */
   hrm_dataset_meta big = meta_of(300, 2, 1);
   CHECK_OK(hrm_dataset_new(&ds, &big));
   int32_t bi[4] = {299, 0, 5, 6}, bl[4] = {-100, 299, 0, 1};
   hrm_dataset_arrays ba = {.inputs = bi, .labels = bl, .n = 2, .token_dtype = HRM_DTYPE_I32};
   CHECK_OK(hrm_dataset_add(ds, &ba));
   uint8_t su[4] = {1, 2, 3, 4};
   hrm_dataset_arrays bu = {.inputs = su, .labels = su, .n = 2, .token_dtype = HRM_DTYPE_U8};
   CHECK_OK(hrm_dataset_add(ds, &bu));
   CHECK_OK(hrm_dataset_get_arrays(&a, ds));
   CHECK(a.token_dtype == HRM_DTYPE_I32 && a.n == 4);
   CHECK(((const int32_t *)a.inputs)[0] == 299 && ((const int32_t *)a.labels)[0] == -100);
   CHECK(((const int32_t *)a.inputs)[7] == 4);
   bi[1] = 300;
   CHECK(hrm_dataset_add(ds, &ba) == HRM_ERR_RANGE);
   hrm_dataset_free(ds);
}

/* ---- train sampling ------------------------------------------------------------------------- */

typedef struct batch_buf {
   hrm_tensor *in, *lab, *pid;
} batch_buf;

static batch_buf batch_new(int64_t B, int64_t S) {
   batch_buf b = {i32_tensor(2, B, S), i32_tensor(2, B, S), i32_tensor(1, B, 0)};
   return b;
}

static void batch_free(batch_buf *b) {
   hrm_tensor_free(b->in);
   hrm_tensor_free(b->lab);
   hrm_tensor_free(b->pid);
}

/* A digest of the batch contents, to compare sequences. */
static uint64_t batch_hash(const batch_buf *b) {
   uint64_t h = 1469598103934665603ull;
   const hrm_tensor *ts[3] = {b->in, b->lab, b->pid};
   for (int k = 0; k < 3; k++) {
      const int32_t *p = ts[k]->data;
      for (int64_t i = 0; i < ts[k]->numel; i++) h = (h ^ (uint32_t)p[i]) * 1099511628211ull;
   }
   return h;
}

static void test_train_sampling(void) {
   static spelled d;
   make_spelled(&d, 40);
   hrm_dataset *ds = spelled_dataset(&d);
   CHECK(ds != NULL);
   if (!ds) return;
   const int32_t B = 16, EPOCHS = 30;
   hrm_sampler_config cfg = {.batch_size = B, .train = 1, .max_epochs = EPOCHS, .seed = 7};
   hrm_sampler *s;
   CHECK_OK(hrm_sampler_new(&s, ds, &cfg));
   batch_buf b = batch_new(B, SP_S);
   static uint8_t seen[64][64];   /* [epoch][group]: runs of that group */
   int32_t picked[160] = {0}, shuffled = 0, batches = 0, bad = 0;
   int32_t count;
   memset(seen, 0, sizeof seen);
   for (;;) {
      CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s));
      if (count == 0) break;
      batches++;
      hrm_sampler_state st;
      hrm_sampler_get_state(&st, s);
      const int32_t *in = b.in->data, *lab = b.lab->data, *pid = b.pid->data;
      if (count != B || st.epoch >= EPOCHS) bad++;
      for (int32_t r = 0; r < B;) {
         int32_t p = in[r * SP_S + 1], g = in[r * SP_S + 0], size = p % 4 + 1, run = 0;
         uint32_t used = 0;
         int identity = 1;
         while (r + run < B && in[(r + run) * SP_S + 1] == p) {
            int32_t row = r + run, k = in[row * SP_S + 2];
            if (k >= size || (used >> k & 1) || pid[row] != p + 1 || d.group_of[p] != g) bad++;
            if (k != run) identity = 0;
            used |= 1u << k;
            int32_t e = d.pidx[p] + k;
            for (int32_t j = 0; j < SP_S; j++) {
               int32_t want = d.labels[e * SP_S + j] == 0 ? -100 : d.labels[e * SP_S + j];
               if (lab[row * SP_S + j] != want || in[row * SP_S + j] != d.inputs[e * SP_S + j])
                  bad++;
            }
            run++;
         }
         if (r + run < B && run != size) bad++; /* only the last run of a batch is cut short */
         if (run == size && size > 2 && !identity) shuffled++;
         if (st.epoch < 64 && ++seen[st.epoch][g] > 1) bad++; /* one run per group per epoch */
         picked[p]++;
         r += run;
      }
   }
   CHECK(bad == 0);
   CHECK(batches > EPOCHS * 3);
   CHECK(shuffled > 0); /* examples come out in random order */
   for (int32_t p = 0; p < d.P; p++) CHECK(picked[p] > 0); /* every puzzle variant is drawn */
   for (int32_t e = 0; e < EPOCHS; e++) {
      /* every group is in a returned batch or the dropped partial one (< B rows) */
      int32_t groups = 0;
      for (int32_t g = 0; g < d.G; g++) groups += seen[e][g] > 0;
      CHECK(groups >= d.G - (B - 1));
   }
   CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s));
   CHECK(count == 0);
   hrm_sampler_free(s);

   /* same seed: the same sequence; another seed: another */
   uint64_t h1[40], h2[40], h3[40];
   hrm_sampler *s1, *s2, *s3;
   cfg.max_epochs = 0;
   CHECK_OK(hrm_sampler_new(&s1, ds, &cfg));
   CHECK_OK(hrm_sampler_new(&s2, ds, &cfg));
   cfg.seed = 8;
   CHECK_OK(hrm_sampler_new(&s3, ds, &cfg));
   int differ = 0;
   for (int i = 0; i < 40; i++) {
      hrm_sampler_next(&count, b.in, b.lab, b.pid, s1);
      h1[i] = batch_hash(&b);
      hrm_sampler_next(&count, b.in, b.lab, b.pid, s2);
      h2[i] = batch_hash(&b);
      hrm_sampler_next(&count, b.in, b.lab, b.pid, s3);
      h3[i] = batch_hash(&b);
      differ += h1[i] != h3[i];
   }
   CHECK(memcmp(h1, h2, sizeof h1) == 0);
   CHECK(differ > 30);
   hrm_sampler_free(s3);

   /* state: save after 13 batches (mid epoch) and after 25; restore into fresh samplers */
   cfg.seed = 7;
   for (int at = 13; at <= 25; at += 12) {
      hrm_sampler *a, *c;
      CHECK_OK(hrm_sampler_new(&a, ds, &cfg));
      for (int i = 0; i < at; i++) hrm_sampler_next(&count, b.in, b.lab, b.pid, a);
      hrm_sampler_state st;
      CHECK_OK(hrm_sampler_get_state(&st, a));
      CHECK(st.seed == 7 && st.epoch > 0 && st.draws > 0);
      CHECK_OK(hrm_sampler_new(&c, ds, &cfg));
      CHECK_OK(hrm_sampler_set_state(c, &st));
      int same = 1;
      for (int i = at; i < 40; i++) {
         hrm_sampler_next(&count, b.in, b.lab, b.pid, c);
         same &= batch_hash(&b) == h1[i];
      }
      CHECK(same);
      /* a mismatched state is refused and leaves the sampler as it was */
      hrm_sampler_state wrong = st;
      wrong.seed = 99;
      CHECK(hrm_sampler_set_state(a, &wrong) == HRM_ERR_ARG && has_error("seeded 99"));
      wrong = st;
      wrong.index = 1 << 20;
      CHECK(hrm_sampler_set_state(a, &wrong) == HRM_ERR_RANGE);
      wrong = st;
      wrong.draws = 1;
      CHECK(hrm_sampler_set_state(a, &wrong) == HRM_ERR_RANGE && has_error("draws"));
      hrm_sampler_next(&count, b.in, b.lab, b.pid, a);
      CHECK(batch_hash(&b) == h1[at]);
      hrm_sampler_free(a);
      hrm_sampler_free(c);
   }
   /* the start state of a fresh sampler restores too */
   hrm_sampler_state st0;
   CHECK_OK(hrm_sampler_get_state(&st0, s2));
   CHECK_OK(hrm_sampler_set_state(s2, &(hrm_sampler_state){.seed = 7}));
   hrm_sampler_next(&count, b.in, b.lab, b.pid, s2);
   CHECK(batch_hash(&b) == h1[0]);

   /* epochs_per_iter joins permutations: a group may then appear once per permutation */
   cfg.epochs_per_iter = 3;
   cfg.max_epochs = 1;
   hrm_sampler *e3;
   CHECK_OK(hrm_sampler_new(&e3, ds, &cfg));
   int n3 = 0;
   while (hrm_sampler_next(&count, b.in, b.lab, b.pid, e3) == HRM_OK && count) n3++;
   CHECK(n3 >= 3 * (batches / EPOCHS) - 3);
   hrm_sampler_free(e3);

   /* misuse */
   hrm_tensor *wrong = i32_tensor(2, B + 1, SP_S);
   CHECK(hrm_sampler_next(&count, wrong, NULL, NULL, s1) == HRM_ERR_SHAPE && has_error("inputs"));
   hrm_tensor *f32 = NULL;
   hrm_tensor_new(&f32, HRM_DTYPE_F32, 2, (int64_t[]){B, SP_S});
   CHECK(hrm_sampler_next(&count, f32, NULL, NULL, s1) == HRM_ERR_DTYPE);
   CHECK(hrm_sampler_next(&count, b.in, b.lab, wrong, s1) == HRM_ERR_SHAPE);
   CHECK_OK(hrm_sampler_next(&count, b.in, NULL, NULL, s1)); /* labels and ids optional */
   hrm_tensor_free(wrong);
   hrm_tensor_free(f32);
   cfg = (hrm_sampler_config){.batch_size = 0, .train = 1};
   CHECK(hrm_sampler_new(&s3, ds, &cfg) == HRM_ERR_ARG);
   hrm_sampler_free(s3);
   cfg.batch_size = 10000; /* more than an epoch can yield */
   CHECK(hrm_sampler_new(&s3, ds, &cfg) == HRM_ERR_ARG && has_error("epoch can yield"));

   /* the dataset outlives its caller's reference while samplers use it; growth is noticed */
   hrm_dataset_free(ds);
   CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s1));
   CHECK(count == B);
   hrm_sampler_free(s1);
   hrm_sampler_free(s2);

   ds = spelled_dataset(&d);
   cfg = (hrm_sampler_config){.batch_size = 4, .train = 1};
   CHECK_OK(hrm_sampler_new(&s1, ds, &cfg));
   hrm_dataset_arrays more = {.inputs = d.inputs, .labels = d.labels, .n = 1,
                              .token_dtype = HRM_DTYPE_U8};
   CHECK_OK(hrm_dataset_add(ds, &more));
   batch_buf b4 = batch_new(4, SP_S);
   CHECK(hrm_sampler_next(&count, b4.in, b4.lab, b4.pid, s1) == HRM_ERR_STATE &&
         has_error("grew"));
   hrm_sampler_free(s1);
   hrm_dataset_free(ds);
   batch_free(&b4);
   batch_free(&b);
}

/* ---- test sampling -------------------------------------------------------------------------- */

static void test_test_sampling(void) {
   static spelled d;
   make_spelled(&d, 9);
   hrm_dataset *ds = spelled_dataset(&d);
   const int32_t B = 7;
   hrm_sampler_config cfg = {.batch_size = B, .train = 0, .max_epochs = 2};
   hrm_sampler *s;
   CHECK_OK(hrm_sampler_new(&s, ds, &cfg));
   batch_buf b = batch_new(B, SP_S);
   int32_t count, bad = 0, total = 0, nb = 0;
   for (int pass = 0; pass < 2; pass++) {
      for (int32_t start = 0; start < d.N; start += B) {
         CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s));
         nb++;
         int32_t rows = d.N - start < B ? d.N - start : B;
         if (count != rows) bad++;
         const int32_t *in = b.in->data, *lab = b.lab->data, *pid = b.pid->data;
         for (int32_t r = 0; r < B; r++) {
            int32_t e = start + r;
            for (int32_t j = 0; j < SP_S; j++) {
               int32_t wi = r < rows ? d.inputs[e * SP_S + j] : 0;
               int32_t wl = r < rows && d.labels[e * SP_S + j] ? d.labels[e * SP_S + j] : -100;
               if (in[r * SP_S + j] != wi || lab[r * SP_S + j] != wl) bad++;
            }
            if (pid[r] != (r < rows ? in[r * SP_S + 1] + 1 : 0)) bad++;
         }
         total += count;
      }
   }
   CHECK(bad == 0 && total == 2 * d.N && d.N % B != 0);
   CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s));
   CHECK(count == 0);
   hrm_sampler_state st;
   CHECK_OK(hrm_sampler_get_state(&st, s));
   CHECK(st.epoch == 2 && st.index == 0);
   /* restore to the third batch of the first pass */
   st.epoch = 0;
   st.index = 2 * B;
   CHECK_OK(hrm_sampler_set_state(s, &st));
   CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s));
   CHECK(count == B && ((int32_t *)b.in->data)[0] == d.inputs[2 * B * SP_S]);
   hrm_sampler_free(s);
   hrm_dataset_free(ds);
   batch_free(&b);

   /* empty puzzles are skipped when finding each row's puzzle; padding uses pad and blank */
   hrm_dataset_meta m = meta_of(10, 2, 9);
   m.pad_id = 3;
   m.blank_identifier_id = 8;
   m.has_ignore_label = 0;
   CHECK_OK(hrm_dataset_new(&ds, &m));
   uint8_t tok[6] = {1, 2, 3, 4, 0, 0};
   int32_t pidx[5] = {0, 0, 2, 2, 3}, gidx[3] = {0, 2, 4}, pids[4] = {5, 6, 7, 1};
   hrm_dataset_arrays a = {.inputs = tok, .labels = tok, .puzzle_identifiers = pids,
                           .puzzle_indices = pidx, .group_indices = gidx, .n = 3,
                           .n_puzzles = 4, .n_groups = 2, .token_dtype = HRM_DTYPE_U8};
   CHECK_OK(hrm_dataset_add(ds, &a));
   cfg = (hrm_sampler_config){.batch_size = 2, .train = 0};
   CHECK_OK(hrm_sampler_new(&s, ds, &cfg));
   b = batch_new(2, 2);
   int32_t *pid = b.pid->data, *in = b.in->data, *lab = b.lab->data;
   CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s));
   CHECK(count == 2 && pid[0] == 6 && pid[1] == 6);
   CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s));
   CHECK(count == 1 && pid[0] == 1 && pid[1] == 8 && in[2] == 3 && in[3] == 3);
   CHECK(lab[0] == 0 && lab[2] == -100); /* no ignore label: 0 stays 0 */
   CHECK_OK(hrm_sampler_next(&count, b.in, b.lab, b.pid, s)); /* max_epochs 0: wraps around */
   CHECK(count == 2 && in[0] == 1);
   hrm_sampler_free(s);
   /* train over it: groups of {empty, 2} and {empty, 1} examples */
   cfg = (hrm_sampler_config){.batch_size = 3, .train = 1, .seed = 1};
   CHECK_OK(hrm_sampler_new(&s, ds, &cfg));
   hrm_sampler_free(s);
   hrm_sampler_free(NULL);
   hrm_dataset_free(ds);
   batch_free(&b);
}

/* ---- .npy ----------------------------------------------------------------------------------- */

/* A .npy image: magic, version, header length, dict padded with spaces to 64 and '\n'. */
static size_t npy_image(uint8_t *buf, int version, const char *dict, const void *data, size_t n) {
   size_t pre = version == 1 ? 10 : 12, len = strlen(dict);
   size_t total = pre + len + 1;
   size_t padded = (total + 63) / 64 * 64;
   memcpy(buf, "\x93NUMPY", 6);
   buf[6] = (uint8_t)version;
   buf[7] = 0;
   size_t hlen = padded - pre;
   buf[8] = (uint8_t)hlen;
   buf[9] = (uint8_t)(hlen >> 8);
   if (version > 1) buf[10] = buf[11] = 0;
   memcpy(buf + pre, dict, len);
   memset(buf + pre + len, ' ', padded - pre - len - 1);
   buf[padded - 1] = '\n';
   if (n) memcpy(buf + padded, data, n);
   return padded + n;
}

static size_t npy_simple(uint8_t *buf, const char *descr, const char *shape, const void *data,
                         size_t n, int version) {
   char dict[256];
   snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
            shape);
   return npy_image(buf, version, dict, data, n);
}

/* Store v as `size` bytes, little- or big-endian. */
__attribute__((noinline)) static void put(uint8_t *p, uint64_t v, int size, int big) {
   for (int i = 0; i < size; i++) p[big ? size - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

static void test_npy(void) {
   static const struct {
      const char *code;  /* kind and size */
      int32_t dtype;     /* hrm dtype after loading */
   } types[] = {{"u1", HRM_DTYPE_U8},  {"i1", HRM_DTYPE_I32}, {"i2", HRM_DTYPE_I32},
                {"u2", HRM_DTYPE_I32}, {"i4", HRM_DTYPE_I32}, {"u4", HRM_DTYPE_I64},
                {"i8", HRM_DTYPE_I64}, {"u8", HRM_DTYPE_I64}, {"f4", HRM_DTYPE_F32},
                {"f8", HRM_DTYPE_F64}};
   static uint8_t buf[4096];
   const double vals[6] = {0, 1, 2, 100, -3, 77};
   for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
      int size = types[t].code[1] - '0';
      char kind = types[t].code[0];
      for (int big = 0; big < (size == 1 ? 1 : 2); big++) {
         for (int version = 1; version <= 3; version++) {
            uint8_t data[48];
            for (int i = 0; i < 6; i++) {
               double v = vals[i];
               if (kind == 'u' && v < 0) v = size == 1 ? 255 : 65535;
               uint64_t bits;
               if (kind == 'f' && size == 4) {
                  float f = (float)v;
                  uint32_t u;
                  memcpy(&u, &f, 4);
                  bits = u;
               } else if (kind == 'f') {
                  memcpy(&bits, &v, 8);
               } else {
                  bits = (uint64_t)(int64_t)v;
               }
               put(data + i * size, bits, size, big);
            }
            char descr[8];
            snprintf(descr, sizeof descr, "%c%s", size == 1 ? '|' : big ? '>' : '<',
                     types[t].code);
            size_t n = npy_simple(buf, descr, "(2, 3)", data, (size_t)(6 * size), version);
            const char *path = tmp_path("a.npy");
            write_raw(path, buf, n);
            hrm_tensor *x = NULL;
            int rc = hrm_npy_load(&x, path);
            CHECK_OK(rc);
            if (rc != HRM_OK) continue;
            int ok = x->dtype == types[t].dtype && x->ndim == 2 && x->shape[0] == 2 &&
                     x->shape[1] == 3;
            for (int i = 0; i < 6 && ok; i++) {
               double want = vals[i];
               if (kind == 'u' && want < 0) want = size == 1 ? 255 : 65535;
               ok = hrm_tensor_get(x, i) == want;
            }
            if (!ok) fprintf(stderr, "  npy %s v%d: wrong values\n", descr, version);
            CHECK(ok);
            hrm_tensor_free(x);
         }
      }
   }
   /* scalar, empty and 1-tuple shapes; Python 2's long sizes */
   hrm_tensor *x = NULL;
   int32_t one = 42;
   size_t n = npy_simple(buf, "<i4", "()", &one, 4, 1);
   CHECK_OK(hrm_npy_load_memory(&x, buf, n, "scalar"));
   CHECK(x && x->ndim == 0 && hrm_tensor_get(x, 0) == 42);
   hrm_tensor_free(x);
   n = npy_simple(buf, "<f4", "(0, 5)", NULL, 0, 1);
   CHECK_OK(hrm_npy_load_memory(&x, buf, n, "empty"));
   CHECK(x && x->numel == 0 && x->shape[1] == 5);
   hrm_tensor_free(x);
   n = npy_image(buf, 1, "{\"shape\":(1L,),\"fortran_order\":False,\"descr\":\"<i4\"}", &one, 4);
   CHECK_OK(hrm_npy_load_memory(&x, buf, n, "py2"));
   hrm_tensor_free(x);
   /* u8 values past the i64 range */
   uint64_t huge = UINT64_MAX;
   n = npy_simple(buf, "<u8", "(1,)", &huge, 8, 1);
   CHECK(hrm_npy_load_memory(&x, buf, n, "huge") == HRM_ERR_RANGE && x == NULL);

   /* malformed */
   static const struct {
      const char *dict;
      size_t data;
      const char *needle;
   } bad[] = {
      {"{'descr': '<i4', 'fortran_order': True, 'shape': (2,), }", 8, "Fortran"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (2), }", 8, "trailing comma"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", 8, "need 12"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", 8, "need 4"},
      {"{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", 8, "unsupported"},
      {"{'descr': '|i4', 'fortran_order': False, 'shape': (2,), }", 8, "unsupported"},
      {"{'descr': '<U4', 'fortran_order': False, 'shape': (2,), }", 8, "unsupported"},
      {"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured"},
      {"{'descr': '<i4', 'shape': (2,), }", 8, "fortran_order"},
      {"{'descr': '<i4', 'descr': '<i4', 'fortran_order': False, 'shape': (2,)}", 8, "twice"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unexpected key"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (-2,), }", 8, "size"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (02,), }", 8, "size"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), } x", 8, "after the dict"},
      {"{'descr': '<i4', 'fortran_order': false, 'shape': (2,), }", 8, "True or False"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (1,2,3,4,5), }", 480, "4 dim"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (99999999999,99999999999,99999,), }",
       8, "overflow"},
      {"{'descr': 'i4\\x00', 'fortran_order': False, 'shape': (2,), }", 8, NULL},
      {"['descr', '<i4']", 8, "'{'"},
      {"{'descr': '<i4' 'fortran_order': False, 'shape': (2,), }", 8, "expected ','"},
   };
   uint8_t zeros[512] = {0};
   for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      n = npy_image(buf, 1, bad[i].dict, zeros, bad[i].data);
      hrm_clear_error();
      int rc = hrm_npy_load_memory(&x, buf, n, "bad.npy");
      int ok = rc != HRM_OK && x == NULL && has_error(bad[i].needle);
      if (!ok) fprintf(stderr, "  bad npy %zu accepted or wrong message\n", i);
      CHECK(ok);
   }
   n = npy_simple(buf, "<i4", "(2,)", zeros, 8, 1);
   buf[6] = 4;
   CHECK(hrm_npy_load_memory(&x, buf, n, "v4") == HRM_ERR_FORMAT && has_error("version 4.0"));
   buf[6] = 1;
   buf[0] = 'X';
   CHECK(hrm_npy_load_memory(&x, buf, n, "magic") == HRM_ERR_FORMAT && has_error("magic"));
   buf[0] = 0x93;
   buf[8] = 0xff;
   buf[9] = 0xff;
   CHECK(hrm_npy_load_memory(&x, buf, n, "hlen") == HRM_ERR_FORMAT && has_error("claims"));
   n = npy_simple(buf, "<i4", "(2,)", zeros, 8, 1);
   for (size_t cut = 0; cut < n; cut++) CHECK(hrm_npy_load_memory(&x, buf, cut, "cut") != HRM_OK);
   for (size_t i = 0; i < n; i++) { /* bit flips: a clean result or an error, nothing else */
      for (int bit = 0; bit < 8; bit += 3) {
         buf[i] ^= (uint8_t)(1u << bit);
         if (hrm_npy_load_memory(&x, buf, n, "flip") == HRM_OK) hrm_tensor_free(x);
         buf[i] ^= (uint8_t)(1u << bit);
      }
   }
   CHECK(hrm_npy_load(&x, tmp_path("missing.npy")) == HRM_ERR_IO && has_error("missing.npy"));
}

/* ---- reference folders ---------------------------------------------------------------------- */

static void write_npy_file(const char *dir, const char *name, const char *descr, const char *shape,
                           const void *data, size_t n) {
   static uint8_t buf[1 << 16];
   char path[512];
   snprintf(path, sizeof path, "%s/%s", dir, name);
   size_t k = npy_simple(buf, descr, shape, data, n, 1);
   write_raw(path, buf, k);
}

static const char *good_json =
   "{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6, "
   "\"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
   "\"mean_puzzle_examples\": 2.0, \"sets\": [\"all\"]}";

/* The refdir fixture's values (spec/fixtures/data/refdir/README.md). */
static int check_refdir(const hrm_dataset *ds) {
   hrm_dataset_arrays a;
   hrm_dataset_meta m;
   if (!ds || hrm_dataset_get_arrays(&a, ds) || hrm_dataset_get_meta(&m, ds)) return 0;
   if (a.n != 8 || a.n_puzzles != 4 || a.n_groups != 2 || a.token_dtype != HRM_DTYPE_U8) return 0;
   if (m.vocab_size != 6 || m.seq_len != 16 || m.num_puzzle_identifiers != 4 ||
       !m.has_ignore_label || m.ignore_label_id != 0)
      return 0;
   const uint8_t *in = a.inputs, *lab = a.labels;
   for (int e = 0; e < 8; e++)
      for (int j = 0; j < 16; j++)
         if (in[e * 16 + j] != (3 * e + j) % 6 || lab[e * 16 + j] != (e + 2 * j) % 6) return 0;
   int32_t pidx[5] = {0, 2, 3, 6, 8}, gidx[3] = {0, 2, 4}, pids[4] = {1, 2, 3, 1};
   return memcmp(a.puzzle_indices, pidx, sizeof pidx) == 0 &&
          memcmp(a.group_indices, gidx, sizeof gidx) == 0 &&
          memcmp(a.puzzle_identifiers, pids, sizeof pids) == 0;
}

static void test_folders(void) {
   hrm_dataset *ds = NULL;
   /* the committed numpy fixture, both splits, every way of naming it */
   CHECK_OK(hrm_dataset_load(&ds, "spec/fixtures/data/refdir", "train"));
   CHECK(check_refdir(ds));
   CHECK(ds && strcmp(hrm_dataset_identifier(ds, 3), "c") == 0);
   hrm_dataset_arrays a;
   if (ds) {
      hrm_dataset_get_arrays(&a, ds);
      CHECK(((uintptr_t)a.puzzle_indices & 3) == 0);
   }
   hrm_dataset_free(ds);
   CHECK_OK(hrm_dataset_load(&ds, "spec/fixtures/data/refdir/test", NULL));
   CHECK(check_refdir(ds));
   CHECK(ds && strcmp(hrm_dataset_identifier(ds, 0), "<blank>") == 0);
   hrm_dataset_free(ds);
   CHECK_OK(hrm_dataset_load(&ds, "spec/fixtures/data/refdir/train/dataset.json", NULL));
   CHECK(check_refdir(ds));
   hrm_dataset_free(ds);
   CHECK(hrm_dataset_load(&ds, "spec/fixtures/data/refdir", NULL) == HRM_ERR_IO &&
         has_error("give one") && ds == NULL);
   CHECK(hrm_dataset_load(&ds, "spec/fixtures/data/refdir", "valid") == HRM_ERR_IO);
   CHECK(hrm_dataset_load(&ds, "spec/fixtures/data/refdir/train/all__inputs.npy", NULL) ==
         HRM_ERR_ARG);
   CHECK(hrm_dataset_load(&ds, "spec/fixtures/data/refdir/train/dataset.json", "train") ==
         HRM_ERR_ARG);
   CHECK(hrm_dataset_load(&ds, tmp_path("nothing"), NULL) == HRM_ERR_IO);

   /* a folder written here: 8 examples, as the fixture, with i2 labels and >i8 ids */
   char dir[256];
   snprintf(dir, sizeof dir, "%s/ref", tmpdir);
   mkdir(dir, 0755);
   char split[300];
   snprintf(split, sizeof split, "%s/train", dir);
   mkdir(split, 0755);
   uint8_t in[128];
   int16_t lab[128];
   for (int e = 0; e < 8; e++)
      for (int j = 0; j < 16; j++) {
         in[e * 16 + j] = (uint8_t)((3 * e + j) % 6);
         lab[e * 16 + j] = (int16_t)((e + 2 * j) % 6);
      }
   uint8_t pids_be[32];
   int64_t pv[4] = {1, 2, 3, 1};
   for (int i = 0; i < 4; i++) put(pids_be + 8 * i, (uint64_t)pv[i], 8, 1);
   int32_t pidx[5] = {0, 2, 3, 6, 8}, gidx[3] = {0, 2, 4};
   char path[400];
   snprintf(path, sizeof path, "%s/dataset.json", split);
   write_text(path, good_json);
#define WRITE_GOOD()                                                                             \
   do {                                                                                          \
      write_npy_file(split, "all__inputs.npy", "|u1", "(8, 16)", in, sizeof in);                 \
      write_npy_file(split, "all__labels.npy", "<i2", "(8, 16)", lab, sizeof lab);               \
      write_npy_file(split, "all__puzzle_identifiers.npy", ">i8", "(4,)", pids_be, 32);          \
      write_npy_file(split, "all__puzzle_indices.npy", "<i4", "(5,)", pidx, sizeof pidx);        \
      write_npy_file(split, "all__group_indices.npy", "<i4", "(3,)", gidx, sizeof gidx);         \
   } while (0)
   WRITE_GOOD();
   CHECK_OK(hrm_dataset_load(&ds, dir, "train"));
   CHECK(check_refdir(ds));
   hrm_dataset_free(ds);

   /* broken variants, each restored afterwards */
   struct {
      const char *file, *descr, *shape;
      const void *data;
      size_t n;
      const char *needle;
   } broken[] = {
      {"all__labels.npy", "<i2", "(8, 15)", lab, 240, "differs"},
      {"all__inputs.npy", "|u1", "(8, 8, 2)", in, 128, "dimensions"},
      {"all__puzzle_indices.npy", "<i4", "(4,)", pidx, 16, "entries"},
      {"all__group_indices.npy", "<i4", "(0,)", gidx, 0, "entries"},
      {"all__puzzle_identifiers.npy", "<f4", "(4,)", in, 16, "integers"},
      {"all__puzzle_identifiers.npy", ">i8", "(4,)", (const uint8_t[32]){[7] = 9}, 32,
       "puzzle_identifiers[0] = 9"},
      {"all__group_indices.npy", "<i4", "(3,)", (const int32_t[3]){0, 2, 2}, 12, "increase"},
      {"all__inputs.npy", "|u1", "(8, 16)", (const uint8_t[128]){[17] = 6}, 128, "inputs[1, 1]"},
      {"all__labels.npy", "<i2", "(8, 16)", (const int16_t[128]){[3] = 300}, 256, "fit"},
   };
   for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
      write_npy_file(split, broken[i].file, broken[i].descr, broken[i].shape, broken[i].data,
                     broken[i].n);
      hrm_clear_error();
      int rc = hrm_dataset_load(&ds, dir, "train");
      /* shape and dtype errors name the file; content errors (i 5..7) name the folder */
      const char *where = i > 4 && i < 8 ? "ref/train" : broken[i].file;
      int ok = rc != HRM_OK && ds == NULL && has_error(broken[i].needle) && has_error(where);
      if (!ok) fprintf(stderr, "  broken folder %zu: rc %d\n", i, rc);
      CHECK(ok);
      hrm_dataset_free(ds);
      WRITE_GOOD();
   }
   /* identifiers.json at the root: bad ones are reported */
   snprintf(path, sizeof path, "%s/identifiers.json", dir);
   write_text(path, "[\"<blank>\", 3]");
   CHECK(hrm_dataset_load(&ds, dir, "train") == HRM_ERR_FORMAT && has_error("identifiers.json"));
   write_text(path, "[\"<blank>\", null, \"two\"]");
   CHECK_OK(hrm_dataset_load(&ds, dir, "train"));
   CHECK(ds && strcmp(hrm_dataset_identifier(ds, 2), "two") == 0 && !hrm_dataset_identifier(ds, 1));
   hrm_dataset_free(ds);
   unlink(path);

   /* dataset.json: malformed or inconsistent */
   static const struct {
      const char *json, *needle;
   } bad_json[] = {
      {"{", "invalid JSON"},
      {"[1]", "expected an object"},
      {"{\"pad_id\": 0}", "vocab_size"},
      {"{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6.5,"
       " \"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"all\"]}", "vocab_size"},
      {"{\"pad_id\": 0, \"ignore_label_id\": \"0\", \"blank_identifier_id\": 0, \"vocab_size\": 6,"
       " \"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"all\"]}", "ignore_label_id"},
      {"{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6,"
       " \"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"all\", \"b\"]}", "one set"},
      {"{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6,"
       " \"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"../x\"]}", "plain"},
      {"{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6,"
       " \"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"all\"]} x", "after the JSON"},
      {"{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6,"
       " \"seq_len\": 8, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"all\"]}", "seq_len 8"},
      {"{\"pad_id\": 7, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6,"
       " \"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"all\"]}", "pad_id"},
      {"{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 6,"
       " \"seq_len\": 16, \"num_puzzle_identifiers\": 4, \"total_groups\": 2, "
       "\"mean_puzzle_examples\": 2.0, \"sets\": [\"other\"]}", "other__inputs.npy"},
   };
   snprintf(path, sizeof path, "%s/dataset.json", split);
   for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
      write_text(path, bad_json[i].json);
      hrm_clear_error();
      int rc = hrm_dataset_load(&ds, dir, "train");
      int ok = rc != HRM_OK && ds == NULL && has_error(bad_json[i].needle);
      if (!ok) fprintf(stderr, "  bad dataset.json %zu: rc %d\n", i, rc);
      CHECK(ok);
   }
   /* null ignore label */
   hrm_dataset_meta m;
   char set[64];
   const char *null_ign = "{\"pad_id\": 0, \"ignore_label_id\": null, \"blank_identifier_id\": 0,"
                          " \"vocab_size\": 6, \"seq_len\": 16, \"num_puzzle_identifiers\": 4, "
                          "\"total_groups\": 2, \"mean_puzzle_examples\": 2, \"sets\": [\"all\"],"
                          " \"total_puzzles\": 4}";
   CHECK_OK(hrm_dataset_parse_json(&m, set, null_ign, strlen(null_ign), "null"));
   CHECK(m.has_ignore_label == 0 && strcmp(set, "all") == 0);
}

/* ---- .hrmd ---------------------------------------------------------------------------------- */

static void test_hrmd(void) {
   static spelled d;
   make_spelled(&d, 12);
   hrm_dataset *ds = spelled_dataset(&d), *back = NULL;
   CHECK_OK(hrm_dataset_set_identifier(ds, 3, "three"));
   CHECK_OK(hrm_dataset_set_identifier(ds, 5, "five"));
   const char *path = tmp_path("d.hrmd");
   CHECK_OK(hrm_dataset_save(ds, path));
   CHECK_OK(hrm_dataset_load(&back, path, NULL));
   hrm_dataset_arrays a, b;
   hrm_dataset_get_arrays(&a, ds);
   if (back) {
      hrm_dataset_get_arrays(&b, back);
      CHECK(a.n == b.n && a.n_puzzles == b.n_puzzles && a.n_groups == b.n_groups);
      CHECK(memcmp(a.inputs, b.inputs, (size_t)a.n * SP_S) == 0);
      CHECK(memcmp(a.labels, b.labels, (size_t)a.n * SP_S) == 0);
      CHECK(memcmp(a.puzzle_indices, b.puzzle_indices, (size_t)(a.n_puzzles + 1) * 4) == 0);
      CHECK(memcmp(a.group_indices, b.group_indices, (size_t)(a.n_groups + 1) * 4) == 0);
      CHECK(memcmp(a.puzzle_identifiers, b.puzzle_identifiers, (size_t)a.n_puzzles * 4) == 0);
      /* used in place: payloads sit at 64-byte offsets of the page-aligned mapping */
      CHECK(((uintptr_t)b.inputs & 63) == 0 && ((uintptr_t)b.group_indices & 63) == 0);
      CHECK(strcmp(hrm_dataset_identifier(back, 5), "five") == 0);
      CHECK(hrm_dataset_identifier(back, 4) == NULL);
      /* the loaded dataset samples the same batches */
      hrm_sampler_config cfg = {.batch_size = 8, .train = 1, .seed = 3};
      hrm_sampler *s1, *s2;
      hrm_sampler_new(&s1, ds, &cfg);
      hrm_sampler_new(&s2, back, &cfg);
      batch_buf bb = batch_new(8, SP_S);
      int32_t count;
      int same = 1;
      for (int i = 0; i < 20; i++) {
         hrm_sampler_next(&count, bb.in, bb.lab, bb.pid, s1);
         uint64_t h = batch_hash(&bb);
         hrm_sampler_next(&count, bb.in, bb.lab, bb.pid, s2);
         same &= h == batch_hash(&bb);
      }
      CHECK(same);
      hrm_sampler_free(s1);
      hrm_sampler_free(s2);
      batch_free(&bb);
      /* adding to a mapped dataset copies it first */
      hrm_dataset_arrays more = {.inputs = d.inputs, .labels = d.labels, .n = 2,
                                 .token_dtype = HRM_DTYPE_U8};
      CHECK_OK(hrm_dataset_add(back, &more));
      hrm_dataset_get_arrays(&b, back);
      CHECK(b.n == a.n + 2 && memcmp(b.inputs, a.inputs, (size_t)a.n * SP_S) == 0);
      CHECK(b.puzzle_indices[b.n_puzzles] == b.n);
      hrm_dataset_free(back);
   }

   /* payloads split into chunks past the bin limit round-trip too */
   hrm_hrmd_set_bin_limit(100);
   CHECK_OK(hrm_dataset_save(ds, tmp_path("chunked.hrmd")));
   hrm_hrmd_set_bin_limit(0);
   CHECK_OK(hrm_dataset_load(&back, tmp_path("chunked.hrmd"), NULL));
   if (back) {
      hrm_dataset_get_arrays(&b, back);
      CHECK(b.n == a.n && memcmp(a.inputs, b.inputs, (size_t)a.n * SP_S) == 0);
      CHECK(memcmp(a.puzzle_indices, b.puzzle_indices, (size_t)(a.n_puzzles + 1) * 4) == 0);
   }
   hrm_dataset_free(back);

   /* i32 storage and a null ignore label */
   hrm_dataset_meta m = meta_of(1000, 3, 2);
   m.has_ignore_label = 0;
   hrm_dataset *wide;
   CHECK_OK(hrm_dataset_new(&wide, &m));
   int32_t tok[6] = {999, 0, -100, 5, 6, 7};
   hrm_dataset_arrays w = {.inputs = tok, .labels = tok, .n = 2, .token_dtype = HRM_DTYPE_I32};
   tok[2] = 1;
   CHECK_OK(hrm_dataset_add(wide, &w));
   CHECK_OK(hrm_dataset_save(wide, tmp_path("wide.hrmd")));
   CHECK_OK(hrm_dataset_load(&back, tmp_path("wide.hrmd"), NULL));
   if (back) {
      hrm_dataset_meta bm;
      hrm_dataset_get_meta(&bm, back);
      hrm_dataset_get_arrays(&b, back);
      CHECK(bm.has_ignore_label == 0 && bm.vocab_size == 1000 && b.token_dtype == HRM_DTYPE_I32);
      CHECK(((const int32_t *)b.inputs)[0] == 999 && b.n_puzzles == 2);
   }
   hrm_dataset_free(back);
   hrm_dataset_free(wide);

   /* atomic: a failed save leaves the old file and no temporary */
   CHECK(hrm_dataset_save(ds, tmp_path("no/such/dir.hrmd")) == HRM_ERR_IO);
   CHECK_OK(hrm_dataset_save(ds, path));

   /* damage: every truncation fails; bit flips fail cleanly or load a valid dataset */
   size_t n;
   unsigned char *raw = read_raw(path, &n);
   CHECK(raw != NULL);
   if (raw) {
      int cut_ok = 1;
      for (size_t cut = 0; cut < n; cut += cut < 600 ? 1 : 7) {
         hrm_dataset *t = NULL;
         if (hrm_dataset_open_hrmd_memory(&t, raw, cut, "cut") == HRM_OK || t) cut_ok = 0;
         hrm_dataset_free(t);
      }
      CHECK(cut_ok);
      int loaded = 0;
      for (size_t i = 0; i < n; i++) {
         for (int bit = 0; bit < 8; bit += 2) {
            raw[i] ^= (uint8_t)(1u << bit);
            hrm_dataset *t = NULL;
            if (hrm_dataset_open_hrmd_memory(&t, raw, n, "flip") == HRM_OK) {
               /* a damaged token payload opens, and is refused when first touched */
               hrm_dataset_arrays all;
               if (hrm_dataset_get_arrays(&all, t) == HRM_OK) loaded++;
               else CHECK(strstr(hrm_last_error(), "fails its checksum") != NULL);
               hrm_sampler_config cfg = {.batch_size = 4, .train = 0, .max_epochs = 1};
               hrm_sampler *s;
               batch_buf bb = batch_new(4, SP_S);
               int32_t count;
               if (hrm_sampler_new(&s, t, &cfg) == HRM_OK) {
                  while (hrm_sampler_next(&count, bb.in, bb.lab, bb.pid, s) == HRM_OK && count) {}
                  hrm_sampler_free(s);
               }
               batch_free(&bb);
            } else {
               CHECK(t == NULL && hrm_last_error()[0]);
            }
            hrm_dataset_free(t);
            raw[i] ^= (uint8_t)(1u << bit);
         }
      }
      CHECK(loaded == 0); /* checksums: no flipped file is usable, payload flips included */
      /* trailing bytes */
      unsigned char *more = malloc(n + 1);
      memcpy(more, raw, n);
      more[n] = 0xc0;
      CHECK(hrm_dataset_open_hrmd_memory(&back, more, n + 1, "trail") == HRM_ERR_FORMAT &&
            has_error("trailing"));
      free(more);
      free(raw);
   }

   /* hand-made maps */
   static const struct {
      const char *bytes;
      size_t n;
      const char *needle;
   } bad[] = {
      {"\x80", 1, "\"format\" is missing"},
      {"\x81\xa6" "format\xa4" "hrmx", 13, "not an .hrmd"},
      {"\x82\xa6" "format\xa4" "hrmd\xa7" "version\x02", 22, "version 2"},
      {"\x82\xa6" "format\xa4" "hrmd\xa6" "format\xa4" "hrmd", 25, "twice"},
      {"\x82\xa6" "format\xa4" "hrmd\xa5" "extra\x01", 20, "unexpected key"},
      {"\x83\xa6" "format\xa4" "hrmd\xa7" "version\x01\xa4" "meta\x80", 28, "missing"},
      {"\xdd\xff\xff\xff\xff", 5, "declares"},
      {"\xdf\xff\xff\xff\xff\x01", 6, "declares"},
      {"\xc6\xff\xff\xff\xf0", 5, "declares"},
      {"\xc1", 1, "invalid msgpack"},
      {"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\xc0", 11, "deeper"},
      {"\x93\x01\x02\x03", 4, "not an .hrmd"},
      {"", 0, "truncated"},
   };
   for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      hrm_clear_error();
      back = NULL;
      int rc = hrm_dataset_open_hrmd_memory(&back, bad[i].bytes, bad[i].n, "hand");
      int ok = rc != HRM_OK && back == NULL && has_error(bad[i].needle);
      if (!ok) fprintf(stderr, "  hand-made .hrmd %zu: rc %d\n", i, rc);
      CHECK(ok);
   }
   CHECK(hrm_dataset_load(&back, tmp_path("absent.hrmd"), NULL) == HRM_ERR_IO);
   hrm_dataset_free(ds);
}

/* ---- fuzz inputs ---------------------------------------------------------------------------- */

static int replay(const char *kind, const uint8_t *data, size_t n) {
   if (strcmp(kind, "npy") == 0) {
      hrm_tensor *t = NULL;
      int rc = hrm_npy_load_memory(&t, data, n, "replay");
      hrm_tensor_free(t);
      return rc;
   }
   if (strcmp(kind, "hrmd") == 0) {
      hrm_dataset *ds = NULL;
      int rc = hrm_dataset_open_hrmd_memory(&ds, data, n, "replay");
      hrm_dataset_free(ds);
      return rc;
   }
   /* dataset_json inputs are read both as dataset.json and as identifiers.json */
   hrm_dataset_meta m;
   char set[64];
   int rc = hrm_dataset_parse_json(&m, set, data, n, "replay");
   hrm_dataset *ds = NULL;
   if (rc == HRM_OK) {
      rc = hrm_dataset_new(&ds, &m);
      hrm_dataset_free(ds);
   }
   hrm_dataset_meta im = meta_of(2, 1, 64);
   ds = NULL;
   if (hrm_dataset_new(&ds, &im) == HRM_OK &&
       hrm_dataset_parse_identifiers(ds, data, n, "replay") == HRM_OK)
      rc = HRM_OK;
   hrm_dataset_free(ds);
   return rc;
}

/* Files found by fuzzing must not crash; the seed corpus (valid inputs) must parse. */
static void replay_folder(const char *kind, const char *root, int must_parse) {
   char folder[256];
   snprintf(folder, sizeof folder, "%s/%s", root, kind);
   DIR *d = opendir(folder);
   if (!d) return;
   for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      char path[512];
      snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
      size_t n;
      unsigned char *p = read_raw(path, &n);
      if (!p) continue;
      int rc = replay(kind, p, n);
      if (must_parse && rc != HRM_OK) fprintf(stderr, "  corpus %s: %s\n", path, hrm_last_error());
      CHECK(!must_parse || rc == HRM_OK);
      free(p);
   }
   closedir(d);
}

static void remove_tree(const char *path) {
   DIR *d = opendir(path);
   if (d) {
      for (struct dirent *e; (e = readdir(d));) {
         if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
         char sub[512];
         snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
         remove_tree(sub);
      }
      closedir(d);
      rmdir(path);
   } else {
      unlink(path);
   }
}

static int no_temp_files(void) {
   DIR *d = opendir(tmpdir);
   int clean = 1;
   for (struct dirent *e; d && (e = readdir(d));)
      if (strstr(e->d_name, ".tmp.")) clean = 0;
   if (d) closedir(d);
   return clean;
}

int main(void) {
   snprintf(tmpdir, sizeof tmpdir, "/tmp/hrm_test_dataset_XXXXXX");
   if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      return 1;
   }
   test_build();
   test_train_sampling();
   test_test_sampling();
   test_npy();
   test_folders();
   test_hrmd();
   CHECK(no_temp_files());
   const char *kinds[3] = {"npy", "hrmd", "dataset_json"};
   for (int k = 0; k < 3; k++) {
      replay_folder(kinds[k], "spec/fuzz/regress", 0);
      replay_folder(kinds[k], "spec/fuzz/corpus", 1);
   }
   remove_tree(tmpdir);
   return check_summary("test_dataset");
}
