-- scripts/bench_tasks.lua: one-core throughput (os.clock) of the task adapters: 9x9 Sudoku
-- generate+encode at 35 givens, Sudoku at 24 givens with solver branch statistics, and ARC
-- augmented variants + arrays for a few tasks (<arc dir>/arc-agi_evaluation_challenges.json
-- with --arc, else synthetic tasks). Writes nothing; does not use the `hrm` engine.
-- Usage: luajit scripts/bench_tasks.lua [--n 100000] [--hard 2000] [--arc ../shared/data/arc]
--        [--arc-tasks 5] [--num-aug 1000] [--seed 1]   (--help lists them)

local root = (arg and arg[0] or ""):match("^(.-)scripts/[^/]*$")
if root then
   root = root == "" and "./" or root
   package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. package.path
end

local ffi = require "ffi"
local util = require "tasks.util"
local sudoku = require "tasks.sudoku"
local arc = require "tasks.arc"

local opts = require("hrm.cli").parse("bench_tasks.lua", { ... }, {
   usage = "luajit scripts/bench_tasks.lua [options]",
   { "options",
      { "--n N", "int", "9x9 Sudoku puzzles generated and encoded (default 100000)" },
      { "--hard N", "int", "Sudoku puzzles at 24 givens (default 2000)" },
      { "--arc DIR", "str", "an ARC data directory (default: synthetic tasks)" },
      { "--arc-tasks K", "int", "ARC tasks (default 5)" },
      { "--num-aug A", "int", "augmented variants per ARC task (default 1000)" },
      { "--seed S", "int0", "seed (default 1)" },
   },
})
for k, v in pairs({ n = 100000, hard = 2000, ["arc-tasks"] = 5, ["num-aug"] = 1000, seed = 1 }) do
   if opts[k] == nil then opts[k] = v end
end

local function percentile(sorted, p)
   if #sorted == 0 then return 0 end
   return sorted[math.max(1, math.ceil(p * #sorted))]
end

print(string.format("LuaJIT %s, one core, CPU seconds from os.clock()", jit and jit.version or "?"))

-- 1. Sudoku at 35 givens: generate and encode, in chunks into a reused row buffer --------------
do
   local n, chunk = opts.n, 1000
   local inputs, labels = ffi.new("uint8_t[?]", chunk * 81), ffi.new("uint8_t[?]", chunk * 81)
   local rng = util.rng(opts.seed)
   local t0, done, checksum = os.clock(), 0, 0
   while done < n do
      local k = math.min(chunk, n - done)
      local ex = assert(sudoku.generate(k, { givens = 35, rng = rng }))
      for i = 1, k do
         sudoku.encode(ex[i], inputs + (i - 1) * 81, labels + (i - 1) * 81)
      end
      checksum = checksum + inputs[0] + labels[80]
      done = done + k
   end
   local dt = os.clock() - t0
   print(string.format("sudoku 9x9, 35 givens, unique: %d generated+encoded in %.2f s = %.0f puzzles/s (%.1f us each)",
      n, dt, n / dt, dt / n * 1e6))
end

-- 2. Sudoku at 24 givens: branch statistics -------------------------------------------------
do
   local n = opts.hard
   local t0 = os.clock()
   local ex = assert(sudoku.generate(n, { givens = 24, rng = util.rng(opts.seed + 1) }))
   local dt = os.clock() - t0
   local b, zero, sum = {}, 0, 0
   for i, e in ipairs(ex) do
      b[i] = e.branches
      sum = sum + e.branches
      if e.branches == 0 then zero = zero + 1 end
   end
   table.sort(b)
   print(string.format("sudoku 9x9, 24 givens, unique: %d in %.2f s = %.0f puzzles/s (%.1f us each)",
      n, dt, n / dt, dt / n * 1e6))
   print(string.format("  solver branches (count to 2): mean %.2f, median %d, p90 %d, p99 %d, max %d; %.1f%% need none",
      sum / n, percentile(b, 0.5), percentile(b, 0.9), percentile(b, 0.99), b[#b], 100 * zero / n))
   local t1 = os.clock()
   for _, e in ipairs(ex) do sudoku.solve(e.puzzle) end
   local ds = os.clock() - t1
   print(string.format("  re-solving them: %.1f us each", ds / n * 1e6))
end

-- 3. ARC augmented variants -------------------------------------------------------------------
do
   local tasks, source
   if opts.arc then
      local path = opts.arc .. "/arc-agi_evaluation_challenges.json"
      local t0 = os.clock()
      local all, err = arc.load(path)
      if not all then
         io.stderr:write("cannot load ARC tasks: " .. tostring(err) .. "\n")
         os.exit(1)
      end
      print(string.format("arc: loaded %d tasks from %s in %.2f s", #all, path, os.clock() - t0))
      tasks = {}
      for i = 1, math.min(opts["arc-tasks"], #all) do tasks[i] = all[i] end
      source = "ARC-AGI-1 evaluation"
   else
      local rng = util.rng(opts.seed)
      tasks = {}
      for t = 1, opts["arc-tasks"] do
         local function grid(h, w)
            local rows = {}
            for r = 1, h do
               rows[r] = {}
               for c = 1, w do rows[r][c] = rng:random(10) - 1 end
            end
            return arc.grid(rows)
         end
         local pairs_ = {}
         for p = 1, 3 do
            local h, w = rng:random(5, 20), rng:random(5, 20)
            pairs_[p] = { input = grid(h, w), output = grid(h, w) }
         end
         tasks[t] = { id = string.format("synthetic%02d", t), split = "evaluation",
            train = pairs_, test = { { input = grid(10, 10), output = grid(10, 10) } } }
      end
      source = "synthetic (3 pairs of 5..20 x 5..20 + 1 test)"
   end
   local t0 = os.clock()
   local train, built = arc.dataset{ arrays = true, tasks = tasks, num_aug = opts["num-aug"], seed = opts.seed }
   local test = arc.dataset{ arrays = true, built = built, split = "test" }
   local dt = os.clock() - t0
   local variants = built.num_puzzle_identifiers - 1
   print(string.format("arc: %d tasks (%s), num_aug %d: %d variants, %d train + %d test rows in %.2f s",
      #tasks, source, opts["num-aug"], variants, train.n, test.n, dt))
   print(string.format("  = %.0f variants/s, %.0f encoded rows/s (augment + de-duplicate + translate + encode)",
      variants / dt, (train.n + test.n) / dt))
   for _, task in ipairs(tasks) do
      local n = 0
      for _, g in ipairs(built.train) do
         if g[1].name == task.id then n = #g end
      end
      io.write(string.format("  %s: %d variants\n", task.id, n))
   end
end
