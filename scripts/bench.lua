-- bench.lua — training and inference speed of a model's step (HRM, TRM, TRM-MLP, the transformer
-- baseline), against the GEMM library's own speed on the step's GEMM shapes measured in the same
-- run, and optionally against PyTorch (HRM). Prints figures; asserts nothing.
--
--   hrm scripts/bench.lua [--arch hrm|trm|trm_mlp|transformer|all] [--config hrm_v1|small|both]
--                         [--steps N] [--threads N] [--bf16] [--compare-torch] [--torch-threads 1,2]
--                         [--torch-modes eager,compiled] [--python L] [--no-infer]
--   hrm scripts/bench.lua --dist [--config hrm_v1|small] [--steps N] [--gpu-step-ms X]
--
-- FLOPs are counted the same way for every architecture: per training step, the segment's block
-- applications forward (HRM's hrm_v1: 24; TRM: H_cycles x (L_cycles + 1) x L_layers = 42; the
-- baseline: its 8 layers), the target-Q forward where the model runs one (HRM: another 24), the
-- backward of the blocks in the graph (2x their forward: HRM 8, TRM 14, baseline 8), attention
-- (QKᵀ and PV) or TRM-MLP's token SwiGLU, and lm_head forward + backward. "% of GEMM" is the
-- step's achieved FLOP rate over the rate the GEMM library reaches on the step's own linear-layer
-- shapes (timed here before and after the step, best of the two per shape, each shape weighted
-- by its FLOPs), in the precision in use.
--
-- The machine's vector FMA peak (hrm_fma_peak_gflops, all threads) is measured in the same run:
-- no fp32 GEMM passes it, so "% of FMA peak" says how close a step is to the hardware itself.
--
-- --bf16 runs the model with forward_dtype = "bfloat16" (bf16 GEMM operands, weights cast once
-- per step, bf16 carry) and also reports the machine's bf16 dot-product peak.
--
-- --compare-torch runs scripts/ref/bench_torch.py (the PyTorch twin's same training step, same
-- config, batch and FLOP count) as the reference's users run it: torch.compile (and eager, for
-- the best of both: --torch-modes), each --python interpreter at each of --torch-threads, and
-- with --bf16 the twin's forward_dtype bfloat16 (the reference's default) with attention through
-- F.scaled_dot_product_attention. It reports the fastest of all, its BLAS configuration, which
-- oneDNN kernel ran its bf16 linear layers (AMX or not), the ratio, the same for inference
-- (puzzles/s, 16 segments each), and the ratios hrm would reach at 100% of the machine's FMA (or
-- bf16) peak, the ceiling of any implementation on this machine, and at 100% of the GEMM
-- library's rate on the step's shapes; a PyTorch below a quarter of the GEMM rate measured here
-- is flagged as a likely handicapped baseline.
--
-- --dist: data-parallel training throughput, 2 ranks x 1 thread (mpirun) against 1 rank x 2
-- threads on the same global batch, the time of the gradient exchange per step and its share, and
-- a model of the exchange on GPUs: a ring all-reduce of the measured gradient takes
-- 2 (n - 1) / n x bytes / bus bandwidth, with NCCL's published bus bandwidths as inputs
-- (--nvlink-busbw, --ib-busbw in GB/s); --gpu-step-ms gives a GPU step time for the efficiency.
local ffi = require "ffi"
local hrm = require "hrm"

local a = require("hrm.cli").parse("bench.lua", { ... }, {
   usage = "hrm scripts/bench.lua [options]",
   { "options",
      { "--arch NAME", "str", "hrm (default), trm, trm_mlp, transformer, or all of them" },
      { "--config NAME", "str", "hrm_v1 (the arch's reference size, batch 32), small (hidden 128, 2+2 " ..
                                "layers, batch 64) or both (default)" },
      { "--steps N", "int", "timed training steps per config (default 3 for hrm_v1, 10 for small)" },
      { "--batch N", "int", "override the batch size" },
      { "--threads N", "int", "CPU threads (default: all)" },
      { "--bf16", "flag", "bf16 GEMM operands with fp32 accumulation (default fp32)" },
      { "--no-infer", "flag", "skip the inference figures" },
      { "--compare-torch", "flag", "also time the PyTorch twin (scripts/ref/bench_torch.py)" },
      { "--torch-threads L", "str", "PyTorch thread counts to try, comma-separated (default 1,2)" },
      { "--torch-modes L", "str", "PyTorch modes to try: eager, compiled (default both)" },
      { "--dist", "flag", "data-parallel throughput: 2 ranks x 1 thread against 1 rank x 2 threads" },
      { "--dist-worker", "flag", "(internal) one side of --dist" },
      { "--gpu-step-ms X", "num", "with --dist: a GPU training step's time for the modelled efficiency" },
      { "--nvlink-busbw X", "num", "with --dist: NCCL all-reduce bus bandwidth in one 8-GPU node, GB/s (default 450)" },
      { "--ib-busbw X", "num", "with --dist: across nodes, GB/s per GPU (default 40: a 400 Gb/s NIC per GPU)" },
      { "--python L", "str", "interpreters for the PyTorch baseline, comma-separated; the fastest counts " ..
                             "(default python3,/usr/bin/python3)" },
   },
})
local opts = { config = a.config or "both", arch = a.arch or "hrm", steps = a.steps, batch = a.batch, bf16 = a.bf16,
               no_infer = a["no-infer"], torch = a["compare-torch"], torch_threads = a["torch-threads"] or "1,2",
               torch_modes = a["torch-modes"] or "eager,compiled",
               python = a.python or "python3,/usr/bin/python3" }
if a.threads then hrm.set_threads(a.threads) end

-- The config of an architecture at a size: hrm_v1 = the arch's reference config, or small.
local function config_of(arch, size)
   local fields = hrm.config.arch_fields(arch)
   if not fields then io.stderr:write("bench: unknown arch " .. arch .. "\n") os.exit(1) end
   local over = { vocab_size = 11, seq_len = 81 }
   for k, v in pairs(fields) do over[k] = v end
   if opts.bf16 then over.forward_dtype = "bfloat16" end
   if size == "small" then return hrm.config.small(over) end
   return hrm.config.hrm_v1(over)
end
local SIZES = { hrm_v1 = { batch = 32, steps = 3 }, small = { batch = 64, steps = 10 } }
local has_amx = false  -- set from /proc/cpuinfo below
if a.dist or a["dist-worker"] then -- scripts/bench_dist.lua
   dofile((arg[0]:match("^(.*)/") or ".") .. "/bench_dist.lua")(a, config_of, SIZES)
   os.exit(0)
end

-- Block applications of one training step: forward in the segment, whether a target-Q segment
-- runs (another forward of the same blocks), and the blocks in the gradient's graph.
local function block_counts(c)
   if c.arch == "trm" then
      return c.H_cycles * (c.L_cycles + 1) * c.L_layers, false, (c.L_cycles + 1) * c.L_layers
   elseif c.arch == "transformer" then
      return c.H_layers, false, c.H_layers
   end
   return c.H_cycles * c.L_cycles * c.L_layers + c.H_cycles * c.H_layers, not c.no_ACT_continue,
          c.L_layers + c.H_layers
end

local function swiglu_width(width, expansion)
   return math.ceil(math.floor(expansion * width * 2 / 3 + 0.5) / 256) * 256
end

-- The GEMMs of one training step: {M, N, K, trans_a, trans_b, count}; attention FLOPs, block
-- applications forward, T.
local function step_gemms(c, B)
   local D, I = c.hidden_size, swiglu_width(c.hidden_size, c.expansion)
   local P = hrm.config.prefix_len(c)
   if c.arch == "transformer" then P = math.ceil(c.puzzle_emb_ndim / D) end
   local T, S, V = c.seq_len + P, c.seq_len, c.vocab_size
   local BT = B * T
   local nb, target_q, ng = block_counts(c)
   local fwd = target_q and 2 * nb or nb
   local list = {}
   local function add(M, N, K, ta, tb, n) list[#list + 1] = { M, N, K, ta, tb, n } end
   local function weight(rows, out, inp)
      add(rows, out, inp, 0, 1, fwd)     -- y = x Wᵀ
      add(rows, inp, out, 0, 0, ng)      -- dx = dy W
      add(out, inp, rows, 1, 0, ng)      -- dW = dyᵀ x
   end
   local HD = math.floor(D / c.num_heads)
   local A = c.num_heads * HD              -- attention width (504 for 12 heads at 512)
   local attn = 0
   if c.mlp_t then                         -- the token SwiGLU over T, on B·D rows
      local IT = swiglu_width(T, c.expansion)
      weight(B * D, 2 * IT, T)
      weight(B * D, T, IT)
   else
      weight(BT, 3 * A, D)
      weight(BT, D, A)
      attn = 2 * 2 * B * c.num_heads * T * T * HD * (fwd + 2 * ng)
   end
   weight(BT, 2 * I, D)
   weight(BT, D, I)
   add(B * S, V, D, 0, 1, 1)
   add(B * S, D, V, 0, 0, 1)
   add(V, D, B * S, 1, 0, 1)
   return list, attn, nb, T, target_q, ng
end

-- The PyTorch twin on the same config under one interpreter: the RESULT fields plus its BLAS
-- line and per-thread lines, or nil, reason. It is another program (Python), so it runs through
-- io.popen: no library call starts a process and reads its output.
local function torch_bench(python, name, B, steps, infer)
   local probe = io.popen(python .. " -c 'import torch; print(\"torch-ok\")' 2>&1")
   local got = probe:read("*a")
   probe:close()
   if not got:find("torch-ok", 1, true) then
      return nil, "PyTorch is not importable with " .. python .. " (" ..
                  (got:match("[^\n]*Error[^\n]*") or got:match("[^\n]+") or "no output") .. ")"
   end
   local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".")
   local script = here .. "/ref/bench_torch.py"
   local cmd = string.format("%s %s --config %s --batch %d --steps %d --threads %s --modes %s%s%s 2>&1", python,
                             script, name, B, steps, opts.torch_threads, opts.torch_modes,
                             opts.bf16 and " --bf16" or "", infer and " --infer" or "")
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
   local gemms, attn_flops, nb, T, target_q, ng = step_gemms(cfg, B)

   -- the GEMM library on the step's own shapes, timed before and after the step (best of the
   -- two per shape: on a shared machine this keeps "% of GEMM" conservative)
   local rates = {}
   local function time_gemms()
      if opts.bf16 then hrm.C.hrm_set_gemm_dtype(hrm.C.HRM_DTYPE_BF16) end
      for k, g in ipairs(gemms) do
         rates[k] = math.max(rates[k] or 0, hrm.C.hrm_gemm_gflops(g[1], g[2], g[3], g[4], g[5], 5))
      end
      hrm.C.hrm_set_gemm_dtype(hrm.C.HRM_DTYPE_F32)
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
   local tape_mib = model.tape:bytes() / 2 ^ 20
   time_gemms()
   fma_peak = math.max(fma_peak, hrm.C.hrm_fma_peak_gflops())
   local bf16_peak, bf16_isa = 0, "none"
   if opts.bf16 then
      local isa = ffi.new("const char *[1]")
      bf16_peak = hrm.C.hrm_bf16_peak_gflops(isa)
      bf16_isa = ffi.string(isa[0])
   end
   local ideal = 0
   for k, g in ipairs(gemms) do ideal = ideal + 2 * g[1] * g[2] * g[3] * g[6] / (rates[k] * 1e9) end
   local peak = gemm_flops / ideal / 1e9

   print(string.format("\n== %s: hidden %d, %d+%d layers, batch %d, seq %d (+%d prefix), %.2fM parameters, %s GEMMs",
                       name, cfg.hidden_size, cfg.H_layers, cfg.L_layers, B, S, T - S, model:num_parameters() / 1e6,
                       opts.bf16 and "bf16" or "fp32"))
   print(string.format("training step     %8.3f s   %8.1f samples/s   %7.1f GFLOP/s (%.1f GFLOP/step, %d%s block fwd, %d bwd)",
                       dt, B / dt, total_flops / dt / 1e9, total_flops / 1e9, nb, target_q and "+" .. nb or "", ng))
   print(string.format("tape arena        %8.1f MiB (saved activations, outputs, gradients%s)", tape_mib,
                       opts.bf16 and "; activations in bf16" or ""))
   print(string.format("GEMM library      %8.1f GFLOP/s on the step's shapes  ->  step at %.0f%% of it",
                       peak, 100 * (total_flops / dt / 1e9) / peak))
   print(string.format("machine FMA peak  %8.1f GFLOP/s fp32 (%d threads)      ->  step at %.0f%% of it, GEMMs at %.0f%%",
                       fma_peak, hrm.get_threads(), 100 * (total_flops / dt / 1e9) / fma_peak, 100 * peak / fma_peak))
   if opts.bf16 and bf16_peak > 0 then
      print(string.format("machine bf16 peak %8.1f GFLOP/s (%s, %d threads) ->  step at %.0f%% of it, GEMMs at %.0f%%",
                          bf16_peak, bf16_isa, hrm.get_threads(), 100 * (total_flops / dt / 1e9) / bf16_peak,
                          100 * peak / bf16_peak))
   elseif opts.bf16 then
      print("machine bf16 peak none: this CPU has neither AMX nor AVX-512 BF16, so bf16 runs through " ..
            "conversions and is slower than fp32 here")
   end

   local infer_ps
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
      infer_ps = B / dt_eval
      print(string.format("inference         %8.1f puzzles/s (%d segments, halt=max)   %.1f puzzles/s (halt=q, mean %.1f steps)",
                          infer_ps, segs, B / dt_q, r.steps:to("f64"):mean()))
   end
   if opts.bf16 then
      print("bf16 GEMMs        " .. hrm.blas() .. (has_amx and "" or "; this CPU has no AMX"))
   end

   if opts.torch and cfg.arch ~= "hrm" then
      print("PyTorch           skipped: scripts/ref/bench_torch.py times the HRM twin only")
   elseif opts.torch then
      local best, best_infer
      for python in opts.python:gmatch("[^,]+") do
         local r, err = torch_bench(python, name, B, steps)
         if not r then
            print("PyTorch           skipped: " .. err)
         else
            print(string.format("PyTorch %-9s %8.3f s   %8.1f samples/s   %7.1f GFLOP/s (%s, %s, %s, best of threads %s: %d)",
                                r.torch, r.step_s, r.samples_s, r.gflops, r.dtype, r.mode, python, opts.torch_threads,
                                r.threads))
            for _, l in ipairs(r.per_thread) do print("                  " .. l) end
            print("  BLAS            " .. r.blas)
            if opts.bf16 then print("  bf16 linear     oneDNN " .. r.isa .. " (AMX used: " .. r.amx .. ")") end
            if not best or r.step_s < best.step_s then best = r end
            if infer_ps then
               local ri, erri = torch_bench(python, name, B, 2, true)
               if ri then
                  local ps = B / ri.step_s / 16
                  print(string.format("  inference       %8.1f puzzles/s (16 segments, %s, %d threads)", ps, ri.mode, ri.threads))
                  if not best_infer or ps > best_infer.ps then best_infer = { ps = ps } end
               else
                  print("  inference       skipped: " .. erri)
               end
            end
         end
      end
      if best then
         print(string.format("hrm / PyTorch     %.2fx faster per training step (PyTorch %s %s at its best)",
                             best.step_s / dt, best.torch, best.mode))
         if best_infer then
            print(string.format("                  %.2fx faster in inference (puzzles/s)", infer_ps / best_infer.ps))
         end
         local top = opts.bf16 and bf16_peak or fma_peak
         if top > 0 then
            local ideal_s = total_flops / (top * 1e9) -- the step at 100% of the machine's peak
            print(string.format("ceiling           %.2fx: hrm at 100%% of the %s peak (%.3f s/step); %.2fx at 100%% of " ..
                                "the GEMM library's rate", best.step_s / ideal_s, opts.bf16 and "bf16" or "FMA", ideal_s,
                                best.step_s / (total_flops / (peak * 1e9))))
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
do -- the CPU's flags that decide the bf16 kernels
   local f = io.open("/proc/cpuinfo")
   local info = f and f:read("*a") or ""
   if f then f:close() end
   local flags = {}
   for _, k in ipairs({ "avx512f", "avx512_bf16", "amx_tile", "amx_bf16" }) do
      flags[#flags + 1] = k .. (info:find("%f[%w_]" .. k .. "%f[^%w_]") and "+" or "-")
   end
   has_amx = info:find("amx_bf16", 1, true) ~= nil
   print("CPU flags: " .. table.concat(flags, " "))
end
local names = opts.config == "both" and { "hrm_v1", "small" } or { opts.config }
local arches = opts.arch == "all" and { "hrm", "trm", "trm_mlp", "transformer" } or { opts.arch }
for _, arch in ipairs(arches) do
   for _, n in ipairs(names) do
      if not SIZES[n] then io.stderr:write("bench: unknown config " .. n .. "\n") os.exit(1) end
      local label = arch == "hrm" and n or arch .. (n == "small" and " small" or "")
      bench(label, { cfg = config_of(arch, n), batch = SIZES[n].batch, steps = SIZES[n].steps })
   end
end
