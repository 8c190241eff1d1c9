-- Specs of hrm.viz: SVG line charts and histograms (well-formed, ticks, legend, gaps, errors).
local viz = require "hrm.viz"

local function count(s, pat)
   local n = 0
   for _ in s:gmatch(pat) do n = n + 1 end
   return n
end

-- A cheap well-formedness check: every opened element is closed, in order.
local function balanced(svg)
   local stack = {}
   for close, name, selfclose in svg:gmatch("<(/?)([%w:]+)[^>]-(/?)>") do
      if close == "/" then
         if stack[#stack] ~= name then return false end
         stack[#stack] = nil
      elseif selfclose ~= "/" then
         stack[#stack + 1] = name
      end
   end
   return #stack == 0
end

describe("hrm.viz.ticks", function()
   it("chooses 1-2-2.5-5 steps covering the range", function()
      local t, lo, hi, step = viz.ticks(0, 0.87, 5)
      assert.equal(0, lo)
      assert.equal(0.2, step)
      assert.near(1.0, hi, 1e-12)
      assert.equal(6, #t)
      local _, a, b, s2 = viz.ticks(3, 2003, 4)
      assert.equal(500, s2)
      assert.is_true(a <= 3 and b >= 2003)
   end)

   it("widens an empty range", function()
      local t = viz.ticks(5, 5)
      assert.is_true(#t >= 2)
   end)
end)

describe("hrm.viz.line_chart", function()
   local xs, ys, zs = {}, {}, {}
   for i = 1, 50 do
      xs[i], ys[i], zs[i] = i * 10, 2 * math.exp(-i / 10), i == 25 and 0 / 0 or i / 50
   end

   it("returns a standalone SVG with title, axis labels, a legend and one line per series", function()
      local svg = viz.line_chart{ title = "Loss & <acc>", x_label = "step", y_label = "value",
                                  series = { { name = "loss", xs = xs, ys = ys }, { "acc", xs, zs } } }
      assert.truthy(svg:find('^<svg xmlns="http://www.w3.org/2000/svg"'))
      assert.truthy(svg:find("Loss &amp; &lt;acc&gt;", 1, true))
      assert.truthy(svg:find(">step<", 1, true))
      assert.truthy(svg:find(">loss<", 1, true))
      assert.truthy(svg:find(">acc<", 1, true))
      -- the NaN splits the second series into two polylines
      assert.equal(3, count(svg, "<polyline"))
      assert.is_true(balanced(svg))
   end)

   it("draws a logarithmic y axis with power-of-ten ticks", function()
      local svg = viz.line_chart{ series = { { name = "l", xs = xs, ys = ys } }, log_y = true }
      assert.truthy(svg:find(">0.01<", 1, true) or svg:find(">0.1<", 1, true))
      assert.is_true(balanced(svg))
   end)

   it("says 'no data' for empty series and marks single points", function()
      assert.truthy(viz.line_chart{ series = {} }:find("no data", 1, true))
      local svg = viz.line_chart{ series = { { name = "one", xs = { 1 }, ys = { 2 } } } }
      assert.equal(1, count(svg, "<circle"))
   end)

   it("rejects malformed series", function()
      assert.has_error(function() viz.line_chart{ series = { { name = "x", xs = { 1, 2 }, ys = { 1 } } } } end,
                       "viz.line_chart: series 1 has 2 xs and 1 ys")
      assert.has_error(function() viz.line_chart{} end)
      assert.has_error(function() viz.line_chart{ series = {}, title = 3 } end)
   end)
end)

describe("hrm.viz.histogram", function()
   it("draws one bar per count with labels", function()
      local svg = viz.histogram{ title = "Halting", counts = { 3, 0, 7, 1 }, labels = { "1", "2", "3", "4" },
                                 x_label = "steps", y_label = "rows" }
      assert.equal(4, count(svg, "<rect x=\"[%d.]+\" y=\"[%d.]+\" width=\"[%d.]+\" height=\"[%d.]+\" fill=\"#"))
      assert.truthy(svg:find("3: 7", 1, true))
      assert.is_true(balanced(svg))
   end)

   it("bins raw values", function()
      local svg = viz.histogram{ values = { 1, 2, 2, 3, 3, 3 }, bins = 3 }
      assert.truthy(svg:find(": 3</title>", 1, true))
   end)

   it("rejects negative counts", function()
      assert.has_error(function() viz.histogram{ counts = { 1, -1 } } end)
   end)
end)

describe("hrm.viz.save", function()
   it("writes the file and reports failures", function()
      local p = os.tmpname()
      assert.is_true(viz.save(p, "<svg/>"))
      os.remove(p)
      local ok, err = viz.save("/nonexistent/dir/x.svg", "<svg/>")
      assert.is_nil(ok)
      assert.is_string(err)
   end)
end)
