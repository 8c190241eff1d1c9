-- Golden parity through the Lua API: the PyTorch twin's fixtures (spec/golden: tiny = RoPE +
-- stablemax; learned = learned positions + softmax + a puzzle prefix) reproduced by
-- hrm.Model:step and hrm.optim.AdamATan2: eval segments 1 and last (logits, Q, metrics), a
-- training step (metrics, Q, every gradient) and a 10-step trajectory (metrics, halting, final
-- weights incl. the puzzle table) at 1e-4 relative to each tensor's largest magnitude. With bf16
-- GEMMs (hrm_set_gemm_dtype, where available) the eval and training-step tensors are compared to
-- the same fixtures at BF16_TOL; not metrics or the trajectory (halting decisions may flip).
local ffi = require "ffi"
local hrm = require "hrm"
local json = require "dkjson"
local C = hrm.C

local TOL = 1e-4
local BF16_TOL = 1.5e-1  -- 8-bit mantissas through 8+ blocks: measured max 8.3e-2

local function read_json(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return json.decode(s)
end

-- max |a - b| / max(max |b|, 1e-6); infinite when a holds a NaN or an infinity
local function rel_err(a, b)
   assert.equal(b:numel(), a:numel())
   local diff, scale = 0, 1e-6
   local ca, cb = a:float(), b:float() -- kept alive while their data is read
   local pa, pb = ca:data(), cb:data()
   for i = 0, a:numel() - 1 do
      local x = pa[i]
      if x ~= x or math.abs(x) == math.huge then return math.huge end
      diff = math.max(diff, math.abs(x - pb[i]))
      scale = math.max(scale, math.abs(pb[i]))
   end
   return diff / scale
end

local function check_close(what, mine, ref, tol)
   assert.is_not_nil(ref, "fixture tensor " .. what .. " is missing")
   local e = rel_err(mine, ref)
   assert.is_true(e <= tol, string.format("%s: relative error %.3g > %.0e", what, e, tol))
   return e
end

-- the nine metrics of a step against a (9) fixture row, in meta.metric_names order
local function check_metrics(what, names, out, ref)
   assert.is_not_nil(ref, "fixture tensor " .. what .. " is missing")
   for i, k in ipairs(names) do
      assert.near(ref[i], out[k], TOL * math.max(1, math.abs(ref[i])), what .. "." .. k)
   end
end

local function fixture(stem)
   local meta = read_json("spec/golden/" .. stem .. ".json")
   local fx = assert(hrm.safetensors.load("spec/golden/" .. stem .. ".safetensors"))
   local model = hrm.Model(meta.config, { seed = 3 })
   local function load_weights()
      for _, name in ipairs(model:tensor_names()) do
         assert.is_not_nil(fx[name], "fixture tensor " .. name .. " is missing")
         model:tensor(name):copy(fx[name])
      end
   end
   local batch = { inputs = fx["batch.inputs"], labels = fx["batch.labels"],
                   puzzle_identifiers = fx["batch.puzzle_identifiers"] }
   return meta, fx, model, load_weights, batch
end

-- eval segments 1 .. halt_max_steps from a fresh carry: logits and Q of the first and last,
-- and (with metrics) the last segment's metrics; returns the last logits' relative error
local function check_eval(stem, meta, fx, model, batch, tol, metrics)
   local last = meta.config.halt_max_steps
   local carry = model:carry(meta.B)
   local err
   for seg = 1, last do
      local out = model:step(carry, batch, { train = false })
      if seg == 1 or seg == last then
         local p = "eval.seg" .. seg .. "."
         err = check_close(stem .. " " .. p .. "logits", out.logits, fx[p .. "logits"], tol)
         check_close(stem .. " " .. p .. "q_halt", out.q_halt_logits, fx[p .. "q_halt"], tol)
         check_close(stem .. " " .. p .. "q_continue", out.q_continue_logits, fx[p .. "q_continue"], tol)
         if seg == last and metrics then
            check_metrics(stem .. " " .. p .. "metrics", meta.metric_names, out, fx[p .. "metrics"])
         end
      end
   end
   return err
end

-- one training step from a fresh carry: Q, every parameter's gradient and (with metrics) the metrics
local function check_train_step(stem, meta, fx, model, batch, tol, metrics)
   model:zero_grad()
   local out = model:step(model:carry(meta.B), batch, { train = true, global_batch = meta.global_batch })
   if metrics then check_metrics(stem .. " train.metrics", meta.metric_names, out, fx["train.metrics"]) end
   check_close(stem .. " train.q_halt", out.q_halt_logits, fx["train.q_halt"], tol)
   check_close(stem .. " train.q_continue", out.q_continue_logits, fx["train.q_continue"], tol)
   local params, grads, names = model:parameters()
   assert.is_true(#params >= 8)
   for i, name in ipairs(names) do
      check_close(stem .. " grad." .. name, grads[i], fx["grad." .. name], tol)
   end
end

for _, stem in ipairs({ "tiny", "learned" }) do
   describe("golden parity (" .. stem .. ")", function()
      local meta, fx, model, load_weights, batch = fixture(stem)
      local B = meta.B

      it("matches logits and Q after the first and last eval segment, and the last one's metrics", function()
         load_weights()
         check_eval(stem, meta, fx, model, batch, TOL, true)
      end)

      it("matches the first segment's z_H", function()
         load_weights()
         local carry = model:carry(B)
         model:step(carry, batch, { train = false })
         check_close(stem .. " eval.seg1.z_H", carry:tensor("z_H"), fx["eval.seg1.z_H"], TOL)
      end)

      it("matches the losses, metrics, Q and every gradient of a training step", function()
         load_weights()
         check_train_step(stem, meta, fx, model, batch, TOL, true)
      end)

      it("follows the 10-step training trajectory", function()
         load_weights()
         model:zero_grad()
         local o = meta.optim
         local opt = hrm.optim.AdamATan2(model, { lr = o.lr, betas = { o.beta1, o.beta2 },
            weight_decay = o.weight_decay, puzzle_emb_lr = o.puzzle_emb_lr,
            puzzle_emb_weight_decay = o.puzzle_emb_weight_decay })
         local carry = model:carry(B)
         for s = 1, meta.traj_steps do
            local out = model:step(carry, { inputs = fx["traj.inputs"][s], labels = fx["traj.labels"][s],
                                            puzzle_identifiers = fx["traj.puzzle_identifiers"][s] },
                                   { train = true, global_batch = meta.global_batch })
            check_metrics(string.format("%s traj.metrics[%d]", stem, s), meta.metric_names, out,
                          fx["traj.metrics"][s])
            assert.same(fx["traj.halted"][s]:totable(), carry:tensor("halted"):to("i32"):totable())
            opt:step()
         end
         -- every parameter and the puzzle table (the buffers are not trained)
         local _, _, names = model:parameters()
         if model.cfg.puzzle_emb_ndim > 0 then names[#names + 1] = "model.inner.puzzle_emb.weights" end
         for _, name in ipairs(names) do
            check_close(stem .. " final." .. name, model:tensor(name), fx["final." .. name], TOL)
         end
      end)
   end)
end

describe("golden parity with bf16 GEMMs", function()
   local available = C.hrm_set_gemm_dtype(C.HRM_DTYPE_BF16) == C.HRM_OK
   local reason = available and "" or ffi.string(C.hrm_last_error())
   if available then assert(C.hrm_set_gemm_dtype(C.HRM_DTYPE_F32) == C.HRM_OK) end

   for _, stem in ipairs({ "tiny", "learned" }) do
      local meta, fx, model, load_weights, batch = fixture(stem)

      -- run fn with bf16 GEMMs, restoring fp32 whatever happens
      local function with_bf16(fn)
         assert.equal(C.HRM_OK, C.hrm_set_gemm_dtype(C.HRM_DTYPE_BF16))
         local ok, err = pcall(fn)
         assert.equal(C.HRM_OK, C.hrm_set_gemm_dtype(C.HRM_DTYPE_F32))
         if not ok then error(err, 0) end
      end

      if not available then
         pending("bf16 GEMMs unavailable here (" .. reason .. "): the " .. stem .. " bf16 checks are skipped")
         print("parity_spec: bf16 GEMMs unavailable here (" .. reason .. "), " .. stem .. " bf16 checks skipped")
      else
         it("matches the " .. stem .. " eval logits and Q within " .. BF16_TOL, function()
            load_weights()
            local err
            with_bf16(function() err = check_eval(stem, meta, fx, model, batch, BF16_TOL, false) end)
            -- the option reached the model's GEMMs: bf16 rounding shows beyond the fp32 tolerance
            assert.is_true(err > TOL, "bf16 logits agree with fp32 to " .. err)
         end)

         it("matches the " .. stem .. " training step's Q and every gradient within " .. BF16_TOL, function()
            load_weights()
            with_bf16(function() check_train_step(stem, meta, fx, model, batch, BF16_TOL, false) end)
         end)
      end
   end
end)
