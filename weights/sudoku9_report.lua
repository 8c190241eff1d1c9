-- weights/sudoku9_report.lua — the tables of weights/README.md from the runs of
-- weights/sudoku9_compare.sh: `hrm weights/sudoku9_report.lua RUN_DIR...` prints Markdown.
--
-- Per run (from RUN_DIR/last.hrm and metrics.jsonl): parameters, steps done in the budget,
-- training CPU seconds per step, the step (and CPU minute) at which it broke out of copying the
-- givens — the first log line whose train exact accuracy reaches 10% — the curriculum level
-- reached, and the best exact accuracy on the run's own held-out set. From RUN_DIR/bands.jsonl
-- (sudoku9_compare.sh eval): exact and cell accuracy and the mean Q-halting step on every set.
local fs = require "hrm.fs"
local viz = require "hrm.viz"

local BREAKOUT = 0.10
local dirs = { ... }
if #dirs == 0 then
   io.stderr:write("usage: hrm weights/sudoku9_report.lua RUN_DIR...\n")
   os.exit(2)
end

local function pct(v) return v and string.format("%.1f%%", 100 * v) or "–" end

local training = { "| run | parameters | steps | CPU s/step | broke out of copying at | last level | best held-out exact (step) |",
                   "|---|---|---|---|---|---|---|" }
local sets, bands = {}, {}
for _, dir in ipairs(dirs) do
   dir = dir:gsub("/+$", "")
   local name = dir:match("[^/]+$")
   local recs = assert(viz.read_metrics(dir .. "/metrics.jsonl"))
   local model = assert(hrm.Model.load(dir .. "/last.hrm"))
   local first, last, breakout, level, best, best_step
   for _, r in ipairs(recs) do
      if r.split == "train" then
         first = first or r
         last = r
         if not breakout and r.metrics.exact_accuracy >= BREAKOUT then breakout = r end
      elseif r.split == "event" and tostring(r.message):match("^curriculum: level") then
         level = r.message:match("(%d+%-%d+ blanks)")
      elseif r.split == "eval" and (not best or r.metrics.exact_accuracy > best) then
         best, best_step = r.metrics.exact_accuracy, r.step
      end
   end
   local per_step = last and last.step > first.step and (last.cpu - first.cpu) / (last.step - first.step)
   training[#training + 1] = string.format("| %s | %.0fk | %d | %s | %s | %s | %s (%d) |", name,
      model:num_parameters() / 1e3, last and last.step or 0, per_step and string.format("%.3f", per_step) or "–",
      breakout and string.format("step %d (%.1f CPU min)", breakout.step, breakout.cpu / 60) or "never",
      level or "–", pct(best), best_step or 0)
   local f = io.open(dir .. "/bands.jsonl", "rb")
   if f then
      local row = {}
      for line in f:lines() do
         local rec = fs.decode(line)
         if rec and rec.result then
            if not sets[rec.set] then sets[#sets + 1], sets[rec.set] = rec.set, true end
            row[rec.set] = rec.result
         end
      end
      f:close()
      bands[#bands + 1] = { name = name, row = row }
   end
end
print(table.concat(training, "\n"))
if #bands > 0 then
   local function short(s) return (s:gsub("^generated ", ""):gsub("_train_subsample1k", ""):gsub("_top1465", "")) end
   for _, what in ipairs({ { "exact accuracy", "exact_accuracy", pct }, { "cell accuracy", "accuracy", pct },
                           { "mean Q-halting step", "q_steps", function(v) return v and string.format("%.2f", v) or "–" end } }) do
      local head, rule = { "| " .. what[1] .. " |" }, { "|---|" }
      for _, s in ipairs(sets) do head[#head + 1], rule[#rule + 1] = " " .. short(s) .. " |", "---|" end
      print("\n" .. table.concat(head) .. "\n" .. table.concat(rule))
      for _, b in ipairs(bands) do
         local cells = { "| " .. b.name .. " |" }
         for _, s in ipairs(sets) do cells[#cells + 1] = " " .. what[3](b.row[s] and b.row[s][what[2]]) .. " |" end
         print(table.concat(cells))
      end
   end
end
