/* module.c — the modules a model composes: embeddings, linear heads, the post-norm block and
 * the reasoning module, each with an untaped forward, a forward that keeps its activations for a
 * tape, and the backward of such a call.
 *
 * Every op goes through the store's backend table. A module declares its tensors into the store
 * when made and resolves them to pointers at each call (the store is built in between).
 * Untaped calls work in the store's scratch and write only their output (their attention keeps
 * no probabilities); taped calls keep everything the backward reads in the caller's `saved` block
 * (laid out by `layout_*`, which also counts it when the base pointer is NULL), in bf16 while the
 * store runs a bf16 model.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "module.h"

#define F32(t) ((float *)(t)->data)
#define I32(t) ((const int32_t *)(t)->data)
/* Block records of a call live on the stack up to this many blocks (deeper modules allocate). */
#define MAX_STACK_BLOCKS 64

/* ---- construction -------------------------------------------------------------------------- */

static int module_alloc(hrm_module **out, int32_t kind, hrm_params *p, const char *name) {
   HRM_CHECK(out, HRM_ERR_ARG, "module: out is NULL");
   *out = NULL;
   HRM_CHECK(p, HRM_ERR_ARG, "module: store is NULL");
   HRM_CHECK(!p->built, HRM_ERR_STATE,
             "module '%s': the store is built already (make every module before building it)",
             name ? name : "");
   hrm_module *m = calloc(1, sizeof *m);
   HRM_CHECK(m, HRM_ERR_MEMORY, "module: out of memory");
   m->kind = kind;
   m->refs = 1;
   m->store = p;
   p->refs++;
   m->w = m->b = m->qkv = m->o = m->gate_up = m->down = m->tgu = m->tdown = -1;
   snprintf(m->name, sizeof m->name, "%s", name ? name : "");
   *out = m;
   return HRM_OK;
}

static int declare(int32_t *index, hrm_module *m, const char *suffix, int32_t kind, int32_t ndim,
                   int64_t d0, int64_t d1, int32_t init, double arg) {
   char name[128];
   const int len = snprintf(name, sizeof name, "%s.%s", m->name, suffix);
   HRM_CHECK(len > 0 && len < 96, HRM_ERR_ARG, "module: name '%s.%s' is longer than 95 bytes",
             m->name, suffix);
   const int64_t shape[2] = {d0, d1};
   return hrm_params_declare(index, m->store, name, kind, ndim, shape, init, arg);
}

void hrm_module_free(hrm_module *m) {
   if (!m || --m->refs > 0) return;
   for (int32_t i = 0; i < m->nblocks; i++) hrm_module_free(m->blocks[i]);
   free(m->blocks);
   hrm_module_free(m->tokens);
   hrm_module_free(m->positions);
   hrm_module_free(m->puzzle);
   m->store->be->release(m->rope_cos);
   m->store->be->release(m->rope_sin);
   hrm_params_free(m->store);
   free(m);
}

int hrm_module_embedding(hrm_module **out, hrm_params *p, const char *name, int32_t rows,
                         int32_t dim, double init_std) {
   HRM_CHECK(rows >= 1 && dim >= 1, HRM_ERR_ARG,
             "embedding '%s': rows %d and dim %d must be >= 1", name ? name : "", rows, dim);
   hrm_module *m;
   HRM_TRY(module_alloc(&m, HRM_MODULE_EMBEDDING, p, name));
   m->rows = rows;
   m->dim = dim;
   const int rc = declare(&m->w, m, "embedding_weight", HRM_KIND_PARAM, 2, rows, dim,
                          HRM_INIT_TRUNC_NORMAL, init_std);
   if (rc != HRM_OK) {
      hrm_module_free(m);
      return rc;
   }
   *out = m;
   return HRM_OK;
}

int hrm_module_puzzle_embedding(hrm_module **out, hrm_params *p, const char *name, int32_t rows,
                                int32_t dim) {
   HRM_CHECK(rows >= 1 && dim >= 1, HRM_ERR_ARG,
             "puzzle embedding '%s': rows %d and dim %d must be >= 1", name ? name : "", rows,
             dim);
   hrm_module *m;
   HRM_TRY(module_alloc(&m, HRM_MODULE_PUZZLE_EMBEDDING, p, name));
   m->rows = rows;
   m->dim = dim;
   const int rc = declare(&m->w, m, "weights", HRM_KIND_SPARSE, 2, rows, dim, HRM_INIT_ZERO, 0);
   if (rc != HRM_OK) {
      hrm_module_free(m);
      return rc;
   }
   *out = m;
   return HRM_OK;
}

int hrm_module_input_embedding(hrm_module **out, hrm_module *tokens, hrm_module *positions,
                               hrm_module *puzzle, int32_t prefix, double scale) {
   HRM_CHECK(out, HRM_ERR_ARG, "input embedding: out is NULL");
   *out = NULL;
   HRM_CHECK(tokens && tokens->kind == HRM_MODULE_EMBEDDING, HRM_ERR_ARG,
             "input embedding: tokens must be an embedding module");
   HRM_CHECK(!positions || (positions->kind == HRM_MODULE_EMBEDDING &&
                            positions->dim == tokens->dim && positions->store == tokens->store),
             HRM_ERR_ARG, "input embedding: positions must be an embedding of the tokens' width "
             "in the same store");
   HRM_CHECK(!puzzle || (puzzle->kind == HRM_MODULE_PUZZLE_EMBEDDING &&
                         puzzle->store == tokens->store),
             HRM_ERR_ARG, "input embedding: puzzle must be a puzzle embedding in the same store");
   HRM_CHECK(prefix >= 0 && (!puzzle || (int64_t)prefix * tokens->dim >= puzzle->dim) &&
             (puzzle || prefix == 0),
             HRM_ERR_ARG, "input embedding: prefix %d positions cannot hold the puzzle's %d "
             "values", prefix, puzzle ? puzzle->dim : 0);
   HRM_CHECK(isfinite(scale), HRM_ERR_ARG, "input embedding: scale %g is not finite", scale);
   hrm_module *m = calloc(1, sizeof *m);
   HRM_CHECK(m, HRM_ERR_MEMORY, "input embedding: out of memory");
   m->kind = HRM_MODULE_INPUT_EMBEDDING;
   m->refs = 1;
   m->store = tokens->store;
   m->store->refs++;
   m->w = m->b = m->qkv = m->o = m->gate_up = m->down = m->tgu = m->tdown = -1;
   snprintf(m->name, sizeof m->name, "%s", tokens->name);
   m->tokens = tokens;
   tokens->refs++;
   if ((m->positions = positions)) positions->refs++;
   if ((m->puzzle = puzzle)) puzzle->refs++;
   m->prefix = prefix;
   m->dim = tokens->dim;
   m->scale = scale;
   *out = m;
   return HRM_OK;
}

int hrm_module_linear(hrm_module **out, hrm_params *p, const char *name, int32_t in,
                      int32_t out_features, int32_t bias, int32_t init, double init_arg,
                      double bias_init, int32_t first, int32_t count) {
   HRM_CHECK(in >= 1 && out_features >= 1, HRM_ERR_ARG,
             "linear '%s': in %d and out %d must be >= 1", name ? name : "", in, out_features);
   HRM_CHECK(first >= 0 && count >= 0 && (count > 0 || first == 0), HRM_ERR_ARG,
             "linear '%s': token window first %d, count %d is invalid", name ? name : "", first,
             count);
   hrm_module *m;
   HRM_TRY(module_alloc(&m, HRM_MODULE_LINEAR, p, name));
   m->in = in;
   m->out = out_features;
   m->first = first;
   m->count = count;
   int rc = declare(&m->w, m, "weight", HRM_KIND_PARAM, 2, out_features, in, init, init_arg);
   if (rc == HRM_OK && bias)
      rc = declare(&m->b, m, "bias", HRM_KIND_PARAM, 1, out_features, 1, HRM_INIT_CONST,
                   bias_init);
   if (rc != HRM_OK) {
      hrm_module_free(m);
      return rc;
   }
   *out = m;
   return HRM_OK;
}

static int check_block_config(const hrm_block_config *c, const char *name) {
   HRM_CHECK(c, HRM_ERR_ARG, "block '%s': config is NULL", name);
   HRM_CHECK(c->mlp_t == 0 || c->mlp_t == 1, HRM_ERR_ARG, "block '%s': mlp_t %d is not 0 or 1",
             name, c->mlp_t);
   HRM_CHECK(c->hidden_size >= 1, HRM_ERR_ARG, "block '%s': hidden_size %d must be >= 1", name,
             c->hidden_size);
   HRM_CHECK(c->expansion > 0 && c->expansion <= 64, HRM_ERR_ARG,
             "block '%s': expansion %g is not in (0, 64]", name, c->expansion);
   HRM_CHECK(c->rms_norm_eps > 0 && c->rms_norm_eps < 1, HRM_ERR_ARG,
             "block '%s': rms_norm_eps %g is not in (0, 1)", name, c->rms_norm_eps);
   HRM_CHECK(c->tokens >= 1, HRM_ERR_ARG, "block '%s': tokens %d must be >= 1", name, c->tokens);
   if (c->mlp_t) return HRM_OK;  // no attention: heads and RoPE are unused
   HRM_CHECK(c->hidden_size >= 1 && c->num_heads >= 1 && c->head_dim >= 0 &&
                (c->head_dim > 0 || c->num_heads <= c->hidden_size),
             HRM_ERR_ARG, "block '%s': num_heads %d (head_dim %d) gives no head dimension at "
             "hidden_size %d", name, c->num_heads, c->head_dim, c->hidden_size);
   HRM_CHECK((int64_t)c->num_heads * (c->head_dim > 0 ? c->head_dim : c->hidden_size / c->num_heads)
                <= 1 << 20, HRM_ERR_ARG, "block '%s': attention width num_heads x head_dim is "
             "above 1048576", name);
   HRM_CHECK(!c->rope || ((c->head_dim > 0 ? c->head_dim : c->hidden_size / c->num_heads) % 2 == 0 &&
                          c->rope_theta > 0),
             HRM_ERR_ARG, "block '%s': RoPE needs an even head size and rope_theta > 0", name);
   return HRM_OK;
}

/* The token-mixing block needs the transpose op, which not every backend has yet. */
static int check_block_device(const hrm_block_config *c, const hrm_params *p, const char *name) {
   HRM_CHECK(!c->mlp_t || (p && p->be->transpose_forward), HRM_ERR_DEVICE,
             "block '%s': the token-mixing block (mlp_t) has no kernels on the %s backend yet "
             "---> HINT: build this model on the CPU", name, p ? p->be->name : "?");
   return HRM_OK;
}

/* Widths a block derives from its config. */
static void block_widths(hrm_module *m, const hrm_block_config *cfg) {
   const int D = cfg->hidden_size;
   m->I = hrm_swiglu_inter(D, cfg->expansion);
   m->HD = cfg->mlp_t ? 0 : cfg->head_dim > 0 ? cfg->head_dim : D / cfg->num_heads;
   m->A = cfg->mlp_t ? 0 : cfg->num_heads * m->HD;
   m->IT = cfg->mlp_t ? hrm_swiglu_inter(cfg->tokens, cfg->expansion) : 0;
}

int hrm_module_block(hrm_module **out, hrm_params *p, const char *name,
                     const hrm_block_config *cfg) {
   HRM_TRY(check_block_config(cfg, name ? name : ""));
   HRM_TRY(check_block_device(cfg, p, name ? name : ""));
   hrm_module *m;
   HRM_TRY(module_alloc(&m, HRM_MODULE_BLOCK, p, name));
   m->bc = *cfg;
   const int D = cfg->hidden_size, T = cfg->tokens;
   block_widths(m, cfg);
   int rc = HRM_OK;
   if (cfg->rope && !cfg->mlp_t) {
      const size_t bytes = sizeof(float) * (size_t)cfg->tokens * (size_t)m->HD;
      rc = p->be->alloc((void **)&m->rope_cos, bytes);
      if (rc == HRM_OK) rc = p->be->alloc((void **)&m->rope_sin, bytes);
      if (rc == HRM_OK)
         p->be->rope_tables(m->rope_cos, m->rope_sin, cfg->tokens, m->HD, cfg->rope_theta);
   }
   if (rc == HRM_OK && cfg->mlp_t) /* the reference's order: mlp_t, then mlp */
      rc = declare(&m->tgu, m, "mlp_t.gate_up_proj.weight", HRM_KIND_PARAM, 2, 2 * m->IT, T,
                   HRM_INIT_LECUN, 0);
   if (rc == HRM_OK && cfg->mlp_t)
      rc = declare(&m->tdown, m, "mlp_t.down_proj.weight", HRM_KIND_PARAM, 2, T, m->IT,
                   HRM_INIT_LECUN, 0);
   if (rc == HRM_OK && !cfg->mlp_t)
      rc = declare(&m->qkv, m, "self_attn.qkv_proj.weight", HRM_KIND_PARAM, 2, 3 * m->A, D,
                   HRM_INIT_LECUN, 0);
   if (rc == HRM_OK && !cfg->mlp_t)
      rc = declare(&m->o, m, "self_attn.o_proj.weight", HRM_KIND_PARAM, 2, D, m->A,
                   HRM_INIT_LECUN, 0);
   if (rc == HRM_OK)
      rc = declare(&m->gate_up, m, "mlp.gate_up_proj.weight", HRM_KIND_PARAM, 2, 2 * m->I, D,
                   HRM_INIT_LECUN, 0);
   if (rc == HRM_OK)
      rc = declare(&m->down, m, "mlp.down_proj.weight", HRM_KIND_PARAM, 2, D, m->I,
                   HRM_INIT_LECUN, 0);
   if (rc != HRM_OK) {
      hrm_module_free(m);
      return rc;
   }
   *out = m;
   return HRM_OK;
}

int hrm_module_reasoning(hrm_module **out, hrm_params *p, const char *name, int32_t layers,
                         const hrm_block_config *cfg) {
   HRM_CHECK(layers >= 1 && layers <= 256, HRM_ERR_ARG,
             "reasoning module '%s': layers %d is not in 1..256", name ? name : "", layers);
   HRM_TRY(check_block_config(cfg, name ? name : ""));
   HRM_TRY(check_block_device(cfg, p, name ? name : ""));
   hrm_module *m;
   HRM_TRY(module_alloc(&m, HRM_MODULE_REASONING, p, name));
   m->bc = *cfg;
   block_widths(m, cfg);
   m->blocks = calloc((size_t)layers, sizeof *m->blocks);
   if (!m->blocks) {
      hrm_module_free(m);
      return HRM_FAIL(HRM_ERR_MEMORY, "reasoning module: out of memory");
   }
   for (int32_t i = 0; i < layers; i++) {
      char bn[128];
      snprintf(bn, sizeof bn, "%s.layers.%d", m->name, i);
      const int rc = hrm_module_block(&m->blocks[i], p, bn, cfg);
      if (rc != HRM_OK) {
         hrm_module_free(m);
         return rc;
      }
      m->nblocks++;
   }
   *out = m;
   return HRM_OK;
}

int32_t hrm_module_kind(const hrm_module *m) { return m ? m->kind : -1; }

static int64_t numel_of(const hrm_params *p, int32_t i) {
   if (i < 0) return 0;
   const hrm_named *d = &p->tensors[i];
   return d->shape[0] * d->shape[1] * d->shape[2] * d->shape[3];
}

int64_t hrm_module_num_parameters(const hrm_module *m) {
   if (!m) return 0;
   const hrm_params *p = m->store;
   int64_t n = numel_of(p, m->w) + numel_of(p, m->b) + numel_of(p, m->qkv) + numel_of(p, m->o) +
               numel_of(p, m->gate_up) + numel_of(p, m->down) + numel_of(p, m->tgu) +
               numel_of(p, m->tdown);
   for (int32_t i = 0; i < m->nblocks; i++) n += hrm_module_num_parameters(m->blocks[i]);
   n += hrm_module_num_parameters(m->tokens) + hrm_module_num_parameters(m->positions) +
        hrm_module_num_parameters(m->puzzle);
   return n;
}

/* ---- input checks and output shapes ------------------------------------------------------------ */

static const char *kind_name(int32_t kind) {
   static const char *const names[] = {"embedding", "puzzle embedding", "input embedding",
                                       "linear", "block", "reasoning module"};
   return kind >= 0 && kind <= HRM_MODULE_REASONING ? names[kind] : "module";
}

/* Ids on the host are checked here; device ids come from batches checked on the host. */
static int check_ids(const hrm_module *m, const hrm_tensor *t, int32_t limit, const char *what) {
   if (t->device != HRM_DEVICE_CPU) return HRM_OK;
   const int32_t *v = I32(t);
   for (int64_t k = 0; k < t->numel; k++)
      HRM_CHECK(v[k] >= 0 && v[k] < limit, HRM_ERR_RANGE,
                "%s '%s': %s[%lld] = %d is out of range [0, %d)", kind_name(m->kind), m->name,
                what, (long long)k, v[k], limit);
   return HRM_OK;
}

static int check_input(const hrm_module *m, const hrm_tensor *t, int32_t i, int32_t dtype,
                       int32_t ndim) {
   HRM_CHECK(t && t->data, HRM_ERR_ARG, "%s '%s': input %d is NULL", kind_name(m->kind), m->name,
             i + 1);
   HRM_CHECK(t->device == m->store->device, HRM_ERR_DEVICE,
             "%s '%s': input %d is on device %d, the module on %d", kind_name(m->kind), m->name,
             i + 1, t->device, m->store->device);
   HRM_CHECK(t->dtype == dtype, HRM_ERR_DTYPE, "%s '%s': input %d is %s, expected %s",
             kind_name(m->kind), m->name, i + 1, hrm_dtype_name(t->dtype),
             hrm_dtype_name(dtype));
   HRM_CHECK(ndim == 0 || t->ndim == ndim, HRM_ERR_SHAPE,
             "%s '%s': input %d has %d dimensions, expected %d", kind_name(m->kind), m->name,
             i + 1, t->ndim, ndim);
   return HRM_OK;
}

int hrm_module_output_shape(int32_t *ndim, int64_t *shape, const hrm_module *m, int32_t n,
                            const hrm_tensor *const *in) {
   HRM_CHECK(m && ndim && shape && (n == 0 || in), HRM_ERR_ARG, "module: NULL argument");
   HRM_CHECK(m->store->built, HRM_ERR_STATE,
             "%s '%s': the store is not built yet (build it before calling modules)",
             kind_name(m->kind), m->name);
   const char *kn = kind_name(m->kind);
   for (int k = 0; k < 4; k++) shape[k] = 1;
   switch (m->kind) {
   case HRM_MODULE_EMBEDDING:
   case HRM_MODULE_PUZZLE_EMBEDDING: {
      HRM_CHECK(n == 1, HRM_ERR_ARG, "%s '%s': takes 1 input (ids), got %d", kn, m->name, n);
      HRM_TRY(check_input(m, in[0], 0, HRM_DTYPE_I32, 0));
      HRM_CHECK(in[0]->ndim >= 1 && in[0]->ndim <= 3, HRM_ERR_SHAPE,
                "%s '%s': ids have %d dimensions, expected 1 to 3", kn, m->name, in[0]->ndim);
      HRM_TRY(check_ids(m, in[0], m->rows, "ids"));
      *ndim = in[0]->ndim + 1;
      for (int k = 0; k < in[0]->ndim; k++) shape[k] = in[0]->shape[k];
      shape[in[0]->ndim] = m->dim;
      return HRM_OK;
   }
   case HRM_MODULE_INPUT_EMBEDDING: {
      HRM_CHECK(n == 1 || n == 2, HRM_ERR_ARG,
                "%s '%s': takes ids (B, S) and optional puzzle ids (B), got %d inputs", kn,
                m->name, n);
      HRM_TRY(check_input(m, in[0], 0, HRM_DTYPE_I32, 2));
      HRM_TRY(check_ids(m, in[0], m->tokens->rows, "ids"));
      const int64_t B = in[0]->shape[0], T = in[0]->shape[1] + m->prefix;
      if (n == 2 && in[1]) {
         HRM_TRY(check_input(m, in[1], 1, HRM_DTYPE_I32, 1));
         HRM_CHECK(in[1]->shape[0] == B, HRM_ERR_SHAPE,
                   "%s '%s': %lld puzzle ids for a batch of %lld", kn, m->name,
                   (long long)in[1]->shape[0], (long long)B);
         if (m->puzzle) HRM_TRY(check_ids(m, in[1], m->puzzle->rows, "puzzle ids"));
      }
      HRM_CHECK(!m->positions || m->positions->rows == T, HRM_ERR_SHAPE,
                "%s '%s': %lld tokens, but the learned positions cover %d", kn, m->name,
                (long long)T, m->positions->rows);
      *ndim = 3;
      shape[0] = B;
      shape[1] = T;
      shape[2] = m->dim;
      return HRM_OK;
   }
   case HRM_MODULE_LINEAR: {
      HRM_CHECK(n == 1, HRM_ERR_ARG, "%s '%s': takes 1 input, got %d", kn, m->name, n);
      HRM_TRY(check_input(m, in[0], 0, HRM_DTYPE_F32, 0));
      const hrm_tensor *x = in[0];
      HRM_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == m->in, HRM_ERR_SHAPE,
                "%s '%s': the input's last dimension is %lld, expected %d", kn, m->name,
                (long long)(x->ndim ? x->shape[x->ndim - 1] : 0), m->in);
      *ndim = x->ndim;
      for (int k = 0; k < x->ndim; k++) shape[k] = x->shape[k];
      shape[x->ndim - 1] = m->out;
      if (m->count > 0) {
         HRM_CHECK(x->ndim == 3 && x->shape[1] >= m->first + m->count, HRM_ERR_SHAPE,
                   "%s '%s': tokens %d..%d of a (B, T, %d) input, got %d dimensions of T = %lld",
                   kn, m->name, m->first, m->first + m->count - 1, m->in, x->ndim,
                   (long long)(x->ndim == 3 ? x->shape[1] : 0));
         shape[1] = m->count;
      }
      return HRM_OK;
   }
   case HRM_MODULE_BLOCK:
   case HRM_MODULE_REASONING: {
      HRM_CHECK(n >= 1 && (m->kind == HRM_MODULE_REASONING || n == 1), HRM_ERR_ARG,
                "%s '%s': takes %s, got %d inputs", kn, m->name,
                m->kind == HRM_MODULE_BLOCK ? "1 input" : "1 or more inputs", n);
      for (int32_t i = 0; i < n; i++) {
         HRM_TRY(check_input(m, in[i], i, HRM_DTYPE_F32, 3));
         HRM_CHECK(in[i]->shape[1] == m->bc.tokens && in[i]->shape[2] == m->bc.hidden_size,
                   HRM_ERR_SHAPE, "%s '%s': input %d is (%lld, %lld, %lld), expected (B, %d, %d)",
                   kn, m->name, i + 1, (long long)in[i]->shape[0], (long long)in[i]->shape[1],
                   (long long)in[i]->shape[2], m->bc.tokens, m->bc.hidden_size);
         HRM_CHECK(in[i]->shape[0] == in[0]->shape[0], HRM_ERR_SHAPE,
                   "%s '%s': input %d has batch %lld, input 1 has %lld", kn, m->name, i + 1,
                   (long long)in[i]->shape[0], (long long)in[0]->shape[0]);
      }
      *ndim = 3;
      for (int k = 0; k < 3; k++) shape[k] = in[0]->shape[k];
      return HRM_OK;
   }
   default: return HRM_FAIL(HRM_ERR_STATE, "module: unknown kind %d", m->kind);
   }
}

/* ---- activation layouts ------------------------------------------------------------------------ */

static float *take(float *base, size_t *off, size_t n) {
   float *p = base ? base + *off : NULL;
   *off += (n + 15) & ~(size_t)15;  // 64-byte aligned slices
   return p;
}

/* The fields of a block record in layout order. In a bf16 tape every field but the norms' rstd
 * holds bf16 values (two to a float slot). */
enum { F_QKV, F_ATT, F_ATTY, F_TX, F_TGU, F_TACT, F_TNORM, F_TRSTD, F_H1, F_RSTD1, F_GU, F_ACT,
       F_H2, F_RSTD2, NFIELDS };
static const size_t field_at[NFIELDS] = {
   offsetof(hrm_block_acts, qkv),   offsetof(hrm_block_acts, att),  offsetof(hrm_block_acts, atty),
   offsetof(hrm_block_acts, tx),    offsetof(hrm_block_acts, tgu),  offsetof(hrm_block_acts, tact),
   offsetof(hrm_block_acts, tnorm), offsetof(hrm_block_acts, trstd), offsetof(hrm_block_acts, h1),
   offsetof(hrm_block_acts, rstd1), offsetof(hrm_block_acts, gu),   offsetof(hrm_block_acts, act),
   offsetof(hrm_block_acts, h2),    offsetof(hrm_block_acts, rstd2)};

static float **field(hrm_block_acts *r, int f) { return (float **)((char *)r + field_at[f]); }
static int is_rstd(int f) { return f == F_TRSTD || f == F_RSTD1 || f == F_RSTD2; }

/* n (NFIELDS) = the elements of each field of a block's record at batch B (probs 0: an untaped
 * call's record, whose attention keeps no probabilities). */
static void act_sizes(size_t *n, const hrm_module *m, size_t B, int probs) {
   const size_t D = (size_t)m->bc.hidden_size, I = (size_t)m->I, T = (size_t)m->bc.tokens;
   const size_t A = (size_t)m->A, BT = B * T, IT = (size_t)m->IT, tok = m->bc.mlp_t ? 1 : 0;
   n[F_QKV] = BT * 3 * A;
   n[F_ATT] = tok || !probs ? 0 : B * (size_t)m->bc.num_heads * T * T;
   n[F_ATTY] = BT * A;
   n[F_TX] = tok * BT * D;
   n[F_TGU] = B * D * 2 * IT;
   n[F_TACT] = B * D * IT;
   n[F_TNORM] = tok * BT * D;
   n[F_TRSTD] = tok * B * D;
   n[F_H1] = BT * D;
   n[F_RSTD1] = BT;
   n[F_GU] = BT * 2 * I;
   n[F_ACT] = BT * I;
   n[F_H2] = BT * D;
   n[F_RSTD2] = BT;
}

/* A record at base + *off (half: the bf16 layout; probs 0: att NULL, for an untaped call). */
static void take_acts(float *base, size_t *off, hrm_block_acts *r, const hrm_module *m, size_t B,
                      int half, int probs) {
   size_t n[NFIELDS];
   act_sizes(n, m, B, probs);
   for (int f = 0; f < NFIELDS; f++)
      *field(r, f) = take(base, off, half && !is_rstd(f) ? (n[f] + 1) / 2 : n[f]);
   if (!probs) r->att = NULL;
}

/* Whether an untaped call's attention keeps its probabilities (where the backend has no
 * attention_infer). */
static int untaped_probs(const hrm_module *m) { return m->store->be->attention_infer == NULL; }

/* dst (a bf16 record) = src (an fp32 record), or back with `widen`; n from act_sizes. */
static void convert_acts(const hrm_backend *be, hrm_block_acts *dst, hrm_block_acts *src,
                         const size_t *n, int widen) {
   for (int f = 0; f < NFIELDS; f++) {
      if (n[f] == 0) continue;
      float *d = *field(dst, f), *s = *field(src, f);
      if (is_rstd(f)) be->copy(d, s, sizeof(float) * n[f]);
      else if (widen) be->widen_bf16(d, (const uint16_t *)s, (int64_t)n[f]);
      else be->pack_bf16((uint16_t *)d, s, (int64_t)n[f]);
   }
}

/* A bf16 model's taped calls keep their activations in bf16, where the backend can (half the
 * tape); the forward still runs on fp32 buffers, the backward on the widened values. */
static int saved_half(const hrm_module *m) {
   const hrm_params *p = m->store;
   return p->precision == HRM_DTYPE_BF16 && p->be->pack_bf16 && p->be->widen_bf16;
}

static int64_t rows_of(const hrm_tensor *t) { return t->numel / t->shape[t->ndim - 1]; }

/* The taped layout of one call: input copies are the tape's; this is what the module keeps. */
typedef struct saved_layout {
   float *in0;             // reasoning: (B, T, D) sum of the inputs
   hrm_block_acts *acts;   // blocks: one record each (in `acts_buf`)
   float *out;             // the output
   float *prefix;          // input embedding: (B, E) puzzle rows
   int half;               // blocks: in0 and the records in bf16, out an fp32 copy
} saved_layout;

/* Lays out (or with base NULL counts) the saved block of a call. acts has room for nblocks. */
static size_t layout_saved(float *base, saved_layout *s, hrm_block_acts *acts,
                           const hrm_module *m, const hrm_tensor *const *in, const int64_t *oshape,
                           int32_t ondim) {
   size_t off = 0;
   int64_t onumel = 1;
   for (int k = 0; k < ondim; k++) onumel *= oshape[k];
   memset(s, 0, sizeof *s);
   switch (m->kind) {
   case HRM_MODULE_BLOCK:
   case HRM_MODULE_REASONING: {
      const size_t B = (size_t)in[0]->shape[0];
      const size_t BTD = B * (size_t)m->bc.tokens * (size_t)m->bc.hidden_size;
      s->half = saved_half(m);
      if (m->kind == HRM_MODULE_REASONING)
         s->in0 = take(base, &off, s->half ? (BTD + 1) / 2 : BTD);
      const int32_t nb = m->kind == HRM_MODULE_BLOCK ? 1 : m->nblocks;
      hrm_block_acts dummy;
      for (int32_t i = 0; i < nb; i++)
         take_acts(base, &off, acts ? &acts[i] : &dummy, m, B, s->half, 1);
      s->acts = acts;
      s->out = s->half ? take(base, &off, BTD) : acts ? acts[nb - 1].h2 : NULL;
      return off;
   }
   case HRM_MODULE_INPUT_EMBEDDING:
      if (m->puzzle) s->prefix = take(base, &off, (size_t)in[0]->shape[0] * (size_t)m->puzzle->dim);
      s->out = take(base, &off, (size_t)onumel);
      return off;
   default: s->out = take(base, &off, (size_t)onumel); return off;
   }
}

size_t hrm_module_saved_floats(const hrm_module *m, int32_t n, const hrm_tensor *const *in) {
   int32_t ndim;
   int64_t shape[4];
   if (hrm_module_output_shape(&ndim, shape, m, n, in) != HRM_OK) return 0;
   saved_layout s;
   return layout_saved(NULL, &s, NULL, m, in, shape, ndim);
}

int hrm_module_reads_input(const hrm_module *m, int32_t i) {
   (void)i;
   return m->kind != HRM_MODULE_REASONING; /* the reasoning module keeps the sum of its inputs */
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* out (N, D) = rms_norm(a + b): one fused pass where the backend has it, otherwise the residual
 * sum is formed in b's buffer first (b is scratch). */
static void add_rmsnorm(const hrm_backend *be, float *out, float *rstd, const float *a, float *b,
                        int64_t N, int D, float eps) {
   if (be->add_rmsnorm_forward) {
      be->add_rmsnorm_forward(out, rstd, a, b, N, D, eps);
   } else {
      be->residual_forward(b, a, b, N * D);
      be->rmsnorm_forward(out, rstd, b, N, D, eps);
   }
}

static void attention_sublayer_forward(const hrm_module *m, hrm_block_acts *r, float *tmp,
                                       const float *in, int B);
static void token_mix_forward(const hrm_module *m, hrm_block_acts *r, float *tmp, const float *in,
                              int B);

/* One post-norm block (spec §1.9): its token mixer (attention, or TRM-MLP's token SwiGLU) then
 * the channel SwiGLU; `in` may alias r->h2 (untaped reuse); the output is r->h2. */
static void block_forward(const hrm_module *m, hrm_block_acts *r, float *tmp, const float *in,
                          int B) {
   const hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   const int D = m->bc.hidden_size, I = m->I, T = m->bc.tokens;
   const int64_t N = (int64_t)B * T;
   if (m->bc.mlp_t) token_mix_forward(m, r, tmp, in, B);
   else attention_sublayer_forward(m, r, tmp, in, B);
   be->linear_forward(r->gu, r->h1, hrm_params_value_ptr(p, m->gate_up), NULL, N, D, 2 * I);
   be->swiglu_forward(r->act, r->gu, N, I);
   be->linear_forward(tmp, r->act, hrm_params_value_ptr(p, m->down), NULL, N, I, D);
   add_rmsnorm(be, r->h2, r->rstd2, r->h1, tmp, N, D, (float)m->bc.rms_norm_eps);
}

/* h1 = rms_norm(in + attn(in)) over D (spec §1.9). */
static void attention_sublayer_forward(const hrm_module *m, hrm_block_acts *r, float *tmp,
                                       const float *in, int B) {
   const hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   const int D = m->bc.hidden_size, T = m->bc.tokens, NH = m->bc.num_heads, HD = m->HD;
   const int A = m->A;
   const int64_t N = (int64_t)B * T;
   const float eps = (float)m->bc.rms_norm_eps;
   be->linear_forward(r->qkv, in, hrm_params_value_ptr(p, m->qkv), NULL, N, D, 3 * A);
   if (!r->att) { /* an untaped call: no probabilities kept */
      be->attention_infer(r->atty, r->qkv, m->rope_cos, m->rope_sin, B, T, NH, HD);
   } else if (m->rope_cos && be->rope_attention_forward) {
      be->rope_attention_forward(r->atty, r->att, r->qkv, m->rope_cos, m->rope_sin, B, T, NH, HD);
   } else {
      if (m->rope_cos) be->rope_forward(r->qkv, m->rope_cos, m->rope_sin, B, T, NH, HD);
      be->attention_forward(r->atty, r->att, r->qkv, B, T, NH, HD);
   }
   be->linear_forward(tmp, r->atty, hrm_params_value_ptr(p, m->o), NULL, N, A, D);
   add_rmsnorm(be, r->h1, r->rstd1, in, tmp, N, D, eps);
}

/* TRM-MLP (HRM_SPEC §8.2): h1 = (rms_norm_T(x + mlp_t(x)))ᵀ with x = inᵀ (B, D, T): a SwiGLU
 * over the token axis, the residual and the norm taken while transposed. tmp is (B, D, T). */
static void token_mix_forward(const hrm_module *m, hrm_block_acts *r, float *tmp, const float *in,
                              int B) {
   const hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   const int D = m->bc.hidden_size, T = m->bc.tokens, IT = m->IT;
   const int64_t ND = (int64_t)B * D;
   be->transpose_forward(r->tx, in, B, T, D);
   be->linear_forward(r->tgu, r->tx, hrm_params_value_ptr(p, m->tgu), NULL, ND, T, 2 * IT);
   be->swiglu_forward(r->tact, r->tgu, ND, IT);
   be->linear_forward(tmp, r->tact, hrm_params_value_ptr(p, m->tdown), NULL, ND, IT, T);
   add_rmsnorm(be, r->tnorm, r->trstd, r->tx, tmp, ND, T, (float)m->bc.rms_norm_eps);
   be->transpose_forward(r->h1, r->tnorm, B, D, T);
}

/* dst = in[0] + (in[1] + (... + in[n-1])): the input injection, summed right to left. */
static void sum_inputs(const hrm_backend *be, float *dst, int32_t n, const hrm_tensor *const *in) {
   const int64_t len = in[0]->numel;
   if (n == 1) {
      be->copy(dst, in[0]->data, sizeof(float) * (size_t)len);
      return;
   }
   be->residual_forward(dst, F32(in[n - 2]), F32(in[n - 1]), len);
   for (int32_t i = n - 3; i >= 0; i--) be->residual_forward(dst, F32(in[i]), dst, len);
}

/* The blocks of a reasoning module (or the one block) over `x`, activations in acts[i]; returns
 * the output pointer. */
static float *run_blocks(const hrm_module *m, hrm_block_acts *acts, float *tmp, const float *x,
                         int B) {
   const int32_t nb = m->kind == HRM_MODULE_BLOCK ? 1 : m->nblocks;
   const float *cur = x;
   for (int32_t i = 0; i < nb; i++) {
      block_forward(m->kind == HRM_MODULE_BLOCK ? m : m->blocks[i], &acts[i], tmp, cur, B);
      cur = acts[i].h2;
   }
   return (float *)cur;
}

/* Embedding rows and the input embedding; prefix (B, E) is scratch for the puzzle rows. */
static void embed_forward(const hrm_module *m, float *out, float *prefix, int32_t n,
                          const hrm_tensor *const *in) {
   const hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   if (m->kind == HRM_MODULE_EMBEDDING) {
      be->embedding_forward(out, I32(in[0]), hrm_params_value_ptr(p, m->w), NULL, NULL,
                            (int)rows_of(in[0]), (int)in[0]->shape[in[0]->ndim - 1], 0, m->dim,
                            0, 1.0f);
      return;
   }
   if (m->kind == HRM_MODULE_PUZZLE_EMBEDDING) {
      be->gather_rows(out, hrm_params_value_ptr(p, m->w), I32(in[0]), in[0]->numel,
                      sizeof(float) * (size_t)m->dim);
      return;
   }
   const int B = (int)in[0]->shape[0], S = (int)in[0]->shape[1], D = m->dim;
   const int E = m->puzzle ? m->puzzle->dim : 0;
   if (E > 0) { /* the puzzle rows, row 0 without puzzle ids */
      const float *table = hrm_params_value_ptr(p, m->puzzle->w);
      if (n == 2 && in[1]) be->gather_rows(prefix, table, I32(in[1]), B, sizeof(float) * (size_t)E);
      else be->broadcast_row(prefix, table, B, sizeof(float) * (size_t)E);
   }
   be->embedding_forward(out, I32(in[0]), hrm_params_value_ptr(p, m->tokens->w),
                         E > 0 ? prefix : NULL,
                         m->positions ? hrm_params_value_ptr(p, m->positions->w) : NULL, B, S,
                         m->prefix, D, E, (float)m->scale);
}

/* out = x · Wᵀ + b over the token window; full (B, T, out) is scratch for a wide window. */
static void linear_forward(const hrm_module *m, float *out, float *full, const hrm_tensor *x) {
   const hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   const float *W = hrm_params_value_ptr(p, m->w), *bias = hrm_params_value_ptr(p, m->b);
   const float *X = F32(x);
   if (m->count == 0) {
      be->linear_forward(out, X, W, bias, rows_of(x), m->in, m->out);
      return;
   }
   const int B = (int)x->shape[0], T = (int)x->shape[1], O = m->out;
   if (m->count == 1) { /* one token a row: a strided GEMM */
      be->gemm(0, 1, B, O, m->in, 1.0f, X + (int64_t)m->first * m->in, (int64_t)T * m->in, W,
               m->in, 0.0f, out, O);
      if (bias) be->add_bias(out, bias, B, O);
      return;
   }
   be->linear_forward(full, X, W, bias, (int64_t)B * T, m->in, O);
   const size_t window = sizeof(float) * (size_t)m->count * (size_t)O;
   be->copy_rows(out, (int64_t)window, full + (int64_t)m->first * O,
                 (int64_t)sizeof(float) * T * O, B, window);
}

/* What a call's scratch serves. */
enum { FOR_UNTAPED, FOR_TAPED, FOR_BACKWARD };

/* Scratch floats a call or a backward needs. */
static size_t scratch_floats(const hrm_module *m, const hrm_tensor *const *in, int use) {
   switch (m->kind) {
   case HRM_MODULE_BLOCK:
   case HRM_MODULE_REASONING: {
      const size_t B = (size_t)in[0]->shape[0], T = (size_t)m->bc.tokens;
      const size_t D = (size_t)m->bc.hidden_size, I = (size_t)m->I, BT = B * T;
      const size_t A = (size_t)m->A, W = A > D ? A : D;
      size_t off = 0;
      if (use == FOR_BACKWARD) {
         const size_t tok = m->bc.mlp_t ? 1 : 0, IT = (size_t)m->IT;
         take(NULL, &off, BT * W);                             // dh
         take(NULL, &off, BT * W);                             // dh2
         take(NULL, &off, BT * 3 * A);                         // dqkv
         take(NULL, &off, BT * 2 * I);                         // dgu
         take(NULL, &off, BT * I);                             // dact
         take(NULL, &off, tok ? 0 : B * (size_t)m->bc.num_heads * T * T); // datt
         take(NULL, &off, tok * BT * D);                       // dT
         take(NULL, &off, tok * BT * D);                       // dS
         take(NULL, &off, B * D * 2 * IT);                     // dtgu
         take(NULL, &off, B * D * IT);                         // dtact
         if (saved_half(m)) { /* a bf16 tape's record and block input, widened */
            hrm_block_acts r;
            take_acts(NULL, &off, &r, m, B, 0, 1);
            take(NULL, &off, BT * D);
         }
      } else {
         take(NULL, &off, BT * D);                             // tmp
         hrm_block_acts r;                                     // one shared record, if any
         if (use == FOR_UNTAPED) take_acts(NULL, &off, &r, m, B, 0, untaped_probs(m));
         else if (saved_half(m)) take_acts(NULL, &off, &r, m, B, 0, 1);
      }
      return off;
   }
   case HRM_MODULE_LINEAR:
      return m->count > 1 ? (size_t)in[0]->shape[0] * (size_t)in[0]->shape[1] * (size_t)m->out
                          : 1;
   case HRM_MODULE_INPUT_EMBEDDING:
      return m->puzzle ? (size_t)in[0]->shape[0] * (size_t)m->puzzle->dim : 1;
   default: return 1;
   }
}

/* The blocks over one fp32 record in scratch, output copied into out (B, T, D). An untaped call
 * (s NULL) keeps no probabilities; the taped call into a bf16 saved block s packs the summed input
 * and each block's record into it as it goes. */
static void blocks_forward_shared(const hrm_module *m, float *out, float *scratch, int32_t n,
                                  const hrm_tensor *const *in, const saved_layout *s) {
   const hrm_backend *be = m->store->be;
   const int B = (int)in[0]->shape[0];
   const size_t BTD = (size_t)B * (size_t)m->bc.tokens * (size_t)m->bc.hidden_size;
   size_t off = 0, sizes[NFIELDS];
   float *tmp = take(scratch, &off, BTD);
   hrm_block_acts r;
   const int probs = s ? 1 : untaped_probs(m);
   take_acts(scratch, &off, &r, m, (size_t)B, 0, probs);
   act_sizes(sizes, m, (size_t)B, probs);
   const float *x = F32(in[0]);
   if (m->kind == HRM_MODULE_REASONING) {
      sum_inputs(be, r.h2, n, in);  // hidden_states + input_injection
      if (s) be->pack_bf16((uint16_t *)s->in0, r.h2, (int64_t)BTD);
      x = r.h2;
   }
   const int32_t nb = m->kind == HRM_MODULE_BLOCK ? 1 : m->nblocks;
   for (int32_t i = 0; i < nb; i++) {
      block_forward(m->kind == HRM_MODULE_BLOCK ? m : m->blocks[i], &r, tmp, x, B);
      if (s) convert_acts(be, &s->acts[i], &r, sizes, 0);
      x = r.h2;
   }
   be->copy(out, r.h2, sizeof(float) * BTD);
}

int hrm_module_forward(hrm_module *m, hrm_tensor *out, int32_t n,
                       const hrm_tensor *const *in) {
   HRM_CHECK(m && out, HRM_ERR_ARG, "module_forward: module or out is NULL");
   int32_t ndim;
   int64_t shape[4];
   HRM_TRY(hrm_module_output_shape(&ndim, shape, m, n, in));
   int64_t numel = 1;
   for (int k = 0; k < ndim; k++) numel *= shape[k];
   HRM_CHECK(out->dtype == HRM_DTYPE_F32 && out->device == m->store->device && out->numel == numel,
             HRM_ERR_SHAPE, "%s '%s': out must be an f32 tensor of %lld elements, got %s with %lld",
             kind_name(m->kind), m->name, (long long)numel, hrm_dtype_name(out->dtype),
             (long long)out->numel);
   HRM_CHECK(!hrm_tapes_hold(m->store, out->data), HRM_ERR_ARG,
             "%s '%s': out is the output of a call on a tape, which its backward still needs "
             "---> HINT: write into another tensor, or make this call through the tape",
             kind_name(m->kind), m->name);
   float *scratch = hrm_params_scratch(m->store, scratch_floats(m, in, FOR_UNTAPED));
   if (!scratch) return HRM_ERR_MEMORY;
   switch (m->kind) {
   case HRM_MODULE_BLOCK:
   case HRM_MODULE_REASONING: {
      blocks_forward_shared(m, F32(out), scratch, n, in, NULL);
      return HRM_OK;
   }
   case HRM_MODULE_LINEAR: linear_forward(m, F32(out), scratch, in[0]); return HRM_OK;
   default: embed_forward(m, F32(out), scratch, n, in); return HRM_OK;
   }
}

int hrm_module_forward_saved(hrm_module *m, int32_t n, const hrm_tensor *const *in, float *saved,
                             float **out) {
   int32_t ndim;
   int64_t shape[4];
   HRM_TRY(hrm_module_output_shape(&ndim, shape, m, n, in));
   hrm_block_acts stack_acts[MAX_STACK_BLOCKS], *acts = stack_acts;
   const int32_t nb = m->kind == HRM_MODULE_REASONING ? m->nblocks : 1;
   if (nb > MAX_STACK_BLOCKS) {
      acts = malloc(sizeof *acts * (size_t)nb);
      HRM_CHECK(acts, HRM_ERR_MEMORY, "module: out of memory");
   }
   saved_layout s;
   layout_saved(saved, &s, acts, m, in, shape, ndim);
   float *scratch = hrm_params_scratch(m->store, scratch_floats(m, in, FOR_TAPED));
   if (!scratch) {
      if (acts != stack_acts) free(acts);
      return HRM_ERR_MEMORY;
   }
   switch (m->kind) {
   case HRM_MODULE_BLOCK:
   case HRM_MODULE_REASONING: {
      const int B = (int)in[0]->shape[0];
      const float *x = F32(in[0]);
      if (s.half) {
         blocks_forward_shared(m, s.out, scratch, n, in, &s);
         break;
      }
      if (m->kind == HRM_MODULE_REASONING) {
         sum_inputs(m->store->be, s.in0, n, in);
         x = s.in0;
      }
      s.out = run_blocks(m, acts, scratch, x, B);
      break;
   }
   case HRM_MODULE_LINEAR: linear_forward(m, s.out, scratch, in[0]); break;
   default: embed_forward(m, s.out, s.prefix ? s.prefix : scratch, n, in); break;
   }
   *out = s.out;
   if (acts != stack_acts) free(acts);
   return HRM_OK;
}

/* ---- backward ----------------------------------------------------------------------------------- */

typedef struct back_scratch {
   float *dh, *dh2, *dqkv, *dgu, *dact, *datt;
   float *dT, *dS, *dtgu, *dtact;  // the token-mixing sublayer (mlp_t)
} back_scratch;

/* dout (B, T, D) is the gradient of the block output and doubles as scratch; din receives the
 * gradient of the block input `in`. */
static void block_backward(const hrm_module *m, const hrm_block_acts *r, const float *in,
                           float *dout, float *din, const back_scratch *w, int B) {
   const hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   const int D = m->bc.hidden_size, I = m->I, T = m->bc.tokens, NH = m->bc.num_heads, HD = m->HD;
   const int A = m->A;
   const int64_t N = (int64_t)B * T;
   float *dA = dout;  // (B, T, max(D, A)) reused in place
   be->rmsnorm_backward(dA, dout, r->h2, r->rstd2, N, D);  // d(h1 + mlp)
   be->linear_backward(w->dact, hrm_params_grad_ptr(p, m->down), NULL, dA, r->act,
                       hrm_params_value_ptr(p, m->down), N, I, D, 0.0f);
   be->swiglu_backward(w->dgu, w->dact, r->gu, N, I);
   be->linear_backward(dA, hrm_params_grad_ptr(p, m->gate_up), NULL, w->dgu, r->h1,
                       hrm_params_value_ptr(p, m->gate_up), N, D, 2 * I, 1.0f);
   if (m->bc.mlp_t) { /* dA = d h1: back through the transposed norm, token SwiGLU, residual */
      const int IT = m->IT;
      const int64_t ND = (int64_t)B * D;
      be->transpose_forward(w->dT, dA, B, T, D);                        // (B, D, T) d tnorm
      be->rmsnorm_backward(w->dS, w->dT, r->tnorm, r->trstd, ND, T);    // d(tx + mlp_t(tx))
      be->linear_backward(w->dtact, hrm_params_grad_ptr(p, m->tdown), NULL, w->dS, r->tact,
                          hrm_params_value_ptr(p, m->tdown), ND, IT, T, 0.0f);
      be->swiglu_backward(w->dtgu, w->dtact, r->tgu, ND, IT);
      be->linear_backward(w->dS, hrm_params_grad_ptr(p, m->tgu), NULL, w->dtgu, r->tx,
                          hrm_params_value_ptr(p, m->tgu), ND, T, 2 * IT, 1.0f);  // d tx
      be->transpose_forward(din, w->dS, B, D, T);
      return;
   }
   be->rmsnorm_backward(din, dA, r->h1, r->rstd1, N, D);  // d(in + attn)
   be->linear_backward(dA, hrm_params_grad_ptr(p, m->o), NULL, din, r->atty,
                       hrm_params_value_ptr(p, m->o), N, A, D, 0.0f);
   if (m->rope_cos && be->rope_attention_backward) {
      be->rope_attention_backward(w->dqkv, w->datt, dA, r->qkv, r->att, m->rope_cos, m->rope_sin,
                                  B, T, NH, HD);
   } else {
      be->attention_backward(w->dqkv, w->datt, dA, r->qkv, r->att, B, T, NH, HD);
      if (m->rope_cos) be->rope_backward(w->dqkv, m->rope_cos, m->rope_sin, B, T, NH, HD);
   }
   be->linear_backward(din, hrm_params_grad_ptr(p, m->qkv), NULL, w->dqkv, in,
                       hrm_params_value_ptr(p, m->qkv), N, D, 3 * A, 1.0f);
}

/* dst = src (accumulate 0) or dst += src (1), n floats. */
static void deliver(const hrm_backend *be, float *dst, const float *src, int64_t n, int accumulate) {
   if (accumulate) be->residual_forward(dst, dst, src, n);
   else be->copy(dst, src, sizeof(float) * (size_t)n);
}

static int blocks_backward(hrm_module *m, int32_t n, const hrm_tensor *const *in,
                           const saved_layout *s, const float *dout, float *const *dins,
                           const int *accumulate) {
   const int B = (int)in[0]->shape[0];
   const int64_t BTD = (int64_t)B * m->bc.tokens * m->bc.hidden_size;
   float *scratch = hrm_params_scratch(m->store, scratch_floats(m, in, FOR_BACKWARD));
   if (!scratch) return HRM_ERR_MEMORY;
   back_scratch w;
   size_t off = 0;
   const size_t BT = (size_t)B * (size_t)m->bc.tokens, D = (size_t)m->bc.hidden_size;
   const size_t A = (size_t)m->A, W = A > D ? A : D;
   w.dh = take(scratch, &off, BT * W);
   w.dh2 = take(scratch, &off, BT * W);
   w.dqkv = take(scratch, &off, BT * 3 * A);
   w.dgu = take(scratch, &off, BT * 2 * (size_t)m->I);
   w.dact = take(scratch, &off, BT * (size_t)m->I);
   const size_t tok = m->bc.mlp_t ? 1 : 0, IT = (size_t)m->IT;
   w.datt = take(scratch, &off, tok ? 0 : (size_t)B * (size_t)m->bc.num_heads *
                                             (size_t)m->bc.tokens * (size_t)m->bc.tokens);
   w.dT = take(scratch, &off, tok * BT * D);
   w.dS = take(scratch, &off, tok * BT * D);
   w.dtgu = take(scratch, &off, (size_t)B * D * 2 * IT);
   w.dtact = take(scratch, &off, (size_t)B * D * IT);
   hrm_block_acts wide;  // a bf16 tape's record of the block in hand, widened
   float *xwide = NULL;  // (B, T, D) and its input
   size_t sizes[NFIELDS];
   if (s->half) {
      take_acts(scratch, &off, &wide, m, (size_t)B, 0, 1);
      xwide = take(scratch, &off, BT * D);
      act_sizes(sizes, m, (size_t)B, 1);
   }
   const hrm_backend *be = m->store->be;
   float *cur = w.dh, *other = w.dh2;
   be->copy(cur, dout, sizeof(float) * (size_t)BTD);  // the caller's gradient stays intact
   const int32_t nb = m->kind == HRM_MODULE_BLOCK ? 1 : m->nblocks;
   const float *x0 = m->kind == HRM_MODULE_REASONING ? s->in0 : F32(in[0]);
   for (int32_t i = nb - 1; i >= 0; i--) {
      const float *x = i == 0 ? x0 : s->acts[i - 1].h2;
      hrm_block_acts *r = &s->acts[i];
      if (s->half) {
         convert_acts(be, &wide, r, sizes, 1);
         r = &wide;
         if (x != F32(in[0])) { /* a block's input from the bf16 tape, not the call's own */
            be->widen_bf16(xwide, (const uint16_t *)x, BTD);
            x = xwide;
         }
      }
      block_backward(m->kind == HRM_MODULE_BLOCK ? m : m->blocks[i], r, x, cur, other, &w, B);
      float *t = cur;
      cur = other;
      other = t;
   }
   /* the sum's gradient reaches every input as it is */
   for (int32_t i = 0; i < n; i++)
      if (dins[i]) deliver(be, dins[i], cur, BTD, accumulate[i]);
   return HRM_OK;
}

static int linear_backward(hrm_module *m, const hrm_tensor *x, const float *dout, float *dx,
                           int accumulate) {
   hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   const float *W = hrm_params_value_ptr(p, m->w), *X = F32(x);
   float *dW = hrm_params_grad_ptr(p, m->w), *db = hrm_params_grad_ptr(p, m->b);
   const int O = m->out, K = m->in;
   if (m->count == 0) {
      be->linear_backward(dx, dW, db, dout, X, W, rows_of(x), K, O, accumulate ? 1.0f : 0.0f);
      return HRM_OK;
   }
   const int B = (int)x->shape[0], T = (int)x->shape[1];
   if (m->count == 1) {
      if (dx) {
         if (!accumulate) be->zero(dx, sizeof(float) * (size_t)B * (size_t)T * (size_t)K);
         be->gemm(0, 0, B, K, O, 1.0f, dout, O, W, K, 1.0f, dx + (int64_t)m->first * K,
                  (int64_t)T * K);
      }
      be->gemm(1, 0, O, K, B, 1.0f, dout, O, X + (int64_t)m->first * K, (int64_t)T * K, 1.0f, dW,
               K);
      if (db) be->bias_backward(db, dout, B, O);
      return HRM_OK;
   }
   /* a wider window: the full (B, T, out) gradient with zero rows outside it */
   float *full = hrm_params_scratch(p, (size_t)B * (size_t)T * (size_t)O);
   if (!full) return HRM_ERR_MEMORY;
   const size_t window = sizeof(float) * (size_t)m->count * (size_t)O;
   be->zero(full, sizeof(float) * (size_t)B * (size_t)T * (size_t)O);
   be->copy_rows(full + (int64_t)m->first * O, (int64_t)sizeof(float) * T * O, dout,
                 (int64_t)window, B, window);
   be->linear_backward(dx, dW, db, full, X, W, (int64_t)B * T, K, O, accumulate ? 1.0f : 0.0f);
   return HRM_OK;
}

static int embed_backward(hrm_module *m, int32_t n, const hrm_tensor *const *in,
                          const float *dout) {
   hrm_params *p = m->store;
   const hrm_backend *be = p->be;
   if (m->kind == HRM_MODULE_EMBEDDING) {
      const int cols = (int)in[0]->shape[in[0]->ndim - 1];
      be->embedding_backward(hrm_params_grad_ptr(p, m->w), NULL, NULL, dout, I32(in[0]),
                             (int)rows_of(in[0]), cols, 0, m->dim, 0, 1.0f, 0);
      return HRM_OK;
   }
   if (m->kind == HRM_MODULE_PUZZLE_EMBEDDING) {
      float *g;
      int32_t *ids;
      const int32_t rows = (int32_t)in[0]->numel;
      HRM_TRY(hrm_params_sparse_append(p, rows, &g, &ids));
      be->copy(ids, in[0]->data, sizeof(int32_t) * (size_t)rows);
      be->copy(g, dout, sizeof(float) * (size_t)rows * (size_t)m->dim);
      return HRM_OK;
   }
   const int B = (int)in[0]->shape[0], S = (int)in[0]->shape[1];
   const int E = m->puzzle ? m->puzzle->dim : 0;
   float *dprefix = NULL;
   if (E > 0) { /* this batch's rows join the pending sparse gradient (accumulation appends) */
      int32_t *ids;
      HRM_TRY(hrm_params_sparse_append(p, B, &dprefix, &ids));
      if (n == 2 && in[1]) be->copy(ids, in[1]->data, sizeof(int32_t) * (size_t)B);
      else be->zero(ids, sizeof(int32_t) * (size_t)B);
   }
   be->embedding_backward(hrm_params_grad_ptr(p, m->tokens->w), dprefix,
                          m->positions ? hrm_params_grad_ptr(p, m->positions->w) : NULL, dout,
                          I32(in[0]), B, S, m->prefix, m->dim, E, (float)m->scale,
                          m->positions != NULL);
   return HRM_OK;
}

int hrm_module_backward(hrm_module *m, int32_t n, const hrm_tensor *const *in, float *saved,
                        const float *dout, float *const *dins, const int *accumulate) {
   int32_t ndim;
   int64_t shape[4];
   HRM_TRY(hrm_module_output_shape(&ndim, shape, m, n, in));
   switch (m->kind) {
   case HRM_MODULE_BLOCK:
   case HRM_MODULE_REASONING: {
      hrm_block_acts stack_acts[MAX_STACK_BLOCKS], *acts = stack_acts;
      if (m->nblocks > MAX_STACK_BLOCKS) {
         acts = malloc(sizeof *acts * (size_t)m->nblocks);
         HRM_CHECK(acts, HRM_ERR_MEMORY, "module: out of memory");
      }
      saved_layout s;
      layout_saved(saved, &s, acts, m, in, shape, ndim);
      const int rc = blocks_backward(m, n, in, &s, dout, dins, accumulate);
      if (acts != stack_acts) free(acts);
      return rc;
   }
   case HRM_MODULE_LINEAR: return linear_backward(m, in[0], dout, dins[0], accumulate[0]);
   default: return embed_backward(m, n, in, dout);
   }
}
