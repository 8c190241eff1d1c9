-- scripts/solve.lua — solve puzzles with a trained HRM and show them: `hrm scripts/solve.lua --help`.
--
-- Puzzles come from the arguments, a file (a CSV or ARC JSON the task reads, or one puzzle per
-- line) or stdin; each is rendered with the task's `render` next to the model's answer, with the
-- segments used and the Q head's halting confidence sigmoid(q_halt). --trace shows the prediction
-- after every segment; --halt max|q|verify chooses the halting policy. Tasks that can check an
-- answer (check in the adapter: Sudoku, Maze) say whether it is valid. User errors print one line
-- and exit with status 1.
local hrm = require "hrm"
local ffi = require "ffi"
local cli = require "hrm.cli"

local PROG = "solve.lua"

local SPEC = {
   usage = "hrm scripts/solve.lua CHECKPOINT [PUZZLE ...] [options]",
   description = "CHECKPOINT is a run directory (its best.hrm, else last.hrm), a .hrm checkpoint, or a " ..
                 ".safetensors file (with --config, or the run's config.json beside it).\n" ..
                 "PUZZLE is a puzzle string: Sudoku 81 characters ('.' or '0' blank), maze n*n characters " ..
                 "of \"# SG\" (quote it); other tasks read it as their `puzzle`/`question`/`input` field. " ..
                 "With no PUZZLE and no --file, puzzles are read from stdin, one per line ('-' also reads stdin).",
   positional = true,
   { "options",
      { "--file FILE", "str", "puzzles from FILE: a CSV or JSON the task loads (solutions, when present, " ..
                              "are checked), else one puzzle per line" },
      { "--limit N", "int", "at most N puzzles" },
      { "--task NAME|FILE", "str", "sudoku, maze, arc or an adapter .lua (default: the run's task)" },
      { "--size N", "int", "board size variant" },
      { "--config NAME|FILE", "str", "config for a .safetensors file" },
      { "--set KEY=VALUE", "list", "with --config: override a config field (repeatable)" },
      { "--arch NAME|FILE", "str", "with --config: hrm, trm, trm_mlp, transformer or a model file" },
      { "--ema", "flag", "use the run's EMA weights" },
      { "--halt max|q|verify", "str", "max: run halt_max_steps segments (default); q: stop when the Q " ..
                                      "head says halt (q_halt > q_continue); verify: stop each puzzle " ..
                                      "once its answer checks (tasks with check: sudoku, maze)" },
      { "--max-steps N", "int", "at most N segments (default: the model's halt_max_steps)" },
      { "--trace", "flag", "show the prediction after every segment" },
      { "--no-color", "flag", "plain text rendering" },
      { "--threads N", "int", "CPU threads" },
   },
}

local function die(msg) cli.die(PROG, msg) end

local exists, is_dir, clean = cli.exists, cli.is_dir, cli.clean

-- A puzzle string as an example of the task.
local function example_of(task, s)
   if task.name:match("^sudoku") then return { puzzle = s } end
   if task.name:match("^maze") then return { question = s } end
   return { puzzle = s, question = s, input = s }
end

-- -> list of examples (tables the task's encode reads)
local function read_examples(task, a)
   local list = {}
   local function add_line(line, where)
      line = line:gsub("\r$", "")
      if line:match("%S") then list[#list + 1] = { example = example_of(task, line), where = where } end
   end
   if a.file then
      if not exists(a.file) then die("--file: no such file: " .. a.file) end
      if (a.file:match("%.csv$") or a.file:match("%.json$")) and type(task.load) == "function" then
         local ok, items, err = pcall(task.load, a.file, { limit = a.limit })
         if not ok then die(clean(items)) end
         if not items then die(clean(err)) end
         for i, item in ipairs(items) do
            if item.test and item.train then            -- an ARC task: its test pairs
               for j, p in ipairs(item.test) do
                  list[#list + 1] = { example = p, where = string.format("%s test %d", item.id, j) }
               end
            else
               list[#list + 1] = { example = item, where = string.format("%s row %d", a.file, i) }
            end
         end
      else
         local n = 0
         for line in io.lines(a.file) do
            n = n + 1
            add_line(line, string.format("%s line %d", a.file, n))
         end
      end
   end
   local from_stdin = false
   for i = 2, #a.positional do
      if a.positional[i] == "-" then from_stdin = true
      else
         local where = string.format("argument %d", i - 1)
         list[#list + 1] = { example = example_of(task, a.positional[i]), where = where }
      end
   end
   if from_stdin or (#a.positional < 2 and not a.file) then
      local n = 0
      for line in io.stdin:lines() do
         n = n + 1
         add_line(line, string.format("stdin line %d", n))
      end
   end
   if a.limit then
      while #list > a.limit do list[#list] = nil end
   end
   if #list == 0 then die("no puzzles given (arguments, --file or stdin)") end
   return list
end

local function sigmoid(x) return 1 / (1 + math.exp(-x)) end

local function main(argv)
   local a = cli.parse(PROG, argv, SPEC)
   local ckpt = a.positional[1]
   if not ckpt then die("give a checkpoint (a run directory, .hrm or .safetensors file); see --help") end
   if not exists(ckpt) and not is_dir(ckpt) then die("no such file: " .. ckpt) end
   local halt = a.halt or "max"
   if halt ~= "max" and halt ~= "q" and halt ~= "verify" then
      die("--halt expects max, q or verify, got '" .. halt .. "'")
   end
   if a.threads then hrm.set_threads(a.threads) end
   local model, _, _, task = cli.model_and_task(PROG, ckpt, a, cli.config_of(PROG, a, true))
   local cfg = model:config()
   if halt == "verify" and type(task.check) ~= "function" then
      die("--halt verify needs a task that can check an answer (sudoku, maze); " .. task.name .. " has no check")
   end
   local items = read_examples(task, a)
   local S, H = cfg.seq_len, a["max-steps"] or cfg.halt_max_steps
   local color = not a["no-color"] and require("hrm.progress").is_tty()
   local ropts = { color = color }

   local CHUNK = 64
   local solved, known = 0, 0
   for first = 1, #items, CHUNK do
      local last = math.min(#items, first + CHUNK - 1)
      local B = last - first + 1
      local inputs = hrm.Tensor.zeros(B, S, "i32")
      local x = inputs:data()
      local lab = {}
      for r = 0, B - 1 do
         local item = items[first + r]
         local ok, inp, l = pcall(task.encode, item.example)
         if not ok then die(item.where .. ": " .. clean(inp)) end
         for s = 0, S - 1 do x[r * S + s] = inp[s] end
         lab[r] = l
      end
      local traces = {}
      local policy = halt
      local function stops(t, r) -- does halt = q | verify stop row r (0-based) now?
         if halt == "q" then return t.q_halt_logits:data()[r] > t.q_continue_logits:data()[r] end
         return halt == "verify" and task.check(items[first + r].example, t.predictions:data() + r * S)
      end
      if halt == "verify" and not a.trace then
         policy = function(t)
            local stop, act = {}, t.active:data()
            for r = 0, B - 1 do if act[r] == 1 and stops(t, r) then stop[#stop + 1] = r + 1 end end
            return stop
         end
      end
      if a.trace then
         policy = function(t)
            local p, act = t.predictions:data(), t.active:data()
            local qh, qc = t.q_halt_logits:data(), t.q_continue_logits:data()
            local stop = {}
            for r = 0, B - 1 do
               if act[r] == 1 then
                  local tok = ffi.new("uint8_t[?]", S)
                  for s = 0, S - 1 do tok[s] = p[r * S + s] end
                  traces[r] = traces[r] or {}
                  traces[r][#traces[r] + 1] = { segment = t.segment, tokens = tok, q = qh[r] }
                  if stops(t, r) then stop[#stop + 1] = r + 1 end
               end
            end
            return stop
         end
      end
      local res = model:solve({ inputs = inputs }, { halt = policy, max_steps = H })
      local pred, steps, qh = res.predictions:data(), res.steps:data(), res.q_halt_logits:data()
      for r = 0, B - 1 do
         local item = items[first + r]
         local tok = ffi.new("uint8_t[?]", S)
         for s = 0, S - 1 do tok[s] = pred[r * S + s] end
         print(string.format("== puzzle %d (%s)", first + r, item.where))
         if a.trace and traces[r] then
            for _, t in ipairs(traces[r]) do
               print(string.format("-- segment %d, Q-halt confidence %.3f", t.segment, sigmoid(t.q)))
               local ok, text = pcall(task.render, item.example, t.tokens, ropts)
               print(ok and text or ("(render failed: " .. clean(text) .. ")"))
            end
            print("-- answer")
         end
         local ok, text = pcall(task.render, item.example, tok, ropts)
         print(ok and text or ("(render failed: " .. clean(text) .. ")"))
         local line = string.format("steps %d/%d, Q-halt confidence %.3f (sigmoid of q_halt %.2f)", steps[r], H,
                                    sigmoid(qh[r]), qh[r])
         -- correctness when the example carries its answer
         local l, ignore = lab[r], task.ignore_label_id or 0
         local has_label = false
         for s = 0, S - 1 do if l[s] ~= ignore then has_label = true break end end
         if has_label then
            known = known + 1
            local same = true
            for s = 0, S - 1 do
               if l[s] ~= ignore and l[s] ~= tok[s] then same = false break end
            end
            if same then solved = solved + 1 end
            line = line .. (same and ", correct" or ", wrong")
         end
         if type(task.check) == "function" then
            local valid, why = task.check(item.example, tok)
            line = line .. (valid and ", valid answer" or ", not a valid answer (" .. tostring(why) .. ")")
         end
         print(line)
      end
   end
   if known > 0 then print(string.format("%d of %d puzzles with known answers solved", solved, known)) end
end

main({ ... })
