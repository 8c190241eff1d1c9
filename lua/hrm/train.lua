-- hrm.train — the training loop, a thin Lua function over model:step and opt:step (HRM_SPEC §2.3).
--
-- hrm.train{model, optim, data, steps, batch, ...}: one ACT segment per carry slot per optimizer
-- step (the carry persists across steps), gradients of loss / global batch over `accumulate`
-- micro-batches, one update at base rate x schedule(step); reference evaluation (§3.5), whole-state
-- checkpoints, exact resume, curriculum hook, EMA weights, NaN stop, clean Ctrl-C.
-- Does not: own any math (C does), or keep anything between calls.
local ffi = require "ffi"
local C = require "hrm.ffi"
local json = require "hrm.json"
local progress_mod = require "hrm.progress"

local M = {}

local format, floor, huge = string.format, math.floor, math.huge

local LOSS_KEYS = { "loss", "lm_loss", "q_halt_loss", "q_continue_loss" }
local COUNT_KEYS = { "accuracy", "exact_accuracy", "q_halt_accuracy", "steps" }
M.metric_keys = { "loss", "lm_loss", "q_halt_loss", "q_continue_loss", "accuracy", "exact_accuracy",
                  "q_halt_accuracy", "steps" }

local function finite(v) return type(v) == "number" and v == v and v ~= huge and v ~= -huge end

local function fail(level, fmt, ...) error(format(fmt, ...), level + 1) end

-- ---- data sources ----------------------------------------------------------------------------------
-- A data source is anything with source:batches{batch_size, train, seed [, epochs_per_iter]} ->
-- iterator, where it:next() returns {inputs, labels, puzzle_identifiers [, count]} (i32 tensors;
-- nil once a test pass is over) and it:state()/it:set_state(s) allow exact resume. hrm.data.Dataset
-- is one; a task adapter's dataset{...} arrays table is wrapped into one.

local function is_source(x)
   if type(x) ~= "table" then return false end
   local ok, b = pcall(function() return x.batches end)
   return ok and type(b) == "function"
end

local function is_arrays(x)
   return type(x) == "table" and x.inputs ~= nil and x.seq_len ~= nil and x.n ~= nil
end

local DATASET_FIELDS = { "inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices",
                         "n", "n_puzzles", "n_groups", "vocab_size", "seq_len", "pad_id",
                         "ignore_label_id", "blank_identifier_id", "num_puzzle_identifiers", "identifiers" }

-- as_source(x) -> a data source: x itself when it has :batches, an hrm.data.Dataset built from
-- a task adapter's arrays table (tasks/util.lua build_arrays), or nil, err.
function M.as_source(x)
   if is_source(x) then return x end
   if is_arrays(x) then
      local data = require "hrm.data"
      local t = {}
      for _, k in ipairs(DATASET_FIELDS) do t[k] = x[k] end
      local ds, err = data.Dataset.new(t)
      if not ds then return nil, err end
      return ds
   end
   return nil, "expected a data source (an hrm.data.Dataset, a task adapter's dataset{...} " ..
               "arrays, or a table with :batches{...}), got " .. type(x)
end

-- Examples drawn per epoch: total_groups x mean_puzzle_examples (the reference's count), else size().
local function epoch_examples(src)
   local ok, meta = pcall(function() return src:meta() end)
   if ok and type(meta) == "table" and meta.total_groups and meta.mean_puzzle_examples then
      local n = meta.total_groups * meta.mean_puzzle_examples
      if n > 0 then return n end
   end
   local ok2, n = pcall(function() return src:size() end)
   if ok2 and type(n) == "number" then return n end
   return nil
end

-- A train iterator over src; a dataset smaller than one batch joins several epochs per pass
-- (the sampler's epochs_per_iter), as the reference joins eval_interval epochs.
local function train_iterator(src, batch, seed)
   local o = { batch_size = batch, train = true, seed = seed }
   local n = epoch_examples(src)
   if n and n > 0 and n < batch then o.epochs_per_iter = math.ceil(batch / n) + 1 end
   local ok, it = pcall(src.batches, src, o)
   if not ok then error("hrm.train: the training data: " .. tostring(it):gsub("^[^\n]-:%d+: ", ""), 0) end
   return it
end

-- Rows of a batch that are real (padded test rows come last and have no labels).
local function real_rows(b, B)
   if type(b.count) == "number" then return b.count end
   local S = b.labels:size(2)
   local lab = b.labels:data()
   local n = 0
   for r = 0, B - 1 do
      for s = 0, S - 1 do
         if lab[r * S + s] ~= -100 then n = r + 1 break end
      end
   end
   return n
end

-- ---- evaluation ---------------------------------------------------------------------------------------

-- evaluate(model, source, {batch = 64, progress = reporter|nil, on_batch = fn, name}) -> metrics, hist
-- The reference's evaluation: per batch a fresh carry and halt_max_steps eval segments; the metrics
-- of the last segment are summed over all batches and divided by the total count (padded rows have
-- no labels, so the model's count leaves them out). Also returned: `q_steps`, the mean step at which
-- the Q head first says halt (q_halt > q_continue; halt_max_steps if never), and its histogram
-- hist[s] = rows. on_batch(batch, out, info) sees the last segment's outputs of every batch
-- (info = {rows = real rows, q_step = i32 per row (0-based row index), batch_index}).
function M.evaluate(model, source, opts)
   opts = opts or {}
   local src, err = M.as_source(source)
   if not src then fail(2, "evaluate: bad argument #2 (source): %s", err) end
   local B = opts.batch or 64
   if type(B) ~= "number" or B < 1 or B ~= floor(B) then
      fail(2, "evaluate: option 'batch' must be a positive integer, got %s", tostring(B))
   end
   local sok, size = pcall(function() return src:size() end)
   if sok and type(size) == "number" and size >= 1 and size < B then B = size end  -- no all-padding rows
   local H = opts.halt_max_steps or model:config().halt_max_steps
   local ok, it = pcall(src.batches, src, { batch_size = B, train = false })
   if not ok then return nil, tostring(it):gsub("^[^\n]-:%d+: ", "") end
   -- One carry serves every batch: after halt_max_steps eval segments all rows are halted, so the
   -- next step resets every row to the initial state with the new batch (a fresh carry).
   local carry = model:carry(B)
   local sums, count = {}, 0
   for _, k in ipairs(M.metric_keys) do sums[k] = 0 end
   local hist = {}
   for s = 1, H do hist[s] = 0 end
   local q_sum, rows_seen = 0, 0
   local qstep = ffi.new("int32_t[?]", B)
   local nb = 0
   while true do
      local b, berr = it:next()
      if berr then return nil, berr end
      if b == nil then break end
      nb = nb + 1
      local rows = real_rows(b, B)
      ffi.fill(qstep, 4 * B, 0)
      local out
      for seg = 1, H do
         out = model:step(carry, b, { train = false })
         local qh, qc = out.q_halt_logits:data(), out.q_continue_logits:data()
         for r = 0, rows - 1 do
            if qstep[r] == 0 and qh[r] > qc[r] then qstep[r] = seg end
         end
      end
      for _, k in ipairs(M.metric_keys) do sums[k] = sums[k] + out[k] end
      count = count + out.count
      for r = 0, rows - 1 do
         local s = qstep[r] == 0 and H or qstep[r]
         qstep[r] = s
         hist[s] = hist[s] + 1
         q_sum = q_sum + s
      end
      rows_seen = rows_seen + rows
      if opts.on_batch then opts.on_batch(b, out, { rows = rows, q_step = qstep, batch_index = nb }) end
      if opts.progress then opts.progress:update(nb, { samples = rows }) end
   end
   local m = { count = count, rows = rows_seen, batches = nb }
   for _, k in ipairs(M.metric_keys) do m[k] = count > 0 and sums[k] / count or 0 end
   m.q_steps = rows_seen > 0 and q_sum / rows_seen or 0
   return m, hist
end

-- ---- EMA of the weights ----------------------------------------------------------------------------------

local EMA = {}
EMA.__index = EMA

local function new_ema(model, decay)
   local params, _, names = model:parameters()
   local shadow = {}
   for i, p in ipairs(params) do
      if p:device() ~= "cpu" or p:dtype() ~= "f32" then
         fail(3, "hrm.train: option 'ema' needs f32 CPU parameters ('%s' is %s on %s)", names[i], p:dtype(),
              p:device())
      end
      shadow[i] = p:clone()
   end
   return setmetatable({ decay = decay, params = params, names = names, shadow = shadow }, EMA)
end

-- shadow <- decay * shadow + (1 - decay) * param, after each optimizer step (a C op).
function EMA:update()
   for i, p in ipairs(self.params) do
      if C.hrm_ema_update(self.shadow[i]:cdata(), p:cdata(), self.decay) ~= 0 then
         error(ffi.string(C.hrm_last_error()), 2)
      end
   end
end

-- Run fn with the shadow weights in the model, then put the trained weights back.
function EMA:with_weights(fn)
   self.backup = self.backup or {}
   for i, p in ipairs(self.params) do
      self.backup[i] = self.backup[i] or p:clone()
      self.backup[i]:copy(p)
      p:copy(self.shadow[i])
   end
   local ok, a, b = pcall(fn)
   for i, p in ipairs(self.params) do p:copy(self.backup[i]) end
   if not ok then error(a, 0) end
   return a, b
end

function EMA:tensors()
   local t = {}
   for i, name in ipairs(self.names) do t[name] = self.shadow[i] end
   return t
end

-- hrm.train.new_ema(model, decay): the EMA the training loop keeps (update, with_weights, tensors).
M.new_ema = new_ema

-- The shadow weights are saved in the checkpoint itself, as its own tensors "ema.<name>"
-- (checkpoint.save's state.tensors), so a checkpoint and its EMA are one file and cannot be
-- mismatched by a kill between two writes; extra.ema = {decay}. Runs of earlier versions kept
-- them beside the checkpoint in <checkpoint>.ema.safetensors (extra.ema.file): still read.
local EMA_PREFIX = "ema."
function M.ema_path(checkpoint_path) return checkpoint_path .. ".ema.safetensors" end

-- The tensors to store with a checkpoint (state.tensors) and extra.ema.
function EMA:for_checkpoint()
   local t = {}
   for i, name in ipairs(self.names) do t[EMA_PREFIX .. name] = self.shadow[i] end
   return t, { decay = self.decay }
end

-- The shadow weights from a loaded checkpoint state (st.tensors, st.extra.ema), or from the
-- sidecar file of an earlier version's checkpoint at checkpoint_path.
function M.ema_weights(st, checkpoint_path)
   local e = st.extra and st.extra.ema
   if type(e) ~= "table" then return nil, checkpoint_path .. ": the run kept no EMA of the weights" end
   if type(e.file) == "string" then -- an earlier version's sidecar
      local t, err = require("hrm.safetensors").load(M.ema_path(checkpoint_path))
      if not t then return nil, "cannot read the EMA weights: " .. tostring(err) end
      return t
   end
   local t = {}
   for key, v in pairs(st.tensors or {}) do
      if key:sub(1, #EMA_PREFIX) == EMA_PREFIX then t[key:sub(#EMA_PREFIX + 1)] = v end
   end
   if next(t) == nil then return nil, checkpoint_path .. ": the EMA weights are missing from the checkpoint" end
   return t
end

function EMA:load(st, checkpoint_path)
   local t, err = M.ema_weights(st, checkpoint_path)
   if not t then return nil, err end
   for i, name in ipairs(self.names) do
      if t[name] == nil then return nil, "the EMA weights have no tensor " .. name end
      self.shadow[i]:copy(t[name])
   end
   return true
end

-- ---- memory ------------------------------------------------------------------------------------------------

local DTYPE_BYTES = { f32 = 4, f64 = 8, bf16 = 2, i32 = 4, i64 = 8, u8 = 1 }

-- Bytes of memory the system can still give (MemAvailable), or nil where /proc/meminfo is absent.
function M.memory_available()
   local f = io.open("/proc/meminfo", "rb")
   if not f then return nil end
   local text = f:read("*a")
   f:close()
   local kb = text and text:match("MemAvailable:%s*(%d+) kB")
   return kb and tonumber(kb) * 1024 or nil
end

local function gib(bytes) return format("%.1f GiB", bytes / 2 ^ 30) end

-- A C error as one clause: no "file:line: " position, no hint.
local function clause(e) return (tostring(e):gsub("^[^\n]-:%d+: ", "", 1):gsub("%s*%-%-%->.*$", "")) end

-- The message of a batch that does not fit: what was asked, what is available.
local function memory_message(batch, asked)
   local avail = M.memory_available()
   return format("hrm.train: batch %d does not fit in memory: %s, and %s available\n---> HINT: use a " ..
                 "smaller batch (with 'accumulate' to keep the global batch)", batch, asked,
                 avail and (gib(avail) .. " is") or "an unknown amount is")
end

-- Carries of `batch` rows, k of them, refused before any is made when their bytes alone (measured
-- on a one-row carry, field by field) exceed the memory available.
local function make_carries(model, batch, k)
   local one, per_row = model:carry(1), 0
   for _, name in ipairs(one:tensor_names()) do
      local t = one:tensor(name)
      per_row = per_row + t:numel() * (DTYPE_BYTES[t:dtype()] or 4)
   end
   local need, avail = per_row * batch * k, M.memory_available()
   if avail and need > avail then
      error(memory_message(batch, format("%d carr%s of %d rows need %s", k, k == 1 and "y" or "ies", batch, gib(need))), 0)
   end
   local carries = {}
   for i = 1, k do
      local ok, c = pcall(model.carry, model, batch)
      if not ok then
         if tostring(c):find("allocate", 1, true) then error(memory_message(batch, clause(c)), 0) end
         error(c, 0)
      end
      carries[i] = c
   end
   return carries
end

local function is_memory_error(e)
   e = tostring(e)
   return e:find("cannot allocate", 1, true) ~= nil or e:find("out of memory", 1, true) ~= nil
end

-- ---- files -------------------------------------------------------------------------------------------------

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function mkdir_p(dir)
   local r = os.execute("mkdir -p " .. shell_quote(dir) .. " 2>/dev/null")
   if r ~= 0 and r ~= true then return nil, "cannot create the run directory " .. dir end
   return true
end

local function is_dir(p)
   local r = os.execute("test -d " .. shell_quote(p))
   return r == 0 or r == true
end

local function file_exists(path)
   local f = io.open(path, "rb")
   if f then f:close() return true end
   return false
end

local function copy_file(src, dst)
   local fi, err = io.open(src, "rb")
   if not fi then return nil, err end
   local tmp = dst .. ".tmp"
   local fo, err2 = io.open(tmp, "wb")
   if not fo then fi:close() return nil, err2 end
   while true do
      local chunk = fi:read(1048576)
      if not chunk then break end
      fo:write(chunk)
   end
   fi:close()
   fo:close()
   local ok, rerr = os.rename(tmp, dst)
   if not ok then os.remove(tmp) return nil, rerr end
   return true
end

-- Keep the lines of metrics.jsonl whose step is <= step (a resumed run rewrites what follows).
local function truncate_metrics(path, step)
   local f = io.open(path, "rb")
   if not f then return end
   local keep = {}
   for line in f:lines() do
      local rec = json.decode(line)
      if type(rec) == "table" and type(rec.step) == "number" and rec.step <= step then keep[#keep + 1] = line end
   end
   f:close()
   local out = io.open(path, "wb")
   if out then
      for _, line in ipairs(keep) do out:write(line, "\n") end
      out:close()
   end
end

-- ---- options -------------------------------------------------------------------------------------------------

local KNOWN = {
   model = true, optim = true, data = true, eval = true, steps = true, epochs = true, batch = true,
   accumulate = true, eval_batch = true, schedule = true, curriculum = true, eval_every = true,
   log_every = true, checkpoint = true, run = true, best = true, best_mode = true, resume = true,
   ema = true, seed = true, progress = true, quiet = true, meta = true, on_log = true, context = true,
}

local function positive_int(v, key, level, allow_nil)
   if v == nil and allow_nil then return nil end
   if type(v) ~= "number" or v < 1 or v ~= floor(v) then
      fail(level + 1, "hrm.train: option '%s' must be a positive integer, got %s", key, tostring(v))
   end
   return v
end

local function normalise_eval(ev, level)
   if ev == nil then return {}, {} end
   local sets, names = {}, {}
   if is_source(ev) or is_arrays(ev) then
      sets.eval = ev
   elseif type(ev) == "table" then
      for k, v in pairs(ev) do
         if type(k) ~= "string" then
            fail(level + 1, "hrm.train: option 'eval' must be a data source or {name = source, ...}")
         end
         sets[k] = v
      end
   else
      fail(level + 1, "hrm.train: option 'eval' must be a data source or {name = source, ...}, got %s", type(ev))
   end
   for k, v in pairs(sets) do
      local src, err = M.as_source(v)
      if not src then fail(level + 1, "hrm.train: eval set '%s': %s", k, err) end
      sets[k] = src
      names[#names + 1] = k
   end
   table.sort(names)
   return sets, names
end

-- "exact_accuracy" or "set/metric" -> set, metric
local function parse_best(best, names, level)
   best = best or "exact_accuracy"
   if type(best) ~= "string" then fail(level + 1, "hrm.train: option 'best' must be a string like \"exact_accuracy\" or \"set/metric\"") end
   local set, metric = best:match("^(.-)/(.+)$")
   if not set then set, metric = names[1], best end
   local known = metric == "q_steps" or metric == "count"
   for _, k in ipairs(M.metric_keys) do known = known or k == metric end
   if not known then
      fail(level + 1, "hrm.train: option 'best': unknown metric '%s' (%s, q_steps)", metric,
           table.concat(M.metric_keys, ", "))
   end
   if #names > 0 then
      local found = false
      for _, n in ipairs(names) do found = found or n == set end
      if not found then
         fail(level + 1, "hrm.train: option 'best': no eval set named '%s' (sets: %s)", tostring(set),
              table.concat(names, ", "))
      end
   end
   return set, metric
end

-- Plain-data copy of the options for config.json.
local function options_record(o, names, total, global_batch)
   return {
      steps = total, epochs = o.epochs, batch = o.batch, accumulate = o.accumulate or 1,
      global_batch = global_batch, eval_batch = o.eval_batch, eval_every = o.eval_every,
      log_every = o.log_every, eval_sets = json.array(names), best = o.best or "exact_accuracy",
      ema = o.ema, seed = o.seed or 0, resume = o.resume,
      schedule = o.schedule and "function" or nil, curriculum = o.curriculum and "function" or nil,
   }
end

-- ---- restore helpers ------------------------------------------------------------------------------------

local function copy_model(dst, src)
   if src == nil or src == dst then return end
   local a, b = dst:config(), src:config()
   for k, v in pairs(a) do
      if k ~= "halt_max_steps" and k ~= "halt_exploration_prob" and b[k] ~= v then
         error(format("hrm.train: the checkpoint's model has %s = %s, this model %s", k, tostring(b[k]),
                      tostring(v)), 0)
      end
   end
   for _, name in ipairs(dst:tensor_names()) do
      dst:tensor(name):copy((src:tensor(name)))
   end
   dst:set_rng_state(src:rng_state())
end

local function copy_optim(dst, src)
   if src == nil or src == dst then return end
   for _, name in ipairs({ "m", "v", "t" }) do
      local s
      if type(src.tensor) == "function" then s = src:tensor(name) else s = src[name] end
      if s ~= nil then dst:tensor(name):copy(s) end
   end
end

-- Every tensor of the destination carry: the model's states (z_H, z_L for HRM and TRM; z_H
-- alone for the baseline) and the per-row fields.
local function copy_carry(dst, src)
   if src == nil or src == dst then return end
   for _, name in ipairs(dst:tensor_names()) do
      local s
      if type(src.tensor) == "function" then s = src:tensor(name) else s = src[name] end
      if s ~= nil then dst:tensor(name):copy(s) end
   end
end

-- ---- the loop ----------------------------------------------------------------------------------------------

-- hrm.train{...} -> summary. Options:
--   model, optim            an hrm.Model and its optimizer (opt:step(lr, puzzle_emb_lr) is called)
--   data                    the training source (see the banner); a curriculum may replace it
--   steps | epochs          run length (epochs: total_groups x mean_puzzle_examples / global batch)
--   batch, accumulate = 1   rows per micro-batch; micro-batches per optimizer step (one carry each,
--                           global batch = batch x accumulate)
--   schedule                function(step) -> multiplier of both base rates (step counts from 1)
--   eval                    a source or {name = source, ...}; eval_every = N (and the last step);
--                           eval_batch (default batch)
--   run (or checkpoint)     run directory: config.json, metrics.jsonl, last.hrm at every evaluation
--                           (and at the end), best.hrm by `best` ("exact_accuracy" or "set/metric";
--                           best_mode "max"/"min", default "min" for losses)
--   resume                  a checkpoint (or run directory) to continue exactly
--   curriculum              function(step, metrics, ctx) -> nil | {data, eval, lr, puzzle_emb_lr,
--                           halt_max_steps, halt_exploration_prob, message}; called with metrics = nil
--                           before the first step, then after every step with {train, eval, evaluated};
--                           ctx.state persists in checkpoints, ctx.log(msg) writes an event line,
--                           `context = {...}` adds fields to ctx
--   ema                     decay of an EMA of the weights (evaluations use it; saved beside checkpoints)
--   log_every = 10, seed = 0, progress = true|false|"tty"|"plain"|reporter, quiet, meta (stored in
--   config.json), on_log = function(record)
-- summary = {step, start_step, steps_run, total_steps, interrupted, time, samples_per_second, train
-- (last logged train metrics), eval (last results by set), best, checkpoint, run_dir, history
-- (every record written), lr, puzzle_emb_lr, global_batch, data, iterator, carries, ema}.
-- Errors: misuse raises at the caller; a non-finite loss, unreadable resume file or unwritable run
-- directory raise "hrm.train: ..." messages (the last good checkpoint stays in place).
local function run(o)
   local level = 3
   if type(o) ~= "table" then fail(level, "hrm.train: expected a table of options, got %s", type(o)) end
   for k in pairs(o) do
      if not KNOWN[k] then fail(level, "hrm.train: unknown option '%s'", tostring(k)) end
   end
   local model, opt = o.model, o.optim
   if type(model) ~= "table" or type(model.step) ~= "function" then
      fail(level, "hrm.train: option 'model' must be an hrm.Model")
   end
   if type(opt) ~= "table" or type(opt.step) ~= "function" then
      fail(level, "hrm.train: option 'optim' must be an optimizer (hrm.optim.AdamATan2(model, {...}))")
   end
   if o.data == nil then fail(level, "hrm.train: option 'data' (the training data source) is required") end
   local source, serr = M.as_source(o.data)
   if not source then fail(level, "hrm.train: option 'data': %s", serr) end
   local batch = positive_int(o.batch, "batch", level)
   local k = positive_int(o.accumulate or 1, "accumulate", level)
   local global_batch = batch * k
   local eval_batch = positive_int(o.eval_batch or batch, "eval_batch", level)
   local eval_every = positive_int(o.eval_every, "eval_every", level, true)
   local log_every = positive_int(o.log_every or 10, "log_every", level)
   local seed = o.seed or 0
   if type(seed) ~= "number" or seed < 0 or seed ~= floor(seed) then
      fail(level, "hrm.train: option 'seed' must be a non-negative integer, got %s", tostring(seed))
   end
   local total
   if o.steps ~= nil then
      total = positive_int(o.steps, "steps", level)
   elseif o.epochs ~= nil then
      if type(o.epochs) ~= "number" or o.epochs <= 0 then
         fail(level, "hrm.train: option 'epochs' must be a number > 0, got %s", tostring(o.epochs))
      end
      local n = epoch_examples(source)
      if not n then fail(level, "hrm.train: option 'epochs' needs a data source with :size()") end
      total = math.max(1, floor(o.epochs * n / global_batch))
   else
      fail(level, "hrm.train: give 'steps' or 'epochs'")
   end
   local schedule = o.schedule or function() return 1 end
   if type(schedule) ~= "function" then fail(level, "hrm.train: option 'schedule' must be a function(step) -> multiplier") end
   if o.curriculum ~= nil and type(o.curriculum) ~= "function" then
      fail(level, "hrm.train: option 'curriculum' must be a function(step, metrics, ctx)")
   end
   if o.ema ~= nil and (type(o.ema) ~= "number" or o.ema <= 0 or o.ema >= 1) then
      fail(level, "hrm.train: option 'ema' must be a decay in (0, 1) such as 0.999, got %s", tostring(o.ema))
   end
   local eval_sets, eval_names = normalise_eval(o.eval, level)
   local best_set, best_metric = parse_best(o.best, eval_names, level)
   local best_mode = o.best_mode or ((best_metric:find("loss") or best_metric == "q_steps") and "min" or "max")
   if best_mode ~= "min" and best_mode ~= "max" then fail(level, "hrm.train: option 'best_mode' must be \"min\" or \"max\"") end
   local run_dir = o.run or o.checkpoint
   if run_dir ~= nil and type(run_dir) ~= "string" then fail(level, "hrm.train: option 'run' must be a directory path") end
   local quiet = o.quiet and true or false

   -- checkpoints
   local ckpt
   do
      local ok, m = pcall(require, "hrm.checkpoint")
      if ok and type(m) == "table" and type(m.save) == "function" then ckpt = m end
   end
   local resume_path = o.resume
   if resume_path ~= nil then
      if type(resume_path) ~= "string" then fail(level, "hrm.train: option 'resume' must be a path") end
      if not ckpt then fail(level, "hrm.train: option 'resume' needs hrm.checkpoint, which this build lacks") end
      if is_dir(resume_path) then resume_path = resume_path .. "/last.hrm" end
   end

   -- output (the reporter is made once the start step is known)
   local reporter
   local function say(msg)
      if quiet then return end
      if reporter then reporter:print(msg) else io.stdout:write(msg, "\n") io.stdout:flush() end
   end

   -- state
   local base_lr, base_pe = opt.settings and opt.settings.lr or opt.lr, opt.settings and opt.settings.puzzle_emb_lr or opt.puzzle_emb_lr
   local carries = make_carries(model, batch, k)
   local ema = o.ema and new_ema(model, o.ema) or nil
   local step, start_step = 0, 0
   local history = {}
   local best = { set = best_set, metric = best_metric, mode = best_mode }
   local last_eval = {}
   local last_ckpt
   local elapsed0 = 0
   local window = { n = 0 }
   local ctx_state = {}
   local extra_in

   local function reset_window()
      window = { n = 0, count = 0 }
      for _, key in ipairs(LOSS_KEYS) do window[key] = 0 end
      for _, key in ipairs(COUNT_KEYS) do window[key] = 0 end
   end
   reset_window()

   local loaded
   if resume_path then
      local st, lerr = ckpt.load(resume_path)
      if not st then error("hrm.train: cannot resume from " .. resume_path .. ": " .. tostring(lerr), 0) end
      loaded = st
      copy_model(model, st.model)
      copy_optim(opt, st.optim)
      local cs = st.carry
      if cs ~= nil and getmetatable(cs) ~= nil and type(cs.tensor) == "function" then cs = { cs } end
      if type(cs) == "table" then
         if #cs ~= k then
            error(format("hrm.train: the checkpoint has %d carries, this run accumulates %d micro-batches", #cs, k), 0)
         end
         for i = 1, k do copy_carry(carries[i], cs[i]) end
      end
      step = st.step or 0
      start_step = step
      extra_in = st.extra or {}
      local tr = extra_in.train or {}
      if tr.rng then model:set_rng_state(tr.rng) end
      if tr.best then
         best.value, best.step = tr.best.value, tr.best.step
      end
      if tr.lr then base_lr, base_pe = tr.lr, tr.puzzle_emb_lr or base_pe end
      if tr.window then window = tr.window end
      elapsed0 = tr.elapsed or 0
      if type(extra_in.curriculum) == "table" then ctx_state = extra_in.curriculum end
      if ema and type(extra_in.ema) == "table" then
         local eok, eerr = ema:load(st, resume_path)
         if not eok then error("hrm.train: cannot resume the EMA weights: " .. tostring(eerr), 0) end
      end
      if step >= total then
         say(format("hrm.train: the checkpoint is at step %d, the run has %d steps: nothing to do", step, total))
      end
   end

   -- run directory
   local metrics_file
   if run_dir then
      local ok, derr = mkdir_p(run_dir)
      if not ok then error("hrm.train: " .. derr, 0) end
      local cfg = { model = model:config(), optim = { kind = opt.kind, settings = opt.settings },
                    train = options_record(o, eval_names, total, global_batch), meta = o.meta,
                    version = require("hrm").version() }
      -- the first write into the run directory: a read-only or vanished folder stops the run here
      local wok, werr = json.write(run_dir .. "/config.json", cfg, { indent = 2, nonfinite = "null" })
      if not wok then
         error(format("hrm.train: the run directory %s is not writable (config.json: %s)\n---> HINT: choose " ..
                      "another 'run' directory, or make this one writable", run_dir, tostring(werr)), 0)
      end
      local mpath = run_dir .. "/metrics.jsonl"
      if resume_path then truncate_metrics(mpath, step) else os.remove(mpath) end
      local ferr
      metrics_file, ferr = io.open(mpath, "ab")
      if not metrics_file then error("hrm.train: cannot open metrics.jsonl: " .. tostring(ferr), 0) end
      if not ckpt and not quiet then
         say("hrm.train: hrm.checkpoint is not available: the run directory gets config.json and " ..
             "metrics.jsonl but no checkpoints")
      end
   end

   if not quiet and o.progress ~= false then
      if type(o.progress) == "table" then reporter = o.progress
      else
         reporter = progress_mod.new{ total = total, label = "train", every = log_every, start = step,
                                      tty = o.progress == "tty" and true or o.progress == "plain" and false or nil }
      end
   end

   local t0 = progress_mod.clock()
   local function now() return elapsed0 + progress_mod.clock() - t0 end

   local function record(rec)
      history[#history + 1] = rec
      if metrics_file then
         metrics_file:write(json.encode(rec, { nonfinite = "null" }), "\n")
         metrics_file:flush()
      end
      if o.on_log then o.on_log(rec) end
   end

   -- The training iterator (a curriculum may swap the source).
   local it
   local function open_source(src)
      local s, e = M.as_source(src)
      if not s then error("hrm.train: curriculum data: " .. e, 0) end
      source = s
      it = train_iterator(source, batch, seed)
   end

   -- curriculum context
   local current_lr = 0
   local ctx = {
      model = model, optim = opt, batch = batch, accumulate = k, total_steps = total,
      run_dir = run_dir, eval = eval_sets, state = ctx_state, resumed = resume_path ~= nil,
   }
   if o.context ~= nil then
      if type(o.context) ~= "table" then error("hrm.train: option 'context' must be a table", 0) end
      for key, v in pairs(o.context) do if ctx[key] == nil then ctx[key] = v end end
   end
   function ctx.log(msg)
      say(msg)
      record({ step = step, split = "event", message = tostring(msg), time = now() })
   end
   local function apply_changes(ch)
      if ch == nil then return end
      if type(ch) ~= "table" then error("hrm.train: the curriculum must return nil or a table of changes", 0) end
      if ch.data ~= nil then open_source(ch.data) end
      if ch.eval ~= nil then eval_sets, eval_names = normalise_eval(ch.eval, 1) ctx.eval = eval_sets end
      if ch.lr ~= nil then
         if not finite(ch.lr) or ch.lr < 0 then error("hrm.train: curriculum lr must be a number >= 0", 0) end
         if ch.puzzle_emb_lr == nil and base_lr > 0 then base_pe = base_pe * ch.lr / base_lr end
         base_lr = ch.lr
      end
      if ch.puzzle_emb_lr ~= nil then base_pe = ch.puzzle_emb_lr end
      if ch.halt_max_steps ~= nil or ch.halt_exploration_prob ~= nil then
         if type(model.set_halting) ~= "function" then
            error("hrm.train: the curriculum changes halt_max_steps/halt_exploration_prob, but this " ..
                  "build's hrm.Model has no set_halting{max_steps, exploration_prob}", 0)
         end
         model:set_halting{ max_steps = ch.halt_max_steps, exploration_prob = ch.halt_exploration_prob }
      end
      if ch.message then ctx.log(ch.message) end
   end
   local function call_curriculum(metrics)
      if not o.curriculum then return end
      ctx.step, ctx.data, ctx.lr, ctx.puzzle_emb_lr, ctx.iterator = step, source, base_lr, base_pe, it
      apply_changes(o.curriculum(step, metrics, ctx))
   end

   -- The sampler starts only after the curriculum has had its say at the start (so that a
   -- resumed curriculum reinstates its data before the saved sampler position is applied).
   if o.curriculum then
      ctx.step, ctx.data, ctx.lr, ctx.puzzle_emb_lr = step, source, base_lr, base_pe
      local ch = o.curriculum(step, nil, ctx)
      if ch and ch.data ~= nil then source = assert(M.as_source(ch.data)) ch.data = nil end
      it = train_iterator(source, batch, seed)
      apply_changes(ch)
   else
      it = train_iterator(source, batch, seed)
   end
   if loaded and type(it.set_state) == "function" then
      local s = loaded.data_state or loaded.data
      if type(s) == "table" and type(s.state) == "function" then s = s:state() end
      if s ~= nil then it:set_state(s) end
   end

   local function train_state()
      return {
         step = step, elapsed = now(), lr = base_lr, puzzle_emb_lr = base_pe, rng = model:rng_state(),
         best = best.value ~= nil and { value = best.value, step = best.step, set = best.set, metric = best.metric } or nil,
         window = window,
      }
   end

   local function save_checkpoint(path)
      if not ckpt or not run_dir then return nil end
      local extra = { train = train_state(), curriculum = ctx.state }
      local own
      if ema then own, extra.ema = ema:for_checkpoint() end
      local ok, cerr = ckpt.save(path, { model = model, optim = opt, carry = k == 1 and carries[1] or carries,
                                         data = it, step = step, extra = extra, tensors = own })
      if not ok then -- a run that cannot save must not go on (disk full, folder gone): stop now
         local known = last_ckpt or (resume_path and { path = resume_path, step = start_step })
         local prev = known and format("%s of step %d %s", known.path, known.step,
                                       file_exists(known.path) and "is as it was" or "is gone too")
            or "no earlier checkpoint was written"
         error({ hrm_train = format("hrm.train: the checkpoint %s of step %d could not be written: %s; the run " ..
            "stopped, and %s\n---> HINT: free space in (or restore) the run directory, then resume", path, step,
            clause(cerr), prev) }, 0)
      end
      last_ckpt = { path = path, step = step }
      return true
   end

   -- A NaN stop: non-finite numbers in a training step or an evaluation end the run before the
   -- weights are updated or saved; the last good checkpoint stays as it was.
   local function nan_stop(what, bad)
      local where = last_ckpt and format("the last good checkpoint is %s (step %d)", last_ckpt.path, last_ckpt.step)
         or "no checkpoint was written yet"
      error({ hrm_train = format("hrm.train: non-finite %s at step %d: %s; the run stopped without saving these " ..
         "weights, and %s\n---> HINT: lower the learning rate or use a warmup", what, step, bad, where) }, 0)
   end

   local function run_eval()
      local results = {}
      for _, name in ipairs(eval_names) do
         local function go()
            return M.evaluate(model, eval_sets[name], { batch = eval_batch })
         end
         local eok, m, hist
         if ema then eok, m, hist = pcall(ema.with_weights, ema, go) else eok, m, hist = pcall(go) end
         if not eok then
            if is_memory_error(m) then error(memory_message(eval_batch, clause(m)), 0) end
            if not tostring(m):find("not finite", 1, true) then error(m, 0) end
            nan_stop(format("evaluation of '%s'", name), (tostring(m):gsub("^.-: ", "", 1)))
         end
         if not m then error("hrm.train: evaluation of '" .. name .. "' failed: " .. tostring(hist), 0) end
         for _, key in ipairs(M.metric_keys) do
            if not finite(m[key]) then
               nan_stop(format("evaluation of '%s'", name), format("its %s is %s", key, tostring(m[key])))
            end
         end
         results[name] = m
         local h = {}
         for s = 1, #hist do h[s] = hist[s] end
         record({ step = step, split = "eval", set = name, time = now(), lr = current_lr, ema = ema and true or nil,
                  metrics = m, halt_histogram = json.array(h) })
         say(format("eval %-8s step %d  exact %.4f  acc %.4f  loss %.4f  q-steps %.2f  (%d rows)", name, step,
                    m.exact_accuracy, m.accuracy, m.loss, m.q_steps, m.rows))
      end
      last_eval = results
      -- best
      local r = results[best.set]
      local improved = false
      if r and finite(r[best.metric]) then
         local v = r[best.metric]
         if best.value == nil or (best.mode == "max" and v > best.value) or (best.mode == "min" and v < best.value) then
            best.value, best.step = v, step
            improved = true
         end
      end
      return results, improved
   end

   local function checkpoint_after_eval(improved)
      if not (ckpt and run_dir) then return end
      local last = run_dir .. "/last.hrm"
      if save_checkpoint(last) and improved then
         local ok, cerr = copy_file(last, run_dir .. "/best.hrm")
         if ok then best.path = run_dir .. "/best.hrm"
         else say("hrm.train: warning: best.hrm was not written: " .. tostring(cerr)) end
      end
   end

   local function write_train_line(lr)
      if window.n == 0 then return nil end
      local m = {}
      local cnt = math.max(window.count, 1)
      for _, key in ipairs(LOSS_KEYS) do m[key] = window[key] / (global_batch * window.n) end
      for _, key in ipairs(COUNT_KEYS) do m[key] = window[key] / cnt end
      m.count = window.count / window.n
      local rec = { step = step, split = "train", time = now(), lr = lr, metrics = m }
      if type(it.epoch) == "function" then
         local ok, e = pcall(it.epoch, it)
         if ok then rec.epoch = e end
      end
      record(rec)
      reset_window()
      return m
   end

   -- ---- main loop ----
   local interrupted, summary_train = false, nil
   local samples0 = 0
   local step_opts = { train = true, global_batch = global_batch }
   local function loop()
      while step < total do
         step = step + 1
         local sums = { count = 0 }
         for _, key in ipairs(LOSS_KEYS) do sums[key] = 0 end
         for _, key in ipairs(COUNT_KEYS) do sums[key] = 0 end
         for i = 1, k do
            local b, berr = it:next()
            if b == nil then
               error(format("hrm.train: the training data ran out at step %d%s", step,
                            berr and (": " .. berr) or " (a train iterator should not end)"), 0)
            end
            local sok, out = pcall(model.step, model, carries[i], b, step_opts)
            local bad
            if not sok then
               if is_memory_error(out) then error(memory_message(batch, clause(out)), 0) end
               if not tostring(out):find("not finite", 1, true) then error(out, 0) end
               bad = tostring(out):gsub("^.-: ", "", 1)
            elseif not finite(out.loss) then
               bad = "the loss is " .. tostring(out.loss)
            end
            if bad then nan_stop(format("loss (micro-batch %d of %d)", i, k), bad) end
            for _, key in ipairs(LOSS_KEYS) do sums[key] = sums[key] + out[key] end
            for _, key in ipairs(COUNT_KEYS) do sums[key] = sums[key] + out[key] end
            sums.count = sums.count + out.count
         end
         local mult = schedule(step)
         if not finite(mult) or mult < 0 then
            error(format("hrm.train: the schedule returned %s at step %d (expected a number >= 0)", tostring(mult), step), 0)
         end
         current_lr = base_lr * mult
         opt:step(current_lr, base_pe * mult)
         if ema then ema:update() end
         -- metrics of this step (HRM_SPEC §3.5) and of the log window
         local m = {}
         local cnt = math.max(sums.count, 1)
         for _, key in ipairs(LOSS_KEYS) do m[key] = sums[key] / global_batch end
         for _, key in ipairs(COUNT_KEYS) do m[key] = sums[key] / cnt end
         m.count = sums.count
         for _, key in ipairs(LOSS_KEYS) do window[key] = window[key] + sums[key] end
         for _, key in ipairs(COUNT_KEYS) do window[key] = window[key] + sums[key] end
         window.count, window.n = window.count + sums.count, window.n + 1
         if reporter then
            -- shown: the averages since the last log line (rows that halted in them)
            local wc = window.count
            reporter:update(step, { loss = window.loss / (global_batch * window.n),
                                    accuracy = wc > 0 and window.accuracy / wc or nil,
                                    exact_accuracy = wc > 0 and window.exact_accuracy / wc or nil,
                                    steps = wc > 0 and window.steps / wc or nil, samples = global_batch })
         end
         samples0 = samples0 + global_batch
         if step % log_every == 0 or step == total then summary_train = write_train_line(current_lr) or summary_train end
         local evaluated, improved = false, false
         if #eval_names > 0 and ((eval_every and step % eval_every == 0) or step == total) then
            improved = select(2, run_eval())
            evaluated = true
         end
         if o.curriculum then
            call_curriculum({ train = m, eval = last_eval, evaluated = evaluated })
         end
         if evaluated or (step == total and #eval_names == 0) then checkpoint_after_eval(improved) end
         if C.hrm_interrupt_take() ~= 0 then
            interrupted = true
            if run_dir and ckpt and not (last_ckpt and last_ckpt.step == step) then
               save_checkpoint(run_dir .. "/last.hrm")
            end
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
      pcall(record, { step = step, split = "error", message = tostring(msg), time = now() })
      if metrics_file then metrics_file:close() end
      C.hrm_interrupt_defer(0)
      error(msg, 0)
   end
   if metrics_file then metrics_file:close() end
   local elapsed = now()
   if interrupted then
      say(format("hrm.train: interrupted after step %d%s", step,
                 last_ckpt and last_ckpt.step == step and ("; saved " .. last_ckpt.path) or ""))
   end
   C.hrm_interrupt_defer(0)
   local run_time = progress_mod.clock() - t0
   return {
      step = step, start_step = start_step, steps_run = step - start_step, total_steps = total,
      interrupted = interrupted, time = elapsed, samples_per_second = run_time > 0 and samples0 / run_time or 0,
      train = summary_train, eval = last_eval, best = best.value ~= nil and best or nil,
      checkpoint = last_ckpt and last_ckpt.path or nil, run_dir = run_dir, history = history,
      lr = base_lr, puzzle_emb_lr = base_pe, global_batch = global_batch,
      data = source, iterator = it, carries = carries, ema = ema,
   }
end

M.run = run

-- ---- helpers for programs (scripts/train.lua, eval.lua, solve.lua) ------------------------------------

local BUILTIN_TASKS = { sudoku = "tasks.sudoku", maze = "tasks.maze", arc = "tasks.arc" }
M.builtin_tasks = { "sudoku", "maze", "arc" }

-- task(name_or_path [, {size = n}]) -> adapter | nil, err. A built-in name (sudoku, maze, arc) or
-- the path of a Lua file returning an adapter table (tasks/README.md: name, vocab_size, seq_len,
-- encode, decode, dataset, ...); `size` makes a variant through adapter.new{size = n}.
function M.task(name, opts)
   if type(name) ~= "string" then error("hrm.train.task: bad argument #1: expected a task name or path", 2) end
   opts = opts or {}
   local adapter
   if BUILTIN_TASKS[name] then
      adapter = require(BUILTIN_TASKS[name])
   elseif name:match("%.lua$") or name:find("/", 1, true) then
      local chunk, err = loadfile(name)
      if not chunk then return nil, "cannot load the task adapter: " .. tostring(err) end
      local ok, res = pcall(chunk)
      if not ok then return nil, "the task adapter " .. name .. " failed: " .. tostring(res) end
      adapter = res
   else
      return nil, string.format("unknown task '%s' (use %s, or the path of an adapter .lua file)", name,
                                table.concat(M.builtin_tasks, ", "))
   end
   if type(adapter) ~= "table" then return nil, "the task adapter " .. name .. " did not return a table" end
   if opts.size ~= nil then
      if type(adapter.new) ~= "function" then return nil, "task '" .. name .. "' has no variants (no .new)" end
      local ok, res = pcall(adapter.new, { size = opts.size })
      if not ok then return nil, (tostring(res):gsub("^.-:%d+: ", "")) end
      adapter = res
   end
   for _, k in ipairs({ "vocab_size", "seq_len" }) do
      if type(adapter[k]) ~= "number" then return nil, "the task adapter " .. name .. " has no number '" .. k .. "'" end
   end
   for _, k in ipairs({ "encode", "decode", "dataset" }) do
      if type(adapter[k]) ~= "function" then return nil, "the task adapter " .. name .. " has no function '" .. k .. "'" end
   end
   return adapter
end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

-- load_model(path [, {config = table, ema = bool}]) -> model, info | nil, err
-- path: a run directory (best.hrm, else last.hrm), a .hrm checkpoint, or a .safetensors file
-- (config from opts.config or the config.json beside it). info = {path, run_config (config.json
-- of the run, or nil), extra (the checkpoint's extra), step}.
function M.load_model(path, opts)
   if type(path) ~= "string" then error("hrm.train.load_model: bad argument #1 (path): expected a string", 2) end
   opts = opts or {}
   local info = {}
   if is_dir(path) then
      info.run_dir = path
      if file_exists(path .. "/best.hrm") then path = path .. "/best.hrm"
      elseif file_exists(path .. "/last.hrm") then path = path .. "/last.hrm"
      else return nil, "no best.hrm or last.hrm in " .. path end
   elseif not file_exists(path) then
      return nil, "no such file: " .. path
   end
   info.path = path
   local cfg_path = dirname(path) .. "/config.json"
   if file_exists(cfg_path) then
      local c, err = json.read(cfg_path)
      if not c then return nil, err end
      info.run_config = c
   end
   local model
   if path:match("%.safetensors$") then
      local cfg = opts.config or (info.run_config and info.run_config.model)
      if type(cfg) ~= "table" then
         return nil, "a .safetensors file needs a model config\n---> HINT: pass --config (a preset or a Lua file) " ..
                     "or keep the run's config.json beside it"
      end
      local clean = {}
      for k, v in pairs(cfg) do if v ~= json.null then clean[k] = v end end
      local ok, res = pcall(function() return require("hrm.Model")(clean) end)
      if not ok then return nil, tostring(res):gsub("^.-:%d+: ", "") end
      model = res
      local lok, lerr = model:load_safetensors(path)
      if not lok then return nil, lerr end
   else
      local ok, ckpt = pcall(require, "hrm.checkpoint")
      if not ok or type(ckpt) ~= "table" or type(ckpt.load) ~= "function" then
         return nil, "reading .hrm checkpoints needs hrm.checkpoint, which this build lacks\n---> HINT: use " ..
                     "model:save_safetensors() and pass the .safetensors file with --config"
      end
      local st, err = ckpt.load(path)
      if not st then return nil, err end
      model = st.model
      if type(model) ~= "table" or type(model.step) ~= "function" then
         return nil, path .. ": the checkpoint holds no model"
      end
      info.extra, info.step = st.extra, st.step
      if opts.ema then
         local t, eerr = M.ema_weights(st, path)
         if not t then return nil, eerr end
         for name, v in pairs(t) do model:tensor(name):copy(v) end
      end
   end
   return model, info
end

return setmetatable(M, { __call = function(_, opts) return (run(opts)) end })
