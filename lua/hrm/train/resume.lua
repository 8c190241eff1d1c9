-- hrm.train.resume — putting a saved training state back into the objects of a new run.
--
-- restore(state, {model, optim, carries}) copies a checkpoint.load state (model tensors and RNG,
-- optimizer moments, every carry) into the run's own objects, which were built from its options;
-- a checkpoint of another model shape or another number of carries is refused in one line.
-- Does not: read files (hrm.checkpoint does) or restore the loop's own counters (train.lua does).
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

-- Every named tensor of dst from src (an object with :tensor(name) or a plain table).
local function copy_tensors(dst, src, names)
   if src == nil or src == dst then return end
   for _, name in ipairs(names) do
      local s
      if type(src.tensor) == "function" then s = src:tensor(name) else s = src[name] end
      if s ~= nil then dst:tensor(name):copy(s) end
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
      for i = 1, k do copy_tensors(run.carries[i], cs[i], run.carries[i]:tensor_names()) end
   end
end

return M
