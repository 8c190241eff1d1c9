-- hrm.Model — a model built from a Lua model file over hrm.nn modules, as a Torch-like object.
--
-- hrm.Model(cfg) picks the model file by cfg.arch ("hrm": lua/hrm/models/hrm.lua; or a path to
-- a user's model file), declares its modules into a parameter store and builds it.
-- model:step(carry, batch, opts) runs one ACT segment for every row (with the backward in
-- training) and returns the reference's losses and metrics; model:solve(batch, opts) runs the
-- inference loop with a halting policy ("max", "q", or a Lua function). Output tensors are
-- allocated once per batch size and refilled by every step: copy them (`:clone()`) to keep.
-- hrm.Model(cfg, {device = "cuda"}) keeps every tensor of the model in device memory (parameters,
-- gradients, optimizer state, carry, tape arena, step outputs): t:to("cpu") copies one to the
-- host; batches are host tensors, metrics and solve's results come back on the host.
local ffi = require "ffi"
local bit = require "bit"
local C = require "hrm.ffi"
local Tensor = require "hrm.Tensor"
local config = require "hrm.config"
local nn = require "hrm.nn"
local act = require "hrm.models.act"

local Model = {}
Model.__index = Model
local Carry = act.Carry

local function fail(level, fmt, ...) error(string.format(fmt, ...), level + 1) end

-- FNV-1a (64-bit) of a string, as 16 hex digits: names a model file's exact content.
local function content_hash(s)
   local h = 0xcbf29ce484222325ULL
   for i = 1, #s do h = bit.bxor(h, s:byte(i)) * 0x100000001b3ULL end
   return bit.tohex(h, 16)
end

-- The model file of cfg.arch: a built-in name or a path; returns the file's table and, for a
-- path, the hash of its content (which must match cfg.arch_hash when the config carries one).
local function load_arch(cfg, level)
   local arch = cfg.arch or "hrm"
   if arch:match("^[%w_]+$") then
      local ok, m = pcall(require, "hrm.models." .. arch)
      if not ok then
         fail(level, "hrm.Model: unknown arch '%s' (built in: hrm, trm, transformer), or a model file's path", arch)
      end
      return m, nil
   end
   local f = io.open(arch, "rb")
   if not f then fail(level, "hrm.Model: cannot read the model file '%s' (cfg.arch)", arch) end
   local src = f:read("*a")
   f:close()
   local hash = content_hash(src)
   if cfg.arch_hash and cfg.arch_hash ~= hash then
      fail(level, "hrm.Model: the model file '%s' has changed since this model was saved (content hash %s, " ..
           "saved %s)\n---> HINT: load it with the file it was trained with", arch, hash, cfg.arch_hash)
   end
   local chunk, err = load(src, "@" .. arch)
   if not chunk then fail(level, "hrm.Model: the model file '%s' does not compile: %s", arch, err) end
   local ok, m = pcall(chunk)
   if not ok or type(m) ~= "table" or type(m.build) ~= "function" or type(m.embed) ~= "function"
      or type(m.forward) ~= "function" then
      fail(level, "hrm.Model: the model file '%s' must return a table with build, embed and forward%s", arch,
           ok and "" or ": " .. tostring(m))
   end
   return m, hash
end

-- hrm.Model(cfg [, {device = "cpu", seed = n, empty = false}]); empty = true skips the random
-- init (every tensor zero), for models whose weights are loaded next.
local function new(cfg, opts)
   if type(cfg) ~= "table" then
      fail(2, "hrm.Model: bad argument #1 (cfg): expected a config table (hrm.config.hrm_v1{...}), got %s", type(cfg))
   end
   opts = opts or {}
   local full = config.complete(cfg)
   local c = config.to_c(full, 2)
   local device = opts.device or require("hrm").default_device()
   if device ~= "cpu" and device ~= "cuda" then
      fail(2, "hrm.Model: option 'device' must be \"cpu\" or \"cuda\", got %s", tostring(device))
   end
   local seed = opts.seed or 0
   if type(seed) ~= "number" or seed < 0 or seed ~= math.floor(seed) then
      fail(2, "hrm.Model: option 'seed' must be a non-negative integer, got %s", tostring(seed))
   end
   local arch, hash = load_arch(full, 3)
   local cfg_out = config.from_c(c)
   cfg_out.arch, cfg_out.arch_hash = full.arch, hash
   for _, k in ipairs(config.LUA_FIELDS) do cfg_out[k] = full[k] end
   local ok, store = pcall(nn.Store, { seed = seed, device = device })
   if not ok then error(store, 2) end
   local net = arch.build(cfg_out, store)
   store:build(not opts.empty)
   local self = setmetatable({ cfg = cfg_out, device = device, store = store, net = net, arch = arch }, Model)
   self.tape = nn.Tape(store)
   return self
end

local function handle(self)
   local s = rawget(self, "store")
   if s == nil then error("hrm.Model: the model was freed", 3) end
   return s
end

function Model:free()
   if rawget(self, "store") ~= nil then
      self.tape:free()
      self.store, self.net, self._work = nil, nil, nil
   end
end

function Model:config()
   local t = {}
   for k, v in pairs(self.cfg) do t[k] = v end
   return t
end

-- model:set_halting{max_steps = n, exploration_prob = p}: change the ACT controls (curricula).
function Model:set_halting(opts)
   if type(opts) ~= "table" then fail(2, "set_halting: expected a table {max_steps, exploration_prob}") end
   local n = opts.max_steps or self.cfg.halt_max_steps
   local p = opts.exploration_prob or self.cfg.halt_exploration_prob
   if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
      fail(2, "set_halting: halt_max_steps = %s must be >= 1", tostring(n))
   end
   if type(p) ~= "number" or p < 0 or p > 1 then
      fail(2, "set_halting: exploration probability %s must be in [0, 1]", tostring(p))
   end
   self.cfg.halt_max_steps, self.cfg.halt_exploration_prob = n, p
end

function Model:num_parameters() return handle(self):num_parameters() end

-- params, grads, names (nn.Module:parameters); buffers and the sparse table are not included.
function Model:parameters()
   local store = handle(self)
   local params, grads, names = {}, {}, {}
   for i = 0, store:count() - 1 do
      local name, value, grad, kind = store:entry(i, true)
      if kind == "param" then
         params[#params + 1], grads[#grads + 1], names[#names + 1] = value, grad, name
      end
   end
   return params, grads, names
end

-- All tensor names (parameters and persistent buffers) in state-dict order.
function Model:tensor_names() return handle(self):names() end

-- model:tensor(name) -> value view, grad view (nil for buffers).
function Model:tensor(name)
   local store = handle(self)
   if type(name) ~= "string" then fail(2, "tensor: bad argument #1 (name): expected a string, got %s", type(name)) end
   if C.hrm_params_find(store._h, name) < 0 then
      fail(2, "tensor: the model has no tensor named '%s'\n---> HINT: model:tensor_names() lists them", name)
   end
   return store:tensor(name)
end

function Model:zero_grad() handle(self):zero_grad() end
Model.zeroGradParameters = Model.zero_grad

-- The exploration RNG state as {seed, counter} (checkpoints save it).
function Model:rng_state()
   local r = handle(self):rng()
   return { seed = tonumber(r.seed), counter = tonumber(r.counter) }
end

function Model:set_rng_state(s)
   local r = handle(self):rng()
   r.seed, r.counter = s.seed, s.counter
end

-- ---- carry and step ---------------------------------------------------------------------------

-- model:carry(B): the ACT state of B rows (all halted, so the first step resets every row).
function Model:carry(B)
   handle(self)
   if type(B) ~= "number" or B < 1 or B ~= math.floor(B) then
      fail(2, "carry: bad argument #1 (batch size): expected a positive integer, got %s", tostring(B))
   end
   return act.new_carry(self, B)
end

Model.metric_names = act.METRICS

local function batch_tensor(batch, key, dims, required)
   local t = batch[key]
   if t == nil then
      if required then fail(4, "step: batch.%s is missing", key) end
      return nil
   end
   if not Tensor.is_tensor(t) then
      fail(4, "step: batch.%s must be an hrm.Tensor, got %s", key, type(t))
   end
   if t:dtype() ~= "i32" then
      fail(4, "step: batch.%s must be i32, got %s\n---> HINT: t:to(\"i32\")", key, t:dtype())
   end
   if t:device() ~= "cpu" then
      fail(4, "step: batch.%s must be a host tensor (the step stages it)\n---> HINT: t:to(\"cpu\")", key)
   end
   local size = t:size()
   local ok = #size == #dims
   for i = 1, #dims do ok = ok and size[i] == dims[i] end
   if not ok then
      fail(4, "step: batch.%s has shape {%s}, expected {%s}", key, table.concat(size, ","), table.concat(dims, ","))
   end
   return ffi.cast("const int32_t *", t:cdata().data)
end

local batch_buf = ffi.new("hrm_batch")

local function fill_batch(self, carry, batch, need_labels)
   if type(batch) ~= "table" then
      fail(3, "step: bad argument #2 (batch): expected a table {inputs, labels, puzzle_identifiers}")
   end
   local B, S = carry.B, self.cfg.seq_len
   local b = batch_buf
   b.B = B
   b.inputs = batch_tensor(batch, "inputs", { B, S }, true)
   b.labels = batch_tensor(batch, "labels", { B, S }, need_labels)
   b.puzzle_ids = batch_tensor(batch, "puzzle_identifiers", { B }, false)
   return b
end

-- model:step(carry, batch, {train = bool, global_batch = n, active = u8 tensor, row_offset = n})
-- -> outputs: {logits, q_halt_logits, q_continue_logits} (the carry's output tensors) and the
-- reference's batch sums (loss, lm_loss, q_halt_loss, q_continue_loss, accuracy, exact_accuracy,
-- q_halt_accuracy, steps, count). Training accumulates the gradient of loss / global_batch.
-- row_offset (default 0) is the global row of the carry's first row: exploration draws are
-- keyed by (seed, step, global row), so a batch split across calls or processes draws as one.
function Model:step(carry, batch, opts)
   handle(self)
   if getmetatable(carry) ~= Carry or carry.model ~= self then
      fail(2, "step: bad argument #1 (carry): expected a carry made by this model's :carry(B)")
   end
   opts = opts or {}
   local b = fill_batch(self, carry, batch, opts.train)
   if opts.active ~= nil then
      if opts.train then fail(2, "step: option 'active' is for evaluation only (train = true)") end
      if not Tensor.is_tensor(opts.active) or opts.active:dtype() ~= "u8" or opts.active:numel() ~= carry.B then
         fail(2, "step: option 'active' must be a u8 tensor of the batch size")
      end
   end
   if opts.global_batch ~= nil and (type(opts.global_batch) ~= "number" or opts.global_batch < 0) then
      fail(2, "step: option 'global_batch' must be a number >= 0, got %s", tostring(opts.global_batch))
   end
   local ro = opts.row_offset
   if ro ~= nil and (type(ro) ~= "number" or ro < 0 or ro % 1 ~= 0) then
      fail(2, "step: option 'row_offset' must be an integer >= 0, got %s", tostring(ro))
   end
   return act.step(self, carry, b, opts)
end

-- ---- inference with a halting policy ---------------------------------------------------------------

local n_active = ffi.new("int32_t[1]")

-- The rows a policy function asked to stop, applied to active (B) u8.
local function apply_stop(stop, active, B)
   local pa = active:data()
   if stop == nil or stop == false then return end
   if stop == true then
      for r = 0, B - 1 do pa[r] = 0 end
   elseif Tensor.is_tensor(stop) then
      if stop:dtype() ~= "u8" or stop:numel() ~= B then
         fail(4, "solve: a halting function returned a %s tensor of %d elements; expected u8 of the batch size %d",
              stop:dtype(), stop:numel(), B)
      end
      local ps = stop:data()
      for r = 0, B - 1 do if ps[r] ~= 0 then pa[r] = 0 end end
   elseif type(stop) == "table" then
      for i, r in ipairs(stop) do
         if type(r) == "boolean" then
            if r and i <= B then pa[i - 1] = 0 end
         elseif type(r) == "number" and r == math.floor(r) and r >= 1 and r <= B then
            pa[r - 1] = 0
         else
            fail(4, "solve: a halting function returned row %s at [%d]; expected row numbers 1..%d or booleans",
                 tostring(r), i, B)
         end
      end
   else
      fail(4, "solve: a halting function returned a %s; expected nil, a boolean, a table of row numbers or " ..
           "booleans, or a u8 tensor of the batch size", type(stop))
   end
end

-- model:solve(batch, {halt = "max"|"q"|fn, max_steps = n}) with batch = {inputs [, puzzle_identifiers]}.
-- fn(info) receives {segment, predictions (B,S i32), steps, q_halt_logits, q_continue_logits,
-- active (u8)} and returns the rows to stop: a table of 1-based row numbers or of booleans, a
-- boolean (every row), or a u8 tensor of B rows.
function Model:solve(batch, opts)
   handle(self)
   opts = opts or {}
   if type(batch) ~= "table" or not Tensor.is_tensor(batch.inputs) then
      fail(2, "solve: bad argument #1 (batch): expected a table with inputs (B,S i32)")
   end
   local halt = opts.halt or "max"
   if halt ~= "max" and halt ~= "q" and type(halt) ~= "function" then
      fail(2, "solve: option 'halt' must be \"max\", \"q\" or a function, got %s", tostring(halt))
   end
   local B = batch.inputs:size(1)
   local S = self.cfg.seq_len
   local max_steps = opts.max_steps or self.cfg.halt_max_steps
   local carry = self:carry(B)
   local function new(t) return t:to(self.device) end  -- the bookkeeping lives with the carry
   local active = new(Tensor.ones(B, "u8"))
   local predictions = new(Tensor.zeros(B, S, "i32"))
   local steps = new(Tensor.zeros(B, "i32"))
   local q_halt, q_cont = new(Tensor.zeros(B)), new(Tensor.zeros(B))
   local input = { inputs = batch.inputs, puzzle_identifiers = batch.puzzle_identifiers }
   for seg = 1, max_steps do
      local out = self:step(carry, input, { train = false, active = active })
      if C.hrm_act_solve_update(n_active, predictions:cdata(), steps:cdata(), q_halt:cdata(), q_cont:cdata(),
                                active:cdata(), out.logits:cdata(), out.q_halt_logits:cdata(),
                                out.q_continue_logits:cdata(), seg,
                                halt ~= "q" and 0 or act.options(self).rule == C.HRM_HALT_POSITIVE and 2 or 1) ~= 0 then
         fail(2, "solve: %s", ffi.string(C.hrm_last_error()))
      end
      local left = n_active[0]
      if type(halt) == "function" then  -- the policy sees host tensors (the same ones on the CPU)
         local host_active = active:to("cpu")
         apply_stop(halt({ segment = seg, predictions = predictions:to("cpu"), steps = steps:to("cpu"),
                           q_halt_logits = q_halt:to("cpu"), q_continue_logits = q_cont:to("cpu"),
                           active = host_active }), host_active, B)
         active:copy(host_active)
         left = 0
         local pa = host_active:data()
         for r = 0, B - 1 do left = left + pa[r] end
      end
      if left == 0 then break end
   end
   return { predictions = predictions:to("cpu"), steps = steps:to("cpu"), q_halt_logits = q_halt:to("cpu"),
            q_continue_logits = q_cont:to("cpu") }
end

-- ---- files ------------------------------------------------------------------------------------------

function Model:save_safetensors(path)
   if type(path) ~= "string" then fail(2, "save_safetensors: bad argument #1 (path): expected a string") end
   if C.hrm_params_save_safetensors(handle(self)._h, path) ~= 0 then
      return nil, ffi.string(C.hrm_last_error())
   end
   return true
end

function Model:load_safetensors(path)
   if type(path) ~= "string" then fail(2, "load_safetensors: bad argument #1 (path): expected a string") end
   if C.hrm_params_load_safetensors(handle(self)._h, path) ~= 0 then
      return nil, ffi.string(C.hrm_last_error())
   end
   return true
end

-- model:save(path) / hrm.Model.load(path [, opts]): weights and config in a .hrm file
-- (hrm.checkpoint holds the format; whole training states go through hrm.checkpoint.save).
function Model:save(path) return require("hrm.checkpoint").save_model(self, path) end
function Model.load(path, opts) return require("hrm.checkpoint").load_model(path, opts) end

function Model:__tostring()
   if rawget(self, "store") == nil then return "hrm.Model (freed)" end
   local c = self.cfg
   local lines = { string.format(
      "hrm.Model %s (%s, %.2fM parameters)\n  hidden %d, heads %d, expansion %g, H %dx%d layers, L %dx%d layers\n" ..
      "  halt_max_steps %d, exploration %g, %s positions, %s loss\n  vocab %d, seq_len %d, puzzle_emb_ndim %d x %d ids",
      c.arch, self.device, self:num_parameters() / 1e6, c.hidden_size, c.num_heads, c.expansion, c.H_cycles,
      c.H_layers, c.L_cycles, c.L_layers, c.halt_max_steps, c.halt_exploration_prob, c.pos_encodings,
      c.loss, c.vocab_size, c.seq_len, c.puzzle_emb_ndim, c.num_puzzle_identifiers) }
   for _, k in ipairs(self.net.modules or {}) do
      if self.net[k] then lines[#lines + 1] = self.net[k]:describe("  ") end
   end
   return table.concat(lines, "\n")
end

Model.Carry = Carry
return setmetatable(Model, { __call = function(_, ...) return new(...) end })
