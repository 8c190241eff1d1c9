"""trm_ref.py — a small PyTorch twin of the Tiny Recursive Model and the transformer baseline.

Written from docs/HRM_SPEC.md §8 (TRM) and the documented behaviour of the TRM repository's
transformer baseline, over the layers of hrm_ref.py (same init, attention, SwiGLU, gain-free
RMSNorm, embeddings, loss head and optimizers). It exists only to produce golden fixtures for
the engine (scripts/ref/make_trm_golden.py): fp32/fp64 on the CPU, no bf16, no torch.compile.
Invariants: state_dict() keys equal the reference's (model.inner.L_level.layers.0...); the ACT
wrapper is HRM's with two switches, the halting rule and whether a target-Q segment runs.
"""

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

import hrm_ref as ref


# ---- config ---------------------------------------------------------------------------------

@dataclass
class TRMConfig:
    arch: str = "trm"                 # "trm" | "transformer"
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    H_layers: int = 0                 # TRM: ignored; transformer: its layers
    L_layers: int = 2
    H_cycles: int = 3
    L_cycles: int = 6
    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    pos_encodings: str = "rope"       # "rope" | "learned" | "none"
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    puzzle_emb_ndim: int = 512
    num_puzzle_identifiers: int = 1
    vocab_size: int = 11
    seq_len: int = 81
    loss: str = "stablemax"
    puzzle_emb_len: int = 16          # 0: ceil(puzzle_emb_ndim / hidden_size)
    no_ACT_continue: bool = True
    mlp_t: bool = False

    def to_dict(self):
        return asdict(self)

    @property
    def head_dim(self):
        # floor: the baseline's 12 heads at 512 have 42 dims (attention width 504)
        return self.hidden_size // self.num_heads

    @property
    def prefix_len(self):
        if self.puzzle_emb_len > 0:
            return self.puzzle_emb_len
        return -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def tokens(self):
        return self.seq_len + self.prefix_len

    @staticmethod
    def inter(width, expansion):
        n = round(expansion * width * 2 / 3)
        return -(n // -256) * 256

    @property
    def intermediate_size(self):
        return self.inter(self.hidden_size, self.expansion)


# ---- the TRM block (§8.2) -----------------------------------------------------------------------

class TRMBlock(nn.Module):
    """Post-norm block; with mlp_t the attention sublayer is a SwiGLU over the sequence axis,
    its residual and RMSNorm taken while transposed (the norm runs over the tokens)."""

    def __init__(self, c):
        super().__init__()
        self.mlp_t_on = c.mlp_t
        if c.mlp_t:
            self.mlp_t = ref.SwiGLU(c.tokens, c.inter(c.tokens, c.expansion))
        else:
            self.self_attn = ref.Attention(c.hidden_size, c.head_dim, c.num_heads)
        self.mlp = ref.SwiGLU(c.hidden_size, c.intermediate_size)
        self.norm_eps = c.rms_norm_eps

    def forward(self, cos_sin, hidden_states):
        h = hidden_states
        if self.mlp_t_on:
            ht = h.transpose(1, 2)                                            # (B, D, T)
            ht = ref.rms_norm(ht + self.mlp_t(ht), self.norm_eps)
            h = ht.transpose(1, 2)
        else:
            h = ref.rms_norm(h + self.self_attn(cos_sin=cos_sin, hidden_states=h), self.norm_eps)
        return ref.rms_norm(h + self.mlp(h), self.norm_eps)


class Reasoning(nn.Module):
    """module(h, inj) = blocks(h + inj)."""

    def __init__(self, c, num_layers):
        super().__init__()
        self.layers = nn.ModuleList([TRMBlock(c) for _ in range(num_layers)])

    def forward(self, hidden_states, input_injection, cos_sin):
        h = hidden_states + input_injection
        for layer in self.layers:
            h = layer(cos_sin=cos_sin, hidden_states=h)
        return h


# ---- inner models ---------------------------------------------------------------------------------

class InnerBase(nn.Module):
    """Embeddings, heads, positions and the init buffers shared by TRM and the baseline."""

    def __init__(self, c, batch_size, states):
        super().__init__()
        self.config = c
        D = c.hidden_size
        self.embed_scale = math.sqrt(D)
        std = 1.0 / self.embed_scale
        self.embed_tokens = ref.CastedEmbedding(c.vocab_size, D, init_std=std)
        self.lm_head = ref.CastedLinear(D, c.vocab_size, bias=False)
        self.q_head = ref.CastedLinear(D, 2, bias=True)
        self.puzzle_emb_len = c.prefix_len
        if c.puzzle_emb_ndim > 0:
            self.puzzle_emb = ref.CastedSparseEmbedding(c.num_puzzle_identifiers, c.puzzle_emb_ndim,
                                                        batch_size=batch_size, init_std=0.0)
        if c.pos_encodings == "rope":
            self.rotary_emb = ref.RotaryEmbedding(c.head_dim, c.tokens, c.rope_theta)
        elif c.pos_encodings == "learned":
            self.embed_pos = ref.CastedEmbedding(c.tokens, D, init_std=std)
        self.states = states

    def init_buffers(self):
        D = self.config.hidden_size
        for s in self.states:
            self.register_buffer(s + "_init", ref.trunc_normal_init_(torch.empty(D), std=1.0), persistent=True)
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)

    def cos_sin(self):
        return self.rotary_emb() if hasattr(self, "rotary_emb") else None

    input_embeddings = ref.HRMInner.input_embeddings
    heads = ref.HRMInner.heads

    def empty_carry(self, B):
        z = self.H_init.new_zeros(B, self.config.tokens, self.config.hidden_size)
        return {s: z.clone() for s in self.states}

    def reset_carry(self, flag, carry):
        f = flag.view(-1, 1, 1)
        return {s: torch.where(f, getattr(self, s + "_init"), carry[s]) for s in self.states}


class TRMInner(InnerBase):
    """z = net(z, y + x) L_cycles times, then y = net(y, z); H_cycles - 1 recursions without
    gradient and the last with full backpropagation (§8.2). y = z_H, z = z_L."""

    def __init__(self, c, batch_size):
        super().__init__(c, batch_size, ("H", "L"))
        self.L_level = Reasoning(c, c.L_layers)
        self.init_buffers()

    def recursion(self, y, z, x):
        cs = self.cos_sin()
        for _ in range(self.config.L_cycles):
            z = self.L_level(z, y + x, cs)
        y = self.L_level(y, z, cs)
        return y, z

    def latent_nograd(self, carry, x):
        y, z = carry["H"], carry["L"]
        for _ in range(self.config.H_cycles - 1):
            y, z = self.recursion(y, z, x)
        return {"H": y, "L": z}

    def latent_grad(self, carry, x):
        y, z = self.recursion(carry["H"], carry["L"], x)
        return {"H": y, "L": z}


class TransformerInner(InnerBase):
    """The baseline: one H_level call on z_H + x per segment, in the graph (one state, z_H)."""

    def __init__(self, c, batch_size):
        super().__init__(c, batch_size, ("H",))
        self.H_level = Reasoning(c, c.H_layers)
        self.init_buffers()

    def latent_nograd(self, carry, x):
        return carry

    def latent_grad(self, carry, x):
        return {"H": self.H_level(carry["H"], x, self.cos_sin())}


def inner_forward(inner, carry, batch):
    x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
    with torch.no_grad():
        z = inner.latent_nograd(carry, x)
    z = inner.latent_grad(z, x)
    new = {k: v.detach() for k, v in z.items()}
    logits, q_halt, q_continue = inner.heads(z["H"])
    return new, logits, (q_halt, q_continue)


# ---- ACT wrapper ----------------------------------------------------------------------------------

class ACT(nn.Module):
    """HRM's wrapper (§2.2) with TRM's rule: halt on q_halt > 0 and no target-Q segment
    (no_ACT_continue); the baseline halts on q_halt > q_continue and runs no target-Q either."""

    def __init__(self, c, batch_size):
        super().__init__()
        self.config = c
        self.inner = (TRMInner if c.arch == "trm" else TransformerInner)(c, batch_size)
        self.halt_positive = c.arch == "trm"
        self.target_q = False

    def initial_carry(self, batch):
        B = batch["inputs"].shape[0]
        return ref.Carry(inner_carry=self.inner.empty_carry(B), steps=torch.zeros(B, dtype=torch.int32),
                         halted=torch.ones(B, dtype=torch.bool),
                         current_data={k: torch.zeros_like(v) for k, v in batch.items()})

    def forward(self, carry, batch):
        c = self.config
        inner_carry = self.inner.reset_carry(carry.halted, carry.inner_carry)
        steps = torch.where(carry.halted, torch.zeros_like(carry.steps), carry.steps)
        data = {k: torch.where(carry.halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v)
                for k, v in carry.current_data.items()}
        new_inner, logits, (q_halt, q_continue) = inner_forward(self.inner, inner_carry, data)
        outputs = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue}
        with torch.no_grad():
            steps = steps + 1
            halted = steps >= c.halt_max_steps
            if self.training and c.halt_max_steps > 1:
                halted = halted | (q_halt > (0 if self.halt_positive else q_continue))
                if c.halt_exploration_prob > 0:
                    explore = torch.rand_like(q_halt) < c.halt_exploration_prob
                    min_halt = explore * torch.randint_like(steps, low=2, high=c.halt_max_steps + 1)
                    halted = halted & (steps >= min_halt)
        return ref.Carry(new_inner, steps.to(torch.int32), halted, data), outputs


class LossHead(ref.ACTLossHead):
    pass


def build(config, batch_size):
    return LossHead(ACT(config, batch_size))


# ---- EMA of the parameters (§8.3) ------------------------------------------------------------------

class EMA:
    """shadow <- (1 - mu) p + mu shadow after each optimizer step; buffers are not averaged."""

    def __init__(self, module, mu):
        self.mu = mu
        self.shadow = {n: p.detach().clone() for n, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module):
        for n, p in module.named_parameters():
            self.shadow[n] = (1.0 - self.mu) * p.detach() + self.mu * self.shadow[n]
