-- bench_dist.lua — `hrm scripts/bench.lua --dist`: data-parallel training throughput (a part of
-- scripts/bench.lua, loaded by it; see its banner).
--
-- The driver runs two workers on the same global batch and steps: 1 rank x 2 threads, then
-- `mpirun -np 2` ranks x 1 thread; each worker times model:step on its rows, the gradient exchange
-- (hrm.dist.reduce_gradients) and opt:step, and rank 0 prints one "result" line. Then the modelled
-- exchange on GPUs from the measured gradient size. Prints figures; asserts nothing.
local hrm = require "hrm"

local format = string.format

-- One side: steps of the global batch B shared among the ranks; prints the result on rank 0.
local function worker(a, config_of, SIZES)
   local rank, size = hrm.dist.init()
   local name = a.config or "hrm_v1"
   local cfg = config_of("hrm", name)
   local B, steps = a.batch or SIZES[name].batch, a.steps or SIZES[name].steps
   local b = B / size
   local model = hrm.Model(cfg, { seed = 0 })
   local opt = hrm.optim.AdamATan2(model, { lr = 1e-4, weight_decay = 0.1 })
   hrm.manual_seed(1)
   local S, V = cfg.seq_len, cfg.vocab_size
   local whole = { inputs = (hrm.Tensor.rand(B, S) * V):to("i32"), labels = (hrm.Tensor.rand(B, S) * V):to("i32") }
   local mine = { inputs = whole.inputs:narrow(1, rank * b + 1, b), labels = whole.labels:narrow(1, rank * b + 1, b) }
   local carry = model:carry(b)
   local step_opts = { train = true, global_batch = B, row_offset = rank * b }
   local exchange = 0
   local function one()
      model:step(carry, mine, step_opts)
      local t = hrm.C.hrm_wall_time()
      hrm.dist.reduce_gradients(model, 1)
      exchange = exchange + hrm.C.hrm_wall_time() - t
      opt:step()
   end
   one() -- warm-up
   hrm.dist.barrier()
   exchange = 0
   local t0 = hrm.C.hrm_wall_time()
   for _ = 1, steps do one() end
   local dt = (hrm.C.hrm_wall_time() - t0) / steps
   if rank == 0 then
      print(format("result %d %d %.6f %.6f %d", size, hrm.get_threads(), dt, exchange / steps,
                   model:num_parameters() * 4))
   end
end

-- The figures of a worker command's result line.
local function run(cmd)
   local f = assert(io.popen(cmd .. " 2>&1"))
   local out = f:read("*a")
   f:close()
   local size, threads, dt, ex, bytes = out:match("result (%d+) (%d+) ([%d.e-]+) ([%d.e-]+) (%d+)")
   if not size then error("bench --dist: the worker failed: " .. cmd .. "\n" .. out, 0) end
   return { size = tonumber(size), threads = tonumber(threads), dt = tonumber(dt), exchange = tonumber(ex),
            bytes = tonumber(bytes) }
end

local function driver(a, SIZES)
   local name = a.config or "hrm_v1"
   local B = a.batch or SIZES[name].batch
   local hrm_bin = arg[-1] or "hrm"
   local common = format("scripts/bench.lua --dist-worker --config %s --batch %d%s", name, B,
                         a.steps and (" --steps " .. a.steps) or "")
   print(format("hrm %s, %s; %s, global batch %d", hrm.version(), hrm.blas(), name, B))
   local one = run(format("%s --threads 2 %s", hrm_bin, common))
   local two = run(format("OMPI_MCA_mpi_yield_when_idle=1 mpirun --oversubscribe --allow-run-as-root -np 2 %s " ..
                          "%s --threads 1", hrm_bin, common))
   print(format("1 rank x 2 threads   %8.3f s/step  %8.1f samples/s", one.dt, B / one.dt))
   print(format("2 ranks x 1 thread   %8.3f s/step  %8.1f samples/s  (%.0f%% of 1 x 2)", two.dt, B / two.dt,
                100 * one.dt / two.dt))
   print(format("gradient exchange    %8.4f s/step  (%.1f%% of the step; %.1f MB of gradient, MPI)", two.exchange,
                100 * two.exchange / two.dt, two.bytes / 1e6))
   -- the modelled exchange on GPUs: ring all-reduce, 2 (n-1)/n x bytes / bus bandwidth
   local nvlink, ib = (a["nvlink-busbw"] or 450) * 1e9, (a["ib-busbw"] or 40) * 1e9
   print(format("modelled NCCL all-reduce of %.1f MB (bus bandwidth: %.0f GB/s NVLink in a node, %.0f GB/s across nodes):",
                two.bytes / 1e6, nvlink / 1e9, ib / 1e9))
   for _, g in ipairs({ { 2, nvlink, "2 GPUs, 1 node" }, { 4, nvlink, "4 GPUs, 1 node" }, { 8, nvlink, "8 GPUs, 1 node" },
                        { 16, ib, "16 GPUs, 2 nodes" } }) do
      local n, bw = g[1], g[2]
      local t = 2 * (n - 1) / n * two.bytes / bw
      local line = format("  %-18s %7.2f ms/step", g[3], 1e3 * t)
      if a["gpu-step-ms"] then
         local s = a["gpu-step-ms"] / 1e3
         line = line .. format("  efficiency %.0f%% without overlap (step %.1f ms)", 100 * s / (s + t), 1e3 * s)
      end
      print(line)
   end
end

return function(a, config_of, SIZES)
   if a["dist-worker"] then return worker(a, config_of, SIZES) end
   return driver(a, SIZES)
end
