-- hrm.config — model configurations with the reference's field names (config/arch/hrm_v1.yaml).
--
-- hrm.config.hrm_v1{...} returns a full config table: the hrm_v1 defaults with the given
-- overrides. Unknown keys and impossible values are refused with a message naming the field.
-- Presets `tiny` and `small` are CPU-sized variants. to_c() builds the C struct.
local ffi = require "ffi"
local C = require "hrm.ffi"

local M = {}

local DEFAULTS = {
   hidden_size = 512, num_heads = 8, expansion = 4, H_layers = 4, L_layers = 4, H_cycles = 2,
   L_cycles = 2, halt_max_steps = 16, halt_exploration_prob = 0.1, pos_encodings = "rope",
   rms_norm_eps = 1e-5, rope_theta = 10000, puzzle_emb_ndim = nil, num_puzzle_identifiers = 1,
   vocab_size = nil, seq_len = nil, loss = "stablemax", arch = "hrm",
}
-- Model-file fields: `arch` names a model of hrm/models/ ("hrm") or a path to a model file;
-- `arch_hash` is that file's content hash, recorded when a model is built from a path.
local ARCH_KEYS = { arch = true, arch_hash = true }
-- Keys of the reference's configs that are accepted and ignored (filled by its trainer).
local RUNTIME_KEYS = { batch_size = true, forward_dtype = true, causal = true, name = true }
local INTEGER_KEYS = {
   hidden_size = true, num_heads = true, H_layers = true, L_layers = true, H_cycles = true,
   L_cycles = true, halt_max_steps = true, puzzle_emb_ndim = true, num_puzzle_identifiers = true,
   vocab_size = true, seq_len = true,
}
local POS = { rope = 0, learned = 1, none = 2 }
local LOSS = { stablemax = 0, softmax = 1, stablemax_cross_entropy = 0, softmax_cross_entropy = 1 }
M.fields = {}
for k in pairs(DEFAULTS) do M.fields[#M.fields + 1] = k end
M.fields[#M.fields + 1] = "puzzle_emb_ndim"
M.fields[#M.fields + 1] = "vocab_size"
M.fields[#M.fields + 1] = "seq_len"
table.sort(M.fields)

local function build(defaults, overrides, level)
   overrides = overrides or {}
   if type(overrides) ~= "table" then
      error("hrm.config: expected a table of overrides, got " .. type(overrides), level)
   end
   local cfg = {}
   for k, v in pairs(defaults) do cfg[k] = v end
   for k, v in pairs(overrides) do
      if DEFAULTS[k] == nil and not INTEGER_KEYS[k] and not RUNTIME_KEYS[k] and not ARCH_KEYS[k] then
         error(string.format("hrm.config: unknown field '%s'", tostring(k)), level)
      end
      if not RUNTIME_KEYS[k] then cfg[k] = v end
   end
   if cfg.puzzle_emb_ndim == nil then cfg.puzzle_emb_ndim = cfg.hidden_size end
   return cfg
end

-- Checks types here, values in C (hrm_config_check); returns the C struct.
function M.to_c(cfg, level)
   level = (level or 1) + 1
   for k, v in pairs(cfg) do
      if INTEGER_KEYS[k] and (type(v) ~= "number" or v ~= math.floor(v)) then
         error(string.format("hrm.config: field '%s' must be an integer, got %s", k, tostring(v)), level)
      end
   end
   for _, k in ipairs({ "vocab_size", "seq_len" }) do
      if cfg[k] == nil then
         error(string.format("hrm.config: field '%s' is required (the task adapter gives it: task.%s)", k, k),
               level)
      end
   end
   if type(cfg.arch) ~= "string" then
      error("hrm.config: field 'arch' must be a model name (\"hrm\") or a model file's path, got " ..
            tostring(cfg.arch), level)
   end
   if POS[cfg.pos_encodings] == nil then
      error("hrm.config: field 'pos_encodings' must be \"rope\", \"learned\" or \"none\", got " ..
            tostring(cfg.pos_encodings), level)
   end
   if LOSS[cfg.loss] == nil then
      error("hrm.config: field 'loss' must be \"stablemax\" or \"softmax\", got " .. tostring(cfg.loss), level)
   end
   for _, k in ipairs({ "expansion", "halt_exploration_prob", "rms_norm_eps", "rope_theta" }) do
      if type(cfg[k]) ~= "number" then
         error(string.format("hrm.config: field '%s' must be a number, got %s", k, tostring(cfg[k])), level)
      end
   end
   local c = ffi.new("hrm_config", {
      hidden_size = cfg.hidden_size, num_heads = cfg.num_heads, expansion = cfg.expansion,
      H_layers = cfg.H_layers, L_layers = cfg.L_layers, H_cycles = cfg.H_cycles,
      L_cycles = cfg.L_cycles, halt_max_steps = cfg.halt_max_steps,
      halt_exploration_prob = cfg.halt_exploration_prob, pos_encodings = POS[cfg.pos_encodings],
      rms_norm_eps = cfg.rms_norm_eps, rope_theta = cfg.rope_theta,
      puzzle_emb_ndim = cfg.puzzle_emb_ndim, num_puzzle_identifiers = cfg.num_puzzle_identifiers,
      vocab_size = cfg.vocab_size, seq_len = cfg.seq_len, loss = LOSS[cfg.loss],
   })
   if C.hrm_config_check(c) ~= 0 then
      error((ffi.string(C.hrm_last_error()):gsub(" %(%S+:%d+%)$", "")), level)
   end
   return c
end

-- The C struct back to a Lua table.
function M.from_c(c)
   local cfg = {}
   for k in pairs(DEFAULTS) do if not ARCH_KEYS[k] then cfg[k] = tonumber(c[k]) or c[k] end end
   for _, k in ipairs({ "puzzle_emb_ndim", "vocab_size", "seq_len", "num_puzzle_identifiers" }) do
      cfg[k] = tonumber(c[k])
   end
   for name, v in pairs(POS) do if v == c.pos_encodings then cfg.pos_encodings = name end end
   cfg.loss = c.loss == 0 and "stablemax" or "softmax"
   return cfg
end

-- The reference architecture (27M parameters with puzzle_emb_ndim 512).
function M.hrm_v1(overrides) return build(DEFAULTS, overrides, 3) end

-- CPU-sized presets: `small` trains in minutes to hours, `tiny` in seconds (tests, smoke runs).
local SMALL = { hidden_size = 128, num_heads = 4, H_layers = 2, L_layers = 2 }
local TINY = { hidden_size = 64, num_heads = 2, H_layers = 1, L_layers = 1, halt_max_steps = 4 }

local function merged(base, overrides)
   local t = {}
   for k, v in pairs(base) do t[k] = v end
   if type(overrides) == "table" then for k, v in pairs(overrides) do t[k] = v end end
   return t
end
function M.small(overrides) return build(DEFAULTS, merged(SMALL, overrides), 3) end
function M.tiny(overrides) return build(DEFAULTS, merged(TINY, overrides), 3) end

-- A preset by name: "tiny", "small" or "hrm_v1".
function M.preset(name, overrides)
   local f = ({ tiny = M.tiny, small = M.small, hrm_v1 = M.hrm_v1 })[name]
   if not f then
      error("hrm.config.preset: unknown preset '" .. tostring(name) .. "' (tiny, small, hrm_v1)", 2)
   end
   return f(overrides)
end

return M
