-- Specs of hrm.train: a tiny HRM (hidden 32, 1+1 layers) on a tiny synthetic task built here
-- (8 tokens, each label the next colour of its input, and a harder variant) trains, logs,
-- evaluates, checkpoints, resumes exactly, follows a curriculum, keeps an EMA, stops on NaN and
-- on Ctrl-C. Exact resume is checked through hrm.checkpoint and through an in-memory stand-in
-- kept in this file, which hands back plain tables (the copy paths of hrm.train.resume).
local hrm = require "hrm"
local ffi = require "ffi"
local json = require "hrm.fs"
local viz = require "hrm.viz"
local train = require "hrm.train"

local S, V, H = 8, 6, 3

-- The tiny task: tokens 2..5; `shift` picks the label map (x -> x + shift, cyclic).
local function make_arrays(n, seed, shift)
   shift = shift or 1
   local state = 12345 + seed * 7919
   local function rnd(k)
      state = (state * 1103515245 + 12345) % 2147483648
      return math.floor(state / 65536) % k
   end
   local inputs, labels = ffi.new("uint8_t[?]", n * S), ffi.new("uint8_t[?]", n * S)
   for i = 0, n * S - 1 do
      local x = rnd(4)
      inputs[i], labels[i] = 2 + x, 2 + (x + shift) % 4
   end
   return { vocab_size = V, seq_len = S, inputs = inputs, labels = labels, n = n }
end

local function dataset(n, seed, shift)
   return hrm.data.Dataset.new(make_arrays(n, seed, shift))
end

local function tiny_model(seed)
   return hrm.Model(hrm.config.tiny{ hidden_size = 32, num_heads = 2, expansion = 2, H_layers = 1,
                                     L_layers = 1, H_cycles = 1, L_cycles = 1, halt_max_steps = H,
                                     puzzle_emb_ndim = 0, vocab_size = V, seq_len = S },
                    { seed = seed or 1 })
end

local function tiny_optim(model, lr)
   return hrm.optim.AdamATan2(model, { lr = lr or 3e-3, weight_decay = 0.1 })
end

local made = {}
local function tmpdir()
   local p = os.tmpname()
   os.remove(p)
   made[#made + 1] = p
   return p                                   -- hrm.train creates it
end

local function remove_tree(path)
   local lfs = require "lfs"
   if lfs.attributes(path, "mode") == "directory" then
      for name in lfs.dir(path) do
         if name ~= "." and name ~= ".." then remove_tree(path .. "/" .. name) end
      end
   end
   os.remove(path)
end

local function remove_tmpdirs()
   for _, p in ipairs(made) do remove_tree(p) end
   made = {}
end

local function exists(path)
   local f = io.open(path, "rb")
   if f then f:close() return true end
   return false
end

local function read_lines(path)
   local out = {}
   for line in io.lines(path) do out[#out + 1] = line end
   return out
end

local function losses(summary, key)
   local t = {}
   for _, r in ipairs(summary.history) do
      if r.split == "train" then t[r.step] = r.metrics[key or "loss"] end
   end
   return t
end

local function mean(t, a, b)
   local s = 0
   for i = a, b do s = s + t[i] end
   return s / (b - a + 1)
end

-- ---- an in-memory stand-in for hrm.checkpoint (same API: save(path, state), load(path)) ----------
-- It returns the optimizer moments and carries as plain tables of tensors.

local CARRY = { "z_H", "z_L", "steps", "halted", "inputs", "labels", "puzzle_ids" }

local function deep_copy(v)
   if hrm.Tensor.is_tensor(v) then return v:clone() end
   if type(v) ~= "table" then return v end
   local t = {}
   for k, x in pairs(v) do t[k] = deep_copy(x) end
   return t
end

local function make_stub()
   local store = {}
   local stub = { saves = {} }
   function stub.save(path, st)
      local m = st.model
      local snap = { config = m:config(), rng = m:rng_state(), tensors = {} }
      for _, n in ipairs(m:tensor_names()) do snap.tensors[n] = m:tensor(n):clone() end
      local o = {}
      for _, n in ipairs({ "m", "v", "t" }) do o[n] = st.optim:tensor(n):clone() end
      local cs = st.carry
      if getmetatable(cs) == hrm.Model.Carry then cs = { cs } end
      local carries = {}
      for i, c in ipairs(cs) do
         carries[i] = {}
         for _, n in ipairs(CARRY) do carries[i][n] = c:tensor(n):clone() end
      end
      store[path] = { model = snap, optim = o, carry = carries, data = st.data:state(), step = st.step,
                      extra = deep_copy(st.extra), tensors = deep_copy(st.tensors) }
      stub.saves[#stub.saves + 1] = { path = path, step = st.step, extra = store[path].extra,
                                      tensors = store[path].tensors }
      local f = assert(io.open(path, "wb"))
      f:write("stub checkpoint at step ", st.step, "\n")
      f:close()
      return true
   end
   function stub.load(path)
      local s = store[path]
      if not s then return nil, "no checkpoint at " .. path end
      local m = hrm.Model(s.model.config)
      for n, t in pairs(s.model.tensors) do m:tensor(n):copy(t) end
      m:set_rng_state(s.model.rng)
      return { model = m, optim = s.optim, carry = s.carry, data_state = s.data, step = s.step,
               extra = deep_copy(s.extra), tensors = deep_copy(s.tensors) }
   end
   return stub
end

local function with_checkpoint(mod, fn)
   local saved = package.loaded["hrm.checkpoint"]
   package.loaded["hrm.checkpoint"] = mod
   local ok, err = pcall(fn)
   package.loaded["hrm.checkpoint"] = saved
   if not ok then error(err, 0) end
end

-- A training run of the tiny task with the given overrides.
local function run(over)
   local model = over.model or tiny_model(over.seed)
   local opts = {
      model = model, optim = over.optim or tiny_optim(model), data = over.data or dataset(256, 1),
      steps = 30, batch = 16, log_every = 1, quiet = true,
   }
   for k, v in pairs(over) do
      if k ~= "seed" and k ~= "model" and k ~= "optim" then opts[k] = v end
   end
   return hrm.train(opts), model
end

describe("hrm.train", function()
   hrm.set_threads(1)
   teardown(remove_tmpdirs)

   it("trains a tiny model: the loss falls", function()
      local s = run({ steps = 40, data = dataset(256, 1, 1) })
      -- The task loss falls at once; the total also carries the Q losses, which first rise as rows
      -- become correct while the Q head still says "continue", then fall as it learns.
      local lm, total = losses(s, "lm_loss"), losses(s)
      assert.is_true(mean(lm, 36, 40) < 0.5 * mean(lm, 1, 5),
                     string.format("lm_loss %.3f -> %.3f", mean(lm, 1, 5), mean(lm, 36, 40)))
      assert.is_true(mean(total, 36, 40) < 0.8 * mean(total, 6, 10),
                     string.format("loss %.3f -> %.3f", mean(total, 6, 10), mean(total, 36, 40)))
      assert.equal(40, s.step)
      assert.equal(40, s.steps_run)
      assert.is_false(s.interrupted)
   end)

   it("writes config.json and metrics.jsonl that parse, with eval lines and halting histograms", function()
      local dir = tmpdir()
      local s = run({ steps = 20, log_every = 5, eval = { held = dataset(40, 2), other = dataset(24, 3) },
                      eval_every = 10, run = dir, meta = { task = "tiny" } })
      local cfg = assert(json.read_json(dir .. "/config.json"))
      assert.equal(32, cfg.model.hidden_size)
      assert.equal(16, cfg.train.global_batch)
      assert.equal("tiny", cfg.meta.task)
      assert.equal(3e-3, cfg.optim.settings.lr)
      local lines = read_lines(dir .. "/metrics.jsonl")
      local train_n, eval_n = 0, 0
      for _, line in ipairs(lines) do
         local rec = assert(json.decode(line))
         assert.is_number(rec.step)
         assert.is_number(rec.time)
         if rec.split == "train" then
            train_n = train_n + 1
            assert.is_number(rec.metrics.loss)
            assert.is_number(rec.lr)
         elseif rec.split == "eval" then
            eval_n = eval_n + 1
            assert.equal(H, #rec.halt_histogram)
            local rows = 0
            for _, c in ipairs(rec.halt_histogram) do rows = rows + c end
            assert.equal(rec.metrics.rows, rows)
            assert.equal(rec.set == "held" and 40 or 24, rec.metrics.count)
            assert.equal(H, rec.metrics.steps)
         end
      end
      assert.equal(4, train_n)
      assert.equal(4, eval_n)
      assert.equal(40, s.eval.held.count)
   end)

   it("writes SVG charts of a run with viz.plot_run", function()
      local dir = tmpdir()
      run({ steps = 12, log_every = 2, eval = dataset(20, 2), eval_every = 6, run = dir })
      local files = assert(viz.plot_run(dir))
      local want = { "loss.svg", "accuracy.svg", "steps.svg", "lr.svg", "halting.svg" }
      assert.equal(#want, #files)
      for _, name in ipairs(want) do
         local f = assert(io.open(dir .. "/" .. name, "rb"))
         local text = f:read("*a")
         f:close()
         assert.truthy(text:find("^<svg"))
         assert.truthy(text:find("</svg>\n$"))
      end
   end)

   it("accumulates micro-batches, each slot with its own carry", function()
      local s = run({ steps = 6, accumulate = 2, batch = 8 })
      assert.equal(16, s.global_batch)
      assert.equal(2, #s.carries)
      assert.are_not.equal(s.carries[1], s.carries[2])
      for _, r in ipairs(s.history) do assert.is_true(r.metrics.loss > 0) end
   end)

   it("applies the schedule multiplier to both base rates, counting steps from 1", function()
      local model = tiny_model()
      local opt = tiny_optim(model, 2e-3)
      local calls = {}
      local proxy = setmetatable({ step = function(_, lr, pe)
         calls[#calls + 1] = { lr, pe }
         return opt:step(lr, pe)
      end }, { __index = opt })
      local seen = {}
      run({ model = model, optim = proxy, steps = 4,
            schedule = function(step) seen[#seen + 1] = step return step / 4 end })
      assert.same({ 1, 2, 3, 4 }, seen)
      assert.near(2e-3 / 4, calls[1][1], 1e-15)
      assert.near(1e-2 / 4, calls[1][2], 1e-15)
      assert.near(2e-3, calls[4][1], 1e-15)
   end)

   it("stops on a non-finite loss with an error naming the step", function()
      local model = tiny_model()
      local name = model:tensor_names()[1]
      local ok, err = pcall(run, { model = model, steps = 5, curriculum = function(step)
         if step == 3 then model:tensor(name):fill(0 / 0) end
      end })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("non%-finite loss %(micro%-batch 1 of 1%) at step 4"))
   end)

   it("refuses a batch whose carries cannot fit in memory before training, naming size and memory", function()
      local avail = assert(hrm.train.memory_available())
      local model = tiny_model()
      local ok, err = pcall(run, { model = model, steps = 2, batch = 2000000000 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("^hrm%.train: batch 2000000000 does not fit in memory: 1 carry of " ..
                                       "2000000000 rows need [%d.]+ GiB, and [%d.]+ GiB is available"), tostring(err))
      assert.truthy(avail > 0)
   end)

   it("stops cleanly when the first step cannot allocate its activations, naming size and memory", function()
      local model = tiny_model()
      local shim = setmetatable({ step = function()
         error("model_step: cannot allocate 334739 MiB of activations for batch 16 ---> HINT: use a smaller batch", 0)
      end }, { __index = function(_, key)  -- every other method runs on the real model
         local v = model[key]
         if type(v) ~= "function" then return v end
         return function(_, ...) return v(model, ...) end
      end })
      local ok, err = pcall(run, { model = shim, optim = tiny_optim(model), steps = 2 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("^hrm%.train: batch 16 does not fit in memory: model_step: cannot allocate " ..
                                       "334739 MiB of activations for batch 16"), tostring(err))
      assert.truthy(tostring(err):find("GiB is available", 1, true), tostring(err))
   end)

   it("stops cleanly when an evaluation turns non-finite, saving nothing of those weights", function()
      local stub = make_stub()
      with_checkpoint(stub, function()
         local dir = tmpdir()
         local model = tiny_model()
         -- the step-1 loss is finite (weights as initialised); the update at lr 1e30 is not
         local ok, err = pcall(run, { model = model, optim = tiny_optim(model, 1e30), steps = 5,
                                      eval = dataset(16, 2), eval_every = 1, run = dir })
         assert.is_false(ok)
         assert.is_string(err)
         assert.truthy(err:find("^hrm%.train: non%-finite evaluation of 'eval' at step 1: "), err)
         assert.truthy(err:find("no checkpoint was written yet", 1, true), err)
         assert.equal(0, #stub.saves)
         local last = read_lines(dir .. "/metrics.jsonl")
         assert.equal("error", json.decode(last[#last]).split)
      end)
   end)

   it("keeps the last good checkpoint when the loss turns non-finite", function()
      local stub = make_stub()
      with_checkpoint(stub, function()
         local dir = tmpdir()
         local model = tiny_model()
         local name = model:tensor_names()[1]
         local ok, err = pcall(run, { model = model, steps = 10, eval = dataset(16, 2), eval_every = 3, run = dir,
                                      curriculum = function(step)
                                         if step == 7 then model:tensor(name):fill(0 / 0) end
                                      end })
         assert.is_false(ok)
         assert.truthy(tostring(err):find("last good checkpoint is " .. dir .. "/last.hrm (step 6)", 1, true))
         assert.equal(6, stub.saves[#stub.saves].step)
         local last = read_lines(dir .. "/metrics.jsonl")
         assert.equal("error", json.decode(last[#last]).split)
      end)
   end)

   it("returns cleanly on Ctrl-C after saving the last complete step", function()
      local stub = make_stub()
      with_checkpoint(stub, function()
         local dir = tmpdir()
         local s = run({ steps = 30, run = dir, curriculum = function(step)
            if step == 7 then hrm.C.hrm_interrupt_request() end
         end })
         assert.is_true(s.interrupted)
         assert.equal(7, s.step)
         assert.equal(dir .. "/last.hrm", s.checkpoint)
         assert.equal(7, stub.saves[#stub.saves].step)
         assert.equal(0, hrm.C.hrm_interrupt_deferred())
      end)
   end)

   it("saves last.hrm at every evaluation and best.hrm when the chosen metric improves", function()
      local stub = make_stub()
      with_checkpoint(stub, function()
         local dir = tmpdir()
         local s = run({ steps = 12, eval = dataset(16, 2), eval_every = 4, run = dir, best = "eval/loss" })
         assert.same({ 4, 8, 12 }, { stub.saves[1].step, stub.saves[2].step, stub.saves[3].step })
         assert.is_true(exists(dir .. "/last.hrm"))
         assert.is_true(exists(dir .. "/best.hrm"))
         assert.equal("min", s.best.mode)
         assert.is_number(s.best.value)
      end)
   end)

   it("lets a curriculum swap the training data, keep state and read eval metrics", function()
      local second = dataset(256, 5, 2)
      local seen_eval, calls, start_metrics = nil, 0, false
      local s = run({ steps = 10, eval = dataset(16, 2), eval_every = 5,
                      curriculum = function(step, metrics, ctx)
                         calls = calls + 1
                         if metrics == nil then start_metrics = true return nil end
                         if metrics.evaluated then seen_eval = metrics.eval.eval.exact_accuracy end
                         if step == 5 then
                            ctx.state.level = 2
                            return { data = second, lr = 1e-3, message = "level 2" }
                         end
                      end })
      assert.is_true(start_metrics)
      assert.equal(11, calls)
      assert.is_number(seen_eval)
      assert.equal(second, s.data)
      assert.equal(1e-3, s.lr)
      local ev
      for _, r in ipairs(s.history) do if r.split == "event" then ev = r end end
      assert.equal("level 2", ev.message)
      assert.equal(5, ev.step)
   end)

   it("keeps an EMA of the weights, used for evaluation and saved in the checkpoint", function()
      local stub = make_stub()
      with_checkpoint(stub, function()
         local dir = tmpdir()
         local s, model = run({ steps = 8, ema = 0.9, eval = dataset(16, 2), eval_every = 8, run = dir })
         local params, _, names = model:parameters()
         local differs = false
         for i, p in ipairs(params) do
            local sh = s.ema.shadow[i]
            assert.equal(names[i], s.ema.names[i])
            if not sh:equal(p) then differs = true end
            assert.is_true(sh:allclose(p, 0, 0.5))
         end
         assert.is_true(differs)
         local ema = stub.saves[#stub.saves].extra.ema
         assert.equal(0.9, ema.decay)
         assert.is_nil(ema.file)
         local saved = stub.saves[#stub.saves].tensors
         assert.is_true(saved["ema." .. names[1]]:equal(s.ema.shadow[1]))
         assert.is_false(exists(dir .. "/last.hrm.ema.safetensors"))
      end)
   end)

   if real_checkpoint then
      -- A kill between two writes used to leave a new EMA file beside an old checkpoint; the EMA
      -- now lives in the checkpoint, so a resume gets the EMA of the step it resumes.
      it("resumes the EMA weights saved with the checkpoint, whatever lies beside it", function()
         local dir = tmpdir()
         local common = { eval = dataset(16, 2), eval_every = 4, ema = 0.9, run = dir }
         local function opts(extra)
            local t = {}
            for k, v in pairs(common) do t[k] = v end
            for k, v in pairs(extra) do t[k] = v end
            return t
         end
         local first = run(opts({ steps = 4 }))
         local at4 = {}
         for i, sh in ipairs(first.ema.shadow) do at4[i] = sh:clone() end
         local f = assert(io.open(dir .. "/last.hrm", "rb"))
         local step4 = f:read("*a")
         f:close()
         run(opts({ steps = 8, resume = dir }))   -- a later save (and, before, its EMA file)
         f = assert(io.open(dir .. "/last.hrm", "wb"))  -- the checkpoint of step 4 is back
         f:write(step4)
         f:close()
         local resumed = run(opts({ steps = 5, resume = dir }))
         assert.equal(4, resumed.start_step)
         -- one step of EMA after step 4's: shadow = 0.9 * at4 + 0.1 * params
         local params = resumed.ema.params
         for i, sh in ipairs(resumed.ema.shadow) do
            local expect = at4[i] * 0.9 + params[i] * 0.1
            assert.is_true(sh:allclose(expect, 1e-5, 1e-6), resumed.ema.names[i])
         end
      end)
   end

   -- An uninterrupted run against one stopped by Ctrl-C at step 13 and resumed (from a model of
   -- another seed): every later loss and the final evaluation must be identical.
   local function check_exact_resume(ckpt)
      with_checkpoint(ckpt, function()
         local common = { steps = 24, eval = dataset(16, 2), eval_every = 8, ema = 0.95, accumulate = 2, batch = 8 }
         local function opts(extra)
            local t = {}
            for k, v in pairs(common) do t[k] = v end
            for k, v in pairs(extra) do t[k] = v end
            return t
         end
         local full = run(opts({ run = tmpdir() }))
         local dir = tmpdir()
         local part = run(opts({ run = dir, curriculum = function(step)
            if step == 13 then hrm.C.hrm_interrupt_request() end
         end }))
         assert.equal(13, part.step)
         local resumed = run(opts({ run = dir, resume = dir, seed = 99 }))
         assert.equal(13, resumed.start_step)
         local a, b = losses(full), losses(resumed)
         for step = 14, 24 do assert.equal(a[step], b[step]) end
         assert.equal(full.eval.eval.loss, resumed.eval.eval.loss)
         -- metrics.jsonl holds each step once
         local steps = {}
         for _, line in ipairs(read_lines(dir .. "/metrics.jsonl")) do
            local r = json.decode(line)
            if r.split == "train" then
               assert.is_nil(steps[r.step])
               steps[r.step] = true
            end
         end
         for step = 1, 24 do assert.is_true(steps[step]) end
      end)
   end

   it("resumes exactly: the later losses equal those of an uninterrupted run (in-spec checkpoint stub)", function()
      check_exact_resume(make_stub())
   end)

   it("resumes exactly through hrm.checkpoint", function()
      check_exact_resume(require "hrm.checkpoint")
   end)

   it("stops at a budget of training CPU minutes, evaluates and saves there, and resumes under a larger one", function()
      local dir = tmpdir()
      local budget = 0.003                   -- 0.18 s of CPU time: a few dozen tiny steps
      local s = run({ steps = 1000000, minutes = budget, log_every = 1000, eval = dataset(16, 2), eval_every = 1000,
                      run = dir })
      assert.is_true(s.stopped_by_budget)
      assert.is_true(s.step > 1 and s.step < 1000000, "step " .. s.step)
      assert.is_true(s.train_cpu >= budget * 60, "train_cpu " .. s.train_cpu)
      local last_train, last_eval
      for _, line in ipairs(read_lines(dir .. "/metrics.jsonl")) do
         local rec = assert(json.decode(line))
         if rec.split == "train" then last_train = rec elseif rec.split == "eval" then last_eval = rec end
      end
      -- the step that spent the budget is logged, evaluated and checkpointed like a last step
      assert.equal(s.step, last_train.step)
      assert.equal(s.step, last_eval.step)
      assert.equal(s.train_cpu, last_eval.cpu)
      assert.is_true(last_eval.cpu <= last_eval.time + 1e-3 or hrm.get_threads() > 1)
      local ck = assert(require("hrm.checkpoint").load(dir .. "/last.hrm"))
      assert.equal(s.step, ck.step)
      -- the same budget again: nothing to do; a doubled one continues from the saved CPU time
      local again = run({ steps = 1000000, minutes = budget, resume = dir, run = dir, eval = dataset(16, 2),
                          eval_every = 1000 })
      assert.equal(0, again.steps_run)
      local more = run({ steps = 1000000, minutes = 2 * budget, resume = dir, run = dir, eval = dataset(16, 2),
                         eval_every = 1000 })
      assert.is_true(more.steps_run > 0 and more.stopped_by_budget)
      assert.is_true(more.train_cpu >= 2 * budget * 60)
   end)

   it("rejects bad options with messages naming them", function()
      local model = tiny_model()
      local opt = tiny_optim(model)
      local data = dataset(32, 1)
      local function bad(o, msg)
         local t = { model = model, optim = opt, data = data, steps = 2, batch = 4, quiet = true }
         for k, v in pairs(o) do t[k] = v end
         local ok, err = pcall(hrm.train, t)
         assert.is_false(ok)
         assert.truthy(tostring(err):find(msg, 1, true), tostring(err))
      end
      bad({ batch = 0 }, "option 'batch' must be a positive integer")
      bad({ steps = false }, "option 'steps' must be a positive integer")
      bad({ data = 42 }, "option 'data'")
      bad({ nonsense = 1 }, "unknown option 'nonsense'")
      bad({ ema = 1.5 }, "option 'ema' must be a decay")
      bad({ minutes = 0 }, "option 'minutes' must be a number of minutes > 0")
      bad({ minutes = "5" }, "option 'minutes' must be a number of minutes > 0")
      bad({ schedule = 3 }, "option 'schedule' must be a function")
      bad({ steps = 3, schedule = function() return 0 / 0 end }, "the schedule returned nan at step 1")
      bad({ eval = data, best = "precision" }, "option 'best': unknown metric 'precision'")
      bad({ eval = { a = data }, best = "b/loss" }, "option 'best': no eval set named 'b'")
      assert.has_error(function() hrm.train() end)
   end)
end)

describe("hrm.train.evaluate", function()
   it("sums the last segment over all batches and divides by the total count (padding excluded)", function()
      local model = tiny_model()
      local m, hist = train.evaluate(model, dataset(50, 4), { batch = 16 })
      assert.equal(50, m.count)
      assert.equal(50, m.rows)
      assert.equal(4, m.batches)
      assert.equal(H, m.steps)
      assert.is_true(m.accuracy >= 0 and m.accuracy <= 1)
      local total = 0
      for s = 1, H do total = total + hist[s] end
      assert.equal(50, total)
      assert.is_true(m.q_steps >= 1 and m.q_steps <= H)
   end)

   it("accepts a task adapter's arrays table", function()
      local m = train.evaluate(tiny_model(), make_arrays(10, 4), { batch = 4 })
      assert.equal(10, m.count)
   end)
end)

describe("hrm.progress", function()
   local progress = require "hrm.progress"

   local function sink()
      local buf = {}
      return { write = function(self, ...) for _, s in ipairs({ ... }) do buf[#buf + 1] = tostring(s) end end,
               flush = function() end, text = function() return table.concat(buf) end }
   end

   it("prints a plain line every N steps off a terminal", function()
      local out = sink()
      local t = 0
      local p = progress.new{ total = 20, every = 5, tty = false, out = out, label = "train",
                              clock = function() return t end }
      for step = 1, 20 do
         t = step * 0.1
         p:update(step, { loss = 3, lm_loss = 1 / step, accuracy = 0.5, exact_accuracy = 0.25, samples = 8 })
      end
      p:print("eval line")
      p:finish()
      local text = out.text()
      local n = 0
      for _ in text:gmatch("train +%d+/20") do n = n + 1 end
      assert.equal(4, n)
      assert.truthy(text:find("lm_loss 0.0500  exact 0.250  acc 0.500\n", 1, true), text) -- the total loss is not shown
      assert.truthy(text:find("80.0 samples/s", 1, true))
      assert.truthy(text:find("eval line\n", 1, true))
      assert.is_nil(text:find("\r", 1, true))
   end)

   it("rewrites one live line with \\r on a terminal, within its width", function()
      local out = sink()
      local t = 0
      local p = progress.new{ total = 10, tty = true, out = out, columns = 40, refresh = 1e9,
                              clock = function() return t end }
      for step = 1, 10 do
         t = step
         p:update(step, { lm_loss = 2, samples = 1 })
      end
      p:print("message")
      p:finish()
      local text = out.text()
      assert.truthy(text:find("\r", 1, true))
      assert.truthy(text:find("\r\27[Kmessage\n", 1, true))
      for line in text:gmatch("\r([^\r\n]*)\27%[K") do assert.is_true(#line < 40) end
   end)

   it("formats durations", function()
      assert.equal("12s", progress.duration(12.3))
      assert.equal("3m05s", progress.duration(185))
      assert.equal("1h02m", progress.duration(3725))
      assert.equal("?", progress.duration(nil))
   end)
end)
