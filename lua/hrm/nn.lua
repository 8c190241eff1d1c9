-- hrm.nn — the modules a model composes (C: core/module.c), their parameter store and the tape.
--
--    local nn = require "hrm.nn"
--    local store = nn.Store{ seed = 0 }
--    local block = nn.Block(store, "blk", { hidden_size = 64, num_heads = 4, tokens = 16 })
--    local head  = nn.Linear(store, "head", 64, 10)
--    store:build()                                -- allocate and initialise every tensor once
--    local y = head(block(hrm.Tensor.randn(2, 16, 64)))        -- untaped calls (REPL use)
--    local tape = nn.Tape(store)
--    local h = tape:call(block, x)                -- a call whose activations are kept
--    local out = tape:call(head, h)
--    tape:backward({ out }, { dout })             -- parameter gradients += ; tape:grad(h)
--
-- Calls own activations, not modules: the same module may be called many times through a tape
-- (its weight gradients accumulate). A call's output is a view of the tape's arena, valid until
-- tape:reset(). `module:forward(out, ...)` writes into `out` and keeps nothing.
local ffi = require "ffi"
local C = require "hrm.ffi"
local errors = require "hrm.errors"
local Tensor = require "hrm.Tensor"

local nn = {}

local function fail(level, fmt, ...) error(string.format(fmt, ...), level + 1) end

local function check(rc, level)
   if rc ~= 0 then error(errors.last(), (level or 1) + 1) end
end

local tensor_out = ffi.new("hrm_tensor *[1]")
local inputs_buf = ffi.new("const hrm_tensor *[8]")
local shape_buf = ffi.new("int64_t[4]")
local ndim_buf = ffi.new("int32_t[1]")

-- ---- the store ------------------------------------------------------------------------------------

local Store = {}
Store.__index = Store
nn.StoreClass = Store

local INIT = { zero = 0, const = 1, trunc_normal = 2, lecun = 3 }
local KIND_NAMES = { [0] = "param", "buffer", "sparse" }

-- nn.Store{seed = 0, device = "cpu"}
function nn.Store(opts)
   opts = opts or {}
   if type(opts) ~= "table" then fail(2, "nn.Store: bad argument #1 (opts): expected a table, got %s", type(opts)) end
   local seed = opts.seed or 0
   if type(seed) ~= "number" or seed < 0 or seed ~= math.floor(seed) then
      fail(2, "nn.Store: option 'seed' must be a non-negative integer, got %s", tostring(seed))
   end
   local device = opts.device or "cpu"
   if device ~= "cpu" and device ~= "cuda" then
      fail(2, "nn.Store: option 'device' must be \"cpu\" or \"cuda\", got %s", tostring(device))
   end
   local out = ffi.new("hrm_params *[1]")
   check(C.hrm_params_new(out, seed, device == "cuda" and 1 or 0), 2)
   return setmetatable({ _h = ffi.gc(out[0], C.hrm_params_free), device = device }, Store)
end

function Store:handle()
   local h = rawget(self, "_h")
   if h == nil then error("nn.Store: the store was freed", 3) end
   return h
end

-- store:buffer(name, {d1, ...}, {init = "trunc_normal" | "zero" | "const", std = s, value = v}):
-- a persistent tensor that is not trained by the optimizer (e.g. H_init). Returns its name.
function Store:buffer(name, shape, opts)
   opts = opts or {}
   if type(name) ~= "string" then fail(2, "buffer: bad argument #1 (name): expected a string, got %s", type(name)) end
   if type(shape) ~= "table" or #shape < 1 or #shape > 4 then
      fail(2, "buffer: bad argument #2 (shape): expected a table of 1 to 4 sizes")
   end
   local init = INIT[opts.init or "zero"]
   if init == nil then fail(2, "buffer: option 'init' must be zero, const, trunc_normal or lecun, got %s", tostring(opts.init)) end
   for i, n in ipairs(shape) do shape_buf[i - 1] = n end
   check(C.hrm_params_declare(nil, self:handle(), name, 1, #shape, shape_buf, init,
                              opts.std or opts.value or 0), 2)
   return name
end

-- store:build([init = true]): allocate every declared tensor once and apply the init rules in
-- declaration order (init = false leaves zeros, for weights loaded next).
function Store:build(init)
   check(C.hrm_params_build(self:handle(), init == false and 0 or 1), 2)
   return self
end

function Store:built() return C.hrm_params_built(self:handle()) == 1 end
function Store:num_parameters() return tonumber(C.hrm_params_num_parameters(self:handle())) end
function Store:zero_grad() check(C.hrm_params_zero_grad(self:handle()), 2) end
function Store:sparse_pending() return C.hrm_params_sparse_pending(self:handle()) end

-- ids (U) i32, grads (U, E): copies of the sparse table's pending gradient rows (one per batch
-- row of each backward since the last optimizer step).
function Store:sparse_rows()
   local ids, grads = ffi.new("hrm_tensor *[1]"), ffi.new("hrm_tensor *[1]")
   check(C.hrm_params_sparse_rows(ids, grads, self:handle()), 2)
   return Tensor._wrap(ids[0]), Tensor._wrap(grads[0])
end

local name_out = ffi.new("const char *[1]")
local value_out = ffi.new("hrm_tensor *[1]")
local grad_out = ffi.new("hrm_tensor *[1]")
local kind_out = ffi.new("int32_t[1]")

-- (name, value view, grad view or nil, kind "param"|"buffer"|"sparse") of tensor i (0-based).
function Store:entry(i, with_tensors)
   local h = self:handle()
   if with_tensors then
      check(C.hrm_params_tensor(h, i, name_out, value_out, grad_out, kind_out), 3)
      local grad = grad_out[0] ~= nil and Tensor._wrap(grad_out[0]) or nil
      return ffi.string(name_out[0]), Tensor._wrap(value_out[0]), grad, KIND_NAMES[kind_out[0]]
   end
   check(C.hrm_params_tensor(h, i, name_out, nil, nil, kind_out), 3)
   return ffi.string(name_out[0]), nil, nil, KIND_NAMES[kind_out[0]]
end

function Store:count() return C.hrm_params_count(self:handle()) end

-- Every tensor name in declaration order (the state-dict order).
function Store:names()
   local t = {}
   for i = 0, self:count() - 1 do t[#t + 1] = (self:entry(i)) end
   return t
end

-- store:tensor(name) -> value view, grad view (nil for buffers and the sparse table)
function Store:tensor(name)
   if type(name) ~= "string" then fail(2, "tensor: bad argument #1 (name): expected a string, got %s", type(name)) end
   local i = C.hrm_params_find(self:handle(), name)
   if i < 0 then
      fail(2, "tensor: the model has no tensor named '%s'\n---> HINT: model:tensor_names() lists them", name)
   end
   local _, value, grad = self:entry(i, true)
   return value, grad
end

function Store:rng() return C.hrm_params_rng(self:handle()) end

-- ---- modules ----------------------------------------------------------------------------------------

local Module = {}
nn.Module = Module

local function is_module(x) return type(x) == "table" and getmetatable(x) and getmetatable(x).__module end
nn.is_module = is_module

local function module_handle(m, level)
   local h = rawget(m, "_h")
   if h == nil then error(string.format("%s '%s': the module was freed", m.kind, m.name), level + 1) end
   return h
end

local function store_arg(store, fname)
   if getmetatable(store) ~= Store then
      fail(3, "%s: bad argument #1 (store): expected an nn.Store, got %s", fname, type(store))
   end
   return store:handle()
end

local function name_arg(name, fname)
   if type(name) ~= "string" then fail(3, "%s: bad argument #2 (name): expected a string, got %s", fname, type(name)) end
end

local function int_arg(v, what, fname, min)
   if type(v) ~= "number" or v ~= math.floor(v) or v < (min or 1) then
      fail(3, "%s: %s must be an integer >= %d, got %s", fname, what, min or 1, tostring(v))
   end
   return v
end

-- The metatable of one module class: calling an instance runs it untaped into a new tensor.
local function class(kind)
   local cls = { kind = kind }
   cls.__index = function(self, k)
      local v = cls[k]
      if v ~= nil then return v end
      return Module[k]
   end
   cls.__module = true
   cls.__call = function(self, ...) return self:apply(...) end
   cls.__tostring = function(self) return self:describe("") end
   return cls
end

local function wrap_module(h, fields, cls)
   fields._h = ffi.gc(h, C.hrm_module_free)
   return setmetatable(fields, cls)
end

local function inputs_of(self, fname, ...)
   local n = select("#", ...)
   if n < 1 or n > 8 then fail(3, "%s '%s': expected 1 to 8 input tensors, got %d", fname, self.name, n) end
   for i = 1, n do
      local x = select(i, ...)
      if not Tensor.is_tensor(x) then
         fail(3, "%s '%s': bad argument #%d: expected an hrm.Tensor, got %s", fname, self.name, i, type(x))
      end
      local p = x.p
      if p == nil then fail(3, "%s '%s': input %d was freed", fname, self.name, i) end
      inputs_buf[i - 1] = p
   end
   return n
end

-- module:forward(out, inputs...): run untaped into out (which may be one of the inputs).
function Module:forward(out, ...)
   local h = module_handle(self, 2)
   if not Tensor.is_tensor(out) then
      fail(2, "forward '%s': bad argument #1 (out): expected an hrm.Tensor, got %s", self.name, type(out))
   end
   local n = inputs_of(self, "forward", ...)
   check(C.hrm_module_forward(h, out:cdata(), n, inputs_buf), 2)
   return out
end

-- The output shape for these inputs, as a table.
function Module:output_size(...)
   local h = module_handle(self, 2)
   local n = inputs_of(self, "output_size", ...)
   check(C.hrm_module_output_shape(ndim_buf, shape_buf, h, n, inputs_buf), 2)
   local dims = {}
   for i = 0, ndim_buf[0] - 1 do dims[i + 1] = tonumber(shape_buf[i]) end
   return dims
end

-- module(inputs...): a new output tensor on the store's device (allocates: for the REPL and
-- tests, not hot loops).
function Module:apply(...)
   local out = Tensor.zeros(self:output_size(...)):to(self.store.device)
   return self:forward(out, ...)
end

function Module:num_parameters() return tonumber(C.hrm_module_num_parameters(module_handle(self, 2))) end

-- Frees the C object of a Lua wrapper now rather than at collection.
local function release(self, free)
   local h = rawget(self, "_h")
   if h ~= nil then
      self._h = nil
      free(ffi.gc(h, nil))
   end
end

function Module:free() release(self, C.hrm_module_free) end

local function count_text(n)
   if n >= 1e6 then return string.format("%.2fM", n / 1e6) end
   if n >= 1e3 then return string.format("%.1fk", n / 1e3) end
   return tostring(n)
end

function Module:describe(indent)
   if rawget(self, "_h") == nil then return indent .. self.kind .. " (freed)" end
   local line = string.format("%s%s %s%s, %s parameters", indent, self.kind, self.name ~= "" and self.name .. " " or "",
                              self:shape_text(), count_text(self:num_parameters()))
   local kids = {}
   for _, c in ipairs(self.children or {}) do kids[#kids + 1] = c:describe(indent .. "  ") end
   if #kids == 0 then return line end
   return line .. "\n" .. table.concat(kids, "\n")
end

-- nn.Embedding(store, name, rows, dim [, {std = 1/sqrt(dim)}]): ids -> rows of a table.
local Embedding = class("nn.Embedding")
function nn.Embedding(store, name, rows, dim, opts)
   local sh = store_arg(store, "nn.Embedding")
   name_arg(name, "nn.Embedding")
   int_arg(rows, "rows", "nn.Embedding")
   int_arg(dim, "dim", "nn.Embedding")
   opts = opts or {}
   local out = ffi.new("hrm_module *[1]")
   check(C.hrm_module_embedding(out, sh, name, rows, dim, opts.std or 1 / math.sqrt(dim)), 2)
   return wrap_module(out[0], { name = name, store = store, rows = rows, dim = dim }, Embedding)
end
function Embedding:shape_text() return string.format("(%d x %d)", self.rows, self.dim) end

-- nn.PuzzleEmbedding(store, name, rows, dim): the sparse table (zero init, sign-SGD rows).
local PuzzleEmbedding = class("nn.PuzzleEmbedding")
function nn.PuzzleEmbedding(store, name, rows, dim)
   local sh = store_arg(store, "nn.PuzzleEmbedding")
   name_arg(name, "nn.PuzzleEmbedding")
   int_arg(rows, "rows", "nn.PuzzleEmbedding")
   int_arg(dim, "dim", "nn.PuzzleEmbedding")
   local out = ffi.new("hrm_module *[1]")
   check(C.hrm_module_puzzle_embedding(out, sh, name, rows, dim), 2)
   return wrap_module(out[0], { name = name, store = store, rows = rows, dim = dim }, PuzzleEmbedding)
end
PuzzleEmbedding.shape_text = Embedding.shape_text

-- nn.InputEmbedding{tokens = emb, positions = emb|nil, puzzle = puzzle_emb|nil, prefix = P,
-- scale = s}: (B, S) ids [, (B) puzzle ids] -> (B, P + S, D), the reference's input embedding.
local InputEmbedding = class("nn.InputEmbedding")
function nn.InputEmbedding(opts)
   if type(opts) ~= "table" then fail(2, "nn.InputEmbedding: expected a table {tokens, positions, puzzle, prefix, scale}") end
   local function mod(x, what, kind)
      if x == nil then return nil end
      if not is_module(x) or x.kind ~= kind then fail(3, "nn.InputEmbedding: '%s' must be an %s", what, kind) end
      return module_handle(x, 3)
   end
   local tok = mod(opts.tokens, "tokens", "nn.Embedding")
   if tok == nil then fail(2, "nn.InputEmbedding: 'tokens' (an nn.Embedding) is required") end
   local out = ffi.new("hrm_module *[1]")
   check(C.hrm_module_input_embedding(out, tok, mod(opts.positions, "positions", "nn.Embedding"),
                                      mod(opts.puzzle, "puzzle", "nn.PuzzleEmbedding"), opts.prefix or 0,
                                      opts.scale or 1), 2)
   local kids = {}
   for _, k in ipairs({ "tokens", "positions", "puzzle" }) do if opts[k] then kids[#kids + 1] = opts[k] end end
   return wrap_module(out[0], { name = "", store = opts.tokens.store, prefix = opts.prefix or 0,
                                scale = opts.scale or 1, children = kids }, InputEmbedding)
end
function InputEmbedding:shape_text() return string.format("(prefix %d, scale %g)", self.prefix, self.scale) end

-- nn.Linear(store, name, in, out [, {bias = false, init = "lecun"|"zero"|"trunc_normal",
-- std = s, bias_init = 0, tokens = {first, count}}]): tokens (0-based first) restricts a
-- (B, T, in) input to a window of token positions, as the reference's heads read z_H[:, 0] (Q)
-- and z_H[:, P:] (the LM head).
local Linear = class("nn.Linear")
function nn.Linear(store, name, fin, fout, opts)
   local sh = store_arg(store, "nn.Linear")
   name_arg(name, "nn.Linear")
   int_arg(fin, "in", "nn.Linear")
   int_arg(fout, "out", "nn.Linear")
   opts = opts or {}
   local init = INIT[opts.init or "lecun"]
   if init == nil then fail(2, "nn.Linear: option 'init' must be lecun, zero, trunc_normal or const, got %s", tostring(opts.init)) end
   local first, count = 0, 0
   if opts.tokens ~= nil then
      if type(opts.tokens) ~= "table" then fail(2, "nn.Linear: option 'tokens' must be {first, count}") end
      first, count = opts.tokens[1], opts.tokens[2]
   end
   local out = ffi.new("hrm_module *[1]")
   check(C.hrm_module_linear(out, sh, name, fin, fout, opts.bias and 1 or 0, init, opts.std or opts.value or 0,
                             opts.bias_init or 0, first, count), 2)
   return wrap_module(out[0], { name = name, store = store, fin = fin, fout = fout, bias = opts.bias and true or false,
                                first = first, count = count }, Linear)
end
function Linear:shape_text()
   local w = self.count > 0 and string.format(", tokens %d..%d", self.first, self.first + self.count - 1) or ""
   return string.format("(%d -> %d%s%s)", self.fin, self.fout, self.bias and ", bias" or "", w)
end

local function block_config(cfg, fname)
   if type(cfg) ~= "table" then fail(3, "%s: bad argument #3 (config): expected a table {hidden_size, num_heads, tokens, ...}", fname) end
   local c = ffi.new("hrm_block_config")
   c.hidden_size = int_arg(cfg.hidden_size, "hidden_size", fname)
   c.num_heads = int_arg(cfg.num_heads, "num_heads", fname)
   c.tokens = int_arg(cfg.tokens, "tokens", fname)
   c.expansion = cfg.expansion or 4
   c.rms_norm_eps = cfg.rms_norm_eps or 1e-5
   c.rope = cfg.rope and 1 or 0
   c.rope_theta = cfg.rope_theta or 10000
   c.head_dim = cfg.head_dim and int_arg(cfg.head_dim, "head_dim", fname) or 0
   c.mlp_t = cfg.mlp_t and 1 or 0
   return c
end

local function block_text(self)
   local c = self.cfg
   if c.mlp_t then
      return string.format("(hidden %d, token MLP over %d tokens, expansion %g)", c.hidden_size, c.tokens,
                           c.expansion or 4)
   end
   local hd = c.head_dim or math.floor(c.hidden_size / c.num_heads)
   local width = c.num_heads * hd ~= c.hidden_size and string.format(" of %d (width %d)", hd, c.num_heads * hd) or ""
   return string.format("(hidden %d, heads %d%s, expansion %g, %d tokens%s)", c.hidden_size, c.num_heads, width,
                        c.expansion or 4, c.tokens, c.rope and ", RoPE" or "")
end

-- nn.Block(store, name, {hidden_size, num_heads, tokens, expansion = 4, rms_norm_eps = 1e-5,
-- rope = false, rope_theta = 10000, head_dim = hidden_size // num_heads}): the post-norm
-- attention + SwiGLU block (B, T, D) -> (B, T, D); the attention width num_heads x head_dim may
-- differ from hidden_size (qkv_proj D -> 3 NH HD, o_proj NH HD -> D). mlp_t = true replaces the
-- attention by TRM-MLP's token mixing: a SwiGLU over the T axis (`name.mlp_t.*`), its residual
-- and RMSNorm taken transposed (CPU only for now).
local Block = class("nn.Block")
function nn.Block(store, name, cfg)
   local sh = store_arg(store, "nn.Block")
   name_arg(name, "nn.Block")
   local c = block_config(cfg, "nn.Block")
   local out = ffi.new("hrm_module *[1]")
   check(C.hrm_module_block(out, sh, name, c), 2)
   return wrap_module(out[0], { name = name, store = store, cfg = cfg }, Block)
end
Block.shape_text = block_text

-- nn.Reasoning(store, name, layers, block_cfg): a reasoning module: its blocks over the sum of
-- its inputs (the input injection), (B, T, D)... -> (B, T, D).
local Reasoning = class("nn.Reasoning")
function nn.Reasoning(store, name, layers, cfg)
   local sh = store_arg(store, "nn.Reasoning")
   name_arg(name, "nn.Reasoning")
   int_arg(layers, "layers", "nn.Reasoning")
   local c = block_config(cfg, "nn.Reasoning")
   local out = ffi.new("hrm_module *[1]")
   check(C.hrm_module_reasoning(out, sh, name, layers, c), 2)
   return wrap_module(out[0], { name = name, store = store, cfg = cfg, layers = layers }, Reasoning)
end
function Reasoning:shape_text() return string.format("%d blocks %s", self.layers, block_text(self)) end

-- ---- the tape ------------------------------------------------------------------------------------------

local Tape = {}
Tape.__index = Tape
nn.TapeClass = Tape

-- nn.Tape(store): records calls for one backward at a time.
function nn.Tape(store)
   local sh = store_arg(store, "nn.Tape")
   local out = ffi.new("hrm_tape *[1]")
   check(C.hrm_tape_new(out, sh), 2)
   return setmetatable({ _h = ffi.gc(out[0], C.hrm_tape_free), store = store }, Tape)
end

local function tape_handle(t)
   local h = rawget(t, "_h")
   if h == nil then error("nn.Tape: the tape was freed", 3) end
   return h
end

-- tape:call(module, inputs...) -> output (a view of the tape's arena, valid until reset)
function Tape:call(m, ...)
   local h = tape_handle(self)
   if not is_module(m) then fail(2, "call: bad argument #1 (module): expected an hrm.nn module, got %s", type(m)) end
   local mh = module_handle(m, 2)
   if m.store ~= self.store then fail(2, "call: module '%s' belongs to another model than this tape", m.name) end
   local n = inputs_of(m, "call", ...)
   check(C.hrm_tape_call(tensor_out, h, mh, n, inputs_buf), 2)
   return Tensor._wrap(tensor_out[0])
end

function Tape:watch(x)
   if not Tensor.is_tensor(x) then fail(2, "watch: bad argument #1: expected an hrm.Tensor, got %s", type(x)) end
   check(C.hrm_tape_watch(tape_handle(self), x:cdata()), 2)
   self._watched = self._watched or {}
   self._watched[#self._watched + 1] = x
   return x
end

local outs_buf = ffi.new("const hrm_tensor *[8]")
local grads_buf = ffi.new("const hrm_tensor *[8]")

-- tape:backward({y1, y2, ...}, {dy1, dy2, ...}): the gradient of Σ <y_i, dy_i>; returns the
-- gradients of the watched tensors, in the order they were watched.
function Tape:backward(outputs, grads)
   local h = tape_handle(self)
   if type(outputs) ~= "table" or type(grads) ~= "table" or #outputs ~= #grads or #outputs < 1 or #outputs > 8 then
      fail(2, "backward: expected two tables of 1 to 8 tensors, {outputs} and {gradients}, of equal length")
   end
   for i = 1, #outputs do
      if not Tensor.is_tensor(outputs[i]) or not Tensor.is_tensor(grads[i]) then
         fail(2, "backward: output %d and its gradient must be hrm.Tensors", i)
      end
      outs_buf[i - 1], grads_buf[i - 1] = outputs[i]:cdata(), grads[i]:cdata()
   end
   check(C.hrm_tape_backward(h, #outputs, outs_buf, grads_buf), 2)
   local grads_of = {}
   for i, x in ipairs(self._watched or {}) do grads_of[i] = self:grad(x) end
   return unpack(grads_of)
end

-- tape:grad(x): a new tensor with the gradient of a call output or watched tensor.
function Tape:grad(x)
   if not Tensor.is_tensor(x) then fail(2, "grad: bad argument #1: expected an hrm.Tensor, got %s", type(x)) end
   check(C.hrm_tape_grad(tensor_out, tape_handle(self), x:cdata()), 2)
   return Tensor._wrap(tensor_out[0])
end

function Tape:reset()
   check(C.hrm_tape_reset(tape_handle(self)), 2)
   self._watched = nil
end
function Tape:calls() return C.hrm_tape_calls(tape_handle(self)) end
function Tape:bytes() return tonumber(C.hrm_tape_bytes(tape_handle(self))) end

function Tape:free() release(self, C.hrm_tape_free) end

-- nn.call(tape, module, out, inputs...): through the tape when there is one (returning the
-- call's output), else untaped into out. Model files use it for calls that are in the graph
-- only in training.
function nn.call(tape, m, out, ...)
   if tape then return tape:call(m, ...) end
   return m:forward(out, ...)
end

return nn
