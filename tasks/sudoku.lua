-- tasks/sudoku.lua: Sudoku task adapter (HRM_SPEC §5.3, §6.1) for N x N boards (4x4 with 2x2
-- boxes, 6x6 with 2x3, 9x9 with 3x3, ... up to 16x16). `require "tasks.sudoku"` is the 9x9
-- adapter; `.new{size = 4}` makes variants. Encoding: PAD 0, blank 1, digit d -> d + 1; labels
-- are the solution tokens, so every cell is supervised (ignore_label_id 0 never occurs).
-- Boards are strings of N*N characters ('.' or '0' blank, digits '1'-'9' then 'A'-'G').
-- Solver: bitmask candidates, naked + hidden singles, branching on the fewest candidates,
-- iterative with an FFI state stack (no per-cell tables); it counts solutions up to a limit.
-- Does not: require `hrm`, or read files other than the one passed to load().

local ffi = require "ffi"
local bit = require "bit"
local util = require "tasks.util"

local band, bor, bnot, lshift, rshift = bit.band, bit.bor, bit.bnot, bit.lshift, bit.rshift
local byte, format, concat = string.byte, string.format, table.concat
local floor = math.floor

local DIGITS = "123456789ABCDEFG"

-- value_of[byte] -> 0 blank, 1..16 digit, nil invalid
local value_of = { [46] = 0, [48] = 0 }
for i = 1, #DIGITS do
   value_of[byte(DIGITS, i)] = i
   value_of[byte(DIGITS:lower(), i)] = i
end

---------------------------------------------------------------------------------------------
-- Geometry and solver (one closure set per board shape, cached)

local geometries = {}

local function geometry(N, br, bc)
   local key = N * 10000 + br * 100 + bc
   if geometries[key] then return geometries[key] end
   local NN, full = N * N, lshift(1, N) - 1
   local P = 2 * (N - 1) + (br - 1) * (bc - 1)
   local rowof, colof, boxof = ffi.new("uint8_t[?]", NN), ffi.new("uint8_t[?]", NN), ffi.new("uint8_t[?]", NN)
   local units = ffi.new("int16_t[?]", 3 * N * N)              -- (3N units, N cells)
   local peers = ffi.new("int16_t[?]", NN * P)                 -- (NN cells, P peers)
   local popc = ffi.new("uint8_t[?]", full + 1)                -- popcount of a mask
   local low = ffi.new("uint8_t[?]", full + 1)                 -- 1 + index of the lowest bit
   local single = ffi.new("uint16_t[?]", full + 1)             -- m when m has one bit, else 0
   local one = ffi.new("uint8_t[?]", full + 1)                 -- 1 when m has one bit
   local empty = ffi.new("uint8_t[?]", full + 1)               -- 1 when m == 0
   empty[0] = 1
   for m = 1, full do
      popc[m] = popc[band(m, m - 1)] + 1
      if popc[m] == 1 then single[m], one[m] = m, 1 end
      local b, d = band(m, -m), 1
      while b > 1 do b, d = b / 2, d + 1 end
      low[m] = d
   end
   for cell = 0, NN - 1 do
      local r, c = floor(cell / N), cell % N
      rowof[cell], colof[cell] = r, c
      boxof[cell] = floor(r / br) * (N / bc) + floor(c / bc)
   end
   local fill = {}
   for u = 0, 3 * N - 1 do fill[u] = 0 end
   for cell = 0, NN - 1 do
      for _, u in ipairs({ rowof[cell], N + colof[cell], 2 * N + boxof[cell] }) do
         units[u * N + fill[u]] = cell
         fill[u] = fill[u] + 1
      end
   end
   for cell = 0, NN - 1 do
      local k = 0
      for other = 0, NN - 1 do
         if other ~= cell and (rowof[other] == rowof[cell] or colof[other] == colof[cell]
               or boxof[other] == boxof[cell]) then
            peers[cell * P + k] = other
            k = k + 1
         end
      end
      assert(k == P)
   end

   local stack = ffi.new("uint16_t[?]", (NN + 1) * NN)         -- (levels, NN) candidate masks
   local queue = ffi.new("int16_t[?]", NN + 1)
   local bcell = ffi.new("int16_t[?]", NN + 1)                 -- branch cell per level
   local brem = ffi.new("int32_t[?]", NN + 1)                  -- untried candidates per level
   local NU = 3 * N

   -- naked singles from queue[0, qn) at state offset base; false on contradiction.
   -- The peer loop is branch-free (LuaJIT side exits inside a hot inner loop are costly):
   -- every peer is written, a new single is appended by advancing qn by 0 or 1, and an
   -- emptied cell sets `bad`.
   local function naked(base, qn)
      local head = 0
      while head < qn do
         local cell = queue[head]
         head = head + 1
         local m = stack[base + cell]
         local d = low[m] - 1
         local nm = bnot(m)
         local pb = cell * P
         local bad = 0
         for k = 0, P - 1 do
            local pc = peers[pb + k]
            local pm = stack[base + pc]
            local nv = band(pm, nm)
            stack[base + pc] = nv
            queue[qn] = pc
            qn = qn + rshift(band(pm, m), d) * one[nv]
            bad = bor(bad, empty[nv])
         end
         if bad ~= 0 then return false end
      end
      return true
   end

   -- hidden singles in unit u (cells units[ub, ub+N)); returns qn or -1 on contradiction
   local function hidden_unit(base, ub, hidden, qn)
      for k = 0, N - 1 do
         local cell = units[ub + k]
         local m = stack[base + cell]
         local h = band(m, hidden)
         if h ~= 0 and popc[m] > 1 then
            if popc[h] > 1 then return -1 end
            stack[base + cell] = h
            queue[qn] = cell
            qn = qn + 1
         end
      end
      return qn
   end

   -- naked + hidden singles to a fixpoint; false on contradiction. The unit scan is one flat
   -- loop over the 3N*N unit slots (short inner loops trace poorly in LuaJIT).
   local NUN = NU * N
   local function propagate(base, qn)
      while true do
         if not naked(base, qn) then return false end
         qn = 0
         local once, twice, solved, k = 0, 0, 0, 0
         for idx = 0, NUN - 1 do
            local m = stack[base + units[idx]]
            twice = bor(twice, band(once, m))
            once = bor(once, m)
            solved = bor(solved, single[m])
            k = k + 1
            if k == N then
               if once ~= full then return false end
               local hidden = band(once, bnot(bor(twice, solved)))
               if hidden ~= 0 then
                  qn = hidden_unit(base, idx + 1 - N, hidden, qn)
                  if qn < 0 then return false end
               end
               once, twice, solved, k = 0, 0, 0, 0
            end
         end
         if qn == 0 then return true end
      end
   end

   -- search(qn0, limit, rng, out) -> count, branches
   -- Level 0 of `stack` and queue[0, qn0) must be set by the caller. The first solution is
   -- written as values 1..N into out (uint8_t[NN]) when out is given. With rng, each trial
   -- at a branch point picks a random untried candidate (used to make random full grids).
   local function search(qn0, limit, rng, out)
      local count, branches = 0, 0
      local ok = propagate(0, qn0)
      local L = 0
      while true do
         local p = L - 1
         if ok then
            local base, best, bestc = L * NN, -1, 99
            for cell = 0, NN - 1 do
               local pc = popc[stack[base + cell]]
               if pc > 1 and pc < bestc then
                  best, bestc = cell, pc
                  if pc == 2 then break end
               end
            end
            if best < 0 then
               count = count + 1
               if count == 1 and out then
                  for cell = 0, NN - 1 do out[cell] = low[stack[base + cell]] end
               end
               if count >= limit then break end
            else
               bcell[L], brem[L] = best, stack[base + best]
               p = L
            end
         end
         while p >= 0 and brem[p] == 0 do p = p - 1 end
         if p < 0 then break end
         local rem = brem[p]
         local b
         if rng then
            local m = rem
            for _ = 2, rng:random(popc[rem]) do m = band(m, m - 1) end
            b = band(m, -m)
         else
            b = band(rem, -rem)
         end
         brem[p] = rem - b
         ffi.copy(stack + (p + 1) * NN, stack + p * NN, NN * 2)
         local cell = bcell[p]
         stack[(p + 1) * NN + cell] = b
         branches = branches + 1
         L = p + 1
         queue[0] = cell
         ok = propagate(L * NN, 1)
      end
      return count, branches
   end

   -- load(vals) -> qn (givens queued) | nil when a value is out of range
   local function load(vals)
      local qn = 0
      for cell = 0, NN - 1 do
         local v = vals[cell]
         if v == 0 then
            stack[cell] = full
         elseif v <= N then
            stack[cell] = lshift(1, v - 1)
            queue[qn] = cell
            qn = qn + 1
         else
            return nil
         end
      end
      return qn
   end

   local g = {
      N = N, br = br, bc = bc, NN = NN, full = full, P = P,
      rowof = rowof, colof = colof, boxof = boxof, units = units, peers = peers,
      popc = popc, low = low, stack = stack, queue = queue,
      search = search, load = load,
   }
   geometries[key] = g
   return g
end

---------------------------------------------------------------------------------------------
-- Adapter

local function default_box(N)
   local br = floor(math.sqrt(N))
   while br > 1 and N % br ~= 0 do br = br - 1 end
   return br, N / br
end

local function new(opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("sudoku.new: opts must be a table", 2) end
   local N = opts.size or 9
   if type(N) ~= "number" or N < 4 or N > 16 or N ~= floor(N) then
      error("sudoku.new: size must be an integer in 4..16", 2)
   end
   local br, bc
   if opts.box then
      br, bc = opts.box[1], opts.box[2]
   else
      br, bc = default_box(N)
   end
   if type(br) ~= "number" or type(bc) ~= "number" or br * bc ~= N or br < 2 or bc < 2 then
      error(format("sudoku.new: size %d needs boxes r x c with r*c = %d, r, c >= 2 (got %s)",
         N, N, tostring(br) .. "x" .. tostring(bc)), 2)
   end
   local g = geometry(N, br, bc)
   local NN, full = N * N, g.full
   local popc, low, rowof, colof, boxof = g.popc, g.low, g.rowof, g.colof, g.boxof
   local stack, queue, search = g.stack, g.queue, g.search
   local color_default = opts.color ~= false

   local A = {
      name = N == 9 and "sudoku" or format("sudoku%dx%d", N, N),
      size = N, box = { br, bc },
      vocab_size = N + 2, seq_len = NN,
      pad_id = 0, ignore_label_id = 0, blank_identifier_id = 0,
      blank_token = 1,
   }
   A.new = new

   -- scratch buffers
   local vals_a = ffi.new("uint8_t[?]", NN)
   local vals_b = ffi.new("uint8_t[?]", NN)

   -- parse_into(board, out) -> true | nil, err ; board: string or FFI values (0 blank)
   local function parse_into(board, out)
      if type(board) == "string" then
         if #board ~= NN then return nil, format("board has %d characters, expected %d", #board, NN) end
         for i = 1, NN do
            local v = value_of[byte(board, i)]
            if not v or v > N then
               return nil, format("bad character %q at position %d", board:sub(i, i), i)
            end
            out[i - 1] = v
         end
         return true
      elseif type(board) == "cdata" then
         for i = 0, NN - 1 do
            local v = board[i]
            if v < 0 or v > N then return nil, format("bad value %d at index %d", tonumber(v), i) end
            out[i] = v
         end
         return true
      end
      return nil, "board must be a string or an FFI array of values"
   end

   local function format_values(vals)
      local buf = ffi.new("char[?]", NN)
      for i = 0, NN - 1 do
         local v = vals[i]
         buf[i] = v == 0 and 46 or byte(DIGITS, v)
      end
      return ffi.string(buf, NN)
   end

   -- parse(board) -> uint8_t[NN] values (0 = blank)
   function A.parse(board)
      local out = ffi.new("uint8_t[?]", NN)
      local ok, err = parse_into(board, out)
      if not ok then error("sudoku.parse: " .. err, 2) end
      return out
   end

   -- format(values) -> board string ('.' for blanks)
   function A.format(vals)
      if type(vals) ~= "cdata" then error("sudoku.format: values must be an FFI array", 2) end
      return format_values(vals)
   end

   -- count_solutions(board [, limit]) -> count (stops at limit, default 2), branches
   function A.count_solutions(board, limit)
      local ok, err = parse_into(board, vals_a)
      if not ok then error("sudoku.count_solutions: " .. err, 2) end
      local qn = g.load(vals_a)
      return search(qn, limit or 2, nil, nil)
   end

   -- solve(board [, opts]) -> solution string | nil, count, branches
   -- Counts solutions up to opts.limit (default 2): count 1 means unique. `branches` is the
   -- number of trial assignments made at branch points (0 = solved by singles alone).
   -- With a colon, sudoku:solve(model, puzzles [, opts]) solves with a model (util.solve_with).
   function A.solve(board, sopts, ...)
      if board == A then return util.solve_with(A, sopts, ...) end
      local ok, err = parse_into(board, vals_a)
      if not ok then error("sudoku.solve: " .. err, 2) end
      local limit = sopts and sopts.limit or 2
      local qn = g.load(vals_a)
      local count, branches = search(qn, limit, nil, vals_b)
      if count == 0 then return nil, 0, branches end
      return format_values(vals_b), count, branches
   end

   -- is_valid(grid [, puzzle]) -> true | false, reason
   -- A complete grid where every row, column and box holds each digit once; when a puzzle
   -- is given, the grid must also agree with its givens.
   function A.is_valid(grid, puzzle)
      if type(grid) ~= "string" and type(grid) ~= "cdata" then
         error("sudoku.is_valid: bad argument #1 (grid): expected a board string or an FFI array, got " .. type(grid), 2)
      end
      local ok, err = parse_into(grid, vals_a)
      if not ok then return false, err end
      for cell = 0, NN - 1 do
         if vals_a[cell] == 0 then return false, format("cell %d is blank", cell + 1) end
      end
      for u = 0, 3 * N - 1 do
         local seen = 0
         for k = 0, N - 1 do seen = bor(seen, lshift(1, vals_a[g.units[u * N + k]] - 1)) end
         if seen ~= full then
            local kind = u < N and "row" or u < 2 * N and "column" or "box"
            return false, format("%s %d repeats a digit", kind, u % N + 1)
         end
      end
      if puzzle ~= nil then
         ok, err = parse_into(puzzle, vals_b)
         if not ok then return false, "puzzle: " .. err end
         for cell = 0, NN - 1 do
            if vals_b[cell] ~= 0 and vals_b[cell] ~= vals_a[cell] then
               return false, format("cell %d differs from its given", cell + 1)
            end
         end
      end
      return true
   end

   -- check(example, prediction) -> true | false, reason: the prediction (a board string or
   -- tokens) is a valid grid that keeps the example's givens.
   function A.check(example, prediction)
      if type(example) ~= "table" then
         error("sudoku.check: bad argument #1 (example): expected a table {puzzle = ...}, got " .. type(example), 2)
      end
      return A.is_valid(type(prediction) == "string" and prediction or A.decode(prediction), example.puzzle)
   end

   -- example(s) -> the example of a puzzle string.
   function A.example(s) return { puzzle = s } end

   ------------------------------------------------------------------------------------------
   -- encode / decode

   local function encode_board(board, out, offset_token, what)
      if type(board) == "string" then
         if #board ~= NN then
            error(format("sudoku.encode: %s has %d characters, expected %d", what, #board, NN), 3)
         end
         for i = 1, NN do
            local v = value_of[byte(board, i)]
            if not v or v > N then
               error(format("sudoku.encode: bad character %q in %s at %d", board:sub(i, i), what, i), 3)
            end
            out[i - 1] = v + offset_token
         end
      elseif type(board) == "cdata" then
         for i = 0, NN - 1 do out[i] = board[i] + offset_token end
      else
         error("sudoku.encode: " .. what .. " must be a string or an FFI array", 3)
      end
   end

   -- encode(example [, inputs, labels]) -> inputs, labels (uint8_t[NN] each)
   function A.encode(example, inputs, labels)
      if type(example) ~= "table" then error("sudoku.encode: example must be a table", 2) end
      inputs = inputs or ffi.new("uint8_t[?]", NN)
      labels = labels or ffi.new("uint8_t[?]", NN)
      encode_board(example.puzzle, inputs, 1, "puzzle")
      if example.solution ~= nil then
         encode_board(example.solution, labels, 1, "solution")
      else
         ffi.fill(labels, NN, 0)
      end
      return inputs, labels
   end

   -- decode(tokens) -> board string ('.' for blank/PAD, '?' for out-of-range tokens)
   function A.decode(tokens)
      local t = util.token_reader(tokens, NN, "sudoku.decode")
      local buf = ffi.new("char[?]", NN)
      for i = 0, NN - 1 do
         local v = t[i]
         if v <= 1 then buf[i] = 46
         elseif v <= N + 1 then buf[i] = byte(DIGITS, v - 1)
         else buf[i] = 63 end
      end
      return ffi.string(buf, NN)
   end

   ------------------------------------------------------------------------------------------
   -- Generator

   local rowm = ffi.new("int32_t[?]", N)
   local colm = ffi.new("int32_t[?]", N)
   local boxm = ffi.new("int32_t[?]", N)
   local order = ffi.new("int16_t[?]", NN)
   local sol = ffi.new("uint8_t[?]", NN)
   local puz = ffi.new("uint8_t[?]", NN)

   -- does the puzzle in `puz` (with cell just blanked, value v) have a solution with cell ~= v?
   local function has_other(cell, v)
      local qn = 0
      for i = 0, NN - 1 do
         local x = puz[i]
         if x ~= 0 then
            stack[i] = lshift(1, x - 1)
         else
            local m = band(full, bnot(bor(rowm[rowof[i]], colm[colof[i]], boxm[boxof[i]])))
            if i == cell then m = band(m, bnot(lshift(1, v - 1))) end
            if m == 0 then return false end
            stack[i] = m
            if popc[m] == 1 then
               queue[qn] = i
               qn = qn + 1
            end
         end
      end
      return search(qn, 1, nil, nil) > 0
   end

   -- is v (bit b) impossible in every other blank cell of one of cell's units (hidden single)?
   local units = g.units
   local ndiag = math.min(N / br, N / bc)
   local digit_perm = ffi.new("int32_t[?]", N)
   local function hidden_forced(cell, b)
      for kind = 0, 2 do
         local u = kind == 0 and rowof[cell] or kind == 1 and N + colof[cell] or 2 * N + boxof[cell]
         local ub, forced = u * N, true
         for k = 0, N - 1 do
            local o = units[ub + k]
            if o ~= cell and puz[o] == 0
               and band(bor(rowm[rowof[o]], colm[colof[o]], boxm[boxof[o]]), b) == 0 then
               forced = false
               break
            end
         end
         if forced then return true end
      end
      return false
   end

   -- make_one(target, rng) -> blanks reached (puz, sol hold the puzzle and its solution)
   local function make_one(target, rng)
      -- random full grid: fill the independent diagonal boxes with random permutations,
      -- then complete with the solver branching on random candidates
      for i = 0, NN - 1 do stack[i] = full end
      local qn = 0
      for d = 0, ndiag - 1 do
         local ub = (2 * N + d * (N / bc) + d) * N
         for k = 0, N - 1 do digit_perm[k] = k end
         for k = N - 1, 1, -1 do
            local j = rng:random(k + 1) - 1
            digit_perm[k], digit_perm[j] = digit_perm[j], digit_perm[k]
         end
         for k = 0, N - 1 do
            local cell = units[ub + k]
            stack[cell] = lshift(1, digit_perm[k])
            queue[qn] = cell
            qn = qn + 1
         end
      end
      if search(qn, 1, rng, sol) == 0 then
         for i = 0, NN - 1 do stack[i] = full end
         search(0, 1, rng, sol)
      end
      ffi.copy(puz, sol, NN)
      for i = 0, N - 1 do rowm[i], colm[i], boxm[i] = full, full, full end
      for i = 0, NN - 1 do order[i] = i end
      for i = NN - 1, 1, -1 do
         local j = rng:random(i + 1) - 1
         order[i], order[j] = order[j], order[i]
      end
      local blanks = 0
      for k = 0, NN - 1 do
         if blanks >= target then break end
         local cell = order[k]
         local v = puz[cell]
         local b = lshift(1, v - 1)
         local r, c, x = rowof[cell], colof[cell], boxof[cell]
         rowm[r], colm[c], boxm[x] = band(rowm[r], bnot(b)), band(colm[c], bnot(b)), band(boxm[x], bnot(b))
         puz[cell] = 0
         local allowed = band(full, bnot(bor(rowm[r], colm[c], boxm[x])))
         if allowed == b or hidden_forced(cell, b) or not has_other(cell, v) then
            blanks = blanks + 1
         else
            puz[cell] = v
            rowm[r], colm[c], boxm[x] = bor(rowm[r], b), bor(colm[c], b), bor(boxm[x], b)
         end
      end
      return blanks
   end

   local function range_of(v, what, lo, hi)
      if v == nil then return nil end
      if type(v) == "number" then return v, v end
      if type(v) == "table" and type(v[1]) == "number" and type(v[2]) == "number" and v[1] <= v[2] then
         return v[1], v[2]
      end
      error(format("sudoku.generate: %s must be a number or {min, max}", what), 3)
   end

   -- generate(n [, opts]) -> list of { puzzle, solution, givens, branches } | nil, err
   -- opts.blanks (number or {min, max}) or opts.givens (likewise); default blanks ~ 0.6*N*N.
   -- opts.min_branches / opts.max_branches bound the solver's branch count (difficulty).
   -- opts.rng (object) or opts.seed (default 1); opts.max_tries per puzzle (default 1000).
   function A.generate(n, gopts)
      if type(n) ~= "number" or n < 0 then error("sudoku.generate: n must be a non-negative number", 2) end
      gopts = gopts or {}
      local rng = gopts.rng and util.as_rng(gopts.rng, "sudoku.generate") or util.rng(gopts.seed or 1)
      local bmin, bmax = range_of(gopts.blanks, "blanks")
      if not bmin then
         local gmin, gmax = range_of(gopts.givens, "givens")
         if gmin then
            bmin, bmax = NN - gmax, NN - gmin
         else
            bmin = floor(NN * 0.6 + 0.5)
            bmax = bmin
         end
      end
      if bmin < 0 or bmax > NN then error("sudoku.generate: blanks out of range", 2) end
      local min_b, max_b = gopts.min_branches or 0, gopts.max_branches or math.huge
      local max_tries = gopts.max_tries or 1000
      local out = {}
      for i = 1, n do
         local tries, done = 0, false
         while not done do
            tries = tries + 1
            if tries > max_tries then
               return nil, format("sudoku.generate: no puzzle with blanks %d..%d and branches %s..%s after %d tries",
                  bmin, bmax, tostring(min_b), tostring(max_b), max_tries)
            end
            local target = bmin == bmax and bmin or rng:random(bmin, bmax)
            local blanks = make_one(target, rng)
            if blanks == target then
               local qn = g.load(puz)
               local count, branches = search(qn, 2, nil, nil)
               assert(count == 1, "generator produced a non-unique puzzle")
               if branches >= min_b and branches <= max_b then
                  out[i] = {
                     puzzle = format_values(puz), solution = format_values(sol),
                     givens = NN - blanks, branches = branches,
                  }
                  done = true
               end
            end
         end
      end
      return out
   end

   ------------------------------------------------------------------------------------------
   -- Augmentation (reference shuffle_sudoku generalised to N x N)

   -- augment(example, rng) -> example', aug
   -- Digit permutation (blank fixed), transpose with p 0.5 (square boxes only) applied before
   -- the position mapping, band/stack permutations and row/column permutations inside them:
   -- new[r][c] = digit[T(old)[row_perm[r]][col_perm[c]]]. Same map for puzzle and solution.
   function A.augment(example, rng)
      if type(example) ~= "table" then error("sudoku.augment: example must be a table", 2) end
      rng = util.as_rng(rng, "sudoku.augment")
      local perm = util.permutation(N, rng)
      local digits = { [0] = 0 }
      for d = 1, N do digits[d] = perm[d] end
      local transpose = false
      if br == bc then transpose = rng:uniform() < 0.5 end
      local row_perm, col_perm = {}, {}
      local bands = util.permutation(N / br, rng)
      for _, b in ipairs(bands) do
         for _, r in ipairs(util.permutation(br, rng)) do row_perm[#row_perm + 1] = (b - 1) * br + r - 1 end
      end
      local stacks = util.permutation(N / bc, rng)
      for _, s in ipairs(stacks) do
         for _, c in ipairs(util.permutation(bc, rng)) do col_perm[#col_perm + 1] = (s - 1) * bc + c - 1 end
      end
      local map = ffi.new("int16_t[?]", NN)                   -- new index -> old index
      for i = 0, NN - 1 do
         local r, c = row_perm[floor(i / N) + 1], col_perm[i % N + 1]
         map[i] = transpose and (c * N + r) or (r * N + c)
      end
      local aug = { digits = digits, transpose = transpose, row_perm = row_perm, col_perm = col_perm, map = map }
      local function apply(board)
         if board == nil then return nil end
         local ok, err = parse_into(board, vals_a)
         if not ok then error("sudoku.augment: " .. err, 3) end
         for i = 0, NN - 1 do vals_b[i] = digits[vals_a[map[i]]] end
         return format_values(vals_b)
      end
      local out = {}
      for k, v in pairs(example) do out[k] = v end
      out.puzzle = apply(example.puzzle)
      out.solution = apply(example.solution)
      return out, aug
   end

   -- inverse(aug, prediction) -> prediction in the original frame
   -- prediction: a board string (returns a string) or an FFI token array (returns tokens).
   function A.inverse(aug, prediction)
      if type(aug) ~= "table" or not aug.map then error("sudoku.inverse: bad aug", 2) end
      local inv = { [0] = 0 }
      for d = 1, N do inv[aug.digits[d]] = d end
      local map = aug.map
      if type(prediction) == "string" then
         if #prediction ~= NN then error("sudoku.inverse: prediction length must be " .. NN, 2) end
         local buf = ffi.new("char[?]", NN)
         for i = 0, NN - 1 do
            local ch = byte(prediction, i + 1)
            local v = value_of[ch]
            if v and v >= 1 and v <= N then ch = byte(DIGITS, inv[v]) end
            buf[map[i]] = ch
         end
         return ffi.string(buf, NN)
      elseif type(prediction) == "cdata" or type(prediction) == "table" then
         local t = util.token_reader(prediction, NN, "sudoku.inverse")
         local out = ffi.new("uint8_t[?]", NN)
         for i = 0, NN - 1 do
            local v = t[i]
            if v >= 2 and v <= N + 1 then v = inv[v - 1] + 1 end
            out[map[i]] = v
         end
         return out
      end
      error("sudoku.inverse: prediction must be a board string or tokens", 2)
   end

   ------------------------------------------------------------------------------------------
   -- Loading, evaluation, rendering, dataset

   -- load(path [, opts]) -> list of { puzzle, solution, ... } | nil, err
   -- CSV with a header naming puzzle|question and solution|answer columns; other columns are
   -- kept (numbers converted). opts.limit: at most that many rows.
   function A.load(path, lopts)
      if type(path) ~= "string" then error("sudoku.load: path must be a string", 2) end
      lopts = lopts or {}
      local header, rows = util.read_csv(path, { limit = lopts.limit })
      if not header then return nil, rows end
      local pi = util.column_index(header, "puzzle", "question", "quizzes")
      local si = util.column_index(header, "solution", "answer", "solutions")
      if not pi then return nil, path .. ": no puzzle/question column in the header" end
      local out = {}
      for _, row in ipairs(rows) do
         local ex = {}
         for j, name in ipairs(header) do
            if j ~= pi and j ~= si then ex[name] = tonumber(row[j]) or row[j] end
         end
         ex.puzzle = row[pi]
         ex.solution = si and row[si] or nil
         local ok, err = parse_into(ex.puzzle, vals_a)
         if ok and ex.solution then ok, err = parse_into(ex.solution, vals_a) end
         if not ok then return nil, format("%s: line %d: %s", path, row.lineno, err) end
         out[#out + 1] = ex
      end
      return out
   end

   -- evaluate(predictions, examples) -> { exact_accuracy, accuracy, valid_accuracy, n }
   -- predictions[i]: board string or tokens. exact = all N*N cells equal the solution;
   -- accuracy = fraction of cells equal; valid = a complete valid grid agreeing with the givens.
   function A.evaluate(predictions, examples)
      if type(predictions) ~= "table" or type(examples) ~= "table" then
         error("sudoku.evaluate: predictions and examples must be lists", 2)
      end
      if #predictions ~= #examples then
         error(format("sudoku.evaluate: %d predictions for %d examples", #predictions, #examples), 2)
      end
      local exact, cells, valid, n = 0, 0, 0, #examples
      for i = 1, n do
         local p = predictions[i]
         if type(p) ~= "string" then p = A.decode(p) end
         local sol = examples[i].solution
         if type(sol) ~= "string" then error("sudoku.evaluate: example " .. i .. " has no solution", 2) end
         local same = 0
         for k = 1, NN do
            if byte(p, k) == byte(sol, k) then same = same + 1 end
         end
         cells = cells + same
         if same == NN then exact = exact + 1 end
         if A.is_valid(p, examples[i].puzzle) then valid = valid + 1 end
      end
      return {
         n = n,
         exact_accuracy = n > 0 and exact / n or 0,
         accuracy = n > 0 and cells / (n * NN) or 0,
         valid_accuracy = n > 0 and valid / n or 0,
      }
   end

   -- render(example [, prediction [, opts]]) -> string
   -- Givens bold, filled cells normal (cyan), wrong cells red; plain mode (opts.color = false
   -- or new{color = false}) marks filled cells with ' and wrong ones with *.
   -- Without a prediction the puzzle is shown (opts.solution = true shows the solution).
   function A.render(example, prediction, ropts)
      if type(example) ~= "table" then error("sudoku.render: example must be a table", 2) end
      ropts = ropts or {}
      local color = color_default
      if ropts.color ~= nil then color = ropts.color end
      local puzzle, solution = example.puzzle, example.solution
      local shown = prediction
      if shown ~= nil and type(shown) ~= "string" then shown = A.decode(shown) end
      if shown == nil then shown = ropts.solution and solution or puzzle end
      if type(shown) ~= "string" or #shown ~= NN then error("sudoku.render: bad board", 2) end
      local ansi = util.ansi
      local lines = {}
      local sep
      do
         local parts = {}
         for _ = 1, N / bc do parts[#parts + 1] = string.rep("-", bc * 2) end
         sep = concat(parts, "+-")
      end
      for r = 0, N - 1 do
         if r > 0 and r % br == 0 then lines[#lines + 1] = sep end
         local row = {}
         for c = 0, N - 1 do
            if c > 0 and c % bc == 0 then row[#row + 1] = "| " end
            local i = r * N + c + 1
            local ch = shown:sub(i, i)
            local given = puzzle and value_of[byte(puzzle, i)] ~= 0
            local blank = value_of[byte(ch)] == 0
            local wrong = false
            if not given and not blank and prediction ~= nil then
               if solution then
                  wrong = ch ~= solution:sub(i, i)
               end
            elseif given and prediction ~= nil and ch ~= puzzle:sub(i, i) then
               wrong = true
            end
            if blank then ch = "." end
            if color then
               local code = blank and ansi.dim or given and not wrong and ansi.bold
                  or wrong and (ansi.bold .. ansi.red) or ansi.cyan
               row[#row + 1] = util.paint(ch, code, true) .. " "
            else
               local mark = wrong and "*" or ((given or blank) and " " or "'")
               row[#row + 1] = ch .. mark
            end
         end
         lines[#lines + 1] = (concat(row):gsub("%s+$", ""))
      end
      return concat(lines, "\n")
   end

   -- dataset{ examples = list | path = csv, num_aug = 0, rng | seed, limit } -> arrays | nil, err
   -- One group per puzzle: the original plus num_aug independent augmentations, one example
   -- each, all with puzzle identifier 0 (num_puzzle_identifiers = 1), laid out by
   -- util.build_arrays (HRM_SPEC §5.1).
   function A.dataset(dopts)
      if type(dopts) ~= "table" then error("sudoku.dataset: expected an options table", 2) end
      local examples = dopts.examples
      if examples == nil then
         if type(dopts.path) ~= "string" then error("sudoku.dataset: give examples or path", 2) end
         local err
         examples, err = A.load(dopts.path, { limit = dopts.limit })
         if not examples then return nil, err end
      end
      local num_aug = dopts.num_aug or 0
      local rng = num_aug > 0 and (dopts.rng and util.as_rng(dopts.rng, "sudoku.dataset") or util.rng(dopts.seed or 0))
      local groups = {}
      for i, ex in ipairs(examples) do
         local group = { { identifier = 0, examples = { ex } } }
         for _ = 1, num_aug do
            group[#group + 1] = { identifier = 0, examples = { (A.augment(ex, rng)) } }
         end
         groups[i] = group
      end
      return util.finish_dataset(util.build_arrays(A, groups, { num_puzzle_identifiers = 1 }), dopts)
   end

   return A
end

return new()
