# tensorboard_check.py — reads a run folder's TensorBoard events with the tensorboard package's
# EventAccumulator and compares them with metrics.jsonl: every number of every train and eval
# line must be a scalar at its step (tags train/<metric>, eval/<set>/<metric>, .../lr), each
# (tag, step) exactly once, with steps increasing; the halting histograms and the config text
# must be there. Usage: python tensorboard_check.py RUN_DIR   (exit status 1 on any mismatch)
import json, math, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1]
acc = EventAccumulator(run, size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
problems = []

expected = {}  # tag -> {step: value}
hist_expected = {}
for line in open(f"{run}/metrics.jsonl"):
    rec = json.loads(line)
    if rec["split"] not in ("train", "eval"):
        continue
    prefix = f"eval/{rec['set']}/" if rec["split"] == "eval" else "train/"
    values = dict(rec["metrics"])
    values["lr"] = rec["lr"]
    if "epoch" in rec:
        values["epoch"] = rec["epoch"]
    for key, value in values.items():
        if isinstance(value, (int, float)):
            expected.setdefault(prefix + key, {})[rec["step"]] = value
    if "halt_histogram" in rec:
        hist_expected.setdefault(prefix + "halt_steps", {})[rec["step"]] = rec["halt_histogram"]

compared = 0
for tag, by_step in sorted(expected.items()):
    if tag not in tags["scalars"]:
        problems.append(f"scalar {tag} missing")
        continue
    events = acc.Scalars(tag)
    steps = [e.step for e in events]
    if steps != sorted(set(steps)):
        problems.append(f"{tag}: steps duplicated or out of order: {steps}")
    got = {e.step: e.value for e in events}
    if sorted(got) != sorted(by_step):
        problems.append(f"{tag}: steps {sorted(got)} in TensorBoard, {sorted(by_step)} in metrics.jsonl")
    for step, want in by_step.items():
        have = got.get(step)
        if have is None or not math.isclose(have, want, rel_tol=1e-6, abs_tol=1e-30):
            problems.append(f"{tag} at step {step}: {have} in TensorBoard, {want} in metrics.jsonl")
        compared += 1
extra = set(tags["scalars"]) - set(expected)
if extra:
    problems.append(f"scalars not in metrics.jsonl: {sorted(extra)}")

for tag, by_step in hist_expected.items():
    events = acc.Histograms(tag) if tag in tags["histograms"] else []
    got = {e.step: e.histogram_value for e in events}
    if sorted(got) != sorted(by_step) or len(events) != len(got):
        problems.append(f"histogram {tag}: steps {[e.step for e in events]}, expected {sorted(by_step)}")
        continue
    for step, counts in by_step.items():
        h = got[step]
        if list(h.bucket) != [float(c) for c in counts] or h.num != sum(counts):
            problems.append(f"histogram {tag} at step {step}: {list(h.bucket)} != {counts}")

if "config" not in tags["tensors"]:
    problems.append("no config text")
elif b'"model"' not in acc.Tensors("config")[0].tensor_proto.string_val[0]:
    problems.append("the config text holds no model config")

for p in problems:
    print("FAIL:", p)
print(f"tensorboard_check: {compared} scalars and {len(hist_expected)} histogram series compared, "
      f"{len(problems)} problems")
sys.exit(1 if problems else 0)
