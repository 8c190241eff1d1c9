-- scripts/plot.lua — SVG charts of training runs: `hrm scripts/plot.lua RUN_DIR`, or several run
-- directories to compare them on one chart each.
--
-- One run: reads RUN_DIR/metrics.jsonl (written by hrm.train) and writes into RUN_DIR: loss.svg,
-- accuracy.svg, steps.svg (mean halting steps), lr.svg and halting.svg (the halting-step
-- histogram of the last evaluation; halting_<set>.svg per set when there are several).
-- Several runs: compare_exact.svg, compare_accuracy.svg and compare_loss.svg into --out, against
-- training CPU minutes (--axis cpu, the default), steps or wall minutes; runs whose names differ
-- only by a seed suffix (-s1, -s2, "seed 3") share a colour, the later ones dashed.
-- Needs no external program; open the files in any browser. User errors exit with status 1.
local viz = require "hrm.viz"
local cli = require "hrm.cli"

local PROG = "plot.lua"
local function die(msg) cli.die(PROG, msg) end
local a = cli.parse(PROG, { ... }, {
   usage = "hrm scripts/plot.lua RUN_DIR [RUN_DIR ...] [options]",
   description = "One run directory: writes loss.svg, accuracy.svg, steps.svg, lr.svg and halting.svg (one per " ..
                 "evaluation set when there are several) into it from its metrics.jsonl. Several: compares them " ..
                 "in compare_exact.svg, compare_accuracy.svg and compare_loss.svg.",
   positional = true,
   { "comparing several runs",
      { "--out DIR", "str", "folder for the comparison charts (default: the current folder)" },
      { "--axis NAME", "str", "cpu (training CPU minutes, default), step or time (wall minutes)" },
      { "--labels LIST", "str", "comma-separated legend names, one per run (default: the folder names)" },
      { "--set NAME", "str", "evaluation set to compare (default: each run's first)" },
      { "--title TEXT", "str", "prefix of the charts' titles" },
   },
   { "options" },
})
local dirs = a.positional
if #dirs == 0 then die("give a run directory (see --help)") end
for i, d in ipairs(dirs) do
   dirs[i] = d:gsub("/+$", "")
   if not cli.exists(dirs[i] .. "/metrics.jsonl") then die("no metrics.jsonl in " .. dirs[i]) end
end

if #dirs == 1 then
   local dir = dirs[1]
   local recs, skipped = viz.read_metrics(dir .. "/metrics.jsonl")
   if not recs then die(skipped) end
   if #recs == 0 then die(dir .. "/metrics.jsonl holds no records yet") end
   local files, err = viz.plot_run(dir)
   if not files then die(err) end
   for _, p in ipairs(files) do print(p) end
   if skipped > 0 then io.stderr:write(PROG, ": skipped ", skipped, " malformed lines\n") end
   return
end

local labels = {}
if a.labels then
   for l in (a.labels .. ","):gmatch("([^,]*),") do labels[#labels + 1] = l end
   if #labels ~= #dirs then die(string.format("--labels names %d runs, %d were given", #labels, #dirs)) end
end
if a.axis and a.axis ~= "cpu" and a.axis ~= "step" and a.axis ~= "time" then die("--axis expects cpu, step or time, got '" .. a.axis .. "'") end
-- Seeds of one model share a colour: the label without a trailing seed suffix is the model.
local runs, colors, seen = {}, {}, {}
for i, d in ipairs(dirs) do
   local label = labels[i] or d:match("[^/]+$")
   local model = label:gsub("[%s_-]+s%d+$", ""):gsub("[%s_-]+seed%s*%d+$", "")
   if not colors[model] then
      local n = 0
      for _ in pairs(colors) do n = n + 1 end
      colors[model] = viz.palette[n % #viz.palette + 1]
   end
   runs[i] = { dir = d, label = label, color = colors[model], dash = seen[model] }
   seen[model] = true
end
local out = a.out or "."
if not cli.is_dir(out) then die("--out: no such folder: " .. out) end
local files, err = viz.compare_runs(runs, { out = out, x = a.axis, set = a.set, title = a.title })
if not files then die(err) end
for _, p in ipairs(files) do print(p) end
