"""hrm_ref.py — a small PyTorch twin of the Hierarchical Reasoning Model, built from docs/HRM_SPEC.md.

It exists to produce golden fixtures for the C engine (scripts/ref/make_golden.py) and to be the
PyTorch side of scripts/bench.lua --compare-torch; it is not a trainer and has no data pipeline or
distributed code.
Invariants: with forward_dtype None everything runs in the dtype of the parameters (fp32 for
fixtures, fp64 for the finite-difference check); with forward_dtype "bfloat16" it runs as the
reference's default does (spec §1.12): fp32 parameters cast to bf16 on every call, bf16 activations
and carry, rms_norm and RoPE in fp32, the q head cast to fp32, the losses in fp64/fp32, attention
as FlashAttention computes it (fp32 scores and softmax, bf16 probabilities times V with fp32
accumulation) or, with attention="sdpa", through F.scaled_dot_product_attention;
state_dict() keys equal the reference's (model.inner.H_level.layers.0...);
the maths follows spec §1 (model), §2 (ACT wrapper), §3 (losses, metrics), §4.1-4.2 (optimizers).
"""

import math
from dataclasses import dataclass, asdict, field

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_LABEL_ID = -100


# ---- config ---------------------------------------------------------------------------------

@dataclass
class HRMConfig:
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    H_layers: int = 4
    L_layers: int = 4
    H_cycles: int = 2
    L_cycles: int = 2
    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    pos_encodings: str = "rope"       # "rope" | "learned"
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    puzzle_emb_ndim: int = 512        # 0 = no puzzle prefix
    num_puzzle_identifiers: int = 1
    vocab_size: int = 11
    seq_len: int = 81
    loss: str = "stablemax"           # "stablemax" | "softmax"
    forward_dtype: str = None         # None: the parameters' dtype; "bfloat16": the reference's
    attention: str = "math"           # "math" (explicit, FlashAttention's rounding) | "sdpa"

    def to_dict(self):
        return asdict(self)

    @property
    def head_dim(self):
        return self.hidden_size // self.num_heads

    @property
    def puzzle_emb_len(self):
        # P = ceil(ndim / D), 0 without a puzzle embedding (§1.4)
        return -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def intermediate_size(self):
        # §1.7: roundup(round(expansion * D * 2/3), 256)
        n = round(self.expansion * self.hidden_size * 2 / 3)
        return -(n // -256) * 256


# ---- init (§1.1) ----------------------------------------------------------------------------

def trunc_normal_init_(t, std=1.0, lower=-2.0, upper=2.0):
    """Truncated normal scaled so that the realised std equals `std` (JAX-style)."""
    with torch.no_grad():
        if std == 0:
            return t.zero_()
        sqrt2 = math.sqrt(2.0)
        a = math.erf(lower / sqrt2)
        b = math.erf(upper / sqrt2)
        z = (b - a) / 2
        c = (2 * math.pi) ** -0.5
        pdf_u = c * math.exp(-0.5 * lower ** 2)
        pdf_l = c * math.exp(-0.5 * upper ** 2)
        comp_std = std / math.sqrt(1 - (upper * pdf_u - lower * pdf_l) / z - ((pdf_u - pdf_l) / z) ** 2)
        t.uniform_(a, b)
        t.erfinv_()
        t.mul_(sqrt2 * comp_std)
        t.clip_(lower * comp_std, upper * comp_std)
    return t


# ---- layers ---------------------------------------------------------------------------------

class CastedLinear(nn.Module):
    """y = x W^T (+ b); W [out, in] LeCun trunc-normal, b zero (§1.2)."""

    def __init__(self, in_features, out_features, bias):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_init_(torch.empty(out_features, in_features),
                                                      std=1.0 / math.sqrt(in_features)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), b)


class CastedEmbedding(nn.Module):
    """Row gather from a [num, D] table (§1.3)."""

    def __init__(self, num_embeddings, embedding_dim, init_std, cast_to=None):
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(
            trunc_normal_init_(torch.empty(num_embeddings, embedding_dim), std=init_std))

    def forward(self, ids):
        w = self.embedding_weight
        return F.embedding(ids.long(), w.to(self.cast_to) if self.cast_to is not None else w)


class CastedSparseEmbedding(nn.Module):
    """Per-puzzle table kept as a persistent buffer and trained by sign-SGD (§1.4, §4.2).

    In training (with grad enabled) the rows of the batch are copied into `local_weights`, a leaf
    [B, ndim] that receives the gradient, and the ids into `local_ids`.
    """

    def __init__(self, num_embeddings, embedding_dim, batch_size, init_std=0.0, cast_to=None):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.cast_to = cast_to
        self.register_buffer("weights", trunc_normal_init_(torch.empty(num_embeddings, embedding_dim),
                                                           std=init_std), persistent=True)
        self.register_buffer("local_weights", torch.zeros(batch_size, embedding_dim), persistent=False)
        self.register_buffer("local_ids", torch.zeros(batch_size, dtype=torch.int32), persistent=False)

    def forward(self, ids):
        if not (self.training and torch.is_grad_enabled()):
            # eval, or the no-grad target-Q forward: same values as the local copy
            return self._cast(self.weights[ids.long()])
        with torch.no_grad():
            lw = self.local_weights
            if lw.shape[0] != ids.shape[0] or lw.dtype != self.weights.dtype or not lw.is_leaf:
                self.local_weights = self.weights.new_zeros(ids.shape[0], self.embedding_dim)
                self.local_ids = torch.zeros(ids.shape[0], dtype=torch.int32)
            self.local_weights.copy_(self.weights[ids.long()])
            self.local_ids.copy_(ids)
        self.local_weights.requires_grad_(True)
        return self._cast(self.local_weights)

    def _cast(self, x):
        return x.to(self.cast_to) if self.cast_to is not None else x


class RotaryEmbedding(nn.Module):
    """Half-split RoPE tables cos/sin [T, HD], fp32 math (§1.5)."""

    def __init__(self, dim, max_position_embeddings, base):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        t = torch.arange(max_position_embeddings, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self):
        return self.cos_cached, self.sin_cached


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    # q, k: (B, T, NH, HD); cos, sin: (T, HD), broadcast over heads; bf16 q, k rotate in fp32
    dt = torch.promote_types(q.dtype, torch.float32)
    cos = cos.to(dt).unsqueeze(-2)
    sin = sin.to(dt).unsqueeze(-2)
    qf, kf = q.to(dt), k.to(dt)
    return ((qf * cos + rotate_half(qf) * sin).to(q.dtype),
            (kf * cos + rotate_half(kf) * sin).to(k.dtype))


class Attention(nn.Module):
    """Non-causal MHA, qkv channels [Q heads | K heads | V heads], scale 1/sqrt(HD) (§1.6)."""

    def __init__(self, hidden_size, head_dim, num_heads, impl="math"):
        super().__init__()
        self.impl = impl
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.qkv_proj = CastedLinear(hidden_size, 3 * num_heads * head_dim, bias=False)
        self.o_proj = CastedLinear(num_heads * head_dim, hidden_size, bias=False)

    def forward(self, cos_sin, hidden_states):
        B, T, _ = hidden_states.shape
        NH, HD = self.num_heads, self.head_dim
        qkv = self.qkv_proj(hidden_states).view(B, T, 3 * NH, HD)
        q, k, v = qkv[:, :, :NH], qkv[:, :, NH:2 * NH], qkv[:, :, 2 * NH:]
        if cos_sin is not None:
            q, k = apply_rotary_pos_emb(q, k, *cos_sin)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))               # (B, NH, T, HD)
        if self.impl == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            # scores and softmax in at least fp32; bf16 probabilities times V, fp32 accumulation
            dt = torch.promote_types(q.dtype, torch.float32)
            att = torch.softmax((q.to(dt) @ k.to(dt).transpose(-2, -1)) * (1.0 / math.sqrt(HD)), dim=-1)
            o = att.to(v.dtype) @ v
        out = o.transpose(1, 2).reshape(B, T, NH * HD)                 # head-major
        return self.o_proj(out)


class SwiGLU(nn.Module):
    """down(silu(gate) * up); gate is the first half of gate_up (§1.7)."""

    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.gate_up_proj = CastedLinear(hidden_size, 2 * intermediate_size, bias=False)
        self.down_proj = CastedLinear(intermediate_size, hidden_size, bias=False)

    def forward(self, x):
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


def rms_norm(x, eps):
    # gain-free (§1.8), computed in at least fp32 and returned in the dtype of x
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)).to(x.dtype)


class Block(nn.Module):
    """Post-norm transformer block (§1.9)."""

    def __init__(self, config):
        super().__init__()
        self.self_attn = Attention(config.hidden_size, config.head_dim, config.num_heads,
                                   config.attention)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)
        self.norm_eps = config.rms_norm_eps

    def forward(self, cos_sin, hidden_states):
        h = rms_norm(hidden_states + self.self_attn(cos_sin=cos_sin, hidden_states=hidden_states), self.norm_eps)
        h = rms_norm(h + self.mlp(h), self.norm_eps)
        return h


class ReasoningModule(nn.Module):
    """module(h, inj) = blocks(h + inj), injection added once (§1.10)."""

    def __init__(self, config, num_layers):
        super().__init__()
        self.layers = nn.ModuleList([Block(config) for _ in range(num_layers)])

    def forward(self, hidden_states, input_injection, cos_sin):
        hidden_states = hidden_states + input_injection
        for layer in self.layers:
            hidden_states = layer(cos_sin=cos_sin, hidden_states=hidden_states)
        return hidden_states


# ---- inner model (§1.11) ----------------------------------------------------------------------

@dataclass
class InnerCarry:
    z_H: torch.Tensor   # (B, T, D)
    z_L: torch.Tensor   # (B, T, D)


@dataclass
class Carry:
    inner_carry: InnerCarry
    steps: torch.Tensor                 # (B) int32
    halted: torch.Tensor                # (B) bool
    current_data: dict = field(default_factory=dict)


class HRMInner(nn.Module):
    def __init__(self, config, batch_size):
        super().__init__()
        c = config
        self.config = c
        D = c.hidden_size
        self.embed_scale = math.sqrt(D)
        embed_init_std = 1.0 / self.embed_scale
        fd = self.forward_dtype = getattr(torch, c.forward_dtype) if c.forward_dtype else None
        self.embed_tokens = CastedEmbedding(c.vocab_size, D, init_std=embed_init_std, cast_to=fd)
        self.lm_head = CastedLinear(D, c.vocab_size, bias=False)
        self.q_head = CastedLinear(D, 2, bias=True)
        self.puzzle_emb_len = c.puzzle_emb_len
        if c.puzzle_emb_ndim > 0:
            self.puzzle_emb = CastedSparseEmbedding(c.num_puzzle_identifiers, c.puzzle_emb_ndim,
                                                    batch_size=batch_size, init_std=0.0, cast_to=fd)
        T = c.seq_len + self.puzzle_emb_len
        if c.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(c.head_dim, T, c.rope_theta)
        elif c.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(T, D, init_std=embed_init_std, cast_to=fd)
        else:
            raise ValueError("pos_encodings must be 'rope' or 'learned', got %r" % c.pos_encodings)
        self.H_level = ReasoningModule(c, c.H_layers)
        self.L_level = ReasoningModule(c, c.L_layers)
        self.register_buffer("H_init", trunc_normal_init_(torch.empty(D), std=1.0), persistent=True)
        self.register_buffer("L_init", trunc_normal_init_(torch.empty(D), std=1.0), persistent=True)
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)

    def cos_sin(self):
        return self.rotary_emb() if hasattr(self, "rotary_emb") else None

    def input_embeddings(self, inputs, puzzle_identifiers):
        c = self.config
        D, P = c.hidden_size, self.puzzle_emb_len
        emb = self.embed_tokens(inputs.to(torch.int32))                       # (B, S, D)
        if c.puzzle_emb_ndim > 0:
            pe = self.puzzle_emb(puzzle_identifiers)                          # (B, ndim)
            pad = P * D - pe.shape[-1]
            if pad > 0:
                pe = F.pad(pe, (0, pad))
            emb = torch.cat((pe.view(-1, P, D), emb), dim=-2)                 # (B, T, D)
        if c.pos_encodings == "learned":
            emb = 0.707106781 * (emb + self.embed_pos.embedding_weight.to(emb.dtype))
        return self.embed_scale * emb

    def empty_carry(self, batch_size):
        T = self.config.seq_len + self.puzzle_emb_len
        z = self.H_init.new_zeros(batch_size, T, self.config.hidden_size, dtype=self.forward_dtype)
        return InnerCarry(z_H=z.clone(), z_L=z.clone())

    def reset_carry(self, reset_flag, carry):
        # the carry is kept in the forward dtype (bf16 by default in the reference, H_init too)
        f = reset_flag.view(-1, 1, 1)
        dt = carry.z_H.dtype
        return InnerCarry(z_H=torch.where(f, self.H_init.to(dt), carry.z_H),
                          z_L=torch.where(f, self.L_init.to(dt), carry.z_L))

    def latent_nograd(self, z_H, z_L, x):
        """The cycles that carry no gradient: all but the last L and the last H update."""
        c = self.config
        cs = self.cos_sin()
        for h in range(c.H_cycles):
            for l in range(c.L_cycles):
                if not (h == c.H_cycles - 1 and l == c.L_cycles - 1):
                    z_L = self.L_level(z_L, z_H + x, cs)
            if h != c.H_cycles - 1:
                z_H = self.H_level(z_H, z_L, cs)
        return z_H, z_L

    def latent_grad(self, z_H, z_L, x):
        """The 1-step gradient: one L update then one H update, in the graph."""
        cs = self.cos_sin()
        z_L = self.L_level(z_L, z_H + x, cs)
        z_H = self.H_level(z_H, z_L, cs)
        return z_H, z_L

    def heads(self, z_H):
        P = self.puzzle_emb_len
        logits = self.lm_head(z_H)[:, P:]                                    # (B, S, V)
        q = self.q_head(z_H[:, 0])                                           # (B, 2)
        q = q.to(torch.promote_types(q.dtype, torch.float32))
        return logits, q[..., 0], q[..., 1]

    def forward(self, carry, batch):
        x = self.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
        with torch.no_grad():
            z_H, z_L = self.latent_nograd(carry.z_H, carry.z_L, x)
        z_H, z_L = self.latent_grad(z_H, z_L, x)
        new_carry = InnerCarry(z_H=z_H.detach(), z_L=z_L.detach())
        logits, q_halt, q_continue = self.heads(z_H)
        return new_carry, logits, (q_halt, q_continue)


# ---- ACT wrapper (§2) ---------------------------------------------------------------------------

class HRM(nn.Module):
    def __init__(self, config, batch_size):
        super().__init__()
        self.config = config
        self.inner = HRMInner(config, batch_size)

    def initial_carry(self, batch):
        B = batch["inputs"].shape[0]
        return Carry(inner_carry=self.inner.empty_carry(B),
                     steps=torch.zeros(B, dtype=torch.int32),
                     halted=torch.ones(B, dtype=torch.bool),
                     current_data={k: torch.zeros_like(v) for k, v in batch.items()})

    def forward(self, carry, batch):
        c = self.config
        inner_carry = self.inner.reset_carry(carry.halted, carry.inner_carry)
        steps = torch.where(carry.halted, torch.zeros_like(carry.steps), carry.steps)
        data = {k: torch.where(carry.halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v)
                for k, v in carry.current_data.items()}

        new_inner, logits, (q_halt, q_continue) = self.inner(inner_carry, data)
        outputs = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue}

        with torch.no_grad():
            steps = steps + 1
            is_last = steps >= c.halt_max_steps
            halted = is_last
            if self.training and c.halt_max_steps > 1:
                halted = halted | (q_halt > q_continue)
                if c.halt_exploration_prob > 0:
                    explore = torch.rand_like(q_halt) < c.halt_exploration_prob
                    min_halt = explore * torch.randint_like(steps, low=2, high=c.halt_max_steps + 1)
                    halted = halted & (steps >= min_halt)
                # target Q from one more segment on the new carry, same data (no grad)
                _, _, (nq_halt, nq_cont) = self.inner(new_inner, data)
                outputs["target_q_continue"] = torch.sigmoid(
                    torch.where(is_last, nq_halt, torch.maximum(nq_halt, nq_cont)))
        return Carry(new_inner, steps.to(torch.int32), halted, data), outputs


# ---- losses and metrics (§3) ------------------------------------------------------------------

METRIC_NAMES = ["loss", "lm_loss", "q_halt_loss", "q_continue_loss", "accuracy", "exact_accuracy",
                "q_halt_accuracy", "steps", "count"]


def _stablemax_s(x, epsilon=1e-30):
    return torch.where(x < 0, 1 / (1 - x + epsilon), x + 1)


def log_stablemax(x, dim=-1):
    s = _stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits, labels, ignore_index=IGNORE_LABEL_ID):
    logprobs = log_stablemax(logits.to(torch.float64), dim=-1)
    valid = labels != ignore_index
    idx = torch.where(valid, labels, 0).long()
    picked = torch.gather(logprobs, -1, idx.unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, torch.zeros_like(picked))


def softmax_cross_entropy(logits, labels, ignore_index=IGNORE_LABEL_ID):
    dt = torch.promote_types(logits.dtype, torch.float32)
    V = logits.shape[-1]
    return F.cross_entropy(logits.to(dt).reshape(-1, V), labels.long().reshape(-1),
                           ignore_index=ignore_index, reduction="none").view(labels.shape)


LOSSES = {"stablemax": stablemax_cross_entropy, "softmax": softmax_cross_entropy}


def act_loss(loss_kind, logits, q_halt, q_continue, labels, halted, steps, target_q_continue=None):
    """total = lm + 0.5 (q_halt + q_continue) as batch sums, and the §3.5 metric sums."""
    with torch.no_grad():
        mask = labels != IGNORE_LABEL_ID
        counts = mask.sum(-1)
        divisor = counts.clamp_min(1).unsqueeze(-1)
        correct = mask & (torch.argmax(logits, dim=-1) == labels)
        seq_correct = correct.sum(-1) == counts
        valid = halted & (counts > 0)
        metrics = {
            "count": valid.sum(),
            "accuracy": torch.where(valid, (correct.to(torch.float64) / divisor).sum(-1), 0.0).sum(),
            "exact_accuracy": (valid & seq_correct).sum(),
            "q_halt_accuracy": (valid & ((q_halt >= 0) == seq_correct)).sum(),
            "steps": torch.where(valid, steps, 0).sum(),
        }
    lm_loss = (LOSSES[loss_kind](logits, labels) / divisor).sum()
    q_halt_loss = F.binary_cross_entropy_with_logits(q_halt, seq_correct.to(q_halt.dtype), reduction="sum")
    q_continue_loss = torch.zeros((), dtype=q_halt.dtype)
    if target_q_continue is not None:
        q_continue_loss = F.binary_cross_entropy_with_logits(q_continue, target_q_continue, reduction="sum")
    total = lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
    metrics.update(loss=total.detach(), lm_loss=lm_loss.detach(), q_halt_loss=q_halt_loss.detach(),
                   q_continue_loss=q_continue_loss.detach())
    return total, metrics


def metrics_vector(metrics):
    """The metrics as float64 in METRIC_NAMES order."""
    return torch.tensor([float(metrics[k]) for k in METRIC_NAMES], dtype=torch.float64)


class ACTLossHead(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def initial_carry(self, batch):
        return self.model.initial_carry(batch)

    def forward(self, carry, batch):
        new_carry, out = self.model(carry, batch)
        total, metrics = act_loss(self.model.config.loss, out["logits"], out["q_halt_logits"],
                                  out["q_continue_logits"], new_carry.current_data["labels"],
                                  new_carry.halted, new_carry.steps, out.get("target_q_continue"))
        return new_carry, total, metrics, out, new_carry.halted.all()


def build(config, batch_size):
    return ACTLossHead(HRM(config, batch_size))


# ---- optimizers (§4.1, §4.2) ----------------------------------------------------------------------

class AdamATan2:
    """Adam with atan2 in place of the eps division: a = b = 1, no eps, decoupled decay first."""

    def __init__(self, params, lr, betas=(0.9, 0.95), weight_decay=0.1):
        self.params = list(params)
        self.lr, self.betas, self.weight_decay = lr, betas, weight_decay
        self.state = {}

    @torch.no_grad()
    def step(self):
        b1, b2 = self.betas
        lr, wd = self.lr, self.weight_decay
        for p in self.params:
            if p.grad is None:
                continue
            st = self.state.setdefault(p, {"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            st["t"] += 1
            t = st["t"]
            g = p.grad
            p.mul_(1 - lr * wd)
            st["m"].lerp_(g, 1 - b1)
            st["v"].lerp_(g * g, 1 - b2)
            bc1 = 1 - b1 ** t
            bc2 = 1 - b2 ** t
            p.sub_(lr * torch.atan2(st["m"] / bc1, st["v"].sqrt() / math.sqrt(bc2)))

    def zero_grad(self):
        for p in self.params:
            p.grad = None


class SparseEmbSignSGD:
    """w <- w (1 - lr wd) - lr sign(G) on the unique ids of the batch; duplicate grads summed."""

    def __init__(self, puzzle_emb, lr, weight_decay):
        self.emb, self.lr, self.weight_decay = puzzle_emb, lr, weight_decay

    @torch.no_grad()
    def step(self):
        g = self.emb.local_weights.grad
        if g is None:
            return
        ids, inv = self.emb.local_ids.long().unique(return_inverse=True)
        G = g.new_zeros(ids.shape[0], g.shape[1]).scatter_add_(0, inv.unsqueeze(-1).expand(-1, g.shape[1]), g)
        w = self.emb.weights[ids]
        w.mul_(1 - self.lr * self.weight_decay).add_(torch.sign(G), alpha=-self.lr)
        self.emb.weights[ids] = w

    def zero_grad(self):
        self.emb.local_weights.grad = None
