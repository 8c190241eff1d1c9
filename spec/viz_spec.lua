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

describe("hrm.viz.line_chart x-axis and marks", function()
   local xs, ys = {}, {}
   for i = 0, 90 do xs[#xs + 1], ys[#ys + 1] = i * 100, 1 / (i + 1) end

   it("ends the x-axis at the last step, not at the next nice tick", function()
      local svg = viz.line_chart{ series = { { "loss", xs, ys } } }
      assert.truthy(svg:find(">8000<", 1, true))
      assert.falsy(svg:find(">10000<", 1, true))
      assert.is_true(balanced(svg))
   end)

   it("draws labelled level changes and checkpoint ticks with a legend entry", function()
      local svg = viz.line_chart{ series = { { "loss", xs, ys } }, marks = {
         { x = 3000, label = "level 2" }, { x = 4500, label = "checkpoint", style = "tick" },
         { x = 9000, label = "checkpoint", style = "tick" } } }
      assert.equal(1, count(svg, 'stroke%-dasharray="4,3"'))
      assert.truthy(svg:find(">level 2</text>", 1, true))
      assert.equal(2, count(svg, "<title>checkpoint</title>"))
      assert.truthy(svg:find(">checkpoint</text>", 1, true)) -- legend
      assert.is_true(balanced(svg))
      assert.error_matches(function() viz.line_chart{ series = {}, marks = { { label = "x" } } } end,
                           "viz.line_chart: mark 1 must be a table {x = number, label = text}", 1, true)
   end)
end)

describe("hrm.viz.run_marks", function()
   it("marks curriculum events and checkpoints, and returns the last step", function()
      local recs = {
         { step = 10, split = "train" }, { step = 100, split = "event", message = "curriculum: level 2" },
         { step = 200, split = "eval", set = "eval" }, { step = 200, split = "eval", set = "other" },
         { step = 250, split = "train" },
      }
      local marks, last = viz.run_marks(recs)
      assert.equal(250, last)
      assert.same({ { x = 100, label = "curriculum: level 2" }, { x = 200, label = "checkpoint", style = "tick" },
                    { x = 250, label = "checkpoint", style = "tick" } }, marks)
   end)
end)

describe("hrm.viz.plot_run", function()
   it("marks a run's curriculum changes and checkpoints and ends the axis at its last step", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir) == 0)
      local lines = {}
      for step = 100, 9000, 100 do
         lines[#lines + 1] = string.format('{"step": %d, "split": "train", "lr": 0.001, "metrics": {"loss": %g, ' ..
                                           '"accuracy": 0.5, "exact_accuracy": 0.1, "steps": 2}}', step, 1000 / step)
      end
      lines[#lines + 1] = '{"step": 3000, "split": "event", "message": "level 2: 8 blanks"}'
      lines[#lines + 1] = '{"step": 4500, "split": "eval", "set": "eval", "metrics": {"loss": 1, "accuracy": 0.6, ' ..
                          '"exact_accuracy": 0.2, "q_steps": 2}}'
      local f = assert(io.open(dir .. "/metrics.jsonl", "w"))
      f:write(table.concat(lines, "\n"), "\n")
      f:close()
      assert(viz.plot_run(dir))
      f = assert(io.open(dir .. "/loss.svg"))
      local svg = f:read("*a")
      f:close()
      os.execute("rm -rf " .. dir)
      assert.truthy(svg:find(">level 2: 8 blanks</text>", 1, true))
      assert.equal(2, count(svg, "<title>checkpoint</title>")) -- at the evaluation and at the end
      assert.truthy(svg:find(">8000<", 1, true))
      assert.falsy(svg:find(">10000<", 1, true))
   end)
end)

describe("hrm.viz.compare_runs", function()
   local made = {}
   local function run_dir(points)  -- points: {step, cpu seconds, exact}
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir) == 0)
      made[#made + 1] = dir
      local f = assert(io.open(dir .. "/metrics.jsonl", "w"))
      for _, p in ipairs(points) do
         f:write(string.format('{"step": %d, "split": "train", "cpu": %g, "time": %g, "metrics": {"lm_loss": %g}}\n',
                               p[1], p[2], p[2] * 2, 2 - p[3]))
         f:write(string.format('{"step": %d, "split": "eval", "set": "held", "cpu": %g, "metrics": {"exact_accuracy": %g, ' ..
                               '"accuracy": %g}}\n', p[1], p[2], p[3], 0.5 + p[3] / 2))
      end
      f:close()
      return dir
   end
   teardown(function() for _, d in ipairs(made) do os.execute("rm -rf " .. d) end end)

   it("draws every run on one chart against training CPU minutes, seeds dashed in their model's colour", function()
      local a = run_dir({ { 100, 60, 0.1 }, { 200, 120, 0.3 } })
      local b = run_dir({ { 100, 300, 0.2 }, { 200, 600, 0.4 } })
      local out = run_dir({})
      local files = assert(viz.compare_runs({ { dir = a, label = "A", color = "#123456" },
                                              { dir = b, label = "B", color = "#123456", dash = true } }, { out = out }))
      assert.equal(3, #files)
      local f = assert(io.open(out .. "/compare_exact.svg"))
      local svg = f:read("*a")
      f:close()
      assert.is_true(balanced(svg))
      assert.truthy(svg:find("training CPU minutes", 1, true))
      assert.equal(2, count(svg, '<polyline fill="none" stroke="#123456"'))
      assert.equal(2, count(svg, 'stroke%-dasharray="6,4"'))  -- B's line and its legend entry
      -- the x-axis spans 1 to 10 CPU minutes (60 s .. 600 s): it ends at 10
      assert.truthy(svg:find(">10<", 1, true))
      files = assert(viz.compare_runs({ a, b }, { out = out, x = "step" }))
      f = assert(io.open(out .. "/compare_loss.svg"))
      svg = f:read("*a")
      f:close()
      assert.truthy(svg:find(">step<", 1, true))
   end)

   it("refuses bad arguments and reports a missing run", function()
      local out = run_dir({})
      assert.error_matches(function() viz.compare_runs({}, { out = out }) end, "expected a list of runs", 1, true)
      assert.error_matches(function() viz.compare_runs({ out }, {}) end, "option 'out'", 1, true)
      assert.error_matches(function() viz.compare_runs({ out }, { out = out, x = "epoch" }) end,
                           "option 'x' must be", 1, true)
      local ok, err = viz.compare_runs({ out .. "/none" }, { out = out })
      assert.is_nil(ok)
      assert.truthy(tostring(err):find("none", 1, true))
   end)
end)
