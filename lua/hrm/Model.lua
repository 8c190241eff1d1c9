-- hrm.Model — a model built from a Lua model file over hrm.nn modules, as a Torch-like object.
--
-- hrm.Model(cfg) picks the model file by cfg.arch ("hrm": lua/hrm/models/hrm.lua; or a path to
-- a user's model file), declares its modules into a parameter store and builds it.
-- model:step(carry, batch, opts) runs one ACT segment for every row (with the backward in
-- training) and returns the reference's losses and metrics; model:solve(inputs, opts) runs the
-- inference loop with a halting policy ("max", "q", or a Lua function). Token ids come as i32
-- tensors or Lua tables of rows (puzzle strings go through task:solve). Output tensors are
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
   if cfg_out.forward_dtype == "bfloat16" and device ~= "cpu" then
      fail(2, "hrm.Model: forward_dtype \"bfloat16\" runs on the CPU only, not on %s\n" ..
           "---> HINT: forward_dtype = \"float32\" on CUDA", device)
   end
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

local INTEGER_DTYPES = { i32 = true, u8 = true, i64 = true }

-- A row given as an FFI array of exactly S uint8/int32 ids (what a task's encode returns) as a
-- Lua table; anything else is returned as is.
local function cdata_row(row, S)
   local kind = tostring(ffi.typeof(row))
   local elem = kind:match("^ctype<unsigned char %[") and 1 or kind:match("^ctype<int %[") and 4
   local bytes = elem and ffi.sizeof(row)
   if not bytes or bytes ~= S * elem then return row end
   local t = {}
   for k = 1, S do t[k] = row[k - 1] end
   return t
end

-- Token ids as a (B, S) i32 tensor, from a tensor (other integer dtypes are converted; one row
-- may be 1-D) or a Lua table of rows (tables or FFI arrays of S ids; or one row of numbers).
-- `what` names the argument in errors ("solve: bad argument #1 (inputs)"); level is the error
-- level of the public caller; vocab (optional) bounds the ids.
local function token_tensor(x, S, what, level, vocab)
   if Tensor.is_tensor(x) then
      if not INTEGER_DTYPES[x:dtype()] then
         fail(level + 1, "%s: expected integer token ids (i32), got a %s tensor\n---> HINT: t:to(\"i32\")", what, x:dtype())
      end
      local size = x:size()
      if #size == 1 and size[1] == S then x, size = x:view(1, S), { 1, S } end
      if #size ~= 2 or size[2] ~= S then
         fail(level + 1, "%s: a tensor of shape {%s}, expected (B, %d): rows of seq_len token ids", what,
              table.concat(size, ","), S)
      end
      return x:dtype() == "i32" and x or x:to("i32")
   end
   if type(x) == "string" then
      fail(level + 1, "%s: got a string; puzzle strings go through a task adapter: task:solve(model, puzzles)", what)
   end
   if type(x) ~= "table" or #x == 0 then
      fail(level + 1, "%s: expected a (B, %d) tensor of token ids or a Lua table of rows, got %s", what, S,
           type(x) == "table" and "an empty table" or type(x))
   end
   local rows = type(x[1]) == "number" and { x } or x
   local t = Tensor.zeros(#rows, S, "i32")
   local p = t:data()
   for r, row in ipairs(rows) do
      row = type(row) == "cdata" and cdata_row(row, S) or row
      if type(row) == "string" then
         fail(level + 1, "%s: row %d is a string; puzzle strings go through a task adapter: task:solve(model, puzzles)",
              what, r)
      end
      if type(row) ~= "table" or #row ~= S then
         fail(level + 1, "%s: row %d %s, expected a table of %d (seq_len) token ids", what, r,
              type(row) == "table" and "has " .. #row .. " entries" or "is a " .. type(row), S)
      end
      for k = 1, S do
         local v = row[k]
         if type(v) ~= "number" or v ~= math.floor(v) or (vocab and (v < 0 or v >= vocab)) then
            fail(level + 1, "%s: row %d, position %d is %s, expected a token id%s", what, r, k, tostring(v),
                 vocab and string.format(" in 0..%d", vocab - 1) or "")
         end
         p[(r - 1) * S + k - 1] = v
      end
   end
   return t
end

-- The batch field `key` as an i32 tensor of shape dims (nil when absent and not required).
local function batch_tensor(batch, key, dims, required, vocab)
   local t = batch[key]
   if t == nil then
      if required then fail(4, "step: bad argument #2 (batch): batch.%s is missing", key) end
      return nil
   end
   local what = "step: bad argument #2 (batch): batch." .. key
   if #dims == 2 then
      t = token_tensor(t, dims[2], what, 4, vocab)
   elseif not Tensor.is_tensor(t) then
      if type(t) ~= "table" then fail(4, "%s: expected an i32 tensor or a list of %d ids, got %s", what, dims[1], type(t)) end
      local ok, tt = pcall(Tensor.new, t, "i32")
      if not ok then fail(4, "%s: expected a list of %d integer ids", what, dims[1]) end
      t = tt
   elseif t:dtype() ~= "i32" then
      if not INTEGER_DTYPES[t:dtype()] then fail(4, "%s: expected i32 ids, got %s", what, t:dtype()) end
      t = t:to("i32")
   end
   if t:device() ~= "cpu" then
      fail(4, "step: batch.%s must be a host tensor (the step stages it)\n---> HINT: t:to(\"cpu\")", key)
   end
   local size = t:size()
   local ok = #size == #dims
   for i = 1, #dims do ok = ok and size[i] == dims[i] end
   if not ok then
      fail(4, "%s has shape {%s}, expected {%s}", what, table.concat(size, ","), table.concat(dims, ","))
   end
   return t
end

local batch_buf = ffi.new("hrm_batch")
local batch_keep = {} -- tensors converted for the current step (alive until it returns)

local function fill_batch(self, carry, batch, need_labels)
   if type(batch) ~= "table" or Tensor.is_tensor(batch) then
      fail(3, "step: bad argument #2 (batch): expected a table {inputs, labels, puzzle_identifiers}, got %s",
           Tensor.is_tensor(batch) and "a tensor" or type(batch))
   end
   local B, S = carry.B, self.cfg.seq_len
   local b = batch_buf
   b.B = B
   local inputs = batch_tensor(batch, "inputs", { B, S }, true, self.cfg.vocab_size)
   local labels = batch_tensor(batch, "labels", { B, S }, need_labels)
   local ids = batch_tensor(batch, "puzzle_identifiers", { B }, false)
   batch_keep[1], batch_keep[2], batch_keep[3] = inputs, labels, ids
   b.inputs = ffi.cast("const int32_t *", inputs:cdata().data)
   b.labels = labels and ffi.cast("const int32_t *", labels:cdata().data) or nil
   b.puzzle_ids = ids and ffi.cast("const int32_t *", ids:cdata().data) or nil
   return b
end

local noted_slow_bf16 = false  -- the note on CPUs without bf16 instructions is printed once

-- fn(...) with the model's forward in its forward_dtype: for "bfloat16", bf16 GEMMs over weights
-- cast to bf16 once for the whole call (one step, or one solve of many segments); the previous
-- GEMM precision comes back afterwards, error or not.
local function in_precision(self, fn, ...)
   if self.cfg.forward_dtype ~= "bfloat16" or rawget(self, "_in_bf16") then return fn(...) end
   local h = handle(self)._h
   if not noted_slow_bf16 and ffi.string(C.hrm_bf16_isa()) == "none" then
      noted_slow_bf16 = true
      io.stderr:write("hrm: note: this CPU has neither AMX nor AVX-512 BF16: forward_dtype bfloat16 runs " ..
                      "through conversions here and is slower than float32\n")
   end
   local prev = C.hrm_get_gemm_dtype()
   if C.hrm_params_set_precision(h, C.HRM_DTYPE_BF16) ~= 0 then
      fail(3, "hrm.Model: forward_dtype bfloat16: %s", require("hrm.errors").last())
   end
   self._in_bf16 = true
   local ok, out = pcall(fn, ...)
   self._in_bf16 = nil
   C.hrm_params_set_precision(h, C.HRM_DTYPE_F32)
   if prev ~= C.HRM_DTYPE_F32 then C.hrm_set_gemm_dtype(prev) end
   if not ok then error(out, 0) end
   return out
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
   if type(opts) ~= "table" then fail(2, "step: bad argument #3 (opts): expected a table, got %s", type(opts)) end
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
   local out = in_precision(self, act.step, self, carry, b, opts)
   batch_keep[1], batch_keep[2], batch_keep[3] = nil, nil, nil
   return out
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

-- model:solve(inputs, {halt = "max"|"q"|fn, max_steps = n}); inputs: a (B, S) tensor of token
-- ids, a Lua table of rows, or a batch {inputs = either [, puzzle_identifiers]}. fn(info) receives
-- {segment, predictions (B,S i32), steps, q_halt_logits, q_continue_logits, active (u8)} and
-- returns the rows to stop: a table of 1-based row numbers or of booleans, a boolean (every
-- row), or a u8 tensor of B rows (help "Model:solve" documents it).
function Model:solve(batch, opts)
   return in_precision(self, Model._solve, self, batch, opts)
end

function Model._solve(self, batch, opts)
   handle(self)
   opts = opts or {}
   if type(opts) ~= "table" then fail(2, "solve: bad argument #2 (opts): expected a table, got %s", type(opts)) end
   local S = self.cfg.seq_len
   local pids
   if type(batch) == "table" and batch.inputs ~= nil then
      pids = batch.puzzle_identifiers
      batch = token_tensor(batch.inputs, S, "solve: bad argument #1 (batch.inputs)", 2, self.cfg.vocab_size)
   else
      batch = token_tensor(batch, S, "solve: bad argument #1 (inputs)", 2, self.cfg.vocab_size)
   end
   local halt = opts.halt or "max"
   if halt == "verify" then
      fail(2, "solve: option 'halt' = \"verify\" needs a task that checks answers\n" ..
           "---> HINT: task:solve(model, puzzles, {halt = \"verify\"}) (sudoku, maze)")
   end
   if halt ~= "max" and halt ~= "q" and type(halt) ~= "function" then
      fail(2, "solve: option 'halt' must be \"max\", \"q\" or a function, got %s", tostring(halt))
   end
   if opts.max_steps ~= nil and (type(opts.max_steps) ~= "number" or opts.max_steps < 1
                                 or opts.max_steps ~= math.floor(opts.max_steps)) then
      fail(2, "solve: option 'max_steps' must be a whole number >= 1, got %s", tostring(opts.max_steps))
   end
   batch = { inputs = batch, puzzle_identifiers = pids }
   local B = batch.inputs:size(1)
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
      return nil, require("hrm.errors").last()
   end
   return true
end

function Model:load_safetensors(path)
   if type(path) ~= "string" then fail(2, "load_safetensors: bad argument #1 (path): expected a string") end
   if C.hrm_params_load_safetensors(handle(self)._h, path) ~= 0 then
      return nil, require("hrm.errors").last()
   end
   return true
end

-- model:save(path): weights and config in a .hrm file. hrm.Model.load(path [, opts]) -> model, info:
-- the one way to load a model, from a run directory, a .hrm file (model file or training
-- checkpoint) or a .safetensors file (hrm.checkpoint.load_model holds the rules).
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
