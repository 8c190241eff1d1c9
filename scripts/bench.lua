-- bench.lua — training and inference speed of the HRM step, against the GEMM library's own
-- speed on the step's GEMM shapes measured in the same run, and optionally against PyTorch.
-- Prints figures; asserts nothing.
--
--   hrm scripts/bench.lua [--config hrm_v1|small|both] [--steps N] [--threads N] [--bf16]
--                         [--compare-torch] [--torch-threads 1,2] [--no-infer]
--
-- FLOPs are counted honestly: per training step, the segment's block applications forward
-- (24 for hrm_v1), the target-Q forward (another 24), the backward of the 8 gradient blocks
-- (2x their forward), attention (QKᵀ and PV), and lm_head forward + backward. "% of GEMM" is the
-- step's achieved FLOP rate over the rate the GEMM library reaches on the step's own linear-layer
-- shapes (timed here before and after the step, best of the two per shape, each shape weighted
-- by its FLOPs), in the precision in use.
--
-- The machine's vector FMA peak (hrm_fma_peak_gflops, all threads) is measured in the same run:
-- no fp32 GEMM passes it, so "% of FMA peak" says how close a step is to the hardware itself.
--
-- --compare-torch runs scripts/ref/bench_torch.py (the PyTorch twin's same training step, same
-- config, batch and FLOP count) with each --python interpreter at each of --torch-threads and
-- reports the fastest of all, its BLAS configuration and the ratio, and the ratio hrm would
-- reach at 100% of the FMA peak (the ceiling of any fp32 implementation on this machine); a
-- PyTorch below a quarter of the GEMM rate measured here is flagged as a likely handicapped
-- baseline. With --bf16 PyTorch runs under CPU autocast to bf16, so both sides multiply in bf16.
local hrm = require "hrm"

local function usage()
   print([[usage: hrm scripts/bench.lua [options]
  --config NAME       hrm_v1 (batch 32), small (hidden 128, 2+2 layers, batch 64) or both (default)
  --steps N           timed training steps per config (default 3 for hrm_v1, 10 for small)
  --batch N           override the batch size
  --threads N         CPU threads (default: all)
  --bf16              bf16 GEMM operands with fp32 accumulation (default fp32)
  --no-infer          skip the inference figures
  --compare-torch     also time the PyTorch twin (scripts/ref/bench_torch.py)
  --torch-threads L   PyTorch thread counts to try, comma-separated (default 1,2)
  --python L          interpreters for the PyTorch baseline, comma-separated; the fastest
                      counts (default python3,/usr/bin/python3)]])
end

local opts = { config = "both", torch_threads = "1,2", python = "python3,/usr/bin/python3" }
local flags = { ["--bf16"] = "bf16", ["--no-infer"] = "no_infer", ["--compare-torch"] = "torch" }
local i = 1
while i <= #arg do
   local a = arg[i]
   if a == "-h" or a == "--help" then usage() return end
   local v = arg[i + 1]
   if flags[a] then opts[flags[a]] = true i = i - 1
   elseif a == "--config" then opts.config = v
   elseif a == "--steps" then opts.steps = tonumber(v)
   elseif a == "--batch" then opts.batch = tonumber(v)
   elseif a == "--threads" then hrm.set_threads(assert(tonumber(v), "--threads expects a number"))
   elseif a == "--torch-threads" then opts.torch_threads = v
   elseif a == "--python" then opts.python = v
   else io.stderr:write("bench: unknown option " .. a .. "\n") usage() os.exit(1) end
   i = i + 2
end
if opts.bf16 and hrm.C.hrm_set_gemm_dtype(hrm.C.HRM_DTYPE_BF16) ~= 0 then
   io.stderr:write("bench: " .. require("ffi").string(hrm.C.hrm_last_error()) .. "\n")
   os.exit(1)
end

local CONFIGS = {
   hrm_v1 = { cfg = hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81 }, batch = 32, steps = 3 },
   small = { cfg = hrm.config.small{ vocab_size = 11, seq_len = 81 }, batch = 64, steps = 10 },
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

-- The PyTorch twin on the same config under one interpreter: the RESULT fields plus its BLAS
-- line and per-thread lines, or nil, reason.
local function torch_bench(python, name, B, steps)
   local probe = io.popen(python .. " -c 'import torch; print(\"torch-ok\")' 2>&1")
   local got = probe:read("*a")
   probe:close()
   if not got:find("torch-ok", 1, true) then
      return nil, "PyTorch is not importable with " .. python .. " (" ..
                  (got:match("[^\n]*Error[^\n]*") or got:match("[^\n]+") or "no output") .. ")"
   end
   local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".")
   local script = here .. "/ref/bench_torch.py"
   local cmd = string.format("%s %s --config %s --batch %d --steps %d --threads %s%s 2>&1", python, script,
                             name, B, steps, opts.torch_threads, opts.bf16 and " --bf16" or "")
   local p = io.popen(cmd)
   local out = p:read("*a")
   p:close()
   local r = {}
   local line = out:match("RESULT ([^\n]*)")
   if not line then return nil, "bench_torch.py failed under " .. python .. ":\n" .. out end
   for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
   r.blas = out:match("BLAS: ([^\n]*)") or "?"
   r.per_thread = {}
   for l in out:gmatch("(== [^\n]*)") do r.per_thread[#r.per_thread + 1] = l end
   return r
end

local function bench(name, spec)
   local B = opts.batch or spec.batch
   local cfg = spec.cfg
   local model = hrm.Model(cfg, { seed = 0 })
   local opt = hrm.optim.AdamATan2(model, { lr = 1e-4, weight_decay = 0.1 })
   local gemms, attn_flops, nb, T = step_gemms(cfg, B)

   -- the GEMM library on the step's own shapes, timed before and after the step (best of the
   -- two per shape: on a shared machine this keeps "% of GEMM" conservative)
   local rates = {}
   local function time_gemms()
      for k, g in ipairs(gemms) do
         rates[k] = math.max(rates[k] or 0, hrm.C.hrm_gemm_gflops(g[1], g[2], g[3], g[4], g[5], 5))
      end
   end
   local gemm_flops = 0
   for _, g in ipairs(gemms) do gemm_flops = gemm_flops + 2 * g[1] * g[2] * g[3] * g[6] end
   local total_flops = gemm_flops + attn_flops
   time_gemms()
   local fma_peak = hrm.C.hrm_fma_peak_gflops()

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
   time_gemms()
   fma_peak = math.max(fma_peak, hrm.C.hrm_fma_peak_gflops())
   local ideal = 0
   for k, g in ipairs(gemms) do ideal = ideal + 2 * g[1] * g[2] * g[3] * g[6] / (rates[k] * 1e9) end
   local peak = gemm_flops / ideal / 1e9

   print(string.format("\n== %s: hidden %d, %d+%d layers, batch %d, seq %d (+%d prefix), %.2fM parameters, %s GEMMs",
                       name, cfg.hidden_size, cfg.H_layers, cfg.L_layers, B, S, T - S, model:num_parameters() / 1e6,
                       opts.bf16 and "bf16" or "fp32"))
   print(string.format("training step     %8.3f s   %8.1f samples/s   %7.1f GFLOP/s (%.1f GFLOP/step, %d+%d block fwd, %d bwd)",
                       dt, B / dt, total_flops / dt / 1e9, total_flops / 1e9, nb, nb, cfg.H_layers + cfg.L_layers))
   print(string.format("GEMM library      %8.1f GFLOP/s on the step's shapes  ->  step at %.0f%% of it",
                       peak, 100 * (total_flops / dt / 1e9) / peak))
   print(string.format("machine FMA peak  %8.1f GFLOP/s fp32 (%d threads)      ->  step at %.0f%% of it, GEMMs at %.0f%%",
                       fma_peak, hrm.get_threads(), 100 * (total_flops / dt / 1e9) / fma_peak, 100 * peak / fma_peak))

   if not opts.no_infer then
      -- inference: 16 eval segments ("max" policy) and the "q" policy
      local eval_carry = model:carry(B)
      local t1 = hrm.C.hrm_wall_time()
      local segs = cfg.halt_max_steps
      for _ = 1, segs do model:step(eval_carry, batch, { train = false }) end
      local dt_eval = hrm.C.hrm_wall_time() - t1
      local t2 = hrm.C.hrm_wall_time()
      local r = model:solve({ inputs = batch.inputs }, { halt = "q" })
      local dt_q = hrm.C.hrm_wall_time() - t2
      print(string.format("inference         %8.1f puzzles/s (%d segments, halt=max)   %.1f puzzles/s (halt=q, mean %.1f steps)",
                          B / dt_eval, segs, B / dt_q, r.steps:to("f64"):mean()))
   end

   if opts.torch then
      local best
      for python in opts.python:gmatch("[^,]+") do
         local r, err = torch_bench(python, name, B, steps)
         if not r then
            print("PyTorch           skipped: " .. err)
         else
            print(string.format("PyTorch %-9s %8.3f s   %8.1f samples/s   %7.1f GFLOP/s (%s, %s, best of threads %s: %d)",
                                r.torch, r.step_s, r.samples_s, r.gflops, r.dtype, python, opts.torch_threads, r.threads))
            for _, l in ipairs(r.per_thread) do print("                  " .. l) end
            print("  BLAS            " .. r.blas)
            if not best or r.step_s < best.step_s then best = r end
         end
      end
      if best then
         print(string.format("hrm / PyTorch     %.2fx faster per training step (PyTorch %s at its best)",
                             best.step_s / dt, best.torch))
         if not opts.bf16 then
            local ideal_s = total_flops / (fma_peak * 1e9) -- the step at 100% of the FMA peak
            print(string.format("ceiling           %.2fx: hrm at 100%% of the FMA peak (%.3f s/step)",
                                best.step_s / ideal_s, ideal_s))
         end
         if best.gflops < 0.25 * peak then
            print(string.format("note              PyTorch reaches %.0f%% of the GEMM rate measured here: its BLAS " ..
                                "may be handicapped (see its BLAS line); try --python with a newer PyTorch",
                                100 * best.gflops / peak))
         end
      end
   end
end

print(string.format("hrm %s, %s, %d threads", hrm.version(), hrm.blas(), hrm.get_threads()))
local names = opts.config == "both" and { "hrm_v1", "small" } or { opts.config }
for _, n in ipairs(names) do
   if not CONFIGS[n] then io.stderr:write("bench: unknown config " .. n .. "\n") os.exit(1) end
   bench(n, CONFIGS[n])
end
