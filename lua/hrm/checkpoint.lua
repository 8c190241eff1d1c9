-- hrm.checkpoint — save and restore a whole training state in one .hrm file (C: core/checkpoint.c).
--
-- save(path, {model, optim, carry (or a list of carries), data = sampler, step, extra}) -> true
-- load(path [, {data = sampler, device = "cpu"}]) -> the same table rebuilt, or nil, err
-- A resumed run continues bit for bit: the file holds every model tensor (parameters and buffers,
-- the puzzle table included), the optimizer's moments and step count, each carry's state, the
-- model's exploration RNG, the global RNG (hrm.rng), the sampler's state, the step and the
-- caller's `extra` table (JSON values) and its own named tensors (`tensors`, e.g. EMA weights:
-- one file, so they cannot be paired with another save's). Files are checksummed (format
-- version 2) and verified on open; version 1 files load unchecked, with a note on stderr.
-- Restored carries are validated (tokens, ids, halted, steps) before anything uses them.
-- Tensors are read straight into the new objects' memory,
-- so a 2 GB puzzle table is never held twice. Save between steps (after opt:step), when no
-- gradient is pending: gradients are not stored. Also installs model:save(path) and
-- hrm.Model.load(path) (weights and config only) on hrm.Model.
local ffi = require "ffi"
local C = require "hrm.ffi"
local Model = require "hrm.Model"
local optim = require "hrm.optim"
local rng = require "hrm.rng"
local fs = require "hrm.fs"
local Tensor = require "hrm.Tensor"

local M = {}

M.META_VERSION = 1  -- version of the meta layout below (the file format has its own)
-- Version 2: the carry's states are stored in bf16 (a forward_dtype = "bfloat16" model's carry
-- holds bf16 values, so nothing is lost); version 1 files still load. Only such files say 2, so
-- an hrm that reads version 1 only refuses them by name instead of misreading them.
M.META_VERSION_BF16_CARRY = 2
local OPTIM_TENSORS = { "m", "v", "t" }
local EXTRA_PREFIX = "extra."  -- the caller's own tensors (state.tensors)

local c_error = require("hrm.errors").last

-- Runtime failures inside load are raised as tables and turned into nil, err at the top.
local Failure = {}
local function fail(fmt, ...) error(setmetatable({ msg = string.format(fmt, ...) }, Failure), 0) end

-- ---- exact 64-bit integers in JSON (as decimal strings) ------------------------------------------

local U64_MAX = 0xffffffffffffffffULL

local function u64_text(v)
   return (tostring(ffi.cast("uint64_t", v)):gsub("ULL$", ""))
end

local function u64_parse(s, what)
   if type(s) == "number" and s >= 0 and s == math.floor(s) and s < 2 ^ 53 then
      return ffi.cast("uint64_t", s)
   end
   if type(s) ~= "string" or not s:match("^%d+$") or #s > 20 then
      fail("%s is %s, expected a 64-bit unsigned integer as a decimal string", what, tostring(s))
   end
   local v = 0ULL
   for i = 1, #s do
      local d = s:byte(i) - 48
      if v > (U64_MAX - d) / 10 then fail("%s (%s) does not fit in 64 bits", what, s) end
      v = v * 10 + d
   end
   return v
end

local function i64_parse(s, what)
   if type(s) ~= "string" then fail("%s is not a decimal string", what) end
   local neg, digits = s:match("^(%-?)(%d+)$")
   if not digits then fail("%s (%s) is not a decimal integer", what, s) end
   local u = u64_parse(digits, what)
   if u > (neg == "-" and 0x8000000000000000ULL or 0x7fffffffffffffffULL) then
      fail("%s (%s) does not fit in 64 bits", what, s)
   end
   return neg == "-" and -ffi.cast("int64_t", u) or ffi.cast("int64_t", u)
end

local function rng_get(r) return { seed = u64_text(r.seed), counter = u64_text(r.counter) } end

local function rng_set(r, s, what)
   if type(s) ~= "table" then fail("%s is missing from the checkpoint's meta", what) end
   local seed, counter = u64_parse(s.seed, what .. ".seed"), u64_parse(s.counter, what .. ".counter")
   r.seed, r.counter = seed, counter
end

-- ---- plain values <-> JSON values (sampler states may hold 64-bit cdata) ------------------------

local function to_json(v, path, depth)
   local tv = type(v)
   if tv == "cdata" then
      if ffi.istype("uint64_t", v) then return { ["$u64"] = u64_text(v) } end
      if ffi.istype("int64_t", v) then return { ["$i64"] = (tostring(v):gsub("LL$", "")) } end
      if ffi.istype("hrm_sampler_state", v) then
         return { ["$sampler_state"] = { seed = u64_text(v.seed), epoch = tostring(v.epoch):gsub("LL$", ""),
                                         index = tostring(v.index):gsub("LL$", ""),
                                         draws = u64_text(v.draws) } }
      end
      local n = tonumber(v)
      if n ~= nil then return n end
      error(string.format("cannot store the cdata value %s at %s", tostring(v), path), 0)
   elseif tv == "table" then
      if depth > 100 then error("tables nested deeper than 100 at " .. path, 0) end
      local t = {}
      for k, x in pairs(v) do t[k] = to_json(x, path .. "." .. tostring(k), depth + 1) end
      local mt = getmetatable(v)
      return setmetatable(t, mt and mt.__jsontype and mt or nil)
   end
   return v
end

local function from_json(v, path)
   if type(v) ~= "table" or v == fs.null then return v end
   local k1, x1 = next(v)
   if k1 ~= nil and next(v, k1) == nil and type(k1) == "string" and k1:sub(1, 1) == "$" then
      if k1 == "$u64" then return u64_parse(x1, path) end
      if k1 == "$i64" then return i64_parse(x1, path) end
      if k1 == "$sampler_state" and type(x1) == "table" then
         local s = ffi.new("hrm_sampler_state")
         s.seed, s.draws = u64_parse(x1.seed, path .. ".seed"), u64_parse(x1.draws, path .. ".draws")
         s.epoch, s.index = i64_parse(x1.epoch, path .. ".epoch"), i64_parse(x1.index, path .. ".index")
         return s
      end
   end
   local t = {}
   for k, x in pairs(v) do t[k] = from_json(x, path .. "." .. tostring(k)) end
   return t
end

-- ---- writing -------------------------------------------------------------------------------------

local function is_model(m) return getmetatable(m) == Model and rawget(m, "store") ~= nil end

local function write(path, meta, names, tensors)
   local ok, text = pcall(fs.encode, meta)
   if not ok then error("checkpoint.save: cannot store the state as JSON: " .. tostring(text), 3) end
   local n = #names
   local cnames = ffi.new("const char *[?]", math.max(n, 1))
   local ctensors = ffi.new("const hrm_tensor *[?]", math.max(n, 1))
   local hosts = {}  -- device tensors are written from host copies
   for i = 1, n do
      cnames[i - 1] = names[i]
      hosts[i] = tensors[i]:to("cpu")
      ctensors[i - 1] = hosts[i]:cdata()
   end
   local rc = C.hrm_checkpoint_write(path, text, n, cnames, ctensors)
   local _ = #hosts + #names -- the strings and tensors stay referenced through the call
   if rc ~= 0 then return nil, c_error() end
   return true
end

local function model_part(model, names, tensors)
   for _, name in ipairs(model:tensor_names()) do
      names[#names + 1] = name
      tensors[#tensors + 1] = (model:tensor(name))
   end
   return { config = model:config(), device = model.device }
end

-- save(path, {model = m, optim = o, carry = c | {c1, c2, ...}, data = sampler, step = n, extra = t})
function M.save(path, state)
   if type(path) ~= "string" or path == "" then
      error("checkpoint.save: bad argument #1 (path): expected a file name, got " .. tostring(path), 2)
   end
   if type(state) ~= "table" then
      error("checkpoint.save: bad argument #2 (state): expected a table {model = m, optim = o, ...}", 2)
   end
   local model = state.model
   if not is_model(model) then error("checkpoint.save: state.model must be an hrm.Model", 2) end
   local names, tensors = {}, {}
   local meta = { hrm_checkpoint = M.META_VERSION, kind = "state",
                  hrm_version = ffi.string(C.hrm_version()) }
   meta.model = model_part(model, names, tensors)
   meta.model.rng = rng_get(model.store:rng())
   meta.rng = rng_get(rng.state())

   local o = state.optim
   if o ~= nil then
      if getmetatable(o) ~= optim.Optim then error("checkpoint.save: state.optim must be an hrm.optim optimizer", 2) end
      if o.model ~= model then error("checkpoint.save: state.optim belongs to another model", 2) end
      meta.optim = { kind = o.kind, settings = o.settings, lr = o.lr, puzzle_emb_lr = o.puzzle_emb_lr }
      for _, k in ipairs(OPTIM_TENSORS) do
         names[#names + 1] = "optim." .. k
         tensors[#tensors + 1] = o:tensor(k)
      end
   end

   local carries = state.carry
   if carries ~= nil then
      meta.carry_list = getmetatable(carries) ~= Model.Carry
      if not meta.carry_list then carries = { carries } end
      if type(carries) ~= "table" then
         error("checkpoint.save: state.carry must be a carry or a list of carries", 2)
      end
      meta.carries = fs.array()
      local bf16 = model:config().forward_dtype == "bfloat16"
      if bf16 then meta.hrm_checkpoint = M.META_VERSION_BF16_CARRY end
      for k, c in ipairs(carries) do
         if getmetatable(c) ~= Model.Carry or c.model ~= model then
            error(string.format("checkpoint.save: carry %d is not a carry of state.model", k), 2)
         end
         meta.carries[k] = { B = c.B }
         for _, f in ipairs(c:tensor_names()) do
            names[#names + 1] = string.format("carry.%d.%s", k, f)
            local t = c:tensor(f)
            if bf16 and c.states[f] then t = t:to("bf16") end
            tensors[#tensors + 1] = t
         end
      end
   end

   if state.data ~= nil then
      local s = state.data
      if (type(s) ~= "table" and type(s) ~= "userdata" and type(s) ~= "cdata") or type(s.state) ~= "function" then
         error("checkpoint.save: state.data must be a sampler with a :state() method", 2)
      end
      local ok, v = pcall(to_json, s:state(), "data", 0)
      if not ok then error("checkpoint.save: the sampler's state: " .. tostring(v), 2) end
      meta.data_state = v
   end
   if state.step ~= nil then
      if type(state.step) ~= "number" then error("checkpoint.save: state.step must be a number", 2) end
      meta.step = state.step
   end
   if state.extra ~= nil then
      local ok, v = pcall(to_json, state.extra, "extra", 0)
      if not ok then error("checkpoint.save: state.extra: " .. tostring(v), 2) end
      meta.extra = v
   end
   if state.tensors ~= nil then
      if type(state.tensors) ~= "table" then
         error("checkpoint.save: state.tensors must be a table {name = tensor}", 2)
      end
      local keys = {}
      for key, t in pairs(state.tensors) do
         if type(key) ~= "string" or key == "" or not Tensor.is_tensor(t) then
            error("checkpoint.save: state.tensors must map non-empty names to tensors (" ..
                  tostring(key) .. ")", 2)
         end
         keys[#keys + 1] = key
      end
      table.sort(keys)
      for _, key in ipairs(keys) do
         names[#names + 1] = EXTRA_PREFIX .. key
         tensors[#tensors + 1] = state.tensors[key]
      end
   end
   return write(path, meta, names, tensors)
end

-- ---- reading -------------------------------------------------------------------------------------

local noted = {}  -- unchecked files already reported, by path

local function open(path)
   local out = ffi.new("hrm_checkpoint *[1]")
   if C.hrm_checkpoint_open(out, path) ~= 0 then return nil, c_error() end
   if C.hrm_checkpoint_version(out[0]) < 2 and not noted[path] then
      noted[path] = true
      io.stderr:write(string.format("hrm: note: '%s' is a version %d checkpoint, which has no checksums: " ..
                                    "it was loaded unchecked (saving it again writes a checked file)\n",
                                    path, C.hrm_checkpoint_version(out[0])))
   end
   return ffi.gc(out[0], C.hrm_checkpoint_free)
end

-- Whether the open file's checksums were verified (format version 2 and later).
local function checked(f) return C.hrm_checkpoint_version(f) >= 2 end

local function close(f) C.hrm_checkpoint_free(ffi.gc(f, nil)) end

local dtype_buf = ffi.new("int32_t[1]")
local ndim_buf = ffi.new("int32_t[1]")
local shape_buf = ffi.new("int64_t[4]")

-- t = the file's tensor `name`; with bf16_ok, a bf16 tensor in the file is widened into an f32 t
-- (a bf16 model's carry states).
local function read_into(f, t, name, bf16_ok)
   if bf16_ok and t:dtype() == "f32" and
      C.hrm_checkpoint_info(dtype_buf, ndim_buf, shape_buf, f, name) == 0 and dtype_buf[0] == C.HRM_DTYPE_BF16 then
      local h = Tensor.zeros(t:size(), "bf16")
      if C.hrm_checkpoint_read_into(h:cdata(), f, name) ~= 0 then fail("%s", c_error()) end
      t:copy(h)
      return
   end
   local h = t:device() == "cpu" and t or Tensor.zeros(t:size(), t:dtype())
   if C.hrm_checkpoint_read_into(h:cdata(), f, name) ~= 0 then fail("%s", c_error()) end
   if h ~= t then t:copy(h) end
end

local function read_meta(f, path)
   local meta, err = fs.decode(ffi.string(C.hrm_checkpoint_meta(f)))
   if meta == nil then fail("'%s': its meta is not readable: %s", path, err) end
   if type(meta) ~= "table" or meta.hrm_checkpoint == nil then
      fail("'%s' is an .hrm file without hrm.checkpoint's meta (no 'hrm_checkpoint' field)", path)
   end
   if meta.hrm_checkpoint ~= M.META_VERSION and meta.hrm_checkpoint ~= M.META_VERSION_BF16_CARRY then
      fail("'%s' has checkpoint meta version %s; this hrm reads %d and %d\n---> HINT: %s", path,
           tostring(meta.hrm_checkpoint), M.META_VERSION, M.META_VERSION_BF16_CARRY,
           type(meta.hrm_checkpoint) == "number" and meta.hrm_checkpoint > M.META_VERSION_BF16_CARRY
              and "a newer hrm wrote it" or "the file is corrupt")
   end
   if type(meta.model) ~= "table" or type(meta.model.config) ~= "table" then
      fail("'%s': its meta has no model config", path)
   end
   return meta
end

-- A new model from the stored config with every tensor read in place; the file's names must be
-- exactly the model's plus optim.* and carry.* entries.
local function build_model(f, meta, path, opts)
   local cfg = from_json(meta.model.config, "model.config")
   local ok, model = pcall(Model, cfg, { device = opts.device or meta.model.device, empty = true })
   if not ok then fail("'%s': cannot build the stored model: %s", path, tostring(model)) end
   local h = model.store._h
   local unknown, missing = {}, {}
   local present = {}
   for i = 0, C.hrm_checkpoint_count(f) - 1 do
      local name = ffi.string(C.hrm_checkpoint_name(f, i))
      present[name] = true
      if not name:match("^optim%.") and not name:match("^carry%.") and not name:match("^extra%.") and
         C.hrm_params_find(h, name) < 0 then
         unknown[#unknown + 1] = name
      end
   end
   local names = model:tensor_names()
   for _, name in ipairs(names) do
      if not present[name] then missing[#missing + 1] = name end
   end
   if #unknown > 0 or #missing > 0 then
      local function list(t) return table.concat(t, ", ", 1, math.min(#t, 5)) .. (#t > 5 and ", ..." or "") end
      fail("'%s' does not match the model of its own config (%d missing: %s; %d not in the model: %s)",
           path, #missing, list(missing), #unknown, list(unknown))
   end
   for _, name in ipairs(names) do read_into(f, (model:tensor(name)), name) end
   return model
end

-- The caller's own tensors (saved as state.tensors), as new CPU tensors by name.
local function read_extra_tensors(f)
   local out = {}
   local dtype, ndim, shape = ffi.new("int32_t[1]"), ffi.new("int32_t[1]"), ffi.new("int64_t[4]")
   for i = 0, C.hrm_checkpoint_count(f) - 1 do
      local name = ffi.string(C.hrm_checkpoint_name(f, i))
      local key = name:sub(1, #EXTRA_PREFIX) == EXTRA_PREFIX and name:sub(#EXTRA_PREFIX + 1)
      if key then
         if C.hrm_checkpoint_info(dtype, ndim, shape, f, name) ~= 0 then fail("%s", c_error()) end
         local dims = {}
         for d = 1, ndim[0] do dims[d] = tonumber(shape[d - 1]) end
         local t = Tensor.zeros(dims, ffi.string(C.hrm_dtype_name(dtype[0])))
         read_into(f, t, name)
         out[key] = t
      end
   end
   return out
end

-- ---- restored carries are checked before use ----------------------------------------------------
-- A carry's rows that continue use their stored tokens, ids and counters, never checked again by
-- the step: a damaged or crafted value would index the embedding tables out of bounds. Checked
-- through carry:tensor(name) and the model config only. Raises (fail) naming field and row.

local IGNORE_LABEL = -100

local function check_field(carry, field, what, ok, expect)
   local t = carry:tensor(field)
   local v = t:to("cpu"):to("f64")
   local p = ffi.cast("const double *", v:cdata().data)
   local n = v:numel()
   local per_row = t:dim() >= 2 and n / t:size(1) or 1
   for i = 0, n - 1 do
      local x = p[i]
      if not ok(x) then
         local row, col = math.floor(i / per_row) + 1, i % per_row + 1
         fail("%s: %s of row %d%s is %s, expected %s\n---> HINT: the file is damaged or was not " ..
              "written by hrm", what, field, row, per_row > 1 and (" (position " .. col .. ")") or "",
              x == x and string.format("%.17g", x) or "nan", expect)
      end
   end
end

local function validate_carry(carry, cfg, what)
   local V, P = cfg.vocab_size, cfg.num_puzzle_identifiers or 1
   local function int(x) return x == math.floor(x) end
   check_field(carry, "inputs", what, function(x) return int(x) and x >= 0 and x < V end,
               string.format("a token in [0, %d)", V))
   check_field(carry, "labels", what, function(x) return int(x) and ((x >= 0 and x < V) or x == IGNORE_LABEL) end,
               string.format("a token in [0, %d) or %d (ignored)", V, IGNORE_LABEL))
   check_field(carry, "puzzle_ids", what, function(x) return int(x) and x >= 0 and x < P end,
               string.format("a puzzle id in [0, %d) (num_puzzle_identifiers)", P))
   check_field(carry, "halted", what, function(x) return x == 0 or x == 1 end, "0 or 1")
   check_field(carry, "steps", what, function(x) return int(x) and x >= 0 end, "a count >= 0")
end

-- validate_carry(carry, config [, what]) -> true | nil, err: `what` names the carry in messages
-- ("'run/last.hrm': carry 1"); config is the model's (vocab_size, num_puzzle_identifiers).
function M.validate_carry(carry, cfg, what)
   local ok, err = pcall(validate_carry, carry, cfg, what or "carry")
   if ok then return true end
   if getmetatable(err) == Failure then return nil, err.msg end
   error(err, 0)
end

local function load_state(f, path, opts)
   local meta = read_meta(f, path)
   local state = { meta = meta }
   local model = build_model(f, meta, path, opts)
   state.model = model
   if meta.model.rng ~= nil then rng_set(model.store:rng(), meta.model.rng, "model.rng") end

   local mo = meta.optim
   if mo ~= nil then
      local make = type(mo) == "table" and optim[mo.kind]
      if type(make) ~= "function" or type(mo.settings) ~= "table" then
         fail("'%s': unknown optimizer '%s'", path, tostring(type(mo) == "table" and mo.kind))
      end
      local ok, o = pcall(make, model, from_json(mo.settings, "optim.settings"))
      if not ok then fail("'%s': cannot rebuild the optimizer: %s", path, tostring(o)) end
      if type(mo.lr) == "number" then o.lr = mo.lr end
      if type(mo.puzzle_emb_lr) == "number" then o.puzzle_emb_lr = mo.puzzle_emb_lr end
      for _, k in ipairs(OPTIM_TENSORS) do read_into(f, o:tensor(k), "optim." .. k) end
      state.optim = o
   end

   if meta.carries ~= nil then
      if type(meta.carries) ~= "table" then fail("'%s': meta.carries is not a list", path) end
      local list = {}
      for k, c in ipairs(meta.carries) do
         local B = type(c) == "table" and c.B
         if type(B) ~= "number" or B < 1 or B ~= math.floor(B) then
            fail("'%s': carry %d has no valid batch size", path, k)
         end
         local carry = model:carry(B)
         for _, field in ipairs(carry:tensor_names()) do
            read_into(f, carry:tensor(field), string.format("carry.%d.%s", k, field), carry.states[field] ~= nil)
         end
         validate_carry(carry, model:config(), string.format("'%s': carry %d", path, k))
         list[k] = carry
      end
      if meta.carry_list then state.carry = list else state.carry = list[1] end
   end

   if meta.rng ~= nil and opts.rng ~= false then rng_set(rng.state(), meta.rng, "rng") end
   if opts.data ~= nil and meta.data_state == nil then
      fail("'%s' holds no sampler state to restore into opts.data (it was saved without state.data)", path)
   end
   if meta.data_state ~= nil then
      state.data_state = from_json(meta.data_state, "data_state")
      if opts.data ~= nil then
         local ok, err = pcall(opts.data.set_state, opts.data, state.data_state)
         if not ok then fail("'%s': the sampler refused the stored state: %s", path, tostring(err)) end
         state.data = opts.data
      end
   end
   state.step = meta.step
   if meta.extra ~= nil then state.extra = from_json(meta.extra, "extra") end
   state.tensors = read_extra_tensors(f)
   state.checked = checked(f)
   return state
end

local function guarded(fn, f, ...)
   local ok, res, res2 = pcall(fn, f, ...)
   close(f)
   if ok then return res, res2 end
   if getmetatable(res) == Failure then return nil, res.msg end
   error(res, 0)
end

-- load(path [, {data = sampler, device = "cpu"|"cuda", rng = false}]) -> state | nil, err
-- state = {model, optim, carry, data, data_state, step, extra, meta}. The global RNG is restored
-- unless opts.rng == false; the sampler (if given) gets the stored state via :set_state().
function M.load(path, opts)
   if type(path) ~= "string" or path == "" then
      error("checkpoint.load: bad argument #1 (path): expected a file name, got " .. tostring(path), 2)
   end
   opts = opts or {}
   if type(opts) ~= "table" then error("checkpoint.load: bad argument #2 (opts): expected a table", 2) end
   if opts.data ~= nil and type(opts.data.set_state) ~= "function" then
      error("checkpoint.load: opts.data must be a sampler with a :set_state() method", 2)
   end
   local f, err = open(path)
   if not f then return nil, err end
   return guarded(load_state, f, path, opts)
end

-- The checkpoint's meta table without reading any tensor (inspection, tools).
function M.info(path)
   if type(path) ~= "string" then error("checkpoint.info: bad argument #1 (path): expected a string", 2) end
   local f, err = open(path)
   if not f then return nil, err end
   return guarded(function(file)
      local meta = read_meta(file, path)
      meta.checked = checked(file)
      meta.format_version = C.hrm_checkpoint_version(file)
      meta.tensors = {}
      for i = 0, C.hrm_checkpoint_count(file) - 1 do
         meta.tensors[#meta.tensors + 1] = ffi.string(C.hrm_checkpoint_name(file, i))
      end
      return meta
   end, f)
end

-- ---- weights and config only: model:save(path), hrm.Model.load(path) --------------------------------

-- model:save(path) -> true | nil, err
function M.save_model(model, path)
   if not is_model(model) then error("save: bad argument #1 (model): expected an hrm.Model", 2) end
   if type(path) ~= "string" or path == "" then
      error("save: bad argument #2 (path): expected a file name, got " .. tostring(path), 2)
   end
   local names, tensors = {}, {}
   local meta = { hrm_checkpoint = M.META_VERSION, kind = "model",
                  hrm_version = ffi.string(C.hrm_version()) }
   meta.model = model_part(model, names, tensors)
   return write(path, meta, names, tensors)
end

-- checkpoint.load_weights(model, path) -> true | nil, err: the model tensors of a model file or a
-- training checkpoint, read into an existing model of the same shapes. Every tensor is checked
-- before the first is copied, so a mismatch leaves the model as it was.
function M.load_weights(model, path)
   if not is_model(model) then error("load_weights: bad argument #1 (model): expected an hrm.Model", 2) end
   if type(path) ~= "string" or path == "" then
      error("load_weights: bad argument #2 (path): expected a file name, got " .. tostring(path), 2)
   end
   local f, err = open(path)
   if not f then return nil, err end
   return guarded(function(file)
      local names = model:tensor_names()
      local dtype, ndim, shape = ffi.new("int32_t[1]"), ffi.new("int32_t[1]"), ffi.new("int64_t[4]")
      local views = {}
      for i, name in ipairs(names) do
         if C.hrm_checkpoint_info(dtype, ndim, shape, file, name) ~= 0 then fail("%s", c_error()) end
         local v = model:tensor(name)
         local want = v:size()
         local same = ndim[0] == #want and dtype[0] == v:cdata().dtype
         for d = 1, #want do same = same and shape[d - 1] == want[d] end
         if not same then
            local got = {}
            for d = 1, ndim[0] do got[d] = tostring(shape[d - 1]):gsub("LL$", "") end
            fail("'%s': tensor '%s' is %s [%s] in the file but %s [%s] in the model\n---> HINT: the model's " ..
                 "config must match the file's (hrm.Model.load(path) builds the right model)", path, name,
                 ffi.string(C.hrm_dtype_name(dtype[0])), table.concat(got, ", "), v:dtype(), table.concat(want, ", "))
         end
         views[i] = v
      end
      for i, name in ipairs(names) do read_into(file, views[i], name) end
      return true
   end, f)
end

-- hrm.Model.load(path [, {device, config, ema}]) -> model, info | nil, err: the one way to load a
-- model. path: a run directory (its best.hrm, else last.hrm), a .hrm file (a model file or a whole
-- training checkpoint) or a .safetensors file (config from opts.config, else the run's config.json
-- beside it). opts.ema: the checkpoint's EMA weights instead of the trained ones.
-- info = {path, run_dir, run_config (the run's config.json), step, extra (the checkpoint's)}.
function M.load_model(path, opts)
   if type(path) ~= "string" or path == "" then
      error("Model.load: bad argument #1 (path): expected a file name, got " .. tostring(path), 2)
   end
   opts = opts or {}
   if type(opts) ~= "table" then error("Model.load: bad argument #2 (opts): expected a table", 2) end
   local info = {}
   if fs.is_dir(path) then
      info.run_dir = path
      if fs.exists(path .. "/best.hrm") then path = path .. "/best.hrm"
      elseif fs.exists(path .. "/last.hrm") then path = path .. "/last.hrm"
      else return nil, "no best.hrm or last.hrm in " .. path end
   elseif not fs.exists(path) then
      return nil, "no such file: " .. path
   end
   info.path = path
   local cfg_path = (path:match("^(.*)/[^/]*$") or ".") .. "/config.json"
   if fs.exists(cfg_path) then
      local c, err = fs.read_json(cfg_path)
      if not c then return nil, err end
      info.run_config = c
   end
   if path:match("%.safetensors$") then
      local cfg = opts.config or (info.run_config and info.run_config.model)
      if type(cfg) ~= "table" then
         return nil, "a .safetensors file needs a model config\n---> HINT: pass --config (a preset or a Lua file) " ..
                     "or keep the run's config.json beside it"
      end
      if opts.ema then return nil, path .. ": EMA weights are kept in .hrm checkpoints, not in .safetensors files" end
      local clean = {}
      for k, v in pairs(cfg) do if v ~= fs.null then clean[k] = v end end
      local ok, model = pcall(Model, clean, { device = opts.device })
      if not ok then return nil, require("hrm.errors").clean(model) end
      local lok, lerr = model:load_safetensors(path)
      if not lok then return nil, lerr end
      return model, info
   end
   local f, err = open(path)
   if not f then return nil, err end
   return guarded(function(file)
      local meta = read_meta(file, path)
      local model = build_model(file, meta, path, opts)
      info.step = meta.step
      if meta.extra ~= nil then info.extra = from_json(meta.extra, "extra") end
      if opts.ema then
         local t, eerr = require("hrm.train.ema").weights(info.extra, read_extra_tensors(file), path)
         if not t then fail("%s", eerr) end
         for name, v in pairs(t) do model:tensor(name):copy(v) end
      end
      return model, info
   end, f)
end

return M
