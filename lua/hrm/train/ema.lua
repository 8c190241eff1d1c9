-- hrm.train.ema — an exponential moving average of a model's weights, kept beside training.
--
-- ema.new(model, decay) -> e: e:update() after each optimizer step (shadow <- decay * shadow +
-- (1 - decay) * param, a C op), e:with_weights(fn) runs fn with the shadow weights in the model,
-- e:for_checkpoint() / e:load(state, path) store and restore them inside the checkpoint itself
-- (tensors "ema.<name>", extra.ema = {decay}), so a checkpoint and its EMA cannot be mismatched.
-- Does not: evaluate or save; f32 CPU parameters only.
local C = require "hrm.ffi"
local errors = require "hrm.errors"

local M = {}

local EMA = {}
EMA.__index = EMA

local PREFIX = "ema."

function M.new(model, decay)
   local params, _, names = model:parameters()
   local shadow = {}
   for i, p in ipairs(params) do
      if p:device() ~= "cpu" or p:dtype() ~= "f32" then
         error(string.format("hrm.train: option 'ema' needs f32 CPU parameters ('%s' is %s on %s)", names[i],
                             p:dtype(), p:device()), 3)
      end
      shadow[i] = p:clone()
   end
   return setmetatable({ decay = decay, params = params, names = names, shadow = shadow }, EMA)
end

function EMA:update()
   for i, p in ipairs(self.params) do
      if C.hrm_ema_update(self.shadow[i]:cdata(), p:cdata(), self.decay) ~= 0 then error(errors.last(), 2) end
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

-- {name = shadow tensor}
function EMA:tensors()
   local t = {}
   for i, name in ipairs(self.names) do t[name] = self.shadow[i] end
   return t
end

-- The tensors to store with a checkpoint (checkpoint.save's state.tensors) and extra.ema.
function EMA:for_checkpoint()
   local t = {}
   for i, name in ipairs(self.names) do t[PREFIX .. name] = self.shadow[i] end
   return t, { decay = self.decay }
end

-- Where runs of earlier versions kept the EMA: beside the checkpoint (extra.ema.file); still read.
function M.sidecar_path(checkpoint_path) return checkpoint_path .. ".ema.safetensors" end

-- weights(extra, tensors, checkpoint_path) -> {name = tensor} | nil, err: the shadow weights of a
-- checkpoint from its extra table and its own tensors (or an earlier version's sidecar file).
function M.weights(extra, tensors, checkpoint_path)
   local e = extra and extra.ema
   if type(e) ~= "table" then return nil, checkpoint_path .. ": the run kept no EMA of the weights" end
   if type(e.file) == "string" then
      local t, err = require("hrm.safetensors").load(M.sidecar_path(checkpoint_path))
      if not t then return nil, "cannot read the EMA weights: " .. tostring(err) end
      return t
   end
   local t = {}
   for key, v in pairs(tensors or {}) do
      if key:sub(1, #PREFIX) == PREFIX then t[key:sub(#PREFIX + 1)] = v end
   end
   if next(t) == nil then return nil, checkpoint_path .. ": the EMA weights are missing from the checkpoint" end
   return t
end

-- e:load(state, path) -> true | nil, err: the shadow weights of a loaded checkpoint state.
function EMA:load(st, checkpoint_path)
   local t, err = M.weights(st.extra, st.tensors, checkpoint_path)
   if not t then return nil, err end
   for i, name in ipairs(self.names) do
      if t[name] == nil then return nil, "the EMA weights have no tensor " .. name end
      self.shadow[i]:copy(t[name])
   end
   return true
end

return M
