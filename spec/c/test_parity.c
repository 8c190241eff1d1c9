/* test_parity.c — golden parity of the C model with the PyTorch twin (scripts/ref/hrm_ref.py).
 *
 * For each fixture in spec/golden (tiny: RoPE + stablemax; learned: learned positions +
 * softmax + a 2-position puzzle prefix): loads the twin's weights, then checks eval segments 1
 * and 3 (logits, Q, metrics), one training step (metrics, Q, every parameter's gradient) and a
 * 10-step AdamATan2 + sign-SGD trajectory (metrics, halting, final weights incl. the puzzle
 * table). Tolerance: 1e-4 relative to each tensor's largest magnitude (fp32 throughout).
 * Then, where the build and CPU have them, the same eval and training-step tensors with the
 * bf16 GEMM option (hrm_set_gemm_dtype) against the same fp32 fixtures at BF16_TOL; metrics and
 * the trajectory are skipped there (halting decisions are discrete and may flip).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"

#define TOL 1e-4
#define BF16_TOL 1.5e-1 /* 8-bit mantissas through 8+ blocks: measured max 8.3e-2 */

static cJSON *read_json(const char *path) {
   FILE *f = fopen(path, "rb");
   if (!f) return NULL;
   fseek(f, 0, SEEK_END);
   long n = ftell(f);
   fseek(f, 0, SEEK_SET);
   char *buf = malloc((size_t)n + 1);
   size_t got = fread(buf, 1, (size_t)n, f);
   fclose(f);
   buf[got] = '\0';
   cJSON *j = cJSON_Parse(buf);
   free(buf);
   return j;
}

static int json_int(const cJSON *o, const char *k) {
   return (int)cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}
static double json_num(const cJSON *o, const char *k) {
   return cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}
static const char *json_str(const cJSON *o, const char *k) {
   return cJSON_GetObjectItemCaseSensitive(o, k)->valuestring;
}

static void config_from_json(hrm_config *c, const cJSON *j) {
   hrm_config_default(c);
   c->hidden_size = json_int(j, "hidden_size");
   c->num_heads = json_int(j, "num_heads");
   c->expansion = json_num(j, "expansion");
   c->H_layers = json_int(j, "H_layers");
   c->L_layers = json_int(j, "L_layers");
   c->H_cycles = json_int(j, "H_cycles");
   c->L_cycles = json_int(j, "L_cycles");
   c->halt_max_steps = json_int(j, "halt_max_steps");
   c->halt_exploration_prob = json_num(j, "halt_exploration_prob");
   c->pos_encodings = strcmp(json_str(j, "pos_encodings"), "rope") == 0 ? HRM_POS_ROPE : HRM_POS_LEARNED;
   c->rope_theta = json_num(j, "rope_theta");
   c->rms_norm_eps = json_num(j, "rms_norm_eps");
   c->puzzle_emb_ndim = json_int(j, "puzzle_emb_ndim");
   c->num_puzzle_identifiers = json_int(j, "num_puzzle_identifiers");
   c->vocab_size = json_int(j, "vocab_size");
   c->seq_len = json_int(j, "seq_len");
   c->loss = strcmp(json_str(j, "loss"), "stablemax") == 0 ? HRM_LOSS_STABLEMAX : HRM_LOSS_SOFTMAX;
}

static hrm_tensor *get(const hrm_safetensors *f, const char *name) {
   hrm_tensor *t = NULL;
   if (hrm_safetensors_get(&t, f, name) != HRM_OK) {
      fprintf(stderr, "fixture tensor %s: %s\n", name, hrm_last_error());
      check_failed_++;
   }
   return t;
}

/* max |a - b| / max(max |b|, 1e-6), reported when above TOL. */
static void check_close(const char *what, const hrm_tensor *a, const hrm_tensor *b, double tol) {
   if (!a || !b || a->numel != b->numel) {
      check_failed_++;
      fprintf(stderr, "FAIL %s: missing tensor or size mismatch\n", what);
      return;
   }
   double diff = 0.0, scale = 1e-6;
   for (int64_t i = 0; i < a->numel; i++) {
      double x = hrm_tensor_get(a, i), y = hrm_tensor_get(b, i);
      if (!isfinite(x)) diff = INFINITY;
      diff = fmax(diff, fabs(x - y));
      scale = fmax(scale, fabs(y));
   }
   if (diff / scale <= tol) check_passed_++;
   else {
      check_failed_++;
      fprintf(stderr, "FAIL %s: max diff %.3g, scale %.3g (rel %.3g > %.0e)\n", what, diff, scale,
              diff / scale, tol);
   }
}

static void check_metrics(const char *what, const hrm_step_out *o, const hrm_tensor *ref) {
   const double got[9] = {o->loss, o->lm_loss, o->q_halt_loss, o->q_continue_loss, o->accuracy,
                          o->exact_accuracy, o->q_halt_accuracy, o->steps, o->count};
   static const char *names[9] = {"loss", "lm_loss", "q_halt_loss", "q_continue_loss", "accuracy",
                                  "exact_accuracy", "q_halt_accuracy", "steps", "count"};
   for (int k = 0; k < 9; k++) {
      double want = hrm_tensor_get(ref, k);
      if (fabs(got[k] - want) <= TOL * fmax(1.0, fabs(want))) check_passed_++;
      else {
         check_failed_++;
         fprintf(stderr, "FAIL %s.%s: got %.8g, want %.8g\n", what, names[k], got[k], want);
      }
   }
}

/* Copy every model tensor (parameters and buffers) from the fixture. */
static void load_weights(hrm_model *m, const hrm_safetensors *f, const char *prefix) {
   for (int32_t i = 0; i < hrm_model_num_tensors(m); i++) {
      const char *name;
      hrm_tensor *value = NULL, *grad = NULL;
      int32_t is_param;
      CHECK_OK(hrm_model_tensor(m, i, &name, &value, &grad, &is_param));
      char key[512];
      snprintf(key, sizeof key, "%s%s", prefix, name);
      hrm_tensor *t = get(f, key);
      if (t) CHECK_OK(hrm_tensor_copy(value, t));
      hrm_tensor_free(t);
      hrm_tensor_free(value);
      hrm_tensor_free(grad);
   }
}

/* Row-slice of a (steps, ...) fixture tensor as a borrowed view. */
static hrm_tensor *row(const hrm_tensor *t, int64_t i) {
   int64_t per = t->numel / t->shape[0];
   hrm_tensor *v = NULL;
   int64_t shape[1] = {per};
   hrm_tensor_view(&v, t, i * per, 1, shape);
   return v;
}

static void run_fixture(const char *stem, double tol, int bf16) {
   char path[600];
   snprintf(path, sizeof path, "spec/golden/%s.json", stem);
   cJSON *j = read_json(path);
   CHECK(j != NULL);
   if (!j) return;
   snprintf(path, sizeof path, "spec/golden/%s.safetensors", stem);
   hrm_safetensors *f = NULL;
   CHECK_OK(hrm_safetensors_open(&f, path));
   if (!f) {
      cJSON_Delete(j);
      return;
   }
   hrm_config cfg;
   config_from_json(&cfg, cJSON_GetObjectItemCaseSensitive(j, "config"));
   int B = json_int(j, "B"), S = cfg.seq_len, steps = json_int(j, "traj_steps");
   const cJSON *oj = cJSON_GetObjectItemCaseSensitive(j, "optim");
   hrm_model *m = NULL;
   CHECK_OK(hrm_model_new(&m, &cfg, 7, HRM_DEVICE_CPU));
   if (!m) goto done;

   hrm_tensor *inputs = get(f, "batch.inputs"), *labels = get(f, "batch.labels"),
              *pids = get(f, "batch.puzzle_identifiers");
   int64_t lshape[3] = {B, S, cfg.vocab_size}, bshape[1] = {B};
   hrm_tensor *logits, *qh, *qc;
   hrm_tensor_new(&logits, HRM_DTYPE_F32, 3, lshape);
   hrm_tensor_new(&qh, HRM_DTYPE_F32, 1, bshape);
   hrm_tensor_new(&qc, HRM_DTYPE_F32, 1, bshape);
   hrm_batch batch = {inputs->data, labels->data, pids->data, B};
   char what[256];

   /* --- eval: 3 segments from a fresh carry --- */
   load_weights(m, f, "");
   hrm_carry *c = NULL;
   CHECK_OK(hrm_carry_new(&c, m, B));
   hrm_step_opts eval = {0, 0, NULL};
   for (int seg = 1; seg <= cfg.halt_max_steps; seg++) {
      hrm_step_out o = {logits, qh, qc, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      CHECK_OK(hrm_model_step(m, c, &batch, &eval, &o));
      if (seg != 1 && seg != cfg.halt_max_steps) continue;
      const char *keys[3] = {"logits", "q_halt", "q_continue"};
      hrm_tensor *mine[3] = {logits, qh, qc};
      for (int k = 0; k < 3; k++) {
         snprintf(what, sizeof what, "%s eval.seg%d.%s", stem, seg, keys[k]);
         hrm_tensor *ref = get(f, what + strlen(stem) + 1);
         check_close(what, mine[k], ref, tol);
         hrm_tensor_free(ref);
      }
      if (seg == cfg.halt_max_steps && !bf16) {
         snprintf(what, sizeof what, "eval.seg%d.metrics", seg);
         hrm_tensor *ref = get(f, what);
         if (ref) check_metrics(what, &o, ref);
         hrm_tensor_free(ref);
      }
   }
   hrm_carry_free(c);

   /* --- one training step: metrics, Q and every gradient --- */
   load_weights(m, f, "");
   CHECK_OK(hrm_model_zero_grad(m));
   CHECK_OK(hrm_carry_new(&c, m, B));
   hrm_step_opts train = {1, json_int(j, "global_batch"), NULL};
   hrm_step_out o = {logits, qh, qc, 0, 0, 0, 0, 0, 0, 0, 0, 0};
   CHECK_OK(hrm_model_step(m, c, &batch, &train, &o));
   hrm_tensor *ref = get(f, "train.metrics");
   if (ref && !bf16) check_metrics("train.metrics", &o, ref);
   hrm_tensor_free(ref);
   ref = get(f, "train.q_halt");
   check_close("train.q_halt", qh, ref, tol);
   hrm_tensor_free(ref);
   ref = get(f, "train.q_continue");
   check_close("train.q_continue", qc, ref, tol);
   hrm_tensor_free(ref);
   int n_grads = 0;
   for (int32_t i = 0; i < hrm_model_num_tensors(m); i++) {
      const char *name;
      hrm_tensor *value = NULL, *grad = NULL;
      int32_t is_param;
      CHECK_OK(hrm_model_tensor(m, i, &name, &value, &grad, &is_param));
      if (is_param) {
         snprintf(what, sizeof what, "grad.%s", name);
         ref = get(f, what);
         snprintf(path, sizeof path, "%s %s", stem, what);
         check_close(path, grad, ref, tol);
         hrm_tensor_free(ref);
         n_grads++;
      }
      hrm_tensor_free(value);
      hrm_tensor_free(grad);
   }
   CHECK(n_grads >= 8);
   hrm_carry_free(c);
   c = NULL;
   if (bf16) goto free_batch;

   /* --- trajectory: train segment + AdamATan2 + sign-SGD, carry persisting --- */
   load_weights(m, f, "");
   CHECK_OK(hrm_model_zero_grad(m));
   CHECK_OK(hrm_carry_new(&c, m, B));
   hrm_optim_config ocfg = {HRM_OPTIM_ADAM_ATAN2, json_num(oj, "lr"), json_num(oj, "beta1"),
                            json_num(oj, "beta2"), json_num(oj, "weight_decay"), 0.0,
                            json_num(oj, "puzzle_emb_lr"), json_num(oj, "puzzle_emb_weight_decay")};
   hrm_optim *opt = NULL;
   CHECK_OK(hrm_optim_new(&opt, m, &ocfg));
   hrm_tensor *ti = get(f, "traj.inputs"), *tl = get(f, "traj.labels"),
              *tp = get(f, "traj.puzzle_identifiers"), *tm = get(f, "traj.metrics"),
              *th = get(f, "traj.halted");
   hrm_tensor *halted = NULL;
   CHECK_OK(hrm_carry_tensor(&halted, c, "halted"));
   for (int s = 0; s < steps && opt && ti && tl && tp && tm && th && halted; s++) {
      hrm_tensor *ri = row(ti, s), *rl = row(tl, s), *rp = row(tp, s), *rm = row(tm, s),
                 *rh = row(th, s);
      hrm_batch tb = {ri->data, rl->data, rp->data, B};
      hrm_step_out to = {logits, qh, qc, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      CHECK_OK(hrm_model_step(m, c, &tb, &train, &to));
      snprintf(what, sizeof what, "%s traj.metrics[%d]", stem, s);
      check_metrics(what, &to, rm);
      snprintf(what, sizeof what, "%s traj.halted[%d]", stem, s);
      check_close(what, halted, rh, 0.0);
      CHECK_OK(hrm_optim_step(opt, ocfg.lr, ocfg.puzzle_emb_lr));
      hrm_tensor_free(ri);
      hrm_tensor_free(rl);
      hrm_tensor_free(rp);
      hrm_tensor_free(rm);
      hrm_tensor_free(rh);
   }
   for (int32_t i = 0; i < hrm_model_num_tensors(m); i++) {
      const char *name;
      hrm_tensor *value = NULL, *grad = NULL;
      int32_t is_param;
      CHECK_OK(hrm_model_tensor(m, i, &name, &value, &grad, &is_param));
      if (is_param || strstr(name, "puzzle_emb.weights")) {
         snprintf(what, sizeof what, "final.%s", name);
         ref = get(f, what);
         snprintf(path, sizeof path, "%s %s", stem, what);
         check_close(path, value, ref, TOL);
         hrm_tensor_free(ref);
      }
      hrm_tensor_free(value);
      hrm_tensor_free(grad);
   }
   hrm_tensor_free(halted);
   hrm_tensor_free(ti);
   hrm_tensor_free(tl);
   hrm_tensor_free(tp);
   hrm_tensor_free(tm);
   hrm_tensor_free(th);
   hrm_optim_free(opt);
   hrm_carry_free(c);
free_batch:
   hrm_tensor_free(inputs);
   hrm_tensor_free(labels);
   hrm_tensor_free(pids);
   hrm_tensor_free(logits);
   hrm_tensor_free(qh);
   hrm_tensor_free(qc);
done:
   hrm_model_free(m);
   hrm_safetensors_free(f);
   cJSON_Delete(j);
}

int main(void) {
   run_fixture("tiny", TOL, 0);
   run_fixture("learned", TOL, 0);
   if (hrm_set_gemm_dtype(HRM_DTYPE_BF16) == HRM_OK) {
      run_fixture("tiny", BF16_TOL, 1);
      run_fixture("learned", BF16_TOL, 1);
      CHECK_OK(hrm_set_gemm_dtype(HRM_DTYPE_F32));
   } else {
      fprintf(stderr, "test_parity: bf16 GEMMs unavailable here (%s), bf16 checks skipped\n",
              hrm_last_error());
   }
   return check_summary("test_parity");
}
