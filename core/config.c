/* config.c — the hrm_v1 default configuration and its validation.
 *
 * hrm_config_check names the first offending field; every size a model derives from the config
 * (parameter count, arena) is computed in int64 after this check, so the check also bounds the
 * fields to keep those products representable.
 */
#include <math.h>

#include "error.h"
#include "nn.h"

void hrm_config_default(hrm_config *cfg) {
   if (!cfg) return;
   *cfg = (hrm_config){
      .hidden_size = 512,
      .num_heads = 8,
      .expansion = 4.0,
      .H_layers = 4,
      .L_layers = 4,
      .H_cycles = 2,
      .L_cycles = 2,
      .halt_max_steps = 16,
      .halt_exploration_prob = 0.1,
      .pos_encodings = HRM_POS_ROPE,
      .rms_norm_eps = 1e-5,
      .rope_theta = 10000.0,
      .puzzle_emb_ndim = 512,
      .num_puzzle_identifiers = 1,
      .vocab_size = 0,
      .seq_len = 0,
      .loss = HRM_LOSS_STABLEMAX,
   };
}

int hrm_swiglu_inter(int D, double expansion) {
   const double r = nearbyint(expansion * D * 2.0 / 3.0);  // Python round: half to even
   const int64_t x = (int64_t)r;
   return (int)((x + 255) / 256 * 256);
}

int hrm_config_check(const hrm_config *c) {
   HRM_CHECK(c, HRM_ERR_ARG, "config is NULL");
   HRM_CHECK(c->hidden_size >= 1 && c->hidden_size <= 65536, HRM_ERR_ARG,
             "config.hidden_size = %d must be in 1..65536", c->hidden_size);
   /* head dim = hidden_size / num_heads rounded down, as the reference's Attention: the
    * attention width num_heads x head_dim may be below hidden_size (12 heads at 512: 504) */
   HRM_CHECK(c->num_heads >= 1 && c->num_heads <= c->hidden_size, HRM_ERR_ARG,
             "config.num_heads = %d must be in 1..hidden_size (%d)", c->num_heads,
             c->hidden_size);
   HRM_CHECK(isfinite(c->expansion) && c->expansion > 0.0 && c->expansion <= 64.0, HRM_ERR_ARG,
             "config.expansion = %g must be in (0, 64]", c->expansion);
   /* 0 is allowed: a model that uses one level ignores the other (TRM's H_layers: 0); the model
    * file refuses a level it uses with no layers */
   HRM_CHECK(c->H_layers >= 0 && c->H_layers <= 1024, HRM_ERR_ARG,
             "config.H_layers = %d must be in 0..1024", c->H_layers);
   HRM_CHECK(c->L_layers >= 0 && c->L_layers <= 1024, HRM_ERR_ARG,
             "config.L_layers = %d must be in 0..1024", c->L_layers);
   HRM_CHECK(c->H_cycles >= 1 && c->H_cycles <= 1024, HRM_ERR_ARG,
             "config.H_cycles = %d must be in 1..1024", c->H_cycles);
   HRM_CHECK(c->L_cycles >= 1 && c->L_cycles <= 1024, HRM_ERR_ARG,
             "config.L_cycles = %d must be in 1..1024", c->L_cycles);
   HRM_CHECK(c->halt_max_steps >= 1, HRM_ERR_ARG, "config.halt_max_steps = %d must be >= 1",
             c->halt_max_steps);
   HRM_CHECK(c->halt_exploration_prob >= 0.0 && c->halt_exploration_prob <= 1.0, HRM_ERR_ARG,
             "config.halt_exploration_prob = %g must be in [0, 1]", c->halt_exploration_prob);
   HRM_CHECK(c->pos_encodings == HRM_POS_ROPE || c->pos_encodings == HRM_POS_LEARNED ||
                c->pos_encodings == HRM_POS_NONE,
             HRM_ERR_ARG, "config.pos_encodings = %d is not rope (0), learned (1) or none (2)",
             c->pos_encodings);
   HRM_CHECK(c->pos_encodings != HRM_POS_ROPE || (c->hidden_size / c->num_heads) % 2 == 0,
             HRM_ERR_ARG, "config: rope needs an even head dim, hidden_size / num_heads = %d",
             c->hidden_size / c->num_heads);
   HRM_CHECK(isfinite(c->rms_norm_eps) && c->rms_norm_eps > 0.0, HRM_ERR_ARG,
             "config.rms_norm_eps = %g must be > 0", c->rms_norm_eps);
   HRM_CHECK(isfinite(c->rope_theta) && c->rope_theta > 0.0, HRM_ERR_ARG,
             "config.rope_theta = %g must be > 0", c->rope_theta);
   HRM_CHECK(c->puzzle_emb_ndim >= 0 && c->puzzle_emb_ndim <= 1 << 20, HRM_ERR_ARG,
             "config.puzzle_emb_ndim = %d must be in 0..1048576", c->puzzle_emb_ndim);
   HRM_CHECK(c->puzzle_emb_ndim == 0 || c->num_puzzle_identifiers >= 1, HRM_ERR_ARG,
             "config.num_puzzle_identifiers = %d must be >= 1 when puzzle_emb_ndim > 0",
             c->num_puzzle_identifiers);
   HRM_CHECK(c->num_puzzle_identifiers >= 0, HRM_ERR_ARG,
             "config.num_puzzle_identifiers = %d must be >= 0", c->num_puzzle_identifiers);
   HRM_CHECK(c->vocab_size >= 1 && c->vocab_size <= 1 << 24, HRM_ERR_ARG,
             "config.vocab_size = %d must be in 1..16777216 (set it from the dataset)",
             c->vocab_size);
   HRM_CHECK(c->seq_len >= 1 && c->seq_len <= 1 << 20, HRM_ERR_ARG,
             "config.seq_len = %d must be in 1..1048576 (set it from the dataset)", c->seq_len);
   HRM_CHECK(c->loss == HRM_LOSS_STABLEMAX || c->loss == HRM_LOSS_SOFTMAX, HRM_ERR_ARG,
             "config.loss = %d is not stablemax (0) or softmax (1)", c->loss);
   return HRM_OK;
}
