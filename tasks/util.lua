-- tasks/util.lua: helpers shared by the task adapters (tasks/sudoku.lua, maze.lua, arc.lua).
-- CSV reading that keeps every space, JSON through hrm.fs, a deterministic RNG
-- (xoshiro256** over uint64_t, seeded by splitmix64), permutations, the 8 dihedral index maps,
-- a 64-bit FNV-1a hash, ANSI colour helpers and `build_arrays`, the one place that lays
-- examples out in the reference's CSR arrays (HRM_SPEC §5.1).
-- Does not: require the `hrm` engine, call ffi.cdef, or touch global state.
-- Invariants: token arrays are 0-based FFI uint8 arrays; Lua tables are 1-based; an rng is any
-- object with rng:random(n) -> [1, n] and rng:uniform() -> [0, 1).

local ffi = require "ffi"
local bit = require "bit"

local bxor, rshift, lshift, rol = bit.bxor, bit.rshift, bit.lshift, bit.rol
local byte, sub, find, format = string.byte, string.sub, string.find, string.format
local floor = math.floor

local M = {}

local u8_array = ffi.typeof("uint8_t[?]")
local i32_array = ffi.typeof("int32_t[?]")
M.u8_array, M.i32_array = u8_array, i32_array

---------------------------------------------------------------------------------------------
-- Files

-- read_file(path) -> string | nil, err
function M.read_file(path)
   local f, err = io.open(path, "rb")
   if not f then return nil, err end
   local s = f:read("*a")
   f:close()
   return s
end

-- write_file(path, text) -> true | nil, err
function M.write_file(path, text)
   local f, err = io.open(path, "wb")
   if not f then return nil, err end
   local ok, werr = f:write(text)
   f:close()
   if not ok then return nil, werr end
   return true
end

function M.file_exists(path)
   local f = io.open(path, "rb")
   if f then f:close() return true end
   return false
end

---------------------------------------------------------------------------------------------
-- CSV (RFC 4180 subset: quoted fields with "" escapes on one line). Leading and trailing
-- spaces are data; only a trailing "\r" is removed from each line.

local function split_quoted(line, lineno)
   local fields, i, n = {}, 1, #line
   while true do
      if byte(line, i) == 34 then                        -- quoted field
         local parts, j = {}, i + 1
         while true do
            local q = find(line, '"', j, true)
            if not q then return nil, format("line %d: unterminated quoted field", lineno) end
            parts[#parts + 1] = sub(line, j, q - 1)
            if byte(line, q + 1) == 34 then
               parts[#parts + 1] = '"'
               j = q + 2
            else
               i = q + 1
               break
            end
         end
         fields[#fields + 1] = table.concat(parts)
         if i > n then return fields end
         if byte(line, i) ~= 44 then
            return nil, format("line %d: expected ',' after a quoted field", lineno)
         end
         i = i + 1
      else
         local c = find(line, ",", i, true)
         if not c then
            fields[#fields + 1] = sub(line, i)
            return fields
         end
         fields[#fields + 1] = sub(line, i, c - 1)
         i = c + 1
      end
   end
end

local function split_line(line, lineno)
   if find(line, '"', 1, true) then return split_quoted(line, lineno) end
   local fields, i = {}, 1
   while true do
      local c = find(line, ",", i, true)
      if not c then
         fields[#fields + 1] = sub(line, i)
         return fields
      end
      fields[#fields + 1] = sub(line, i, c - 1)
      i = c + 1
   end
end

-- read_csv(path [, opts]) -> header, rows | nil, err
-- header is the list of column names; each row is a list of field strings (spaces kept).
-- opts.limit: stop after that many data rows; opts.header = false: no header line.
function M.read_csv(path, opts)
   if type(path) ~= "string" then error("read_csv: bad argument #1 (path): expected a string, got " .. type(path), 2) end
   opts = opts or {}
   local text, err = M.read_file(path)
   if not text then return nil, err end
   local header, rows = nil, {}
   local limit = opts.limit or math.huge
   local pos, lineno, len = 1, 0, #text
   if opts.header == false then header = {} end
   while pos <= len and #rows < limit do
      local nl = find(text, "\n", pos, true)
      local line = sub(text, pos, (nl or len + 1) - 1)
      pos = (nl or len) + 1
      lineno = lineno + 1
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      if line ~= "" then
         local fields, ferr = split_line(line, lineno)
         if not fields then return nil, path .. ": " .. ferr end
         if not header then
            header = fields
         else
            if #header > 0 and #fields ~= #header then
               return nil, format("%s: line %d: %d fields, header has %d", path, lineno, #fields, #header)
            end
            fields.lineno = lineno
            rows[#rows + 1] = fields
         end
      end
   end
   if not header then return nil, path .. ": empty file" end
   return header, rows
end

-- column_index(header, names...) -> 1-based index of the first name present, or nil
function M.column_index(header, ...)
   for k = 1, select("#", ...) do
      local want = select(k, ...)
      for i, name in ipairs(header) do
         if name == want then return i end
      end
   end
   return nil
end

---------------------------------------------------------------------------------------------
-- JSON for task files and submissions, through hrm.fs (dkjson): objects become Lua tables with
-- string keys, arrays 1-based sequences, null M.json_null; encoding sorts object keys.

local fs = require "hrm.fs"
M.json_null = fs.null

-- json_decode(text) -> value | nil, err
function M.json_decode(text)
   if type(text) ~= "string" then error("json_decode: text must be a string", 2) end
   local v, err = fs.decode(text)
   if v == nil then return nil, "JSON: " .. tostring(err) end
   return v
end

-- read_json(path) -> value | nil, err
function M.read_json(path)
   local text, err = M.read_file(path)
   if not text then return nil, err end
   local v, jerr = M.json_decode(text)
   if v == nil then return nil, path .. ": " .. jerr end
   return v
end

-- json_encode(value) -> string (object keys sorted)
M.json_encode = fs.encode

---------------------------------------------------------------------------------------------
-- RNG: xoshiro256** (Blackman & Vigna) seeded with splitmix64. Deterministic per seed.

local Rng = {}
Rng.__index = Rng

local function splitmix64(x)
   x = x + 0x9E3779B97F4A7C15ULL
   local z = x
   z = bxor(z, rshift(z, 30)) * 0xBF58476D1CE4E5B9ULL
   z = bxor(z, rshift(z, 27)) * 0x94D049BB133111EBULL
   return x, bxor(z, rshift(z, 31))
end

-- util.rng(seed) -> rng object (seed: a number, default 0)
function M.rng(seed)
   if seed ~= nil and type(seed) ~= "number" and type(seed) ~= "cdata" then
      error("rng: seed must be a number", 2)
   end
   local s = ffi.new("uint64_t[4]")
   local x = ffi.cast("uint64_t", ffi.cast("int64_t", seed or 0))
   for i = 0, 3 do
      local z
      x, z = splitmix64(x)
      s[i] = z
   end
   return setmetatable({ s = s, seed = seed or 0 }, Rng)
end

-- rng:next64() -> uint64_t cdata
function Rng:next64()
   local s = self.s
   local s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
   local result = rol(s1 * 5ULL, 7) * 9ULL
   local t = lshift(s1, 17)
   s2 = bxor(s2, s0)
   s3 = bxor(s3, s1)
   s1 = bxor(s1, s2)
   s0 = bxor(s0, s3)
   s2 = bxor(s2, t)
   s3 = rol(s3, 45)
   s[0], s[1], s[2], s[3] = s0, s1, s2, s3
   return result
end

-- rng:uniform() -> number in [0, 1) with 53 random bits
function Rng:uniform()
   return tonumber(rshift(self:next64(), 11)) * 1.1102230246251565e-16
end

-- rng:random(n) -> integer in [1, n]; rng:random(m, n) -> integer in [m, n]
function Rng:random(m, n)
   if n == nil then m, n = 1, m end
   return m + floor(self:uniform() * (n - m + 1))
end

-- util.math_rng() -> an rng object backed by math.random (seed it with math.randomseed)
function M.math_rng()
   return {
      random = function(_, m, n) if n then return math.random(m, n) end return math.random(m) end,
      uniform = function() return math.random() end,
   }
end

local default_rng
-- as_rng(x [, what]) -> rng: x is an rng object or a seed; misuse raises at the caller's caller
function M.as_rng(x, what)
   local t = type(x)
   if t == "number" then return M.rng(x) end
   if (t == "table" or t == "userdata" or t == "cdata") and x.random and x.uniform then return x end
   if x == nil and what == nil then
      default_rng = default_rng or M.rng(0x5eed)
      return default_rng
   end
   error((what or "rng") .. ": expected an rng object (rng:random(n), rng:uniform()) or a seed", 3)
end

-- permutation(n, rng) -> Lua table, a uniformly random permutation of 1..n
function M.permutation(n, rng)
   if type(n) ~= "number" then error("permutation: bad argument #1 (n): expected a number, got " .. type(n), 2) end
   rng = M.as_rng(rng, "permutation")
   local p = {}
   for i = 1, n do p[i] = i end
   for i = n, 2, -1 do
      local j = rng:random(i)
      p[i], p[j] = p[j], p[i]
   end
   return p
end

-- shuffle(t, rng [, n]) shuffles t[1..n] in place and returns t
function M.shuffle(t, rng, n)
   for i = n or #t, 2, -1 do
      local j = rng:random(i)
      t[i], t[j] = t[j], t[i]
   end
   return t
end

---------------------------------------------------------------------------------------------
-- Dihedral transforms (numpy semantics, HRM dataset/common.py). For an h x w grid A, the
-- transformed grid B has size oh x ow and B[i][j] = A_flat[base + di*i + dj*j].
--   0 identity, 1 rot90 (counter-clockwise), 2 rot180, 3 rot270, 4 fliplr, 5 flipud,
--   6 transpose, 7 anti-transpose = fliplr(rot90).

M.DIHEDRAL_INVERSE = { [0] = 0, 3, 2, 1, 4, 5, 6, 7 }

-- dihedral(tid, h, w) -> oh, ow, base, di, dj
function M.dihedral(tid, h, w)
   if tid == 0 then return h, w, 0, w, 1
   elseif tid == 1 then return w, h, w - 1, -1, w
   elseif tid == 2 then return h, w, (h - 1) * w + w - 1, -w, -1
   elseif tid == 3 then return w, h, (h - 1) * w, 1, -w
   elseif tid == 4 then return h, w, w - 1, w, -1
   elseif tid == 5 then return h, w, (h - 1) * w, -w, 1
   elseif tid == 6 then return w, h, 0, 1, w
   elseif tid == 7 then return w, h, (h - 1) * w + w - 1, -1, -w
   end
   error("dihedral: tid must be an integer in 0..7", 2)
end

-- dihedral_map(tid, n) -> int32_t[n*n] with new[i] = old[map[i]] for a square n x n grid (cached)
local dmap_cache = {}
function M.dihedral_map(tid, n)
   local key = tid * 65536 + n
   local m = dmap_cache[key]
   if m then return m end
   local _, ow, base, di, dj = M.dihedral(tid, n, n)
   m = i32_array(n * n)
   for i = 0, n - 1 do
      for j = 0, n - 1 do m[i * ow + j] = base + di * i + dj * j end
   end
   dmap_cache[key] = m
   return m
end

---------------------------------------------------------------------------------------------
-- Hashing: 64-bit FNV-1a, returned as a 16-character hex string (short strings intern well).

local FNV_OFFSET, FNV_PRIME = 0xcbf29ce484222325ULL, 0x100000001b3ULL
M.FNV_OFFSET = FNV_OFFSET

-- hash_bytes(ptr, n [, h]) -> uint64 state (feed further chunks by passing h back)
function M.hash_bytes(p, n, h)
   h = h or FNV_OFFSET
   for i = 0, n - 1 do h = bxor(h, p[i]) * FNV_PRIME end
   return h
end

-- hash_int(h, v) -> uint64 state with the small integer v (0..255) mixed in
function M.hash_int(h, v)
   return bxor(h, v) * FNV_PRIME
end

-- hex64(h) -> 16 hex characters
function M.hex64(h)
   return bit.tohex(h, 16)
end

---------------------------------------------------------------------------------------------
-- Token arrays

-- An hrm tensor's numel method, or nil for any other value (adapters never require hrm).
local function tensor_numel(x)
   local ok, numel = pcall(function() return x.numel end)
   return ok and type(numel) == "function" and numel or nil
end

-- token_reader(tokens, n, what) -> uint8/int cdata readable at [0, n)
-- Accepts FFI arrays/pointers (0-based), hrm tensors (a row of model:solve's predictions) or
-- Lua sequences (1-based, copied).
function M.token_reader(tokens, n, what)
   local t = type(tokens)
   if t == "cdata" then
      local numel = tensor_numel(tokens)
      if not numel then return tokens end
      if numel(tokens) < n then
         error(format("%s: expected %d tokens, got a tensor of %d", what or "tokens", n, numel(tokens)), 3)
      end
      return tokens:data()
   end
   if t == "table" then
      if #tokens < n then
         error(format("%s: expected %d tokens, got %d", what or "tokens", n, #tokens), 3)
      end
      local a = u8_array(n)
      for i = 0, n - 1 do a[i] = tokens[i + 1] end
      return a
   end
   error(format("%s: expected tokens (an FFI array, a tensor row or a Lua table), got %s", what or "tokens", t), 3)
end

---------------------------------------------------------------------------------------------
-- ANSI helpers

M.ansi = {
   reset = "\27[0m", bold = "\27[1m", dim = "\27[2m", underline = "\27[4m",
   red = "\27[31m", green = "\27[32m", yellow = "\27[33m", blue = "\27[34m",
   magenta = "\27[35m", cyan = "\27[36m", white = "\27[37m", grey = "\27[90m",
}

function M.fg256(c) return "\27[38;5;" .. c .. "m" end
function M.bg256(c) return "\27[48;5;" .. c .. "m" end

-- paint(text, codes, enabled) -> text wrapped in ANSI codes when enabled
function M.paint(text, codes, enabled)
   if not enabled or codes == nil or codes == "" then return text end
   return codes .. text .. M.ansi.reset
end

---------------------------------------------------------------------------------------------
-- Dataset arrays (HRM_SPEC §5.1 CSR layout)
--
-- build_arrays(adapter, groups [, meta]) -> arrays table
--   groups[g][p] = { identifier = int32 (default 0), examples = { ex, ... } }
--   Every example is encoded in place with adapter.encode(ex, inputs + k*S, labels + k*S).
-- Result: inputs uint8_t[N*S], labels uint8_t[N*S], puzzle_identifiers int32_t[P],
-- puzzle_indices int32_t[P+1], group_indices int32_t[G+1], n = N, n_puzzles = P,
-- n_groups = G, and the dataset.json metadata fields. This is the single function the C
-- dataset engine (hrm.data.Dataset) will replace; adapters call nothing else to lay data out.
local function build_arrays(adapter, groups, meta)
   if type(adapter) ~= "table" or type(adapter.encode) ~= "function" then
      error("build_arrays: bad argument #1 (adapter): expected a task adapter table, got " .. type(adapter), 2)
   end
   if type(groups) ~= "table" then error("build_arrays: bad argument #2 (groups): expected a list, got " .. type(groups), 2) end
   meta = meta or {}
   local S = adapter.seq_len
   local n, np = 0, 0
   for g = 1, #groups do
      local group = groups[g]
      np = np + #group
      for p = 1, #group do n = n + #group[p].examples end
   end
   local inputs, labels = u8_array(math.max(n * S, 1)), u8_array(math.max(n * S, 1))
   local pid, pidx, gidx = i32_array(math.max(np, 1)), i32_array(np + 1), i32_array(#groups + 1)
   local k, p_at = 0, 0
   pidx[0], gidx[0] = 0, 0
   for g = 1, #groups do
      local group = groups[g]
      for p = 1, #group do
         local puzzle = group[p]
         local exs = puzzle.examples
         for e = 1, #exs do
            adapter.encode(exs[e], inputs + k * S, labels + k * S)
            k = k + 1
         end
         pid[p_at] = puzzle.identifier or 0
         p_at = p_at + 1
         pidx[p_at] = k
      end
      gidx[g] = p_at
   end
   return {
      inputs = inputs, labels = labels,
      puzzle_identifiers = pid, puzzle_indices = pidx, group_indices = gidx,
      n = n, n_puzzles = np, n_groups = #groups,
      seq_len = S, vocab_size = adapter.vocab_size,
      pad_id = adapter.pad_id or 0,
      ignore_label_id = adapter.ignore_label_id or 0,
      blank_identifier_id = adapter.blank_identifier_id or 0,
      num_puzzle_identifiers = meta.num_puzzle_identifiers or 1,
      total_groups = #groups,
      mean_puzzle_examples = np > 0 and n / np or 0,
      sets = { "all" },
      identifiers = meta.identifiers,
      name = adapter.name,
   }
end
M.build_arrays = build_arrays

-- finish_dataset(arrays, dopts) -> the adapter's dataset{...} result: an hrm.data.Dataset
-- built from the arrays (the engine is loaded only here, so adapters import without it), or
-- the arrays themselves with dopts.arrays = true (for inspection and tests).
function M.finish_dataset(arrays, dopts)
   if dopts and dopts.arrays then return arrays end
   return require("hrm.data").Dataset.new(arrays)
end

---------------------------------------------------------------------------------------------
-- Solving with a model

-- An error message without the "file:line: " its raiser put in front.
local function message_of(err) return (tostring(err):gsub("^[^\n:]*:%d+: ", "")) end

-- A halting policy for model:solve that stops each row once adapter.check accepts its answer.
local function verify_policy(adapter, examples, S)
   return function(info)
      local p, active = info.predictions:data(), info.active:data()
      local stop = {}
      for r = 0, #examples - 1 do
         if active[r] == 1 and adapter.check(examples[r + 1], p + r * S) then stop[#stop + 1] = r + 1 end
      end
      return stop
   end
end

-- solve_with(adapter, model, puzzles [, opts]) -> results: what adapter:solve(model, puzzles,
-- opts) does. puzzles: one puzzle string or example, or a list of them (strings go through
-- adapter.example). opts: halt = "max" | "q" | "verify" | fn, max_steps. results[i] =
-- {example, answer (decoded), steps, q_halt (logit), valid, reason (when the task has check)};
-- results.result is model:solve's own result.
function M.solve_with(adapter, model, puzzles, opts)
   local what = adapter.name .. ":solve"
   if type(model) ~= "table" or type(model.solve) ~= "function" then
      error(format("%s: bad argument #1 (model): expected an hrm.Model, got %s", what, type(model)), 3)
   end
   if type(puzzles) == "string" or (type(puzzles) == "table" and puzzles[1] == nil and next(puzzles) ~= nil) then
      puzzles = { puzzles }
   end
   if type(puzzles) ~= "table" or #puzzles == 0 then
      error(format("%s: bad argument #2 (puzzles): expected a puzzle string, an example table or a " ..
                   "non-empty list of them, got %s", what, type(puzzles) == "table" and "an empty table" or type(puzzles)), 3)
   end
   opts = opts or {}
   if type(opts) ~= "table" then error(format("%s: bad argument #3 (opts): expected a table, got %s", what, type(opts)), 3) end
   local S = adapter.seq_len
   local examples, rows = {}, {}
   for i, p in ipairs(puzzles) do
      local ex = p
      if type(p) == "string" and type(adapter.example) == "function" then ex = adapter.example(p)
      elseif type(p) ~= "table" then
         error(format("%s: bad argument #2 (puzzles): puzzle %d is a %s; expected %s", what, i, type(p),
                      adapter.example and "a puzzle string or an example table" or "an example table"), 3)
      end
      local ok, inputs = pcall(adapter.encode, ex)
      if not ok then error(format("%s: bad argument #2 (puzzles): puzzle %d: %s", what, i, message_of(inputs)), 3) end
      local row = {}
      for k = 0, S - 1 do row[k + 1] = inputs[k] end
      examples[i], rows[i] = ex, row
   end
   local halt = opts.halt
   if halt == "verify" then
      if type(adapter.check) ~= "function" then
         error(format("%s: halt = \"verify\" needs a task that can check an answer (sudoku, maze); %s has no check",
                      what, adapter.name), 3)
      end
      halt = verify_policy(adapter, examples, S)
   end
   local ok, res = pcall(model.solve, model, rows, { halt = halt, max_steps = opts.max_steps })
   if not ok then error(message_of(res), 3) end
   local pred, steps, q = res.predictions:data(), res.steps:data(), res.q_halt_logits:data()
   local out = { result = res }
   for r = 0, #rows - 1 do
      local tokens = pred + r * S
      local item = { example = examples[r + 1], answer = adapter.decode(tokens), steps = steps[r], q_halt = q[r] }
      if type(adapter.check) == "function" then item.valid, item.reason = adapter.check(examples[r + 1], tokens) end
      out[r + 1] = item
   end
   return out
end

return M
