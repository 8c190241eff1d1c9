-- bench.lua — training and inference speed of the HRM step, against the GEMM library's own
-- speed on the step's GEMM shapes measured in the same run. Prints figures; asserts nothing.
--
--   hrm scripts/bench.lua [--config hrm_v1|small|both] [--steps N] [--threads N]
--
-- FLOPs are counted honestly: per training step, the segment's block applications forward
-- (24 for hrm_v1), the target-Q forward (another 24), the backward of the 8 gradient blocks
-- (2x their forward), attention (QKᵀ and PV), and lm_head forward + backward. "% of GEMM" is the
-- time the step's GEMMs would take at the library's measured rate for each shape over the
-- measured step time.
local hrm = require "hrm"

local function usage()
   print([[usage: hrm scripts/bench.lua [options]
  --config NAME   hrm_v1 (batch 32), small (hidden 128, 2+2 layers, batch 64) or both (default)
  --steps N       timed training steps per config (default 5 for hrm_v1, 20 for small)
  --batch N       override the batch size
  --threads N     CPU threads (default: all)]])
end

local opts = { config = "both" }
local i = 1
while i <= #arg do
   local a = arg[i]
   if a == "-h" or a == "--help" then usage() return end
   local v = arg[i + 1]
   if a == "--config" then opts.config = v
   elseif a == "--steps" then opts.steps = tonumber(v)
   elseif a == "--batch" then opts.batch = tonumber(v)
   elseif a == "--threads" then hrm.set_threads(assert(tonumber(v), "--threads expects a number"))
   else io.stderr:write("bench: unknown option " .. a .. "\n") usage() os.exit(1) end
   i = i + 2
end

local CONFIGS = {
   hrm_v1 = { cfg = hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81 }, batch = 32, steps = 5 },
   small = { cfg = hrm.config.small{ vocab_size = 11, seq_len = 81 }, batch = 64, steps = 20 },
}

-- The GEMMs of one training step: {M, N, K, trans_a, trans_b, count}.
local function step_gemms(c, B)
   local D, I = c.hidden_size, 0
   I = math.floor(c.expansion * D * 2 / 3 + 0.5)
   I = math.ceil(I / 256) * 256
   local P = math.ceil(c.puzzle_emb_ndim / D)
   local T, S, V = c.seq_len + P, c.seq_len, c.vocab_size
   local BT = B * T
   local nb = c.H_cycles * c.L_cycles * c.L_layers + c.H_cycles * c.H_layers
   local ng = c.L_layers + c.H_layers
   local fwd = 2 * nb -- segment + target-Q forward
   local list = {}
   local function add(M, N, K, ta, tb, n) list[#list + 1] = { M, N, K, ta, tb, n } end
   for _, w in ipairs({ { 3 * D, D }, { D, D }, { 2 * I, D }, { D, I } }) do
      local out, inp = w[1], w[2]
      add(BT, out, inp, 0, 1, fwd)     -- y = x Wᵀ
      add(BT, inp, out, 0, 0, ng)      -- dx = dy W
      add(out, inp, BT, 1, 0, ng)      -- dW = dyᵀ x
   end
   add(B * S, V, D, 0, 1, 1)
   add(B * S, D, V, 0, 0, 1)
   add(V, D, B * S, 1, 0, 1)
   local attn = 2 * 2 * B * c.num_heads * T * T * (D / c.num_heads) * (fwd + 2 * ng)
   return list, attn, nb, T
end

local function bench(name, spec)
   local B = opts.batch or spec.batch
   local cfg = spec.cfg
   local model = hrm.Model(cfg, { seed = 0 })
   local opt = hrm.optim.AdamATan2(model, { lr = 1e-4, weight_decay = 0.1 })
   local gemms, attn_flops, nb, T = step_gemms(cfg, B)

   -- the GEMM library on the step's own shapes
   local gemm_flops, ideal = 0, 0
   for _, g in ipairs(gemms) do
      local f = 2 * g[1] * g[2] * g[3] * g[6]
      local rate = hrm.C.hrm_gemm_gflops(g[1], g[2], g[3], g[4], g[5], 5)
      gemm_flops = gemm_flops + f
      ideal = ideal + f / (rate * 1e9)
   end
   local peak = gemm_flops / ideal / 1e9
   local total_flops = gemm_flops + attn_flops

   hrm.manual_seed(1)
   local S, V = cfg.seq_len, cfg.vocab_size
   local batch = { inputs = (hrm.Tensor.rand(B, S) * V):to("i32"), labels = (hrm.Tensor.rand(B, S) * V):to("i32") }
   local carry = model:carry(B)
   model:step(carry, batch, { train = true }) -- warm-up (arena, GEMM kernels)
   opt:step()
   local steps = opts.steps or spec.steps
   local t0 = hrm.C.hrm_wall_time()
   for _ = 1, steps do
      model:step(carry, batch, { train = true })
      opt:step()
   end
   local dt = (hrm.C.hrm_wall_time() - t0) / steps

   -- inference: 16 eval segments ("max" policy) and the "q" policy
   local eval_carry = model:carry(B)
   local t1 = hrm.C.hrm_wall_time()
   local segs = cfg.halt_max_steps
   for _ = 1, segs do model:step(eval_carry, batch, { train = false }) end
   local dt_eval = hrm.C.hrm_wall_time() - t1
   local t2 = hrm.C.hrm_wall_time()
   local r = model:solve({ inputs = batch.inputs }, { halt = "q" })
   local dt_q = hrm.C.hrm_wall_time() - t2

   print(string.format("\n== %s: hidden %d, %d+%d layers, batch %d, seq %d (+%d prefix), %.2fM parameters",
                       name, cfg.hidden_size, cfg.H_layers, cfg.L_layers, B, S, T - S, model:num_parameters() / 1e6))
   print(string.format("training step     %8.3f s   %8.1f samples/s   %7.1f GFLOP/s (%.1f GFLOP/step, %d+%d block fwd, %d bwd)",
                       dt, B / dt, total_flops / dt / 1e9, total_flops / 1e9, nb, nb, cfg.H_layers + cfg.L_layers))
   print(string.format("GEMM library      %8.1f GFLOP/s on the step's shapes  ->  step at %.0f%% of it",
                       peak, 100 * (total_flops / dt / 1e9) / peak))
   print(string.format("inference         %8.1f puzzles/s (%d segments, halt=max)   %.1f puzzles/s (halt=q, mean %.1f steps)",
                       B / dt_eval, segs, B / dt_q, r.steps:to("f64"):mean()))
end

print(string.format("hrm %s, %s, %d threads", hrm.version(), hrm.blas(), hrm.get_threads()))
local names = opts.config == "both" and { "hrm_v1", "small" } or { opts.config }
for _, n in ipairs(names) do
   if not CONFIGS[n] then io.stderr:write("bench: unknown config " .. n .. "\n") os.exit(1) end
   bench(n, CONFIGS[n])
end
