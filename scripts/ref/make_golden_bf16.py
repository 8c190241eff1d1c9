"""make_golden_bf16.py — writes spec/golden/{tiny,learned}_bf16.{safetensors,json}: the twin in bf16.

For each fp32 fixture written by make_golden.py it loads the weights, the batch, the trajectory's
batches and the config, runs the twin with forward_dtype "bfloat16" (the reference's default
precision, hrm_ref.py) through make_golden.py's own procedure (eval segments 1 and last, one train
step with every gradient, the 10-step trajectory) and stores the results. The JSON adds, per stored
tensor, E: how far the fp32 fixture is from these results (the whole effect of bf16 rounding on
that tensor, the tolerance basis of spec/parity_spec.lua), and each recorded segment's decision
margins. It never writes the fp32 fixtures. Usage: /usr/bin/python3 scripts/ref/make_golden_bf16.py
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hrm_ref as ref  # noqa: E402
import make_golden as mg  # noqa: E402

STEMS = ("tiny", "learned")


def rel_err(a, b):
    """max |a - b| / max |b| (b is the bf16 result), as the parity specs measure it."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item()


def metric_errs(a, b):
    """Per metric |a - b| / max(1, |b|): the scale the parity specs compare metrics at."""
    return ((a - b).abs() / b.abs().clamp_min(1.0)).tolist()


def margins(o, carry, halt_max_steps, train):
    """The smallest distance of one segment's discrete decisions from flipping: the top-2 logit gap
    on supervised tokens, |q_halt| (q_halt_accuracy) and, in training, |q_halt - q_continue| over
    the rows not at their last step (halting)."""
    labels = carry.current_data["labels"]
    top2 = o["logits"].float().topk(2, dim=-1).values
    gap = (top2[..., 0] - top2[..., 1])[labels != ref.IGNORE_LABEL_ID]
    q_halt, q_cont = o["q_halt_logits"].float(), o["q_continue_logits"].float()
    m = {"argmax": gap.min().item(), "q_halt": q_halt.abs().min().item()}
    running = carry.steps < halt_max_steps
    if train and bool(running.any()):
        m["halt"] = (q_halt - q_cont)[running].abs().min().item()
    return m


def make_fixture(stem, golden):
    with open(os.path.join(golden, stem + ".json")) as f:
        meta32 = json.load(f)
    fx = mg.read_safetensors(os.path.join(golden, stem + ".safetensors"))
    config = dict(meta32["config"], forward_dtype="bfloat16")
    cfg = ref.HRMConfig(**config)
    torch.manual_seed(meta32["seed"])
    head = ref.build(cfg, meta32["B"])
    init = {k: fx[k] for k in head.state_dict()}
    head.load_state_dict(init)

    batch = {k: fx["batch." + k] for k in ("inputs", "labels", "puzzle_identifiers")}
    batches = [{k: fx["traj." + k][s] for k in ("inputs", "labels", "puzzle_identifiers")}
               for s in range(meta32["traj_steps"])]
    out, decisions = {}, {}

    def decide(what, o, carry, train):
        decisions[what] = margins(o, carry, cfg.halt_max_steps, train)

    mg.run_eval(head, batch, cfg, out, decide)
    _, train_metrics = mg.run_train_step(head, batch, cfg, out, decide)
    mg.clear_grads(head)
    head.load_state_dict(init)
    traj_metrics, _ = mg.run_trajectory(head, batches, cfg, out, decide)
    assert torch.equal(traj_metrics[0], train_metrics), "trajectory step 0 must equal the train step"

    out = {k: v.detach().float() if v.dtype == torch.bfloat16 else v.detach() for k, v in out.items()}
    errs = {}
    for k, v in out.items():
        if k.endswith("metrics"):
            errs[k] = metric_errs(fx[k], v) if v.dim() == 1 else [metric_errs(a, b) for a, b in zip(fx[k], v)]
        elif v.dtype == torch.float32:
            errs[k] = rel_err(fx[k], v)
    meta = {
        "version": meta32["version"],
        "fp32_fixture": stem,
        "config": config,
        "B": meta32["B"],
        "global_batch": meta32["global_batch"],
        "optim": meta32["optim"],
        "traj_steps": meta32["traj_steps"],
        "metric_names": meta32["metric_names"],
        "E": errs,
        "margins": decisions,
    }
    st_path = mg.write_fixture(golden, stem + "_bf16", out, meta)
    flips = (out["traj.halted"] != fx["traj.halted"]).sum().item()
    print("%s_bf16: %d tensors, %d bytes -> %s" % (stem, len(out), os.path.getsize(st_path), st_path))
    print("  E: logits seg1 %.2e, last %.2e; grads max %.2e; final weights max %.2e" % (
        errs["eval.seg1.logits"], errs["eval.seg%d.logits" % cfg.halt_max_steps],
        max(v for k, v in errs.items() if k.startswith("grad.")),
        max(v for k, v in errs.items() if k.startswith("final."))))
    print("  traj.halted differs from fp32 in %d of %d flags" % (flips, out["traj.halted"].numel()))
    for what, m in decisions.items():
        print("  margins %-12s %s" % (what, " ".join("%s %.3g" % kv for kv in m.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--golden", default=os.path.join(here, "..", "..", "spec", "golden"),
                    help="folder with the fp32 fixtures; the bf16 ones are written beside them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for stem in STEMS:
        make_fixture(stem, os.path.normpath(args.golden))


if __name__ == "__main__":
    main()
