-- scripts/plot.lua — SVG charts of a training run: `hrm scripts/plot.lua RUN_DIR`.
--
-- Reads RUN_DIR/metrics.jsonl (written by hrm.train) and writes into RUN_DIR: loss.svg,
-- accuracy.svg, steps.svg (mean halting steps), lr.svg and halting.svg (the halting-step
-- histogram of the last evaluation; halting_<set>.svg per set when there are several).
-- Needs no external program; open the files in any browser. User errors exit with status 1.
local viz = require "hrm.viz"
local cli = require "hrm.cli"

local PROG = "plot.lua"
local function die(msg) cli.die(PROG, msg) end
local args = cli.parse(PROG, { ... }, {
   usage = "hrm scripts/plot.lua RUN_DIR",
   description = "Writes loss.svg, accuracy.svg, steps.svg, lr.svg and halting.svg (one per evaluation set " ..
                 "when there are several) into RUN_DIR from RUN_DIR/metrics.jsonl.",
   positional = true,
   { "options" },
}).positional
if #args ~= 1 then die(#args == 0 and "give a run directory (see --help)" or "expected one run directory, got " .. #args .. " arguments") end
local dir = args[1]:gsub("/+$", "")
local f = io.open(dir .. "/metrics.jsonl", "rb")
if not f then die("no metrics.jsonl in " .. dir) end
f:close()
local recs, skipped = viz.read_metrics(dir .. "/metrics.jsonl")
if not recs then die(skipped) end
if #recs == 0 then die(dir .. "/metrics.jsonl holds no records yet") end
local files, err = viz.plot_run(dir)
if not files then die(err) end
for _, p in ipairs(files) do print(p) end
if skipped > 0 then io.stderr:write(PROG, ": skipped ", skipped, " malformed lines\n") end
