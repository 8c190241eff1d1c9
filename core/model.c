/* model.c — the HRM model: parameters, the inner forward with the 1-step gradient, the ACT step.
 *
 * Parameters: one flat f32 block (gradients: another), named views in the reference's order;
 * puzzle table, H_init, L_init are separate buffers. hrm_model_step = one ACT segment for every
 * row (spec §1.11, §2.2, §3): reset, no-grad cycles, final L and H calls with activations kept,
 * heads, halting (exploration, target-Q forward), losses, backward of total / global_batch.
 * Activations come from an arena sized at first use, re-sized only when B grows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/fastmath.h"
#include "device.h"
#include "error.h"
#include "nn.h"

/* ---- construction ------------------------------------------------------------------------ */

static int add_tensor(hrm_model *m, const char *name, hrm_tensor *src, hrm_tensor *gsrc,
                      int64_t offset, int32_t ndim, const int64_t *shape, int32_t is_param) {
   hrm_named *n = &m->tensors[m->ntensors];
   snprintf(n->name, sizeof n->name, "%s", name);
   n->is_param = is_param;
   HRM_TRY(hrm_tensor_view(&n->value, src, offset, ndim, shape));
   if (gsrc) HRM_TRY(hrm_tensor_view(&n->grad, gsrc, offset, ndim, shape));
   m->ntensors++;
   return HRM_OK;
}

/* Lays out (or, with m->params NULL, only counts) the parameters in the reference's order. */
static int layout_params(hrm_model *m, int64_t *count) {
   const hrm_config *c = &m->cfg;
   const int64_t D = c->hidden_size, V = c->vocab_size, I = m->I, T = m->T;
   int64_t off = 0;
   char name[96];
   float *P = m->params ? (float *)m->params->data : NULL;
   float *G = m->grads ? (float *)m->grads->data : NULL;
#define PARAM(nm, ptr, gptr, nd, ...)                                                      \
   do {                                                                                     \
      const int64_t shp_[] = {__VA_ARGS__};                                                 \
      int64_t n_ = 1;                                                                       \
      for (int k_ = 0; k_ < (nd); k_++) n_ *= shp_[k_];                                     \
      if (P) {                                                                              \
         (ptr) = P + off;                                                                   \
         (gptr) = G + off;                                                                  \
         HRM_TRY(add_tensor(m, (nm), m->params, m->grads, off, (nd), shp_, 1));              \
      }                                                                                     \
      off += n_;                                                                            \
   } while (0)
   PARAM("model.inner.embed_tokens.embedding_weight", m->w_tok, m->g_tok, 2, V, D);
   PARAM("model.inner.lm_head.weight", m->w_lm, m->g_lm, 2, V, D);
   PARAM("model.inner.q_head.weight", m->w_q, m->g_q, 2, 2, D);
   PARAM("model.inner.q_head.bias", m->b_q, m->gb_q, 1, 2);
   if (c->pos_encodings == HRM_POS_LEARNED)
      PARAM("model.inner.embed_pos.embedding_weight", m->w_pos, m->g_pos, 2, T, D);
   for (int lvl = 0; lvl < 2; lvl++) {
      const char *ln = lvl == 0 ? "H_level" : "L_level";
      const int n = lvl == 0 ? c->H_layers : c->L_layers;
      hrm_block_params *bp = lvl == 0 ? m->Hp : m->Lp, *bg = lvl == 0 ? m->Hg : m->Lg;
      for (int i = 0; i < n; i++) {
         hrm_block_params dummy, dummy_g;
         hrm_block_params *p = P ? &bp[i] : &dummy, *g = P ? &bg[i] : &dummy_g;
         snprintf(name, sizeof name, "model.inner.%s.layers.%d.self_attn.qkv_proj.weight", ln, i);
         PARAM(name, p->qkv, g->qkv, 2, 3 * D, D);
         snprintf(name, sizeof name, "model.inner.%s.layers.%d.self_attn.o_proj.weight", ln, i);
         PARAM(name, p->o, g->o, 2, D, D);
         snprintf(name, sizeof name, "model.inner.%s.layers.%d.mlp.gate_up_proj.weight", ln, i);
         PARAM(name, p->gate_up, g->gate_up, 2, 2 * I, D);
         snprintf(name, sizeof name, "model.inner.%s.layers.%d.mlp.down_proj.weight", ln, i);
         PARAM(name, p->down, g->down, 2, D, I);
      }
   }
#undef PARAM
   *count = off;
   return HRM_OK;
}

/* Initialisation in the reference's construction order (§1.1, §1.2). */
static int init_params(hrm_model *m) {
   const hrm_config *c = &m->cfg;
   const double D = c->hidden_size;
   for (int32_t i = 0; i < m->ntensors; i++) {
      hrm_named *n = &m->tensors[i];
      const char *s = n->name;
      double std;
      if (strstr(s, "q_head.weight")) {
         HRM_TRY(hrm_tensor_fill(n->value, 0.0));
         continue;
      }
      if (strstr(s, "q_head.bias")) {
         HRM_TRY(hrm_tensor_fill(n->value, -5.0));
         continue;
      }
      if (!n->is_param) continue;
      if (strstr(s, "embedding_weight")) std = 1.0 / sqrt(D);
      else std = 1.0 / sqrt((double)n->value->shape[1]);  // LeCun: 1/√in
      HRM_TRY(hrm_tensor_trunc_normal(n->value, &m->rng, std));
   }
   HRM_TRY(hrm_tensor_trunc_normal(m->H_init, &m->rng, 1.0));
   HRM_TRY(hrm_tensor_trunc_normal(m->L_init, &m->rng, 1.0));
   return HRM_OK;
}

/* Builds the model; init = 0 leaves every tensor zero (a loader overwrites them next). */
static int model_build(hrm_model **out, const hrm_config *cfg, uint64_t seed, int32_t device,
                       int init) {
   HRM_CHECK(out, HRM_ERR_ARG, "model_new: out is NULL");
   *out = NULL;
   HRM_TRY(hrm_config_check(cfg));
   HRM_TRY(hrm_device_model_check(device));
   hrm_model *m = calloc(1, sizeof *m);
   HRM_CHECK(m, HRM_ERR_MEMORY, "model_new: out of memory");
   m->cfg = *cfg;
   m->device = device;
   m->be = &hrm_cpu_backend;
   const int D = cfg->hidden_size;
   m->E = cfg->puzzle_emb_ndim;
   m->P = (m->E + D - 1) / D;
   m->T = cfg->seq_len + m->P;
   m->HD = D / cfg->num_heads;
   m->I = hrm_swiglu_inter(D, cfg->expansion);
   hrm_rng_init(&m->rng, seed);

   int rc = HRM_OK;
   int64_t count = 0;
   m->Hp = calloc((size_t)cfg->H_layers, sizeof *m->Hp);
   m->Hg = calloc((size_t)cfg->H_layers, sizeof *m->Hg);
   m->Lp = calloc((size_t)cfg->L_layers, sizeof *m->Lp);
   m->Lg = calloc((size_t)cfg->L_layers, sizeof *m->Lg);
   const int32_t max_tensors = 8 + 4 * (cfg->H_layers + cfg->L_layers);
   m->tensors = calloc((size_t)max_tensors, sizeof *m->tensors);
   if (!m->Hp || !m->Hg || !m->Lp || !m->Lg || !m->tensors) {
      rc = HRM_FAIL(HRM_ERR_MEMORY, "model_new: out of memory");
      goto fail;
   }
   if ((rc = layout_params(m, &count)) != HRM_OK) goto fail;
   m->num_params = count;
   if ((rc = hrm_tensor_new(&m->params, HRM_DTYPE_F32, 1, &count)) != HRM_OK) goto fail;
   if ((rc = hrm_tensor_new(&m->grads, HRM_DTYPE_F32, 1, &count)) != HRM_OK) goto fail;
   if ((rc = layout_params(m, &count)) != HRM_OK) goto fail;

   const int64_t dshape[1] = {D};
   if ((rc = hrm_tensor_new(&m->H_init, HRM_DTYPE_F32, 1, dshape)) != HRM_OK) goto fail;
   if ((rc = hrm_tensor_new(&m->L_init, HRM_DTYPE_F32, 1, dshape)) != HRM_OK) goto fail;
   if ((rc = add_tensor(m, "model.inner.H_init", m->H_init, NULL, 0, 1, dshape, 0)) != HRM_OK)
      goto fail;
   if ((rc = add_tensor(m, "model.inner.L_init", m->L_init, NULL, 0, 1, dshape, 0)) != HRM_OK)
      goto fail;
   if (m->E > 0) {
      const int64_t pshape[2] = {cfg->num_puzzle_identifiers, m->E};
      if ((rc = hrm_tensor_new(&m->puzzle, HRM_DTYPE_F32, 2, pshape)) != HRM_OK) goto fail;
      if ((rc = add_tensor(m, "model.inner.puzzle_emb.weights", m->puzzle, NULL, 0, 2, pshape,
                           0)) != HRM_OK)
         goto fail;
   }
   if (cfg->pos_encodings == HRM_POS_ROPE) {
      m->rope_cos = malloc(sizeof(float) * (size_t)m->T * (size_t)m->HD);
      m->rope_sin = malloc(sizeof(float) * (size_t)m->T * (size_t)m->HD);
      if (!m->rope_cos || !m->rope_sin) {
         rc = HRM_FAIL(HRM_ERR_MEMORY, "model_new: out of memory");
         goto fail;
      }
      hrm_cpu_rope_tables(m->rope_cos, m->rope_sin, m->T, m->HD, cfg->rope_theta);
   }
   if (init && (rc = init_params(m)) != HRM_OK) goto fail;
   *out = m;
   return HRM_OK;
fail:
   hrm_model_free(m);
   return rc;
}

int hrm_model_new(hrm_model **out, const hrm_config *cfg, uint64_t seed, int32_t device) {
   return model_build(out, cfg, seed, device, 1);
}

int hrm_model_new_empty(hrm_model **out, const hrm_config *cfg, int32_t device) {
   return model_build(out, cfg, 0, device, 0);
}

static void arena_release(hrm_arena *a) {
   free(a->base);
   free(a->rows);
   free(a->tok_loss);
   free(a->saved);
   memset(a, 0, sizeof *a);
}

void hrm_model_free(hrm_model *m) {
   if (!m) return;
   for (int32_t i = 0; i < m->ntensors; i++) {
      hrm_tensor_free(m->tensors[i].value);
      hrm_tensor_free(m->tensors[i].grad);
   }
   free(m->tensors);
   hrm_tensor_free(m->params);
   hrm_tensor_free(m->grads);
   hrm_tensor_free(m->puzzle);
   hrm_tensor_free(m->H_init);
   hrm_tensor_free(m->L_init);
   free(m->Hp);
   free(m->Hg);
   free(m->Lp);
   free(m->Lg);
   free(m->rope_cos);
   free(m->rope_sin);
   free(m->pgrad);
   free(m->pgrad_ids);
   arena_release(&m->arena);
   free(m);
}

int hrm_model_set_halting(hrm_model *m, int32_t halt_max_steps, double exploration_prob) {
   HRM_CHECK(m, HRM_ERR_ARG, "set_halting: model is NULL");
   HRM_CHECK(halt_max_steps >= 1, HRM_ERR_ARG, "set_halting: halt_max_steps = %d must be >= 1",
             halt_max_steps);
   HRM_CHECK(exploration_prob >= 0.0 && exploration_prob <= 1.0, HRM_ERR_ARG,
             "set_halting: exploration probability %g must be in [0, 1]", exploration_prob);
   m->cfg.halt_max_steps = halt_max_steps;
   m->cfg.halt_exploration_prob = exploration_prob;
   return HRM_OK;
}

int hrm_model_get_config(const hrm_model *m, hrm_config *out) {
   HRM_CHECK(m && out, HRM_ERR_ARG, "model_get_config: model or out is NULL");
   *out = m->cfg;
   return HRM_OK;
}

int64_t hrm_model_num_parameters(const hrm_model *m) { return m ? m->num_params : 0; }

int32_t hrm_model_num_tensors(const hrm_model *m) { return m ? m->ntensors : 0; }

int hrm_model_tensor(const hrm_model *m, int32_t i, const char **name, hrm_tensor **value,
                     hrm_tensor **grad, int32_t *is_param) {
   HRM_CHECK(m, HRM_ERR_ARG, "model_tensor: model is NULL");
   HRM_CHECK(i >= 0 && i < m->ntensors, HRM_ERR_RANGE,
             "model_tensor: index %d is out of range [0, %d)", i, m->ntensors);
   const hrm_named *n = &m->tensors[i];
   if (name) *name = n->name;
   if (is_param) *is_param = n->is_param;
   if (value) {
      *value = NULL;
      HRM_TRY(hrm_tensor_view(value, n->value, 0, n->value->ndim, n->value->shape));
   }
   if (grad) {
      *grad = NULL;
      if (n->grad) {
         int rc = hrm_tensor_view(grad, n->grad, 0, n->grad->ndim, n->grad->shape);
         if (rc != HRM_OK) {
            if (value) {
               hrm_tensor_free(*value);
               *value = NULL;
            }
            return rc;
         }
      }
   }
   return HRM_OK;
}

int32_t hrm_model_find_tensor(const hrm_model *m, const char *name) {
   if (!m || !name) return -1;
   for (int32_t i = 0; i < m->ntensors; i++)
      if (strcmp(m->tensors[i].name, name) == 0) return i;
   return -1;
}

int hrm_model_zero_grad(hrm_model *m) {
   HRM_CHECK(m, HRM_ERR_ARG, "model_zero_grad: model is NULL");
   memset(m->grads->data, 0, sizeof(float) * (size_t)m->num_params);
   if (m->pgrad) memset(m->pgrad, 0, sizeof(float) * (size_t)m->pcap * (size_t)m->E);
   m->pgrad_rows = 0;
   return HRM_OK;
}

hrm_rng *hrm_model_rng(hrm_model *m) { return m ? &m->rng : NULL; }

/* ---- the arena ---------------------------------------------------------------------------- */

static float *take(hrm_arena *a, size_t *off, size_t n) {
   float *p = a->base ? a->base + *off : NULL;
   *off += (n + 15) & ~(size_t)15;  // 64-byte aligned slices
   return p;
}

static void take_acts(hrm_arena *a, size_t *off, hrm_block_acts *r, size_t BT, size_t B,
                      const hrm_model *m) {
   const size_t D = (size_t)m->cfg.hidden_size, I = (size_t)m->I, T = (size_t)m->T;
   r->qkv = take(a, off, BT * 3 * D);
   r->att = take(a, off, B * (size_t)m->cfg.num_heads * T * T);
   r->atty = take(a, off, BT * D);
   r->h1 = take(a, off, BT * D);
   r->rstd1 = take(a, off, BT);
   r->gu = take(a, off, BT * 2 * I);
   r->act = take(a, off, BT * I);
   r->h2 = take(a, off, BT * D);
   r->rstd2 = take(a, off, BT);
}

static size_t layout_arena(hrm_arena *a, const hrm_model *m) {
   const size_t B = (size_t)a->cap, T = (size_t)m->T, D = (size_t)m->cfg.hidden_size;
   const size_t V = (size_t)m->cfg.vocab_size, S = (size_t)m->cfg.seq_len, I = (size_t)m->I;
   const size_t NH = (size_t)m->cfg.num_heads, BT = B * T;
   size_t off = 0;
   a->x = take(a, &off, BT * D);
   a->prefix = take(a, &off, B * (size_t)m->E);
   a->zH = take(a, &off, BT * D);
   a->zL = take(a, &off, BT * D);
   a->inj = take(a, &off, BT * D);
   a->tmp = take(a, &off, BT * D);
   take_acts(a, &off, &a->scratch, BT, B, m);
   a->logits_full = take(a, &off, BT * V);
   a->logits = take(a, &off, B * S * V);
   a->q = take(a, &off, 2 * B);
   a->q_next = take(a, &off, 2 * B);
   a->target = take(a, &off, B);
   a->seq_ok = take(a, &off, B);
   a->qh = take(a, &off, B);
   a->qc = take(a, &off, B);
   if (a->has_train) {
      const int nl = m->cfg.L_layers + m->cfg.H_layers;
      for (int i = 0; i < nl; i++) {
         hrm_block_acts dummy;
         take_acts(a, &off, a->saved ? &a->saved[i] : &dummy, BT, B, m);
      }
      a->in_L = take(a, &off, BT * D);
      a->in_H = take(a, &off, BT * D);
      a->dlogits_full = take(a, &off, BT * V);
      a->dlogits = take(a, &off, B * S * V);
      a->dq = take(a, &off, 2 * B);
      a->dqs = take(a, &off, 2 * B);
      a->dh = take(a, &off, BT * D);
      a->dh2 = take(a, &off, BT * D);
      a->dqkv = take(a, &off, BT * 3 * D);
      a->dgu = take(a, &off, BT * 2 * I);
      a->dact = take(a, &off, BT * I);
      a->datt = take(a, &off, B * NH * T * T);
   }
   return off;
}

/* The puzzle-prefix gradient buffer holds at least B rows (training only). */
static int pgrad_reserve(hrm_model *m, int32_t B) {
   if (m->E == 0 || m->pcap >= B) return HRM_OK;
   float *pg = calloc((size_t)B * (size_t)m->E, sizeof(float));
   int32_t *ids = calloc((size_t)B, sizeof(int32_t));
   if (!pg || !ids) {
      free(pg);
      free(ids);
      return HRM_FAIL(HRM_ERR_MEMORY, "model_step: out of memory");
   }
   free(m->pgrad);
   free(m->pgrad_ids);
   m->pgrad = pg;
   m->pgrad_ids = ids;
   m->pcap = B;
   m->pgrad_rows = 0;
   return HRM_OK;
}

/* Makes the arena hold at least B rows (and the training part when train). */
static int arena_reserve(hrm_model *m, int32_t B, int train) {
   hrm_arena *a = &m->arena;
   if (train) HRM_TRY(pgrad_reserve(m, B));
   if (a->base && a->cap >= B && (a->has_train || !train)) return HRM_OK;
   const int32_t cap = B > a->cap ? B : a->cap;
   const int has_train = train || a->has_train;
   arena_release(a);
   a->cap = cap;
   a->has_train = has_train;
   const int nl = m->cfg.L_layers + m->cfg.H_layers;
   if (has_train) {
      a->saved = calloc((size_t)nl, sizeof *a->saved);
      HRM_CHECK(a->saved, HRM_ERR_MEMORY, "model_step: out of memory");
   }
   const size_t floats = layout_arena(a, m);
   const size_t S = (size_t)m->cfg.seq_len, Bs = (size_t)cap;
   a->base = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
   a->rows = malloc(sizeof(int32_t) * (Bs * 3 * S + 4 * Bs));
   a->tok_loss = malloc(sizeof(double) * (Bs * 2 * S + 2 * Bs));
   if (!a->base || !a->rows || !a->tok_loss) {
      size_t mb = floats * sizeof(float) >> 20;
      arena_release(a);
      return HRM_FAIL(HRM_ERR_MEMORY, "model_step: cannot allocate %zu MiB of activations for "
                      "batch %d ---> HINT: use a smaller batch", mb, cap);
   }
   memset(a->base, 0, floats * sizeof(float));
   a->floats = floats;
   layout_arena(a, m);
   a->pids = a->rows + Bs;
   a->inputs = a->pids + Bs;
   a->labels = a->inputs + Bs * S;
   a->pred = a->labels + Bs * S;
   a->new_steps = a->pred + Bs * S;
   a->new_halted = (uint8_t *)(a->new_steps + Bs);
   a->tok_w = a->tok_loss + Bs * S;
   a->row_w = a->tok_w + Bs * S;
   a->bce = a->row_w + Bs;
   return HRM_OK;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* out (N, D) = rms_norm(a + b): one fused pass where the backend has it, otherwise the residual
 * sum is formed in b's buffer first (b is scratch). */
static void add_rmsnorm(const hrm_backend *be, float *out, float *rstd, const float *a,
                        float *b, int64_t N, int D, float eps) {
   if (be->add_rmsnorm_forward) {
      be->add_rmsnorm_forward(out, rstd, a, b, N, D, eps);
   } else {
      be->residual_forward(b, a, b, N * D);
      be->rmsnorm_forward(out, rstd, b, N, D, eps);
   }
}

/* One post-norm block; `in` may alias acts->h2 (no-grad reuse), the output is acts->h2. */
static void block_forward(hrm_model *m, hrm_block_acts *r, float *tmp, const float *in,
                          const hrm_block_params *p, int B) {
   const hrm_backend *be = m->be;
   const int D = m->cfg.hidden_size, I = m->I, T = m->T, NH = m->cfg.num_heads, HD = m->HD;
   const int64_t N = (int64_t)B * T;
   const float eps = (float)m->cfg.rms_norm_eps;
   be->linear_forward(r->qkv, in, p->qkv, NULL, N, D, 3 * D);
   if (m->rope_cos && be->rope_attention_forward) {
      be->rope_attention_forward(r->atty, r->att, r->qkv, m->rope_cos, m->rope_sin, B, T, NH, HD);
   } else {
      if (m->rope_cos) be->rope_forward(r->qkv, m->rope_cos, m->rope_sin, B, T, NH, HD);
      be->attention_forward(r->atty, r->att, r->qkv, B, T, NH, HD);
   }
   be->linear_forward(tmp, r->atty, p->o, NULL, N, D, D);
   add_rmsnorm(be, r->h1, r->rstd1, in, tmp, N, D, eps);
   be->linear_forward(r->gu, r->h1, p->gate_up, NULL, N, D, 2 * I);
   be->swiglu_forward(r->act, r->gu, N, I);
   be->linear_forward(tmp, r->act, p->down, NULL, N, I, D);
   add_rmsnorm(be, r->h2, r->rstd2, r->h1, tmp, N, D, eps);
}

/* z (B, T, D) = module(z, inj): blocks over z + inj. With `saved` (one record per layer) the
 * activations and the module input (in0) are kept for the backward. */
static void module_forward(hrm_model *m, float *z, const float *inj,
                           const hrm_block_params *p, int n, hrm_block_acts *saved, float *in0,
                           int B) {
   hrm_arena *a = &m->arena;
   const int64_t BTD = (int64_t)B * m->T * m->cfg.hidden_size;
   float *in = saved ? in0 : a->scratch.h2;
   m->be->residual_forward(in, z, inj, BTD);  // hidden_states + input_injection
   for (int i = 0; i < n; i++) {
      hrm_block_acts *r = saved ? &saved[i] : &a->scratch;
      block_forward(m, r, a->tmp, in, &p[i], B);
      in = r->h2;
   }
   memcpy(z, in, sizeof(float) * (size_t)BTD);
}

/* q (B, 2) = q_head(z_H[:, 0]) */
static void q_head_forward(const hrm_model *m, float *q, const float *zH, int B) {
   const int D = m->cfg.hidden_size;
   m->be->gemm(0, 1, B, 2, D, 1.0f, zH, (int64_t)m->T * D, m->w_q, D, 0.0f, q, 2);
   for (int b = 0; b < B; b++) {
      q[2 * b] += m->b_q[0];
      q[2 * b + 1] += m->b_q[1];
   }
}

/* The inner forward on the arena's zH, zL and x (§1.11). grad: the final L and H calls keep
 * their activations. logits: compute lm_head. q (B, 2) receives the Q head. */
static void inner_forward(hrm_model *m, int B, int grad, int logits, float *q) {
   hrm_arena *a = &m->arena;
   const hrm_config *c = &m->cfg;
   const int64_t BTD = (int64_t)B * m->T * c->hidden_size;
   for (int h = 0; h < c->H_cycles; h++) {
      for (int l = 0; l < c->L_cycles; l++) {
         if (h == c->H_cycles - 1 && l == c->L_cycles - 1) continue;
         m->be->residual_forward(a->inj, a->zH, a->x, BTD);
         module_forward(m, a->zL, a->inj, m->Lp, c->L_layers, NULL, NULL, B);
      }
      if (h != c->H_cycles - 1) module_forward(m, a->zH, a->zL, m->Hp, c->H_layers, NULL, NULL, B);
   }
   /* the 1-step gradient: only these two calls are in the graph */
   m->be->residual_forward(a->inj, a->zH, a->x, BTD);
   module_forward(m, a->zL, a->inj, m->Lp, c->L_layers, grad ? a->saved : NULL, a->in_L, B);
   module_forward(m, a->zH, a->zL, m->Hp, c->H_layers, grad ? a->saved + c->L_layers : NULL,
                  a->in_H, B);
   if (logits) {
      const int T = m->T, P = m->P, V = c->vocab_size, S = c->seq_len;
      m->be->linear_forward(a->logits_full, a->zH, m->w_lm, NULL, (int64_t)B * T,
                            c->hidden_size, V);
      for (int b = 0; b < B; b++)
         memcpy(a->logits + (int64_t)b * S * V, a->logits_full + ((int64_t)b * T + P) * V,
                sizeof(float) * (size_t)S * (size_t)V);
   }
   q_head_forward(m, q, a->zH, B);
}

/* ---- backward ----------------------------------------------------------------------------- */

/* dout (B, T, D) is the gradient of the block output and doubles as scratch; din receives the
 * gradient of the block input `in`. */
static void block_backward(hrm_model *m, const hrm_block_acts *r, const float *in, float *dout,
                           float *din, const hrm_block_params *p, hrm_block_params *g, int B) {
   const hrm_backend *be = m->be;
   hrm_arena *a = &m->arena;
   const int D = m->cfg.hidden_size, I = m->I, T = m->T, NH = m->cfg.num_heads, HD = m->HD;
   const int64_t N = (int64_t)B * T;
   float *dA = dout;  // (B, T, D) reused in place
   be->rmsnorm_backward(dA, dout, r->h2, r->rstd2, N, D);            // d(h1 + mlp)
   be->linear_backward(a->dact, g->down, NULL, dA, r->act, p->down, N, I, D, 0.0f);
   be->swiglu_backward(a->dgu, a->dact, r->gu, N, I);
   be->linear_backward(dA, g->gate_up, NULL, a->dgu, r->h1, p->gate_up, N, D, 2 * I, 1.0f);
   be->rmsnorm_backward(din, dA, r->h1, r->rstd1, N, D);             // d(in + attn)
   be->linear_backward(dA, g->o, NULL, din, r->atty, p->o, N, D, D, 0.0f);
   if (m->rope_cos && be->rope_attention_backward) {
      be->rope_attention_backward(a->dqkv, a->datt, dA, r->qkv, r->att, m->rope_cos, m->rope_sin,
                                  B, T, NH, HD);
   } else {
      be->attention_backward(a->dqkv, a->datt, dA, r->qkv, r->att, B, T, NH, HD);
      if (m->rope_cos) be->rope_backward(a->dqkv, m->rope_cos, m->rope_sin, B, T, NH, HD);
   }
   be->linear_backward(din, g->qkv, NULL, a->dqkv, in, p->qkv, N, D, 3 * D, 1.0f);
}

/* Backward through a module whose output gradient is in *d; on return *d points at the
 * gradient of the module input (z + inj). The two buffers dh, dh2 alternate. */
static void module_backward(hrm_model *m, const hrm_block_acts *saved, const float *in0,
                            const hrm_block_params *p, hrm_block_params *g, int n, float **d,
                            int B) {
   hrm_arena *a = &m->arena;
   float *cur = *d, *other = cur == a->dh ? a->dh2 : a->dh;
   for (int i = n - 1; i >= 0; i--) {
      const float *in = i == 0 ? in0 : saved[i - 1].h2;
      block_backward(m, &saved[i], in, cur, other, &p[i], &g[i], B);
      float *t = cur;
      cur = other;
      other = t;
   }
   *d = cur;
}

static void model_backward(hrm_model *m, int B) {
   hrm_arena *a = &m->arena;
   const hrm_config *c = &m->cfg;
   const int D = c->hidden_size, T = m->T, P = m->P, V = c->vocab_size, S = c->seq_len;
   const int64_t N = (int64_t)B * T;
   const float *zH = a->saved[c->L_layers + c->H_layers - 1].h2;  // (B, T, D) final z_H
   /* lm_head over every position, prefix rows zero */
   for (int b = 0; b < B; b++) {
      memset(a->dlogits_full + (int64_t)b * T * V, 0, sizeof(float) * (size_t)P * (size_t)V);
      memcpy(a->dlogits_full + ((int64_t)b * T + P) * V, a->dlogits + (int64_t)b * S * V,
             sizeof(float) * (size_t)S * (size_t)V);
   }
   m->be->linear_backward(a->dh, m->g_lm, NULL, a->dlogits_full, zH, m->w_lm, N, D, V, 0.0f);
   /* q_head on position 0 */
   m->be->gemm(0, 0, B, D, 2, 1.0f, a->dq, 2, m->w_q, D, 1.0f, a->dh, (int64_t)T * D);
   m->be->gemm(1, 0, 2, D, B, 1.0f, a->dq, 2, zH, (int64_t)T * D, 1.0f, m->g_q, D);
   for (int b = 0; b < B; b++) {
      m->gb_q[0] += a->dq[2 * b];
      m->gb_q[1] += a->dq[2 * b + 1];
   }
   /* H call: input z_H (detached) + z_L; the gradient flows to z_L only */
   float *d = a->dh;
   module_backward(m, a->saved + c->L_layers, a->in_H, m->Hp, m->Hg, c->H_layers, &d, B);
   /* L call: input z_L (detached) + (z_H (detached) + x); the gradient flows to x only */
   module_backward(m, a->saved, a->in_L, m->Lp, m->Lg, c->L_layers, &d, B);
   /* input embedding */
   m->be->embedding_backward(m->g_tok, m->E > 0 ? m->pgrad : NULL, m->g_pos, d, a->inputs, B, S,
                             P, D, m->E, (float)sqrt((double)D),
                             c->pos_encodings == HRM_POS_LEARNED);
}

/* ---- the ACT step ------------------------------------------------------------------------- */

static int validate_batch(const hrm_model *m, const hrm_carry *c, const hrm_batch *batch,
                          const hrm_step_opts *opts, const hrm_step_out *out) {
   const hrm_config *cfg = &m->cfg;
   const int S = cfg->seq_len, V = cfg->vocab_size;
   HRM_CHECK(c->T == m->T && c->D == cfg->hidden_size && c->S == S, HRM_ERR_SHAPE,
             "model_step: the carry (T %d, D %d) was made for another model (T %d, D %d)", c->T,
             c->D, m->T, cfg->hidden_size);
   HRM_CHECK(batch->B == c->B, HRM_ERR_SHAPE,
             "model_step: batch.B = %d differs from the carry's batch %d", batch->B, c->B);
   HRM_CHECK(batch->inputs, HRM_ERR_ARG, "model_step: batch.inputs is NULL");
   HRM_CHECK(!opts->train || batch->labels, HRM_ERR_ARG,
             "model_step: batch.labels is NULL in training");
   HRM_CHECK(!opts->train || !opts->active, HRM_ERR_ARG,
             "model_step: opts.active is for evaluation only (train = 1)");
   HRM_CHECK(opts->global_batch >= 0, HRM_ERR_ARG, "model_step: opts.global_batch = %d < 0",
             opts->global_batch);
   for (int32_t b = 0; b < c->B; b++) {
      for (int s = 0; s < S; s++) {
         const int32_t x = batch->inputs[(int64_t)b * S + s];
         HRM_CHECK(x >= 0 && x < V, HRM_ERR_RANGE,
                   "model_step: batch.inputs[%d][%d] = %d is out of range [0, %d)", b, s, x, V);
         if (batch->labels) {
            const int32_t y = batch->labels[(int64_t)b * S + s];
            HRM_CHECK((y >= 0 && y < V) || y == HRM_IGNORE_LABEL, HRM_ERR_RANGE,
                      "model_step: batch.labels[%d][%d] = %d is neither in [0, %d) nor -100", b,
                      s, y, V);
         }
      }
      if (batch->puzzle_ids) {
         const int32_t id = batch->puzzle_ids[b], n = cfg->num_puzzle_identifiers;
         HRM_CHECK(id >= 0 && (id < n || (n == 0 && id == 0)), HRM_ERR_RANGE,
                   "model_step: batch.puzzle_ids[%d] = %d is out of range [0, %d)", b, id, n);
      }
   }
   if (out) {
      const hrm_tensor *ts[3] = {out->logits, out->q_halt_logits, out->q_continue_logits};
      const char *nm[3] = {"logits", "q_halt_logits", "q_continue_logits"};
      const int64_t want[3] = {(int64_t)c->B * S * V, c->B, c->B};
      for (int i = 0; i < 3; i++) {
         if (!ts[i]) continue;
         HRM_CHECK(ts[i]->dtype == HRM_DTYPE_F32 && ts[i]->device == HRM_DEVICE_CPU,
                   HRM_ERR_DTYPE, "model_step: out.%s must be an f32 CPU tensor", nm[i]);
         HRM_CHECK(ts[i]->numel == want[i], HRM_ERR_SHAPE,
                   "model_step: out.%s has %lld elements, expected %lld", nm[i],
                   (long long)ts[i]->numel, (long long)want[i]);
      }
   }
   return HRM_OK;
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + hrm_expf(-x)); }

int hrm_model_step(hrm_model *m, hrm_carry *c, const hrm_batch *batch,
                   const hrm_step_opts *opts, hrm_step_out *out) {
   HRM_CHECK(m && c && batch && opts, HRM_ERR_ARG,
             "model_step: model, carry, batch and opts must not be NULL");
   HRM_TRY(validate_batch(m, c, batch, opts, out));
   const hrm_config *cfg = &m->cfg;
   const int train = opts->train != 0;
   const int Bc = c->B, S = cfg->seq_len, V = cfg->vocab_size, D = cfg->hidden_size;
   const int T = m->T, E = m->E;
   const int64_t TD = (int64_t)T * D;
   const double G = opts->global_batch > 0 ? opts->global_batch : Bc;
   HRM_TRY(arena_reserve(m, Bc, train));
   hrm_arena *a = &m->arena;

   float *czH = c->z_H->data, *czL = c->z_L->data;
   int32_t *steps = c->steps->data, *cin = c->inputs->data, *clab = c->labels->data;
   int32_t *cpid = c->puzzle_ids->data;
   uint8_t *halted = c->halted->data;
   const float *Hinit = m->H_init->data, *Linit = m->L_init->data;

   /* rows to compute */
   int B = 0;
   for (int r = 0; r < Bc; r++)
      if (!opts->active || opts->active[r]) a->rows[B++] = r;
   if (out) {
      out->loss = out->lm_loss = out->q_halt_loss = out->q_continue_loss = 0.0;
      out->accuracy = out->exact_accuracy = out->q_halt_accuracy = out->steps = out->count = 0.0;
   }
   if (B == 0) return HRM_OK;

   /* 1. reset halted rows with the new batch's rows, gather the computed rows */
   for (int i = 0; i < B; i++) {
      const int r = a->rows[i];
      if (halted[r]) {
         for (int t = 0; t < T; t++) {
            memcpy(czH + r * TD + (int64_t)t * D, Hinit, sizeof(float) * (size_t)D);
            memcpy(czL + r * TD + (int64_t)t * D, Linit, sizeof(float) * (size_t)D);
         }
         steps[r] = 0;
         memcpy(cin + (int64_t)r * S, batch->inputs + (int64_t)r * S, sizeof(int32_t) * (size_t)S);
         if (batch->labels)
            memcpy(clab + (int64_t)r * S, batch->labels + (int64_t)r * S,
                   sizeof(int32_t) * (size_t)S);
         else
            for (int s = 0; s < S; s++) clab[(int64_t)r * S + s] = HRM_IGNORE_LABEL;
         cpid[r] = batch->puzzle_ids ? batch->puzzle_ids[r] : 0;
      }
      memcpy(a->zH + i * TD, czH + r * TD, sizeof(float) * (size_t)TD);
      memcpy(a->zL + i * TD, czL + r * TD, sizeof(float) * (size_t)TD);
      memcpy(a->inputs + (int64_t)i * S, cin + (int64_t)r * S, sizeof(int32_t) * (size_t)S);
      memcpy(a->labels + (int64_t)i * S, clab + (int64_t)r * S, sizeof(int32_t) * (size_t)S);
      a->pids[i] = cpid[r];
      if (E > 0)
         memcpy(a->prefix + (int64_t)i * E,
                (const float *)m->puzzle->data + (int64_t)a->pids[i] * E,
                sizeof(float) * (size_t)E);
   }

   /* 2. inner forward */
   m->be->embedding_forward(a->x, a->inputs, m->w_tok, E > 0 ? a->prefix : NULL, m->w_pos, B, S,
                            m->P, D, E, (float)sqrt((double)D));
   inner_forward(m, B, train, 1, a->q);
   for (int i = 0; i < B; i++) {
      a->qh[i] = a->q[2 * i];
      a->qc[i] = a->q[2 * i + 1];
   }

   /* 3. steps and halting (kept in the arena until the step cannot fail any more) */
   int32_t *new_steps = a->new_steps;
   uint8_t *new_halted = a->new_halted;
   const int act = train && cfg->halt_max_steps > 1;
   for (int i = 0; i < B; i++) {
      const int r = a->rows[i];
      new_steps[i] = (halted[r] ? 0 : steps[r]) + 1;
      const int is_last = new_steps[i] >= cfg->halt_max_steps;
      int h = is_last;
      if (act) {
         h = h || (a->qh[i] > a->qc[i]);
         const double u = hrm_rng_uniform(&m->rng);
         const int k = 2 + (int)floor(hrm_rng_uniform(&m->rng) * (cfg->halt_max_steps - 1));
         const int min_halt = u < cfg->halt_exploration_prob ? k : 0;
         h = h && new_steps[i] >= min_halt;
      }
      new_halted[i] = (uint8_t)h;
   }
   if (act) {
      /* target Q: one more no-grad inner forward on the new carry, same data (same x) */
      inner_forward(m, B, 0, 0, a->q_next);
      for (int i = 0; i < B; i++) {
         const float nh = a->q_next[2 * i], nc = a->q_next[2 * i + 1];
         const int is_last = new_steps[i] >= cfg->halt_max_steps;
         a->target[i] = sigmoidf(is_last ? nh : (nh > nc ? nh : nc));
      }
   }

   /* 4. losses and metrics (§3) on the labels of the current data */
   double lm = 0.0, qhl = 0.0, qcl = 0.0, acc = 0.0, exact = 0.0, qacc = 0.0, nsteps = 0.0;
   double count = 0.0;
   const int have_labels = batch->labels != NULL || train;
   if (have_labels) {
      const int64_t BS = (int64_t)B * S;
      if (cfg->loss == HRM_LOSS_STABLEMAX)
         m->be->stablemax_ce_forward(a->tok_loss, a->logits, a->labels, BS, V);
      else
         m->be->softmax_ce_forward(a->tok_loss, a->logits, a->labels, BS, V);
      m->be->argmax_forward(a->pred, a->logits, BS, V);
      for (int i = 0; i < B; i++) {
         int cnt = 0, ok = 0;
         double row = 0.0;
         for (int s = 0; s < S; s++) {
            const int64_t k = (int64_t)i * S + s;
            if (a->labels[k] == HRM_IGNORE_LABEL) continue;
            cnt++;
            ok += a->pred[k] == a->labels[k];
            row += a->tok_loss[k];
         }
         const double div = cnt > 0 ? cnt : 1;
         lm += row / div;
         for (int s = 0; s < S; s++) a->tok_w[(int64_t)i * S + s] = 1.0 / (div * G);
         const int seq_ok = ok == cnt;
         a->seq_ok[i] = (float)seq_ok;
         if (new_halted[i] && cnt > 0) {
            count += 1.0;
            acc += ok / div;
            exact += seq_ok;
            qacc += (a->qh[i] >= 0.0f) == seq_ok;
            nsteps += new_steps[i];
         }
      }
      m->be->bce_logits_forward(a->bce, a->qh, a->seq_ok, B);
      for (int i = 0; i < B; i++) qhl += a->bce[i];
      if (act) {
         m->be->bce_logits_forward(a->bce, a->qc, a->target, B);
         for (int i = 0; i < B; i++) qcl += a->bce[i];
      }
   }
   const double total = lm + 0.5 * (qhl + qcl);
   HRM_CHECK(isfinite(total), HRM_ERR_NUMERIC,
             "model_step: the loss is not finite (lm %g, q_halt %g, q_continue %g)", lm, qhl, qcl);

   /* 5. backward of total / global_batch */
   if (train) {
      const int64_t BS = (int64_t)B * S;
      if (cfg->loss == HRM_LOSS_STABLEMAX)
         m->be->stablemax_ce_backward(a->dlogits, a->tok_w, a->logits, a->labels, BS, V);
      else
         m->be->softmax_ce_backward(a->dlogits, a->tok_w, a->logits, a->labels, BS, V);
      for (int i = 0; i < B; i++) a->row_w[i] = 0.5 / G;
      m->be->bce_logits_backward(a->dqs, a->row_w, a->qh, a->seq_ok, B);
      if (act) m->be->bce_logits_backward(a->dqs + B, a->row_w, a->qc, a->target, B);
      else memset(a->dqs + B, 0, sizeof(float) * (size_t)B);
      for (int i = 0; i < B; i++) {
         a->dq[2 * i] = a->dqs[i];
         a->dq[2 * i + 1] = a->dqs[B + i];
      }
      if (E > 0) {
         if (m->pgrad_rows != B) {
            memset(m->pgrad, 0, sizeof(float) * (size_t)m->pcap * (size_t)E);
            m->pgrad_rows = B;
         }
         memcpy(m->pgrad_ids, a->pids, sizeof(int32_t) * (size_t)B);
      }
      model_backward(m, B);
   }

   /* 6. commit the new carry and the outputs */
   const int last = cfg->L_layers + cfg->H_layers - 1;
   const float *zH = train ? a->saved[last].h2 : a->zH;
   const float *zL = train ? a->saved[cfg->L_layers - 1].h2 : a->zL;
   for (int i = 0; i < B; i++) {
      const int r = a->rows[i];
      memcpy(czH + r * TD, zH + i * TD, sizeof(float) * (size_t)TD);
      memcpy(czL + r * TD, zL + i * TD, sizeof(float) * (size_t)TD);
      steps[r] = new_steps[i];
      halted[r] = new_halted[i];
   }
   if (out) {
      for (int i = 0; i < B; i++) {
         const int r = a->rows[i];
         if (out->logits)
            memcpy((float *)out->logits->data + (int64_t)r * S * V, a->logits + (int64_t)i * S * V,
                   sizeof(float) * (size_t)S * (size_t)V);
         if (out->q_halt_logits) ((float *)out->q_halt_logits->data)[r] = a->qh[i];
         if (out->q_continue_logits) ((float *)out->q_continue_logits->data)[r] = a->qc[i];
      }
      if (have_labels) {
         out->lm_loss = lm;
         out->q_halt_loss = qhl;
         out->q_continue_loss = qcl;
         out->loss = total;
         out->accuracy = acc;
         out->exact_accuracy = exact;
         out->q_halt_accuracy = qacc;
         out->steps = nsteps;
         out->count = count;
      }
   }
   return HRM_OK;
}
