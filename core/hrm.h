/* hrm.h — the one public C API of hrm, the Hierarchical Reasoning Model engine.
 *
 * Everything a caller (the Lua package, a C program, a test) may touch is declared here.
 * The block between HRM_CDEF_BEGIN and HRM_CDEF_END is extracted at build time into
 * lua/hrm/cdef.lua and fed to LuaJIT's ffi.cdef, so it holds only typedefs, enums, structs
 * and prototypes: no macros, no includes, no #define.
 *
 * Conventions: every function returns an int status (HRM_OK = 0, negative HRM_ERR_* on
 * failure) and writes its results through the first arguments ([OUT]). On failure the message
 * is read with hrm_last_error() (thread-local). Nothing here calls exit or abort on bad input.
 * Exactly one _free per _new; _free(NULL) is a no-op.
 *
 * Worked example (a tensor, a matmul and error handling):
 *
 *    hrm_tensor *a, *b, *c;
 *    int64_t sa[2] = {2, 3}, sb[2] = {3, 4};
 *    if (hrm_tensor_new(&a, HRM_DTYPE_F32, 2, sa) != HRM_OK) { puts(hrm_last_error()); ... }
 *    hrm_tensor_new(&b, HRM_DTYPE_F32, 2, sb);
 *    hrm_tensor_fill(a, 1.0);
 *    hrm_tensor_fill(b, 2.0);
 *    int64_t sc[2] = {2, 4};
 *    hrm_tensor_new(&c, HRM_DTYPE_F32, 2, sc);
 *    hrm_tensor_matmul(c, a, b);              // c = a · b, through BLAS
 *    printf("%g\n", hrm_tensor_get(c, 0));    // 6
 *    hrm_tensor_free(a); hrm_tensor_free(b); hrm_tensor_free(c);
 *
 * Shape legend used in comments: B batch, S task tokens, P puzzle-prefix positions,
 * T = S + P model tokens, D hidden, NH heads, HD head dim, V vocab.
 */
#ifndef HRM_H
#define HRM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* HRM_CDEF_BEGIN */

/* ---- status, dtypes, devices ------------------------------------------------------------ */

enum hrm_status {
   HRM_OK = 0,
   HRM_ERR_ARG = -1,      /* bad argument value (NULL, negative size, unknown name) */
   HRM_ERR_SHAPE = -2,    /* shapes do not agree */
   HRM_ERR_DTYPE = -3,    /* dtype not supported for this operation */
   HRM_ERR_RANGE = -4,    /* index or id out of range */
   HRM_ERR_MEMORY = -5,   /* allocation failed */
   HRM_ERR_IO = -6,       /* open/read/write/rename failed */
   HRM_ERR_FORMAT = -7,   /* malformed or unsupported file content */
   HRM_ERR_STATE = -8,    /* object used in the wrong state (freed, not built, ...) */
   HRM_ERR_NUMERIC = -9,  /* NaN or Inf where a finite number is required */
   HRM_ERR_DEVICE = -10   /* device unavailable or device call failed */
};

enum hrm_dtype {
   HRM_DTYPE_F32 = 0,
   HRM_DTYPE_F64 = 1,
   HRM_DTYPE_BF16 = 2,
   HRM_DTYPE_I32 = 3,
   HRM_DTYPE_I64 = 4,
   HRM_DTYPE_U8 = 5,
   HRM_DTYPE_COUNT = 6
};

enum hrm_device {
   HRM_DEVICE_CPU = 0,
   HRM_DEVICE_CUDA = 1
};

/* ---- library ------------------------------------------------------------------------------ */

const char *hrm_last_error(void);          /* message of the last failure on this thread */
void hrm_clear_error(void);                /* forget the last message */
const char *hrm_version(void);             /* "0.1.0" */
int32_t hrm_abi_version(void);             /* bumped whenever a cdef struct changes */
size_t hrm_sizeof(const char *type_name);  /* sizeof a cdef struct by name, 0 if unknown */
const char *hrm_blas_info(void);           /* name and configuration of the GEMM library */
int32_t hrm_cuda_available(void);          /* 1 when built with CUDA and a device is present */
int hrm_set_threads(int32_t n);            /* OpenMP and BLAS threads; n >= 1 */
int32_t hrm_get_threads(void);             /* current thread count */
/* Precision of the CPU linear layers' GEMMs: HRM_DTYPE_F32 (default) or HRM_DTYPE_BF16, operands
 * rounded to bf16 with fp32 accumulation as in the reference's bf16 forward (oneDNN builds; fast
 * on CPUs with avx512_bf16 or AMX). Attention, norms, losses and the optimizer stay fp32.
 * HRM_ERR_ARG where this build or CPU has no such GEMM. */
int hrm_set_gemm_dtype(int32_t dtype);
int32_t hrm_get_gemm_dtype(void);
/* Benchmark: GFLOP/s of the GEMM library on C(M,N) = op(A)·op(B) (op = transpose when the flag
 * is set), the median of `iters` timed runs after a warm-up, on random data. <= 0 on failure.
 * It times the linear layers' GEMM path in the current precision (hrm_set_gemm_dtype), bf16
 * rounding of both operands included. */
double hrm_gemm_gflops(int64_t M, int64_t N, int64_t K, int32_t trans_a, int32_t trans_b,
                       int32_t iters);
/* The vector FMA arithmetic peak of this build on all threads (GFLOP/s, fp32): the ceiling of
 * any fp32 GEMM. Takes ~0.3 s. */
double hrm_fma_peak_gflops(void);
/* Wall-clock seconds since an arbitrary origin (for benchmarks and progress). */
double hrm_wall_time(void);
/* Ctrl-C handling for long loops. With deferral on, the host's SIGINT handler only records the
 * request (a second Ctrl-C interrupts at once); a training loop polls it between steps. SIGPIPE
 * is ignored while deferral is on (a closed output pipe fails writes instead of killing). */
void hrm_interrupt_defer(int32_t on);
int32_t hrm_interrupt_deferred(void);
void hrm_interrupt_request(void);       /* called from the signal handler */
int32_t hrm_interrupt_take(void);       /* 1 if a request is pending (and clears it) */
/* Ignore SIGPIPE (on = 1) or restore its default (0) for the whole process: writes into a pipe
 * whose reader is gone then fail (EPIPE) instead of killing it. Returns whether it was ignored. */
int32_t hrm_sigpipe_ignore(int32_t on);

/* ---- tensors -------------------------------------------------------------------------------
 * Contiguous, row-major, up to 4 dims. A tensor either owns a reference to a storage block or
 * is a view sharing another tensor's storage (the storage is reference-counted, so a view stays
 * valid after its source is freed). `data` points at the first element and may be read and
 * written in place by the caller when device == HRM_DEVICE_CPU. */

typedef struct hrm_storage hrm_storage;

typedef struct hrm_tensor {
   void *data;            /* first element */
   int64_t shape[4];      /* sizes, shape[ndim..3] == 1 */
   int64_t numel;         /* product of the sizes */
   int32_t ndim;          /* 0..4 (0 = scalar with one element) */
   int32_t dtype;         /* enum hrm_dtype */
   int32_t device;        /* enum hrm_device */
   int32_t reserved;
   hrm_storage *storage;  /* shared owner of the memory */
} hrm_tensor;

/* The Lua package's Tensor object: a boxed pointer, so every t[i] reaches the checked __index
 * (indexing a bare pointer would be unchecked pointer arithmetic). */
typedef struct hrm_tensor_ref { hrm_tensor *p; } hrm_tensor_ref;

enum hrm_binary_op { HRM_OP_ADD = 0, HRM_OP_SUB = 1, HRM_OP_MUL = 2, HRM_OP_DIV = 3 };
enum hrm_reduce_op { HRM_REDUCE_SUM = 0, HRM_REDUCE_MEAN = 1, HRM_REDUCE_MAX = 2,
                     HRM_REDUCE_ARGMAX = 3, HRM_REDUCE_MIN = 4, HRM_REDUCE_ARGMIN = 5 };

int hrm_tensor_new(hrm_tensor **out, int32_t dtype, int32_t ndim, const int64_t *shape); /* zeroed */
/* [OUT] out: a view of `numel(shape)` elements of src starting at element `offset`. */
int hrm_tensor_view(hrm_tensor **out, const hrm_tensor *src, int64_t offset, int32_t ndim,
                    const int64_t *shape);
void hrm_tensor_free(hrm_tensor *t);
size_t hrm_dtype_size(int32_t dtype);      /* bytes per element, 0 for an unknown dtype */
const char *hrm_dtype_name(int32_t dtype); /* "f32", ..., NULL for an unknown dtype */
int32_t hrm_dtype_from_name(const char *name); /* enum value, -1 if unknown */
double hrm_tensor_get(const hrm_tensor *t, int64_t flat_index);   /* no bounds check: caller's */
void hrm_tensor_set(hrm_tensor *t, int64_t flat_index, double v); /* rounds to the dtype */
int hrm_tensor_fill(hrm_tensor *t, double v);
/* dst = src converted to dst's dtype (bf16 rounds to nearest even); numel must agree. */
int hrm_tensor_copy(hrm_tensor *dst, const hrm_tensor *src);
/* out = a op b elementwise (same numel; b may have numel 1 to broadcast a scalar tensor). */
int hrm_tensor_binary(hrm_tensor *out, const hrm_tensor *a, const hrm_tensor *b, int32_t op);
int hrm_tensor_scalar(hrm_tensor *out, const hrm_tensor *a, double s, int32_t op); /* out = a op s */
/* out = reduce(a) over dimension dim (0-based); out's shape is a's with that dim removed
 * (or of size 1). ARGMAX/ARGMIN give 0-based indices. dim = -1 reduces everything. */
int hrm_tensor_reduce(hrm_tensor *out, const hrm_tensor *a, int32_t dim, int32_t op);
int hrm_tensor_matmul(hrm_tensor *out, const hrm_tensor *a, const hrm_tensor *b); /* 2-D f32/f64 */
int hrm_tensor_transpose(hrm_tensor *out, const hrm_tensor *a, int32_t d0, int32_t d1);

/* ---- random numbers -------------------------------------------------------------------------
 * One counter-based generator (Philox-4x32-10): its whole state is (seed, counter), so it is
 * saved in checkpoints and reproduces across machines and thread counts. */

typedef struct hrm_rng { uint64_t seed; uint64_t counter; } hrm_rng;

void hrm_rng_init(hrm_rng *rng, uint64_t seed);
uint64_t hrm_rng_next_u64(hrm_rng *rng);
double hrm_rng_uniform(hrm_rng *rng);              /* [0, 1) with 53 random bits */
int hrm_tensor_rand(hrm_tensor *t, hrm_rng *rng);  /* U[0, 1) */
int hrm_tensor_randn(hrm_tensor *t, hrm_rng *rng); /* N(0, 1) */
/* The reference's trunc_normal_init_: realised std == std, clipped at +-2 comp_std (spec 1.1). */
int hrm_tensor_trunc_normal(hrm_tensor *t, hrm_rng *rng, double std);

/* ---- the model ------------------------------------------------------------------------------ */

enum hrm_pos_encoding { HRM_POS_ROPE = 0, HRM_POS_LEARNED = 1, HRM_POS_NONE = 2 };
enum hrm_loss_kind { HRM_LOSS_STABLEMAX = 0, HRM_LOSS_SOFTMAX = 1 };

/* Field names are the reference's (config/arch/hrm_v1.yaml); Lua fills it from a table. */
typedef struct hrm_config {
   int32_t hidden_size;            /* D */
   int32_t num_heads;              /* NH, D % NH == 0 */
   double expansion;               /* SwiGLU width factor */
   int32_t H_layers;
   int32_t L_layers;
   int32_t H_cycles;
   int32_t L_cycles;
   int32_t halt_max_steps;
   double halt_exploration_prob;
   int32_t pos_encodings;          /* enum hrm_pos_encoding */
   double rms_norm_eps;
   double rope_theta;
   int32_t puzzle_emb_ndim;        /* 0 = no puzzle prefix */
   int32_t num_puzzle_identifiers;
   int32_t vocab_size;             /* V */
   int32_t seq_len;                /* S */
   int32_t loss;                   /* enum hrm_loss_kind */
} hrm_config;

typedef struct hrm_model hrm_model;
typedef struct hrm_carry hrm_carry;

/* A batch view; the caller owns the memory. */
typedef struct hrm_batch {
   const int32_t *inputs;       /* (B, S) token ids in [0, V) */
   const int32_t *labels;       /* (B, S) ids in [0, V) or -100 (ignored); may be NULL in eval */
   const int32_t *puzzle_ids;   /* (B) ids in [0, num_puzzle_identifiers); NULL means all 0 */
   int32_t B;
} hrm_batch;

typedef struct hrm_step_opts {
   int32_t train;               /* 1: train-mode halting + backward; 0: eval */
   int32_t global_batch;        /* gradient of loss / global_batch; 0 means B */
   const uint8_t *active;       /* (B) eval only: rows to compute, NULL = all */
} hrm_step_opts;

/* Outputs of one ACT segment. The tensors are supplied by the caller (allocated once). */
typedef struct hrm_step_out {
   hrm_tensor *logits;          /* (B, S, V) f32, or NULL to skip */
   hrm_tensor *q_halt_logits;   /* (B) f32, or NULL */
   hrm_tensor *q_continue_logits; /* (B) f32, or NULL */
   double loss, lm_loss, q_halt_loss, q_continue_loss;  /* batch sums, as the reference */
   double accuracy, exact_accuracy, q_halt_accuracy, steps, count; /* sums over halted rows */
} hrm_step_out;

/* Fill cfg with the hrm_v1 defaults (vocab_size, seq_len, puzzle ids still to be set). */
void hrm_config_default(hrm_config *cfg);
/* HRM_OK if cfg describes a buildable model, else HRM_ERR_ARG naming the field. */
int hrm_config_check(const hrm_config *cfg);

int hrm_model_new(hrm_model **out, const hrm_config *cfg, uint64_t seed, int32_t device);
/* The same model with every tensor zero and no random init: for loading weights into it. */
int hrm_model_new_empty(hrm_model **out, const hrm_config *cfg, int32_t device);
void hrm_model_free(hrm_model *m);
int hrm_model_get_config(const hrm_model *m, hrm_config *out);
/* Change the halting controls of a live model (curricula): halt_max_steps >= 1, prob in [0, 1]. */
int hrm_model_set_halting(hrm_model *m, int32_t halt_max_steps, double exploration_prob);
int64_t hrm_model_num_parameters(const hrm_model *m); /* Adam-trained parameters only */
int32_t hrm_model_num_tensors(const hrm_model *m);    /* parameters + persistent buffers */
/* [OUT] name (owned by the model), value: a view of tensor i; grad: a view of its gradient or
 * NULL for buffers. is_param: 1 for Adam-trained parameters, 0 for buffers. */
int hrm_model_tensor(const hrm_model *m, int32_t i, const char **name, hrm_tensor **value,
                     hrm_tensor **grad, int32_t *is_param);
int32_t hrm_model_find_tensor(const hrm_model *m, const char *name); /* index, -1 if absent */
int hrm_model_zero_grad(hrm_model *m);
hrm_rng *hrm_model_rng(hrm_model *m);                 /* exploration RNG (state saved by callers) */

int hrm_carry_new(hrm_carry **out, const hrm_model *m, int32_t B);
void hrm_carry_free(hrm_carry *c);
int32_t hrm_carry_batch(const hrm_carry *c);
/* [OUT] views of the carry's state: "z_H", "z_L" (B, T, D) f32, "steps" (B) i32,
 * "halted" (B) u8, "inputs"/"labels" (B, S) i32, "puzzle_ids" (B) i32. */
int hrm_carry_tensor(hrm_tensor **out, hrm_carry *c, const char *name);

/* One ACT segment for every row (spec §2.2). In training, accumulates d(loss/global_batch). */
int hrm_model_step(hrm_model *m, hrm_carry *c, const hrm_batch *batch,
                   const hrm_step_opts *opts, hrm_step_out *out);

/* ---- optimizers ------------------------------------------------------------------------------ */

enum hrm_optim_kind { HRM_OPTIM_ADAM_ATAN2 = 0, HRM_OPTIM_ADAMW = 1 };

typedef struct hrm_optim_config {
   int32_t kind;                  /* enum hrm_optim_kind */
   double lr, beta1, beta2, weight_decay, eps;  /* eps used by AdamW only */
   double puzzle_emb_lr, puzzle_emb_weight_decay;
} hrm_optim_config;

typedef struct hrm_optim hrm_optim;

int hrm_optim_new(hrm_optim **out, hrm_model *m, const hrm_optim_config *cfg);
void hrm_optim_free(hrm_optim *o);
/* Apply the accumulated gradients with absolute learning rates, then zero them. */
int hrm_optim_step(hrm_optim *o, double lr, double puzzle_emb_lr);
/* [OUT] views of the state: "m", "v" (flat, numel = num_parameters) f32 and "t" (1) f64. */
int hrm_optim_tensor(hrm_tensor **out, hrm_optim *o, const char *name);

/* ---- safetensors ------------------------------------------------------------------------------
 * 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 * then raw little-endian data. Readers validate everything and never read out of bounds. */

typedef struct hrm_safetensors hrm_safetensors;

int hrm_safetensors_open(hrm_safetensors **out, const char *path);
void hrm_safetensors_free(hrm_safetensors *f);
int32_t hrm_safetensors_count(const hrm_safetensors *f);
const char *hrm_safetensors_name(const hrm_safetensors *f, int32_t i); /* NULL if out of range */
/* [OUT] out: a new CPU tensor holding a copy of tensor `name` in its stored dtype. */
int hrm_safetensors_get(hrm_tensor **out, const hrm_safetensors *f, const char *name);
/* Write n named tensors atomically (temporary file, fsync, rename). */
int hrm_safetensors_write(const char *path, int32_t n, const char *const *names,
                          const hrm_tensor *const *tensors);

/* Load every model tensor from a safetensors file (F32/BF16/F64/I32, reference names, optional
 * "_orig_mod." prefix, unknown non-persistent buffers ignored). Missing/mis-shaped: error. */
int hrm_model_load_safetensors(hrm_model *m, const char *path);
int hrm_model_save_safetensors(const hrm_model *m, const char *path);

/* ---- datasets ------------------------------------------------------------------------------
 * The reference's puzzle dataset (HRM_SPEC §5.1): examples inputs/labels (N, S); puzzles as CSR
 * runs of examples (puzzle_indices, one puzzle_identifier each); groups as CSR runs of puzzles
 * (group_indices; a group is an original puzzle and its augmentations). Tokens are stored as
 * u8 when vocab_size <= 256, else i32. Built in memory (new, then add) or loaded from a .hrmd
 * file or a reference numpy folder, whose arrays are memory-mapped rather than copied.
 * A sampler fills caller-owned i32 tensors without allocating: train draws by groups (spec
 * §5.2: one seeded permutation of the groups per epoch, one random puzzle per group, its
 * examples without replacement, full batches only); test walks the examples in order and pads
 * the last batch (inputs = pad_id, labels = -100, puzzle id = blank). Labels equal to
 * ignore_label_id come out as -100. The sampler's position is a plain struct (checkpoints).
 *
 *    hrm_dataset *ds;  hrm_sampler *s;  int32_t count;
 *    hrm_dataset_load(&ds, "data/sudoku/train", NULL);
 *    hrm_sampler_config sc = { .batch_size = 768, .train = 1, .seed = 0 };
 *    hrm_sampler_new(&s, ds, &sc);
 *    hrm_sampler_next(&count, inputs, labels, puzzle_ids, s);  // (B, S) (B, S) (B) i32 tensors
 *    hrm_sampler_free(s); hrm_dataset_free(ds);
 */

typedef struct hrm_dataset hrm_dataset;
typedef struct hrm_sampler hrm_sampler;

/* dataset.json's fields (PuzzleDatasetMetadata). */
typedef struct hrm_dataset_meta {
   int32_t vocab_size;              /* V >= 1 */
   int32_t seq_len;                 /* S >= 1 */
   int32_t pad_id;                  /* token of padded test rows, in [0, V) */
   int32_t ignore_label_id;         /* labels equal to it become -100 in batches */
   int32_t has_ignore_label;        /* 0 when ignore_label_id is null (no label is replaced) */
   int32_t blank_identifier_id;     /* puzzle id of padded rows, in [0, num_puzzle_identifiers) */
   int32_t num_puzzle_identifiers;  /* puzzle ids are in [0, num_puzzle_identifiers) */
   int32_t reserved;
   int64_t total_groups;            /* groups held (computed; ignored by new) */
   double mean_puzzle_examples;     /* examples / puzzles (computed; ignored by new) */
} hrm_dataset_meta;

/* The arrays of one add, or read-only views of a dataset's arrays (hrm_dataset_get_arrays). */
typedef struct hrm_dataset_arrays {
   const void *inputs;                 /* (N, S) token ids in [0, V), dtype token_dtype */
   const void *labels;                 /* (N, S) in [0, V) or ignore_label_id (i32: or -100) */
   const int32_t *puzzle_identifiers;  /* (P) in [0, num_puzzle_identifiers); NULL: all blank */
   const int32_t *puzzle_indices;      /* (P + 1) 0 .. N, non-decreasing; NULL: P = N, 1 each */
   const int32_t *group_indices;       /* (G + 1) 0 .. P, increasing; NULL: G = P, 1 each */
   int64_t n;                          /* N examples */
   int64_t n_puzzles;                  /* P */
   int64_t n_groups;                   /* G */
   int32_t token_dtype;                /* HRM_DTYPE_U8 or HRM_DTYPE_I32 (inputs and labels) */
   int32_t reserved;
} hrm_dataset_arrays;

typedef struct hrm_sampler_config {
   int32_t batch_size;       /* B >= 1 (the global batch) */
   int32_t train;            /* 1: sample by groups, full batches; 0: in order, last padded */
   int32_t epochs_per_iter;  /* train: permutations joined into one order (0 means 1) */
   int32_t reserved;
   int64_t max_epochs;       /* next yields count 0 once this many epochs are done; 0: never */
   uint64_t seed;            /* train: epoch e draws from a Philox stream keyed by (seed, e) */
} hrm_sampler_config;

/* Where a sampler stands; restoring it continues the exact same batch sequence. */
typedef struct hrm_sampler_state {
   uint64_t seed;            /* the sampler's seed (checked on restore) */
   int64_t epoch;            /* epochs completed */
   int64_t index;            /* train: next position in the group order; test: next example */
   uint64_t draws;           /* train: random numbers drawn so far in this epoch */
} hrm_sampler_state;

/* [OUT] out: an empty dataset; meta is validated (total_groups, mean_puzzle_examples ignored). */
int hrm_dataset_new(hrm_dataset **out, const hrm_dataset_meta *meta);
void hrm_dataset_free(hrm_dataset *ds);                  /* samplers keep it alive */
/* Append examples, puzzles and groups (indices relative to this call's arrays). Everything is
 * validated before anything is copied: on failure the dataset is unchanged. */
int hrm_dataset_add(hrm_dataset *ds, const hrm_dataset_arrays *arrays);
/* [OUT] out: path is a .hrmd file, a reference split folder holding dataset.json, or a dataset
 * root with split ("train", "test"; NULL when path is the split folder itself). */
int hrm_dataset_load(hrm_dataset **out, const char *path, const char *split);
int hrm_dataset_save(const hrm_dataset *ds, const char *path); /* .hrmd, written atomically */
int hrm_dataset_get_meta(hrm_dataset_meta *out, const hrm_dataset *ds); /* [OUT] out */
/* [OUT] out: views of the arrays, valid until the next add or the last free. */
int hrm_dataset_get_arrays(hrm_dataset_arrays *out, const hrm_dataset *ds);
/* Name puzzle id `id` (identifiers.json); name NULL removes it. */
int hrm_dataset_set_identifier(hrm_dataset *ds, int32_t id, const char *name);
const char *hrm_dataset_identifier(const hrm_dataset *ds, int32_t id); /* NULL when unnamed */
/* The .hrmd version ds was read from: 2 (checksums verified), 1 (no checksums: unchecked), or 0
 * (not read from an .hrmd file). */
int32_t hrm_dataset_file_version(const hrm_dataset *ds);

/* [OUT] out: a sampler over ds (which it keeps alive: ds may be freed first). */
int hrm_sampler_new(hrm_sampler **out, hrm_dataset *ds, const hrm_sampler_config *cfg);
void hrm_sampler_free(hrm_sampler *s);                  /* releases its dataset reference */
/* [OUT] count: real rows written (B in train; 0 once max_epochs are done), inputs, labels:
 * (B, S) i32; puzzle_identifiers: (B) i32. labels and puzzle_identifiers may be NULL. */
int hrm_sampler_next(int32_t *count, hrm_tensor *inputs, hrm_tensor *labels,
                     hrm_tensor *puzzle_identifiers, hrm_sampler *s);
int hrm_sampler_get_state(hrm_sampler_state *out, const hrm_sampler *s); /* [OUT] out */
/* Continue from a saved state (same dataset, seed and batch size); a refused state changes
 * nothing. */
int hrm_sampler_set_state(hrm_sampler *s, const hrm_sampler_state *state);

/* [OUT] out: a new CPU tensor with the .npy file's array (u1 -> u8; i1 i2 u2 i4 -> i32;
 * u4 i8 u8 -> i64; f4 -> f32; f8 -> f64; either byte order). */
int hrm_npy_load(hrm_tensor **out, const char *path);

/* ---- checkpoints (.hrm) ------------------------------------------------------------------
 * One msgpack map: {"format": "hrm", "version": 2, "meta": JSON object text, "tensors": {name:
 * {"dtype": "f32", "shape": [..], "data": bin (a list of bins past 4 GiB), "xxh3": u64}},
 * "header_xxh3": u64}. Written atomically (temporary file, fsync, rename) with tensor bytes
 * streamed from their memory; read through a mapping and validated whole on open, checksums
 * included (a damaged file is refused, naming the damaged part). Version 1 files, which have
 * no checksums, still open, unchecked. Tensor names come back sorted.
 *
 *    hrm_checkpoint *f;
 *    hrm_checkpoint_write("run.hrm", "{\"step\": 10}", n, names, tensors);
 *    hrm_checkpoint_open(&f, "run.hrm");
 *    hrm_checkpoint_read_into(table, f, "model.inner.puzzle_emb.weights"); // no extra copy
 *    hrm_checkpoint_free(f);
 */

typedef struct hrm_checkpoint hrm_checkpoint;

/* Write meta (JSON object text; NULL means {}) and n named CPU tensors to path. */
int hrm_checkpoint_write(const char *path, const char *meta, int32_t n, const char *const *names,
                         const hrm_tensor *const *tensors);
/* [OUT] out: the checkpoint at path, mapped and validated. */
int hrm_checkpoint_open(hrm_checkpoint **out, const char *path);
void hrm_checkpoint_free(hrm_checkpoint *f);
const char *hrm_checkpoint_meta(const hrm_checkpoint *f);           /* JSON text, owned by f */
/* The file's format version: 2 (checksums verified on open) or 1 (no checksums: unchecked). */
int32_t hrm_checkpoint_version(const hrm_checkpoint *f);
int32_t hrm_checkpoint_count(const hrm_checkpoint *f);
const char *hrm_checkpoint_name(const hrm_checkpoint *f, int32_t i); /* NULL if out of range */
/* [OUT] dtype, ndim, shape (4 entries, unused ones 1) of tensor `name`; any may be NULL. */
int hrm_checkpoint_info(int32_t *dtype, int32_t *ndim, int64_t *shape, const hrm_checkpoint *f,
                        const char *name);
/* [OUT] out: a new CPU tensor holding a copy of tensor `name`. */
int hrm_checkpoint_get(hrm_tensor **out, const hrm_checkpoint *f, const char *name);
/* Copy tensor `name` into dst (CPU, same dtype and shape), with no intermediate copy. */
int hrm_checkpoint_read_into(hrm_tensor *dst, const hrm_checkpoint *f, const char *name);

/* HRM_CDEF_END */

#ifdef __cplusplus
}
#endif
#endif /* HRM_H */
