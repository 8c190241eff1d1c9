"""make_trm_golden.py — writes the TRM and transformer-baseline golden fixtures into spec/golden/.

Runs the twin (trm_ref.py) on tiny configs, fp32 on the CPU, one thread, fixed seeds, and stores
the same tensors as make_golden.py (weights, a batch, eval segments 1 and last, one train step
with every gradient, a 10-step trajectory with its final weights) plus the EMA of the weights
along the trajectory (decay EMA_DECAY). Before writing it checks itself: finite differences in
fp64 of the loss with the no-gradient recursions held fixed against the backward (for TRM this
is the full backpropagation through all L_cycles + 1 calls of the last recursion), and no
near-ties in the fixtures' discrete decisions. It does not touch the engine.
Usage: /usr/bin/python3 scripts/ref/make_trm_golden.py [--out spec/golden] [--only NAME]
"""

import argparse
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hrm_ref as ref  # noqa: E402
import trm_ref  # noqa: E402
import make_golden as mg  # noqa: E402

FORMAT_VERSION = 1
B = mg.B
TRAJ_STEPS = mg.TRAJ_STEPS
OPTIM = dict(mg.OPTIM)
EMA_DECAY = 0.9       # large enough that an EMA equal to the weights, or to the init, fails
TIE_TOL = mg.TIE_TOL
COND_TOL = 3e-5       # fp32 vs fp64 trajectory, well inside the engine's 1e-4 parity tolerance

BASE = dict(arch="trm", hidden_size=64, num_heads=2, expansion=4.0, H_layers=0, L_layers=2, H_cycles=2,
            L_cycles=3, halt_max_steps=3, halt_exploration_prob=0.0, pos_encodings="rope", rope_theta=10000.0,
            rms_norm_eps=1e-5, puzzle_emb_ndim=96, num_puzzle_identifiers=5, vocab_size=11, seq_len=16,
            loss="stablemax", puzzle_emb_len=3, no_ACT_continue=True, mlp_t=False)
FIXTURES = {
    # RoPE, a 3-position prefix holding a 96-value puzzle vector (zero-padded), 2 + 1 recursions
    "trm": dict(config=dict(BASE), seed=2024, q_bias=[-1.5, -0.8]),
    # no positions, softmax, the default ceil(ndim / D) prefix
    "trm_none": dict(config=dict(BASE, pos_encodings="none", loss="softmax", puzzle_emb_ndim=64, puzzle_emb_len=0,
                                 H_cycles=3, L_cycles=2), seed=2025, q_bias=[0.35, 0.4]),
    # TRM-MLP: token mixing over T = 18 (a SwiGLU of width 256 over the tokens), no positions
    "trm_mlp": dict(config=dict(BASE, mlp_t=True, pos_encodings="none", puzzle_emb_len=2, puzzle_emb_ndim=64,
                                H_cycles=1, L_cycles=2),
                    seed=2030, q_bias=[0.25, -0.3]),
    # the baseline: 2 layers of 5 heads x 12 dims at hidden 64 (attention width 60), one call a segment
    "transformer": dict(config=dict(BASE, arch="transformer", num_heads=5, H_layers=2, L_layers=0, H_cycles=1,
                                    L_cycles=1, puzzle_emb_ndim=64, puzzle_emb_len=0, no_ACT_continue=False),
                        seed=2028, q_bias=[0.3, 0.3]),
}


def check_margins(what, logits, q_halt, q_cont, labels, steps, halt_max, train, positive):
    mg.check_margins(what, logits, q_halt, q_cont, labels, steps, halt_max, train and not positive)


def check_first_update(what, head):
    """The first AdamATan2 step moves each weight by lr·atan2(g, |g|) = ±lr·π/4: its sign is
    that of g, so a gradient that is zero only up to rounding (|g| tiny but not 0) would flip
    between implementations. Every gradient entry must be exactly 0 or clearly away from it."""
    for n, p in head.named_parameters():
        g = p.grad.abs()
        tiny = (g > 0) & (g < 1e-8 * g.max())
        assert not tiny.any(), "%s: %s has %d gradient entries near 0 at the first update (e.g. %.2e)" % (
            what, n, int(tiny.sum()), g[tiny].min().item())


def check_conditioning(what, head64, batches, traj_metrics, head32):
    """The same trajectory in fp64 must stay within COND_TOL of the fp32 one (metrics and final
    weights, relative to each tensor's largest magnitude): otherwise fp32 rounding alone, which
    differs between implementations, would move it by a fair part of the parity tolerance."""
    adam = ref.AdamATan2(head64.parameters(), lr=OPTIM["lr"], betas=(OPTIM["beta1"], OPTIM["beta2"]),
                         weight_decay=OPTIM["weight_decay"])
    sgd = ref.SparseEmbSignSGD(head64.model.inner.puzzle_emb, lr=OPTIM["puzzle_emb_lr"],
                               weight_decay=OPTIM["puzzle_emb_weight_decay"])
    head64.train()
    carry = head64.initial_carry(batches[0])
    worst = 0.0
    for step, bt in enumerate(batches):
        carry, total, metrics, _, _ = head64(carry, bt)
        (total / B).backward()
        sgd.step()
        adam.step()
        sgd.zero_grad()
        adam.zero_grad()
        m64, m32 = ref.metrics_vector(metrics), traj_metrics[step]
        d = ((m64 - m32).abs() / m64.abs().clamp_min(1)).max().item()
        worst = max(worst, d)
        assert d < COND_TOL, "%s: trajectory step %d is ill-conditioned: fp32 and fp64 metrics differ by %.2e" % (
            what, step, d)
    p64 = dict(head64.named_parameters())
    for n, p in head32.named_parameters():
        d = ((p64[n].float() - p).abs().max() / p64[n].abs().max().clamp_min(1e-6)).item()
        worst = max(worst, d)
        assert d < COND_TOL, "%s: final %s differs by %.2e between fp32 and fp64" % (what, n, d)
    print("%s: the fp32 trajectory stays within %.1e of fp64" % (what, worst))


def check_finite_difference(head32, batch, cfg, name):
    """fp64 central differences of total / B with the no-gradient recursions held fixed must
    equal the backward (TRM: through every call of the last recursion)."""
    head = copy.deepcopy(head32).double()
    head.train()
    inner = head.model.inner
    carry = head.initial_carry(batch)
    new_carry, total, _, _, _ = head(carry, batch)
    (total / B).backward()
    labels, halted, steps = new_carry.current_data["labels"], new_carry.halted, new_carry.steps
    with torch.no_grad():
        x0 = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
        z0 = inner.reset_carry(torch.ones(B, dtype=torch.bool), inner.empty_carry(B))
        z_ng = inner.latent_nograd(z0, x0)

    def frozen_loss():
        with torch.no_grad():
            x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
            z = inner.latent_grad(z_ng, x)
            logits, qh, qc = inner.heads(z["H"])
            t, _ = ref.act_loss(cfg.loss, logits, qh, qc, labels, halted, steps, None)
        return t.item() / B

    params = dict(head.named_parameters())
    p32 = dict(head32.named_parameters())
    lvl = "model.inner.L_level.layers." if cfg.arch == "trm" else "model.inner.H_level.layers."
    tok = int(batch["inputs"][0, 3])
    mix = "mlp_t" if cfg.mlp_t else "self_attn"
    probes = [(lvl + "0.mlp.gate_up_proj.weight", (3, 11)), (lvl + "1.mlp.down_proj.weight", (10, 20)),
              ("model.inner.embed_tokens.embedding_weight", (tok, 1)), ("model.inner.lm_head.weight", (2, 13)),
              ("model.inner.q_head.weight", (0, 5)), ("model.inner.q_head.bias", (0,))]
    if cfg.mlp_t:
        probes += [(lvl + "0.mlp_t.gate_up_proj.weight", (4, 2)), (lvl + "1.mlp_t.down_proj.weight", (5, 7))]
    else:
        probes += [(lvl + "0.self_attn.qkv_proj.weight", (5, 7)),
                   (lvl + "1.self_attn.qkv_proj.weight", (cfg.num_heads * cfg.head_dim + 9, 2)),
                   (lvl + "0.self_attn.o_proj.weight", (4, 6))]
    if cfg.pos_encodings == "learned":
        probes.append(("model.inner.embed_pos.embedding_weight", (cfg.prefix_len + 2, 8)))
    pw = inner.puzzle_emb.weights
    pid = int(batch["puzzle_identifiers"][0])
    rows = (batch["puzzle_identifiers"] == pid).nonzero().flatten()
    local_grad = inner.puzzle_emb.local_weights.grad
    eps, worst = 1e-6, 0.0
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
        if n in p32:
            g32 = p32[n].grad[idx].item()
            assert abs(g32 - analytic) <= 1e-4 * max(1e-2, abs(analytic)), \
                "%s: fp32 grad %s%s = %.8e vs fp64 %.8e" % (name, n, idx, g32, analytic)
    assert mix  # every probe list covers the token mixer
    print("%s: %d finite-difference probes (fp64, frozen no-grad recursions) agree, worst rel err %.1e"
          % (name, len(targets), worst))


def make_fixture(name, spec, outdir):
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    cfg = trm_ref.TRMConfig(**spec["config"])
    head = trm_ref.build(cfg, B)
    inner = head.model.inner
    positive = head.model.halt_positive
    with torch.no_grad():
        inner.q_head.weight.normal_(0.0, 0.1, generator=gen)
        inner.q_head.bias.copy_(torch.tensor(spec["q_bias"]))
        inner.puzzle_emb.weights.normal_(0.0, 0.5, generator=gen)

    out = {}
    init = mg.named_tensors(head)
    out.update(init)

    batch = mg.random_batch(gen, cfg)
    batch["puzzle_identifiers"] = torch.tensor([1, 3, 1, 0], dtype=torch.int32)
    head.eval()
    with torch.no_grad():
        _, o = head.model(head.initial_carry(batch), batch)
    batch["labels"][2] = ref.IGNORE_LABEL_ID
    batch["labels"][2, 5] = int(o["logits"][2, 5].argmax())
    batch["labels"][3] = ref.IGNORE_LABEL_ID
    out.update({"batch." + k: v.clone() for k, v in batch.items()})

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
                out["eval.seg1.z_H"] = carry.inner_carry["H"].clone()
            assert bool(all_halted) == (seg == last)
        check_margins(name + " eval last", o["logits"], o["q_halt_logits"], o["q_continue_logits"],
                      carry.current_data["labels"], carry.steps, last, False, positive)
        out["eval.seg%d.logits" % last] = o["logits"].clone()
        out["eval.seg%d.q_halt" % last] = o["q_halt_logits"].clone()
        out["eval.seg%d.q_continue" % last] = o["q_continue_logits"].clone()
        out["eval.seg%d.metrics" % last] = ref.metrics_vector(metrics)

    head.train()
    carry = head.initial_carry(batch)
    carry, total, metrics, o, _ = head(carry, batch)
    (total / B).backward()
    check_margins(name + " train", o["logits"], o["q_halt_logits"], o["q_continue_logits"],
                  carry.current_data["labels"], carry.steps, last, True, positive)
    assert 0 < int(carry.halted.sum()) < B, "%s: train step should halt some rows, not all (q %s, %s)" % (name, o["q_halt_logits"].tolist(), o["q_continue_logits"].tolist())
    train_metrics = ref.metrics_vector(metrics)
    out["train.metrics"] = train_metrics
    out["train.q_halt"] = o["q_halt_logits"].detach().clone()
    out["train.q_continue"] = o["q_continue_logits"].detach().clone()
    for n, p in head.named_parameters():
        out["grad." + n] = p.grad.detach().clone()
    out["grad.puzzle_emb.local"] = inner.puzzle_emb.local_weights.grad.detach().clone()
    check_finite_difference(head, batch, cfg, name)
    for p in head.parameters():
        p.grad = None
    inner.puzzle_emb.local_weights.grad = None

    head.load_state_dict(init)
    head64 = copy.deepcopy(head).double()
    adam = ref.AdamATan2(head.parameters(), lr=OPTIM["lr"], betas=(OPTIM["beta1"], OPTIM["beta2"]),
                         weight_decay=OPTIM["weight_decay"])
    sgd = ref.SparseEmbSignSGD(inner.puzzle_emb, lr=OPTIM["puzzle_emb_lr"],
                               weight_decay=OPTIM["puzzle_emb_weight_decay"])
    ema = trm_ref.EMA(head, EMA_DECAY)
    batches = [batch] + [mg.random_batch(gen, cfg) for _ in range(TRAJ_STEPS - 1)]
    head.train()
    carry = head.initial_carry(batch)
    traj_metrics, traj_halted = [], []
    for step, bt in enumerate(batches):
        carry, total, metrics, o, _ = head(carry, bt)
        (total / B).backward()
        check_margins("%s traj step %d" % (name, step), o["logits"], o["q_halt_logits"],
                      o["q_continue_logits"], carry.current_data["labels"], carry.steps, last, True, positive)
        if step == 0:
            check_first_update(name, head)
        sgd.step()
        adam.step()
        ema.update(head)
        sgd.zero_grad()
        adam.zero_grad()
        traj_metrics.append(ref.metrics_vector(metrics))
        traj_halted.append(carry.halted.to(torch.int32))
    assert torch.equal(traj_metrics[0], train_metrics), "trajectory step 0 must equal the train step"
    check_conditioning(name, head64, batches, traj_metrics, head)
    halted = torch.stack(traj_halted)
    assert 0 < int(halted.sum()) < halted.numel(), "%s: trajectory halting should be mixed" % name
    out["traj.inputs"] = torch.stack([b["inputs"] for b in batches])
    out["traj.labels"] = torch.stack([b["labels"] for b in batches])
    out["traj.puzzle_identifiers"] = torch.stack([b["puzzle_identifiers"] for b in batches])
    out["traj.metrics"] = torch.stack(traj_metrics)
    out["traj.halted"] = halted
    final = mg.named_tensors(head)
    for n, _ in head.named_parameters():
        out["final." + n] = final[n]
        out["ema." + n] = ema.shadow[n].clone()
    out["final.model.inner.puzzle_emb.weights"] = final["model.inner.puzzle_emb.weights"]

    meta = {
        "version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "B": B,
        "global_batch": B,
        "optim": dict(OPTIM),
        "ema_decay": EMA_DECAY,
        "traj_steps": TRAJ_STEPS,
        "metric_names": list(ref.METRIC_NAMES),
        "num_parameters": sum(p.numel() for p in head.parameters()),
        "derived": {"puzzle_emb_len": cfg.prefix_len, "T": cfg.tokens, "intermediate_size": cfg.intermediate_size,
                    "head_dim": cfg.head_dim},
        "seed": spec["seed"],
    }
    st_path = mg.write_fixture(outdir, name, out, meta)
    print("%s: %d tensors, %d bytes -> %s" % (name, len(out), os.path.getsize(st_path), st_path))
    print("  train.metrics     %s" % train_metrics.tolist())
    print("  traj.halted       %s" % halted.tolist())
    print("  traj loss         %s" % [round(m[0].item(), 4) for m in traj_metrics])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "spec", "golden"))
    ap.add_argument("--only", action="append", help="fixture name (repeatable): " + ", ".join(FIXTURES))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    todo = FIXTURES
    names = args.only or list(FIXTURES)
    for name in names:
        make_fixture(name, todo[name], os.path.normpath(args.out))


if __name__ == "__main__":
    main()
