-- tasks/maze.lua: Maze task adapter (HRM_SPEC §5.4, §6.1) for n x n mazes (default 30 x 30).
-- `require "tasks.maze"` is the 30x30 adapter; `.new{size = 15}` makes variants.
-- Encoding: "# SGo" -> tokens 1..5 ('#' wall, ' ' open, 'S' start, 'G' goal, 'o' path), PAD 0,
-- vocab 6, seq_len n*n, every cell supervised. Mazes are strings of n*n characters whose
-- leading/trailing spaces are data (never strip them). The label marks one BFS shortest path
-- (cells strictly between S and G) with 'o'.
-- Does not: require `hrm`; BFS and generation run on FFI arrays, not per-cell tables.

local ffi = require "ffi"
local util = require "tasks.util"

local byte, format, concat = string.byte, string.format, table.concat
local floor = math.floor

local CHARS = "# SGo"
local WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
local token_of = {}
for i = 1, #CHARS do token_of[byte(CHARS, i)] = i end

local function new(opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("maze.new: opts must be a table", 2) end
   local n = opts.size or 30
   if type(n) ~= "number" or n < 3 or n > 181 or n ~= floor(n) then
      error("maze.new: size must be an integer in 3..181", 2)
   end
   local NN = n * n
   local color_default = opts.color ~= false

   local A = {
      name = n == 30 and "maze" or format("maze%dx%d", n, n),
      size = n, vocab_size = 6, seq_len = NN,
      pad_id = 0, ignore_label_id = 0, blank_identifier_id = 0,
      chars = CHARS,
   }
   A.new = new

   local dist = ffi.new("int32_t[?]", NN)
   local dist2 = ffi.new("int32_t[?]", NN)
   local queue = ffi.new("int32_t[?]", NN)
   local tok_a = ffi.new("uint8_t[?]", NN)
   local tok_b = ffi.new("uint8_t[?]", NN)

   -- to_tokens(s, out) -> true | nil, err
   local function to_tokens(s, out)
      if type(s) == "string" then
         if #s ~= NN then return nil, format("maze has %d characters, expected %d", #s, NN) end
         for i = 1, NN do
            local t = token_of[byte(s, i)]
            if not t then return nil, format("bad character %q at position %d", s:sub(i, i), i) end
            out[i - 1] = t
         end
         return true
      elseif type(s) == "cdata" or type(s) == "table" then
         local t = util.token_reader(s, NN, "maze")
         for i = 0, NN - 1 do out[i] = t[i] end
         return true
      end
      return nil, "maze must be a string or tokens"
   end

   local function to_string(tok)
      local buf = ffi.new("char[?]", NN)
      for i = 0, NN - 1 do
         local t = tok[i]
         buf[i] = (t >= 1 and t <= 5) and byte(CHARS, t) or 63
      end
      return ffi.string(buf, NN)
   end

   -- bfs(tok, src, d, passable) fills d with move counts from src (-1 unreachable).
   -- passable(t) is implied: every non-wall cell, or with `path_only` only S, G and 'o' cells.
   local function bfs(tok, src, d, path_only)
      for i = 0, NN - 1 do d[i] = -1 end
      d[src] = 0
      queue[0] = src
      local head, tail = 0, 1
      while head < tail do
         local c = queue[head]
         head = head + 1
         local r, col, dc = floor(c / n), c % n, d[c] + 1
         for k = 1, 4 do
            local nb
            if k == 1 then nb = r > 0 and c - n or -1
            elseif k == 2 then nb = r < n - 1 and c + n or -1
            elseif k == 3 then nb = col > 0 and c - 1 or -1
            else nb = col < n - 1 and c + 1 or -1 end
            if nb >= 0 and d[nb] < 0 then
               local t = tok[nb]
               local ok
               if path_only then ok = t == START or t == GOAL or t == PATH else ok = t ~= WALL end
               if ok then
                  d[nb] = dc
                  queue[tail] = nb
                  tail = tail + 1
               end
            end
         end
      end
   end

   local function find_token(tok, want)
      local at, count = -1, 0
      for i = 0, NN - 1 do
         if tok[i] == want then at, count = i, count + 1 end
      end
      return at, count
   end

   -- shortest_distance(maze) -> moves from S to G (nil when unreachable or S/G missing)
   function A.shortest_distance(maze)
      local ok, err = to_tokens(maze, tok_a)
      if not ok then error("maze.shortest_distance: " .. err, 2) end
      local s, g = find_token(tok_a, START), find_token(tok_a, GOAL)
      if s < 0 or g < 0 then return nil end
      bfs(tok_a, s, dist)
      return dist[g] >= 0 and dist[g] or nil
   end

   ------------------------------------------------------------------------------------------
   -- encode / decode

   -- encode(example [, inputs, labels]) -> inputs, labels (uint8_t[n*n] each)
   function A.encode(example, inputs, labels)
      if type(example) ~= "table" then error("maze.encode: example must be a table", 2) end
      inputs = inputs or ffi.new("uint8_t[?]", NN)
      labels = labels or ffi.new("uint8_t[?]", NN)
      local ok, err = to_tokens(example.question, inputs)
      if not ok then error("maze.encode: question: " .. err, 2) end
      if example.answer ~= nil then
         ok, err = to_tokens(example.answer, labels)
         if not ok then error("maze.encode: answer: " .. err, 2) end
      else
         ffi.fill(labels, NN, 0)
      end
      return inputs, labels
   end

   -- decode(tokens) -> maze string ('?' for PAD or out-of-range tokens)
   function A.decode(tokens)
      return to_string(util.token_reader(tokens, NN, "maze.decode"))
   end

   ------------------------------------------------------------------------------------------
   -- Loading

   -- load(path [, opts]) -> list of { question, answer, path_length, ... } | nil, err
   -- CSV with header question,answer[,path_length] (spaces are data). opts.limit.
   function A.load(path, lopts)
      if type(path) ~= "string" then error("maze.load: path must be a string", 2) end
      lopts = lopts or {}
      local header, rows = util.read_csv(path, { limit = lopts.limit })
      if not header then return nil, rows end
      local qi = util.column_index(header, "question", "inputs", "puzzle")
      local ai = util.column_index(header, "answer", "labels", "solution")
      if not qi then return nil, path .. ": no question column in the header" end
      local out = {}
      for _, row in ipairs(rows) do
         local ex = {}
         for j, name in ipairs(header) do
            if j ~= qi and j ~= ai then ex[name] = tonumber(row[j]) or row[j] end
         end
         ex.question = row[qi]
         ex.answer = ai and row[ai] or nil
         local ok, err = to_tokens(ex.question, tok_a)
         if ok and ex.answer then ok, err = to_tokens(ex.answer, tok_a) end
         if not ok then return nil, format("%s: line %d: %s", path, row.lineno, err) end
         out[#out + 1] = ex
      end
      return out
   end

   ------------------------------------------------------------------------------------------
   -- Generator: recursive backtracker on the odd-cell lattice, extra openings (loops), then
   -- S and G at BFS distance >= min_path, and one random BFS shortest path as the label.

   local stack = ffi.new("int32_t[?]", NN)
   local nbuf = ffi.new("int32_t[4]")

   local function carve(tok, rng, loops)
      for i = 0, NN - 1 do tok[i] = WALL end
      local cells = floor((n - 1) / 2)                       -- lattice cells per side
      local r0 = 2 * (rng:random(cells) - 1) + 1
      local c0 = 2 * (rng:random(cells) - 1) + 1
      local top = 0
      stack[0] = r0 * n + c0
      tok[r0 * n + c0] = OPEN
      while top >= 0 do
         local c = stack[top]
         local r, col = floor(c / n), c % n
         local k = 0
         if r >= 3 and tok[c - 2 * n] == WALL then nbuf[k] = c - 2 * n; k = k + 1 end
         if r + 2 <= 2 * cells - 1 and tok[c + 2 * n] == WALL then nbuf[k] = c + 2 * n; k = k + 1 end
         if col >= 3 and tok[c - 2] == WALL then nbuf[k] = c - 2; k = k + 1 end
         if col + 2 <= 2 * cells - 1 and tok[c + 2] == WALL then nbuf[k] = c + 2; k = k + 1 end
         if k == 0 then
            top = top - 1
         else
            local nb = nbuf[rng:random(k) - 1]
            tok[(c + nb) / 2] = OPEN
            tok[nb] = OPEN
            top = top + 1
            stack[top] = nb
         end
      end
      if loops > 0 then
         for r = 1, n - 2 do
            for col = 1, n - 2 do
               local c = r * n + col
               if tok[c] == WALL then
                  local h = tok[c - 1] ~= WALL and tok[c + 1] ~= WALL and tok[c - n] == WALL and tok[c + n] == WALL
                  local v = tok[c - n] ~= WALL and tok[c + n] ~= WALL and tok[c - 1] == WALL and tok[c + 1] == WALL
                  if (h or v) and rng:uniform() < loops then tok[c] = OPEN end
               end
            end
         end
      end
   end

   local function random_open(tok, rng)
      while true do
         local c = rng:random(NN) - 1
         if tok[c] == OPEN then return c end
      end
   end

   -- pick_far(d, lo, hi, rng) -> a random cell with lo <= d <= hi, or -1
   local function pick_far(d, lo, hi, rng)
      local count = 0
      for i = 0, NN - 1 do
         if d[i] >= lo and d[i] <= hi then count = count + 1 end
      end
      if count == 0 then return -1 end
      local k = rng:random(count)
      for i = 0, NN - 1 do
         if d[i] >= lo and d[i] <= hi then
            k = k - 1
            if k == 0 then return i end
         end
      end
      return -1
   end

   local function farthest(d)
      local best, at = -1, -1
      for i = 0, NN - 1 do
         if d[i] > best then best, at = d[i], i end
      end
      return at
   end

   -- mark_path(tok, s, g, rng): a random shortest S->G path, using dist2 = BFS from G
   local function mark_path(tok, s, g, rng)
      bfs(tok, g, dist2)
      local c = s
      while true do
         local r, col, want = floor(c / n), c % n, dist2[c] - 1
         if want == 0 then break end
         local k = 0
         if r > 0 and dist2[c - n] == want then nbuf[k] = c - n; k = k + 1 end
         if r < n - 1 and dist2[c + n] == want then nbuf[k] = c + n; k = k + 1 end
         if col > 0 and dist2[c - 1] == want then nbuf[k] = c - 1; k = k + 1 end
         if col < n - 1 and dist2[c + 1] == want then nbuf[k] = c + 1; k = k + 1 end
         c = nbuf[rng:random(k) - 1]
         tok[c] = PATH
      end
   end

   -- generate(count [, opts]) -> list of { question, answer, path_length } | nil, err
   -- opts.min_path (BFS moves S->G, default floor(n*n*109/900): 109 for 30x30, HRM's "hard"),
   -- opts.max_path, opts.loops (probability of opening a wall between two corridors,
   -- default 0.1), opts.rng or opts.seed (default 1), opts.max_tries per maze (default 100).
   function A.generate(count, gopts)
      if type(count) ~= "number" or count < 0 then error("maze.generate: count must be a non-negative number", 2) end
      gopts = gopts or {}
      local rng = gopts.rng and util.as_rng(gopts.rng, "maze.generate") or util.rng(gopts.seed or 1)
      local lo = gopts.min_path or floor(NN * 109 / 900)
      local hi = gopts.max_path or NN
      local loops = gopts.loops or 0.1
      local max_tries = gopts.max_tries or 100
      if n < 5 then error("maze.generate: size must be at least 5", 2) end
      local out = {}
      for i = 1, count do
         local tries, s, g = 0, -1, -1
         while g < 0 do
            tries = tries + 1
            if tries > max_tries then
               return nil, format("maze.generate: no %dx%d maze with a path of %d..%d moves after %d tries",
                  n, n, lo, hi, max_tries)
            end
            carve(tok_a, rng, loops)
            for _ = 1, 4 do
               s = random_open(tok_a, rng)
               bfs(tok_a, s, dist)
               g = pick_far(dist, math.max(lo, 1), hi, rng)
               if g >= 0 then break end
               s = farthest(dist)
               bfs(tok_a, s, dist)
               g = pick_far(dist, math.max(lo, 1), hi, rng)
               if g >= 0 then break end
            end
         end
         tok_a[s], tok_a[g] = START, GOAL
         local moves = dist[g]
         local question = to_string(tok_a)
         mark_path(tok_a, s, g, rng)
         out[i] = { question = question, answer = to_string(tok_a), path_length = moves }
      end
      return out
   end

   ------------------------------------------------------------------------------------------
   -- Augmentation: the 8 dihedral transforms (HRM dataset/common.py dihedral_transform)

   local function transform(s, tid)
      if s == nil then return nil end
      local ok, err = to_tokens(s, tok_b)
      if not ok then error("maze.augment: " .. err, 3) end
      local map = util.dihedral_map(tid, n)
      local out = ffi.new("uint8_t[?]", NN)
      for i = 0, NN - 1 do out[i] = tok_b[map[i]] end
      if type(s) == "string" then return to_string(out) end
      return out
   end

   -- augment(example, rng) -> example', aug = { tid = 0..7 }
   function A.augment(example, rng)
      if type(example) ~= "table" then error("maze.augment: example must be a table", 2) end
      rng = util.as_rng(rng, "maze.augment")
      local tid = rng:random(8) - 1
      return A.transform(example, tid), { tid = tid }
   end

   -- transform(example, tid) -> example with the dihedral transform tid applied
   function A.transform(example, tid)
      local out = {}
      for k, v in pairs(example) do out[k] = v end
      out.question = transform(example.question, tid)
      out.answer = transform(example.answer, tid)
      return out
   end

   -- inverse(aug, prediction) -> prediction in the original frame (string or tokens)
   function A.inverse(aug, prediction)
      if type(aug) ~= "table" or type(aug.tid) ~= "number" then error("maze.inverse: bad aug", 2) end
      return transform(prediction, util.DIHEDRAL_INVERSE[aug.tid])
   end

   ------------------------------------------------------------------------------------------
   -- Evaluation

   -- check_path(question, prediction) -> true | false, reason
   -- True when the prediction keeps every non-open cell of the question, puts 'o' only on
   -- open cells, and its 'o' cells with S and G form a connected S->G path of the optimal
   -- length (#o + 1 == BFS distance), i.e. it is some shortest path.
   function A.check_path(question, prediction)
      local ok, err = to_tokens(question, tok_a)
      if not ok then error("maze.check_path: question: " .. err, 2) end
      ok, err = to_tokens(prediction, tok_b)
      if not ok then return false, err end
      local s, ns = find_token(tok_a, START)
      local g, ng = find_token(tok_a, GOAL)
      if ns ~= 1 or ng ~= 1 then return false, "question needs exactly one S and one G" end
      local npath = 0
      for i = 0, NN - 1 do
         local q, p = tok_a[i], tok_b[i]
         if q == OPEN then
            if p == PATH then npath = npath + 1 elseif p ~= OPEN then return false, "open cell changed" end
         elseif p ~= q then
            return false, format("cell %d changed from %q", i + 1, CHARS:sub(q, q))
         end
      end
      bfs(tok_a, s, dist)
      if dist[g] < 0 then return false, "goal unreachable" end
      if npath + 1 ~= dist[g] then
         return false, format("path has %d cells, a shortest path has %d", npath, dist[g] - 1)
      end
      bfs(tok_b, s, dist2, true)
      if dist2[g] < 0 then return false, "path is not connected from S to G" end
      return true
   end

   -- check(example, prediction) -> true | false, reason: a shortest path (check_path) for the
   -- example's question; the prediction is a maze string or tokens.
   function A.check(example, prediction)
      if type(example) ~= "table" or type(example.question) ~= "string" then
         error("maze.check: bad argument #1 (example): expected a table {question = maze string}", 2)
      end
      return A.check_path(example.question, type(prediction) == "string" and prediction or A.decode(prediction))
   end

   -- example(s) -> the example of a maze string; solve(self, model, puzzles [, opts]) (util.solve_with).
   function A.example(s) return { question = s } end
   function A.solve(_, model, puzzles, sopts) return util.solve_with(A, model, puzzles, sopts) end

   -- evaluate(predictions, examples) -> { n, exact_accuracy, shortest_path_accuracy, accuracy }
   -- exact: every cell equals the label (HRM/TRM's metric); shortest_path: any valid shortest
   -- path (more lenient; report which one you use); accuracy: per cell vs the label.
   function A.evaluate(predictions, examples)
      if type(predictions) ~= "table" or type(examples) ~= "table" then
         error("maze.evaluate: predictions and examples must be lists", 2)
      end
      if #predictions ~= #examples then
         error(format("maze.evaluate: %d predictions for %d examples", #predictions, #examples), 2)
      end
      local exact, valid, cells, total = 0, 0, 0, #examples
      for i = 1, total do
         local p = predictions[i]
         if type(p) ~= "string" then p = A.decode(p) end
         local ex = examples[i]
         if type(ex.answer) ~= "string" then error("maze.evaluate: example " .. i .. " has no answer", 2) end
         local same = 0
         for k = 1, NN do
            if byte(p, k) == byte(ex.answer, k) then same = same + 1 end
         end
         cells = cells + same
         if same == NN then exact = exact + 1 end
         if A.check_path(ex.question, p) then valid = valid + 1 end
      end
      return {
         n = total,
         exact_accuracy = total > 0 and exact / total or 0,
         shortest_path_accuracy = total > 0 and valid / total or 0,
         accuracy = total > 0 and cells / (total * NN) or 0,
      }
   end

   ------------------------------------------------------------------------------------------
   -- Rendering

   local ansi = util.ansi
   local CELL = {
      [WALL] = util.bg256(240) .. "  " .. ansi.reset,
      [OPEN] = "  ",
      [START] = util.bg256(34) .. ansi.bold .. "S " .. ansi.reset,
      [GOAL] = util.bg256(160) .. ansi.bold .. "G " .. ansi.reset,
      [PATH] = util.bg256(220) .. "  " .. ansi.reset,
   }
   local ALT_PATH = util.bg256(114) .. "  " .. ansi.reset        -- valid, differs from label
   local EXTRA = util.bg256(196) .. "xx" .. ansi.reset           -- predicted, not in label
   local MISSING = util.fg256(220) .. "··" .. ansi.reset         -- in label, not predicted

   -- render(example [, prediction [, opts]]) -> string
   -- Without a prediction shows the question (opts.solution = true: the answer). With one,
   -- a valid shortest path that differs from the label is drawn green; otherwise cells that
   -- differ from the label are marked (colour: red xx / dotted; plain: 'x' extra, '-' missing).
   function A.render(example, prediction, ropts)
      if type(example) ~= "table" then error("maze.render: example must be a table", 2) end
      ropts = ropts or {}
      local color = color_default
      if ropts.color ~= nil then color = ropts.color end
      local shown = prediction
      if shown ~= nil and type(shown) ~= "string" then shown = A.decode(shown) end
      local label = example.answer
      local valid = shown ~= nil and A.check_path(example.question, shown)
      if shown == nil then shown = ropts.solution and label or example.question end
      if type(shown) ~= "string" or #shown ~= NN then error("maze.render: bad maze", 2) end
      local lines = {}
      for r = 0, n - 1 do
         local row = {}
         for c = 1, n do
            local i = r * n + c
            local ch = shown:sub(i, i)
            local t = token_of[byte(ch)]
            local lch = label and label:sub(i, i)
            local cell
            if prediction ~= nil and label and ch ~= lch then
               if valid then
                  cell = color and (t == PATH and ALT_PATH or CELL[t]) or ch
               elseif ch == "o" then
                  cell = color and EXTRA or "x"
               elseif lch == "o" then
                  cell = color and MISSING or "-"
               else
                  cell = color and EXTRA or "x"
               end
            else
               cell = color and (CELL[t] or "??") or ch
            end
            row[c] = cell
         end
         lines[#lines + 1] = concat(row)
      end
      return concat(lines, "\n")
   end

   ------------------------------------------------------------------------------------------
   -- Dataset

   -- dataset{ examples = list | path = csv, aug = false, limit } -> arrays | nil, err
   -- One group per maze; with aug = true the group holds the 8 dihedral variants (tid 0..7,
   -- as the reference's --aug), one example each, puzzle identifier 0.
   function A.dataset(dopts)
      if type(dopts) ~= "table" then error("maze.dataset: expected an options table", 2) end
      local examples = dopts.examples
      if examples == nil then
         if type(dopts.path) ~= "string" then error("maze.dataset: give examples or path", 2) end
         local err
         examples, err = A.load(dopts.path, { limit = dopts.limit })
         if not examples then return nil, err end
      end
      local groups = {}
      for i, ex in ipairs(examples) do
         local group = { { identifier = 0, examples = { ex } } }
         if dopts.aug then
            for tid = 1, 7 do group[#group + 1] = { identifier = 0, examples = { A.transform(ex, tid) } } end
         end
         groups[i] = group
      end
      return util.finish_dataset(util.build_arrays(A, groups, { num_puzzle_identifiers = 1 }), dopts)
   end

   return A
end

return new()
