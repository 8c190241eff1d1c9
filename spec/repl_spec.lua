-- Specs of hrm.repl: evaluation of expressions and statements, incomplete input, printing,
-- completion. (The terminal itself is exercised by spec/sh/test_cli.sh.)
local repl = require "hrm.repl"

local function capture(fn)
   local out = {}
   local write, stderr = io.write, io.stderr
   io.write = function(...) for _, s in ipairs({ ... }) do out[#out + 1] = tostring(s) end end
   io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do out[#out + 1] = tostring(s) end end,
                 flush = function() end }
   local ok, r = pcall(fn)
   io.write, io.stderr = write, stderr
   assert(ok, r)
   return r, table.concat(out)
end

describe("hrm.repl.eval", function()
   it("prints the value of an expression, with or without a leading =", function()
      local status, out = capture(function() return repl.eval("21 * 2") end)
      assert.equal("ok", status)
      assert.equal("42\n", out)
      local _, out2 = capture(function() return repl.eval("= 1 + 1") end)
      assert.equal("2\n", out2)
   end)

   it("runs statements and keeps globals", function()
      capture(function() return repl.eval("repl_spec_x = 21") end)
      local _, out = capture(function() return repl.eval("repl_spec_x * 2") end)
      assert.equal("42\n", out)
      repl_spec_x = nil
   end)

   it("prints the value of an expression after statements on one line", function()
      local status, out = capture(function() return repl.eval("repl_spec_y = 20; repl_spec_y + 1") end)
      assert.equal("ok", status)
      assert.equal("21\n", out)
      repl_spec_y = nil
   end)

   it("asks for more input on an unfinished statement", function()
      assert.equal("incomplete", repl.eval("for i = 1, 2 do"))
      assert.equal("incomplete", repl.eval("f = function()"))
      local status = capture(function() return repl.eval("local s = 0\nfor i = 1, 3 do s = s + i end") end)
      assert.equal("ok", status)
   end)

   it("reports errors and carries on", function()
      local status, out = capture(function() return repl.eval("error('boom')") end)
      assert.equal("error", status)
      assert.truthy(out:find("boom", 1, true))
      local status2, out2 = capture(function() return repl.eval("1 +") end)
      assert.equal("incomplete", status2)
      assert.equal("", out2)
      local status3, out3 = capture(function() return repl.eval("1 + + 2") end)
      assert.equal("error", status3)
      assert.truthy(#out3 > 0)
   end)
end)

describe("hrm.repl.traceback", function()
   it("keeps the stack of the last error out of the message and one call away", function()
      local status, out = capture(function() return repl.eval("t = hrm.Tensor.zeros(3); t[5]") end)
      assert.equal("error", status)
      assert.equal("stdin:1: index: index 5 out of range for dimension 1 of size 3\n", out)
      local _, trace = capture(function() return repl.traceback() end)
      assert.truthy(trace:find("stack traceback", 1, true))
      assert.truthy(trace:find("in main chunk", 1, true))
      assert.falsy(trace:find("repl.lua", 1, true))
   end)
end)

describe("hrm.repl.complete", function()
   it("lists submodules of hrm that are not loaded yet", function()
      local hrm = require "hrm"
      local lazy = getmetatable(hrm).__submodules
      for name in pairs(lazy) do
         local found = false
         for _, c in ipairs(repl.complete("hrm." .. name:sub(1, 1))) do found = found or c == "hrm." .. name end
         assert.is_true(found, name)
      end
   end)
end)

describe("hrm.repl.pretty", function()
   it("prints tables sorted, nested to a depth limit", function()
      assert.equal('{1, 2, a = 3, b = "x"}', repl.pretty({ 1, 2, a = 3, b = "x" }))
      assert.equal("{a = {b = {...}}}", repl.pretty({ a = { b = { c = 1 } } }))
   end)

   it("summarises tensors", function()
      local hrm = require "hrm"
      assert.truthy(repl.pretty(hrm.Tensor.zeros(2, 2)):find("{2x2} f32", 1, true))
   end)
end)

describe("hrm.repl.complete", function()
   it("completes globals, fields and tensor methods", function()
      local hrm = require "hrm"
      rawset(_G, "hrm", hrm)
      assert.truthy(#repl.complete("pri") >= 1)
      local fields = repl.complete("hrm.Tensor.ze")
      assert.same({ "hrm.Tensor.zeros" }, fields)
      rawset(_G, "repl_spec_t", hrm.Tensor.zeros(1))
      local m = repl.complete("repl_spec_t:ma")
      assert.same({ "repl_spec_t:matmul", "repl_spec_t:max" }, m)
      rawset(_G, "repl_spec_t", nil)
   end)
end)
