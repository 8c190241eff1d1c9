-- hrm.data — puzzle datasets over the C dataset engine (core/dataset.c, npy.c, hrmd.c).
--
-- `Dataset.new{vocab_size =, seq_len =, ...}` makes an empty dataset that `ds:add(arrays)` fills
-- in bulk from FFI arrays (the tables tasks/util.lua's build_arrays returns); `Dataset.load`
-- reads a .hrmd file or a reference numpy folder, `ds:save` writes .hrmd. `ds:batches{...}`
-- returns an iterator whose :next() refills the same three i32 tensors in one C call: no Lua
-- work per example. Misuse raises error(msg, 2); runtime failures return nil, err.
local ffi = require "ffi"
local C = require "hrm.ffi"
local Tensor = require "hrm.Tensor"

local M = {}

local Dataset = {}
Dataset.__index = Dataset
M.Dataset = Dataset

local Batches = {}
Batches.__index = Batches
M.Batches = Batches

local DTYPE_U8, DTYPE_I32 = 5, 3
local ERR_MEMORY = -5

local ds_out = ffi.new("hrm_dataset *[1]")
local sampler_out = ffi.new("hrm_sampler *[1]")

local last_error = require("hrm.errors").last

local function fail(level, fmt, ...) error(string.format(fmt, ...), level + 1) end

local function is_int(x) return type(x) == "number" and x == math.floor(x) and x == x end

-- Raise (at the caller's caller) unless v is an integer >= lo.
local function want_int(v, lo, what, fname)
   if not is_int(v) or v < lo then
      fail(3, "%s: %s must be an integer >= %d, got %s", fname, what, lo, tostring(v))
   end
   return v
end

local function handle(self, fname)
   if getmetatable(self) ~= Dataset then
      fail(3, "%s: expected an hrm.data.Dataset (call it with ':')", fname)
   end
   local p = self._p
   if p == nil then fail(3, "%s: the dataset was freed", fname) end
   return p
end

local function wrap(p)
   return setmetatable({ _p = ffi.gc(p, C.hrm_dataset_free) }, Dataset)
end

-- ---- metadata -------------------------------------------------------------------------------

local META_INTS = { "vocab_size", "seq_len", "pad_id", "blank_identifier_id",
                    "num_puzzle_identifiers" }
local META_DEFAULTS = { pad_id = 0, blank_identifier_id = 0, num_puzzle_identifiers = 1 }
-- Keys Dataset.new accepts besides the metadata: an arrays table (build_arrays) and meta().
local NEW_KEYS = {
   vocab_size = true, seq_len = true, pad_id = true, ignore_label_id = true,
   blank_identifier_id = true, num_puzzle_identifiers = true,
   inputs = true, labels = true, puzzle_identifiers = true, puzzle_indices = true,
   group_indices = true, n = true, n_puzzles = true, n_groups = true, total_groups = true,
   mean_puzzle_examples = true, sets = true, identifiers = true, name = true,
}

local function make_meta(t, fname)
   local m = ffi.new("hrm_dataset_meta")
   for _, k in ipairs(META_INTS) do
      local v = t[k]
      if v == nil then v = META_DEFAULTS[k] end
      if not is_int(v) then
         fail(3, "%s: bad field '%s': expected an integer, got %s", fname, k, tostring(v))
      end
      m[k] = v
   end
   local ign = t.ignore_label_id
   if ign == nil then ign = 0 end
   if ign == false then
      m.has_ignore_label = 0
   elseif is_int(ign) then
      m.ignore_label_id, m.has_ignore_label = ign, 1
   else
      fail(3, "%s: bad field 'ignore_label_id': expected an integer or false, got %s", fname,
           tostring(ign))
   end
   return m
end

local function meta_table(p)
   local m = ffi.new("hrm_dataset_meta")
   C.hrm_dataset_get_meta(m, p)
   return {
      vocab_size = m.vocab_size, seq_len = m.seq_len, pad_id = m.pad_id,
      ignore_label_id = m.has_ignore_label == 1 and m.ignore_label_id or false,
      blank_identifier_id = m.blank_identifier_id,
      num_puzzle_identifiers = m.num_puzzle_identifiers,
      total_groups = tonumber(m.total_groups), mean_puzzle_examples = m.mean_puzzle_examples,
      sets = { "all" },
   }
end

-- ---- arrays ---------------------------------------------------------------------------------

-- "u8", "i32" or nil for an FFI array/pointer; its byte size when known (arrays), else nil.
local function cdata_kind(x)
   local s = tostring(ffi.typeof(x)):gsub("^ctype<", ""):gsub(">$", ""):gsub("^const ", "")
   local kind
   if s:match("^unsigned char[ %(&%)]*[%[%*]") then kind = "u8"
   elseif s:match("^int[ %(&%)]*[%[%*]") then kind = "i32" end
   if kind and s:find("[", 1, true) then return kind, ffi.sizeof(x) end
   return kind, nil
end

-- A pointer to `count` elements of field `name`: an FFI uint8/int32 array or pointer, an
-- hrm.Tensor, or a Lua list of integers (converted). Returns pointer, kind, keep-alive object.
local function array_arg(x, name, count, want, fname)
   if type(x) == "table" then
      if #x < count then
         fail(4, "%s: '%s' has %d entries, expected %d", fname, name, #x, count)
      end
      local kind = want or "i32"
      local a = ffi.new(kind == "u8" and "uint8_t[?]" or "int32_t[?]", math.max(count, 1))
      for i = 1, count do
         local v = x[i]
         if not is_int(v) then
            fail(4, "%s: '%s'[%d] is %s, expected an integer", fname, name, i, tostring(v))
         end
         a[i - 1] = v
      end
      return a, kind, a
   end
   if Tensor.is_tensor(x) then
      local p = x.p
      if p == nil then fail(4, "%s: '%s' is a freed tensor", fname, name) end
      local kind = p.dtype == DTYPE_U8 and "u8" or p.dtype == DTYPE_I32 and "i32" or nil
      if not kind then
         fail(4, "%s: '%s' must be a u8 or i32 tensor, got %s", fname, name, x:dtype())
      end
      if tonumber(p.numel) < count then
         fail(4, "%s: '%s' has %d elements, expected %d", fname, name, tonumber(p.numel), count)
      end
      return p.data, kind, x
   end
   if type(x) ~= "cdata" then
      fail(4, "%s: '%s' must be an FFI uint8_t/int32_t array, an hrm.Tensor or a list, got %s",
           fname, name, type(x))
   end
   local kind, bytes = cdata_kind(x)
   if not kind then
      fail(4, "%s: '%s' must point to uint8_t or int32_t, got %s", fname, name,
           tostring(ffi.typeof(x)))
   end
   if bytes and bytes < count * (kind == "u8" and 1 or 4) then
      fail(4, "%s: '%s' holds %d bytes, %d elements need %d", fname, name, bytes, count,
           count * (kind == "u8" and 1 or 4))
   end
   return x, kind, x
end

-- Entries of a CSR field when its count is not given: from its length (list, array, tensor).
local function csr_count(x, given)
   if given ~= nil then return given end
   if x == nil then return nil end
   if type(x) == "table" then return #x - 1 end
   if Tensor.is_tensor(x) then return x:numel() - 1 end
   local _, bytes = cdata_kind(x)
   if bytes then return bytes / 4 - 1 end
   return nil
end

-- ---- Dataset --------------------------------------------------------------------------------

-- Dataset.new{vocab_size =, seq_len =, pad_id = 0, ignore_label_id = 0 (false: none),
-- blank_identifier_id = 0, num_puzzle_identifiers = 1}. An arrays table (with inputs, ...)
-- is added at once.
function Dataset.new(t)
   if type(t) ~= "table" then
      fail(2, "hrm.data.Dataset.new: bad argument #1: expected a table of metadata, got %s",
           type(t))
   end
   for k in pairs(t) do
      if not NEW_KEYS[k] then
         fail(2, "hrm.data.Dataset.new: unknown field '%s'", tostring(k))
      end
   end
   local m = make_meta(t, "hrm.data.Dataset.new")
   if C.hrm_dataset_new(ds_out, m) ~= 0 then error(last_error(), 2) end
   local ds = wrap(ds_out[0])
   if t.inputs ~= nil then
      local ok, err = ds:add(t)
      if not ok then return nil, err end
   end
   if t.identifiers ~= nil then ds:set_identifiers(t.identifiers) end
   return ds
end

-- arrays with inputs and labels given as Lua tables of rows (S token ids each), flattened.
local function rows_flattened(t, S)
   local out = {}
   for k, v in pairs(t) do out[k] = v end
   for _, name in ipairs({ "inputs", "labels" }) do
      local rows, flat = t[name], {}
      if type(rows) ~= "table" or #rows ~= #t.inputs then
         fail(4, "add: '%s' must be a table of %d rows like 'inputs', got %s", name, #t.inputs, type(rows))
      end
      for r, row in ipairs(rows) do
         if type(row) ~= "table" or #row ~= S then
            fail(4, "add: '%s' row %d must be a table of %d (seq_len) token ids", name, r, S)
         end
         for k = 1, S do flat[#flat + 1] = row[k] end
      end
      out[name] = flat
   end
   out.n = #t.inputs
   return out
end

-- ds:add(arrays) appends examples, puzzles and groups in one C call; returns ds.
-- arrays = {inputs =, labels = (N*S, or Lua tables of N rows), puzzle_identifiers = (P),
-- puzzle_indices = (P+1), group_indices = (G+1), n = N [, n_puzzles = P, n_groups = G]}; the last
-- three arrays may be omitted (one puzzle per example, one group per puzzle, blank ids).
function Dataset:add(t)
   local p = handle(self, "add")
   if type(t) ~= "table" then
      fail(2, "add: bad argument #1: expected an arrays table, got %s", type(t))
   end
   local S = self:meta().seq_len
   if type(t.inputs) == "table" and type(t.inputs[1]) == "table" then t = rows_flattened(t, S) end
   local n, x = t.n, t.inputs
   if n == nil and type(x) == "table" then n = #x / S
   elseif n == nil and Tensor.is_tensor(x) then n = x:numel() / S
   elseif n == nil and type(x) == "cdata" then
      local kind, bytes = cdata_kind(x)
      if bytes then n = bytes / (kind == "u8" and 1 or 4) / S end
   end
   want_int(n, 0, "'n' (the number of examples)", "add")
   local a = ffi.new("hrm_dataset_arrays")
   a.n = n
   local keep = {}
   local kind_in, kind_lab
   if n > 0 then
      a.inputs, kind_in, keep[1] = array_arg(t.inputs, "inputs", n * S, nil, "add")
      a.labels, kind_lab, keep[2] = array_arg(t.labels, "labels", n * S, kind_in, "add")
      if kind_in ~= kind_lab then
         fail(2, "add: inputs are %s but labels are %s: they must have the same type", kind_in,
              kind_lab)
      end
   end
   a.token_dtype = kind_in == "i32" and DTYPE_I32 or DTYPE_U8
   local function index_array(k, name, count)
      local ptr, kind, obj = array_arg(t[name], name, count, "i32", "add")
      if kind ~= "i32" then fail(3, "add: '%s' must be int32", name) end
      keep[k] = obj
      return ptr
   end
   local P = n
   if t.puzzle_indices ~= nil then
      P = want_int(csr_count(t.puzzle_indices, t.n_puzzles), 0, "'n_puzzles'", "add")
      a.puzzle_indices, a.n_puzzles = index_array(3, "puzzle_indices", P + 1), P
   end
   if t.puzzle_identifiers ~= nil then
      a.puzzle_identifiers = index_array(4, "puzzle_identifiers", P)
   end
   if t.group_indices ~= nil then
      local G = want_int(csr_count(t.group_indices, t.n_groups), 0, "'n_groups'", "add")
      a.group_indices, a.n_groups = index_array(5, "group_indices", G + 1), G
   end
   local rc = C.hrm_dataset_add(p, a)
   keep = nil
   if rc == ERR_MEMORY then return nil, last_error() end
   if rc ~= 0 then error(last_error(), 2) end
   return self
end

-- Dataset.load(path [, split]) -> dataset | nil, err. path: a .hrmd file, a reference split
-- folder (holding dataset.json), or a dataset root with split = "train" / "test".
function Dataset.load(path, split)
   if type(path) ~= "string" then
      fail(2, "hrm.data.Dataset.load: bad argument #1 (path): expected a string, got %s",
           type(path))
   end
   if split ~= nil and type(split) ~= "string" then
      fail(2, "hrm.data.Dataset.load: bad argument #2 (split): expected a string, got %s",
           type(split))
   end
   if C.hrm_dataset_load(ds_out, path, split) ~= 0 then return nil, last_error() end
   local ds = wrap(ds_out[0])
   if C.hrm_dataset_file_version(ds_out[0]) == 1 then
      io.stderr:write(string.format("hrm: note: '%s' is a version 1 .hrmd file, which has no " ..
                                    "checksums: it was loaded unchecked (ds:save writes version 2)\n", path))
   end
   return ds
end
M.load = Dataset.load

-- ds:save(path) -> true | nil, err (.hrmd, written atomically).
function Dataset:save(path)
   local p = handle(self, "save")
   if type(path) ~= "string" then
      fail(2, "save: bad argument #1 (path): expected a string, got %s", type(path))
   end
   if C.hrm_dataset_save(p, path) ~= 0 then return nil, last_error() end
   return true
end

local arrays_buf = ffi.new("hrm_dataset_arrays")
local function counts(self, fname)
   C.hrm_dataset_get_arrays(arrays_buf, handle(self, fname))
   return arrays_buf
end

function Dataset:size() return tonumber(counts(self, "size").n) end
function Dataset:puzzles() return tonumber(counts(self, "puzzles").n_puzzles) end
function Dataset:groups() return tonumber(counts(self, "groups").n_groups) end
function Dataset:meta() return meta_table(handle(self, "meta")) end

-- ds:example(i) -> inputs, labels (Lua lists of S token ids) of example i (1-based).
function Dataset:example(i)
   local a = counts(self, "example")
   local N = tonumber(a.n)
   if not is_int(i) or i < 1 or i > N then
      fail(2, "example: index %s out of range 1..%d", tostring(i), N)
   end
   local S = self:meta().seq_len
   local ct = a.token_dtype == DTYPE_U8 and "const uint8_t *" or "const int32_t *"
   local inp, lab = ffi.cast(ct, a.inputs), ffi.cast(ct, a.labels)
   local x, y, base = {}, {}, (i - 1) * S
   for j = 0, S - 1 do
      x[j + 1], y[j + 1] = inp[base + j], lab[base + j]
   end
   return x, y
end

-- ds:identifier(id) -> the name of puzzle id `id`, or nil.
function Dataset:identifier(id)
   local p = handle(self, "identifier")
   if not is_int(id) then
      fail(2, "identifier: bad argument #1 (id): expected an integer, got %s", tostring(id))
   end
   local s = C.hrm_dataset_identifier(p, id)
   return s ~= nil and ffi.string(s) or nil
end

-- ds:set_identifiers(list): list[i] names puzzle id i - 1 (identifiers.json's order); a table
-- with a [0] entry is read as id -> name.
function Dataset:set_identifiers(t)
   local p = handle(self, "set_identifiers")
   if type(t) ~= "table" then fail(2, "set_identifiers: expected a table, got %s", type(t)) end
   local shift = t[0] ~= nil and 0 or 1
   for k, name in pairs(t) do
      if not is_int(k) or type(name) ~= "string" then
         fail(2, "set_identifiers: entries must be integer -> string, got %s -> %s", tostring(k),
              type(name))
      end
      if C.hrm_dataset_set_identifier(p, k - shift, name) ~= 0 then error(last_error(), 2) end
   end
   return self
end

function Dataset:free()
   local p = self._p
   if p ~= nil then
      self._p = nil
      C.hrm_dataset_free(ffi.gc(p, nil))
   end
end

function Dataset:__tostring()
   if self._p == nil then return "hrm.data.Dataset (freed)" end
   local m = self:meta()
   return string.format("hrm.data.Dataset: %d examples, %d puzzles, %d groups (vocab %d, "
                        .. "seq_len %d)", self:size(), self:puzzles(), self:groups(),
                        m.vocab_size, m.seq_len)
end

-- ---- batches --------------------------------------------------------------------------------

local BATCH_OPTIONS = { batch_size = true, train = true, seed = true, epochs = true,
                        epochs_per_iter = true }

-- ds:batches{batch_size = B, train = false, seed = 0, epochs = (train: unlimited, test: 1),
-- epochs_per_iter = 1} -> an iterator; it:next() returns {inputs = (B, S) i32, labels = (B, S)
-- i32, puzzle_identifiers = (B) i32, count = real rows} (the same tensors every call) or nil
-- at the end. `for batch in it do ... end` works too.
function Dataset:batches(opts)
   local p = handle(self, "batches")
   if type(opts) ~= "table" then
      fail(2, "batches: bad argument #1: expected a table {batch_size = n, ...}, got %s",
           type(opts))
   end
   for k in pairs(opts) do
      if not BATCH_OPTIONS[k] then fail(2, "batches: unknown option '%s'", tostring(k)) end
   end
   local B = want_int(opts.batch_size, 1, "batch_size", "batches")
   local train = opts.train
   if train == nil then train = false end
   if type(train) ~= "boolean" then
      fail(2, "batches: train must be a boolean, got %s", type(train))
   end
   local seed = want_int(opts.seed or 0, 0, "seed", "batches")
   local epochs = opts.epochs
   if epochs == nil or epochs == math.huge then epochs = (train or epochs) and 0 or 1 end
   want_int(epochs, 0, "epochs (0: no limit)", "batches")
   local epi = want_int(opts.epochs_per_iter or 1, 1, "epochs_per_iter", "batches")

   local cfg = ffi.new("hrm_sampler_config")
   cfg.batch_size, cfg.train, cfg.seed = B, train and 1 or 0, seed
   cfg.max_epochs, cfg.epochs_per_iter = epochs, epi
   if C.hrm_sampler_new(sampler_out, p, cfg) ~= 0 then error(last_error(), 2) end
   local S = self:meta().seq_len
   local it = setmetatable({
      _s = ffi.gc(sampler_out[0], C.hrm_sampler_free),
      _ds = self,
      _count = ffi.new("int32_t[1]"),
      _state = ffi.new("hrm_sampler_state"),
      batch = {
         inputs = Tensor.zeros(B, S, "i32"), labels = Tensor.zeros(B, S, "i32"),
         puzzle_identifiers = Tensor.zeros(B, "i32"), count = 0, batch_size = B,
      },
   }, Batches)
   return it
end

local function sampler(self, fname)
   if getmetatable(self) ~= Batches then
      fail(3, "%s: expected a batch iterator (call it with ':')", fname)
   end
   return self._s
end

-- it:next() -> batch | nil at the end | nil, err.
function Batches:next()
   local s = sampler(self, "next")
   local b = self.batch
   if C.hrm_sampler_next(self._count, b.inputs.p, b.labels.p, b.puzzle_identifiers.p, s) ~= 0 then
      return nil, last_error()
   end
   local count = self._count[0]
   if count == 0 then return nil end
   b.count = count
   return b
end

function Batches:__call()
   local b, err = self:next()
   if err then error(err, 2) end
   return b
end

-- it:state() -> {seed, epoch, index, draws}: plain numbers for a checkpoint.
function Batches:state()
   local st = self._state
   C.hrm_sampler_get_state(st, sampler(self, "state"))
   return { seed = tonumber(st.seed), epoch = tonumber(st.epoch), index = tonumber(st.index),
            draws = tonumber(st.draws) }
end

-- it:set_state(t): continue exactly where state() was taken.
function Batches:set_state(t)
   local s = sampler(self, "set_state")
   if type(t) ~= "table" then
      fail(2, "set_state: expected a table from state(), got %s", type(t))
   end
   local st = self._state
   for _, k in ipairs({ "seed", "epoch", "index", "draws" }) do
      if not is_int(t[k]) or t[k] < 0 then
         fail(2, "set_state: field '%s' must be a non-negative integer, got %s", k, tostring(t[k]))
      end
      st[k] = t[k]
   end
   if C.hrm_sampler_set_state(s, st) ~= 0 then error(last_error(), 2) end
   return self
end

-- it:epoch() -> epochs completed so far.
function Batches:epoch() return self:state().epoch end

-- it:reset(): back to the first batch of epoch 0.
function Batches:reset()
   return self:set_state({ seed = self:state().seed, epoch = 0, index = 0, draws = 0 })
end

return M
