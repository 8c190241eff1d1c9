#!/usr/bin/env python3
"""convert_checkpoint.py — a PyTorch HRM or TRM checkpoint to safetensors + an hrm config.

Reads a torch.save'd state dict (keys may carry torch.compile's "_orig_mod." prefix; bf16 tensors
such as H_init are fine) and the run's all_config.yaml (its `arch:` section), and writes:
  OUT.safetensors   every model tensor as F32 under the reference name, prefix removed
  OUT.lua           `return { hidden_size = ..., ... }`, the hrm config (hrm.Model(dofile(...)))
  OUT.json          the same config as JSON
The model is picked by arch.name: sapientinc/HRM's hrm_act_v1 (arch hrm), the TRM repository's
recursive_reasoning.trm (arch trm, with puzzle_emb_len, no_ACT_continue and mlp_t from the YAML or
the reference's defaults 16, true, false) and recursive_reasoning.transformers_baseline (arch
transformer). vocab_size, num_puzzle_identifiers and puzzle_emb_ndim come from the weights' shapes. seq_len is
not in all_config.yaml: it comes from learned position embeddings when there are any, else from
--seq-len or the dataset's dataset.json (--dataset). It does not convert optimizer state, and
never imports the reference code. Needs torch (and numpy); PyYAML is used when present.

  python3 scripts/convert_checkpoint.py checkpoints/run/step_1000 --config checkpoints/run/all_config.yaml \\
          --dataset data/sudoku-extreme-1k-aug-1000/train/dataset.json -o weights/sudoku
  hrm -e 'local m = hrm.Model(dofile("weights/sudoku.lua")); assert(m:load_safetensors("weights/sudoku.safetensors"))'
"""

import argparse
import json
import math
import os
import struct
import sys

PREFIX = "_orig_mod."
# Reference buffers that are not persistent state in hrm (rebuilt from the config).
SKIPPED_SUFFIXES = ("rotary_emb.cos_cached", "rotary_emb.sin_cached", "puzzle_emb.local_weights",
                    "puzzle_emb.local_ids")
INNER = "model.inner."
# hrm config fields (lua/hrm/config.lua) and the reference's defaults for those a YAML may omit.
ARCH_DEFAULTS = {"expansion": 4.0, "halt_exploration_prob": 0.1, "pos_encodings": "rope",
                 "rms_norm_eps": 1e-5, "rope_theta": 10000.0}
ARCH_REQUIRED = {
    "hrm": ("hidden_size", "num_heads", "H_layers", "L_layers", "H_cycles", "L_cycles", "halt_max_steps"),
    "trm": ("hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "halt_max_steps"),
    "transformer": ("hidden_size", "num_heads", "H_layers", "halt_max_steps"),
}
# Integer fields an arch's code does not read, with the values hrm stores for them.
ARCH_UNUSED = {"trm": {"H_layers": 0}, "transformer": {"H_cycles": 1, "L_layers": 0, "L_cycles": 1}}
# TRM's own fields and the defaults of its config class.
TRM_DEFAULTS = {"puzzle_emb_len": 16, "no_ACT_continue": True, "mlp_t": False}
LOSS_NAMES = {"stablemax_cross_entropy": "stablemax", "softmax_cross_entropy": "softmax",
              "stablemax": "stablemax", "softmax": "softmax"}


class ConvertError(Exception):
    pass


# ---- a minimal YAML reader (block mappings and scalars: what all_config.yaml holds) ----------

def _scalar(text):
    t = text.strip()
    if t == "" or t in ("~", "null", "Null", "NULL"):
        return None
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def parse_simple_yaml(text):
    """Nested `key: value` mappings by indentation; `- item` lists of scalars; # comments."""
    root = {}
    stack = [(-1, root)]          # (indent, container)
    pending = None                # (indent, parent dict, key) of a `key:` with no value yet
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() == "---":
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if pending is not None:
            p_indent, p_parent, p_key = pending
            pending = None
            if indent > p_indent:
                child = [] if body.startswith("- ") or body == "-" else {}
                p_parent[p_key] = child
                stack.append((p_indent, child))
        while len(stack) > 1 and indent <= stack[-1][0]:
            stack.pop()
        container = stack[-1][1]
        if body.startswith("- ") or body == "-":
            if not isinstance(container, list):
                raise ConvertError("YAML line %d: a list item outside a list" % lineno)
            container.append(_scalar(body[1:]))
            continue
        if ":" not in body or not isinstance(container, dict):
            raise ConvertError("YAML line %d: expected 'key: value', got %r" % (lineno, body))
        key, _, value = body.partition(":")
        key = key.strip().strip("'\"")
        if value.strip() == "":
            container[key] = None
            pending = (indent, container, key)
        else:
            container[key] = _scalar(value)
    return root


def read_yaml(path):
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml  # noqa: WPS433 (optional dependency)
    except ImportError:
        return parse_simple_yaml(text)
    return yaml.safe_load(text)


# ---- safetensors writer ----------------------------------------------------------------------

def write_safetensors(path, tensors):
    """tensors: name -> float32 numpy array. Written to a temporary file, then renamed."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    names = sorted(tensors)
    for name in names:
        a = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name in names:
            f.write(tensors[name].astype("<f4", copy=False).tobytes(order="C"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def lua_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("(0/0)" if v != v else ("math.huge" if v > 0 else "-math.huge"))
    return json.dumps(v)  # a JSON string literal is a valid Lua string literal for plain text


# ---- conversion ------------------------------------------------------------------------------

def load_state_dict(path):
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch without weights_only
        obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and not any(hasattr(v, "shape") for v in obj.values()):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ConvertError("%s does not hold a state dict (a mapping of names to tensors)" % path)
    return obj


def convert_tensors(state):
    """name (prefix removed) -> float32 numpy array; returns (tensors, skipped names)."""
    import torch
    out, skipped = {}, []
    for key, value in state.items():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        if name.endswith(SKIPPED_SUFFIXES):
            skipped.append(key)
            continue
        if not hasattr(value, "dtype"):
            raise ConvertError("state dict entry %r is not a tensor (%s)" % (key, type(value).__name__))
        if not value.is_floating_point():
            raise ConvertError("tensor %r has dtype %s; HRM model tensors are floating point" % (key, value.dtype))
        if name in out:
            raise ConvertError("tensor %r appears with and without the %r prefix" % (name, PREFIX))
        out[name] = value.detach().to(torch.float32).contiguous().numpy()
    return out, skipped


def arch_kind(arch):
    """hrm, trm or transformer from arch.name (module@class); hrm when there is no name."""
    name = str(arch.get("name") or "hrm_act_v1")
    module = name.split("@")[0].split(".")[-1]
    if module == "trm":
        return "trm"
    if module == "transformers_baseline":
        return "transformer"
    if module.startswith("hrm"):
        return "hrm"
    raise ConvertError("arch.name %r is not a model hrm converts (HRM's hrm_act_v1, TRM's "
                       "recursive_reasoning.trm or recursive_reasoning.transformers_baseline)" % name)


def build_config(arch, tensors, seq_len=None, dataset=None, overrides=None):
    if not isinstance(arch, dict):
        raise ConvertError("the config has no 'arch:' section")
    kind = arch_kind(arch)
    cfg = {"arch": kind}
    for k in ARCH_REQUIRED[kind]:
        if arch.get(k) is None:
            raise ConvertError("arch.%s is missing from the config" % k)
        cfg[k] = int(arch[k])
    for k, v in ARCH_UNUSED.get(kind, {}).items():
        cfg.setdefault(k, int(arch[k]) if arch.get(k) is not None else v)
    if kind == "trm":
        for k, default in TRM_DEFAULTS.items():
            v = arch.get(k)
            cfg[k] = default if v is None else v
        cfg["puzzle_emb_len"] = int(cfg["puzzle_emb_len"])
        for k in ("no_ACT_continue", "mlp_t"):
            if not isinstance(cfg[k], bool):
                raise ConvertError("arch.%s must be true or false, got %r" % (k, cfg[k]))
    for k, default in ARCH_DEFAULTS.items():
        v = arch.get(k)
        cfg[k] = default if v is None else v
    for k in ("expansion", "halt_exploration_prob", "rms_norm_eps", "rope_theta"):
        cfg[k] = float(cfg[k])
    loss = arch.get("loss")
    loss_type = loss.get("loss_type") if isinstance(loss, dict) else loss
    loss_type = loss_type or "stablemax_cross_entropy"
    if loss_type not in LOSS_NAMES:
        raise ConvertError("arch.loss.loss_type %r is not supported (stablemax_cross_entropy, "
                           "softmax_cross_entropy)" % loss_type)
    cfg["loss"] = LOSS_NAMES[loss_type]

    def shape(name):
        a = tensors.get(INNER + name)
        if a is None:
            raise ConvertError("the checkpoint has no %s%s" % (INNER, name))
        return a.shape

    V, D = shape("embed_tokens.embedding_weight")
    if D != cfg["hidden_size"]:
        raise ConvertError("embed_tokens is %dx%d but arch.hidden_size is %d" % (V, D, cfg["hidden_size"]))
    cfg["vocab_size"] = int(V)
    if INNER + "puzzle_emb.weights" in tensors:
        n_ids, ndim = shape("puzzle_emb.weights")
        cfg["num_puzzle_identifiers"], cfg["puzzle_emb_ndim"] = int(n_ids), int(ndim)
    else:
        cfg["num_puzzle_identifiers"], cfg["puzzle_emb_ndim"] = 1, 0
    if arch.get("puzzle_emb_ndim") is not None and int(arch["puzzle_emb_ndim"]) != cfg["puzzle_emb_ndim"]:
        raise ConvertError("arch.puzzle_emb_ndim is %s but the puzzle table is %d wide"
                           % (arch["puzzle_emb_ndim"], cfg["puzzle_emb_ndim"]))
    P = -(-cfg["puzzle_emb_ndim"] // cfg["hidden_size"])
    if kind == "trm" and cfg["puzzle_emb_len"] > 0:
        P = cfg["puzzle_emb_len"]
    levels = {"hrm": (("H_level", cfg["H_layers"]), ("L_level", cfg["L_layers"])),
              "trm": (("H_level", 0), ("L_level", cfg["L_layers"])),
              "transformer": (("H_level", cfg["H_layers"]), ("L_level", 0))}[kind]
    for level, count in levels:
        found = {k.split(".")[4] for k in tensors if k.startswith(INNER + level + ".layers.")}
        if len(found) != count:
            raise ConvertError("the checkpoint has %d %s layers but arch says %d" % (len(found), level, count))

    learned_T = None
    if INNER + "embed_pos.embedding_weight" in tensors:
        learned_T = int(shape("embed_pos.embedding_weight")[0])
        if cfg["pos_encodings"] != "learned":
            raise ConvertError("the checkpoint has learned position embeddings but arch.pos_encodings is %r"
                               % cfg["pos_encodings"])
    sources = {}
    if learned_T is not None:
        sources["embed_pos"] = learned_T - P
    if dataset is not None:
        with open(dataset, "r", encoding="utf-8") as f:
            meta = json.load(f)
        sources["dataset"] = int(meta["seq_len"])
        if int(meta.get("vocab_size", cfg["vocab_size"])) != cfg["vocab_size"]:
            raise ConvertError("%s has vocab_size %s but embed_tokens has %d rows"
                               % (dataset, meta.get("vocab_size"), cfg["vocab_size"]))
    if seq_len is not None:
        sources["--seq-len"] = int(seq_len)
    values = set(sources.values())
    if not values:
        raise ConvertError("seq_len is unknown: RoPE checkpoints do not record it\n---> HINT: pass "
                           "--seq-len N or --dataset path/to/train/dataset.json")
    if len(values) > 1:
        raise ConvertError("seq_len disagrees between sources: %s" % sources)
    cfg["seq_len"] = values.pop()
    if cfg["seq_len"] < 1:
        raise ConvertError("seq_len %d is not positive" % cfg["seq_len"])
    for k, v in (overrides or {}).items():
        cfg[k] = v
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a PyTorch HRM or TRM checkpoint (state dict + all_config.yaml) to safetensors "
                    "and an hrm config (Lua and JSON).",
        epilog="Example: convert_checkpoint.py ckpt/step_5000 --config ckpt/all_config.yaml "
               "--dataset data/sudoku/train/dataset.json -o weights/sudoku")
    ap.add_argument("checkpoint", help="torch.save'd state dict (keys may start with _orig_mod.)")
    ap.add_argument("--config", help="the run's all_config.yaml (default: all_config.yaml beside the checkpoint)")
    ap.add_argument("-o", "--output", required=True,
                    help="output path without extension: writes OUT.safetensors, OUT.lua, OUT.json")
    ap.add_argument("--seq-len", type=int, help="task tokens S (RoPE checkpoints do not record it)")
    ap.add_argument("--dataset", help="dataset.json of the training data (gives seq_len)")
    ap.add_argument("--halt-max-steps", type=int, help="override arch.halt_max_steps")
    args = ap.parse_args(argv)

    config_path = args.config or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                                              "all_config.yaml")
    try:
        if not os.path.exists(config_path):
            raise ConvertError("no config: %s does not exist\n---> HINT: pass --config path/to/all_config.yaml"
                               % config_path)
        conf = read_yaml(config_path)
        arch = conf.get("arch") if isinstance(conf, dict) else None
        tensors, skipped = convert_tensors(load_state_dict(args.checkpoint))
        overrides = {"halt_max_steps": args.halt_max_steps} if args.halt_max_steps else None
        cfg = build_config(arch, tensors, args.seq_len, args.dataset, overrides)
    except (ConvertError, OSError, KeyError, ValueError) as e:
        print("convert_checkpoint: %s" % e, file=sys.stderr)
        return 1

    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(args.output + ".safetensors", tensors)
    keys = sorted(cfg)
    lua = "-- hrm config converted from %s\nreturn {\n%s}\n" % (
        os.path.basename(args.checkpoint),
        "".join("   %s = %s,\n" % (k, lua_value(cfg[k])) for k in keys))
    write_text(args.output + ".lua", lua)
    write_text(args.output + ".json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    n_params = sum(a.size for a in tensors.values())
    print("wrote %s.safetensors (%d tensors, %d values), %s.lua, %s.json%s" % (
        args.output, len(tensors), n_params, args.output, args.output,
        "; skipped %d non-persistent buffers" % len(skipped) if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
