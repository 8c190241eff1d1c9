-- demo.lua — the main job of the README: the bundled Sudoku model solves puzzles it never saw.
--
--   hrm scripts/demo.lua [--model FILE] [--n N] [--blanks A-B] [--seed S] [--show K] [--halt max|q]
--
-- Puzzles are generated with a fixed seed (unique solutions, a blank range the model was
-- trained for, read from the model file's side-car weights/*.json), solved with the chosen
-- halting policy, and the first few are rendered next to the answer; the last line gives the
-- fraction solved and the mean number of reasoning segments used.
local hrm = require "hrm"
local fs = require "hrm.fs"
local cli = require "hrm.cli"

local root = package.hrm_home or "."
local opts = { model = root .. "/weights/sudoku4.hrm", n = 64, seed = 2024, show = 3, halt = "q" }

local PROG = "demo.lua"
local a = cli.parse(PROG, { ... }, {
   usage = "hrm scripts/demo.lua [options]",
   { "options",
      { "--model FILE", "str", "a model file (default weights/sudoku4.hrm, the bundled 4x4 model)" },
      { "--n N", "int", "puzzles to solve (default 64)" },
      { "--blanks A-B", "str", "blank cells per puzzle (default: the range recorded with the model)" },
      { "--seed S", "int0", "generator seed (default 2024, a seed the training data never used)" },
      { "--show K", "int0", "puzzles to draw (default 3)" },
      { "--halt max|q", "str", "halting policy: every segment, or stop each puzzle when the Q head says so" },
   },
})
for k, v in pairs(a) do if k ~= "positional" then opts[k] = v end end
local function die(msg) cli.die(PROG, msg) end
if opts.halt ~= "max" and opts.halt ~= "q" then die("--halt expects max or q, got '" .. opts.halt .. "'") end

local model, err = hrm.Model.load(opts.model)
if not model then die(tostring(err) .. "\n---> HINT: the bundled model is weights/sudoku4.hrm") end
local card = fs.read_json((opts.model:gsub("%.hrm$", ".json")))
local cfg = model:config()
local size = math.floor(math.sqrt(cfg.seq_len) + 0.5)
local sudoku = require("tasks.sudoku").new{ size = size, color = require("hrm.progress").is_tty() }

local lo, hi
if opts.blanks then
   lo, hi = opts.blanks:match("^(%d+)%-(%d+)$")
   lo, hi = tonumber(lo or opts.blanks), tonumber(hi or opts.blanks)
elseif card and card.blanks then
   lo, hi = card.blanks[1], card.blanks[2]
else
   lo, hi = 10, 20
end
local cells = cfg.seq_len
if not lo or not hi or lo > hi or hi > cells then
   die(string.format("--blanks expects A-B with 0 <= A <= B <= %d (the cells of a %dx%d board), got '%s'", cells, size,
                     size, tostring(opts.blanks)))
end

local t0 = hrm.C.hrm_wall_time()
local puzzles = assert(sudoku.generate(opts.n, { blanks = { lo, hi }, seed = opts.seed }))
local S = cfg.seq_len
local inputs = hrm.Tensor.zeros(opts.n, S, "i32")
local p = inputs:data()
for r = 1, opts.n do
   local toks = sudoku.encode(puzzles[r])
   for s = 0, S - 1 do p[(r - 1) * S + s] = toks[s] end
end
local res = model:solve({ inputs = inputs }, { halt = opts.halt })
local dt = hrm.C.hrm_wall_time() - t0

local preds, solved, steps = {}, 0, 0
local pp, ps = res.predictions:data(), res.steps:data()
for r = 1, opts.n do
   local row = {}
   for s = 0, S - 1 do row[s + 1] = pp[(r - 1) * S + s] end
   preds[r] = sudoku.decode(row)
   if preds[r] == puzzles[r].solution then solved = solved + 1 end
   steps = steps + ps[r - 1]
end

print(string.format("hrm %s — %s (%.2fM parameters), %s halting", hrm.version(), opts.model,
                    model:num_parameters() / 1e6, opts.halt))
print(string.format("%d generated %dx%d puzzles with %d-%d blanks (seed %d), never seen in training\n",
                    opts.n, size, size, lo, hi, opts.seed))
local function sigmoid(x) return 1 / (1 + math.exp(-x)) end
for r = 1, math.min(opts.show, opts.n) do
   local ok = preds[r] == puzzles[r].solution
   print(string.format("puzzle %d: %s after %d segment(s), Q-halt confidence %.2f", r,
                       ok and "solved" or "not solved", ps[r - 1], sigmoid(res.q_halt_logits[r])))
   print(sudoku.render(puzzles[r], preds[r]))
   print()
end
print(string.format("solved %d / %d (%.1f%%), mean %.2f segments, %.2f s", solved, opts.n,
                    100 * solved / opts.n, steps / opts.n, dt))
