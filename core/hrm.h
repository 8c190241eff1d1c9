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
int32_t hrm_cuda_available(void);          /* 1 when a CUDA table serves and a device is present */
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
/* The bf16 dot-product arithmetic peak on all threads (GFLOP/s, bf16 operands, fp32 accumulation):
 * AMX (TDPBF16PS) where the CPU has it and Linux grants the tile data, else AVX-512 BF16
 * (VDPBF16PS), else 0. *isa (may be NULL) names what ran: "amx", "avx512_bf16" or "none".
 * Takes ~0.3 s. */
double hrm_bf16_peak_gflops(const char **isa);
/* The bf16 instructions this CPU gives: "amx" (with Linux's permission for the tile data),
 * "avx512_bf16" or "none" (bf16 then runs through conversions, slower than fp32). */
const char *hrm_bf16_isa(void);
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
/* The same in the memory of `device` (a device must be available: hrm_cuda_available()).
 * Device tensors move only through hrm_tensor_copy and the ops that take them; their data is
 * not host memory. */
int hrm_tensor_new_device(hrm_tensor **out, int32_t dtype, int32_t ndim, const int64_t *shape,
                          int32_t device);
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
/* t (f32, CPU) = t rounded to bf16 precision in place (nearest even): the values a bf16 tensor
 * would hold, kept in fp32 storage (a bf16 model's carry). */
int hrm_tensor_round_bf16(hrm_tensor *t);
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
   int32_t num_heads;              /* NH <= D; head dim D / NH rounded down */
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

/* A batch view; the caller owns the memory. */
typedef struct hrm_batch {
   const int32_t *inputs;       /* (B, S) token ids in [0, V) */
   const int32_t *labels;       /* (B, S) ids in [0, V) or -100 (ignored); may be NULL in eval */
   const int32_t *puzzle_ids;   /* (B) ids in [0, num_puzzle_identifiers); NULL means all 0 */
   int32_t B;
} hrm_batch;

/* Fill cfg with the hrm_v1 defaults (vocab_size, seq_len, puzzle ids still to be set). */
void hrm_config_default(hrm_config *cfg);
/* HRM_OK if cfg describes a buildable model, else HRM_ERR_ARG naming the field. */
int hrm_config_check(const hrm_config *cfg);

/* ---- the parameter store ------------------------------------------------------------------
 * Every tensor a model keeps, under the reference's state-dict names, in declaration order:
 * parameters (HRM_KIND_PARAM) in one flat f32 block with their gradients in another at the
 * same offsets, persistent buffers (HRM_KIND_BUFFER, e.g. H_init), and at most one sparse table
 * (HRM_KIND_SPARSE: the puzzle embedding, trained by sign-SGD on the rows a batch touched).
 * Modules declare their tensors into a store (hrm_module_*); the store is then built once:
 * allocated and initialised in declaration order from its seeded RNG. Optimizers, checkpoints
 * and safetensors see only the store. */

typedef struct hrm_params hrm_params;

enum hrm_kind { HRM_KIND_PARAM = 0, HRM_KIND_BUFFER = 1, HRM_KIND_SPARSE = 2 };
/* Init rules (spec §1.1): ZERO; CONST (arg = the value); TRUNC_NORMAL (arg = std);
 * LECUN (truncated normal, std = 1/sqrt(last dim), the fan-in of a [out, in] weight). */
enum hrm_init { HRM_INIT_ZERO = 0, HRM_INIT_CONST = 1, HRM_INIT_TRUNC_NORMAL = 2,
                HRM_INIT_LECUN = 3 };

int hrm_params_new(hrm_params **out, uint64_t seed, int32_t device);
void hrm_params_free(hrm_params *p);  /* modules and tapes keep their store alive */
/* [OUT] index: declare a tensor (before build; names unique, at most 95 bytes). */
int hrm_params_declare(int32_t *index, hrm_params *p, const char *name, int32_t kind,
                       int32_t ndim, const int64_t *shape, int32_t init, double init_arg);
/* Allocate every declared tensor once; init = 1 applies the init rules, 0 leaves zeros (for
 * weights loaded next). Nothing can be declared afterwards. */
int hrm_params_build(hrm_params *p, int32_t init);
int32_t hrm_params_built(const hrm_params *p);
int64_t hrm_params_num_parameters(const hrm_params *p); /* Adam-trained elements only */
int32_t hrm_params_count(const hrm_params *p);           /* declared tensors of every kind */
/* [OUT] name (owned by the store), value: a view of tensor i; grad: a view of its gradient or
 * NULL for buffers and tables; kind: enum hrm_kind. Built stores only. */
int hrm_params_tensor(const hrm_params *p, int32_t i, const char **name, hrm_tensor **value,
                      hrm_tensor **grad, int32_t *kind);
int32_t hrm_params_find(const hrm_params *p, const char *name); /* index, -1 if absent */
/* Zero the gradient block and forget the sparse table's pending rows. */
int hrm_params_zero_grad(hrm_params *p);
int32_t hrm_params_sparse_pending(const hrm_params *p); /* sparse gradient rows held */
/* [OUT] ids (U) i32, grads (U, E) f32: new tensors holding copies of the sparse table's pending
 * gradient rows (one per row of each backward since the last step; ids may repeat). */
int hrm_params_sparse_rows(hrm_tensor **ids, hrm_tensor **grads, const hrm_params *p);
hrm_rng *hrm_params_rng(hrm_params *p);  /* init and exploration RNG (state saved by callers) */
/* The precision of a store's forward for the calls that follow (a model's forward_dtype):
 * HRM_DTYPE_BF16 sets bf16 GEMMs and casts the store's parameter block to bf16 once, so that the
 * GEMMs read their weights from that cast instead of rounding them on every call (the parameters
 * must not change until the next call: one model step); HRM_DTYPE_F32 drops the cast and sets
 * fp32 GEMMs. CPU stores only (HRM_ERR_ARG otherwise, or where bf16 GEMMs are unavailable). */
int hrm_params_set_precision(hrm_params *p, int32_t dtype);

/* Load every tensor of the store from a safetensors file (F32/BF16/F64/I32, reference names,
 * optional "_orig_mod." prefix, unknown non-persistent buffers ignored). Missing/mis-shaped:
 * error, nothing changed. */
int hrm_params_load_safetensors(hrm_params *p, const char *path);
int hrm_params_save_safetensors(const hrm_params *p, const char *path);

/* ---- modules ----------------------------------------------------------------------------------
 * C layers a model composes. Each declares its parameters into a store when made, and runs
 * forward (and, through a tape, backward) through the backend table of the store's device.
 * Modules are reference-counted (a module keeps its store and the modules it uses alive).
 *
 *   embedding          ids (B, S) i32 -> (B, S, D): rows of a (rows, D) table
 *   puzzle embedding   ids (B) i32 -> (B, E): rows of a sparse (rows, E) table
 *   input embedding    ids (B, S) [, puzzle ids (B)] -> (B, T, D), T = S + P: the reference's
 *                      scale · [puzzle prefix ; token rows] (· 1/√2 with + learned positions)
 *   linear             (N, in) -> (N, out), or with a token window (B, T, in) -> (B, count, out)
 *                      over tokens first .. first + count - 1 of each row
 *   block              (B, T, D) -> (B, T, D): post-norm attention + SwiGLU (spec §1.5)
 *   reasoning          n inputs (B, T, D) -> (B, T, D): blocks over the sum of the inputs */

typedef struct hrm_module hrm_module;

enum hrm_module_kind { HRM_MODULE_EMBEDDING = 0, HRM_MODULE_PUZZLE_EMBEDDING = 1,
                       HRM_MODULE_INPUT_EMBEDDING = 2, HRM_MODULE_LINEAR = 3,
                       HRM_MODULE_BLOCK = 4, HRM_MODULE_REASONING = 5 };

typedef struct hrm_block_config {
   int32_t hidden_size;     /* D */
   int32_t num_heads;       /* NH */
   double expansion;        /* SwiGLU width factor */
   double rms_norm_eps;
   int32_t rope;            /* 1: rotary positions over `tokens` positions */
   int32_t tokens;          /* T (RoPE tables) */
   double rope_theta;
   int32_t head_dim;        /* HD; 0: D / NH rounded down. The attention width NH·HD may differ
                               from D (qkv_proj D -> 3·NH·HD, o_proj NH·HD -> D) */
   int32_t mlp_t;           /* 1: TRM-MLP's token mixing in place of attention: a SwiGLU over the
                               T axis (`mlp_t.*`, T -> 2·IT -> T), its residual and RMSNorm taken
                               transposed (the norm over T); num_heads and RoPE are then unused */
} hrm_block_config;

/* `name.embedding_weight` (rows, dim), truncated normal with std init_std. */
int hrm_module_embedding(hrm_module **out, hrm_params *p, const char *name, int32_t rows,
                         int32_t dim, double init_std);
/* `name.weights` (rows, dim): the sparse table, zero-initialised. */
int hrm_module_puzzle_embedding(hrm_module **out, hrm_params *p, const char *name, int32_t rows,
                                int32_t dim);
/* Over the tokens' embedding, optional learned positions (an embedding of T rows) and an
 * optional puzzle embedding whose E values fill `prefix` positions (E <= prefix · D). */
int hrm_module_input_embedding(hrm_module **out, hrm_module *tokens, hrm_module *positions,
                               hrm_module *puzzle, int32_t prefix, double scale);
/* `name.weight` (out, in) with init (HRM_INIT_*, init_arg) and, when bias, `name.bias` (out)
 * = bias_init. count = 0: every token (any (N, in) input). */
int hrm_module_linear(hrm_module **out, hrm_params *p, const char *name, int32_t in,
                      int32_t out_features, int32_t bias, int32_t init, double init_arg,
                      double bias_init, int32_t first, int32_t count);
/* `name.self_attn.{qkv_proj,o_proj}.weight`, `name.mlp.{gate_up_proj,down_proj}.weight`. */
int hrm_module_block(hrm_module **out, hrm_params *p, const char *name,
                     const hrm_block_config *cfg);
/* `layers` blocks named `name.layers.i`. */
int hrm_module_reasoning(hrm_module **out, hrm_params *p, const char *name, int32_t layers,
                         const hrm_block_config *cfg);
void hrm_module_free(hrm_module *m);
int32_t hrm_module_kind(const hrm_module *m);
int64_t hrm_module_num_parameters(const hrm_module *m); /* elements of its tensors */
/* [OUT] ndim, shape (4 entries): the output shape for these inputs, after checking them. */
int hrm_module_output_shape(int32_t *ndim, int64_t *shape, const hrm_module *m, int32_t n,
                            const hrm_tensor *const *inputs);
/* out = module(inputs), saving nothing (scratch from the store). out may alias an input. */
int hrm_module_forward(hrm_module *m, hrm_tensor *out, int32_t n,
                       const hrm_tensor *const *inputs);

/* ---- the tape -----------------------------------------------------------------------------------
 * A call made through a tape records what its backward needs in the tape's arena (sized at
 * first use: at a fixed batch size nothing is allocated after the first pass) and returns its
 * output as a view of that arena, valid until the next reset. An input that is the output of
 * an earlier call, or a watched tensor, carries gradient; any other input is a constant.
 * Backward replays the calls in reverse, accumulates parameter gradients into the store (+=;
 * shared weights accumulate) and keeps the gradients of every call output and watched tensor. */

typedef struct hrm_tape hrm_tape;

int hrm_tape_new(hrm_tape **out, hrm_params *p);
void hrm_tape_free(hrm_tape *t);
int hrm_tape_reset(hrm_tape *t);                /* forget every call; memory is kept */
int32_t hrm_tape_calls(const hrm_tape *t);
/* Bytes of the tape's arena that the calls since the last reset hold: saved activations, input
 * copies, outputs and (after backward) gradients. */
int64_t hrm_tape_bytes(const hrm_tape *t);
/* [OUT] out: a new view of the call's output (freed by the caller; the data is the tape's). */
int hrm_tape_call(hrm_tensor **out, hrm_tape *t, hrm_module *m, int32_t n,
                  const hrm_tensor *const *inputs);
/* Ask for the gradient of x (an f32 tensor not made by this tape) at backward. */
int hrm_tape_watch(hrm_tape *t, const hrm_tensor *x);
/* d(Σ <outputs[i], grads[i]>): outputs are call outputs of this tape; once per reset. */
int hrm_tape_backward(hrm_tape *t, int32_t n, const hrm_tensor *const *outputs,
                      const hrm_tensor *const *grads);
/* [OUT] out: a new tensor holding the gradient of x (a call output or watched tensor) after
 * backward; zeros where the gradient did not reach. */
int hrm_tape_grad(hrm_tensor **out, hrm_tape *t, const hrm_tensor *x);

/* ---- ACT and loss ops ------------------------------------------------------------------------
 * The adaptive-computation wrapper every recurrent model shares (spec §2, §3), as batch ops:
 * the carry reset, row gathers, halting with exploration, the target-Q, the losses with the
 * reference's sums and their gradients, and the inference bookkeeping. A carry is a set of
 * tensors: the recurrent states (B, T, D) with their init vectors (D), and the per-row fields. */

typedef struct hrm_act_carry {
   int32_t nstates;                   /* 1..4 recurrent states */
   int32_t reserved;
   hrm_tensor *states[4];             /* (B, T, D) f32 */
   const hrm_tensor *inits[4];        /* (D) f32 */
   hrm_tensor *steps;                 /* (B) i32 */
   hrm_tensor *halted;                /* (B) u8 */
   hrm_tensor *inputs, *labels;       /* (B, S) i32 */
   hrm_tensor *puzzle_ids;            /* (B) i32 */
} hrm_act_carry;

typedef struct hrm_act_metrics {
   double loss, lm_loss, q_halt_loss, q_continue_loss;        /* batch sums, as the reference */
   double accuracy, exact_accuracy, q_halt_accuracy, steps, count; /* sums over halted rows */
} hrm_act_metrics;

/* Check a carry's tensors and a batch against it: token ids in [0, vocab), labels in
 * [0, vocab) or -100, puzzle ids in [0, num_ids) (0 when num_ids == 0). */
int hrm_act_check_batch(const hrm_act_carry *c, const hrm_batch *batch, int32_t vocab,
                        int32_t num_ids);
/* [OUT] n: the rows of active (B) u8 listed in rows (B) i32 (all rows when active is NULL). */
int hrm_act_rows(int32_t *n, hrm_tensor *rows, const hrm_tensor *active);
/* Rows rows[0..n) (all when rows is NULL) that are halted restart from the batch: states =
 * inits at every position, steps 0, inputs, labels (-100 without), puzzle ids (0 without). */
int hrm_act_reset(const hrm_act_carry *c, const hrm_batch *batch, const hrm_tensor *rows,
                  int32_t n);
/* dst[i] = src[rows[i]] (gather) or dst[rows[i]] = src[i] (scatter) for i < n, over the first
 * dimension; rows NULL means rows[i] = i. */
int hrm_rows_gather(hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows, int32_t n);
int hrm_rows_scatter(hrm_tensor *dst, const hrm_tensor *src, const hrm_tensor *rows, int32_t n);
/* The Q halting rule: HRM's q_halt > q_continue, or TRM's q_halt > 0 (no_ACT_continue). */
enum hrm_halt_rule { HRM_HALT_COMPARE = 0, HRM_HALT_POSITIVE = 1 };
/* Halting (spec §2.2) of n rows: new_steps = steps[row] + 1; halted at max_steps, and in
 * training with max_steps > 1 also when the rule holds (q_halt > q_continue, or q_halt > 0)
 * unless the row's exploration draw sets a minimum. q (n, 2) = [q_halt, q_continue].
 * The draws of carry row r are two uniforms of the counter generator at (rng's seed, rng's
 * counter, row_offset + r), and the counter then advances by one: the same global row draws
 * the same numbers at any batch split, in any process and on any device. row_offset is the
 * global index of this carry's row 0 (0 for a single process; a data-parallel rank passes the
 * rows before its share). */
int hrm_act_halt(hrm_tensor *new_steps, hrm_tensor *new_halted, const hrm_tensor *steps,
                 const hrm_tensor *rows, int32_t n, const hrm_tensor *q, int32_t max_steps,
                 double exploration_prob, int32_t train, int32_t rule, hrm_rng *rng,
                 int64_t row_offset);
/* target (n) = sigmoid(q_halt' if new_steps >= max_steps else max(q_halt', q_continue')) from
 * the next segment's q' (n, 2). */
int hrm_act_target_q(hrm_tensor *target, const hrm_tensor *q_next, const hrm_tensor *new_steps,
                     int32_t n, int32_t max_steps);
/* The loss head (spec §3) over n rows: lm loss (stablemax or softmax cross-entropy, mean over
 * each row's labelled tokens), q_halt BCE against exact correctness, q_continue BCE against
 * target (NULL: none), metrics over halted rows. With dlogits (n, S, V) and dq (n, 2) not NULL,
 * also the gradients of loss / global_batch. Fails (HRM_ERR_NUMERIC) on a non-finite loss. */
int hrm_act_loss(hrm_act_metrics *out, hrm_tensor *dlogits, hrm_tensor *dq,
                 const hrm_tensor *logits, const hrm_tensor *q, const hrm_tensor *labels,
                 const hrm_tensor *new_steps, const hrm_tensor *new_halted,
                 const hrm_tensor *target, int32_t n, int32_t loss_kind, double global_batch);
/* Commit n rows: carry steps, halted = new_*; logits_out (B, S, V), q_halt_out, q_continue_out
 * (B) rows = logits (n, S, V), q (n, 2) (outputs may be NULL). */
int hrm_act_commit(const hrm_act_carry *c, const hrm_tensor *new_steps,
                   const hrm_tensor *new_halted, const hrm_tensor *rows, int32_t n,
                   hrm_tensor *logits_out, hrm_tensor *q_halt_out, hrm_tensor *q_continue_out,
                   const hrm_tensor *logits, const hrm_tensor *q);
/* Inference bookkeeping after a segment: every active row (active (B) u8) records segment,
 * argmax predictions (B, S) of logits (B, S, V), its Q values; halt_q 1 stops rows whose
 * q_halt > q_continue, 2 rows whose q_halt > 0 (0: none). [OUT] n_active: rows still active. */
int hrm_act_solve_update(int32_t *n_active, hrm_tensor *predictions, hrm_tensor *steps,
                         hrm_tensor *q_halt, hrm_tensor *q_continue, hrm_tensor *active,
                         const hrm_tensor *logits, const hrm_tensor *q_halt_logits,
                         const hrm_tensor *q_continue_logits, int32_t segment, int32_t halt_q);
/* pred (N) i32 = first index of the maximum of each row of x (N, V) f32. */
int hrm_argmax_rows(hrm_tensor *pred, const hrm_tensor *x);
/* ema = decay · ema + (1 - decay) · x, elementwise in double (f32 tensors of equal numel). */
int hrm_ema_update(hrm_tensor *ema, const hrm_tensor *x, double decay);

/* ---- optimizers ------------------------------------------------------------------------------ */

enum hrm_optim_kind { HRM_OPTIM_ADAM_ATAN2 = 0, HRM_OPTIM_ADAMW = 1 };

typedef struct hrm_optim_config {
   int32_t kind;                  /* enum hrm_optim_kind */
   double lr, beta1, beta2, weight_decay, eps;  /* eps used by AdamW only */
   double puzzle_emb_lr, puzzle_emb_weight_decay;
} hrm_optim_config;

typedef struct hrm_optim hrm_optim;

int hrm_optim_new(hrm_optim **out, hrm_params *p, const hrm_optim_config *cfg);
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

/* ---- several processes: collectives over MPI (CPU tensors) and NCCL (CUDA tensors) ----------
 * A job started by an MPI launcher (mpirun -np N) has N ranks; anything else is world size 1,
 * where every collective returns its input. Collectives work in place on contiguous tensors;
 * every rank calls them in the same order with the same dtypes and shapes (a mismatch is a
 * deadlock or an MPI error, not something a rank can detect alone). A CUDA tensor travels over
 * NCCL (bootstrapped through MPI), a CPU tensor over MPI.
 *
 *    hrm_dist_init();
 *    hrm_dist_all_reduce(grads, HRM_DIST_SUM);   // every rank now holds the sum
 *    hrm_dist_broadcast(weights, 0);             // every rank now holds rank 0's weights
 */

enum hrm_dist_op { HRM_DIST_SUM = 0, HRM_DIST_MAX = 1 };

/* Join the launcher's job (idempotent). Without a launcher, or in a build without MPI: world
 * size 1 and nothing is started. Under a launcher, threads default to the host's cores divided
 * by its ranks unless HRM_THREADS is set. */
int hrm_dist_init(void);
int32_t hrm_dist_rank(void);        /* 0..size-1 (0 before init) */
int32_t hrm_dist_size(void);        /* ranks in the job (1 before init) */
int32_t hrm_dist_local_size(void);  /* ranks on this host (1 before init) */
int32_t hrm_dist_mpi_built(void);   /* 1 when this build has MPI */
int32_t hrm_dist_nccl_built(void);  /* 1 when this build has NCCL */
/* t = op over every rank's t (sum or max; f32, f64, i32, i64, u8; sum and max of bf16 refused). */
int hrm_dist_all_reduce(hrm_tensor *t, int32_t op);
/* t = root's t on every rank. */
int hrm_dist_broadcast(hrm_tensor *t, int32_t root);
/* [OUT] out: every rank's in, rank after rank (out holds size x numel(in) elements, same dtype
 * and device). */
int hrm_dist_all_gather(hrm_tensor *out, const hrm_tensor *in);
int hrm_dist_barrier(void);
/* Data-parallel step: the flat gradient block summed over ranks, and the sparse table's pending
 * gradient rows of every rank gathered onto each, in the order one process holding the whole
 * batch would have appended them (each rank's rows are `chunks` equal blocks, one per
 * micro-batch: block 1 of every rank, then block 2, ...). */
int hrm_dist_reduce_gradients(hrm_params *p, int32_t chunks);
/* End every rank of the job with `status` (MPI_Abort) after a failure only some ranks saw. At
 * world size 1 it returns HRM_OK and does nothing (the caller exits as usual). */
int hrm_dist_abort(int32_t status);
/* Leave the job (at the end of a run; also done at exit). Idempotent. */
int hrm_dist_finalize(void);

/* HRM_CDEF_END */

#ifdef __cplusplus
}
#endif
#endif /* HRM_H */
