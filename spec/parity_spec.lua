-- Golden parity through the Lua API: the PyTorch twin's fixtures (spec/golden: tiny = RoPE +
-- stablemax; learned = learned positions + softmax + a puzzle prefix) reproduced by
-- hrm.Model:step and hrm.optim.AdamATan2: eval segments 1 and last (logits, Q, metrics), a
-- training step (metrics, Q, every gradient) and a 10-step trajectory (metrics, halting, final
-- weights incl. the puzzle table) at 1e-4 relative to each tensor's largest magnitude.
-- In bf16 (forward_dtype = "bfloat16", where bf16 GEMMs are available) the same runs are compared
-- with the twin run in bf16 (<stem>_bf16.*): each tensor within BF16_K times E, the distance of
-- the fp32 fixture from the bf16 one (the whole effect of bf16 rounding on that tensor).
local ffi = require "ffi"
local hrm = require "hrm"
local json = require "dkjson"
local C = hrm.C

local TOL = 1e-4
-- hrm rounds its GEMM operands, attention's operands, the carry and what its tape keeps to bf16,
-- the twin every activation, so hrm lies between the two fixtures: measured against the bf16 twin
-- at 0.9-1.3 E typically, 2.9 E at most (spec/golden/README.md); 4 leaves a margin over the worst
local BF16_K = 4
hrm.set_threads(1)   -- models this small run fastest on one thread (and this process is the spec's)

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
   assert.is_true(e <= tol, string.format("%s: relative error %.3g > %.3g", what, e, tol))
   return e
end

-- the nine metrics of a step against a (9) fixture row, in meta.metric_names order; tol(i) is
-- metric i's tolerance relative to max(1, |fixture value|), nil where it is not compared
local function check_metrics(what, names, out, ref, tol)
   assert.is_not_nil(ref, "fixture tensor " .. what .. " is missing")
   for i, k in ipairs(names) do
      local t = tol(i)
      if t then assert.near(ref[i], out[k], t * math.max(1, math.abs(ref[i])), what .. "." .. k) end
   end
end

-- the fp32 fixture's model (forward_dtype from config, the fixture's own by default), its
-- weights loader and batch
local function fixture(stem, config)
   local meta = read_json("spec/golden/" .. stem .. ".json")
   local fx = assert(hrm.safetensors.load("spec/golden/" .. stem .. ".safetensors"))
   local model = hrm.Model(config or meta.config, { seed = 3 })
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

-- A comparator checks the engine's results against one fixture: tensor(key, t) the tensor stored
-- under key (returns the relative error), metrics(key, out, s) the (9) metrics row key (row s of
-- it for the trajectory), halted(s, flags) the trajectory's halted flags after step s.
local function fp32_comparator(stem, meta, fx)
   local function tol() return TOL end
   return {
      tensor = function(key, t) return check_close(stem .. " " .. key, t, fx[key], TOL) end,
      metrics = function(key, out, s)
         check_metrics(stem .. " " .. key .. (s and "[" .. s .. "]" or ""), meta.metric_names, out,
                       s and fx[key][s] or fx[key], tol)
      end,
      halted = function(s, flags) assert.same(fx["traj.halted"][s]:totable(), flags) end,
   }
end

-- eval segments 1 .. halt_max_steps from a fresh carry: logits and Q of the first and last, the
-- last segment's metrics
local function check_eval(meta, model, batch, cmp)
   local last = meta.config.halt_max_steps
   local carry = model:carry(meta.B)
   for seg = 1, last do
      local out = model:step(carry, batch, { train = false })
      if seg == 1 or seg == last then
         local p = "eval.seg" .. seg .. "."
         cmp.tensor(p .. "logits", out.logits)
         cmp.tensor(p .. "q_halt", out.q_halt_logits)
         cmp.tensor(p .. "q_continue", out.q_continue_logits)
         if seg == last then cmp.metrics(p .. "metrics", out) end
      end
      if seg == 1 then cmp.tensor("eval.seg1.z_H", carry:tensor("z_H")) end
   end
end

-- one training step from a fresh carry: the metrics, Q and every parameter's gradient
local function check_train_step(meta, model, batch, cmp)
   model:zero_grad()
   local out = model:step(model:carry(meta.B), batch, { train = true, global_batch = meta.global_batch })
   cmp.metrics("train.metrics", out)
   cmp.tensor("train.q_halt", out.q_halt_logits)
   cmp.tensor("train.q_continue", out.q_continue_logits)
   local params, grads, names = model:parameters()
   assert.is_true(#params >= 8)
   for i, name in ipairs(names) do cmp.tensor("grad." .. name, grads[i]) end
end

-- the 10-step trajectory over the fp32 fixture's batches: metrics and halting after each step,
-- then every parameter and the puzzle table (the buffers are not trained)
local function check_trajectory(meta, fx, model, cmp)
   model:zero_grad()
   local o = meta.optim
   local opt = hrm.optim.AdamATan2(model, { lr = o.lr, betas = { o.beta1, o.beta2 },
      weight_decay = o.weight_decay, puzzle_emb_lr = o.puzzle_emb_lr,
      puzzle_emb_weight_decay = o.puzzle_emb_weight_decay })
   local carry = model:carry(meta.B)
   for s = 1, meta.traj_steps do
      local out = model:step(carry, { inputs = fx["traj.inputs"][s], labels = fx["traj.labels"][s],
                                      puzzle_identifiers = fx["traj.puzzle_identifiers"][s] },
                             { train = true, global_batch = meta.global_batch })
      cmp.metrics("traj.metrics", out, s)
      cmp.halted(s, carry:tensor("halted"):to("i32"):totable())
      opt:step()
   end
   local _, _, names = model:parameters()
   if model.cfg.puzzle_emb_ndim > 0 then names[#names + 1] = "model.inner.puzzle_emb.weights" end
   for _, name in ipairs(names) do cmp.tensor("final." .. name, model:tensor(name)) end
end

for _, stem in ipairs({ "tiny", "learned" }) do
   describe("golden parity (" .. stem .. ")", function()
      local meta, fx, model, load_weights, batch = fixture(stem)
      local cmp = fp32_comparator(stem, meta, fx)

      it("matches logits and Q after the first and last eval segment, the first one's z_H and the " ..
         "last one's metrics", function()
         load_weights()
         check_eval(meta, model, batch, cmp)
      end)

      it("matches the losses, metrics, Q and every gradient of a training step", function()
         load_weights()
         check_train_step(meta, model, batch, cmp)
      end)

      it("follows the 10-step training trajectory", function()
         load_weights()
         check_trajectory(meta, fx, model, cmp)
      end)
   end)
end

-- ---- bf16 ----------------------------------------------------------------------------------------

local LOSS_METRICS = { loss = true, lm_loss = true, q_halt_loss = true, q_continue_loss = true }
-- q_halt_loss (and the total loss holding it) takes as its target whether a row is solved: an
-- argmax decision per token, so it jumps where one flips
local ARGMAX_LOSSES = { loss = true, q_halt_loss = true }
local HALTING_METRICS = { steps = true, count = true }

-- largest |value| of a tensor
local function max_abs(t)
   local m, c = 0, t:float()
   local p = c:data()
   for i = 0, c:numel() - 1 do m = math.max(m, math.abs(p[i])) end
   return m
end

-- The tolerance basis of a tensor: its E (bf16's whole effect on it), except for the tiny tensors
-- of one computation, whose max over 2-4 entries is a noisy measure of that effect: a segment's
-- q_halt and q_continue (one GEMM on z_H's first row), q_head's weight and bias; those take the
-- larger E of the pair. A step's loss metrics likewise take the largest E among them.
local PAIRS = { { "q_halt", "q_continue" }, { "q_head.weight", "q_head.bias" } }
local function basis(E, key)
   for _, pair in ipairs(PAIRS) do
      for _, member in ipairs(pair) do
         if key:sub(-#member) == member then
            local prefix = key:sub(1, -#member - 1)
            return math.max(E[prefix .. pair[1]], E[prefix .. pair[2]])
         end
      end
   end
   return E[key]
end

-- The bf16 comparator: every tensor within max(BF16_K * basis, TOL) of the bf16 twin, relative to
-- the twin's largest magnitude; loss metrics within max(BF16_K * basis, TOL) relative to
-- max(1, |value|), loss and q_halt_loss only where the step's smallest top-2 logit gap
-- (meta16.margins) exceeds what the logits may move by (the eval logits' bound). steps, count and
-- the halted flags follow the halting decisions: compared exactly where the step's halting margin
-- exceeds what Q may move by (the training step's Q bounds). accuracy, exact_accuracy and
-- q_halt_accuracy are not compared: they follow argmaxes of bf16 logits, whose top-2 gaps in the
-- fixtures (0 to 0.07, exact ties included) are below the logits' bound. seen lists, and indexes by key, {key, H (error against
-- the bf16 twin), H32 (against the fp32 fixture), E (the basis)}.
local function bf16_comparator(stem, meta16, fx16, fx32, seen)
   local E, margins, names = meta16.E, meta16.margins, meta16.metric_names
   local function bound(key)
      assert.is_not_nil(E[key], stem .. "_bf16.json has no E for " .. key)
      return math.max(BF16_K * basis(E, key), TOL)
   end
   local q_bound = bound("train.q_halt") * max_abs(fx16["train.q_halt"]) +
                   bound("train.q_continue") * max_abs(fx16["train.q_continue"])
   local function halting_decided(what)
      local m = margins[what]
      return m == nil or m.halt == nil or m.halt > q_bound
   end
   local logit_bound = 0
   for _, key in ipairs({ "eval.seg1.logits", "eval.seg3.logits" }) do
      logit_bound = math.max(logit_bound, 2 * bound(key) * max_abs(fx16[key]))
   end
   local function argmax_decided(what)
      local m = margins[what]
      return m == nil or m.argmax == nil or m.argmax > logit_bound
   end
   local cmp = {}
   function cmp.tensor(key, t)
      local h = check_close(stem .. " bf16 " .. key, t, fx16[key], bound(key))
      seen[#seen + 1] = { key = key, H = h, H32 = rel_err(t, fx32[key]), E = basis(E, key) }
      seen[key] = seen[#seen]
      return h
   end
   function cmp.metrics(key, out, s)
      local e, ref, ref32 = E[key], fx16[key], fx32[key]
      if s then e, ref, ref32 = e[s], ref[s], ref32[s] end
      local e_loss = 0
      for i, k in ipairs(names) do if LOSS_METRICS[k] then e_loss = math.max(e_loss, e[i]) end end
      local segment = s and "traj step " .. (s - 1) or key == "train.metrics" and "train" or nil
      local decided, solved_decided = halting_decided(segment), argmax_decided(segment)
      local what = stem .. " bf16 " .. key .. (s and "[" .. s .. "]" or "")
      check_metrics(what, names, out, ref, function(i)
         local k = names[i]
         if LOSS_METRICS[k] and (solved_decided or not ARGMAX_LOSSES[k]) then
            local scale = math.max(1, math.abs(ref[i]))
            seen[#seen + 1] = { key = "metric." .. what .. "." .. k, E = e_loss,
                                H = math.abs(out[k] - ref[i]) / scale,
                                H32 = math.abs(out[k] - ref32[i]) / scale }
            return math.max(BF16_K * e_loss, TOL)
         end
         if HALTING_METRICS[k] and decided then return TOL end
      end)
   end
   function cmp.halted(s, flags)
      if halting_decided("traj step " .. (s - 1)) then
         assert.same(fx16["traj.halted"][s]:totable(), flags)
      end
   end
   return cmp
end

-- max and median of H / E and H32 / E over the entries of seen whose key starts with prefix
local function ratios(seen, prefix)
   local h, h32 = {}, {}
   for _, r in ipairs(seen) do
      if r.key:sub(1, #prefix) == prefix and r.E > 0 then
         h[#h + 1] = r.H / r.E
         h32[#h32 + 1] = r.H32 / r.E
      end
   end
   if #h == 0 then return prefix .. " none compared" end
   table.sort(h)
   table.sort(h32)
   local mid = math.floor((#h + 1) / 2)
   return string.format("%-7s n %2d  H/E max %.2f median %.2f  H32/E max %.2f median %.2f",
                        prefix, #h, h[#h], h[mid], h32[#h32], h32[mid])
end

describe("golden parity in bf16 (forward_dtype = \"bfloat16\")", function()
   local available = C.hrm_set_gemm_dtype(C.HRM_DTYPE_BF16) == C.HRM_OK
   local reason = available and "" or ffi.string(C.hrm_last_error())
   if available then assert(C.hrm_set_gemm_dtype(C.HRM_DTYPE_F32) == C.HRM_OK) end

   for _, stem in ipairs({ "tiny", "learned" }) do
      if not available then
         pending("bf16 GEMMs unavailable here (" .. reason .. "): the " .. stem .. " bf16 checks are skipped")
         print("parity_spec: bf16 GEMMs unavailable here (" .. reason .. "), " .. stem .. " bf16 checks skipped")
      else
         local meta16 = read_json("spec/golden/" .. stem .. "_bf16.json")
         local fx16 = assert(hrm.safetensors.load("spec/golden/" .. stem .. "_bf16.safetensors"))
         local meta, fx, model, load_weights, batch = fixture(stem, meta16.config)
         local seen = {}
         local cmp = bf16_comparator(stem, meta16, fx16, fx, seen)

         it("matches the " .. stem .. " bf16 twin's eval logits, Q, z_H and loss metrics", function()
            load_weights()
            check_eval(meta, model, batch, cmp)
            -- the option reached the GEMMs: hrm in fp32 is within TOL of the fp32 fixture (above),
            -- so hrm in bf16 is more than TOL from hrm in fp32
            local h32 = seen["eval.seg1.logits"].H32
            assert.is_true(h32 > 2 * TOL, "bf16 logits agree with the fp32 fixture to " .. h32)
         end)

         it("matches the " .. stem .. " bf16 twin's training step: loss metrics, Q, every gradient", function()
            load_weights()
            check_train_step(meta, model, batch, cmp)
         end)

         it("follows the " .. stem .. " bf16 twin's 10-step trajectory", function()
            load_weights()
            check_trajectory(meta, fx, model, cmp)
         end)

         teardown(function()
            print(string.format("\nparity_spec bf16 %s (k = %g):", stem, BF16_K))
            for _, p in ipairs({ "eval.", "train.", "grad.", "final.", "metric." }) do
               print("  " .. ratios(seen, p))
            end
         end)
      end
   end
end)
