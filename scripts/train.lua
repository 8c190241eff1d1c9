-- scripts/train.lua — train an HRM on a task from the command line: `hrm scripts/train.lua --help`.
--
-- Builds the task's data (generated puzzles, a CSV, ARC JSON, a reference dataset directory or an
-- .hrmd file), the model (a preset or a Lua config file, with vocab/seq_len/puzzle ids from the
-- data), AdamATan2 and the reference's warmup-cosine schedule, then runs hrm.train into a run
-- directory (config.json, metrics.jsonl, last.hrm, best.hrm). User errors (bad option, task,
-- number or file) print one line and exit with status 1; Ctrl-C saves and exits with 130.
local hrm = require "hrm"
local train = require "hrm.train"
local cli = require "hrm.cli"

local PROG = "train.lua"

local SPEC = {
   usage = "hrm scripts/train.lua [options]",
   description = "Train a Hierarchical Reasoning Model. The run directory receives config.json, metrics.jsonl " ..
                 "(one JSON object per log/eval line), last.hrm and best.hrm; plot it with scripts/plot.lua.",
   epilog = "exit status: 0 done, 1 error, 130 interrupted (Ctrl-C; the last complete step is saved)",
   strict_ranges = true,
   { "task and model",
      { "--task NAME|FILE", "str", "sudoku (default), maze, arc, or the path of an adapter .lua file" },
      { "--size N", "int", "board size variant (sudoku 4/6/9/16, maze n) through task.new{size=N}" },
      { "--arch NAME|FILE", "str", "model: hrm (default), trm, trm_mlp (TRM with token mixing), transformer " ..
                                   "(the TRM repository's baseline), or a model file's path" },
      { "--config NAME|FILE", "str", "model size preset tiny (default), small, hrm_v1 (the arch's reference " ..
                                     "size), or a Lua file returning config overrides (reference field names)" },
      { "--set KEY=VALUE", "list", "override one config field, e.g. --set halt_max_steps=8 (repeatable)" },
      { "--device cpu|cuda", "str", "where the model runs (default cpu)" },
      { "--threads N", "int", "CPU threads" },
   },
   { "training data (one of)",
      { "--generate N", "int", "N generated puzzles (sudoku, maze, or an adapter with generate)" },
      { "--blanks A-B", "range", "with --generate, sudoku: blank cells per puzzle (e.g. 20-40)" },
      { "--min-path N", "int", "with --generate, maze: shortest path length of at least N moves" },
      { "--gen KEY=VALUE", "list", "with --generate: any other generator option (repeatable; A-B gives {A, B})" },
      { "--csv FILE", "str", "puzzles from a CSV file (sudoku, maze)" },
      { "--arc PATH", "str", "ARC: a challenges JSON file, a single-task JSON, or a directory with " ..
                             "arc-agi_*_challenges.json (subsets from --arc-subsets) or task files" },
      { "--arc-subsets LIST", "str", "ARC subsets in a directory (default training,evaluation,concept)" },
      { "--data DIR", "str", "a reference dataset directory (DIR/train, DIR/test with dataset.json)" },
      { "--hrmd FILE", "str", "an .hrmd dataset file" },
      { "--aug N", "int0", "augmented copies per puzzle (sudoku: N, maze: N > 0 = the 8 dihedral variants, " ..
                           "arc: N colour/dihedral variants, default 8)" },
      { "--limit N", "int", "read at most N puzzles (CSV rows, ARC tasks per file)" },
   },
   { "evaluation",
      { "--eval-csv FILE", "str", "held-out puzzles from a CSV file" },
      { "--eval-generate N", "int", "N held-out generated puzzles (default with --generate: N/10, 32..256)" },
      { "--eval-hrmd FILE", "str", "held-out .hrmd dataset" },
      { "--no-eval", "flag", "no evaluation" },
      { "--eval-every N", "int", "evaluate (and checkpoint) every N steps (default: steps/10)" },
      { "--eval-batch N", "int", "evaluation batch size (default: --batch)" },
      { "--best METRIC", "str", "metric choosing best.hrm (default exact_accuracy; SET/METRIC allowed)" },
   },
   { "optimisation",
      { "--steps N", "int", "length of the run in optimizer steps (default 1000)" },
      { "--epochs N", "num", "length of the run in passes over the data (instead of --steps)" },
      { "--minutes M", "num", "a budget: stop after M minutes of training CPU time (process CPU time, all " ..
        "threads; evaluations excluded) or at --steps, whichever comes first" },
      { "--batch N", "int", "rows per micro-batch (default 32)" },
      { "--accumulate K", "int", "micro-batches per optimizer step, each with its own carry (default 1)" },
      { "--lr X", "num", "learning rate (default 1e-4)" },
      { "--puzzle-emb-lr X", "num", "puzzle embedding learning rate (default 1e-2)" },
      { "--weight-decay X", "num", "AdamATan2 weight decay (default 0.1)" },
      { "--puzzle-emb-weight-decay X", "num", "puzzle embedding weight decay (default 0.1)" },
      { "--beta1 X", "num", "AdamATan2 beta1 (default 0.9)" },
      { "--beta2 X", "num", "AdamATan2 beta2 (default 0.95)" },
      { "--warmup N", "int0", "linear warmup steps (default min(2000, steps/10))" },
      { "--min-ratio R", "num", "cosine floor as a fraction of the rate (default 1: constant)" },
      { "--ema D", "num", "keep an EMA of the weights with decay D (e.g. 0.999), used for evals" },
      { "--curriculum FILE", "str", "a Lua file returning function(step, metrics, ctx) " ..
                                    "(see scripts/curricula/sudoku_blanks.lua)" },
      { "--seed N", "int0", "data and model seed (default 0)" },
   },
   { "run",
      { "--run DIR", "str", "run directory (default runs/<task>-<date>-<time>)" },
      { "--resume PATH", "str", "continue a run from its last.hrm (or a run directory) exactly; without " ..
                                "data options, with the options the run was started with" },
      { "--log-every N", "int", "log line interval (default 10)" },
      { "--plain", "flag", "plain log lines even on a terminal" },
      { "--quiet", "flag", "no output but errors" },
   },
}

local function die(msg) cli.die(PROG, msg) end

-- ---- arguments ----------------------------------------------------------------------------------

local function pairs_table(list, what) return cli.pairs_table(PROG, list, what) end
local exists, is_dir = cli.exists, cli.is_dir

local function need_file(p, what)
   if not exists(p) then die(string.format("%s: no such file: %s", what, p)) end
end

-- ---- data ------------------------------------------------------------------------------------------

local function arc_tasks(task, path, a)
   local files, ferr = task.files(path, a["arc-subsets"])
   if not files then die("--arc: " .. ferr) end
   local tasks = {}
   for _, f in ipairs(files) do
      local list, err = task.load(f, { limit = a.limit })
      if not list then die(err) end
      for _, t in ipairs(list) do tasks[#tasks + 1] = t end
   end
   return tasks, files
end

local function generate(task, n, seed, a)
   if type(task.generate) ~= "function" then die("task '" .. task.name .. "' has no generator; use --csv or --data") end
   local gopts = pairs_table(a.gen, "gen")
   gopts.seed = seed
   if a.blanks then gopts.blanks = a.blanks end
   if a["min-path"] then gopts.min_path = a["min-path"] end
   local ok, list, err = pcall(task.generate, n, gopts)
   if not ok then die(cli.clean(list)) end
   if not list then die(err) end
   return list
end

local function arrays_of(task, dopts)
   local ok, arrays, err = pcall(task.dataset, dopts)
   if not ok then die(cli.clean(arrays)) end
   if not arrays then die(err) end
   return arrays
end

local function task_dataset(task, examples, a, is_train)
   local d = { examples = examples, seed = a.seed }
   if is_train and a.aug and a.aug > 0 then
      if task.name:match("^maze") then d.aug = true else d.num_aug = a.aug end
   end
   return arrays_of(task, d)
end

local function load_dataset(path, split, what)
   local ds, err = hrm.data.Dataset.load(path, split)
   if not ds then die(what .. ": " .. tostring(err)) end
   return ds
end

-- -> train source, eval sets (name -> source), meta {vocab_size, seq_len, num_puzzle_identifiers}, description
local function build_data(task, a)
   local sources = 0
   for _, k in ipairs({ "generate", "csv", "arc", "data", "hrmd" }) do if a[k] then sources = sources + 1 end end
   if sources > 1 then die("give one training data source (--generate, --csv, --arc, --data or --hrmd)") end
   if sources == 0 then die("no training data: give --generate N, --csv FILE, --arc PATH, --data DIR or --hrmd FILE") end
   local data, evals, desc = nil, {}, {}
   if a.generate then
      data = task_dataset(task, generate(task, a.generate, a.seed + 1, a), a, true)
      desc.generate, desc.blanks, desc.min_path, desc.gen = a.generate, a.blanks, a["min-path"], pairs_table(a.gen, "gen")
      if not (a["no-eval"] or a["eval-csv"] or a["eval-generate"] or a["eval-hrmd"]) then
         a["eval-generate"] = math.max(32, math.min(256, math.floor(a.generate / 10)))
      end
   elseif a.csv then
      need_file(a.csv, "--csv")
      data = arrays_of(task, { path = a.csv, limit = a.limit, seed = a.seed,
                               num_aug = (a.aug and a.aug > 0 and not task.name:match("^maze")) and a.aug or nil,
                               aug = task.name:match("^maze") and a.aug and a.aug > 0 or nil })
      desc.csv = a.csv
   elseif a.arc then
      if not task.name:match("^arc") then die("--arc needs --task arc") end
      local tasks, files = arc_tasks(task, a.arc, a)
      local ok, built = pcall(task.build, tasks, { num_aug = a.aug or 8, seed = a.seed })
      if not ok then die(tostring(built)) end
      data = arrays_of(task, { built = built, split = "train" })
      if not a["no-eval"] and #built.test > 0 then evals.test = arrays_of(task, { built = built, split = "test" }) end
      desc.arc, desc.arc_files, desc.aug, desc.limit = a.arc, files, a.aug or 8, a.limit
   elseif a.data then
      if not is_dir(a.data) then die("--data: no such directory: " .. a.data) end
      data = load_dataset(a.data, exists(a.data .. "/train/dataset.json") and "train" or nil, "--data")
      if not a["no-eval"] and exists(a.data .. "/test/dataset.json") then evals.test = load_dataset(a.data, "test", "--data") end
      desc.data = a.data
   elseif a.hrmd then
      need_file(a.hrmd, "--hrmd")
      data = load_dataset(a.hrmd, nil, "--hrmd")
      desc.hrmd = a.hrmd
   end
   if not a["no-eval"] then
      if a["eval-csv"] then
         need_file(a["eval-csv"], "--eval-csv")
         evals.eval = arrays_of(task, { path = a["eval-csv"] })
         desc.eval_csv = a["eval-csv"]
      elseif a["eval-generate"] then
         evals.eval = task_dataset(task, generate(task, a["eval-generate"], a.seed + 100003, a), a, false)
         desc.eval_generate = a["eval-generate"]
      elseif a["eval-hrmd"] then
         need_file(a["eval-hrmd"], "--eval-hrmd")
         evals.eval = load_dataset(a["eval-hrmd"], nil, "--eval-hrmd")
         desc.eval_hrmd = a["eval-hrmd"]
      end
   end
   local meta
   if type(data.meta) == "function" then meta = data:meta()
   else meta = { vocab_size = data.vocab_size, seq_len = data.seq_len, num_puzzle_identifiers = data.num_puzzle_identifiers } end
   return data, evals, meta, desc
end

-- ---- model ------------------------------------------------------------------------------------------

local function model_config(a, meta)
   local over = pairs_table(a.set, "set")
   local defaults = hrm.config.preset("tiny")
   for k, v in pairs(over) do
      if type(defaults[k]) == "number" and type(v) ~= "number" then
         die(string.format("--set %s=%s: %s expects a number", k, tostring(v), k))
      end
   end
   over.vocab_size, over.seq_len = meta.vocab_size, meta.seq_len
   over.num_puzzle_identifiers = meta.num_puzzle_identifiers or 1
   for k, v in pairs(cli.arch_of(PROG, a)) do if over[k] == nil then over[k] = v end end
   local name = a.config or "tiny"
   local ok, cfg
   if cli.PRESETS[name] then
      ok, cfg = pcall(hrm.config.preset, name, over)
   else
      need_file(name, "--config")
      local chunk, err = loadfile(name)
      if not chunk then die("--config: " .. tostring(err)) end
      local lok, t = pcall(chunk)
      if not lok then die("--config: " .. tostring(t)) end
      if type(t) ~= "table" then die("--config: " .. name .. " must return a table of config fields") end
      for k, v in pairs(over) do t[k] = v end
      ok, cfg = pcall(hrm.config.complete, t)
   end
   if not ok then die(cli.clean(cfg)) end
   return cfg
end

-- ---- resume ----------------------------------------------------------------------------------------------

-- --resume PATH without a data option: the command line the run was started with (config.json's
-- meta.args) less its --run (the run continues where it is resumed from, even as a copied folder),
-- then this one, whose options win.
local function resumed_args(path, argv)
   if not exists(path) then die("--resume: no such file or run directory: " .. path) end
   local dir = is_dir(path) and path or (path:match("^(.*)/[^/]*$") or ".")
   local cfg, err = require("hrm.fs").read_json(dir .. "/config.json")
   if not cfg then die("--resume: cannot read the run's options: " .. tostring(err)) end
   local saved = type(cfg.meta) == "table" and cfg.meta.args
   if type(saved) ~= "table" then die("--resume: " .. dir .. "/config.json holds no command line; give the data options again") end
   local args = {}
   local i = 1
   while i <= #saved do
      if saved[i] == "--run" then i = i + 1 -- and its value
      elseif not tostring(saved[i]):match("^%-%-run=") then args[#args + 1] = saved[i] end
      i = i + 1
   end
   for _, s in ipairs(argv) do args[#args + 1] = s end
   return args
end

-- ---- main ------------------------------------------------------------------------------------------------

local function main(argv)
   -- Output may go into `| tee log`, whose reader dies with the Ctrl-C that asks the run to save
   -- and stop: writes then fail quietly (EPIPE) instead of killing hrm before its save or its
   -- exit status (130).
   hrm.C.hrm_sigpipe_ignore(1)
   local a = cli.parse(PROG, argv, SPEC)
   if a.resume and not (a.generate or a.csv or a.arc or a.data or a.hrmd) then
      argv = resumed_args(a.resume, argv)
      a = cli.parse(PROG, argv, SPEC)
   end
   a.seed = a.seed or 0
   if a.threads then hrm.set_threads(a.threads) end
   if a.device then
      local ok, err = pcall(hrm.set_default_device, a.device)
      if not ok then die(cli.clean(err)) end
   end
   if a.steps and a.epochs then die("give --steps or --epochs, not both") end
   if a.minutes and not (a.minutes > 0) then die("--minutes expects a number > 0, got " .. a.minutes) end
   if a.ema and (a.ema <= 0 or a.ema >= 1) then die("--ema expects a decay in (0, 1), got " .. a.ema) end
   if a["min-ratio"] and a["min-ratio"] > 1 then die("--min-ratio expects a number in [0, 1]") end
   for _, b in ipairs({ "beta1", "beta2" }) do
      if a[b] and a[b] >= 1 then die("--" .. b .. " expects a number in [0, 1)") end
   end
   local task_name = a.task or "sudoku"
   local task, terr = require("tasks.registry").load(task_name, { size = a.size })
   if not task then die(terr) end
   local curriculum
   if a.curriculum then
      need_file(a.curriculum, "--curriculum")
      local chunk, err = loadfile(a.curriculum)
      if not chunk then die("--curriculum: " .. tostring(err)) end
      local ok, c = pcall(chunk)
      if not ok then die("--curriculum: " .. tostring(c)) end
      if type(c) == "table" then c = c.curriculum end
      if type(c) ~= "function" then die("--curriculum: " .. a.curriculum .. " must return a function(step, metrics, ctx)") end
      curriculum = c
   end
   if a.resume and not exists(a.resume) and not is_dir(a.resume) then die("--resume: no such file: " .. a.resume) end
   local cfg_probe = a.config
   if cfg_probe and not cli.PRESETS[cfg_probe] then need_file(cfg_probe, "--config") end
   cli.arch_of(PROG, a)

   local data, evals, meta, desc = build_data(task, a)
   local cfg = model_config(a, meta)
   local batch = a.batch or 32
   local k = a.accumulate or 1
   local steps = a.steps
   if a.epochs then
      local n
      if type(data.meta) == "function" then
         local m = data:meta()
         n = m.total_groups * m.mean_puzzle_examples
      else
         n = data.total_groups * data.mean_puzzle_examples
      end
      steps = math.max(1, math.floor(a.epochs * n / (batch * k)))
   end
   steps = steps or 1000
   local warmup = a.warmup or math.min(2000, math.floor(steps / 10))
   local run_dir = a.run
   if not run_dir and a.resume then
      run_dir = is_dir(a.resume) and a.resume or (a.resume:match("^(.*)/[^/]*$") or ".")
   end
   run_dir = run_dir or string.format("runs/%s-%s", task.name, os.date("%Y%m%d-%H%M%S"))
   local has_eval = next(evals) ~= nil

   local mok, model = pcall(hrm.Model, cfg, { seed = a.seed })
   if not mok and cli.debug then error(model, 0) end
   if not mok then die((#a.set > 0 and "--set: " or "") .. cli.clean(model)) end
   local opt = hrm.optim.AdamATan2(model, {
      lr = a.lr or 1e-4, puzzle_emb_lr = a["puzzle-emb-lr"] or 1e-2, weight_decay = a["weight-decay"] or 0.1,
      puzzle_emb_weight_decay = a["puzzle-emb-weight-decay"] or 0.1, betas = { a.beta1 or 0.9, a.beta2 or 0.95 },
   })
   -- several processes (mpirun -np N): rank 0 alone prints; each rank steps on batch / N rows
   local rank, ranks = hrm.dist.init()
   local loud = not a.quiet and rank == 0
   if loud then
      print(tostring(model))
      print(string.format("task %s, %d steps of %d x %d rows%s, run directory %s", task.name, steps, batch, k,
                          ranks > 1 and string.format(" (%d ranks of %g rows)", ranks, batch / ranks) or "", run_dir))
   end
   desc.task, desc.task_arg, desc.size, desc.seed = task.name, task_name, a.size, a.seed
   desc.args = argv
   local ok, res = pcall(hrm.train, {
      model = model, optim = opt, data = data, eval = has_eval and evals or nil,
      steps = steps, batch = batch, accumulate = k, eval_batch = a["eval-batch"],
      eval_every = has_eval and (a["eval-every"] or math.max(1, math.floor(steps / 10))) or nil,
      log_every = a["log-every"] or 10, best = a.best,
      schedule = hrm.schedule.warmup_cosine{ warmup = warmup, total = steps, min_ratio = a["min-ratio"] or 1 },
      curriculum = curriculum, ema = a.ema, seed = a.seed, run = run_dir, resume = a.resume, minutes = a.minutes,
      progress = a.plain and "plain" or nil, quiet = a.quiet, meta = desc,
      context = { task = task, args = a },
   })
   if not ok then
      if rank ~= 0 then os.exit(1) end -- an error every rank raised: rank 0 says it
      local msg = tostring(res)
      if msg:match("^hrm%.train:") then die((msg:gsub("^hrm%.train: ", ""))) end
      error(res, 0)
   end
   if loud then
      local duration = require("hrm.progress").duration
      local parts = { string.format("done: step %d in %s (training CPU time %s)", res.step, duration(res.time),
                                    duration(res.train_cpu)) }
      if res.best then parts[#parts + 1] = string.format("best %s/%s %.4f at step %d", res.best.set, res.best.metric,
                                                         res.best.value, res.best.step) end
      if res.checkpoint then parts[#parts + 1] = "checkpoint " .. res.checkpoint end
      print(table.concat(parts, ", "))
   end
   if res.interrupted then os.exit(130) end
end

cli.main(PROG, main, { ... })
