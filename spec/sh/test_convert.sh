#!/usr/bin/env bash
# test_convert.sh — scripts/convert_checkpoint.py on checkpoints made by the PyTorch twin
# (scripts/ref/hrm_ref.py): a state dict with "_orig_mod." keys and bf16 H_init/L_init plus an
# all_config.yaml, for a RoPE model (seq_len from --seq-len) and a learned-position model
# (seq_len from the weights); and from the TRM twin (scripts/ref/trm_ref.py) a TRM, a TRM-MLP and
# a transformer-baseline checkpoint with the TRM repository's arch names and fields. The converted
# files are loaded by `hrm` and the first eval segment's logits and Q values are compared with
# the twin's. Skips (exit 0) without torch.
# Usage: spec/sh/test_convert.sh path/to/hrm   (ctest passes the built binary; cwd = repo root)
set -u
HRM=$(readlink -f "${1:?usage: test_convert.sh path/to/hrm}")
PY=/usr/bin/python3
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
   echo "test_convert: skipped (/usr/bin/python3 cannot import torch and numpy)"
   exit 0
fi
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# 1. checkpoints from the twin, and its eval outputs on a fixed batch
"$PY" - "$tmp" <<'PYEOF' || bad "making the twin's checkpoints failed"
import os, sys
import torch
sys.path.insert(0, "scripts/ref")
sys.path.insert(0, "scripts")
import hrm_ref as ref
from convert_checkpoint import write_safetensors
torch.set_num_threads(1)
out = sys.argv[1]
B = 3
base = dict(hidden_size=32, num_heads=2, expansion=4.0, H_layers=1, L_layers=1, H_cycles=2, L_cycles=2,
            halt_max_steps=3, halt_exploration_prob=0.1, rope_theta=10000.0, rms_norm_eps=1e-5,
            num_puzzle_identifiers=4, vocab_size=7, seq_len=5)
variants = {
    "rope": dict(base, pos_encodings="rope", puzzle_emb_ndim=32, loss="stablemax"),
    "learned": dict(base, pos_encodings="learned", puzzle_emb_ndim=48, loss="softmax", H_layers=2),
}
for name, c in variants.items():
    torch.manual_seed(7)
    cfg = ref.HRMConfig(**c)
    head = ref.build(cfg, B)
    inner = head.model.inner
    gen = torch.Generator().manual_seed(8)
    with torch.no_grad():
        inner.q_head.weight.normal_(0.0, 0.1, generator=gen)
        inner.puzzle_emb.weights.normal_(0.0, 0.5, generator=gen)
        # the file stores H_init/L_init as bf16 (the reference's forward dtype): the twin uses
        # the same rounded values so both sides compute from identical weights
        inner.H_init.copy_(inner.H_init.to(torch.bfloat16).float())
        inner.L_init.copy_(inner.L_init.to(torch.bfloat16).float())
    sd = {}
    for k, v in head.state_dict().items():
        v = v.detach().clone()
        if k.endswith(("H_init", "L_init")):
            v = v.to(torch.bfloat16)
        sd["_orig_mod." + k] = v
    d = os.path.join(out, name)
    os.makedirs(d)
    torch.save(sd, os.path.join(d, "step_10"))
    arch = "\n".join("  %s: %s" % (k, v) for k, v in sorted(c.items())
                     if k not in ("loss", "vocab_size", "seq_len", "num_puzzle_identifiers"))
    loss = "stablemax_cross_entropy" if c["loss"] == "stablemax" else "softmax_cross_entropy"
    with open(os.path.join(d, "all_config.yaml"), "w") as f:
        f.write("arch:\n%s\n  loss:\n    loss_type: %s\n    name: losses@ACTLossHead\n"
                "  name: hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1\n"
                "beta1: 0.9\nbeta2: 0.95\ndata_path: data/tiny  # a comment\nepochs: 100\n"
                "eval_save_outputs: []\nglobal_batch_size: 3\nlr: 7.0e-05\nrun_name: tiny run\n" % (arch, loss))
    g = torch.Generator().manual_seed(9)
    batch = {"inputs": torch.randint(0, c["vocab_size"], (B, c["seq_len"]), generator=g, dtype=torch.int32),
             "labels": torch.randint(0, c["vocab_size"], (B, c["seq_len"]), generator=g, dtype=torch.int32),
             "puzzle_identifiers": torch.tensor([0, 3, 1], dtype=torch.int32)}
    head.eval()
    with torch.no_grad():
        _, _, _, o, _ = head(head.initial_carry(batch), batch)
    write_safetensors(os.path.join(d, "ref.safetensors"), {
        "inputs": batch["inputs"].float().numpy(), "puzzle_identifiers": batch["puzzle_identifiers"].float().numpy(),
        "logits": o["logits"].numpy(), "q_halt": o["q_halt_logits"].numpy(),
        "q_continue": o["q_continue_logits"].numpy()})
PYEOF

# 1b. TRM, TRM-MLP and the baseline from the TRM twin, with the TRM repository's YAML fields
"$PY" - "$tmp" <<'PYEOF' || bad "making the TRM twin's checkpoints failed"
import os, sys
import torch
sys.path.insert(0, "scripts/ref")
sys.path.insert(0, "scripts")
import trm_ref
from convert_checkpoint import write_safetensors
torch.set_num_threads(1)
out = sys.argv[1]
B = 3
base = dict(hidden_size=32, num_heads=2, expansion=4.0, H_cycles=2, L_cycles=2, halt_max_steps=3,
            halt_exploration_prob=0.1, rope_theta=10000.0, rms_norm_eps=1e-5, num_puzzle_identifiers=4,
            vocab_size=7, seq_len=5, puzzle_emb_ndim=32, loss="stablemax")
variants = {   # (config, arch.name, YAML-only lines)
    "trm": (dict(base, arch="trm", H_layers=0, L_layers=2, puzzle_emb_len=3, no_ACT_continue=True, mlp_t=False,
                 pos_encodings="rope"), "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
            ["puzzle_emb_len: 3", "no_ACT_continue: True", "mlp_t: False", "H_layers: 0"]),
    "trm_mlp": (dict(base, arch="trm", H_layers=0, L_layers=2, puzzle_emb_len=16, no_ACT_continue=True, mlp_t=True,
                     pos_encodings="none"), "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
                ["mlp_t: True", "H_layers: 0"]),   # puzzle_emb_len and no_ACT_continue: the defaults
    "baseline": (dict(base, arch="transformer", num_heads=3, H_layers=2, L_layers=0, H_cycles=1, L_cycles=1,
                      puzzle_emb_len=0, no_ACT_continue=False, mlp_t=False, pos_encodings="rope"),
                 "recursive_reasoning.transformers_baseline@Model_ACTV2", ["H_layers: 2", "H_cycles: 1"]),
}
for name, (c, arch_name, extra) in variants.items():
    torch.manual_seed(11)
    cfg = trm_ref.TRMConfig(**c)
    head = trm_ref.build(cfg, B)
    inner = head.model.inner
    gen = torch.Generator().manual_seed(12)
    with torch.no_grad():
        inner.q_head.weight.normal_(0.0, 0.1, generator=gen)
        inner.puzzle_emb.weights.normal_(0.0, 0.5, generator=gen)
        for s in inner.states:
            b = getattr(inner, s + "_init")
            b.copy_(b.to(torch.bfloat16).float())
    sd = {}
    for k, v in head.state_dict().items():
        v = v.detach().clone()
        if k.endswith(("H_init", "L_init")):
            v = v.to(torch.bfloat16)
        sd["_orig_mod." + k] = v
    d = os.path.join(out, name)
    os.makedirs(d)
    torch.save(sd, os.path.join(d, "step_10"))
    keys = ("hidden_size", "num_heads", "expansion", "halt_max_steps", "halt_exploration_prob", "rope_theta",
            "rms_norm_eps", "puzzle_emb_ndim", "pos_encodings", "H_cycles", "L_cycles", "L_layers")
    lines = ["  %s: %s" % (k, c[k]) for k in keys if not (c["arch"] == "transformer" and k in ("L_cycles", "L_layers"))]
    lines += ["  " + e for e in extra]
    with open(os.path.join(d, "all_config.yaml"), "w") as f:
        f.write("arch:\n%s\n  loss:\n    loss_type: stablemax_cross_entropy\n    name: losses@ACTLossHead\n"
                "  name: %s\nema: True\nglobal_batch_size: 3\n" % ("\n".join(lines), arch_name))
    g = torch.Generator().manual_seed(13)
    batch = {"inputs": torch.randint(0, c["vocab_size"], (B, c["seq_len"]), generator=g, dtype=torch.int32),
             "labels": torch.randint(0, c["vocab_size"], (B, c["seq_len"]), generator=g, dtype=torch.int32),
             "puzzle_identifiers": torch.tensor([0, 3, 1], dtype=torch.int32)}
    head.eval()
    with torch.no_grad():
        _, _, _, o, _ = head(head.initial_carry(batch), batch)
    write_safetensors(os.path.join(d, "ref.safetensors"), {
        "inputs": batch["inputs"].float().numpy(), "puzzle_identifiers": batch["puzzle_identifiers"].float().numpy(),
        "logits": o["logits"].numpy(), "q_halt": o["q_halt_logits"].numpy(),
        "q_continue": o["q_continue_logits"].numpy()})
PYEOF
for v in trm trm_mlp baseline; do
   "$PY" scripts/convert_checkpoint.py "$tmp/$v/step_10" --seq-len 5 -o "$tmp/$v/out" > "$tmp/log" 2>&1 \
      && ok || { bad "converting the $v checkpoint"; cat "$tmp/log" >&2; }
done
grep -q 'arch = "trm"' "$tmp/trm/out.lua" && grep -q 'puzzle_emb_len = 3' "$tmp/trm/out.lua" \
   && grep -q 'mlp_t = true' "$tmp/trm_mlp/out.lua" && grep -q 'puzzle_emb_len = 16' "$tmp/trm_mlp/out.lua" \
   && grep -q 'arch = "transformer"' "$tmp/baseline/out.lua" && ok || bad "TRM and baseline configs: $(cat "$tmp"/*/out.lua)"
sed 's/recursive_reasoning.trm@/recursive_reasoning.trm_hier6@/' "$tmp/trm/all_config.yaml" > "$tmp/hier6.yaml"
err=$("$PY" scripts/convert_checkpoint.py "$tmp/trm/step_10" --config "$tmp/hier6.yaml" --seq-len 5 -o "$tmp/x" 2>&1)
case "$err" in *"is not a model hrm converts"*) ok ;; *) bad "unknown arch name: [$err]" ;; esac

# 2. conversion (RoPE needs --seq-len; learned positions give it), then the same with the
#    script's own YAML reader instead of PyYAML
"$PY" scripts/convert_checkpoint.py "$tmp/rope/step_10" --seq-len 5 -o "$tmp/rope/out" > "$tmp/log" 2>&1 \
   && ok || { bad "converting the RoPE checkpoint"; cat "$tmp/log" >&2; }
"$PY" scripts/convert_checkpoint.py "$tmp/learned/step_10" --config "$tmp/learned/all_config.yaml" \
   -o "$tmp/learned/out" > "$tmp/log" 2>&1 && ok || { bad "converting the learned checkpoint"; cat "$tmp/log" >&2; }
"$PY" -c 'import sys; sys.modules["yaml"] = None; sys.path.insert(0, "scripts")
import convert_checkpoint as c; sys.exit(c.main(sys.argv[1:]))' "$tmp/rope/step_10" --seq-len 5 \
   -o "$tmp/rope/out2" > /dev/null 2>&1 && cmp -s "$tmp/rope/out.lua" "$tmp/rope/out2.lua" \
   && cmp -s "$tmp/rope/out.safetensors" "$tmp/rope/out2.safetensors" && ok || bad "the fallback YAML reader differs"

# 3. refusals: RoPE without a sequence length, a missing config; --help documents the options
err=$("$PY" scripts/convert_checkpoint.py "$tmp/rope/step_10" -o "$tmp/x" 2>&1); rc=$?
[ $rc -eq 1 ] && case "$err" in *"seq_len is unknown"*) true ;; *) false ;; esac && ok || bad "no seq_len: [$err]"
err=$("$PY" scripts/convert_checkpoint.py "$tmp/rope/step_10" --config "$tmp/none.yaml" -o "$tmp/x" 2>&1)
case "$err" in *"none.yaml does not exist"*) ok ;; *) bad "missing config: [$err]" ;; esac
case "$("$PY" scripts/convert_checkpoint.py --help)" in *"--seq-len"*"--dataset"*) ok ;; *) bad "--help" ;; esac

# 4. hrm loads the result and reproduces the twin's first eval segment
for v in rope learned trm trm_mlp baseline; do
   out=$("$HRM" -e "
      local d = '$tmp/$v/'
      local cfg = dofile(d .. 'out.lua')
      local m = hrm.Model(cfg)
      assert(m:load_safetensors(d .. 'out.safetensors'))
      local ref = assert(hrm.safetensors.load(d .. 'ref.safetensors'))
      local B = ref.inputs:size(1)
      local o = m:step(m:carry(B), { inputs = ref.inputs:to('i32'),
                                     puzzle_identifiers = ref.puzzle_identifiers:to('i32') }, { train = false })
      local worst = 0
      for _, k in ipairs({ {'logits', 'logits'}, {'q_halt_logits', 'q_halt'}, {'q_continue_logits', 'q_continue'} }) do
         local a, b = o[k[1]]:data(), ref[k[2]]:data()
         for i = 0, ref[k[2]]:numel() - 1 do worst = math.max(worst, math.abs(a[i] - b[i]) / (1 + math.abs(b[i]))) end
      end
      print(cfg.seq_len, cfg.pos_encodings, cfg.loss, string.format('%.2e', worst), worst < 1e-4)" 2>&1)
   case "$out" in *true) ok ;; *) bad "$v: hrm output differs from the twin: $out" ;; esac
   echo "$v: $out"
done

echo "test_convert: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
