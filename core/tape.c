/* tape.c — calls recorded for a backward: the arena, the graph of call outputs, and the replay.
 *
 * A call made through a tape saves its module's activations and its output in the tape's arena
 * and becomes a node; later calls whose inputs are node outputs (same data, same size) link to
 * them. Backward seeds the given outputs, walks the records in reverse and hands each module the
 * gradient of its output, routing input gradients to the nodes they came from (written on first
 * arrival, added after). Watched tensors are nodes with no producing call.
 *
 * The arena is a list of chunks (f32 tensors, so the views returned to callers keep their memory
 * alive); a reset after a pass that needed several chunks replaces them by one chunk of the
 * pass's size, so a steady loop allocates nothing after its first pass.
 */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "error.h"
#include "grow.h"
#include "module.h"

#define MAX_INPUTS 8

typedef struct tape_node {
   const void *data;       // the output (or watched tensor) this node stands for
   int64_t numel;
   int32_t ndim;
   int64_t shape[4];
   float *grad;            // (numel) in the arena once a gradient arrives
   int32_t has_grad;       // 0: none yet (grad is written), 1: written (grad is added to)
   int32_t watched;        // 1: a caller's tensor (may change), 0: a call output (fixed)
} tape_node;

typedef struct tape_rec {
   hrm_module *m;                 // a reference held until reset
   int32_t n;
   hrm_tensor in[MAX_INPUTS];     // inputs as called, data made stable where the backward reads it
   int32_t in_node[MAX_INPUTS];   // node of each input, -1 for constants
   float *saved;
   int32_t precision;             // the store's precision at the call (its saved block's layout)
   int32_t out_node;
} tape_rec;

typedef struct chunk {
   hrm_tensor *mem;  // (cap) f32
   size_t used;
} chunk;

struct hrm_tape {
   hrm_params *store;
   chunk *chunks;
   int32_t nchunks, chunk_cap;
   size_t pass_floats;     // taken in this pass
   tape_rec *recs;
   int32_t nrecs, rec_cap;
   tape_node *nodes;
   int32_t nnodes, node_cap;
   int32_t done;           // backward ran since the last reset
};

int hrm_tape_new(hrm_tape **out, hrm_params *p) {
   HRM_CHECK(out, HRM_ERR_ARG, "tape_new: out is NULL");
   *out = NULL;
   HRM_CHECK(p, HRM_ERR_ARG, "tape_new: store is NULL");
   HRM_TRY(hrm_grow((void **)&p->tapes, &p->tape_cap, p->ntapes, sizeof *p->tapes, "tape_new"));
   hrm_tape *t = calloc(1, sizeof *t);
   HRM_CHECK(t, HRM_ERR_MEMORY, "tape_new: out of memory");
   t->store = p;
   p->refs++;
   p->tapes[p->ntapes++] = t;
   *out = t;
   return HRM_OK;
}

int hrm_tapes_hold(const hrm_params *p, const void *ptr) {
   for (int32_t i = 0; i < p->ntapes; i++) {
      const hrm_tape *t = p->tapes[i];
      if (t->nrecs == 0) continue;
      for (int32_t k = 0; k < t->nchunks; k++) {
         const char *base = t->chunks[k].mem->data;
         if ((const char *)ptr >= base && (const char *)ptr < base + t->chunks[k].used * sizeof(float))
            return 1;
      }
   }
   return 0;
}

static void release_records(hrm_tape *t) {
   for (int32_t i = 0; i < t->nrecs; i++) hrm_module_free(t->recs[i].m);
   t->nrecs = 0;
   t->nnodes = 0;
   t->done = 0;
}

void hrm_tape_free(hrm_tape *t) {
   if (!t) return;
   release_records(t);
   hrm_params *p = t->store;
   for (int32_t i = 0; i < p->ntapes; i++)
      if (p->tapes[i] == t) p->tapes[i] = p->tapes[--p->ntapes];
   for (int32_t i = 0; i < t->nchunks; i++) hrm_tensor_free(t->chunks[i].mem);
   free(t->chunks);
   free(t->recs);
   free(t->nodes);
   hrm_params_free(t->store);
   free(t);
}

int32_t hrm_tape_calls(const hrm_tape *t) { return t ? t->nrecs : 0; }

int64_t hrm_tape_bytes(const hrm_tape *t) {
   return t ? (int64_t)(t->pass_floats * sizeof(float)) : 0;
}

/* ---- the arena ------------------------------------------------------------------------------ */

static int add_chunk(hrm_tape *t, size_t floats) {
   HRM_TRY(hrm_grow((void **)&t->chunks, &t->chunk_cap, t->nchunks, sizeof *t->chunks, "tape"));
   const int64_t n = (int64_t)floats;
   hrm_tensor *mem;
   const int rc = hrm_tensor_new_device(&mem, HRM_DTYPE_F32, 1, &n, t->store->device);
   if (rc != HRM_OK)
      return HRM_FAIL(HRM_ERR_MEMORY, "tape: cannot allocate %zu MiB of saved activations "
                      "---> HINT: use a smaller batch", (floats * sizeof(float)) >> 20);
   t->chunks[t->nchunks++] = (chunk){.mem = mem, .used = 0};
   return HRM_OK;
}

/* [OUT] p: `floats` floats (64-byte aligned) of the arena; which chunk holds them in *which. */
static int take(hrm_tape *t, size_t floats, float **p, int32_t *which) {
   floats = (floats + 15) & ~(size_t)15;
   chunk *c = t->nchunks ? &t->chunks[t->nchunks - 1] : NULL;
   if (!c || c->used + floats > (size_t)c->mem->numel) {
      const size_t grow = t->pass_floats > floats ? t->pass_floats : floats;
      HRM_TRY(add_chunk(t, grow > (size_t)1 << 16 ? grow : (size_t)1 << 16));
      c = &t->chunks[t->nchunks - 1];
   }
   *p = (float *)c->mem->data + c->used;
   if (which) *which = t->nchunks - 1;
   c->used += floats;
   t->pass_floats += floats;
   return HRM_OK;
}

int hrm_tape_reset(hrm_tape *t) {
   HRM_CHECK(t, HRM_ERR_ARG, "tape_reset: tape is NULL");
   release_records(t);
   if (t->nchunks > 1) { /* one chunk of the whole pass from now on */
      const size_t need = t->pass_floats;
      for (int32_t i = 0; i < t->nchunks; i++) hrm_tensor_free(t->chunks[i].mem);
      t->nchunks = 0;
      HRM_TRY(add_chunk(t, need));
   }
   if (t->nchunks) t->chunks[0].used = 0;
   t->pass_floats = 0;
   return HRM_OK;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static int32_t find_node(const hrm_tape *t, const hrm_tensor *x) {
   if (!x || x->dtype != HRM_DTYPE_F32) return -1;
   for (int32_t i = t->nnodes - 1; i >= 0; i--)
      if (t->nodes[i].data == x->data && t->nodes[i].numel == x->numel) return i;
   return -1;
}

static int add_node(hrm_tape *t, const void *data, int32_t ndim, const int64_t *shape,
                    int32_t *index) {
   HRM_TRY(hrm_grow((void **)&t->nodes, &t->node_cap, t->nnodes, sizeof *t->nodes, "tape"));
   tape_node *n = &t->nodes[t->nnodes];
   memset(n, 0, sizeof *n);
   n->data = data;
   n->ndim = ndim;
   n->numel = 1;
   for (int k = 0; k < 4; k++) {
      n->shape[k] = k < ndim ? shape[k] : 1;
      if (k < ndim) n->numel *= shape[k];
   }
   *index = t->nnodes++;
   return HRM_OK;
}

int hrm_tape_watch(hrm_tape *t, const hrm_tensor *x) {
   HRM_CHECK(t && x && x->data, HRM_ERR_ARG, "tape_watch: tape or tensor is NULL");
   HRM_CHECK(!t->done, HRM_ERR_STATE,
             "tape_watch: backward already ran on this tape ---> HINT: tape:reset() first");
   HRM_CHECK(x->dtype == HRM_DTYPE_F32, HRM_ERR_DTYPE,
             "tape_watch: only f32 tensors carry gradient, got %s", hrm_dtype_name(x->dtype));
   if (find_node(t, x) >= 0) return HRM_OK;
   int32_t i;
   HRM_TRY(add_node(t, x->data, x->ndim, x->shape, &i));
   t->nodes[i].watched = 1;
   return HRM_OK;
}

/* ---- calls ---------------------------------------------------------------------------------- */

int hrm_tape_call(hrm_tensor **out, hrm_tape *t, hrm_module *m, int32_t n,
                  const hrm_tensor *const *inputs) {
   HRM_CHECK(out, HRM_ERR_ARG, "tape_call: out is NULL");
   *out = NULL;
   HRM_CHECK(t && m, HRM_ERR_ARG, "tape_call: tape or module is NULL");
   HRM_CHECK(m->store == t->store, HRM_ERR_ARG,
             "tape_call: module '%s' belongs to another model than this tape", m->name);
   HRM_CHECK(!t->done, HRM_ERR_STATE,
             "tape_call: backward already ran on this tape ---> HINT: tape:reset() first");
   HRM_CHECK(n >= 1 && n <= MAX_INPUTS && inputs, HRM_ERR_ARG,
             "tape_call: %d inputs (1 to %d are supported)", n, MAX_INPUTS);
   int32_t ndim;
   int64_t shape[4];
   HRM_TRY(hrm_module_output_shape(&ndim, shape, m, n, inputs));
   HRM_TRY(hrm_grow((void **)&t->recs, &t->rec_cap, t->nrecs, sizeof *t->recs, "tape"));
   tape_rec *r = &t->recs[t->nrecs];
   memset(r, 0, sizeof *r);
   r->n = n;
   const hrm_tensor *stable[MAX_INPUTS];
   for (int32_t i = 0; i < n; i++) {
      r->in[i] = *inputs[i];
      r->in[i].storage = NULL;
      r->in_node[i] = find_node(t, inputs[i]);
      /* an input the backward reads is copied unless it is a call output (fixed until reset) */
      const int is_output = r->in_node[i] >= 0 && !t->nodes[r->in_node[i]].watched;
      if (hrm_module_reads_input(m, i) && !is_output) {
         const size_t bytes = (size_t)inputs[i]->numel * hrm_dtype_size(inputs[i]->dtype);
         float *copy;
         HRM_TRY(take(t, (bytes + 3) / 4, &copy, NULL));
         t->store->be->copy(copy, inputs[i]->data, bytes);
         r->in[i].data = copy;
      }
      stable[i] = &r->in[i];
   }
   const size_t floats = hrm_module_saved_floats(m, n, stable);
   int32_t which;
   HRM_TRY(take(t, floats ? floats : 1, &r->saved, &which));
   float *y;
   HRM_TRY(hrm_module_forward_saved(m, n, stable, r->saved, &y));
   HRM_TRY(add_node(t, y, ndim, shape, &r->out_node));
   r->precision = t->store->precision;
   r->m = m;
   m->refs++;
   t->nrecs++;
   const chunk *c = &t->chunks[which];
   return hrm_tensor_view(out, c->mem, y - (float *)c->mem->data, ndim, shape);
}

/* ---- backward ------------------------------------------------------------------------------- */

static int grad_buffer(hrm_tape *t, tape_node *node) {
   if (node->grad) return HRM_OK;
   return take(t, (size_t)node->numel, &node->grad, NULL);
}

int hrm_tape_backward(hrm_tape *t, int32_t n, const hrm_tensor *const *outputs,
                      const hrm_tensor *const *grads) {
   HRM_CHECK(t, HRM_ERR_ARG, "tape_backward: tape is NULL");
   HRM_CHECK(!t->done, HRM_ERR_STATE,
             "tape_backward: backward already ran on these calls ---> HINT: tape:reset(), then "
             "make the calls again");
   HRM_CHECK(t->nrecs > 0, HRM_ERR_STATE, "tape_backward: no call was made through this tape");
   HRM_CHECK(n >= 1 && outputs && grads, HRM_ERR_ARG,
             "tape_backward: give at least one output and its gradient");
   for (int32_t i = 0; i < n; i++) {
      const int32_t k = find_node(t, outputs[i]);
      HRM_CHECK(k >= 0, HRM_ERR_ARG,
                "tape_backward: output %d is not the output of a call on this tape", i + 1);
      HRM_CHECK(grads[i] && grads[i]->dtype == HRM_DTYPE_F32 &&
                grads[i]->numel == t->nodes[k].numel, HRM_ERR_SHAPE,
                "tape_backward: gradient %d must be f32 with %lld elements", i + 1,
                (long long)t->nodes[k].numel);
      HRM_CHECK(grads[i]->device == t->store->device, HRM_ERR_DEVICE,
                "tape_backward: gradient %d is on device %d, the model on %d", i + 1,
                grads[i]->device, t->store->device);
   }
   for (int32_t r = 0; r < t->nrecs; r++)
      HRM_CHECK(t->recs[r].precision == t->store->precision, HRM_ERR_STATE,
                "tape_backward: call %d was made in %s and the backward runs in %s ---> HINT: "
                "run the backward in the forward's precision (inside the same model step)", r + 1,
                hrm_dtype_name(t->recs[r].precision), hrm_dtype_name(t->store->precision));
   t->done = 1;
   for (int32_t i = 0; i < n; i++) {
      tape_node *node = &t->nodes[find_node(t, outputs[i])];
      HRM_TRY(grad_buffer(t, node));
      if (node->has_grad)
         t->store->be->residual_forward(node->grad, node->grad, grads[i]->data, node->numel);
      else t->store->be->copy(node->grad, grads[i]->data, sizeof(float) * (size_t)node->numel);
      node->has_grad = 1;
   }
   for (int32_t r = t->nrecs - 1; r >= 0; r--) {
      tape_rec *rec = &t->recs[r];
      const tape_node *out = &t->nodes[rec->out_node];
      if (!out->has_grad) continue; /* no gradient reached this call */
      float *dins[MAX_INPUTS];
      int accumulate[MAX_INPUTS];
      const hrm_tensor *in[MAX_INPUTS];
      for (int32_t i = 0; i < rec->n; i++) {
         in[i] = &rec->in[i];
         dins[i] = NULL;
         accumulate[i] = 0;
         if (rec->in_node[i] < 0) continue;
         tape_node *node = &t->nodes[rec->in_node[i]];
         HRM_TRY(grad_buffer(t, node));
         dins[i] = node->grad;
         accumulate[i] = node->has_grad;
         for (int32_t j = 0; j < i; j++) /* the same tensor twice: its second share adds */
            if (rec->in_node[j] == rec->in_node[i]) accumulate[i] = 1;
      }
      HRM_TRY(hrm_module_backward(rec->m, rec->n, in, rec->saved, out->grad, dins, accumulate));
      for (int32_t i = 0; i < rec->n; i++)
         if (rec->in_node[i] >= 0) t->nodes[rec->in_node[i]].has_grad = 1;
   }
   return HRM_OK;
}

int hrm_tape_grad(hrm_tensor **out, hrm_tape *t, const hrm_tensor *x) {
   HRM_CHECK(out, HRM_ERR_ARG, "tape_grad: out is NULL");
   *out = NULL;
   HRM_CHECK(t && x, HRM_ERR_ARG, "tape_grad: tape or tensor is NULL");
   HRM_CHECK(t->done, HRM_ERR_STATE, "tape_grad: run backward first");
   const int32_t k = find_node(t, x);
   HRM_CHECK(k >= 0, HRM_ERR_ARG,
             "tape_grad: the tensor is neither a call output of this tape nor watched "
             "---> HINT: tape:watch(x) before the calls");
   const tape_node *node = &t->nodes[k];
   HRM_TRY(hrm_tensor_new(out, HRM_DTYPE_F32, node->ndim, node->shape));
   const int rc = node->has_grad ? t->store->be->download((*out)->data, node->grad,
                                                          sizeof(float) * (size_t)node->numel)
                                 : HRM_OK;
   if (rc != HRM_OK) {
      hrm_tensor_free(*out);
      *out = NULL;
   }
   return rc;
}
