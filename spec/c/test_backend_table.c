/* test_backend_table.c — the model reaches the CPU ops only through its backend table, and the
 * device paths of the Lua model work.
 *
 * A second instance of the CPU table is built from the same entries, each wrapped to count its
 * calls, and bound to the CPU device (hrm_backend_bind). The Lua HRM (hrm.Model, the same
 * files users run, driven through an embedded LuaJIT) trains three steps with exploration, the
 * puzzle table and AdamATan2, then runs an evaluation step over a subset of rows, a solve and an
 * EMA update, once on the built-in table and once on the second instance, each in a fresh Lua
 * state. Every loss and metric and every byte of the parameters, gradients, optimizer state,
 * carry and outputs must be identical, and the entries these need must have been called through
 * the second instance. Then the same instance serves the "cuda" device: hrm.Model(cfg, {device =
 * "cuda"}) keeps every tensor there (checked), moves data only through the table's uploads and
 * downloads, and must again give identical numbers. With one entry of the instance changed
 * (halting that never explores), the numbers must differ: the model computes with the bound
 * table.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"

enum { ENTRIES = sizeof(hrm_backend) / sizeof(void (*)(void)) };
static long calls[ENTRIES];
static hrm_backend counted;

#define SLOT(name) (offsetof(hrm_backend, name) / sizeof(void (*)(void)))
#define WRAP(name, params, args)                                                                   \
   static void w_##name params {                                                                  \
      calls[SLOT(name)]++;                                                                         \
      hrm_cpu_backend.name args;                                                                   \
   }
#define WRAP_INT(name, params, args)                                                               \
   static int w_##name params {                                                                   \
      calls[SLOT(name)]++;                                                                         \
      return hrm_cpu_backend.name args;                                                            \
   }

WRAP_INT(alloc, (void **o, size_t b), (o, b))
WRAP(release, (void *p), (p))
WRAP(zero, (void *d, size_t b), (d, b))
WRAP(copy, (void *d, const void *s, size_t b), (d, s, b))
WRAP_INT(upload, (void *d, const void *s, size_t b), (d, s, b))
WRAP_INT(download, (void *d, const void *s, size_t b), (d, s, b))
WRAP_INT(sync, (void), ())
WRAP(copy_rows, (void *d, int64_t dp, const void *s, int64_t sp, int64_t r, size_t b),
     (d, dp, s, sp, r, b))
WRAP(gather_rows, (void *d, const void *s, const int32_t *x, int64_t n, size_t b), (d, s, x, n, b))
WRAP(scatter_rows, (void *d, const void *s, const int32_t *x, int64_t n, size_t b), (d, s, x, n, b))
WRAP(broadcast_row, (void *d, const void *r, int64_t n, size_t b), (d, r, n, b))
WRAP(gemm, (int ta, int tb, int64_t M, int64_t N, int64_t K, float al, const float *A, int64_t la,
            const float *Bm, int64_t lb, float be, float *C, int64_t lc),
     (ta, tb, M, N, K, al, A, la, Bm, lb, be, C, lc))
WRAP(linear_forward, (float *o, const float *i, const float *w, const float *b, int64_t N, int C,
                      int OC), (o, i, w, b, N, C, OC))
WRAP(linear_backward, (float *di, float *dw, float *db, const float *d, const float *i,
                       const float *w, int64_t N, int C, int OC, float beta),
     (di, dw, db, d, i, w, N, C, OC, beta))
WRAP(add_bias, (float *o, const float *b, int64_t N, int OC), (o, b, N, OC))
WRAP(bias_backward, (float *db, const float *d, int64_t N, int OC), (db, d, N, OC))
WRAP(embedding_forward, (float *o, const int32_t *in, const float *t, const float *pre,
                         const float *pos, int B, int S, int P, int D, int E, float sc),
     (o, in, t, pre, pos, B, S, P, D, E, sc))
WRAP(embedding_backward, (float *dt, float *dpre, float *dpos, const float *d, const int32_t *in,
                          int B, int S, int P, int D, int E, float sc, int l),
     (dt, dpre, dpos, d, in, B, S, P, D, E, sc, l))
WRAP(rmsnorm_forward, (float *o, float *r, const float *i, int64_t N, int D, float e),
     (o, r, i, N, D, e))
WRAP(rmsnorm_backward, (float *di, const float *d, const float *o, const float *r, int64_t N,
                        int D), (di, d, o, r, N, D))
WRAP(rope_tables, (float *c, float *s, int T, int HD, double th), (c, s, T, HD, th))
WRAP(rope_forward, (float *q, const float *c, const float *s, int B, int T, int NH, int HD),
     (q, c, s, B, T, NH, HD))
WRAP(rope_backward, (float *q, const float *c, const float *s, int B, int T, int NH, int HD),
     (q, c, s, B, T, NH, HD))
WRAP(attention_forward, (float *o, float *a, const float *q, int B, int T, int NH, int HD),
     (o, a, q, B, T, NH, HD))
WRAP(attention_backward, (float *dq, float *da, const float *d, const float *q, const float *a,
                          int B, int T, int NH, int HD), (dq, da, d, q, a, B, T, NH, HD))
WRAP(swiglu_forward, (float *o, const float *g, int64_t N, int I), (o, g, N, I))
WRAP(swiglu_backward, (float *dg, const float *d, const float *g, int64_t N, int I),
     (dg, d, g, N, I))
WRAP(residual_forward, (float *o, const float *a, const float *b, int64_t n), (o, a, b, n))
WRAP(transpose_forward, (float *o, const float *i, int B, int R, int C), (o, i, B, R, C))
WRAP(stablemax_ce_forward, (double *l, const float *g, const int32_t *y, int64_t N, int V),
     (l, g, y, N, V))
WRAP(stablemax_ce_backward, (float *dg, const double *dl, const float *g, const int32_t *y,
                             int64_t N, int V), (dg, dl, g, y, N, V))
WRAP(softmax_ce_forward, (double *l, const float *g, const int32_t *y, int64_t N, int V),
     (l, g, y, N, V))
WRAP(softmax_ce_backward, (float *dg, const double *dl, const float *g, const int32_t *y,
                           int64_t N, int V), (dg, dl, g, y, N, V))
WRAP(bce_logits_forward, (double *l, const float *g, const float *t, int64_t N), (l, g, t, N))
WRAP(bce_logits_backward, (float *dg, const double *dl, const float *g, const float *t, int64_t N),
     (dg, dl, g, t, N))
WRAP(argmax_forward, (int32_t *p, const float *g, int64_t N, int V), (p, g, N, V))
WRAP(list_rows, (int32_t *r, int32_t *c, const uint8_t *a, int32_t B), (r, c, a, B))
WRAP(reset_state, (float *s, const float *i, const uint8_t *h, const int32_t *r, int32_t n,
                   int64_t T, int64_t D), (s, i, h, r, n, T, D))
WRAP(reset_fields, (int32_t *st, int32_t *in, int32_t *lab, int32_t *pid, const uint8_t *h,
                    const int32_t *r, int32_t n, int32_t S, const int32_t *bi, const int32_t *bl,
                    const int32_t *bp), (st, in, lab, pid, h, r, n, S, bi, bl, bp))
WRAP(act_halt, (int32_t *ns, uint8_t *nh, const int32_t *st, const int32_t *r, int32_t n,
                const float *q, int32_t ms, double p, int32_t ex, int32_t rule, uint64_t seed,
                uint64_t step, int64_t off), (ns, nh, st, r, n, q, ms, p, ex, rule, seed, step, off))
WRAP(target_q, (float *t, const float *q, const int32_t *ns, int32_t n, int32_t ms),
     (t, q, ns, n, ms))
WRAP(loss_head_forward, (double *m, double *tw, float *qs, double *rb, const double *tl,
                         const int32_t *p, const int32_t *y, const float *q, const int32_t *ns,
                         const uint8_t *nh, const float *t, int32_t n, int32_t S, double G),
     (m, tw, qs, rb, tl, p, y, q, ns, nh, t, n, S, G))
WRAP(loss_head_backward, (float *dq, float *dqs, double *rw, const float *qs, const float *t,
                          int32_t n, double G), (dq, dqs, rw, qs, t, n, G))
WRAP(split_q_rows, (float *qh, float *qc, const float *q, const int32_t *r, int32_t n),
     (qh, qc, q, r, n))
WRAP(solve_update, (int32_t *c, int32_t *p, int32_t *st, float *qh, float *qc, uint8_t *a,
                    const float *g, const float *qhl, const float *qcl, int64_t B, int32_t S,
                    int32_t V, int32_t seg, int32_t hq), (c, p, st, qh, qc, a, g, qhl, qcl, B, S, V,
                                                          seg, hq))
WRAP(ema_update, (float *e, const float *x, int64_t n, double d), (e, x, n, d))
WRAP(adam_atan2_update, (float *p, float *m, float *v, const float *g, int64_t n, float lr,
                         float wd, float b1, float b2, float c1, float c2),
     (p, m, v, g, n, lr, wd, b1, b2, c1, c2))
WRAP(adamw_update, (float *p, float *m, float *v, const float *g, int64_t n, float s, float wd,
                    float b1, float b2, float c2, float e), (p, m, v, g, n, s, wd, b1, b2, c2, e))
WRAP(signsgd_update, (float *t, const float *g, const int32_t *x, int64_t U, int E, float lr,
                      float wd), (t, g, x, U, E, lr, wd))
WRAP(add_rmsnorm_forward, (float *o, float *r, const float *a, const float *b, int64_t N, int D,
                           float e), (o, r, a, b, N, D, e))
WRAP(rope_attention_forward, (float *o, float *a, float *q, const float *c, const float *s, int B,
                              int T, int NH, int HD), (o, a, q, c, s, B, T, NH, HD))
WRAP(rope_attention_backward, (float *dq, float *da, const float *d, const float *q,
                               const float *a, const float *c, const float *s, int B, int T,
                               int NH, int HD), (dq, da, d, q, a, c, s, B, T, NH, HD))
WRAP(attention_infer, (float *o, float *q, const float *c, const float *s, int B, int T, int NH,
                       int HD), (o, q, c, s, B, T, NH, HD))
WRAP(pack_bf16, (uint16_t *d, const float *s, int64_t n), (d, s, n))
WRAP(widen_bf16, (float *d, const uint16_t *s, int64_t n), (d, s, n))

/* halting that never explores and never halts before max_steps (a changed entry) */
static void never_explore(int32_t *ns, uint8_t *nh, const int32_t *st, const int32_t *r,
                          int32_t n, const float *q, int32_t ms, double p, int32_t explore,
                          int32_t rule, uint64_t seed, uint64_t step, int64_t off) {
   (void)explore;
   hrm_cpu_backend.act_halt(ns, nh, st, r, n, q, ms, p, 0, rule, seed, step, off);
}

static void build_counted(void) {
   counted = (hrm_backend){
      .name = "cpu (second instance)",
#define E(name) .name = w_##name
      E(alloc), E(release), E(zero), E(copy), E(upload), E(download), E(sync), E(copy_rows),
      E(gather_rows), E(scatter_rows), E(broadcast_row), E(gemm), E(linear_forward),
      E(linear_backward), E(add_bias), E(bias_backward), E(embedding_forward),
      E(embedding_backward), E(rmsnorm_forward), E(rmsnorm_backward), E(rope_tables),
      E(rope_forward), E(rope_backward), E(attention_forward), E(attention_backward),
      E(swiglu_forward), E(swiglu_backward), E(residual_forward), E(transpose_forward),
      E(stablemax_ce_forward), E(stablemax_ce_backward), E(softmax_ce_forward),
      E(softmax_ce_backward), E(bce_logits_forward), E(bce_logits_backward), E(argmax_forward),
      E(list_rows), E(reset_state), E(reset_fields), E(act_halt), E(target_q),
      E(loss_head_forward), E(loss_head_backward), E(split_q_rows), E(solve_update),
      E(ema_update), E(adam_atan2_update), E(adamw_update), E(signsgd_update),
      E(add_rmsnorm_forward), E(rope_attention_forward), E(rope_attention_backward),
      E(attention_infer), E(pack_bf16), E(widen_bf16),
#undef E
   };
}

/* Three training steps, an evaluation step over rows 1 and 3, a solve and an EMA; returns every
 * number as one string of bytes (losses as %a, tensors as raw bytes). */
static const char *const SEGMENT =
   "local hrm = require 'hrm'\n"
   "local ffi = require 'ffi'\n"
   "local V, S, B = 6, 8, 4\n"
   "local cfg = hrm.config.tiny { hidden_size = 32, num_heads = 2, H_layers = 1, L_layers = 1,\n"
   "   halt_max_steps = 4, halt_exploration_prob = 0.5, vocab_size = V, seq_len = S,\n"
   "   num_puzzle_identifiers = 5, puzzle_emb_ndim = 32 }\n"
   "local model = hrm.Model(cfg, { seed = 5, device = DEVICE })\n"
   "local opt = hrm.optim.AdamATan2(model, { lr = 3e-3, puzzle_emb_lr = 1e-2 })\n"
   "local carry = model:carry(B)\n"
   "local out = {}\n"
   "local SIZE = { f32 = 4, f64 = 8, i32 = 4, u8 = 1 }\n"
   "local function bytes(t)\n"
   "   local h = t:to('cpu')\n"
   "   out[#out + 1] = ffi.string(h:data(), h:numel() * SIZE[h:dtype()])\n"
   "end\n"
   "local function on_device(t) assert(t:device() == DEVICE, 'a model tensor is not on ' .. DEVICE) end\n"
   "local function batch(k)\n"
   "   local x, y = hrm.Tensor.zeros(B, S, 'i32'), hrm.Tensor.zeros(B, S, 'i32')\n"
   "   local p = hrm.Tensor.zeros(B, 'i32')\n"
   "   local xd, yd, pd = x:data(), y:data(), p:data()\n"
   "   for i = 0, B * S - 1 do xd[i] = (i * 7 + 3 * k) % V; yd[i] = (i * 5 + k) % V end\n"
   "   for b = 0, B - 1 do pd[b] = (b + k) % 5 end\n"
   "   return { inputs = x, labels = y, puzzle_identifiers = p }\n"
   "end\n"
   "for k = 1, 3 do\n"
   "   local r = model:step(carry, batch(k), { train = true })\n"
   "   for _, m in ipairs({ 'loss', 'lm_loss', 'q_halt_loss', 'q_continue_loss', 'steps', 'count' }) do\n"
   "      out[#out + 1] = string.format('%a ', r[m])\n"
   "   end\n"
   "   if k < 3 then opt:step(3e-3) end\n"
   "end\n"
   "local params, grads = model:parameters()\n"
   "on_device(params[1]); on_device(grads[1]); on_device(opt:tensor('m')); on_device(carry:tensor('z_H'))\n"
   "for i = 1, #params do bytes(params[i]); if grads[i] then bytes(grads[i]) end end\n"
   "bytes(opt:tensor('m')); bytes(opt:tensor('v'))\n"
   "for _, name in ipairs(carry:tensor_names()) do bytes(carry:tensor(name)) end\n"
   "local active = hrm.Tensor.zeros(B, 'u8'); active:data()[1] = 1; active:data()[3] = 1\n"
   "local r = model:step(carry, batch(4), { active = active })\n"
   "out[#out + 1] = string.format('%a ', r.loss)\n"
   "on_device(r.logits)\n"
   "bytes(r.logits); bytes(r.q_halt_logits); bytes(r.q_continue_logits)\n"
   "local s = model:solve(batch(5), { halt = 'q' })\n"
   "for _, k in ipairs({ 'predictions', 'steps', 'q_halt_logits', 'q_continue_logits' }) do\n"
   "   if hrm.Tensor.is_tensor(s[k]) then bytes(s[k]) end\n"
   "end\n"
   "local ema = params[1]:clone()\n"
   "assert(require('hrm.ffi').hrm_ema_update(ema:cdata(), params[1]:cdata(), 0.9) == 0)\n"
   "bytes(ema)\n"
   "return table.concat(out)\n";

/* [OUT] *len: runs SEGMENT with the model on `device` ("cpu", "cuda") in a fresh Lua state; a
 * malloc'd copy of its result, or NULL. */
static char *run_segment(size_t *len, const char *device) {
   lua_State *L = luaL_newstate();
   luaL_openlibs(L);
   lua_pushstring(L, device);
   lua_setglobal(L, "DEVICE");
   int rc = luaL_dostring(L, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path");
   if (rc == 0) rc = luaL_loadstring(L, SEGMENT) || lua_pcall(L, 0, 1, 0);
   char *copy = NULL;
   if (rc != 0) {
      fprintf(stderr, "segment failed: %s\n", lua_tostring(L, -1));
   } else {
      const char *s = lua_tolstring(L, -1, len);
      copy = malloc(*len);
      if (copy) memcpy(copy, s, *len);
   }
   lua_close(L);
   return copy;
}

int main(void) {
   size_t n_builtin = 0, n_second = 0, n_device = 0, n_changed = 0;
   char *builtin = run_segment(&n_builtin, "cpu");
   CHECK(builtin != NULL && n_builtin > 1000);

   build_counted();
   for (size_t i = 0; i < ENTRIES; i++) CHECK(((void (**)(void))&counted)[i] != NULL);
   CHECK(hrm_backend_bind(HRM_DEVICE_CPU, &counted) == &hrm_cpu_backend);
   CHECK(hrm_backend_for(HRM_DEVICE_CPU) == &counted);
   char *second = run_segment(&n_second, "cpu");
   CHECK(second && builtin && n_second == n_builtin && memcmp(second, builtin, n_builtin) == 0);

   /* what a training segment, evaluation and solve must reach through the table */
   const size_t needed[] = {
      SLOT(alloc), SLOT(zero), SLOT(copy), SLOT(download), SLOT(gather_rows),
      SLOT(scatter_rows), SLOT(gemm), SLOT(linear_forward), SLOT(linear_backward),
      SLOT(embedding_forward), SLOT(embedding_backward), SLOT(rope_tables),
      SLOT(rope_attention_forward), SLOT(rope_attention_backward), SLOT(attention_infer),
      SLOT(swiglu_forward),
      SLOT(swiglu_backward), SLOT(add_rmsnorm_forward), SLOT(rmsnorm_backward),
      SLOT(residual_forward), SLOT(stablemax_ce_forward), SLOT(stablemax_ce_backward),
      SLOT(argmax_forward), SLOT(list_rows), SLOT(reset_state), SLOT(reset_fields),
      SLOT(act_halt), SLOT(target_q), SLOT(loss_head_forward), SLOT(loss_head_backward),
      SLOT(split_q_rows), SLOT(solve_update), SLOT(ema_update), SLOT(adam_atan2_update),
      SLOT(signsgd_update)};
   long total = 0;
   for (size_t i = 0; i < sizeof needed / sizeof *needed; i++) {
      if (calls[needed[i]] == 0) fprintf(stderr, "entry slot %zu was never called\n", needed[i]);
      CHECK(calls[needed[i]] > 0);
   }
   for (size_t i = 0; i < ENTRIES; i++) total += calls[i];
   printf("calls through the second instance: %ld\n", total);
   CHECK(hrm_backend_bind(HRM_DEVICE_CPU, NULL) == &counted);
   CHECK(hrm_backend_for(HRM_DEVICE_CPU) == &hrm_cpu_backend);

   /* the device paths: the same instance serving "cuda" (its memory is host memory, which the
    * Lua side must still treat as device memory); results come back through downloads */
   const hrm_backend *cuda = hrm_backend_bind(HRM_DEVICE_CUDA, &counted);
   CHECK(hrm_cuda_available() == 1);
   memset(calls, 0, sizeof calls);
   char *device = run_segment(&n_device, "cuda");
   CHECK(device && builtin && n_device == n_builtin && memcmp(device, builtin, n_builtin) == 0);
   CHECK(calls[SLOT(upload)] > 0 && calls[SLOT(download)] > 0 && calls[SLOT(alloc)] > 0);
   /* an op given tensors on two devices refuses them */
   hrm_tensor *h = NULL, *d = NULL;
   const int64_t four[1] = {4};
   CHECK_OK(hrm_tensor_new(&h, HRM_DTYPE_F32, 1, four));
   CHECK_OK(hrm_tensor_new_device(&d, HRM_DTYPE_F32, 1, four, HRM_DEVICE_CUDA));
   if (h && d) {
      CHECK(hrm_ema_update(d, h, 0.5) == HRM_ERR_DEVICE);
      CHECK(strstr(hrm_last_error(), "share one device") != NULL);
      CHECK_OK(hrm_ema_update(d, d, 0.5));
   }
   hrm_tensor_free(h);
   hrm_tensor_free(d);

   counted.act_halt = never_explore;
   char *changed = run_segment(&n_changed, "cuda");
   CHECK(changed != NULL && builtin && (n_changed != n_builtin ||
                                        memcmp(changed, builtin, n_builtin) != 0));
   CHECK(hrm_backend_bind(HRM_DEVICE_CUDA, cuda) == &counted);
   CHECK(hrm_backend_for(HRM_DEVICE_CUDA) == cuda);
   free(builtin);
   free(second);
   free(device);
   free(changed);
   return check_summary("test_backend_table");
}
