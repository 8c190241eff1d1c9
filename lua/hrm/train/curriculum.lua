-- hrm.train.curriculum — the context a curriculum function sees, and the changes it may ask for.
--
-- A curriculum is function(step, metrics, ctx) -> nil | {data, eval, lr, puzzle_emb_lr,
-- halt_max_steps, halt_exploration_prob, message}, called with metrics = nil before the first
-- step, then after every step with {train, eval, evaluated}. ctx.state persists in checkpoints,
-- ctx.log(msg) writes an event line; the run's `context` option adds fields to ctx.
-- Does not: run the loop; it changes the run table `r` the loop reads (source, iterator, eval
-- sets, base rates, the model's halting).
local source = require "hrm.train.source"
local options = require "hrm.train.options"

local M = {}

local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

-- new(r, fn, extra_fields, state, log) -> curriculum: cur:start() before the first step (returns
-- the data it asked for, if any), cur:after(metrics) after each step.
function M.new(r, fn, extra, state, log)
   local ctx = { model = r.model, optim = r.optim, batch = r.batch, accumulate = r.accumulate,
                 total_steps = r.total, run_dir = r.run_dir, eval = r.eval_sets, state = state,
                 resumed = r.resumed, log = log }
   for key, v in pairs(extra or {}) do if ctx[key] == nil then ctx[key] = v end end
   local cur = { ctx = ctx }

   local function apply(ch)
      if ch == nil then return end
      if type(ch) ~= "table" then error("hrm.train: the curriculum must return nil or a table of changes", 0) end
      if ch.data ~= nil then
         local s, e = source.as_source(ch.data)
         if not s then error("hrm.train: curriculum data: " .. e, 0) end
         r.source, r.it = s, source.train_iterator(s, r.batch, r.seed)
      end
      if ch.eval ~= nil then
         local sets, names = options.eval_sets(ch.eval)
         if not sets then error("hrm.train: curriculum " .. names, 0) end
         r.eval_sets, r.eval_names, ctx.eval = sets, names, sets
      end
      if ch.lr ~= nil then
         if not finite(ch.lr) or ch.lr < 0 then error("hrm.train: curriculum lr must be a number >= 0", 0) end
         if ch.puzzle_emb_lr == nil and r.base_lr > 0 then r.base_pe = r.base_pe * ch.lr / r.base_lr end
         r.base_lr = ch.lr
      end
      if ch.puzzle_emb_lr ~= nil then r.base_pe = ch.puzzle_emb_lr end
      if ch.halt_max_steps ~= nil or ch.halt_exploration_prob ~= nil then
         r.model:set_halting{ max_steps = ch.halt_max_steps, exploration_prob = ch.halt_exploration_prob }
      end
      if ch.message then log(ch.message) end
   end

   local function call(metrics)
      ctx.step, ctx.data, ctx.lr, ctx.puzzle_emb_lr, ctx.iterator = r.step, r.source, r.base_lr, r.base_pe, r.it
      return fn(r.step, metrics, ctx)
   end

   -- The sampler starts only after the curriculum has had its say at the start (so that a resumed
   -- curriculum reinstates its data before the saved sampler position is applied).
   function cur.start()
      local ch = call(nil)
      if ch and ch.data ~= nil then r.source = assert(source.as_source(ch.data)) ch.data = nil end
      r.it = source.train_iterator(r.source, r.batch, r.seed)
      apply(ch)
   end

   function cur.after(metrics) apply(call(metrics)) end
   return cur
end

return M
