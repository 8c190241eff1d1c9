-- hrm/models/transformer.lua — the TRM repository's transformer baseline (transformers_baseline.py)
-- over hrm.nn: HRM's embeddings and heads around one stack of H_layers post-norm blocks.
--
-- It keeps the ACT carry the baseline keeps, one state z_H (reset to H_init), and each segment
-- is a single call z_H = H_level(z_H + x) in the graph (the carry enters detached). H_cycles is
-- kept in its config for compatibility and not used; L_* are ignored. Attention has
-- num_heads heads of hidden_size // num_heads dims, so the attention width may be below the
-- hidden size (12 heads at 512: 42 dims, width 504). The baseline halts in training on
-- q_halt > q_continue and its loss head never asks for the target-Q segment, so the loss is
-- lm + 0.5·q_halt BCE: net.act = {halt = "compare", target_q = false}.
local nn = require "hrm.nn"
local HRM = require "hrm.models.hrm"

local Transformer = { name = "transformer" }

function Transformer.build(cfg, store)
   local D, S, E = cfg.hidden_size, cfg.seq_len, cfg.puzzle_emb_ndim
   if cfg.H_layers < 1 then
      HRM.refuse("field 'H_layers' = %d must be >= 1 for arch transformer (its layers)", cfg.H_layers)
   end
   if cfg.pos_encodings == "none" then
      HRM.refuse("pos_encodings = \"none\" is not supported by the transformer baseline (rope or learned)")
   end
   if cfg.mlp_t then HRM.refuse("field 'mlp_t' is for arch trm, not transformer") end
   if cfg.puzzle_emb_len ~= 0 then
      HRM.refuse("field 'puzzle_emb_len' is for arch trm: the transformer baseline's prefix is " ..
                 "ceil(puzzle_emb_ndim / hidden_size)\n---> HINT: leave puzzle_emb_len = 0")
   end
   local P = math.ceil(E / D)
   local T = S + P
   local inner = "model.inner."
   local net = { cfg = cfg, prefix = P, tokens = T }
   HRM.declare_io(net, store)
   local block = { hidden_size = D, num_heads = cfg.num_heads, expansion = cfg.expansion,
                   rms_norm_eps = cfg.rms_norm_eps, tokens = T, head_dim = math.floor(D / cfg.num_heads),
                   rope = cfg.pos_encodings == "rope", rope_theta = cfg.rope_theta }
   net.H_level = nn.Reasoning(store, inner .. "H_level", cfg.H_layers, block)
   store:buffer(inner .. "H_init", { D }, { init = "trunc_normal", std = 1 })
   if E > 0 then
      net.puzzle_emb = nn.PuzzleEmbedding(store, inner .. "puzzle_emb", cfg.num_puzzle_identifiers, E)
   end
   net.embed = nn.InputEmbedding{ tokens = net.embed_tokens, positions = net.embed_pos,
                                  puzzle = net.puzzle_emb, prefix = P, scale = math.sqrt(D) }
   net.states = { { "z_H", inner .. "H_init" } }
   net.act = { halt = "compare", target_q = false }
   net.modules = { "embed", "H_level", "lm_head", "q_head" }
   return net
end

Transformer.embed = HRM.embed

-- One segment: z_H = H_level(z_H, x), the only call, in the graph.
function Transformer.forward(net, z, x, out, tape)
   local zH = nn.call(tape, net.H_level, z.z_H, z.z_H, x)
   local q = nn.call(tape, net.q_head, out.q, zH)
   local logits = out.logits and nn.call(tape, net.lm_head, out.logits, zH)
   return { z_H = zH }, logits, q
end

return Transformer
