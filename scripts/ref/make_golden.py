"""make_golden.py — writes the golden parity fixtures spec/golden/{tiny,learned}.{safetensors,json}.

Runs the twin (hrm_ref.py) on two tiny configs, fp32 on the CPU, one thread, fixed seeds, and
stores weights, a batch, eval segments, one train step with all gradients, and a 10-step train
trajectory (see spec/golden/README.md for the tensor list). It does not touch the C engine.
Before writing it checks itself: finite-difference gradients in fp64 against the 1-step-gradient
backward, the realised std of the truncated-normal init, and that argmax / halting decisions in
the fixtures are not near ties (so an fp32 engine with another summation order takes the same
branches). Usage: /usr/bin/python3 scripts/ref/make_golden.py [--out spec/golden]
"""

import argparse
import copy
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hrm_ref as ref  # noqa: E402

FORMAT_VERSION = 1
B = 4
TRAJ_STEPS = 10
OPTIM = {"lr": 1e-3, "puzzle_emb_lr": 1e-2, "weight_decay": 0.1, "puzzle_emb_weight_decay": 0.1,
         "beta1": 0.9, "beta2": 0.95}
TIE_TOL = 1e-4        # minimum gap for argmax / halting / sign decisions stored in a fixture

BASE = dict(hidden_size=64, num_heads=2, expansion=4.0, H_layers=1, L_layers=1, H_cycles=2, L_cycles=2,
            halt_max_steps=3, halt_exploration_prob=0.0, pos_encodings="rope", rope_theta=10000.0,
            rms_norm_eps=1e-5, puzzle_emb_ndim=64, num_puzzle_identifiers=5, vocab_size=11, seq_len=16,
            loss="stablemax")
FIXTURES = {
    "tiny": dict(config=dict(BASE), seed=1234, q_bias=[0.7, -0.7]),
    "learned": dict(config=dict(BASE, pos_encodings="learned", loss="softmax", puzzle_emb_ndim=96,
                                H_layers=2, L_layers=1), seed=4321, q_bias=[-1.2, 1.25]),
}


# ---- safetensors ----------------------------------------------------------------------------

_DTYPES = {torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8"), torch.int32: ("I32", "<i4")}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        tag, npdt = _DTYPES[t.dtype]
        data = t.numpy().astype(npdt).tobytes()
        header[name] = {"dtype": tag, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def write_fixture(outdir, stem, tensors, meta):
    """outdir/stem.safetensors and outdir/stem.json, the tensors read back and compared; returns
    the safetensors path."""
    st_path = os.path.join(outdir, stem + ".safetensors")
    write_safetensors(st_path, tensors)
    with open(os.path.join(outdir, stem + ".json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    back = read_safetensors(st_path)
    assert sorted(back) == sorted(tensors)
    for k, v in tensors.items():
        assert torch.equal(back[k], v.detach()), "round trip " + k
    return st_path


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        npdt = {"F32": "<f4", "F64": "<f8", "I32": "<i4"}[e["dtype"]]
        b, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + b:8 + n + end], dtype=npdt).reshape(e["shape"]).copy())
    return out


# ---- helpers ----------------------------------------------------------------------------------

def named_tensors(head):
    """Every state_dict tensor (parameters and persistent buffers) under its reference name."""
    return {k: v.detach().clone() for k, v in head.state_dict().items()}


def spec_config(cfg):
    """The config's spec keys: the twin's own run options (forward_dtype, attention) are not stored,
    so an fp32 fixture's config is what hrm.Model accepts."""
    return {k: v for k, v in cfg.to_dict().items() if k not in ("forward_dtype", "attention")}


def random_batch(gen, cfg, ignore_frac=0.15):
    S, V, NP = cfg.seq_len, cfg.vocab_size, cfg.num_puzzle_identifiers
    inputs = torch.randint(0, V, (B, S), generator=gen, dtype=torch.int32)
    labels = torch.randint(0, V, (B, S), generator=gen, dtype=torch.int32)
    labels[torch.rand(B, S, generator=gen) < ignore_frac] = ref.IGNORE_LABEL_ID
    pids = torch.randint(0, NP, (B,), generator=gen, dtype=torch.int32)
    return {"inputs": inputs, "labels": labels, "puzzle_identifiers": pids}


def check_margins(what, logits, q_halt, q_cont, labels, steps, halt_max, train):
    """Assert the discrete decisions of one segment (argmax on supervised tokens, q_halt >= 0,
    q_halt > q_continue) are not near ties."""
    top2 = logits.topk(2, dim=-1).values
    gap = top2[..., 0] - top2[..., 1]                                        # (B, S)
    mask = labels != ref.IGNORE_LABEL_ID
    for b in range(logits.shape[0]):
        if mask[b].any():
            g = gap[b][mask[b]].min().item()
            assert g > TIE_TOL, "%s: argmax near-tie in row %d (gap %.2e)" % (what, b, g)
        assert abs(q_halt[b].item()) > TIE_TOL, "%s: q_halt near 0 in row %d" % (what, b)
        if train and steps[b] < halt_max:
            d = abs((q_halt[b] - q_cont[b]).item())
            assert d > TIE_TOL, "%s: q_halt ~ q_continue in row %d (%.2e)" % (what, b, d)


# ---- self-checks --------------------------------------------------------------------------------

def check_trunc_normal():
    torch.manual_seed(7)
    for std in (1.0, 0.125, 1.0 / math.sqrt(64)):
        t = ref.trunc_normal_init_(torch.empty(2_000_000), std=std)
        r = t.std().item() / std
        assert abs(r - 1) < 3e-3, "trunc_normal realised std ratio %.5f for std %g" % (r, std)
        assert t.abs().max().item() <= 2.2736945 * std * (1 + 1e-6), "trunc_normal clip bound"
        assert abs(t.mean().item()) < 3e-3 * std, "trunc_normal mean"
    print("trunc_normal: realised std within 0.3% of target, clip at 2.2736945 std")


def check_finite_difference(head32, batch, cfg, name):
    """fp64 central differences of the loss with the no-grad cycles and the Q target frozen
    must equal the backward of the 1-step gradient; also compares the fp32 gradient."""
    head = copy.deepcopy(head32).double()
    head.train()
    inner = head.model.inner
    carry = head.initial_carry(batch)
    new_carry, total, _, out, _ = head(carry, batch)
    (total / B).backward()

    target = out["target_q_continue"].detach()
    labels, halted, steps = new_carry.current_data["labels"], new_carry.halted, new_carry.steps
    with torch.no_grad():
        x0 = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
        z0 = inner.reset_carry(torch.ones(B, dtype=torch.bool), inner.empty_carry(B))
        zH_ng, zL_ng = inner.latent_nograd(z0.z_H, z0.z_L, x0)

    def frozen_loss():
        with torch.no_grad():
            x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
            zH, _ = inner.latent_grad(zH_ng, zL_ng, x)
            logits, qh, qc = inner.heads(zH)
            t, _ = ref.act_loss(cfg.loss, logits, qh, qc, labels, halted, steps, target)
        return t.item() / B

    params = dict(head.named_parameters())
    head32_params = dict(head32.named_parameters())
    L0 = "model.inner.L_level.layers.0."
    H0 = "model.inner.H_level.layers.0."
    tok = int(batch["inputs"][0, 3])
    probes = [(L0 + "self_attn.qkv_proj.weight", (5, 7)),
              (L0 + "self_attn.qkv_proj.weight", (cfg.hidden_size + 9, 2)),     # a K channel
              (L0 + "mlp.gate_up_proj.weight", (3, 11)),
              (H0 + "self_attn.o_proj.weight", (4, 6)),
              (H0 + "mlp.down_proj.weight", (10, 20)),
              ("model.inner.embed_tokens.embedding_weight", (tok, 1)),
              ("model.inner.lm_head.weight", (2, 13)),
              ("model.inner.q_head.weight", (0, 5)),
              ("model.inner.q_head.bias", (1,))]
    if cfg.pos_encodings == "learned":
        probes.append(("model.inner.embed_pos.embedding_weight", (cfg.puzzle_emb_len + 2, 8)))
    pw = inner.puzzle_emb.weights
    pid = int(batch["puzzle_identifiers"][0])
    rows = (batch["puzzle_identifiers"] == pid).nonzero().flatten()
    assert len(rows) >= 2, "the FD batch must contain a duplicate puzzle id"
    local_grad = inner.puzzle_emb.local_weights.grad

    eps = 1e-6
    worst = 0.0
    targets = [(n, idx, params[n], params[n].grad[idx].item()) for n, idx in probes]
    targets.append(("puzzle_emb.weights", (pid, 3), pw, local_grad[rows, 3].sum().item()))
    for n, idx, tensor, analytic in targets:
        with torch.no_grad():
            v = tensor[idx].item()
            tensor[idx] = v + eps
            fp = frozen_loss()
            tensor[idx] = v - eps
            fm = frozen_loss()
            tensor[idx] = v
        fd = (fp - fm) / (2 * eps)
        err = abs(fd - analytic) / max(1e-3, abs(analytic))
        worst = max(worst, err)
        assert err < 1e-5, "%s: FD %s%s = %.10e, backward %.10e" % (name, n, idx, fd, analytic)
        if n in head32_params:
            g32 = head32_params[n].grad[idx].item()
            assert abs(g32 - analytic) <= 1e-4 * max(1e-2, abs(analytic)), \
                "%s: fp32 grad %s%s = %.8e vs fp64 %.8e" % (name, n, idx, g32, analytic)
    print("%s: %d finite-difference probes (fp64, frozen no-grad cycles) agree, worst rel err %.1e"
          % (name, len(targets), worst))


# ---- the runs a fixture records (make_golden_bf16.py runs them too) ------------------------------
# decide(what, outputs, carry, train) is shown each recorded segment's discrete decisions.

def run_eval(head, batch, cfg, out, decide):
    """halt_max_steps eval segments from a fresh carry: eval.seg1.{logits,q_halt,q_continue,z_H}
    and the last segment's logits, Q and metrics (eval.seg<halt_max_steps>.*)."""
    last = cfg.halt_max_steps
    head.eval()
    with torch.no_grad():
        carry = head.initial_carry(batch)
        for seg in range(1, last + 1):
            carry, _, metrics, o, all_halted = head(carry, batch)
            if seg == 1:
                out["eval.seg1.logits"] = o["logits"].clone()
                out["eval.seg1.q_halt"] = o["q_halt_logits"].clone()
                out["eval.seg1.q_continue"] = o["q_continue_logits"].clone()
                out["eval.seg1.z_H"] = carry.inner_carry.z_H.clone()
            assert bool(all_halted) == (seg == last)
        decide("eval seg%d" % last, o, carry, False)
        p = "eval.seg%d." % last
        out[p + "logits"] = o["logits"].clone()
        out[p + "q_halt"] = o["q_halt_logits"].clone()
        out[p + "q_continue"] = o["q_continue_logits"].clone()
        out[p + "metrics"] = ref.metrics_vector(metrics)


def run_train_step(head, batch, cfg, out, decide):
    """One train step from a fresh carry (exploration 0, target-Q forward): train.{metrics,q_halt,
    q_continue} and grad.<name> = d(total / global_batch) for every parameter, plus
    grad.puzzle_emb.local. The gradients stay on the parameters. Returns the carry and metrics."""
    head.train()
    carry = head.initial_carry(batch)
    carry, total, metrics, o, _ = head(carry, batch)
    (total / B).backward()
    decide("train", o, carry, True)
    train_metrics = ref.metrics_vector(metrics)
    out["train.metrics"] = train_metrics
    out["train.q_halt"] = o["q_halt_logits"].detach().clone()
    out["train.q_continue"] = o["q_continue_logits"].detach().clone()
    for n, p in head.named_parameters():
        out["grad." + n] = p.grad.detach().clone()
    out["grad.puzzle_emb.local"] = head.model.inner.puzzle_emb.local_weights.grad.detach().clone()
    return carry, train_metrics


def clear_grads(head):
    for p in head.parameters():
        p.grad = None
    head.model.inner.puzzle_emb.local_weights.grad = None


def run_trajectory(head, batches, cfg, out, decide):
    """One train segment per batch from the current weights and a fresh carry (which persists),
    each followed by sign-SGD on the puzzle table and AdamATan2: traj.metrics, traj.halted and
    final.<name> for every parameter and the puzzle table. Returns the metrics and halted flags."""
    inner = head.model.inner
    adam = ref.AdamATan2(head.parameters(), lr=OPTIM["lr"], betas=(OPTIM["beta1"], OPTIM["beta2"]),
                         weight_decay=OPTIM["weight_decay"])
    sgd = ref.SparseEmbSignSGD(inner.puzzle_emb, lr=OPTIM["puzzle_emb_lr"],
                               weight_decay=OPTIM["puzzle_emb_weight_decay"])
    head.train()
    carry = head.initial_carry(batches[0])
    traj_metrics, traj_halted = [], []
    for step, bt in enumerate(batches):
        carry, total, metrics, o, _ = head(carry, bt)
        (total / B).backward()
        decide("traj step %d" % step, o, carry, True)
        sgd.step()
        adam.step()
        sgd.zero_grad()
        adam.zero_grad()
        traj_metrics.append(ref.metrics_vector(metrics))
        traj_halted.append(carry.halted.to(torch.int32))
    halted = torch.stack(traj_halted)
    out["traj.metrics"] = torch.stack(traj_metrics)
    out["traj.halted"] = halted
    final = named_tensors(head)
    for n, _ in head.named_parameters():
        out["final." + n] = final[n]
    out["final.model.inner.puzzle_emb.weights"] = final["model.inner.puzzle_emb.weights"]
    return traj_metrics, halted


# ---- fixture -------------------------------------------------------------------------------------

def make_fixture(name, spec, outdir):
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    cfg = ref.HRMConfig(**spec["config"])
    head = ref.build(cfg, B)
    inner = head.model.inner
    with torch.no_grad():
        inner.q_head.weight.normal_(0.0, 0.1, generator=gen)
        inner.q_head.bias.copy_(torch.tensor(spec["q_bias"]))
        inner.puzzle_emb.weights.normal_(0.0, 0.5, generator=gen)

    out = {}
    init = named_tensors(head)
    out.update(init)

    # batch: row 2 has one supervised label equal to the segment-1 prediction (exact and
    # q_halt target 1), row 3 is fully ignored (count 0, excluded from metrics)
    batch = random_batch(gen, cfg)
    batch["puzzle_identifiers"] = torch.tensor([1, 3, 1, 0], dtype=torch.int32)
    head.eval()
    with torch.no_grad():
        _, o = head.model(head.initial_carry(batch), batch)
    batch["labels"][2] = ref.IGNORE_LABEL_ID
    batch["labels"][2, 5] = int(o["logits"][2, 5].argmax())
    batch["labels"][3] = ref.IGNORE_LABEL_ID
    out.update({"batch." + k: v.clone() for k, v in batch.items()})

    def decide(what, o, carry, train):
        check_margins("%s %s" % (name, what), o["logits"], o["q_halt_logits"], o["q_continue_logits"],
                      carry.current_data["labels"], carry.steps, cfg.halt_max_steps, train)

    run_eval(head, batch, cfg, out, decide)
    carry, train_metrics = run_train_step(head, batch, cfg, out, decide)
    assert 0 < int(carry.halted.sum()) < B, "%s: train step should halt some rows, not all" % name
    check_finite_difference(head, batch, cfg, name)
    clear_grads(head)

    # trajectory: step 0 uses `batch`, later steps fresh batches
    head.load_state_dict(init)
    batches = [batch] + [random_batch(gen, cfg) for _ in range(TRAJ_STEPS - 1)]
    traj_metrics, halted = run_trajectory(head, batches, cfg, out, decide)
    assert torch.equal(traj_metrics[0], train_metrics), "trajectory step 0 must equal the train step"
    assert 0 < int(halted.sum()) < halted.numel(), "%s: trajectory halting should be mixed" % name
    out["traj.inputs"] = torch.stack([b["inputs"] for b in batches])
    out["traj.labels"] = torch.stack([b["labels"] for b in batches])
    out["traj.puzzle_identifiers"] = torch.stack([b["puzzle_identifiers"] for b in batches])

    meta = {
        "version": FORMAT_VERSION,
        "config": spec_config(cfg),
        "B": B,
        "global_batch": B,
        "optim": dict(OPTIM),
        "traj_steps": TRAJ_STEPS,
        "metric_names": list(ref.METRIC_NAMES),
        "derived": {"puzzle_emb_len": cfg.puzzle_emb_len, "T": cfg.seq_len + cfg.puzzle_emb_len,
                    "intermediate_size": cfg.intermediate_size, "head_dim": cfg.head_dim},
        "seed": spec["seed"],
    }
    st_path = write_fixture(outdir, name, out, meta)
    print("%s: %d tensors, %d bytes -> %s" % (name, len(out), os.path.getsize(st_path), st_path))
    print("  eval.seg3.metrics %s" % out["eval.seg3.metrics"].tolist())
    print("  train.metrics     %s" % train_metrics.tolist())
    print("  traj.halted       %s" % halted.tolist())
    print("  traj loss         %s" % [round(m[0].item(), 4) for m in traj_metrics])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "spec", "golden"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    check_trunc_normal()
    for name, spec in FIXTURES.items():
        make_fixture(name, spec, os.path.normpath(args.out))


if __name__ == "__main__":
    main()
