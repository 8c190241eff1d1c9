-- hrm.train — the training loop, a thin Lua function over model:step and opt:step (HRM_SPEC §2.3).
--
-- hrm.train{model, optim, data, steps, batch, ...}: one ACT segment per carry slot per optimizer
-- step (the carry persists across steps), gradients of loss / global batch over `accumulate`
-- micro-batches, one update at base rate x schedule(step); evaluation, checkpoints and logs at
-- their intervals; exact resume, curriculum hook, EMA weights, NaN stop, clean Ctrl-C.
-- Its pieces are the files of lua/hrm/train/: options, source, evaluate, ema, memory, resume,
-- curriculum, run_dir (config.json, metrics.jsonl, TensorBoard, checkpoints), dist (several
-- processes: `mpirun -np N hrm script.lua` trains data-parallel, exactly as one process would
-- on the whole batch). Copy this file to write your own loop.
-- Does not: own any math (C does), or keep anything between calls.
local C = require "hrm.ffi"
local progress = require "hrm.progress"
local options = require "hrm.train.options"
local source = require "hrm.train.source"
local evaluate = require "hrm.train.evaluate"
local memory = require "hrm.train.memory"
local tdist = require "hrm.train.dist"

local M = { evaluate = evaluate.evaluate, metric_keys = evaluate.metric_keys, as_source = source.as_source,
            new_ema = require("hrm.train.ema").new, memory_available = memory.available }

local format, huge = string.format, math.huge
local LOSS_KEYS = { "lm_loss", "loss", "q_halt_loss", "q_continue_loss" }    -- summed per row
local COUNT_KEYS = { "exact_accuracy", "accuracy", "q_halt_accuracy", "steps" } -- averaged per counted row

local function finite(v) return type(v) == "number" and v == v and v ~= huge and v ~= -huge end

-- Sums of one step's (or one log window's) outputs.
local function new_sums()
   local t = { n = 0, count = 0 }
   for _, k in ipairs(LOSS_KEYS) do t[k] = 0 end
   for _, k in ipairs(COUNT_KEYS) do t[k] = 0 end
   return t
end
local function add(sums, out, n)
   for _, k in ipairs(LOSS_KEYS) do sums[k] = sums[k] + out[k] end
   for _, k in ipairs(COUNT_KEYS) do sums[k] = sums[k] + out[k] end
   sums.count, sums.n = sums.count + out.count, sums.n + n
end
-- Per-row means: losses over global_batch rows per step, the rest over counted rows.
local function means(sums, global_batch)
   local m, cnt = { count = sums.count / math.max(sums.n, 1) }, math.max(sums.count, 1)
   for _, k in ipairs(LOSS_KEYS) do m[k] = sums[k] / (global_batch * math.max(sums.n, 1)) end
   for _, k in ipairs(COUNT_KEYS) do m[k] = sums[k] / cnt end
   return m
end

-- hrm.train{...} -> summary. Options: model, optim; data (see hrm.train.source); steps | epochs;
-- batch, accumulate = 1; schedule(step) -> rate multiplier; eval (a source or {name = source}),
-- eval_every, eval_batch; run (a folder, see hrm.train.run_dir; tensorboard = false skips events),
-- best ("metric" or "set/metric"), best_mode; resume (a checkpoint or run folder); curriculum (see
-- hrm.train.curriculum), context; ema (a decay); minutes (a budget: the run ends after the step at
-- which its training CPU time, evaluations and checkpoints excluded, reaches this many minutes, or
-- at `steps`, whichever comes first); log_every = 10, seed = 0, progress, quiet, meta,
-- on_log(record). Every record carries `time` (wall seconds) and `cpu` (training CPU seconds: the
-- process's CPU time, all threads, inside the steps). summary = {step, start_step, steps_run,
-- total_steps, stopped_by_budget, train_cpu, interrupted, time,
-- samples_per_second, train, eval, best, checkpoint, run_dir, history, lr, puzzle_emb_lr,
-- global_batch, data, iterator, carries, ema}. Misuse raises at the caller; run failures raise
-- one-line "hrm.train: ..." messages.
local function run_rank(o)
   local cok, s = pcall(options.check, o)
   if not cok then error(s, 4) end -- misuse: at the caller of hrm.train{...}
   local model, opt, batch, k, gb = s.model, s.optim, s.batch, s.accumulate, s.global_batch
   local d = tdist.new(batch, k) -- this rank's share; at world size 1 the whole batch
   local main = d.rank == 0      -- the rank that prints, logs and writes
   if not main then s.quiet = true end
   local r = { model = model, optim = opt, batch = batch, accumulate = k, total = s.total, seed = s.seed,
               run_dir = s.run_dir, source = s.source, eval_sets = s.eval_sets, eval_names = s.eval_names,
               resumed = s.resume ~= nil, step = 0, train_cpu = 0, base_lr = opt.settings and opt.settings.lr or opt.lr,
               base_pe = opt.settings and opt.settings.puzzle_emb_lr or opt.puzzle_emb_lr }
   local carries = memory.make_carries(model, d.local_batch, k)
   local ema = o.ema and M.new_ema(model, o.ema) or nil
   local best, history, last_eval, window, elapsed0, cur_state = s.best, {}, {}, new_sums(), 0, {}
   local reporter, rd, loaded
   local function say(msg)
      if s.quiet then return end
      if reporter then reporter:print(msg) else io.stdout:write(msg, "\n") io.stdout:flush() end
   end

   if s.resume then -- the run's objects and counters as the checkpoint left them
      loaded = require("hrm.train.resume").load(s.resume, r, { carries = carries, ema = ema, best = best,
                                                               rows_of = function(t) return d:rows_of(t) end })
      window, elapsed0, cur_state = loaded.window or window, loaded.elapsed, loaded.curriculum or cur_state
      r.train_cpu = loaded.train_cpu
      if r.step >= s.total then
         say(format("hrm.train: the checkpoint is at step %d, the run has %d steps: nothing to do", r.step, s.total))
      end
   end
   local start_step = r.step

   if s.run_dir and main then
      rd = require("hrm.train.run_dir").open(s.run_dir, {
         config = { model = model:config(), optim = { kind = opt.kind, settings = opt.settings },
                    train = options.record(o, s), meta = o.meta, version = require("hrm").version() },
         resume = s.resume and { path = s.resume, step = start_step }, tensorboard = o.tensorboard })
   end
   if not s.quiet and o.progress ~= false then
      reporter = type(o.progress) == "table" and o.progress or progress.new{ total = s.total, label = "train",
         every = s.log_every, start = r.step, tty = o.progress == "tty" or (o.progress ~= "plain" and nil) }
   end
   local t0 = progress.clock()
   local function now() return elapsed0 + progress.clock() - t0 end
   local function record(rec)
      rec.cpu = r.train_cpu
      history[#history + 1] = rec
      if rd then rd:record(rec) end
      if o.on_log and main then o.on_log(rec) end
   end
   local function log(msg) say(msg) record({ step = r.step, split = "event", message = tostring(msg), time = now() }) end

   local cur = o.curriculum and require("hrm.train.curriculum").new(r, o.curriculum, o.context, cur_state, log)
   if cur then cur.start() else r.it = source.train_iterator(r.source, batch, s.seed) end
   if loaded then require("hrm.train.resume").sampler(loaded, r.it) end -- after the curriculum's data
   d:check{ model = model:config(), options = options.record(o, s), optim = opt.settings, iterator = r.it,
            source = r.source }
   d:sync_weights(model)

   local saved_at -- the step of the last checkpoint (every rank knows it)
   local function save()
      if not s.run_dir then return end
      local global = d:global_carries(model, carries) -- a collective: every rank takes part
      saved_at = r.step
      if not rd then return end
      local extra = { train = { step = r.step, elapsed = now(), train_cpu = r.train_cpu, lr = r.base_lr, puzzle_emb_lr = r.base_pe,
                                rng = model:rng_state(), window = window,
                                best = best.value ~= nil and { value = best.value, step = best.step, set = best.set,
                                                               metric = best.metric } or nil },
                      curriculum = cur and cur.ctx.state or cur_state }
      local own
      if ema then own, extra.ema = ema:for_checkpoint() end
      rd:save({ model = model, optim = opt, carry = k == 1 and global[1] or global, data = r.it, step = r.step,
                extra = extra, tensors = own })
   end

   -- Non-finite numbers end the run before the weights are updated or saved.
   local function nan_stop(what, bad)
      local where = rd and rd.last and format("the last good checkpoint is %s (step %d)", rd.last.path, rd.last.step)
         or "no checkpoint was written yet"
      error({ hrm_train = format("hrm.train: non-finite %s at step %d: %s; the run stopped without saving these " ..
         "weights, and %s\n---> HINT: lower the learning rate or use a warmup", what, r.step, bad, where) }, 0)
   end
   -- A failed model call: out of memory and NaN get their own messages.
   local function step_failed(e, rows, what)
      if memory.is_memory_error(e) then error(memory.message(rows, memory.clause(e)), 0) end
      if not tostring(e):find("not finite", 1, true) then error(e, 0) end
      nan_stop(what, (tostring(e):gsub("^.-: ", "", 1)))
   end

   local function run_eval(lr)
      local improved = false
      for _, name in ipairs(r.eval_names) do
         local function go() return evaluate.evaluate(model, r.eval_sets[name], { batch = s.eval_batch, dist = d.size > 1 }) end
         local eok, m, hist
         if ema then eok, m, hist = pcall(ema.with_weights, ema, go) else eok, m, hist = pcall(go) end
         if not eok then step_failed(m, s.eval_batch, format("evaluation of '%s'", name)) end
         if not m then error("hrm.train: evaluation of '" .. name .. "' failed: " .. tostring(hist), 0) end
         for _, key in ipairs(M.metric_keys) do
            if not finite(m[key]) then nan_stop(format("evaluation of '%s'", name), format("its %s is %s", key, tostring(m[key]))) end
         end
         last_eval[name] = m
         record({ step = r.step, split = "eval", set = name, time = now(), lr = lr, ema = ema and true or nil,
                  metrics = m, halt_histogram = require("hrm.fs").array({ unpack(hist) }) })
         say(format("%s step %d  lm_loss %.4f  exact %.4f  acc %.4f  q-steps %.2f  (%d rows)",
                    name == "eval" and "eval" or "eval " .. name, r.step, m.lm_loss, m.exact_accuracy, m.accuracy,
                    m.q_steps, m.rows))
      end
      local v = last_eval[best.set] and last_eval[best.set][best.metric]
      if finite(v) and (best.value == nil or (best.mode == "max" and v > best.value) or (best.mode == "min" and v < best.value)) then
         best.value, best.step, improved = v, r.step, true
      end
      return improved
   end

   local interrupted, summary_train, samples, spent = false, nil, 0, false
   local step_opts = { train = true, global_batch = gb, row_offset = d.row_offset }
   local SUM_KEYS = { "count" }
   for _, key in ipairs(LOSS_KEYS) do SUM_KEYS[#SUM_KEYS + 1] = key end
   for _, key in ipairs(COUNT_KEYS) do SUM_KEYS[#SUM_KEYS + 1] = key end
   local budget = s.minutes and s.minutes * 60 or huge
   local cpu_clock = os.clock -- the process's CPU time, all threads
   if r.train_cpu >= budget then
      spent = true
      say(format("hrm.train: the checkpoint has %.1f training CPU minutes, the budget is %g: nothing to do",
                 r.train_cpu / 60, s.minutes))
   end
   local function loop()
      while r.step < s.total and not spent do
         local cpu0 = cpu_clock()
         r.step = r.step + 1
         local sums = new_sums()
         for i = 1, k do
            local b, berr = r.it:next()
            if b == nil then
               error(format("hrm.train: the training data ran out at step %d%s", r.step,
                            berr and (": " .. berr) or " (a train iterator should not end)"), 0)
            end
            local sok, out = pcall(model.step, model, carries[i], d:slice(b), step_opts)
            if not sok then step_failed(out, batch, format("loss (micro-batch %d of %d)", i, k)) end
            if not finite(out.loss) then nan_stop(format("loss (micro-batch %d of %d)", i, k), "the loss is " .. tostring(out.loss)) end
            add(sums, out, 0)
         end
         sums.n = 1
         d:reduce(model, sums, SUM_KEYS)
         local mult = s.schedule(r.step)
         if not finite(mult) or mult < 0 then
            error(format("hrm.train: the schedule returned %s at step %d (expected a number >= 0)", tostring(mult), r.step), 0)
         end
         local lr = r.base_lr * mult
         opt:step(lr, r.base_pe * mult)
         if ema then ema:update() end
         r.train_cpu = r.train_cpu + (cpu_clock() - cpu0)
         spent = d:agree(r.train_cpu >= budget) -- rank 0's clock decides for every rank
         local final = r.step == s.total or spent
         add(window, sums, 1)
         if reporter then -- the averages since the last log line (rows that halted in them)
            local w = means(window, gb)
            w.samples = gb
            reporter:update(r.step, w)
         end
         samples = samples + gb
         if r.step % s.log_every == 0 or final then
            summary_train = means(window, gb)
            local rec = { step = r.step, split = "train", time = now(), lr = lr, metrics = summary_train }
            if type(r.it.epoch) == "function" then
               local ok, e = pcall(r.it.epoch, r.it)
               if ok then rec.epoch = e end
            end
            record(rec)
            window = new_sums()
         end
         local evaluated, improved = #r.eval_names > 0 and ((s.eval_every and r.step % s.eval_every == 0) or final), false
         if evaluated then improved = run_eval(lr) end
         if cur then cur.after({ train = means(sums, gb), eval = last_eval, evaluated = evaluated }) end
         if s.run_dir and (evaluated or (final and #r.eval_names == 0)) then
            save()
            if improved and rd then
               local path, cerr = rd:keep_best()
               if path then best.path = path else say("hrm.train: warning: best.hrm was not written: " .. tostring(cerr)) end
            end
         end
         if d:any(C.hrm_interrupt_take() ~= 0) then -- a Ctrl-C on any rank stops every rank
            interrupted = true
            if saved_at ~= r.step then save() end
            return
         end
      end
   end

   -- Deferred Ctrl-C (and SIGPIPE ignored) until the last line is written: a Ctrl-C that also
   -- killed the reader of a `| tee` must not stop the run before its save, or during its last words.
   C.hrm_interrupt_defer(1)
   local ok, lerr = pcall(loop)
   if reporter and reporter.finish then pcall(reporter.finish, reporter) end
   if not ok then
      local msg = type(lerr) == "table" and lerr.hrm_train or lerr
      pcall(record, { step = r.step, split = "error", message = tostring(msg), time = now() })
      if rd then rd:close() end
      C.hrm_interrupt_defer(0)
      error(msg, 0)
   end
   if rd then rd:close() end
   local last = rd and rd.last
   if spent and not interrupted and r.step > start_step then
      say(format("hrm.train: the budget of %g training CPU minutes was spent at step %d", s.minutes, r.step))
   end
   if interrupted then
      say(format("hrm.train: interrupted after step %d%s", r.step,
                 last and last.step == r.step and ("; saved " .. last.path) or ""))
   end
   C.hrm_interrupt_defer(0)
   local run_time = progress.clock() - t0
   return {
      step = r.step, start_step = start_step, steps_run = r.step - start_step, total_steps = s.total,
      stopped_by_budget = spent, train_cpu = r.train_cpu,
      interrupted = interrupted, time = now(), samples_per_second = run_time > 0 and samples / run_time or 0,
      train = summary_train, eval = last_eval, best = best.value ~= nil and best or nil,
      checkpoint = last and last.path or nil, run_dir = s.run_dir, history = history,
      lr = r.base_lr, puzzle_emb_lr = r.base_pe, global_batch = gb,
      data = r.source, iterator = r.it, carries = carries, ema = ema,
   }
end

-- Several processes: a failure only this rank saw ends the whole job at once (the others may be
-- waiting in a collective); a refused launch, which every rank saw, is raised on every rank.
local function run(o)
   local _, size = require("hrm.dist").init()
   if size == 1 then return (run_rank(o)) end
   local ok, res = pcall(run_rank, o)
   if ok then return res end
   if tdist.is_shared(res) then error(res.hrm_train, 0) end
   local msg = type(res) == "table" and (res.hrm_train or tostring(res)) or tostring(res)
   io.stderr:write(format("hrm.train (rank %d of %d): %s\n", require("hrm.dist").rank(), size, msg))
   require("hrm.dist").abort(1)
   error(msg, 0)
end

M.run = run
return setmetatable(M, { __call = function(_, opts) return (run(opts)) end })
