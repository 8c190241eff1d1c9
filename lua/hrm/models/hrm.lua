-- hrm/models/hrm.lua — the Hierarchical Reasoning Model (HRM_SPEC §1.11, §2) over hrm.nn.
--
-- A model file returns a table with:
--   build(cfg, store) -> net   declare the modules (in state-dict order: checkpoints, optimizer
--                              state and the init draws follow it); net.states lists the carry's
--                              recurrent states {name, init buffer name}
--   embed(net, inputs, puzzle_ids, out, tape) -> x          the input embedding (B, T, D)
--   forward(net, z, x, out, tape) -> new states, logits, q  one segment (§1.11) from states z,
--                              out = {logits = (B, S, V) or nil to skip, q = (B, 2)} for the
--                              untaped calls; with a tape the calls that carry gradient go
--                              through it and their outputs come back as tape outputs
-- The ACT wrapper (hrm/models/act.lua: reset, halting, target-Q, losses) is shared.
--   net.act (optional) = {halt = "compare"|"positive", target_q = bool}: the ACT wrapper's
--                              halting rule and target-Q; without it, cfg.no_ACT_continue picks
local nn = require "hrm.nn"
local config = require "hrm.config"

local HRM = { name = "hrm" }

-- A config error from a model file's build, naming the field (no file position).
function HRM.refuse(fmt, ...) error("hrm.Model: " .. string.format(fmt, ...), 0) end

-- The modules every model file here declares first, in the reference's state-dict order: the
-- token embedding, the LM head (task positions P..T-1), the Q head (token 0: zero weight, bias
-- -5, so nobody halts until the head learns, §1.11.7) and learned positions. net.cfg, net.prefix
-- (P) and net.tokens (T) must be set.
function HRM.declare_io(net, store)
   local cfg, P, T = net.cfg, net.prefix, net.tokens
   local D, S, inner = cfg.hidden_size, cfg.seq_len, "model.inner."
   net.embed_tokens = nn.Embedding(store, inner .. "embed_tokens", cfg.vocab_size, D)
   net.lm_head = nn.Linear(store, inner .. "lm_head", D, cfg.vocab_size, { tokens = { P, S } })
   net.q_head = nn.Linear(store, inner .. "q_head", D, 2,
                          { tokens = { 0, 1 }, bias = true, init = "zero", bias_init = -5 })
   if cfg.pos_encodings == "learned" then
      net.embed_pos = nn.Embedding(store, inner .. "embed_pos", T, D)
   end
end

function HRM.build(cfg, store)
   local D, S, E = cfg.hidden_size, cfg.seq_len, cfg.puzzle_emb_ndim
   for _, k in ipairs({ "H_layers", "L_layers" }) do
      if cfg[k] < 1 then HRM.refuse("field '%s' = %d must be >= 1 for arch hrm", k, cfg[k]) end
   end
   if cfg.mlp_t then HRM.refuse("field 'mlp_t' is for arch trm (HRM has no token-mixing variant)") end
   local P = config.prefix_len(cfg)   -- puzzle-prefix positions
   local T = S + P
   local inner = "model.inner."
   local net = { cfg = cfg, prefix = P, tokens = T }
   HRM.declare_io(net, store)
   local block = { hidden_size = D, num_heads = cfg.num_heads, expansion = cfg.expansion,
                   rms_norm_eps = cfg.rms_norm_eps, tokens = T,
                   rope = cfg.pos_encodings == "rope", rope_theta = cfg.rope_theta }
   net.H_level = nn.Reasoning(store, inner .. "H_level", cfg.H_layers, block)
   net.L_level = nn.Reasoning(store, inner .. "L_level", cfg.L_layers, block)
   store:buffer(inner .. "H_init", { D }, { init = "trunc_normal", std = 1 })
   store:buffer(inner .. "L_init", { D }, { init = "trunc_normal", std = 1 })
   if E > 0 then
      net.puzzle_emb = nn.PuzzleEmbedding(store, inner .. "puzzle_emb", cfg.num_puzzle_identifiers, E)
   end
   net.embed = nn.InputEmbedding{ tokens = net.embed_tokens, positions = net.embed_pos,
                                  puzzle = net.puzzle_emb, prefix = P, scale = math.sqrt(D) }
   net.states = { { "z_H", inner .. "H_init" }, { "z_L", inner .. "L_init" } }
   net.modules = { "embed", "H_level", "L_level", "lm_head", "q_head" }  -- for printing
   return net
end

-- x = input_embeddings(inputs, puzzle_ids) (§1.11.1)
function HRM.embed(net, inputs, puzzle_ids, out, tape)
   return nn.call(tape, net.embed, out, inputs, puzzle_ids)
end

-- One segment (§1.11.2-7) from z = {z_H, z_L}; the untaped calls update z in place.
function HRM.forward(net, z, x, out, tape)
   local cfg = net.cfg
   local zH, zL = z.z_H, z.z_L
   -- without gradient: every L and H call but the last of each (L, L, H, L for 2 x 2 cycles)
   for h = 1, cfg.H_cycles do
      for l = 1, cfg.L_cycles do
         if not (h == cfg.H_cycles and l == cfg.L_cycles) then
            net.L_level:forward(zL, zL, zH, x)          -- z_L = L(z_L, z_H + x)
         end
      end
      if h < cfg.H_cycles then net.H_level:forward(zH, zH, zL) end  -- z_H = H(z_H, z_L)
   end
   -- the 1-step gradient: only these two calls are in the graph; z_L and z_H enter detached,
   -- so the gradient reaches x (the embedding) only through the L call
   zL = nn.call(tape, net.L_level, zL, zL, zH, x)
   zH = nn.call(tape, net.H_level, zH, zH, zL)
   -- heads (q before the LM head: the backward then runs the LM head's first)
   local q = nn.call(tape, net.q_head, out.q, zH)
   local logits = out.logits and nn.call(tape, net.lm_head, out.logits, zH)
   return { z_H = zH, z_L = zL }, logits, q
end

return HRM
