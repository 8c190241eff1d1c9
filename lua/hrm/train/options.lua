-- hrm.train.options — the checks of hrm.train's options, and their plain-data record for config.json.
--
-- check(o) -> settings: every option validated (misuse raises "hrm.train: option ..." at the
-- caller of hrm.train) and defaults filled in; eval_sets(ev) normalises the 'eval' option (also
-- used when a curriculum replaces the evaluation sets); record(o, settings) is what config.json keeps.
-- Does not: open files or touch the model.
local source = require "hrm.train.source"
local evaluate = require "hrm.train.evaluate"
local fs = require "hrm.fs"

local M = {}

local format, floor = string.format, math.floor

local KNOWN = {
   model = true, optim = true, data = true, eval = true, steps = true, epochs = true, batch = true,
   accumulate = true, eval_batch = true, schedule = true, curriculum = true, eval_every = true,
   log_every = true, checkpoint = true, run = true, best = true, best_mode = true, resume = true,
   ema = true, seed = true, progress = true, quiet = true, meta = true, on_log = true, context = true,
   tensorboard = true, minutes = true,
}

-- Misuse is raised without a position here; train.lua raises it again at the caller's line.
local function fail(fmt, ...) error(format("hrm.train: " .. fmt, ...), 0) end

local function positive_int(v, key, allow_nil)
   if v == nil and allow_nil then return nil end
   if type(v) ~= "number" or v < 1 or v ~= floor(v) then
      fail("option '%s' must be a positive integer, got %s", key, tostring(v))
   end
   return v
end

-- eval_sets(ev) -> {name = source}, sorted names | nil, err
function M.eval_sets(ev)
   if ev == nil then return {}, {} end
   local sets, names = {}, {}
   if source.is_source(ev) or source.is_arrays(ev) then
      sets.eval = ev
   elseif type(ev) == "table" then
      for k, v in pairs(ev) do
         if type(k) ~= "string" then return nil, "option 'eval' must be a data source or {name = source, ...}" end
         sets[k] = v
      end
   else
      return nil, "option 'eval' must be a data source or {name = source, ...}, got " .. type(ev)
   end
   for k, v in pairs(sets) do
      local src, err = source.as_source(v)
      if not src then return nil, format("eval set '%s': %s", k, err) end
      sets[k] = src
      names[#names + 1] = k
   end
   table.sort(names)
   return sets, names
end

-- "exact_accuracy" or "set/metric" -> set, metric
local function parse_best(best, names)
   best = best or "exact_accuracy"
   if type(best) ~= "string" then fail("option 'best' must be a string like \"exact_accuracy\" or \"set/metric\"") end
   local set, metric = best:match("^(.-)/(.+)$")
   if not set then set, metric = names[1], best end
   local known = metric == "q_steps" or metric == "count"
   for _, k in ipairs(evaluate.metric_keys) do known = known or k == metric end
   if not known then
      fail("option 'best': unknown metric '%s' (%s, q_steps)", metric, table.concat(evaluate.metric_keys, ", "))
   end
   if #names > 0 then
      local found = false
      for _, n in ipairs(names) do found = found or n == set end
      if not found then
         fail("option 'best': no eval set named '%s' (sets: %s)", tostring(set), table.concat(names, ", "))
      end
   end
   return set, metric
end

local function run_length(o, src, global_batch)
   if o.steps ~= nil then return positive_int(o.steps, "steps") end
   if o.epochs == nil then fail("give 'steps' or 'epochs'") end
   if type(o.epochs) ~= "number" or o.epochs <= 0 then
      fail("option 'epochs' must be a number > 0, got %s", tostring(o.epochs))
   end
   local n = source.epoch_examples(src)
   if not n then fail("option 'epochs' needs a data source with :size()") end
   return math.max(1, floor(o.epochs * n / global_batch))
end

function M.check(o)
   if type(o) ~= "table" then fail("expected a table of options, got %s", type(o)) end
   for k in pairs(o) do
      if not KNOWN[k] then fail("unknown option '%s'", tostring(k)) end
   end
   local s = { model = o.model, optim = o.optim }
   if type(s.model) ~= "table" or type(s.model.step) ~= "function" then fail("option 'model' must be an hrm.Model") end
   if type(s.optim) ~= "table" or type(s.optim.step) ~= "function" then
      fail("option 'optim' must be an optimizer (hrm.optim.AdamATan2(model, {...}))")
   end
   if o.data == nil then fail("option 'data' (the training data source) is required") end
   local src, serr = source.as_source(o.data)
   if not src then fail("option 'data': %s", serr) end
   s.source = src
   s.batch = positive_int(o.batch, "batch")
   s.accumulate = positive_int(o.accumulate or 1, "accumulate")
   s.global_batch = s.batch * s.accumulate
   s.eval_batch = positive_int(o.eval_batch or s.batch, "eval_batch")
   s.eval_every = positive_int(o.eval_every, "eval_every", true)
   s.log_every = positive_int(o.log_every or 10, "log_every")
   s.seed = o.seed or 0
   if type(s.seed) ~= "number" or s.seed < 0 or s.seed ~= floor(s.seed) then
      fail("option 'seed' must be a non-negative integer, got %s", tostring(s.seed))
   end
   s.total = run_length(o, src, s.global_batch)
   if o.minutes ~= nil and (type(o.minutes) ~= "number" or not (o.minutes > 0) or o.minutes == math.huge) then
      fail("option 'minutes' must be a number of minutes > 0, got %s", tostring(o.minutes))
   end
   s.minutes = o.minutes
   s.schedule = o.schedule or function() return 1 end
   if type(s.schedule) ~= "function" then fail("option 'schedule' must be a function(step) -> multiplier") end
   if o.curriculum ~= nil and type(o.curriculum) ~= "function" then
      fail("option 'curriculum' must be a function(step, metrics, ctx)")
   end
   if o.ema ~= nil and (type(o.ema) ~= "number" or o.ema <= 0 or o.ema >= 1) then
      fail("option 'ema' must be a decay in (0, 1) such as 0.999, got %s", tostring(o.ema))
   end
   local sets, names = M.eval_sets(o.eval)
   if not sets then fail("%s", names) end
   s.eval_sets, s.eval_names = sets, names
   local best_set, best_metric = parse_best(o.best, names)
   local mode = o.best_mode or ((best_metric:find("loss") or best_metric == "q_steps") and "min" or "max")
   if mode ~= "min" and mode ~= "max" then fail("option 'best_mode' must be \"min\" or \"max\"") end
   s.best = { set = best_set, metric = best_metric, mode = mode }
   s.run_dir = o.run or o.checkpoint
   if s.run_dir ~= nil and type(s.run_dir) ~= "string" then fail("option 'run' must be a directory path") end
   if o.resume ~= nil and type(o.resume) ~= "string" then fail("option 'resume' must be a path") end
   s.resume = o.resume and (fs.is_dir(o.resume) and o.resume .. "/last.hrm" or o.resume) or nil
   if o.context ~= nil and type(o.context) ~= "table" then fail("option 'context' must be a table") end
   s.quiet = o.quiet and true or false
   return s
end

-- Plain-data copy of the options for config.json.
function M.record(o, s)
   return {
      steps = s.total, epochs = o.epochs, batch = o.batch, accumulate = s.accumulate,
      global_batch = s.global_batch, eval_batch = o.eval_batch, eval_every = o.eval_every,
      log_every = o.log_every, eval_sets = fs.array(s.eval_names), best = o.best or "exact_accuracy",
      ema = o.ema, seed = s.seed, resume = o.resume, minutes = o.minutes,
      schedule = o.schedule and "function" or nil, curriculum = o.curriculum and "function" or nil,
   }
end

return M
