-- hrm.train.resume — putting a saved training state back into the objects of a new run.
--
-- restore(state, {model, optim, carries}) copies a checkpoint.load state (model tensors and RNG,
-- optimizer moments, every carry) into the run's own objects, which were built from its options;
-- a checkpoint of another model shape or another number of carries is refused in one line;
-- run.rows_of(t), when given, picks the rows of a saved (global) carry tensor this process holds.
-- load(path, r, {carries, ema, best}) reads the checkpoint, restores the objects and the loop's
-- counters (r.step, r.base_lr, r.base_pe, best, EMA weights) and returns the state with its
-- log window, elapsed time, training CPU time and curriculum state; sampler(state, it) then sets the train
-- iterator's position.
-- Does not: parse files itself (hrm.checkpoint does).
local M = {}

local format = string.format

local function copy_model(dst, src)
   if src == nil or src == dst then return end
   local a, b = dst:config(), src:config()
   for k, v in pairs(a) do
      if k ~= "halt_max_steps" and k ~= "halt_exploration_prob" and b[k] ~= v then
         error(format("hrm.train: the checkpoint's model has %s = %s, this model %s", k, tostring(b[k]),
                      tostring(v)), 0)
      end
   end
   for _, name in ipairs(dst:tensor_names()) do dst:tensor(name):copy((src:tensor(name))) end
   dst:set_rng_state(src:rng_state())
end

-- Every named tensor of dst from src (an object with :tensor(name) or a plain table), through
-- pick(tensor) -> the part dst holds, when given.
local function copy_tensors(dst, src, names, pick)
   if src == nil or src == dst then return end
   for _, name in ipairs(names) do
      local s
      if type(src.tensor) == "function" then s = src:tensor(name) else s = src[name] end
      if s ~= nil then dst:tensor(name):copy(pick and pick(s) or s) end
   end
end

function M.restore(st, run)
   copy_model(run.model, st.model)
   copy_tensors(run.optim, st.optim, { "m", "v", "t" })
   local cs = st.carry
   if cs ~= nil and getmetatable(cs) ~= nil and type(cs.tensor) == "function" then cs = { cs } end
   if type(cs) == "table" then
      local k = #run.carries
      if #cs ~= k then
         error(format("hrm.train: the checkpoint has %d carries, this run accumulates %d micro-batches", #cs, k), 0)
      end
      -- the model's states (z_H, z_L for HRM and TRM; z_H alone for the baseline) and per-row fields
      for i = 1, k do copy_tensors(run.carries[i], cs[i], run.carries[i]:tensor_names(), run.rows_of) end
   end
end

-- sampler(state, it): the saved sampler position into the run's train iterator.
function M.sampler(st, it)
   if type(it.set_state) ~= "function" then return end
   local d = st.data_state or st.data
   if type(d) == "table" and type(d.state) == "function" then d = d:state() end
   if d ~= nil then it:set_state(d) end
end

function M.load(path, r, o)
   local st, lerr = require("hrm.checkpoint").load(path)
   if not st then error("hrm.train: cannot resume from " .. path .. ": " .. tostring(lerr), 0) end
   M.restore(st, { model = r.model, optim = r.optim, carries = o.carries, rows_of = o.rows_of })
   r.step = st.step or 0
   local extra = st.extra or {}
   local tr = extra.train or {}
   if tr.rng then r.model:set_rng_state(tr.rng) end
   if tr.best then o.best.value, o.best.step = tr.best.value, tr.best.step end
   if tr.lr then r.base_lr, r.base_pe = tr.lr, tr.puzzle_emb_lr or r.base_pe end
   st.window, st.elapsed, st.train_cpu = tr.window, tr.elapsed or 0, tr.train_cpu or 0
   if type(extra.curriculum) == "table" then st.curriculum = extra.curriculum end
   if o.ema and type(extra.ema) == "table" then
      local ok, err = o.ema:load(st, path)
      if not ok then error("hrm.train: cannot resume the EMA weights: " .. tostring(err), 0) end
   end
   return st
end

return M
