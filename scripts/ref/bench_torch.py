"""bench_torch.py — the PyTorch baseline for scripts/bench.lua: the twin's training step, timed.

One step is what `hrm scripts/bench.lua` times: an ACT segment (no-grad cycles, the 1-step
gradient calls, heads), the target-Q forward, the losses, the backward and the update
(AdamATan2 as hrm_ref.AdamATan2, plus sign-SGD on the puzzle rows). fp32 by default; --bf16
runs the twin with forward_dtype bfloat16, as the reference runs by default (parameters cast to
bf16 per call, bf16 activations and carry), with attention through
F.scaled_dot_product_attention (the reference's FlashAttention is GPU-only). --modes compiled (the
default) wraps the model in torch.compile(dynamic=False) as the reference's trainer does (compile
time is excluded: the first steps are warm-up); --modes eager,compiled tries both. FLOPs are counted
with the same formula as bench.lua, so the GFLOP/s of both are comparable. PyTorch's version,
thread counts and BLAS/oneDNN configuration (build settings and the BLAS library actually
loaded) are printed so a handicapped baseline is visible. "N threads" means N in PyTorch's
OpenMP pool and N in a pthread OpenBLAS, which torch.set_num_threads alone does not reach.

    python3 scripts/ref/bench_torch.py [--config hrm_v1|small] [--batch N] [--threads N[,N...]]
                                       [--steps N] [--bf16] [--modes eager,compiled] [--infer]

With several thread counts and modes it reports each; the last line is a machine-readable summary
of the fastest ("RESULT step_s=... threads=... mode=... gflops=... dtype=... amx=...").
--infer times inference instead: one no-grad segment (eval mode, 16 = halt_max_steps segments
per puzzle) and reports puzzles/s.
"""

import argparse
import ctypes
import os
import re
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hrm_ref  # noqa: E402

CONFIGS = {
    "hrm_v1": (dict(), 32, 3),
    "small": (dict(hidden_size=128, num_heads=4, H_layers=2, L_layers=2), 64, 10),
}


def step_flops(c, B):
    """bench.lua's count: block GEMMs (segment + target-Q forward, 1-step backward), attention
    (QK^T and PV) and lm_head forward + backward."""
    D, I, P = c.hidden_size, c.intermediate_size, c.puzzle_emb_len
    T, S, V = c.seq_len + P, c.seq_len, c.vocab_size
    nb = c.H_cycles * c.L_cycles * c.L_layers + c.H_cycles * c.H_layers
    ng = c.L_layers + c.H_layers
    fwd = 2 * nb
    f = 0
    for out, inp in ((3 * D, D), (D, D), (2 * I, D), (D, I)):
        f += 2 * B * T * out * inp * (fwd + 2 * ng)
    f += 3 * 2 * B * S * V * D
    f += 2 * 2 * B * c.num_heads * T * T * c.head_dim * (fwd + 2 * ng)
    return f


def make_batch(c, B, gen):
    V, S = c.vocab_size, c.seq_len
    return {
        "inputs": (torch.rand(B, S, generator=gen) * V).to(torch.int32),
        "labels": (torch.rand(B, S, generator=gen) * V).to(torch.int32),
        "puzzle_identifiers": torch.zeros(B, dtype=torch.int32),
    }


def train_step(model, opt, sopt, carry, batch, B):
    carry, total, _, _, _ = model(carry, batch)
    (total / B).backward()
    opt.step()
    opt.zero_grad()
    if sopt is not None:
        sopt.step()
        sopt.zero_grad()
    return carry


def infer_segment(model, carry, batch):
    with torch.no_grad():
        carry, _, _, _, _ = model(carry, batch)
    return carry


def bench(c, B, threads, steps, compiled, infer):
    """Seconds per training step (or per inference segment) after warm-up."""
    torch.set_num_threads(threads)
    set_blas_threads(threads)
    torch.manual_seed(0)
    head = hrm_ref.build(c, B)
    head.train(not infer)
    model = torch.compile(head, dynamic=False) if compiled else head
    opt = hrm_ref.AdamATan2(head.parameters(), lr=1e-4, weight_decay=0.1)
    inner = head.model.inner
    sopt = (hrm_ref.SparseEmbSignSGD(inner.puzzle_emb, lr=1e-2, weight_decay=0.1)
            if c.puzzle_emb_ndim > 0 else None)
    gen = torch.Generator().manual_seed(1)
    batch = make_batch(c, B, gen)
    carry = head.initial_carry(batch)
    run = ((lambda cr: infer_segment(model, cr, batch)) if infer else
           (lambda cr: train_step(model, opt, sopt, cr, batch, B)))
    for _ in range(3 if compiled else 1):  # warm-up: compilation, allocator, kernels
        carry = run(carry)
    t0 = time.perf_counter()
    for _ in range(steps):
        carry = run(carry)
    return (time.perf_counter() - t0) / steps


def onednn_isa_used():
    """The oneDNN implementation of a bf16 linear layer in this process (e.g. brg:avx512_core_amx),
    read from oneDNN's verbose output, or "?" when none was reported."""
    import tempfile
    x = torch.ones(64, 512, dtype=torch.bfloat16)
    w = torch.ones(512, 512, dtype=torch.bfloat16)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as f:
        os.dup2(f.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                F.linear(x, w)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        f.seek(0)
        for line in f:
            parts = line.strip().split(",")
            for kind in ("matmul", "inner_product"):
                if "exec" in parts and kind in parts[:-1]:
                    return parts[parts.index(kind) + 1]
    return "?"


def mapped_blas_libs():
    """Real paths of the BLAS libraries loaded in this process (after one matmul)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if re.search(r"lib(open)?blas|libmkl|libblis", os.path.basename(path)):
                libs.add(os.path.realpath(path))
    return sorted(libs)


def set_blas_threads(n):
    """torch.set_num_threads does not reach a pthread OpenBLAS (the Debian build's BLAS), which
    otherwise runs on every core: set it too, so "n threads" means n threads in the GEMMs."""
    done = []
    for lib in mapped_blas_libs():
        try:
            h = ctypes.CDLL(lib)
            h.openblas_set_num_threads(n)
            done.append(h.openblas_get_num_threads())
        except (OSError, AttributeError):
            pass
    return done


def blas_config():
    """One line: the build's BLAS settings and the BLAS/oneDNN libraries actually mapped."""
    cfg = torch.__config__.show()
    parts = []
    for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP"):
        m = re.search(key + r"=([^,\s]+)", cfg)
        if m:
            parts.append("%s=%s" % (key, m.group(1)))
    m = re.search(r"CPU capability usage: (\S+)", cfg)
    if m:
        parts.append("CPU capability %s" % m.group(1))
    m = re.search(r"(Intel\(R\) (?:MKL-DNN|oneDNN)[^\n(]*)", cfg)
    if m:
        parts.append(m.group(1).strip())
    if "MKL" in cfg and "MKL not found" not in torch.__config__.parallel_info():
        m = re.search(r"(Intel\(R\) Math Kernel Library[^\n]*)", cfg)
        if m:
            parts.append(m.group(1).strip())
    for lib in mapped_blas_libs():
        desc = lib
        try:
            get = ctypes.CDLL(lib).openblas_get_config
            get.restype = ctypes.c_char_p
            desc += " (%s)" % get().decode()
        except (OSError, AttributeError):
            pass
        parts.append(desc)
    return "; ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="hrm_v1", choices=sorted(CONFIGS))
    ap.add_argument("--batch", type=int)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts to try")
    ap.add_argument("--modes", default="compiled", help="eager, compiled or eager,compiled")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--vocab", type=int, default=11)
    ap.add_argument("--seq", type=int, default=81)
    ap.add_argument("--infer", action="store_true", help="time inference segments, not training")
    ap.add_argument("--verbose", action="store_true",
                    help="also print torch.__config__.show() and parallel_info()")
    ap.add_argument("--bf16", action="store_true",
                    help="forward_dtype bfloat16, as the reference's default")
    a = ap.parse_args()

    over, B0, steps0 = CONFIGS[a.config]
    c = hrm_ref.HRMConfig(vocab_size=a.vocab, seq_len=a.seq, **over)
    c.puzzle_emb_ndim = c.hidden_size
    if a.bf16:
        c.forward_dtype, c.attention = "bfloat16", "sdpa"
    B = a.batch or B0
    steps = a.steps or steps0
    flops = step_flops(c, B)
    amx = "amx_bf16" in open("/proc/cpuinfo").read()

    print("torch %s, default threads %d, interop threads %d" %
          (torch.__version__, torch.get_num_threads(), torch.get_num_interop_threads()))
    print("BLAS: %s" % blas_config())
    isa = onednn_isa_used() if a.bf16 else "-"
    if a.bf16:
        print("bf16 linear layers: oneDNN %s; CPU %s AMX" % (isa, "has" if amx else "has no"))
    if a.verbose:
        print(torch.__config__.show())
        print(torch.__config__.parallel_info())
    best = None
    what = "inference segment" if a.infer else "step"
    for mode in a.modes.split(","):
        if mode == "compiled" and not hasattr(torch, "compile"):
            print("== compiled mode skipped: torch %s has no torch.compile" % torch.__version__)
            continue
        for n in [int(x) for x in a.threads.split(",")]:
            dt = bench(c, B, n, steps, mode == "compiled", a.infer)
            blas_threads = ",".join(map(str, set_blas_threads(n))) or "-"
            rate = ("%.1f puzzles/s (16 segments each)" % (B / dt / 16) if a.infer else
                    "%.1f samples/s  %.1f GFLOP/s (%.1f GFLOP/step)" % (B / dt, flops / dt / 1e9,
                                                                      flops / 1e9))
            print("== %s%s %s, batch %d, %d threads (OpenBLAS %s): %s %.3f s  %s" %
                  (a.config, " bf16" if a.bf16 else "", mode, B, n, blas_threads, what, dt, rate),
                  flush=True)
            if best is None or dt < best[0]:
                best = (dt, n, mode)
    if best is None:
        sys.exit("bench_torch.py: no mode ran (--modes %s)" % a.modes)
    dt, n, mode = best
    print("RESULT step_s=%.6f threads=%d mode=%s samples_s=%.3f gflops=%.3f torch=%s dtype=%s "
          "isa=%s amx=%s" % (dt, n, mode, B / dt, 0 if a.infer else flops / dt / 1e9,
                             torch.__version__, "bf16" if a.bf16 else "f32", isa,
                             "yes" if "amx" in isa else "no"))


if __name__ == "__main__":
    main()
