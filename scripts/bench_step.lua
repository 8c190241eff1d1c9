-- bench_step.lua — one timing sample of the HRM step: a training step and an inference solve
-- (16 segments, and halt = "q"), for one config, batch and thread count. Prints one line of
-- `key=value` figures: wall seconds (`_s`) and process CPU seconds (`_cpu`, all threads; at one
-- thread the steadier figure on a shared machine), the tape's arena and the peak resident memory
-- after the training steps (MiB). scripts/bench_ab.sh alternates it between two builds. Asserts
-- nothing.
--
--   hrm scripts/bench_step.lua [--config hrm_v1|small] [--batch N] [--threads N] [--steps N]
--                                [--dtype float32|bfloat16] [--no-infer]
local hrm = require "hrm"

-- Options are read by hand, not through hrm.cli: scripts/bench_ab.sh runs this file with older
-- builds' binaries, whose Lua package may predate hrm.cli.
local opts = { config = "small", steps = 3, dtype = "float32" }
local HELP = [[
usage: hrm scripts/bench_step.lua [options]

options:
   --config NAME   hrm_v1 or small (default)
   --batch N       rows per step (default 32 for hrm_v1, 64 for small)
   --threads N     CPU threads (default: all)
   --steps N       timed training steps (default 3)
   --dtype NAME    forward_dtype: float32 (default) or bfloat16
   --no-infer      time the training step only (the solve figures print as 0)
   -h, --help      this text]]
local i = 1
while i <= #arg do
   local k, v = arg[i], arg[i + 1]
   if k == "--no-infer" then opts.no_infer, i = true, i - 1
   elseif k == "-h" or k == "--help" then print(HELP) os.exit(0)
   elseif k == "--config" then opts.config = v
   elseif k == "--batch" then opts.batch = tonumber(v)
   elseif k == "--threads" then hrm.set_threads(tonumber(v))
   elseif k == "--steps" then opts.steps = tonumber(v)
   elseif k == "--dtype" then opts.dtype = v
   else io.stderr:write("bench_step: unknown option " .. k .. "\n") os.exit(1) end
   i = i + 2
end
local V, S = 11, 81
local shape = { vocab_size = V, seq_len = S, puzzle_emb_ndim = 0, forward_dtype = opts.dtype }
local cfg = opts.config == "hrm_v1" and hrm.config.hrm_v1(shape) or hrm.config.small(shape)
local B = opts.batch or (opts.config == "hrm_v1" and 32 or 64)
hrm.manual_seed(1)
local model = hrm.Model(cfg, { seed = 1 })
local opt = hrm.optim.AdamATan2(model, { lr = 1e-4, weight_decay = 0.1 })
local inputs = hrm.Tensor.zeros(B, S, "i32")
local labels = hrm.Tensor.zeros(B, S, "i32")
local pi, pl = inputs:data(), labels:data()
for k = 0, B * S - 1 do pi[k] = (k * 7) % 10 + 1; pl[k] = (k * 3) % 10 + 1 end
local batch = { inputs = inputs, labels = labels }
local carry = model:carry(B)
model:step(carry, batch, { train = true })   -- warm-up: arena and scratch at this batch size
opt:step()
local function clock() return tonumber(hrm.C.hrm_wall_time()) end
local function timed(fn)
   local w, c = clock(), os.clock()
   fn()
   return clock() - w, os.clock() - c
end
local train, train_cpu = timed(function()
   for _ = 1, opts.steps do
      model:step(carry, batch, { train = true })
      opt:step()
   end
end)
-- the tape's arena after a step: saved activations, outputs, gradients (-1: a build without tape:bytes)
local tape_mib = model.tape.bytes and model.tape:bytes() / 2 ^ 20 or -1
-- the process's peak resident memory so far (Linux; -1 elsewhere)
local function peak_mib()
   local f = io.open("/proc/self/status")
   if not f then return -1 end
   local kb = f:read("*a"):match("VmHWM:%s*(%d+)")
   f:close()
   return kb and tonumber(kb) / 1024 or -1
end
local train_peak_mib = peak_mib()
local function solve(halt)
   if opts.no_infer then return 0, 0 end
   return timed(function() model:solve({ inputs = inputs }, { halt = halt, max_steps = 16 }) end)
end
local infer, infer_cpu = solve("max")
local infer_q, infer_q_cpu = solve("q")
print(string.format("config=%s dtype=%s batch=%d threads=%d train_step_s=%.4f solve16_s=%.4f solve_q_s=%.4f " ..
                    "train_step_cpu=%.4f solve16_cpu=%.4f solve_q_cpu=%.4f tape_mib=%.1f train_peak_mib=%.0f",
                    opts.config, opts.dtype, B, hrm.get_threads(), train / opts.steps, infer, infer_q,
                    train_cpu / opts.steps, infer_cpu, infer_q_cpu, tape_mib, train_peak_mib))
