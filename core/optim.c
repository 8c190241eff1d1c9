/* optim.c — the reference's optimizers over a parameter store's flat block (spec §4).
 *
 * AdamATan2 (a = b = 1, no eps, decoupled decay first) or AdamW on every parameter, then
 * sign-SGD with decoupled decay on the puzzle-table rows of the batches since the last step, then all
 * gradients are zeroed. Learning rates are absolute (schedules live in Lua). State: m, v
 * (num_parameters each) and the step count t, incremented before use.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "error.h"
#include "nn.h"

int hrm_optim_new(hrm_optim **out, hrm_params *m, const hrm_optim_config *cfg) {
   HRM_CHECK(out, HRM_ERR_ARG, "optim_new: out is NULL");
   *out = NULL;
   HRM_CHECK(m && cfg, HRM_ERR_ARG, "optim_new: parameter store or config is NULL");
   HRM_CHECK(m->built, HRM_ERR_STATE, "optim_new: the parameter store is not built yet");
   HRM_CHECK(cfg->kind == HRM_OPTIM_ADAM_ATAN2 || cfg->kind == HRM_OPTIM_ADAMW, HRM_ERR_ARG,
             "optim_new: kind = %d is not adam_atan2 (0) or adamw (1)", cfg->kind);
   HRM_CHECK(isfinite(cfg->lr) && cfg->lr >= 0.0, HRM_ERR_ARG, "optim_new: lr = %g must be >= 0",
             cfg->lr);
   HRM_CHECK(cfg->beta1 >= 0.0 && cfg->beta1 < 1.0, HRM_ERR_ARG,
             "optim_new: beta1 = %g must be in [0, 1)", cfg->beta1);
   HRM_CHECK(cfg->beta2 >= 0.0 && cfg->beta2 < 1.0, HRM_ERR_ARG,
             "optim_new: beta2 = %g must be in [0, 1)", cfg->beta2);
   HRM_CHECK(isfinite(cfg->weight_decay) && cfg->weight_decay >= 0.0, HRM_ERR_ARG,
             "optim_new: weight_decay = %g must be >= 0", cfg->weight_decay);
   HRM_CHECK(cfg->kind != HRM_OPTIM_ADAMW || (isfinite(cfg->eps) && cfg->eps > 0.0), HRM_ERR_ARG,
             "optim_new: eps = %g must be > 0 for adamw", cfg->eps);
   HRM_CHECK(isfinite(cfg->puzzle_emb_lr) && cfg->puzzle_emb_lr >= 0.0, HRM_ERR_ARG,
             "optim_new: puzzle_emb_lr = %g must be >= 0", cfg->puzzle_emb_lr);
   HRM_CHECK(isfinite(cfg->puzzle_emb_weight_decay) && cfg->puzzle_emb_weight_decay >= 0.0,
             HRM_ERR_ARG, "optim_new: puzzle_emb_weight_decay = %g must be >= 0",
             cfg->puzzle_emb_weight_decay);
   hrm_optim *o = calloc(1, sizeof *o);
   HRM_CHECK(o, HRM_ERR_MEMORY, "optim_new: out of memory");
   o->cfg = *cfg;
   o->params = m;
   m->refs++;
   const int64_t n = m->num_params, one = 1;
   int rc;
   if ((rc = hrm_tensor_new_device(&o->m, HRM_DTYPE_F32, 1, &n, m->device)) != HRM_OK ||
       (rc = hrm_tensor_new_device(&o->v, HRM_DTYPE_F32, 1, &n, m->device)) != HRM_OK ||
       (rc = hrm_tensor_new(&o->t, HRM_DTYPE_F64, 1, &one)) != HRM_OK) {
      hrm_optim_free(o);
      return rc;
   }
   *out = o;
   return HRM_OK;
}

void hrm_optim_free(hrm_optim *o) {
   if (!o) return;
   hrm_tensor_free(o->m);
   hrm_tensor_free(o->v);
   hrm_tensor_free(o->t);
   hrm_params_free(o->params);
   free(o);
}

int hrm_optim_step(hrm_optim *o, double lr, double puzzle_emb_lr) {
   HRM_CHECK(o, HRM_ERR_ARG, "optim_step: optimizer is NULL");
   HRM_CHECK(isfinite(lr) && lr >= 0.0, HRM_ERR_ARG, "optim_step: lr = %g must be >= 0", lr);
   HRM_CHECK(isfinite(puzzle_emb_lr) && puzzle_emb_lr >= 0.0, HRM_ERR_ARG,
             "optim_step: puzzle_emb_lr = %g must be >= 0", puzzle_emb_lr);
   hrm_params *m = o->params;
   const hrm_optim_config *c = &o->cfg;
   double *t = o->t->data;
   *t += 1.0;
   const double bc1 = 1.0 - pow(c->beta1, *t), bc2 = 1.0 - pow(c->beta2, *t);
   float *p = m->params->data, *g = m->grads->data, *mm = o->m->data, *vv = o->v->data;
   if (c->kind == HRM_OPTIM_ADAM_ATAN2) {
      m->be->adam_atan2_update(p, mm, vv, g, m->num_params, (float)lr,
                               (float)(1.0 - lr * c->weight_decay), (float)(1.0 - c->beta1),
                               (float)(1.0 - c->beta2), (float)(1.0 / bc1), (float)sqrt(bc2));
   } else {
      m->be->adamw_update(p, mm, vv, g, m->num_params, (float)(lr / bc1),
                          (float)(1.0 - lr * c->weight_decay), (float)(1.0 - c->beta1),
                          (float)c->beta2, (float)sqrt(bc2), (float)c->eps);
   }
   if (m->sparse >= 0 && m->srows > 0)
      m->be->signsgd_update(hrm_params_value_ptr(m, m->sparse), m->sgrad, m->sgrad_ids, m->srows,
                            m->sparse_dim, (float)puzzle_emb_lr,
                            (float)c->puzzle_emb_weight_decay);
   return hrm_params_zero_grad(m);
}

int hrm_optim_tensor(hrm_tensor **out, hrm_optim *o, const char *name) {
   HRM_CHECK(out, HRM_ERR_ARG, "optim_tensor: out is NULL");
   *out = NULL;
   HRM_CHECK(o && name, HRM_ERR_ARG, "optim_tensor: optimizer or name is NULL");
   hrm_tensor *t = strcmp(name, "m") == 0 ? o->m
                 : strcmp(name, "v") == 0 ? o->v
                 : strcmp(name, "t") == 0 ? o->t
                                          : NULL;
   HRM_CHECK(t, HRM_ERR_ARG, "optim_tensor: unknown name \"%s\" (m, v, t)", name);
   return hrm_tensor_view(out, t, 0, t->ndim, t->shape);
}
