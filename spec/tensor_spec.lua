-- Specs of hrm.Tensor: constructors, access, shape ops, arithmetic, reductions, errors.
local hrm = require "hrm"
local Tensor = hrm.Tensor

describe("hrm.Tensor constructors", function()
   it("builds zeros with a dtype and reports size, dim, numel and dtype", function()
      local t = Tensor.zeros(2, 3, "i32")
      assert.same({ 2, 3 }, t:size())
      assert.equal(2, t:dim())
      assert.equal(6, t:numel())
      assert.equal("i32", t:dtype())
      assert.equal(0, t:sum())
   end)

   it("accepts a table of sizes and defaults to f32", function()
      local t = Tensor.ones({ 4 })
      assert.equal("f32", t:dtype())
      assert.equal(4, t:sum())
   end)

   it("builds from nested tables", function()
      local t = Tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, "f64")
      assert.same({ { 1, 2, 3 }, { 4, 5, 6 } }, t:totable())
      assert.equal("f64", t:dtype())
   end)

   it("rejects ragged tables and non-numbers", function()
      assert.has_error(function() Tensor({ { 1, 2 }, { 3 } }) end)
      assert.has_error(function() Tensor({ 1, "x" }) end)
   end)

   it("fills with full and arange", function()
      assert.same({ 7, 7 }, Tensor.full({ 2 }, 7):totable())
      assert.same({ 0, 1, 2, 3 }, Tensor.arange(4):totable())
      assert.same({ 2, 4, 6 }, Tensor.arange(2, 8, 2, "i32"):totable())
   end)

   it("draws reproducible random numbers under a seed", function()
      hrm.manual_seed(5)
      local a = Tensor.randn(100)
      hrm.manual_seed(5)
      local b = Tensor.randn(100)
      assert.is_true(a:equal(b))
      local u = Tensor.rand(1000)
      assert.is_true(u:min() >= 0 and u:max() < 1)
      assert.is_true(math.abs(u:mean() - 0.5) < 0.05)
   end)

   it("draws the reference's truncated normal with the requested std, clipped at 2.27 std", function()
      hrm.manual_seed(1)
      local t = Tensor.trunc_normal({ 200000 }, 0.5)
      local mean = t:mean()
      local var = (t * t):mean() - mean * mean
      assert.is_true(math.abs(mean) < 0.005)
      assert.is_true(math.abs(math.sqrt(var) - 0.5) < 0.005)
      assert.is_true(t:max() <= 2.2736945 * 0.5 + 1e-6)
      assert.is_true(t:min() >= -2.2736945 * 0.5 - 1e-6)
   end)

   it("raises a clear error on a negative size", function()
      assert.has_error(function() Tensor.zeros(-1) end,
                       "hrm.Tensor.zeros: bad argument #1 (size): expected a non-negative integer, got -1")
   end)

   it("raises on an unknown dtype", function()
      assert.has_error(function() Tensor.zeros(2, "f16") end)
   end)
end)

describe("hrm.Tensor indexing", function()
   it("reads and writes elements of a 1-D tensor, 1-based", function()
      local t = Tensor.zeros(3)
      t[2] = 5
      assert.equal(5, t[2])
      assert.equal(3, #t)
   end)

   it("returns slices of N-D tensors as views sharing memory", function()
      local t = Tensor.zeros(2, 3)
      local row = t[2]
      row[3] = 9
      assert.equal(9, t:get(2, 3))
      t[1] = 4
      assert.same({ 4, 4, 4 }, t[1]:totable())
   end)

   it("keeps a view valid after its source is freed", function()
      local t = Tensor.full({ 2, 2 }, 3)
      local v = t[1]
      t:free()
      collectgarbage()
      assert.equal(6, v:sum())
   end)

   it("raises when reading past the end", function()
      local t = Tensor.zeros(3)
      assert.has_error(function() return t[4] end, "index: index 4 out of range for dimension 1 of size 3")
      assert.has_error(function() return t[0] end)
      assert.has_error(function() t[1.5] = 1 end)
   end)

   it("raises on use after free", function()
      local t = Tensor.zeros(3)
      t:free()
      assert.has_error(function() t:sum() end, "sum: the tensor was freed")
   end)

   it("raises on unknown methods", function()
      assert.has_error(function() return Tensor.zeros(1).nosuch end)
   end)
end)

describe("hrm.Tensor shape operations", function()
   it("views with an inferred size", function()
      local t = Tensor.arange(6):view(2, -1)
      assert.same({ 2, 3 }, t:size())
      assert.same({ 3, 4, 5 }, t[2]:totable())
   end)

   it("refuses a view with the wrong number of elements", function()
      assert.has_error(function() Tensor.zeros(6):view(4, 2) end)
   end)

   it("transposes by copying", function()
      local t = Tensor({ { 1, 2, 3 }, { 4, 5, 6 } }):transpose(1, 2)
      assert.same({ { 1, 4 }, { 2, 5 }, { 3, 6 } }, t:totable())
   end)

   it("clones and copies", function()
      local a = Tensor({ 1, 2 })
      local b = a:clone()
      b[1] = 10
      assert.equal(1, a[1])
      a:copy(b)
      assert.equal(10, a[1])
   end)
end)

describe("hrm.Tensor dtype conversion", function()
   it("rounds to nearest even when converting to bf16", function()
      -- 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties go to even (1)
      local t = Tensor({ 1 + 2 ^ -8, 1 + 3 * 2 ^ -8, -2.5 }):to("bf16")
      assert.same({ 1, 1 + 2 ^ -6, -2.5 }, t:totable())
   end)

   it("saturates and truncates when converting to integers", function()
      assert.same({ 255, 0, 3 }, Tensor({ 300, -4, 3.7 }):to("u8"):totable())
   end)
end)

describe("hrm.Tensor arithmetic", function()
   it("adds, subtracts, multiplies and divides tensors and scalars", function()
      local a, b = Tensor({ 1, 2, 3 }), Tensor({ 4, 5, 6 })
      assert.same({ 5, 7, 9 }, (a + b):totable())
      assert.same({ -3, -3, -3 }, (a - b):totable())
      assert.same({ 2, 4, 6 }, (a * 2):totable())
      assert.same({ 0.5, 1, 1.5 }, a:div(2):totable())
      assert.same({ 9, 8, 7 }, (10 - a):totable())
      assert.same({ -1, -2, -3 }, (-a):totable())
   end)

   it("raises on mismatched sizes", function()
      assert.has_error(function() return Tensor.zeros(2) + Tensor.zeros(3) end)
   end)

   it("multiplies matrices through BLAS", function()
      local a = Tensor({ { 1, 2 }, { 3, 4 } })
      assert.same({ { 7, 10 }, { 15, 22 } }, a:matmul(a):totable())
      local d = Tensor({ { 1, 2 }, { 3, 4 } }, "f64")
      assert.same({ { 7, 10 }, { 15, 22 } }, d:matmul(d):totable())
   end)

   it("raises on a matmul size mismatch", function()
      assert.has_error(function() Tensor.zeros(2, 3):matmul(Tensor.zeros(2, 3)) end,
                       "matmul: size mismatch, {2,3} x {2,3}: the inner sizes 3 and 2 differ")
   end)
end)

describe("hrm.Tensor reductions", function()
   local t = Tensor({ { 1, 5, 3 }, { 4, 2, 6 } })

   it("reduces everything to a number", function()
      assert.equal(21, t:sum())
      assert.equal(3.5, t:mean())
      assert.equal(6, t:max())
      assert.equal(1, t:min())
      assert.equal(6, t:argmax())
   end)

   it("reduces over a dimension, removing it", function()
      assert.same({ 5, 7, 9 }, t:sum(1):totable())
      assert.same({ 5, 6 }, t:max(2):totable())
      assert.same({ 2, 3 }, t:argmax(2):totable())
      assert.same({ 1, 2 }, t:argmin(2):totable())
   end)

   it("raises on a bad dimension", function()
      assert.has_error(function() t:sum(3) end)
   end)
end)

describe("hrm.Tensor comparisons and printing", function()
   it("compares elementwise into u8 tensors", function()
      local a = Tensor({ 1, 2, 3 })
      assert.same({ 0, 1, 0 }, a:eq(2):totable())
      assert.same({ 0, 0, 1 }, a:gt(Tensor({ 3, 2, 1 })):totable())
      assert.is_true(a:allclose(a + 1e-7))
      assert.is_false(a:allclose(a + 1))
   end)

   it("prints shape, dtype and values", function()
      local s = tostring(Tensor({ { 1, 2 }, { 3, 4 } }, "i32"))
      assert.truthy(s:find("hrm.Tensor {2x2} i32", 1, true))
      assert.truthy(s:find("3  4", 1, true))
      local big = tostring(Tensor.zeros(100, 100))
      assert.truthy(big:find("...", 1, true))
   end)
end)

describe("hrm.Tensor on a device", function()
   local ffi = require "ffi"
   local C = require "hrm.ffi"
   pcall(ffi.cdef, [[
      const void *hrm_backend_for(int32_t device);
      const void *hrm_backend_bind(int32_t device, const void *be);
   ]])

   it("moves with to(\"cpu\") / to(\"cuda\") and refuses host access to device elements", function()
      local t = Tensor.new({ 1, 2, 3 })
      assert.equal(t, t:to("cpu"))
      if not hrm.cuda_available() then
         local ok, err = pcall(function() return t:to("cuda") end)
         assert.is_false(ok)
         assert.truthy(tostring(err):find("not available", 1, true), tostring(err))
      end
      -- the CPU table serving "cuda": the device paths run here, on host memory
      local old = C.hrm_backend_bind(1, C.hrm_backend_for(0))
      local ok, err = pcall(function()
         local d = t:to("cuda")
         assert.equal("cuda", d:device())
         assert.equal(d, d:to("cuda"))
         for _, f in ipairs({ "data", "totable", "sum" }) do
            local fine, msg = pcall(d[f], d)
            assert.is_false(fine)
            assert.truthy(tostring(msg):find("CUDA memory", 1, true), tostring(msg))
         end
         assert.truthy(tostring(d):find("(cuda)", 1, true))
         local c = d:clone()
         assert.equal("cuda", c:device())
         assert.same({ 1, 2, 3 }, c:to("cpu"):totable())
         local e = Tensor.zeros(3):to("cuda"):copy(t)
         assert.same({ 1, 2, 3 }, e:to("cpu"):totable())
      end)
      C.hrm_backend_bind(1, old)
      assert.is_true(ok, tostring(err))
   end)
end)
