-- tasks/arc.lua: ARC task adapter (HRM_SPEC §5.5, §6.2-6.3): single-task and Kaggle
-- challenges/solutions loading, the 30x30 canvas encoding (PAD 0, EOS 1, colour c -> c + 2),
-- the reference dataset build (dihedral x colour-permutation variants, de-duplicated, one
-- puzzle identifier each, train-split translation), and evaluation: crop, inverse augmentation,
-- voting (count, then mean sigmoid(q_halt)), pass@K with HRM's all-or-nothing and the ARC Prize
-- fractional task scores, and the submission JSON.
-- Grids are { h, w, d = uint8_t[h*w] } (row-major, 0..9); arc.grid / arc.rows convert lists.
-- ARC file discovery (arc.files) lists directories through hrm.fs (LuaFileSystem).
-- Does not: require the `hrm` engine, or reproduce numpy's random streams.

local ffi = require "ffi"
local util = require "tasks.util"

local format, concat = string.format, table.concat
local floor = math.floor

local PAD, EOS, COLOR_OFFSET = 0, 1, 2
local u8_array = util.u8_array

-- ARC palette as ANSI 256 colours: black, blue, red, green, yellow, grey, magenta, orange,
-- azure, maroon
local PALETTE = { [0] = 16, 27, 196, 40, 226, 248, 201, 208, 117, 88 }

---------------------------------------------------------------------------------------------
-- Grids

local function new_grid(h, w)
   return { h = h, w = w, d = u8_array(math.max(h * w, 1)) }
end

-- grid_from_rows(rows) -> grid | nil, err
local function grid_from_rows(rows)
   if type(rows) ~= "table" then return nil, "grid must be a list of rows" end
   local h = #rows
   if h == 0 or type(rows[1]) ~= "table" then return nil, "grid must be a non-empty list of rows" end
   local w = #rows[1]
   if h > 30 or w > 30 or w == 0 then return nil, format("grid size %dx%d is outside 1..30", h, w) end
   local g = new_grid(h, w)
   for r = 1, h do
      local row = rows[r]
      if type(row) ~= "table" or #row ~= w then return nil, format("row %d has a different length", r) end
      for c = 1, w do
         local v = row[c]
         if type(v) ~= "number" or v < 0 or v > 9 or v ~= floor(v) then
            return nil, format("cell (%d, %d) is not a colour 0..9", r, c)
         end
         g.d[(r - 1) * w + c - 1] = v
      end
   end
   return g
end

local function as_grid(x, what)
   if type(x) == "table" and x.d ~= nil and x.h ~= nil then return x end
   local g, err = grid_from_rows(x)
   if not g then error(format("%s: %s", what, err), 3) end
   return g
end

local function grid_rows(g)
   local rows = {}
   for r = 0, g.h - 1 do
      local row = {}
      for c = 0, g.w - 1 do row[c + 1] = g.d[r * g.w + c] end
      rows[r + 1] = row
   end
   return rows
end

local function grid_equal(a, b)
   if a.h ~= b.h or a.w ~= b.w then return false end
   for i = 0, a.h * a.w - 1 do
      if a.d[i] ~= b.d[i] then return false end
   end
   return true
end

-- grid_hash(g [, h]) -> uint64 FNV-1a state over (h, w, cells)
local function grid_hash(g, h)
   h = util.hash_int(util.hash_int(h or util.FNV_OFFSET, g.h), g.w)
   return util.hash_bytes(g.d, g.h * g.w, h)
end

local function grid_key(g)
   return util.hex64(grid_hash(g))
end

-- transform(g, tid, colors) -> new grid: colors[dihedral(g, tid)] (colors: [0..9] table or nil)
local function transform(g, tid, colors)
   local oh, ow, base, di, dj = util.dihedral(tid, g.h, g.w)
   local out = new_grid(oh, ow)
   local src, dst = g.d, out.d
   for i = 0, oh - 1 do
      local rb = base + di * i
      for j = 0, ow - 1 do
         local v = src[rb + dj * j]
         dst[i * ow + j] = colors and colors[v] or v
      end
   end
   return out
end

---------------------------------------------------------------------------------------------
-- Adapter

local function new(opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("arc.new: opts must be a table", 2) end
   local S = opts.size or 30
   if type(S) ~= "number" or S < 1 or S > 64 or S ~= floor(S) then
      error("arc.new: size must be an integer in 1..64", 2)
   end
   local SS = S * S
   local color_default = opts.color ~= false

   local A = {
      name = "arc", size = S, vocab_size = 12, seq_len = SS,
      pad_id = PAD, ignore_label_id = PAD, blank_identifier_id = 0,
      eos_id = EOS, color_offset = COLOR_OFFSET,
      DIHEDRAL_INVERSE = util.DIHEDRAL_INVERSE, palette = PALETTE,
   }
   A.new = new

   -- grid(rows_or_grid) -> grid ; rows(grid) -> nested lists ; key(grid) -> hash string
   function A.grid(x) return as_grid(x, "arc.grid") end
   function A.rows(g) return grid_rows(as_grid(g, "arc.rows")) end
   function A.grid_key(g) return grid_key(as_grid(g, "arc.grid_key")) end
   function A.grid_equal(a, b) return grid_equal(as_grid(a, "arc.grid_equal"), as_grid(b, "arc.grid_equal")) end
   function A.transform_grid(g, tid, colors) return transform(as_grid(g, "arc.transform_grid"), tid, colors) end

   ------------------------------------------------------------------------------------------
   -- encode / decode

   local function place(g, out, pr, pc, what)
      if pr + g.h > S or pc + g.w > S then
         error(format("arc.encode: %s of %dx%d at offset (%d, %d) does not fit a %dx%d canvas",
            what, g.h, g.w, pr, pc, S, S), 3)
      end
      ffi.fill(out, SS, PAD)
      for r = 0, g.h - 1 do
         for c = 0, g.w - 1 do out[(pr + r) * S + pc + c] = g.d[r * g.w + c] + COLOR_OFFSET end
      end
      local er, ec = pr + g.h, pc + g.w
      if er < S then
         for c = pc, ec - 1 do out[er * S + c] = EOS end
      end
      if ec < S then
         for r = pr, er - 1 do out[r * S + ec] = EOS end
      end
   end

   -- encode(pair [, inputs, labels]) -> inputs, labels (uint8_t[S*S] each)
   -- pair = { input = grid, output = grid|nil, pad_r = 0, pad_c = 0 }; both grids share the
   -- offset; EOS closes the row below and the column right of each grid; labels are all PAD
   -- (ignored) when the output is unknown.
   function A.encode(pair, inputs, labels)
      if type(pair) ~= "table" then error("arc.encode: pair must be a table", 2) end
      inputs = inputs or u8_array(SS)
      labels = labels or u8_array(SS)
      local pr, pc = pair.pad_r or 0, pair.pad_c or 0
      place(as_grid(pair.input, "arc.encode: input"), inputs, pr, pc, "input")
      if pair.output ~= nil then
         place(as_grid(pair.output, "arc.encode: output"), labels, pr, pc, "output")
      else
         ffi.fill(labels, SS, PAD)
      end
      return inputs, labels
   end

   -- crop(tokens) -> grid: the largest top-left rectangle whose cells are all colours
   -- (tokens 2..11), minus 2 (HRM arc_eval.ipynb); may be 0x0.
   local function crop(t)
      local max_area, bh, bw, num_c = 0, 0, 0, S
      for num_r = 1, S do
         local rb = (num_r - 1) * S
         for c = 1, num_c do
            local x = t[rb + c - 1]
            if x < 2 or x > 11 then
               num_c = c - 1
               break
            end
         end
         local area = num_r * num_c
         if area > max_area then max_area, bh, bw = area, num_r, num_c end
      end
      local g = new_grid(bh, bw)
      for r = 0, bh - 1 do
         for c = 0, bw - 1 do g.d[r * bw + c] = t[r * S + c] - COLOR_OFFSET end
      end
      return g
   end

   -- decode(tokens) -> grid (cropped at EOS/PAD)
   function A.decode(tokens)
      return crop(util.token_reader(tokens, SS, "arc.decode"))
   end
   A.crop = A.decode

   -- arc:solve(model, pairs [, opts]): pairs {input = grid} solved with a model (util.solve_with).
   function A.solve(_, model, pairs_, sopts) return util.solve_with(A, model, pairs_, sopts) end

   ------------------------------------------------------------------------------------------
   -- Loading

   local function parse_pairs(list, want_output, where)
      if type(list) ~= "table" then return nil, where .. ": expected a list of pairs" end
      local out = {}
      for i, p in ipairs(list) do
         if type(p) ~= "table" then return nil, format("%s[%d]: expected an object", where, i) end
         local gi, err = grid_from_rows(p.input)
         if not gi then return nil, format("%s[%d].input: %s", where, i, err) end
         local go
         if p.output ~= nil then
            go, err = grid_from_rows(p.output)
            if not go then return nil, format("%s[%d].output: %s", where, i, err) end
         elseif want_output then
            return nil, format("%s[%d]: missing output", where, i)
         end
         out[i] = { input = gi, output = go }
      end
      return out
   end

   local function basename(path)
      return (path:match("([^/\\]+)$") or path):gsub("%.json$", "")
   end

   -- load(path [, opts]) -> list of tasks | nil, err
   -- path: a single-task file ({"train": [...], "test": [...]}, id = file name) or a Kaggle
   -- "*_challenges.json" (solutions read from opts.solutions or the sibling
   -- "*_solutions.json" when present). Task = { id, split, train = {pairs}, test = {pairs} };
   -- split is opts.split or "evaluation" when the path contains "evaluation", else
   -- "training". opts.limit keeps the first n task ids (sorted); opts.ids selects ids.
   function A.load(path, lopts)
      if type(path) ~= "string" then error("arc.load: path must be a string", 2) end
      lopts = lopts or {}
      local data, err = util.read_json(path)
      if data == nil then return nil, err end
      if type(data) ~= "table" then return nil, path .. ": expected a JSON object" end
      local split = lopts.split or (path:find("evaluation", 1, true) and "evaluation" or "training")
      if type(data.train) == "table" and (data.train[1] ~= nil or next(data.train) == nil) then
         local train, terr = parse_pairs(data.train, true, "train")
         if not train then return nil, path .. ": " .. terr end
         local test
         test, terr = parse_pairs(data.test or {}, false, "test")
         if not test then return nil, path .. ": " .. terr end
         return { { id = lopts.id or basename(path), split = split, train = train, test = test } }
      end
      local solutions
      local spath = lopts.solutions
      if spath == nil and path:find("_challenges%.json$") then
         local guess = path:gsub("_challenges%.json$", "_solutions.json")
         if util.file_exists(guess) then spath = guess end
      end
      if spath then
         solutions, err = util.read_json(spath)
         if solutions == nil then return nil, err end
      end
      local ids = {}
      if lopts.ids then
         for _, id in ipairs(lopts.ids) do
            if data[id] == nil then return nil, path .. ": no task " .. tostring(id) end
            ids[#ids + 1] = id
         end
      else
         for id in pairs(data) do ids[#ids + 1] = id end
         table.sort(ids)
      end
      local tasks = {}
      for k, id in ipairs(ids) do
         if lopts.limit and k > lopts.limit then break end
         local raw = data[id]
         if type(raw) ~= "table" then return nil, format("%s: task %s is not an object", path, id) end
         local train, terr = parse_pairs(raw.train, true, id .. ".train")
         if not train then return nil, path .. ": " .. terr end
         local test
         test, terr = parse_pairs(raw.test or {}, false, id .. ".test")
         if not test then return nil, path .. ": " .. terr end
         local sol = solutions and solutions[id]
         if sol ~= nil then
            if type(sol) ~= "table" or #sol ~= #test then
               return nil, format("%s: task %s has %d test inputs but %s solutions", spath, id, #test,
                  type(sol) == "table" and #sol or "no")
            end
            for i, rows in ipairs(sol) do
               local g, gerr = grid_from_rows(rows)
               if not g then return nil, format("%s: %s[%d]: %s", spath, id, i, gerr) end
               test[i].output = g
            end
         end
         tasks[#tasks + 1] = { id = id, split = split, train = train, test = test }
      end
      return tasks
   end

   ------------------------------------------------------------------------------------------
   -- Augmentation

   local function aug_name(tid, colors)
      local digits = {}
      for c = 0, 9 do digits[c + 1] = colors[c] end
      return format("t%d_%s", tid, concat(digits))
   end

   local function map_pairs(pairs_, tid, colors)
      local out = {}
      for i, p in ipairs(pairs_) do
         out[i] = {
            input = transform(p.input, tid, colors),
            output = p.output and transform(p.output, tid, colors) or nil,
            pad_r = p.pad_r, pad_c = p.pad_c,
         }
      end
      return out
   end

   -- apply(x, aug) -> x transformed by aug (a task, a pair, or a grid)
   local function apply(x, aug)
      if x.d then return transform(x, aug.tid, aug.colors) end
      if x.input then
         local p = map_pairs({ x }, aug.tid, aug.colors)[1]
         for k, v in pairs(x) do
            if p[k] == nil and k ~= "output" then p[k] = v end
         end
         return p
      end
      local t = {}
      for k, v in pairs(x) do t[k] = v end
      t.train = map_pairs(x.train or {}, aug.tid, aug.colors)
      t.test = map_pairs(x.test or {}, aug.tid, aug.colors)
      t.id = x.id and (x.id .. "_" .. aug.name) or nil
      t.base_id = x.base_id or x.id
      t.aug = aug
      return t
   end

   -- make_aug(tid, colors) -> aug = { tid, colors = [0..9] old -> new, inv_colors, name }
   -- files(path [, subsets]) -> list of ARC JSON files | nil, err: path itself when it is a file;
   -- in a directory its arc-agi_<subset>_challenges.json for the comma-separated subsets (default
   -- "training,evaluation,concept"), else every *.json there that is not a *_solutions.json.
   function A.files(path, subsets)
      local fs = require "hrm.fs"
      if not fs.is_dir(path) then
         if not fs.exists(path) then return nil, "no such file: " .. path end
         return { path }
      end
      local files = {}
      for sub in (subsets or "training,evaluation,concept"):gmatch("[^,%s]+") do
         local f = format("%s/arc-agi_%s_challenges.json", path, sub)
         if fs.exists(f) then files[#files + 1] = f end
      end
      if #files == 0 then
         for _, name in ipairs(fs.list(path) or {}) do
            if name:match("%.json$") and not name:match("_solutions%.json$") then files[#files + 1] = path .. "/" .. name end
         end
      end
      if #files == 0 then return nil, "no ARC JSON files in " .. path end
      return files
   end

   function A.make_aug(tid, colors)
      if type(tid) ~= "number" or tid < 0 or tid > 7 then error("arc.make_aug: tid must be 0..7", 2) end
      colors = colors or { [0] = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }
      local inv = {}
      for c = 0, 9 do
         local v = colors[c]
         if type(v) ~= "number" or inv[v] ~= nil then error("arc.make_aug: colors must be a permutation of 0..9", 2) end
         inv[v] = c
      end
      return { tid = tid, colors = colors, inv_colors = inv, name = aug_name(tid, colors) }
   end

   local function random_aug(rng)
      local tid = rng:random(8) - 1
      local perm = util.permutation(9, rng)
      local colors = { [0] = 0 }
      for c = 1, 9 do colors[c] = perm[c] end
      return A.make_aug(tid, colors)
   end

   -- augment(x, rng) -> x', aug : x is a task, a pair or a grid; one dihedral transform
   -- (tid uniform in 0..7) and one colour permutation fixing 0, applied to every grid.
   function A.augment(x, rng)
      if type(x) ~= "table" then error("arc.augment: expected a task, pair or grid", 2) end
      rng = util.as_rng(rng, "arc.augment")
      local aug = random_aug(rng)
      return apply(x, aug), aug
   end

   -- inverse(aug, prediction) -> grid in the original frame (prediction: grid, rows or tokens)
   function A.inverse(aug, prediction)
      if type(aug) ~= "table" or type(aug.tid) ~= "number" then error("arc.inverse: bad aug", 2) end
      local g
      if type(prediction) == "cdata" then
         g = A.decode(prediction)
      else
         g = as_grid(prediction, "arc.inverse")
      end
      return transform(g, util.DIHEDRAL_INVERSE[aug.tid], aug.inv_colors)
   end

   -- task_key(task) -> hash string over the sorted per-pair hashes (de-duplication key)
   local function task_key(task)
      local hs = {}
      for _, list in ipairs({ task.train or {}, task.test or {} }) do
         for _, p in ipairs(list) do
            local h = grid_hash(p.input)
            if p.output then h = grid_hash(p.output, h) end
            hs[#hs + 1] = util.hex64(h)
         end
      end
      table.sort(hs)
      return concat(hs, "|")
   end
   A.task_key = task_key

   -- variants(task, opts) -> list of { name, aug (nil for the original), task = augmented }
   -- The original plus up to opts.num_aug (default 1000) distinct augmentations, drawn in at
   -- most retries_factor (5) * num_aug trials; duplicates are rejected by task_key.
   function A.variants(task, vopts)
      if type(task) ~= "table" or type(task.id) ~= "string" then error("arc.variants: task needs an id", 2) end
      vopts = vopts or {}
      local rng = util.as_rng(vopts.rng or vopts.seed or 42, "arc.variants")
      local num_aug = vopts.num_aug or 1000
      local trials = (vopts.retries_factor or 5) * num_aug
      local out = { { name = task.id, task = task } }
      local seen = { [task_key(task)] = true }
      for _ = 1, trials do
         if #out >= num_aug + 1 then break end
         local aug = random_aug(rng)
         local t = apply(task, aug)
         local key = task_key(t)
         if not seen[key] then
            seen[key] = true
            out[#out + 1] = { name = task.id .. "_" .. aug.name, aug = aug, task = t }
         end
      end
      return out
   end

   ------------------------------------------------------------------------------------------
   -- Dataset construction (reference build_arc_dataset.py)

   -- build(tasks, opts) -> built
   --   built.train / built.test: groups (one per task) of puzzles (one per variant)
   --     { identifier, name, examples = { pair with pad_r/pad_c } }
   --   built.identifiers: [0] = "<blank>", [id] = variant name
   --   built.variants: [id] = { task = task id, aug = aug|nil, name }
   --   built.tasks: [task id] = task ; built.test_task_ids: ids of tasks with test pairs
   -- Split: "evaluation" tasks send their train pairs to train and test pairs to test; all
   -- other tasks send every pair (with a known output) to train. On the train split all
   -- examples of a variant but one random one get a random offset (opts.translate, default
   -- true). opts: num_aug (1000), retries_factor (5), rng or seed (42), translate.
   function A.build(tasks, bopts)
      if type(tasks) ~= "table" then error("arc.build: tasks must be a list", 2) end
      bopts = bopts or {}
      local rng = bopts.rng and util.as_rng(bopts.rng, "arc.build") or util.rng(bopts.seed or 42)
      local translate = bopts.translate ~= false
      local built = { train = {}, test = {}, identifiers = { [0] = "<blank>" }, variants = {},
         tasks = {}, test_task_ids = {} }
      for _, task in ipairs(tasks) do
         built.tasks[task.id] = task
         local vs = A.variants(task, { rng = rng, num_aug = bopts.num_aug, retries_factor = bopts.retries_factor })
         local gtrain, gtest = {}, {}
         for _, v in ipairs(vs) do
            local train_ex, test_ex = {}, {}
            for _, p in ipairs(v.task.train) do train_ex[#train_ex + 1] = p end
            for _, p in ipairs(v.task.test) do
               if task.split == "evaluation" then
                  test_ex[#test_ex + 1] = p
               elseif p.output then
                  train_ex[#train_ex + 1] = p
               end
            end
            if #train_ex > 0 then
               local keep = rng:random(#train_ex)
               local exs = {}
               for i, p in ipairs(train_ex) do
                  local q = { input = p.input, output = p.output, pad_r = 0, pad_c = 0 }
                  if translate and i ~= keep then
                     local mh = math.max(p.input.h, p.output and p.output.h or 0)
                     local mw = math.max(p.input.w, p.output and p.output.w or 0)
                     q.pad_r = rng:random(S - mh + 1) - 1
                     q.pad_c = rng:random(S - mw + 1) - 1
                  end
                  exs[i] = q
               end
               gtrain[#gtrain + 1] = { name = v.name, variant = v, examples = exs }
            end
            if #test_ex > 0 then
               gtest[#gtest + 1] = { name = v.name, variant = v, examples = test_ex }
            end
         end
         if #gtrain > 0 then built.train[#built.train + 1] = gtrain end
         if #gtest > 0 then
            built.test[#built.test + 1] = gtest
            built.test_task_ids[#built.test_task_ids + 1] = task.id
         end
      end
      local ids, next_id = {}, 1
      for _, split in ipairs({ built.train, built.test }) do
         for _, group in ipairs(split) do
            for _, puzzle in ipairs(group) do
               local id = ids[puzzle.name]
               if not id then
                  id = next_id
                  next_id = next_id + 1
                  ids[puzzle.name] = id
                  built.identifiers[id] = puzzle.name
                  built.variants[id] = { task = puzzle.variant.task.base_id or puzzle.variant.task.id,
                     aug = puzzle.variant.aug, name = puzzle.name }
               end
               puzzle.identifier = id
               puzzle.variant = nil
            end
         end
      end
      built.num_puzzle_identifiers = next_id
      return built
   end

   -- dataset{ tasks = list | path = file (+ solutions) | built = A.build(...), split = "train"
   --          | "test", build options... } -> hrm.data.Dataset (arrays with arrays = true), built
   --          | nil, err
   -- The arrays come from util.build_arrays (HRM_SPEC §5.1) and carry .identifiers;
   -- built.variants maps identifiers back to (task, aug) for evaluation.
   function A.dataset(dopts)
      if type(dopts) ~= "table" then error("arc.dataset: expected an options table", 2) end
      local split = dopts.split or "train"
      if split ~= "train" and split ~= "test" then error("arc.dataset: split must be 'train' or 'test'", 2) end
      local built = dopts.built
      if built == nil then
         local tasks = dopts.tasks
         if tasks == nil then
            if type(dopts.path) ~= "string" then error("arc.dataset: give tasks, path or built", 2) end
            local err
            tasks, err = A.load(dopts.path, { solutions = dopts.solutions, split = dopts.task_split, limit = dopts.limit })
            if not tasks then return nil, err end
         end
         built = A.build(tasks, dopts)
      end
      local arrays = util.build_arrays(A, built[split], {
         num_puzzle_identifiers = built.num_puzzle_identifiers, identifiers = built.identifiers })
      return util.finish_dataset(arrays, dopts), built
   end

   ------------------------------------------------------------------------------------------
   -- Evaluation

   local function sigmoid(x) return 1 / (1 + math.exp(-x)) end

   local function to_grid(x)
      if type(x) == "cdata" then return A.decode(x) end
      if type(x) == "table" and x.d then return x end
      if type(x) == "table" and type(x[1]) == "table" then return as_grid(x, "arc.evaluate") end
      if type(x) == "table" then return A.decode(x) end
      error("arc.evaluate: expected tokens or a grid", 3)
   end

   -- evaluate(predictions, examples [, opts]) -> result
   -- examples: the `built` table from A.build/A.dataset (tasks scored: those with test
   -- pairs) or a list of tasks (scored: those with test outputs).
   -- predictions[i] = { puzzle_identifier = id (0 rows are padding and skipped) or
   --   task = id + aug = aug|nil ; inputs = tokens|grid (matched to a test input by the hash
   --   of the de-augmented input) or index = 1-based test input ; tokens|prediction =
   --   tokens|grid ; q_halt = logit (default 0) }.
   -- Votes per test input: identical de-augmented grids are pooled; ranked by count, then
   -- mean sigmoid(q_halt), then first appearance. result: pass_at[K] (HRM: a task counts only
   -- if all its test inputs are solved), score_at[K] (ARC Prize: solved / test inputs per
   -- task), input_pass_at[K], pass_at_1, pass_at_2, arc_prize_score (= score_at[2]),
   -- n_tasks, n_test_inputs, unmatched, per_task[id], ranked[id][i] = { {grid, count, q}... }.
   function A.evaluate(predictions, examples, eopts)
      if type(predictions) ~= "table" or type(examples) ~= "table" then
         error("arc.evaluate: predictions and examples must be tables", 2)
      end
      eopts = eopts or {}
      local ks = eopts.ks or { 1, 2, 10, 100, 1000 }
      local tasks, scored, variants = {}, {}, examples.variants or {}
      if examples.tasks and examples.variants then
         tasks = examples.tasks
         for _, id in ipairs(examples.test_task_ids or {}) do scored[#scored + 1] = id end
      else
         for _, t in ipairs(examples) do
            tasks[t.id] = t
            local has = false
            for _, p in ipairs(t.test or {}) do if p.output then has = true end end
            if has then scored[#scored + 1] = t.id end
         end
      end
      local input_index = {}                                   -- task id -> key -> index
      local function index_of(task, g)
         local m = input_index[task.id]
         if not m then
            m = {}
            for i, p in ipairs(task.test) do
               local k = grid_key(p.input)
               if m[k] == nil then m[k] = i end
            end
            input_index[task.id] = m
         end
         return m[grid_key(g)]
      end
      local votes, order, unmatched = {}, 0, 0
      for _, row in ipairs(predictions) do
         local pid = row.puzzle_identifier
         if pid ~= 0 then
            local v = pid and variants[pid]
            local task_id, aug
            if v then task_id, aug = v.task, v.aug else task_id, aug = row.task, row.aug end
            local task = task_id and tasks[task_id]
            local pred_x = row.tokens or row.prediction
            if task and pred_x ~= nil then
               local pred = to_grid(pred_x)
               if aug then pred = transform(pred, util.DIHEDRAL_INVERSE[aug.tid], aug.inv_colors) end
               local idx = row.index
               if idx == nil and row.inputs ~= nil then
                  local inp = to_grid(row.inputs)
                  if aug then inp = transform(inp, util.DIHEDRAL_INVERSE[aug.tid], aug.inv_colors) end
                  idx = index_of(task, inp)
               end
               if idx and task.test[idx] then
                  votes[task_id] = votes[task_id] or {}
                  local per = votes[task_id][idx] or {}
                  votes[task_id][idx] = per
                  local key = grid_key(pred)
                  local c = per[key]
                  if not c then
                     order = order + 1
                     c = { grid = pred, count = 0, q_sum = 0, order = order }
                     per[key] = c
                  end
                  c.count = c.count + 1
                  c.q_sum = c.q_sum + sigmoid(row.q_halt or 0)
               else
                  unmatched = unmatched + 1
               end
            else
               unmatched = unmatched + 1
            end
         end
      end
      local result = { pass_at = {}, score_at = {}, input_pass_at = {}, per_task = {}, ranked = {},
         n_tasks = #scored, n_test_inputs = 0, unmatched = unmatched, ks = ks }
      for _, k in ipairs(ks) do result.pass_at[k], result.score_at[k], result.input_pass_at[k] = 0, 0, 0 end
      for _, id in ipairs(scored) do
         local task = tasks[id]
         local per_task = { solved = {}, fraction = {}, inputs = #task.test }
         local ranked_task = {}
         local solved_count = {}
         for _, k in ipairs(ks) do solved_count[k] = 0 end
         for i, p in ipairs(task.test) do
            local cands = {}
            for _, c in pairs((votes[id] or {})[i] or {}) do
               cands[#cands + 1] = { grid = c.grid, count = c.count, q = c.q_sum / c.count, order = c.order }
            end
            table.sort(cands, function(a, b)
               if a.count ~= b.count then return a.count > b.count end
               if a.q ~= b.q then return a.q > b.q end
               return a.order < b.order
            end)
            ranked_task[i] = cands
            local rank
            if p.output then
               for r, c in ipairs(cands) do
                  if grid_equal(c.grid, p.output) then rank = r break end
               end
            end
            for _, k in ipairs(ks) do
               if rank and rank <= k then solved_count[k] = solved_count[k] + 1 end
            end
         end
         result.n_test_inputs = result.n_test_inputs + #task.test
         for _, k in ipairs(ks) do
            local all = solved_count[k] == #task.test
            per_task.solved[k] = all
            per_task.fraction[k] = solved_count[k] / #task.test
            result.pass_at[k] = result.pass_at[k] + (all and 1 or 0)
            result.score_at[k] = result.score_at[k] + per_task.fraction[k]
            result.input_pass_at[k] = result.input_pass_at[k] + solved_count[k]
         end
         result.per_task[id] = per_task
         result.ranked[id] = ranked_task
      end
      for _, k in ipairs(ks) do
         local nt, ni = math.max(result.n_tasks, 1), math.max(result.n_test_inputs, 1)
         result.pass_at[k] = result.pass_at[k] / nt
         result.score_at[k] = result.score_at[k] / nt
         result.input_pass_at[k] = result.input_pass_at[k] / ni
      end
      result.pass_at_1, result.pass_at_2 = result.pass_at[1], result.pass_at[2]
      result.arc_prize_score = result.score_at[2]
      result.task_order = scored
      return result
   end

   -- submission(result) -> { [task id] = { { attempt_1 = rows, attempt_2 = rows }, ... } }
   -- Top-2 voted grids per test input; one grid is used twice; none gives [[0]].
   function A.submission(result)
      if type(result) ~= "table" or type(result.ranked) ~= "table" then
         error("arc.submission: expected the result of arc.evaluate", 2)
      end
      local sub = {}
      for id, per_input in pairs(result.ranked) do
         local list = {}
         for i, cands in ipairs(per_input) do
            local a1 = cands[1] and grid_rows(cands[1].grid) or { { 0 } }
            local a2 = cands[2] and grid_rows(cands[2].grid) or a1
            list[i] = { attempt_1 = a1, attempt_2 = a2 }
         end
         sub[id] = list
      end
      return sub
   end

   -- write_submission(path, result_or_submission) -> true | nil, err
   function A.write_submission(path, x)
      if type(path) ~= "string" then error("arc.write_submission: path must be a string", 2) end
      if type(x) ~= "table" then error("arc.write_submission: expected a result or submission", 2) end
      local sub = x.ranked and A.submission(x) or x
      return util.write_file(path, util.json_encode(sub) .. "\n")
   end

   ------------------------------------------------------------------------------------------
   -- Rendering

   local ansi = util.ansi

   -- grid_lines(g, color, against) -> list of lines, visible width
   local function grid_lines(g, color, against)
      local lines = {}
      local comparable = against and against.h == g.h and against.w == g.w
      for r = 0, g.h - 1 do
         local row = {}
         for c = 0, g.w - 1 do
            local v = g.d[r * g.w + c]
            local wrong = comparable and against.d[r * g.w + c] ~= v
            if color then
               local cell = util.bg256(PALETTE[v]) .. (wrong and (util.fg256(231) .. ansi.bold .. "><") or "  ") .. ansi.reset
               row[#row + 1] = cell
            else
               row[#row + 1] = tostring(v) .. (wrong and "!" or " ")
            end
         end
         lines[#lines + 1] = concat(row)
      end
      return lines, g.w * 2
   end

   -- render_grid(grid [, opts]) -> string
   function A.render_grid(g, ropts)
      g = as_grid(g, "arc.render_grid")
      local color = color_default
      if ropts and ropts.color ~= nil then color = ropts.color end
      return concat((grid_lines(g, color)), "\n")
   end

   -- render(pair [, prediction [, opts]]) -> string
   -- input | expected | predicted side by side (ANSI 256 backgrounds; opts.color = false gives
   -- digits). Predicted cells that differ from the expected grid are marked (>< or !).
   function A.render(pair, prediction, ropts)
      if type(pair) ~= "table" then error("arc.render: pair must be a table", 2) end
      ropts = ropts or {}
      local color = color_default
      if ropts.color ~= nil then color = ropts.color end
      local cols = {}
      local input = as_grid(pair.input, "arc.render")
      local expected = pair.output and as_grid(pair.output, "arc.render")
      cols[#cols + 1] = { title = format("input %dx%d", input.h, input.w), grid = input }
      if expected then cols[#cols + 1] = { title = format("expected %dx%d", expected.h, expected.w), grid = expected } end
      if prediction ~= nil then
         local pg = to_grid(prediction)
         local mark = ""
         if expected then
            mark = grid_equal(pg, expected) and " ok" or
               ((pg.h ~= expected.h or pg.w ~= expected.w) and " wrong shape" or " wrong")
         end
         cols[#cols + 1] = { title = format("predicted %dx%d%s", pg.h, pg.w, mark), grid = pg, against = expected }
      end
      local height = 0
      for _, c in ipairs(cols) do
         c.lines, c.width = grid_lines(c.grid, color, c.against)
         c.width = math.max(c.width, #c.title)
         height = math.max(height, #c.lines)
      end
      local out = {}
      local head = {}
      for i, c in ipairs(cols) do head[i] = c.title .. string.rep(" ", c.width - #c.title) end
      out[1] = (concat(head, "   "):gsub("%s+$", ""))
      for r = 1, height do
         local parts = {}
         for i, c in ipairs(cols) do
            local line = c.lines[r]
            local vis = line and c.grid.w * 2 or 0
            parts[i] = (line or "") .. string.rep(" ", c.width - vis)
         end
         out[#out + 1] = (concat(parts, "   "):gsub("%s+$", ""))
      end
      return concat(out, "\n")
   end

   return A
end

return new()
