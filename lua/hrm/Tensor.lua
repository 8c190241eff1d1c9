-- hrm.Tensor — Torch7-familiar tensors over the C tensor (core/tensor.c), through LuaJIT FFI.
--
-- A Tensor is a small Lua object boxing an `hrm_tensor *` (owned with ffi.gc), so every
-- `t[i]` goes through the checked __index: element i of a 1-D tensor, the i-th slice (a view)
-- of an N-D one, 1-based as in Torch7. Data stays in C memory; CPU tensors are read and written
-- in place. Misuse raises a Lua error naming the argument; nothing here can crash the process.
local ffi = require "ffi"
local C = require "hrm.ffi"
local errors = require "hrm.errors"
local rng = require "hrm.rng"

local Tensor = {}
local methods = {}
local mt = {}

local DTYPES = { f32 = 0, f64 = 1, bf16 = 2, i32 = 3, i64 = 4, u8 = 5 }
local DTYPE_NAMES = { [0] = "f32", "f64", "bf16", "i32", "i64", "u8" }
local CTYPES = { [0] = "float *", "double *", "uint16_t *", "int32_t *", "int64_t *", "uint8_t *" }
local INTEGER = { i32 = true, i64 = true, u8 = true }
local OPS = { add = 0, sub = 1, mul = 2, div = 3 }
local REDUCE = { sum = 0, mean = 1, max = 2, argmax = 3, min = 4, argmin = 5 }

local shape_buf = ffi.new("int64_t[4]")
local out_ptr = ffi.new("hrm_tensor *[1]")

local function fail(level, fmt, ...)
   error(string.format(fmt, ...), level + 1)
end

local function check(rc, level)
   if rc ~= 0 then error(errors.last(), (level or 1) + 1) end
end

local Ref -- the boxed-pointer ctype, set below once the metatable is complete

local function is_tensor(x)
   return type(x) == "cdata" and ffi.istype(Ref, x)
end
Tensor.is_tensor = is_tensor

local function raw(t, fname, argn)
   if not is_tensor(t) then
      fail(3, "%s: bad argument #%d: expected an hrm.Tensor, got %s", fname, argn, type(t))
   end
   local p = t.p
   if p == nil then fail(3, "%s: the tensor was freed", fname) end
   return p
end

-- The same for operations that read or write the elements on the host: device tensors refuse.
local function host(t, fname, argn)
   local p = raw(t, fname, argn)
   if p.device ~= 0 then
      fail(3, "%s: bad argument #%d: the tensor is in CUDA memory\n---> HINT: t:to(\"cpu\") copies it to the host",
           fname, argn)
   end
   return p
end

local function wrap(p)
   return Ref(p)
end
Tensor._wrap = wrap

local function dtype_arg(d, fname)
   if d == nil then return DTYPES.f32 end
   local v = DTYPES[d]
   if v == nil then
      fail(3, "%s: unknown dtype %s (expected one of \"f32\" \"f64\" \"bf16\" \"i32\" \"i64\" \"u8\")",
           fname, tostring(d))
   end
   return v
end

local DEVICES = { cpu = 0, cuda = 1 }

local function new_tensor(dtype, dims, fname, device)
   if #dims > 4 then fail(3, "%s: %d dimensions given, at most 4 are supported", fname, #dims) end
   for i, n in ipairs(dims) do
      if type(n) ~= "number" or n ~= math.floor(n) or n < 0 then
         fail(3, "%s: bad argument #%d (size): expected a non-negative integer, got %s", fname, i,
              tostring(n))
      end
      shape_buf[i - 1] = n
   end
   if device == nil or device == 0 then check(C.hrm_tensor_new(out_ptr, dtype, #dims, shape_buf), 3)
   else check(C.hrm_tensor_new_device(out_ptr, dtype, #dims, shape_buf, device), 3) end
   return wrap(out_ptr[0])
end

-- Splits (d1, d2, ..., [dtype]) or ({d1, d2, ...}, [dtype]) into sizes and a dtype name.
local function dims_and_dtype(...)
   local n = select("#", ...)
   local args = { ... }
   local dtype
   if n > 0 and type(args[n]) == "string" then dtype = args[n]; n = n - 1 end
   if n == 1 and type(args[1]) == "table" and not is_tensor(args[1]) then
      return { unpack(args[1]) }, dtype
   end
   local dims = {}
   for i = 1, n do dims[i] = args[i] end
   return dims, dtype
end

local function shape_of(p)
   local dims = {}
   for i = 0, p.ndim - 1 do dims[i + 1] = tonumber(p.shape[i]) end
   return dims
end

-- ---- constructors ------------------------------------------------------------------------------

function Tensor.zeros(...)
   local dims, dtype = dims_and_dtype(...)
   return new_tensor(dtype_arg(dtype, "hrm.Tensor.zeros"), dims, "hrm.Tensor.zeros")
end

function Tensor.ones(...)
   local dims, dtype = dims_and_dtype(...)
   local t = new_tensor(dtype_arg(dtype, "hrm.Tensor.ones"), dims, "hrm.Tensor.ones")
   C.hrm_tensor_fill(t.p, 1)
   return t
end

-- Tensor.full({d1, d2, ...}, value [, dtype])
function Tensor.full(dims, value, dtype)
   if type(dims) ~= "table" then
      fail(2, "hrm.Tensor.full: bad argument #1 (sizes): expected a table of sizes, got %s", type(dims))
   end
   if type(value) ~= "number" then
      fail(2, "hrm.Tensor.full: bad argument #2 (value): expected a number, got %s", type(value))
   end
   local t = new_tensor(dtype_arg(dtype, "hrm.Tensor.full"), dims, "hrm.Tensor.full")
   C.hrm_tensor_fill(t.p, value)
   return t
end

-- arange(n) -> 0..n-1; arange(a, b [, step]) -> a, a+step, ... < b; a trailing dtype string.
function Tensor.arange(a, b, step, dtype)
   if type(b) == "string" then dtype, b = b, nil end
   if type(step) == "string" then dtype, step = step, nil end
   if b == nil then a, b = 0, a end
   step = step or 1
   for i, v in ipairs({ a, b, step }) do
      if type(v) ~= "number" then
         fail(2, "hrm.Tensor.arange: bad argument #%d: expected a number, got %s", i, type(v))
      end
   end
   if step == 0 then fail(2, "hrm.Tensor.arange: step must not be 0") end
   local n = math.max(0, math.ceil((b - a) / step))
   local t = new_tensor(dtype_arg(dtype or "f32", "hrm.Tensor.arange"), { n }, "hrm.Tensor.arange")
   for i = 0, n - 1 do C.hrm_tensor_set(t.p, i, a + i * step) end
   return t
end

local function random_fill(fname, filler, ...)
   local dims, dtype = dims_and_dtype(...)
   local t = new_tensor(dtype_arg(dtype, fname), dims, fname)
   check(filler(t.p, rng.state()), 3)
   return t
end

function Tensor.rand(...) return random_fill("hrm.Tensor.rand", C.hrm_tensor_rand, ...) end
function Tensor.randn(...) return random_fill("hrm.Tensor.randn", C.hrm_tensor_randn, ...) end

-- The reference's truncated normal (HRM_SPEC §1.1): trunc_normal({d1, ...}, std [, dtype]).
function Tensor.trunc_normal(dims, std, dtype)
   if type(dims) ~= "table" then
      fail(2, "hrm.Tensor.trunc_normal: bad argument #1 (sizes): expected a table, got %s", type(dims))
   end
   if type(std) ~= "number" or std < 0 then
      fail(2, "hrm.Tensor.trunc_normal: bad argument #2 (std): expected a number >= 0, got %s",
           tostring(std))
   end
   local t = new_tensor(dtype_arg(dtype, "hrm.Tensor.trunc_normal"), dims, "hrm.Tensor.trunc_normal")
   check(C.hrm_tensor_trunc_normal(t.p, rng.state(), std), 2)
   return t
end

-- Tensor(nested_table [, dtype]) or Tensor(d1, d2, ... [, dtype]) (zeros).
function Tensor.new(data, ...)
   if type(data) ~= "table" or is_tensor(data) then
      if type(data) ~= "number" then
         fail(2, "hrm.Tensor: bad argument #1 (data): expected a nested table of numbers or sizes, got %s",
              is_tensor(data) and "a tensor" or type(data))
      end
      return Tensor.zeros(data, ...)
   end
   local dtype = ...
   local dims, node = {}, data
   while type(node) == "table" do
      dims[#dims + 1] = #node
      node = node[1]
   end
   if #dims == 0 then dims = { 0 } end
   local t = new_tensor(dtype_arg(dtype, "hrm.Tensor"), dims, "hrm.Tensor")
   local p, k = t.p, 0
   local function walk(x, depth)
      if depth > #dims then
         if type(x) ~= "number" then
            fail(4, "hrm.Tensor: bad argument #1: element %d is a %s, expected a number", k + 1, type(x))
         end
         C.hrm_tensor_set(p, k, x)
         k = k + 1
         return
      end
      if type(x) ~= "table" or #x ~= dims[depth] then
         fail(4, "hrm.Tensor: bad argument #1: ragged nested table (dimension %d should have %d entries)",
              depth, dims[depth])
      end
      for i = 1, #x do walk(x[i], depth + 1) end
   end
   walk(data, 1)
   return t
end

-- ---- shape and access ------------------------------------------------------------------------------

function methods:dim() return raw(self, "dim", 1).ndim end
function methods:numel() return tonumber(raw(self, "numel", 1).numel) end
function methods:nElement() return self:numel() end
function methods:dtype() return DTYPE_NAMES[raw(self, "dtype", 1).dtype] end
function methods:device() return raw(self, "device", 1).device == 0 and "cpu" or "cuda" end

-- size() -> {d1, d2, ...}; size(k) -> the k-th size.
function methods:size(k)
   local p = raw(self, "size", 1)
   if k == nil then return shape_of(p) end
   if type(k) ~= "number" or k < 1 or k > p.ndim then
      fail(2, "size: bad argument #1 (dim): expected 1..%d, got %s", p.ndim, tostring(k))
   end
   return tonumber(p.shape[k - 1])
end

-- A typed pointer to the first element (CPU tensors only); valid while the tensor lives.
function methods:data()
   local p = host(self, "data", 1)
   return ffi.cast(CTYPES[p.dtype], p.data)
end

function methods:cdata() return raw(self, "cdata", 1) end

local function check_index(p, i, fname)
   local n = p.ndim == 0 and 1 or tonumber(p.shape[0])
   if type(i) ~= "number" or i ~= math.floor(i) then
      fail(3, "%s: index must be an integer, got %s", fname, tostring(i))
   end
   if i < 1 or i > n then
      fail(3, "%s: index %d out of range for dimension 1 of size %d", fname, i, n)
   end
end

local function slice(p, i)
   local inner = 1
   for d = 1, p.ndim - 1 do
      shape_buf[d - 1] = p.shape[d]
      inner = inner * tonumber(p.shape[d])
   end
   check(C.hrm_tensor_view(out_ptr, p, (i - 1) * inner, p.ndim - 1, shape_buf), 3)
   return wrap(out_ptr[0])
end

function mt.__index(self, k)
   local m = methods[k]
   if m ~= nil then return m end
   if type(k) ~= "number" then
      fail(2, "hrm.Tensor has no method or field '%s'", tostring(k))
   end
   local p = host(self, "index", 1)
   check_index(p, k, "index")
   if p.ndim <= 1 then return C.hrm_tensor_get(p, k - 1) end
   return slice(p, k)
end

function mt.__newindex(self, k, v)
   if type(k) ~= "number" then fail(2, "cannot set field '%s' of an hrm.Tensor", tostring(k)) end
   local p = host(self, "index", 1)
   check_index(p, k, "index assignment")
   if p.ndim <= 1 then
      if type(v) ~= "number" then
         fail(2, "index assignment: expected a number, got %s", type(v))
      end
      C.hrm_tensor_set(p, k - 1, v)
      return
   end
   local s = slice(p, k)
   if type(v) == "number" then s:fill(v)
   elseif is_tensor(v) then s:copy(v)
   else fail(2, "index assignment: expected a number or a tensor, got %s", type(v)) end
end

function mt.__len(self)
   local p = raw(self, "#", 1)
   return p.ndim == 0 and 1 or tonumber(p.shape[0])
end

function methods:get(...)
   local p = host(self, "get", 1)
   local n = select("#", ...)
   if n ~= p.ndim then fail(2, "get: expected %d indices, got %d", p.ndim, n) end
   local flat = 0
   for d = 1, n do
      local i = select(d, ...)
      local size = tonumber(p.shape[d - 1])
      if type(i) ~= "number" or i < 1 or i > size or i ~= math.floor(i) then
         fail(2, "get: index %s out of range for dimension %d of size %d", tostring(i), d, size)
      end
      flat = flat * size + (i - 1)
   end
   return C.hrm_tensor_get(p, flat)
end

-- ---- copying and reshaping ---------------------------------------------------------------------------

function methods:fill(v)
   local p = host(self, "fill", 1)
   if type(v) ~= "number" then fail(2, "fill: bad argument #1 (value): expected a number, got %s", type(v)) end
   C.hrm_tensor_fill(p, v)
   return self
end

function methods:zero() return self:fill(0) end

function methods:copy(src)
   local p = raw(self, "copy", 1)
   check(C.hrm_tensor_copy(p, raw(src, "copy", 1)), 2)
   return self
end

-- A copy on the same device.
function methods:clone()
   local p = raw(self, "clone", 1)
   local t = new_tensor(p.dtype, shape_of(p), "clone", p.device)
   check(C.hrm_tensor_copy(t.p, p), 2)
   return t
end

-- Conversion: t:to("bf16") / t:type("f64") return a new tensor (self when the dtype is the same);
-- t:to("cpu") / t:to("cuda") a copy on that device (self when it is there already).
function methods:to(dtype)
   local p = raw(self, "to", 1)
   local device = DEVICES[dtype]
   if device ~= nil then
      if device == p.device then return self end
      local t = new_tensor(p.dtype, shape_of(p), "to", device)
      check(C.hrm_tensor_copy(t.p, p), 2)
      return t
   end
   local d = dtype_arg(dtype, "to")
   if d == p.dtype then return self end
   local t = new_tensor(d, shape_of(p), "to")
   C.hrm_tensor_copy(t.p, p)
   return t
end
methods.type = function(self, dtype)
   if dtype == nil then return "hrm." .. self:dtype() end
   return self:to(dtype)
end
function methods:float() return self:to("f32") end
function methods:double() return self:to("f64") end
function methods:int() return self:to("i32") end
function methods:long() return self:to("i64") end
function methods:byte() return self:to("u8") end
function methods:bf16() return self:to("bf16") end

-- view(d1, d2, ...) or view({...}): same data, new shape; one size may be -1.
function methods:view(...)
   local p = raw(self, "view", 1)
   local dims = dims_and_dtype(...)
   local known, infer = 1, nil
   for i, n in ipairs(dims) do
      if n == -1 and not infer then infer = i
      elseif type(n) ~= "number" or n < 0 or n ~= math.floor(n) then
         fail(2, "view: bad argument #%d (size): expected a non-negative integer, got %s", i, tostring(n))
      else known = known * n end
   end
   local numel = tonumber(p.numel)
   if infer then
      if known == 0 or numel % known ~= 0 then
         fail(2, "view: cannot infer size -1 for %d elements", numel)
      end
      dims[infer] = numel / known
      known = numel
   end
   if known ~= numel then
      fail(2, "view: shape {%s} has %d elements, the tensor has %d", table.concat(dims, ","), known, numel)
   end
   if #dims > 4 then fail(2, "view: at most 4 dimensions are supported") end
   for i, n in ipairs(dims) do shape_buf[i - 1] = n end
   check(C.hrm_tensor_view(out_ptr, p, 0, #dims, shape_buf), 2)
   return wrap(out_ptr[0])
end
methods.reshape = methods.view

-- narrow(1, first, size): a view of `size` slices along dimension 1 from `first` (1-based), as
-- Torch7's narrow; other dimensions would not be contiguous and are refused.
function methods:narrow(dim, first, size)
   local p = raw(self, "narrow", 1)
   if dim ~= 1 then fail(2, "narrow: only dimension 1 gives a contiguous view, got %s", tostring(dim)) end
   local n = p.ndim == 0 and 1 or tonumber(p.shape[0])
   if type(first) ~= "number" or type(size) ~= "number" then
      fail(2, "narrow: bad argument #%d (%s): expected a number, got %s", type(first) ~= "number" and 2 or 3,
           type(first) ~= "number" and "first" or "size", type(type(first) ~= "number" and first or size))
   end
   if first < 1 or size < 0 or first + size - 1 > n or first ~= math.floor(first) or size ~= math.floor(size) then
      fail(2, "narrow: slices %s..%s out of range for dimension 1 of size %d", tostring(first),
           tostring(first and size and first + size - 1), n)
   end
   local inner = 1
   shape_buf[0] = size
   for d = 1, p.ndim - 1 do
      shape_buf[d] = p.shape[d]
      inner = inner * tonumber(p.shape[d])
   end
   check(C.hrm_tensor_view(out_ptr, p, (first - 1) * inner, math.max(p.ndim, 1), shape_buf), 2)
   return wrap(out_ptr[0])
end

-- transpose(d1, d2): a copy with the two dimensions swapped (defaults 1, 2).
function methods:transpose(d1, d2)
   local p = host(self, "transpose", 1)
   d1, d2 = d1 or 1, d2 or 2
   if p.ndim < 2 then fail(2, "transpose: needs at least 2 dimensions, the tensor has %d", p.ndim) end
   local dims = shape_of(p)
   for i, d in ipairs({ d1, d2 }) do
      if type(d) ~= "number" or d < 1 or d > p.ndim then
         fail(2, "transpose: bad argument #%d (dim): expected 1..%d, got %s", i, p.ndim, tostring(d))
      end
   end
   dims[d1], dims[d2] = dims[d2], dims[d1]
   local t = new_tensor(p.dtype, dims, "transpose")
   check(C.hrm_tensor_transpose(t.p, p, d1 - 1, d2 - 1), 2)
   return t
end
methods.t = function(self) return self:transpose(1, 2) end

-- ---- arithmetic --------------------------------------------------------------------------------------

local function binary(name)
   local op = OPS[name]
   return function(a, b)
      if type(a) == "number" then -- scalar on the left (operators only)
         local r = b:clone()
         if name == "add" or name == "mul" then
            check(C.hrm_tensor_scalar(r.p, host(b, name, 2), a, op), 2)
         else
            r:fill(a)
            check(C.hrm_tensor_binary(r.p, r.p, host(b, name, 2), op), 2)
         end
         return r
      end
      local pa = host(a, name, 1)
      local r = new_tensor(pa.dtype, shape_of(pa), name)
      if type(b) == "number" then
         check(C.hrm_tensor_scalar(r.p, pa, b, op), 2)
      else
         local pb = host(b, name, 2)
         if pb.numel ~= pa.numel and pb.numel ~= 1 then
            fail(2, "%s: size mismatch, {%s} and {%s}", name, table.concat(shape_of(pa), ","),
                 table.concat(shape_of(pb), ","))
         end
         check(C.hrm_tensor_binary(r.p, pa, pb, op), 2)
      end
      return r
   end
end

for name in pairs(OPS) do methods[name] = binary(name) end
mt.__add, mt.__sub, mt.__mul, mt.__div = methods.add, methods.sub, methods.mul, methods.div
function mt.__unm(a) return methods.mul(a, -1) end

local function reducer(name)
   local op = REDUCE[name]
   local is_arg = name == "argmax" or name == "argmin"
   return function(self, dim)
      local p = host(self, name, 1)
      if dim == nil then
         if p.numel == 0 and name ~= "sum" then fail(2, "%s: the tensor is empty", name) end
         local r = new_tensor(is_arg and DTYPES.i64 or DTYPES.f64, {}, name)
         check(C.hrm_tensor_reduce(r.p, p, -1, op), 2)
         local v = C.hrm_tensor_get(r.p, 0)
         return is_arg and v + 1 or v
      end
      if type(dim) ~= "number" or dim < 1 or dim > p.ndim then
         fail(2, "%s: bad argument #1 (dim): expected 1..%d, got %s", name, p.ndim, tostring(dim))
      end
      local dims = shape_of(p)
      table.remove(dims, dim)
      local integer = INTEGER[DTYPE_NAMES[p.dtype]]
      local rdtype = is_arg and DTYPES.i64 or (name == "mean" and integer) and DTYPES.f64 or p.dtype
      local r = new_tensor(rdtype, dims, name)
      check(C.hrm_tensor_reduce(r.p, p, dim - 1, op), 2)
      if is_arg then C.hrm_tensor_scalar(r.p, r.p, 1, OPS.add) end
      return r
   end
end
for name in pairs(REDUCE) do methods[name] = reducer(name) end

function methods:matmul(b)
   local pa, pb = host(self, "matmul", 1), host(b, "matmul", 2)
   if pa.ndim ~= 2 or pb.ndim ~= 2 then
      fail(2, "matmul: expected 2-D tensors, got %d-D and %d-D", pa.ndim, pb.ndim)
   end
   if pa.shape[1] ~= pb.shape[0] then
      fail(2, "matmul: size mismatch, {%d,%d} x {%d,%d}: the inner sizes %d and %d differ",
           tonumber(pa.shape[0]), tonumber(pa.shape[1]), tonumber(pb.shape[0]),
           tonumber(pb.shape[1]), tonumber(pa.shape[1]), tonumber(pb.shape[0]))
   end
   local r = new_tensor(pa.dtype, { tonumber(pa.shape[0]), tonumber(pb.shape[1]) }, "matmul")
   check(C.hrm_tensor_matmul(r.p, pa, pb), 2)
   return r
end

-- ---- comparison ------------------------------------------------------------------------------------------

local function compare(name, test)
   methods[name] = function(a, b)
      local pa = host(a, name, 1)
      local r = new_tensor(DTYPES.u8, shape_of(pa), name)
      local n = tonumber(pa.numel)
      if type(b) == "number" then
         for i = 0, n - 1 do C.hrm_tensor_set(r.p, i, test(C.hrm_tensor_get(pa, i), b) and 1 or 0) end
      else
         local pb = host(b, name, 2)
         if pb.numel ~= pa.numel then fail(2, "%s: size mismatch (%d vs %d elements)", name, n, tonumber(pb.numel)) end
         for i = 0, n - 1 do
            C.hrm_tensor_set(r.p, i, test(C.hrm_tensor_get(pa, i), C.hrm_tensor_get(pb, i)) and 1 or 0)
         end
      end
      return r
   end
end
compare("eq", function(x, y) return x == y end)
compare("ne", function(x, y) return x ~= y end)
compare("lt", function(x, y) return x < y end)
compare("le", function(x, y) return x <= y end)
compare("gt", function(x, y) return x > y end)
compare("ge", function(x, y) return x >= y end)

-- true when shapes agree and every |a - b| <= atol + rtol·|b|
function methods:allclose(b, rtol, atol)
   local pa, pb = host(self, "allclose", 1), host(b, "allclose", 2)
   rtol, atol = rtol or 1e-5, atol or 1e-8
   if pa.ndim ~= pb.ndim then return false end
   for d = 0, pa.ndim - 1 do if pa.shape[d] ~= pb.shape[d] then return false end end
   for i = 0, tonumber(pa.numel) - 1 do
      local x, y = C.hrm_tensor_get(pa, i), C.hrm_tensor_get(pb, i)
      if not (math.abs(x - y) <= atol + rtol * math.abs(y)) then return false end
   end
   return true
end

function methods:equal(b) return self:allclose(b, 0, 0) end

-- ---- conversion to Lua -------------------------------------------------------------------------------------

function methods:totable()
   local p = host(self, "totable", 1)
   if p.ndim == 0 then return C.hrm_tensor_get(p, 0) end
   local dims, k = shape_of(p), 0
   local function build(depth)
      local t = {}
      for i = 1, dims[depth] do
         if depth == #dims then
            t[i] = C.hrm_tensor_get(p, k)
            k = k + 1
         else
            t[i] = build(depth + 1)
         end
      end
      return t
   end
   return build(1)
end

function methods:free()
   local p = self.p
   if p ~= nil then
      self.p = nil
      C.hrm_tensor_free(p)
   end
end

function mt.__gc(self)
   local p = self.p
   if p ~= nil then
      self.p = nil
      C.hrm_tensor_free(p)
   end
end

local function fmt_number(v, integer)
   if integer then return string.format("%d", v) end
   if v ~= v then return "nan" end
   return string.format("%.4g", v)
end

-- A readable summary: shape, dtype and values (the first and last few when large).
function mt.__tostring(self)
   local p = self.p
   if p == nil then return "hrm.Tensor (freed)" end
   local dims = shape_of(p)
   local integer = INTEGER[DTYPE_NAMES[p.dtype]]
   local head = string.format("hrm.Tensor {%s} %s", table.concat(dims, "x"), DTYPE_NAMES[p.dtype])
   local n = tonumber(p.numel)
   if n == 0 then return head .. " []" end
   if p.device ~= 0 then return head .. " (cuda)" end
   local cols = p.ndim == 0 and 1 or dims[#dims]
   local rows = n / cols
   local lines = { head }
   local function row_text(r)
      local parts = {}
      local show = cols <= 10 and cols or 6
      for c = 0, show - 1 do
         local ci = (cols <= 10 or c < 3) and c or cols - (show - c)
         parts[#parts + 1] = fmt_number(C.hrm_tensor_get(p, r * cols + ci), integer)
         if cols > 10 and c == 2 then parts[#parts + 1] = "..." end
      end
      return "  " .. table.concat(parts, "  ")
   end
   for r = 0, rows - 1 do
      if rows > 8 and r == 4 then
         lines[#lines + 1] = "  ..."
      end
      if rows <= 8 or r < 4 or r >= rows - 3 then lines[#lines + 1] = row_text(r) end
   end
   return table.concat(lines, "\n")
end

Ref = ffi.metatype("hrm_tensor_ref", mt)

Tensor.methods = methods
Tensor.dtypes = DTYPES

return setmetatable(Tensor, {
   __call = function(_, ...) return Tensor.new(...) end,
})
