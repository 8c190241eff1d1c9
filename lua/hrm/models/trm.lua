-- hrm/models/trm.lua — the Tiny Recursive Model (TRM, HRM_SPEC §8.2) over hrm.nn.
--
-- One weight-tied network `L_level` (L_layers blocks; H_layers is ignored) updates the latent
-- z (carry name z_L) from z + y + x, L_cycles times, then the answer y (z_H) from y + z. Each
-- segment runs H_cycles - 1 such recursions without gradient and one with full backpropagation
-- through all L_cycles + 1 calls: those calls simply go through the tape, which accumulates the
-- shared weights' gradient over every call. The heads read y. Halting is the ACT wrapper's,
-- with TRM's rule (q_halt > 0, no target-Q: no_ACT_continue). The layout of the store follows
-- the reference's state dict; embed and the heads are as HRM's (hrm/models/hrm.lua). With
-- mlp_t (TRM-MLP) each block mixes tokens with a SwiGLU over the sequence axis instead of
-- attention (the block module's mlp_t option; RoPE tables are then unused, as in the reference).
local nn = require "hrm.nn"
local config = require "hrm.config"
local HRM = require "hrm.models.hrm"

local TRM = { name = "trm" }

function TRM.build(cfg, store)
   local D, S, E = cfg.hidden_size, cfg.seq_len, cfg.puzzle_emb_ndim
   if cfg.L_layers < 1 then HRM.refuse("field 'L_layers' = %d must be >= 1 for arch trm", cfg.L_layers) end
   if not cfg.no_ACT_continue then
      HRM.refuse("no_ACT_continue = false is not supported for arch trm: the reference's path for it " ..
                 "unpacks five values from an inner forward that returns three, so it cannot run" ..
                 "\n---> HINT: keep no_ACT_continue = true (q_halt > 0 halts, no target-Q)")
   end
   local P = config.prefix_len(cfg)   -- puzzle_emb_len prefix positions (16 in trm.yaml)
   local T = S + P
   local inner = "model.inner."
   local net = { cfg = cfg, prefix = P, tokens = T }
   HRM.declare_io(net, store)
   local block = { hidden_size = D, num_heads = cfg.num_heads, expansion = cfg.expansion,
                   rms_norm_eps = cfg.rms_norm_eps, tokens = T,
                   rope = cfg.pos_encodings == "rope", rope_theta = cfg.rope_theta, mlp_t = cfg.mlp_t }
   net.L_level = nn.Reasoning(store, inner .. "L_level", cfg.L_layers, block)
   store:buffer(inner .. "H_init", { D }, { init = "trunc_normal", std = 1 })
   store:buffer(inner .. "L_init", { D }, { init = "trunc_normal", std = 1 })
   if E > 0 then
      net.puzzle_emb = nn.PuzzleEmbedding(store, inner .. "puzzle_emb", cfg.num_puzzle_identifiers, E)
   end
   net.embed = nn.InputEmbedding{ tokens = net.embed_tokens, positions = net.embed_pos,
                                  puzzle = net.puzzle_emb, prefix = P, scale = math.sqrt(D) }
   net.states = { { "z_H", inner .. "H_init" }, { "z_L", inner .. "L_init" } }
   net.act = { halt = "positive", target_q = false }
   net.modules = { "embed", "L_level", "lm_head", "q_head" }
   return net
end

TRM.embed = HRM.embed

-- One segment from z = {z_H = y, z_L = z}; the untaped calls update them in place.
function TRM.forward(net, z, x, out, tape)
   local cfg, L = net.cfg, net.L_level
   local y, zl = z.z_H, z.z_L
   -- H_cycles - 1 recursions without gradient
   for _ = 1, cfg.H_cycles - 1 do
      for _ = 1, cfg.L_cycles do L:forward(zl, zl, y, x) end   -- z = net(z, y + x)
      L:forward(y, y, zl)                                      -- y = net(y, z)
   end
   -- the last recursion with gradient through all L_cycles + 1 calls: each taped call reads the
   -- previous one's output, so the tape routes the gradient back through the whole chain
   for _ = 1, cfg.L_cycles do zl = nn.call(tape, L, zl, zl, y, x) end
   y = nn.call(tape, L, y, y, zl)
   local q = nn.call(tape, net.q_head, out.q, y)
   local logits = out.logits and nn.call(tape, net.lm_head, out.logits, y)
   return { z_H = y, z_L = zl }, logits, q
end

return TRM
