/* tiny_store.h — a small parameter store with the HRM layout, declared from C through the
 * same modules and in the same order as lua/hrm/models/hrm.lua (for the file-format tests).
 * D 16, V 11, S 4, one H and one L block, a 16-value puzzle prefix over 3 ids.
 */
#ifndef HRM_TINY_STORE_H
#define HRM_TINY_STORE_H

#include <math.h>
#include <stdio.h>

#include "hrm.h"

static hrm_params *tiny_store(uint64_t seed) {
   const int D = 16, V = 11, S = 4, P = 1, T = S + P;
   hrm_params *p = NULL;
   if (hrm_params_new(&p, seed, HRM_DEVICE_CPU) != HRM_OK) return NULL;
   const hrm_block_config bc = {.hidden_size = D, .num_heads = 2, .expansion = 2,
                                .rms_norm_eps = 1e-5, .rope = 1, .tokens = T,
                                .rope_theta = 10000};
   hrm_module *m[6] = {0};
   const int64_t dshape[1] = {D};
   int rc = hrm_module_embedding(&m[0], p, "model.inner.embed_tokens", V, D, 1.0 / sqrt(D));
   if (rc == HRM_OK)
      rc = hrm_module_linear(&m[1], p, "model.inner.lm_head", D, V, 0, HRM_INIT_LECUN, 0, 0, P, S);
   if (rc == HRM_OK)
      rc = hrm_module_linear(&m[2], p, "model.inner.q_head", D, 2, 1, HRM_INIT_ZERO, 0, -5, 0, 1);
   if (rc == HRM_OK) rc = hrm_module_reasoning(&m[3], p, "model.inner.H_level", 1, &bc);
   if (rc == HRM_OK) rc = hrm_module_reasoning(&m[4], p, "model.inner.L_level", 1, &bc);
   if (rc == HRM_OK)
      rc = hrm_params_declare(NULL, p, "model.inner.H_init", HRM_KIND_BUFFER, 1, dshape,
                              HRM_INIT_TRUNC_NORMAL, 1.0);
   if (rc == HRM_OK)
      rc = hrm_params_declare(NULL, p, "model.inner.L_init", HRM_KIND_BUFFER, 1, dshape,
                              HRM_INIT_TRUNC_NORMAL, 1.0);
   if (rc == HRM_OK) rc = hrm_module_puzzle_embedding(&m[5], p, "model.inner.puzzle_emb", 3, D);
   if (rc == HRM_OK) rc = hrm_params_build(p, 1);
   for (int i = 0; i < 6; i++) hrm_module_free(m[i]);
   if (rc != HRM_OK) {
      fprintf(stderr, "  tiny_store: %s\n", hrm_last_error());
      hrm_params_free(p);
      return NULL;
   }
   return p;
}

#endif /* HRM_TINY_STORE_H */
