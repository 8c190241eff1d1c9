-- verify_trajectory.lua — the CUDA model against the CPU model over a short training run, and a
-- checkpoint written from the GPU read back on the CPU. Used by kernels/verify.sh; runs anywhere
-- (without a GPU it says so and exits 77, the skip status).
--
--   hrm kernels/verify_trajectory.lua [--steps 50] [--gemm f32|bf16] [--tolerance X]
--
-- Both models start from the same seed and see the same batches (puzzle embeddings on,
-- exploration on: the draws are keyed by (seed, step, row), so both halt the same rows). Each
-- step's losses and metrics are compared by relative difference; the run fails when the worst
-- exceeds the tolerance (1e-4 in f32 GEMM mode, where only summation order differs; 2e-2 in bf16,
-- whose operands carry 8 significant bits). Prints one line per quantity with its worst
-- difference, then `trajectory ok|FAILED` and `roundtrip ok|FAILED`.
local hrm = require "hrm"
local C = hrm.C

local opts = { steps = 50, gemm = "f32" }
for i = 1, #arg, 2 do
   local k, v = arg[i], arg[i + 1]
   if k == "--steps" then opts.steps = tonumber(v)
   elseif k == "--gemm" then opts.gemm = v
   elseif k == "--tolerance" then opts.tolerance = tonumber(v)
   else io.stderr:write("verify_trajectory: unknown option " .. tostring(k) .. "\n") os.exit(1) end
end
if not hrm.cuda_available() then
   print("verify_trajectory: skipped: no CUDA device (or a CPU-only build)")
   os.exit(77)
end
if opts.gemm ~= "f32" and opts.gemm ~= "bf16" then
   io.stderr:write("verify_trajectory: --gemm expects f32 or bf16\n") os.exit(1)
end
local tolerance = opts.tolerance or (opts.gemm == "bf16" and 2e-2 or 1e-4)
if opts.gemm == "bf16" and C.hrm_set_gemm_dtype(C.HRM_DTYPE_BF16) ~= C.HRM_OK then
   print("verify_trajectory: skipped: bf16 GEMMs are not available in this build") os.exit(77)
end

local V, S, B, P = 11, 81, 32, 16
local cfg = hrm.config.small{ vocab_size = V, seq_len = S, puzzle_emb_ndim = 32, num_puzzle_identifiers = P,
                              halt_exploration_prob = 0.1 }
local models, optims = {}, {}
for _, device in ipairs{ "cpu", "cuda" } do
   models[device] = hrm.Model(cfg, { seed = 7, device = device })
   optims[device] = hrm.optim.AdamATan2(models[device], { lr = 1e-3, weight_decay = 0.1 })
end

-- batch k: token rows and labels from a fixed integer recipe, identifiers cycling over P
local function batch(k)
   local inputs, labels = hrm.Tensor.zeros(B, S, "i32"), hrm.Tensor.zeros(B, S, "i32")
   local ids = hrm.Tensor.zeros(B, "i32")
   local pi, pl, pid = inputs:data(), labels:data(), ids:data()
   for r = 0, B - 1 do
      pid[r] = (r + k) % P
      for s = 0, S - 1 do
         local x = (r * 131 + s * 17 + k * 7) % 97
         pi[r * S + s] = x % (V - 1) + 1
         pl[r * S + s] = (x * 3 + s) % (V - 1) + 1
      end
   end
   return { inputs = inputs, labels = labels, puzzle_identifiers = ids }
end

local carries = { cpu = models.cpu:carry(B), cuda = models.cuda:carry(B) }
local worst, failed = {}, false
for step = 1, opts.steps do
   local b = batch(step)
   local out = {}
   for _, device in ipairs{ "cpu", "cuda" } do
      out[device] = models[device]:step(carries[device], b, { train = true })
      optims[device]:step()
   end
   for _, k in ipairs(hrm.Model.metric_names) do
      local a, g = out.cpu[k], out.cuda[k]
      local d = math.abs(a - g) / math.max(math.abs(a), 1e-6)
      if d ~= d then d = math.huge end
      worst[k] = math.max(worst[k] or 0, d)
   end
end
for _, k in ipairs(hrm.Model.metric_names) do
   print(string.format("%-16s worst relative difference %.3e (bound %.0e)", k, worst[k], tolerance))
   if worst[k] > tolerance then failed = true end
end
print("trajectory " .. (failed and "FAILED" or "ok"))

-- the CUDA model's weights, saved and read on the CPU, are the same bytes
local path = os.tmpname() .. ".hrm"
assert(models.cuda:save(path))
local back = assert(hrm.Model.load(path))
os.remove(path)
local params, _, names = models.cuda:parameters()
local same = true
for i, name in ipairs(names) do
   local a, b = params[i]:to("cpu"), back:tensor(name)
   local pa, pb = a:data(), b:data()
   for j = 0, a:numel() - 1 do
      if pa[j] ~= pb[j] then
         print("roundtrip: " .. name .. " differs at element " .. j) same = false break
      end
   end
end
print("roundtrip " .. (same and "ok" or "FAILED"))
os.exit((failed or not same) and 1 or 0)
