-- hrm.Model — the HRM model (C: core/model.c) as a Torch-like Lua object.
--
-- model:step(carry, batch, opts) runs one ACT segment for every row (with the backward in
-- training) and returns the reference's losses and metrics; model:solve(batch, opts) runs the
-- inference loop with a halting policy ("max", "q", or a Lua function). Output tensors are
-- allocated once per batch size and refilled by every step: copy them (`:clone()`) to keep.
local ffi = require "ffi"
local C = require "hrm.ffi"
local Tensor = require "hrm.Tensor"
local config = require "hrm.config"

local Model = {}
Model.__index = Model

local Carry = {}
Carry.__index = Carry

local out_tensor = ffi.new("hrm_tensor *[1]")
local name_out = ffi.new("const char *[1]")
local value_out = ffi.new("hrm_tensor *[1]")
local grad_out = ffi.new("hrm_tensor *[1]")
local is_param_out = ffi.new("int32_t[1]")

local function check(rc, level)
   if rc ~= 0 then
      error((ffi.string(C.hrm_last_error()):gsub(" %(%S+:%d+%)$", "")), (level or 1) + 1)
   end
end

local function handle(self)
   local h = rawget(self, "_h")
   if h == nil then error("hrm.Model: the model was freed", 3) end
   return h
end

-- hrm.Model(cfg [, {device = "cpu", seed = n, empty = false}]); empty = true skips the random
-- init (every tensor zero), for models whose weights are loaded next.
local function new(cfg, opts)
   if type(cfg) ~= "table" then
      error("hrm.Model: bad argument #1 (cfg): expected a config table (hrm.config.hrm_v1{...}), got " ..
            type(cfg), 2)
   end
   opts = opts or {}
   local full = config.hrm_v1(cfg)
   local c = config.to_c(full, 2)
   local device = opts.device or require("hrm").default_device()
   if device ~= "cpu" and device ~= "cuda" then
      error("hrm.Model: option 'device' must be \"cpu\" or \"cuda\", got " .. tostring(device), 2)
   end
   local seed = opts.seed or 0
   if type(seed) ~= "number" or seed < 0 or seed ~= math.floor(seed) then
      error("hrm.Model: option 'seed' must be a non-negative integer, got " .. tostring(seed), 2)
   end
   local out = ffi.new("hrm_model *[1]")
   local dev = device == "cuda" and 1 or 0
   check(opts.empty and C.hrm_model_new_empty(out, c, dev) or C.hrm_model_new(out, c, seed, dev), 2)
   return setmetatable({ _h = ffi.gc(out[0], C.hrm_model_free), cfg = config.from_c(c), device = device },
                       Model)
end

function Model:free()
   local h = rawget(self, "_h")
   if h ~= nil then
      self._h = nil
      C.hrm_model_free(ffi.gc(h, nil))
   end
end

function Model:config()
   local t = {}
   for k, v in pairs(self.cfg) do t[k] = v end
   return t
end

-- model:set_halting{max_steps = n, exploration_prob = p}: change the ACT controls (curricula).
function Model:set_halting(opts)
   if type(opts) ~= "table" then error("set_halting: expected a table {max_steps, exploration_prob}", 2) end
   local n = opts.max_steps or self.cfg.halt_max_steps
   local p = opts.exploration_prob or self.cfg.halt_exploration_prob
   check(C.hrm_model_set_halting(handle(self), n, p), 2)
   self.cfg.halt_max_steps, self.cfg.halt_exploration_prob = n, p
end

function Model:num_parameters() return tonumber(C.hrm_model_num_parameters(handle(self))) end

-- Tensor i as (name, value view, grad view or nil, is_param).
local function tensor_at(h, i)
   check(C.hrm_model_tensor(h, i, name_out, value_out, grad_out, is_param_out), 3)
   local grad = grad_out[0] ~= nil and Tensor._wrap(grad_out[0]) or nil
   return ffi.string(name_out[0]), Tensor._wrap(value_out[0]), grad, is_param_out[0] == 1
end

-- params, grads, names (nn.Module:parameters); buffers are not included.
function Model:parameters()
   local h = handle(self)
   local params, grads, names = {}, {}, {}
   for i = 0, C.hrm_model_num_tensors(h) - 1 do
      local name, value, grad, is_param = tensor_at(h, i)
      if is_param then
         params[#params + 1], grads[#grads + 1], names[#names + 1] = value, grad, name
      end
   end
   return params, grads, names
end

-- All tensor names (parameters and persistent buffers) in state-dict order.
function Model:tensor_names()
   local h = handle(self)
   local names = {}
   for i = 0, C.hrm_model_num_tensors(h) - 1 do names[#names + 1] = (tensor_at(h, i)) end
   return names
end

-- model:tensor(name) -> value view, grad view (nil for buffers).
function Model:tensor(name)
   local h = handle(self)
   if type(name) ~= "string" then
      error("tensor: bad argument #1 (name): expected a string, got " .. type(name), 2)
   end
   local i = C.hrm_model_find_tensor(h, name)
   if i < 0 then
      error(string.format("tensor: the model has no tensor named '%s'\n---> HINT: model:tensor_names() lists them", name), 2)
   end
   local _, value, grad = tensor_at(h, i)
   return value, grad
end

function Model:zero_grad() check(C.hrm_model_zero_grad(handle(self)), 2) end
Model.zeroGradParameters = Model.zero_grad

-- The exploration RNG state as {seed, counter} (checkpoints save it).
function Model:rng_state()
   local r = C.hrm_model_rng(handle(self))
   return { seed = tonumber(r.seed), counter = tonumber(r.counter) }
end

function Model:set_rng_state(s)
   local r = C.hrm_model_rng(handle(self))
   r.seed, r.counter = s.seed, s.counter
end

-- ---- carry --------------------------------------------------------------------------------------

-- model:carry(B): the ACT state of B rows (all halted, so the first step resets every row).
function Model:carry(B)
   if type(B) ~= "number" or B < 1 or B ~= math.floor(B) then
      error("carry: bad argument #1 (batch size): expected a positive integer, got " .. tostring(B), 2)
   end
   local out = ffi.new("hrm_carry *[1]")
   check(C.hrm_carry_new(out, handle(self), B), 2)
   local S, V = self.cfg.seq_len, self.cfg.vocab_size
   local carry = setmetatable({ _h = ffi.gc(out[0], C.hrm_carry_free), B = B, model = self }, Carry)
   carry.logits = Tensor.zeros(B, S, V)
   carry.q_halt_logits = Tensor.zeros(B)
   carry.q_continue_logits = Tensor.zeros(B)
   return carry
end

-- carry:tensor(name): a view of "z_H", "z_L", "steps", "halted", "inputs", "labels", "puzzle_ids".
function Carry:tensor(name)
   check(C.hrm_carry_tensor(out_tensor, self._h, name), 2)
   return Tensor._wrap(out_tensor[0])
end

function Carry:batch_size() return self.B end

-- ---- step ---------------------------------------------------------------------------------------

local METRICS = { "loss", "lm_loss", "q_halt_loss", "q_continue_loss", "accuracy", "exact_accuracy",
                  "q_halt_accuracy", "steps", "count" }
Model.metric_names = METRICS

local function batch_tensor(batch, key, dims, required)
   local t = batch[key]
   if t == nil then
      if required then error(string.format("step: batch.%s is missing", key), 4) end
      return nil
   end
   if not Tensor.is_tensor(t) then
      error(string.format("step: batch.%s must be an hrm.Tensor, got %s", key, type(t)), 4)
   end
   if t:dtype() ~= "i32" then
      error(string.format("step: batch.%s must be i32, got %s\n---> HINT: t:to(\"i32\")", key, t:dtype()), 4)
   end
   local size = t:size()
   local ok = #size == #dims
   for i = 1, #dims do ok = ok and size[i] == dims[i] end
   if not ok then
      error(string.format("step: batch.%s has shape {%s}, expected {%s}", key, table.concat(size, ","),
                          table.concat(dims, ",")), 4)
   end
   return ffi.cast("const int32_t *", t:cdata().data)
end

local function fill_batch(self, carry, batch, need_labels)
   if type(batch) ~= "table" then
      error("step: bad argument #2 (batch): expected a table {inputs, labels, puzzle_identifiers}", 3)
   end
   local B, S = carry.B, self.cfg.seq_len
   local b = ffi.new("hrm_batch")
   b.B = B
   b.inputs = batch_tensor(batch, "inputs", { B, S }, true)
   b.labels = batch_tensor(batch, "labels", { B, S }, need_labels)
   b.puzzle_ids = batch_tensor(batch, "puzzle_identifiers", { B }, false)
   return b
end

-- model:step(carry, batch, {train = bool, global_batch = n, active = u8 tensor}) -> outputs
function Model:step(carry, batch, opts)
   local h = handle(self)
   if getmetatable(carry) ~= Carry or carry.model ~= self then
      error("step: bad argument #1 (carry): expected a carry made by this model's :carry(B)", 2)
   end
   opts = opts or {}
   local train = opts.train and 1 or 0
   local b = fill_batch(self, carry, batch, train == 1)
   local o = ffi.new("hrm_step_opts")
   o.train = train
   o.global_batch = opts.global_batch or 0
   if opts.active ~= nil then
      if not Tensor.is_tensor(opts.active) or opts.active:dtype() ~= "u8" or opts.active:numel() ~= carry.B then
         error("step: option 'active' must be a u8 tensor of the batch size", 2)
      end
      o.active = ffi.cast("const uint8_t *", opts.active:cdata().data)
   end
   local out = ffi.new("hrm_step_out")
   out.logits = carry.logits:cdata()
   out.q_halt_logits = carry.q_halt_logits:cdata()
   out.q_continue_logits = carry.q_continue_logits:cdata()
   check(C.hrm_model_step(h, carry._h, b, o, out), 2)
   local r = { logits = carry.logits, q_halt_logits = carry.q_halt_logits,
               q_continue_logits = carry.q_continue_logits }
   for _, k in ipairs(METRICS) do r[k] = out[k] end
   return r
end

-- ---- inference with a halting policy ----------------------------------------------------------------

-- model:solve(batch, {halt = "max"|"q"|fn, max_steps = n}) with batch = {inputs [, puzzle_identifiers]}.
-- fn(info) receives {segment, predictions (B,S i32), steps, q_halt_logits, q_continue_logits,
-- active (u8)} and returns a table of 1-based row numbers (or a u8 tensor) to stop.
function Model:solve(batch, opts)
   handle(self)
   opts = opts or {}
   if type(batch) ~= "table" or batch.inputs == nil then
      error("solve: bad argument #1 (batch): expected a table with inputs (B,S i32)", 2)
   end
   local halt = opts.halt or "max"
   if halt ~= "max" and halt ~= "q" and type(halt) ~= "function" then
      error("solve: option 'halt' must be \"max\", \"q\" or a function, got " .. tostring(halt), 2)
   end
   local B = batch.inputs:size(1)
   local S, V = self.cfg.seq_len, self.cfg.vocab_size
   local max_steps = opts.max_steps or self.cfg.halt_max_steps
   local carry = self:carry(B)
   local active = Tensor.ones(B, "u8")
   local predictions = Tensor.zeros(B, S, "i32")
   local steps = Tensor.zeros(B, "i32")
   local q_halt, q_cont = Tensor.zeros(B), Tensor.zeros(B)
   local pa, pp, ps = active:data(), predictions:data(), steps:data()
   local qh, qc = q_halt:data(), q_cont:data()
   local input = { inputs = batch.inputs, puzzle_identifiers = batch.puzzle_identifiers }
   for seg = 1, max_steps do
      local out = self:step(carry, input, { train = false, active = active })
      local lg, oh, oc = out.logits:data(), out.q_halt_logits:data(), out.q_continue_logits:data()
      local any = false
      for r = 0, B - 1 do
         if pa[r] == 1 then
            ps[r] = seg
            qh[r], qc[r] = oh[r], oc[r]
            for s = 0, S - 1 do
               local base, best, arg = (r * S + s) * V, -math.huge, 0
               for v = 0, V - 1 do
                  if lg[base + v] > best then best, arg = lg[base + v], v end
               end
               pp[r * S + s] = arg
            end
            if halt == "q" and oh[r] > oc[r] then pa[r] = 0 end
         end
      end
      if type(halt) == "function" then
         local stop = halt({ segment = seg, predictions = predictions, steps = steps,
                             q_halt_logits = q_halt, q_continue_logits = q_cont, active = active })
         if Tensor.is_tensor(stop) then
            for r = 0, B - 1 do if stop:data()[r] ~= 0 then pa[r] = 0 end end
         elseif type(stop) == "table" then
            for _, r in ipairs(stop) do
               if r >= 1 and r <= B then pa[r - 1] = 0 end
            end
         end
      end
      for r = 0, B - 1 do any = any or pa[r] == 1 end
      if not any then break end
   end
   return { predictions = predictions, steps = steps, q_halt_logits = q_halt, q_continue_logits = q_cont }
end

-- ---- files ------------------------------------------------------------------------------------------

function Model:save_safetensors(path)
   if type(path) ~= "string" then error("save_safetensors: bad argument #1 (path): expected a string", 2) end
   if C.hrm_model_save_safetensors(handle(self), path) ~= 0 then
      return nil, ffi.string(C.hrm_last_error())
   end
   return true
end

function Model:load_safetensors(path)
   if type(path) ~= "string" then error("load_safetensors: bad argument #1 (path): expected a string", 2) end
   if C.hrm_model_load_safetensors(handle(self), path) ~= 0 then
      return nil, ffi.string(C.hrm_last_error())
   end
   return true
end

-- model:save(path) / hrm.Model.load(path [, opts]): weights and config in a .hrm file
-- (hrm.checkpoint holds the format; whole training states go through hrm.checkpoint.save).
function Model:save(path) return require("hrm.checkpoint").save_model(self, path) end
function Model.load(path, opts) return require("hrm.checkpoint").load_model(path, opts) end

function Model:__tostring()
   local c = self.cfg
   return string.format(
      "hrm.Model (%s, %.2fM parameters)\n  hidden %d, heads %d, expansion %g, H %dx%d layers, L %dx%d layers\n" ..
      "  halt_max_steps %d, exploration %g, %s positions, %s loss\n  vocab %d, seq_len %d, puzzle_emb_ndim %d x %d ids",
      self.device, self:num_parameters() / 1e6, c.hidden_size, c.num_heads, c.expansion, c.H_cycles,
      c.H_layers, c.L_cycles, c.L_layers, c.halt_max_steps, c.halt_exploration_prob, c.pos_encodings,
      c.loss, c.vocab_size, c.seq_len, c.puzzle_emb_ndim, c.num_puzzle_identifiers)
end

Model.Carry = Carry
return setmetatable(Model, { __call = function(_, ...) return new(...) end })
