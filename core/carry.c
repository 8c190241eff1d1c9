/* carry.c — the ACT carry: per-row recurrent state that persists across steps and batches.
 *
 * A carry is made for one model shape and one batch size. It starts with every row halted, so
 * the first step resets all rows from the batch. The step owns the semantics (model.c); this
 * file only allocates, frees and hands out views (each view is the caller's to free).
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "nn.h"

int hrm_carry_new(hrm_carry **out, const hrm_model *m, int32_t B) {
   HRM_CHECK(out, HRM_ERR_ARG, "carry_new: out is NULL");
   *out = NULL;
   HRM_CHECK(m, HRM_ERR_ARG, "carry_new: model is NULL");
   HRM_CHECK(B >= 1, HRM_ERR_ARG, "carry_new: batch size %d must be >= 1", B);
   hrm_carry *c = calloc(1, sizeof *c);
   HRM_CHECK(c, HRM_ERR_MEMORY, "carry_new: out of memory");
   c->B = B;
   c->T = m->T;
   c->D = m->cfg.hidden_size;
   c->S = m->cfg.seq_len;
   const int64_t zs[3] = {B, c->T, c->D}, bs[1] = {B}, ss[2] = {B, c->S};
   int rc;
   if ((rc = hrm_tensor_new(&c->z_H, HRM_DTYPE_F32, 3, zs)) != HRM_OK ||
       (rc = hrm_tensor_new(&c->z_L, HRM_DTYPE_F32, 3, zs)) != HRM_OK ||
       (rc = hrm_tensor_new(&c->steps, HRM_DTYPE_I32, 1, bs)) != HRM_OK ||
       (rc = hrm_tensor_new(&c->halted, HRM_DTYPE_U8, 1, bs)) != HRM_OK ||
       (rc = hrm_tensor_new(&c->inputs, HRM_DTYPE_I32, 2, ss)) != HRM_OK ||
       (rc = hrm_tensor_new(&c->labels, HRM_DTYPE_I32, 2, ss)) != HRM_OK ||
       (rc = hrm_tensor_new(&c->puzzle_ids, HRM_DTYPE_I32, 1, bs)) != HRM_OK) {
      hrm_carry_free(c);
      return rc;
   }
   memset(c->halted->data, 1, (size_t)B);  // every row starts halted
   int32_t *lab = c->labels->data;
   for (int64_t i = 0; i < (int64_t)B * c->S; i++) lab[i] = HRM_IGNORE_LABEL;
   *out = c;
   return HRM_OK;
}

void hrm_carry_free(hrm_carry *c) {
   if (!c) return;
   hrm_tensor_free(c->z_H);
   hrm_tensor_free(c->z_L);
   hrm_tensor_free(c->steps);
   hrm_tensor_free(c->halted);
   hrm_tensor_free(c->inputs);
   hrm_tensor_free(c->labels);
   hrm_tensor_free(c->puzzle_ids);
   free(c);
}

int32_t hrm_carry_batch(const hrm_carry *c) { return c ? c->B : 0; }

int hrm_carry_tensor(hrm_tensor **out, hrm_carry *c, const char *name) {
   HRM_CHECK(out, HRM_ERR_ARG, "carry_tensor: out is NULL");
   *out = NULL;
   HRM_CHECK(c && name, HRM_ERR_ARG, "carry_tensor: carry or name is NULL");
   const struct { const char *name; hrm_tensor *t; } table[] = {
      {"z_H", c->z_H},       {"z_L", c->z_L},       {"steps", c->steps},
      {"halted", c->halted}, {"inputs", c->inputs}, {"labels", c->labels},
      {"puzzle_ids", c->puzzle_ids},
   };
   for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
      if (strcmp(table[i].name, name) == 0)
         return hrm_tensor_view(out, table[i].t, 0, table[i].t->ndim, table[i].t->shape);
   return HRM_FAIL(HRM_ERR_ARG,
                   "carry_tensor: unknown name \"%s\" (z_H, z_L, steps, halted, inputs, labels, "
                   "puzzle_ids)", name);
}
