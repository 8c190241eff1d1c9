-- scripts/eval.lua — evaluate a trained HRM on a dataset: `hrm scripts/eval.lua --help`.
--
-- Loads a checkpoint (a run directory, a .hrm file, or .safetensors + config), builds the data
-- (a CSV, generated puzzles, ARC JSON, a reference dataset directory or .hrmd; by default the
-- held-out set the run recorded), and reports exact and token accuracy, mean ACT steps and a
-- text histogram of halting steps; for ARC, pass@1/pass@2 after de-augmentation and voting, and
-- optionally a submission file. User errors print one line and exit with status 1.
local hrm = require "hrm"
local ffi = require "ffi"
local fs = require "hrm.fs"
local source = require "hrm.train.source"
local evaluate = require("hrm.train.evaluate").evaluate
local progress = require "hrm.progress"
local cli = require "hrm.cli"

local PROG = "eval.lua"

local SPEC = {
   usage = "hrm scripts/eval.lua CHECKPOINT [options]",
   description = "CHECKPOINT is a run directory (its best.hrm, else last.hrm), a .hrm checkpoint, or a " ..
                 ".safetensors file (with --config, or the run's config.json beside it).",
   positional = true,
   { "model",
      { "--config NAME|FILE", "str", "config for a .safetensors file: tiny, small, hrm_v1, trm, trm_mlp, " ..
                                     "transformer or a Lua file" },
      { "--arch NAME|FILE", "str", "with --config: hrm, trm, trm_mlp, transformer or a model file" },
      { "--set KEY=VALUE", "list", "override a config field (repeatable)" },
      { "--ema", "flag", "use the run's EMA weights" },
      { "--threads N", "int", "CPU threads" },
      { "--device cpu|cuda", "str", "where the model runs (default cpu)" },
   },
   { "data (default: the held-out set recorded in the run's config.json)",
      { "--task NAME|FILE", "str", "sudoku, maze, arc or an adapter .lua (default: the run's task)" },
      { "--size N", "int", "board size variant" },
      { "--csv FILE", "str", "puzzles with solutions from a CSV file" },
      { "--generate N", "int", "N generated puzzles" },
      { "--blanks A-B", "range", "with --generate, sudoku: blank cells per puzzle" },
      { "--min-path N", "int", "with --generate, maze: shortest path length of at least N moves" },
      { "--gen KEY=VALUE", "list", "with --generate: any other generator option (repeatable)" },
      { "--arc PATH", "str", "ARC challenges (a file or a directory)" },
      { "--arc-subsets LIST", "str", "ARC subsets in a directory, as in training" },
      { "--aug N", "int0", "ARC augmented variants, as in training" },
      { "--data DIR", "str", "a reference dataset directory" },
      { "--split test|train", "str", "with --data: the split (default test)" },
      { "--hrmd FILE", "str", "an .hrmd dataset" },
      { "--limit N", "int", "at most N puzzles (CSV rows, ARC tasks per file)" },
      { "--seed N", "int0", "generator/augmentation seed (default: the run's)" },
   },
   { "evaluation",
      { "--batch N", "int", "rows per batch (default 64)" },
      { "--halt max|q", "str", "max: every row runs halt_max_steps segments (the reference's evaluation, " ..
                               "default); q: each row stops when q_halt > q_continue" },
      { "--submission FILE", "str", "ARC: write the top-2 attempts per test input as JSON" },
      { "--json", "flag", "print the results as one JSON object" },
   },
}

local function die(msg) cli.die(PROG, msg) end

local function pairs_table(list, what) return cli.pairs_table(PROG, list, what) end
local exists, is_dir, clean = cli.exists, cli.is_dir, cli.clean

-- ---- data ------------------------------------------------------------------------------------------

local function arrays_of(task, dopts)
   local ok, arrays, extra = pcall(task.dataset, dopts)
   if not ok then die(clean(arrays)) end
   if not arrays then die(clean(extra)) end
   return arrays, extra
end

local function generate(task, n, seed, a, meta)
   if type(task.generate) ~= "function" then die("task '" .. task.name .. "' has no generator") end
   local gopts = pairs_table(a.gen, "gen")
   if next(gopts) == nil and type(meta.gen) == "table" then
      for k, v in pairs(meta.gen) do gopts[k] = v end
   end
   gopts.seed = seed
   gopts.blanks = a.blanks or meta.blanks
   gopts.min_path = a["min-path"] or meta.min_path
   local ok, list, err = pcall(task.generate, n, gopts)
   if not ok then die(clean(list)) end
   if not list then die(clean(err)) end
   return list
end

local function arc_built(task, a, meta)
   local files = {}
   local path = a.arc or meta.arc
   if a.arc == nil and type(meta.arc_files) == "table" then
      for _, f in ipairs(meta.arc_files) do files[#files + 1] = f end
   else
      local ferr
      files, ferr = task.files(path, a["arc-subsets"])
      if not files then die("--arc: " .. ferr) end
   end
   local tasks = {}
   for _, f in ipairs(files) do
      local list, err = task.load(f, { limit = a.limit or meta.limit })
      if not list then die(clean(err)) end
      for _, t in ipairs(list) do tasks[#tasks + 1] = t end
   end
   local ok, built = pcall(task.build, tasks, { num_aug = a.aug or meta.aug or 8, seed = a.seed or meta.seed or 0 })
   if not ok then die(clean(built)) end
   return built
end

-- -> source, description, built (ARC)
local function build_data(task, a, meta)
   local n = 0
   for _, k in ipairs({ "csv", "generate", "arc", "data", "hrmd" }) do if a[k] then n = n + 1 end end
   if n > 1 then die("give one data source (--csv, --generate, --arc, --data or --hrmd)") end
   local seed = a.seed or meta.seed or 0
   if a.csv or (n == 0 and meta.eval_csv) then
      local path = a.csv or meta.eval_csv
      if not exists(path) then die("--csv: no such file: " .. path) end
      return arrays_of(task, { path = path, limit = a.limit }), path
   elseif a.generate or (n == 0 and meta.eval_generate) then
      local count = a.generate or meta.eval_generate
      local list = generate(task, count, a.generate and seed + 200003 or seed + 100003, a, meta)
      return arrays_of(task, { examples = list }), string.format("%d generated puzzles", count)
   elseif a.arc or (n == 0 and meta.arc) then
      if not task.name:match("^arc") then die("--arc needs --task arc") end
      local built = arc_built(task, a, meta)
      if #built.test == 0 then die("the ARC data has no test pairs (evaluation tasks) to evaluate") end
      return arrays_of(task, { built = built, split = "test" }), "ARC " .. tostring(a.arc or meta.arc), built
   elseif a.data or (n == 0 and meta.data) then
      local dir = a.data or meta.data
      if not is_dir(dir) then die("--data: no such directory: " .. dir) end
      local ds, err = hrm.data.Dataset.load(dir, a.split or "test")
      if not ds then die("--data: " .. clean(err)) end
      return ds, dir .. " (" .. (a.split or "test") .. ")"
   elseif a.hrmd or (n == 0 and meta.eval_hrmd) then
      local path = a.hrmd or meta.eval_hrmd
      if not exists(path) then die("--hrmd: no such file: " .. path) end
      local ds, err = hrm.data.Dataset.load(path)
      if not ds then die("--hrmd: " .. clean(err)) end
      return ds, path
   end
   die("no evaluation data: give --csv, --generate, --arc, --data or --hrmd")
end

-- ---- output -----------------------------------------------------------------------------------------

local function histogram_text(hist, title)
   local lines = { title }
   local max = 0
   for _, c in ipairs(hist) do max = math.max(max, c) end
   local bar = progress.is_tty() and "\226\150\136" or "#"
   local total = 0
   for _, c in ipairs(hist) do total = total + c end
   for s, c in ipairs(hist) do
      local w = max > 0 and math.floor(c / max * 40 + 0.5) or 0
      if c > 0 and w == 0 then w = 1 end
      lines[#lines + 1] = string.format("  %3d | %s %d (%.1f%%)", s, bar:rep(w), c, total > 0 and 100 * c / total or 0)
   end
   return table.concat(lines, "\n")
end

-- ---- evaluation with the Q policy --------------------------------------------------------------------

local function eval_q(model, src, B, on_row)
   local it = src:batches{ batch_size = B, train = false }
   local H = model:config().halt_max_steps
   local S = model:config().seq_len
   local hist = {}
   for s = 1, H do hist[s] = 0 end
   local rows, exact, tok_ok, tok_n, steps_sum = 0, 0, 0, 0, 0
   while true do
      local b, err = it:next()
      if err then die(err) end
      if not b then break end
      local r = model:solve({ inputs = b.inputs, puzzle_identifiers = b.puzzle_identifiers }, { halt = "q" })
      local pred, lab, st = r.predictions:data(), b.labels:data(), r.steps:data()
      local n = b.count or B
      for row = 0, n - 1 do
         local good, cnt = 0, 0
         for s = 0, S - 1 do
            local y = lab[row * S + s]
            if y ~= -100 then
               cnt = cnt + 1
               if pred[row * S + s] == y then good = good + 1 end
            end
         end
         if cnt > 0 then
            rows = rows + 1
            tok_ok, tok_n = tok_ok + good / cnt, tok_n + 1
            if good == cnt then exact = exact + 1 end
            steps_sum = steps_sum + st[row]
            hist[st[row]] = hist[st[row]] + 1
         end
         if on_row then on_row(b, row, pred + row * S, r.q_halt_logits:data()[row]) end
      end
   end
   return { count = rows, exact_accuracy = rows > 0 and exact / rows or 0,
            accuracy = tok_n > 0 and tok_ok / tok_n or 0, steps = rows > 0 and steps_sum / rows or 0 }, hist
end

-- ---- main ------------------------------------------------------------------------------------------------

local function main(argv)
   local a = cli.parse(PROG, argv, SPEC)
   if #a.positional == 0 then die("give a checkpoint (a run directory, .hrm or .safetensors file); see --help") end
   if #a.positional > 1 then die("unexpected argument '" .. a.positional[2] .. "'") end
   local ckpt = a.positional[1]
   if not exists(ckpt) and not is_dir(ckpt) then die("no such file: " .. ckpt) end
   local halt = a.halt or "max"
   if halt ~= "max" and halt ~= "q" then die("--halt expects max or q, got '" .. halt .. "'") end
   if a.threads then hrm.set_threads(a.threads) end
   if a.device then
      local ok, err = pcall(hrm.set_default_device, a.device)
      if not ok then die(clean(err)) end
   end
   local model, info, meta, task = cli.model_and_task(PROG, ckpt, a, cli.config_of(PROG, a))
   local cfg = model:config()
   local data, desc, built = build_data(task, a, meta)
   if built and built.num_puzzle_identifiers ~= cfg.num_puzzle_identifiers then
      die(string.format("the ARC build has %d puzzle identifiers, the model %d\n---> HINT: use the --arc, " ..
                        "--arc-subsets, --aug, --limit and --seed of the training run", built.num_puzzle_identifiers,
                        cfg.num_puzzle_identifiers))
   end
   local src, serr = source.as_source(data)
   if not src then die(serr) end
   local B = a.batch or 64
   local S = cfg.seq_len
   local arc_rows = built and {} or nil
   local function keep_row(b, row, pred_ptr, q)
      if not arc_rows then return end
      local pid = b.puzzle_identifiers:data()[row]
      if pid == 0 then return end
      local inputs, tokens = ffi.new("uint8_t[?]", S), ffi.new("uint8_t[?]", S)
      local x = b.inputs:data()
      for s = 0, S - 1 do inputs[s], tokens[s] = x[row * S + s], pred_ptr[s] end
      arc_rows[#arc_rows + 1] = { puzzle_identifier = pid, inputs = inputs, tokens = tokens, q_halt = q }
   end

   local size = type(src.size) == "function" and src:size() or nil
   if size and size >= 1 and size < B then B = size end
   local reporter
   if not a.json and size and size > 4 * B then
      reporter = progress.new{ total = math.ceil(size / B), label = "eval", every = 10 }
   end
   local t0 = progress.clock()
   local m, hist
   if halt == "max" then
      local argmax = ffi.new("int32_t[?]", S)
      m, hist = evaluate(model, src, { batch = B, progress = reporter, on_batch = arc_rows and function(b, out, i)
         local lg, qh = out.logits:data(), out.q_halt_logits:data()
         local V = cfg.vocab_size
         for row = 0, i.rows - 1 do
            for s = 0, S - 1 do
               local base, best, arg = (row * S + s) * V, -math.huge, 0
               for v = 0, V - 1 do
                  if lg[base + v] > best then best, arg = lg[base + v], v end
               end
               argmax[s] = arg
            end
            keep_row(b, row, argmax, qh[row])
         end
      end or nil })
      if not m then die(clean(hist)) end
   else
      m, hist = eval_q(model, src, B, keep_row)
   end
   if reporter then reporter:finish() end
   local dt = progress.clock() - t0

   local result = {
      checkpoint = info.path, task = task.name, data = desc, halt = halt, ema = a.ema or false,
      count = m.count, exact_accuracy = m.exact_accuracy, accuracy = m.accuracy, mean_steps = m.steps,
      q_steps = m.q_steps, halt_histogram = fs.array(hist), seconds = dt,
   }
   if arc_rows then
      local ok, r = pcall(task.evaluate, arc_rows, built)
      if not ok then die(clean(r)) end
      result.pass_at_1, result.pass_at_2, result.arc_prize_score = r.pass_at_1, r.pass_at_2, r.arc_prize_score
      result.arc_tasks = r.n_tasks
      if a.submission then
         local wok, werr = task.write_submission(a.submission, r)
         if not wok then die("--submission: " .. clean(werr)) end
         result.submission = a.submission
      end
   elseif a.submission then
      die("--submission is for ARC evaluations")
   end

   if a.json then
      print(fs.encode(result, { nonfinite = "null" }))
      return
   end
   print(string.format("checkpoint      %s%s", info.path, a.ema and " (EMA weights)" or ""))
   print(string.format("data            %s, %d puzzles, task %s", desc, m.count, task.name))
   print(string.format("exact accuracy  %.4f", m.exact_accuracy))
   print(string.format("token accuracy  %.4f", m.accuracy))
   if halt == "max" then
      print(string.format("mean steps      %.2f (every row runs halt_max_steps); the Q head halts at %.2f on average",
                          m.steps, m.q_steps))
   else
      print(string.format("mean steps      %.2f (each row stops when q_halt > q_continue)", m.steps))
   end
   if arc_rows then
      print(string.format("ARC pass@1      %.4f", result.pass_at_1))
      print(string.format("ARC pass@2      %.4f  (%d tasks; ARC Prize score %.4f)", result.pass_at_2, result.arc_tasks,
                          result.arc_prize_score))
      if result.submission then print("submission      " .. result.submission) end
   end
   print(histogram_text(hist, halt == "max" and "halting step (first segment where q_halt > q_continue):"
                                          or "halting step:"))
   print(string.format("%.1f s", dt))
end

cli.main(PROG, main, { ... })
