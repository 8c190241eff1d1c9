-- hrm.config — model configurations with the reference's field names (config/arch/hrm_v1.yaml).
--
-- hrm.config.hrm_v1{...} returns a full config table: the hrm_v1 defaults with the given
-- overrides. Unknown keys and impossible values are refused with a message naming the field.
-- Presets `tiny` and `small` are CPU-sized variants; trm{...}, trm_mlp{...} and transformer{...}
-- carry the defaults of the TRM repository's trm.yaml and transformers_baseline.yaml. to_c()
-- builds the C struct; the fields only model files read (puzzle_emb_len, no_ACT_continue, mlp_t)
-- are checked here and kept in the Lua table.
local ffi = require "ffi"
local C = require "hrm.ffi"

local M = {}

local DEFAULTS = {
   hidden_size = 512, num_heads = 8, expansion = 4, H_layers = 4, L_layers = 4, H_cycles = 2,
   L_cycles = 2, halt_max_steps = 16, halt_exploration_prob = 0.1, pos_encodings = "rope",
   rms_norm_eps = 1e-5, rope_theta = 10000, puzzle_emb_ndim = nil, num_puzzle_identifiers = 1,
   vocab_size = nil, seq_len = nil, loss = "stablemax", arch = "hrm",
   -- TRM's fields (HRM_SPEC §8.2): prefix positions (0: ceil(puzzle_emb_ndim / hidden_size)),
   -- halting on q_halt > 0 with no target-Q, and the token-mixing MLP in place of attention
   puzzle_emb_len = 0, no_ACT_continue = false, mlp_t = false,
   -- the precision of the forward (HRM_SPEC §1.12): "float32" (exact), or "bfloat16" as the
   -- reference runs by default (bf16 GEMM operands from weights cast once per step, bf16 carry)
   forward_dtype = "float32",
}
-- Fields kept only in the Lua table (the C struct does not hold them).
M.LUA_FIELDS = { "puzzle_emb_len", "no_ACT_continue", "mlp_t", "forward_dtype" }
local FORWARD_DTYPES = { float32 = "float32", bfloat16 = "bfloat16", fp32 = "float32", bf16 = "bfloat16" }
-- Model-file fields: `arch` names a model of hrm/models/ ("hrm") or a path to a model file;
-- `arch_hash` is that file's content hash, recorded when a model is built from a path.
local ARCH_KEYS = { arch = true, arch_hash = true }
-- Keys of the reference's configs that are accepted and ignored (filled by its trainer).
local RUNTIME_KEYS = { batch_size = true, causal = true, name = true }
local INTEGER_KEYS = {
   hidden_size = true, num_heads = true, H_layers = true, L_layers = true, H_cycles = true,
   L_cycles = true, halt_max_steps = true, puzzle_emb_ndim = true, num_puzzle_identifiers = true,
   vocab_size = true, seq_len = true, puzzle_emb_len = true,
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
   for _, k in ipairs({ "no_ACT_continue", "mlp_t" }) do
      if type(cfg[k]) ~= "boolean" then
         error(string.format("hrm.config: field '%s' must be true or false, got %s", k, tostring(cfg[k])), level)
      end
   end
   if FORWARD_DTYPES[cfg.forward_dtype] == nil then
      error("hrm.config: field 'forward_dtype' must be \"float32\" or \"bfloat16\", got " ..
            tostring(cfg.forward_dtype), level)
   end
   cfg.forward_dtype = FORWARD_DTYPES[cfg.forward_dtype]
   local P = cfg.puzzle_emb_len or 0
   if P < 0 or P > 4096 then
      error(string.format("hrm.config: field 'puzzle_emb_len' = %d must be in 0..4096", P), level)
   end
   if P > 0 and cfg.puzzle_emb_ndim == 0 then
      error("hrm.config: puzzle_emb_len = " .. P .. " needs puzzle_emb_ndim > 0 (without a puzzle " ..
            "embedding no prefix is prepended)\n---> HINT: set puzzle_emb_len = 0", level)
   end
   if P > 0 and P * cfg.hidden_size < cfg.puzzle_emb_ndim then
      error(string.format("hrm.config: puzzle_emb_len = %d positions of hidden_size %d cannot hold " ..
                          "puzzle_emb_ndim = %d", P, cfg.hidden_size, cfg.puzzle_emb_ndim), level)
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
      error(require("hrm.errors").last(), level)
   end
   return c
end

-- The C struct back to a Lua table.
function M.from_c(c)
   local cfg = {}
   local lua_only = {}
   for _, k in ipairs(M.LUA_FIELDS) do lua_only[k] = true end
   for k in pairs(DEFAULTS) do
      if not ARCH_KEYS[k] and not lua_only[k] then cfg[k] = tonumber(c[k]) or c[k] end
   end
   for _, k in ipairs({ "puzzle_emb_ndim", "vocab_size", "seq_len", "num_puzzle_identifiers" }) do
      cfg[k] = tonumber(c[k])
   end
   for name, v in pairs(POS) do if v == c.pos_encodings then cfg.pos_encodings = name end end
   cfg.loss = c.loss == 0 and "stablemax" or "softmax"
   return cfg
end

-- Puzzle-prefix positions P of a config: puzzle_emb_len, or ceil(puzzle_emb_ndim / hidden_size).
function M.prefix_len(cfg)
   if (cfg.puzzle_emb_len or 0) > 0 then return cfg.puzzle_emb_len end
   return math.ceil(cfg.puzzle_emb_ndim / cfg.hidden_size)
end

local function merged(base, overrides)
   local t = {}
   for k, v in pairs(base) do t[k] = v end
   if type(overrides) == "table" then for k, v in pairs(overrides) do t[k] = v end end
   return t
end

-- TRM (config/arch/trm.yaml): one 2-layer network, 3 x 6 recursions, 16 prefix positions,
-- halting on q_halt > 0; H_layers is ignored. trm_mlp: the token-mixing variant (no positions).
local TRM = merged(DEFAULTS, { arch = "trm", H_layers = 0, L_layers = 2, H_cycles = 3, L_cycles = 6,
                               puzzle_emb_len = 16, no_ACT_continue = true })
local TRM_MLP = merged(TRM, { mlp_t = true, pos_encodings = "none" })
-- The transformer baseline (transformers_baseline.yaml): 8 layers, 12 heads of 42 at hidden 512.
local TRANSFORMER = merged(DEFAULTS, { arch = "transformer", H_layers = 8, H_cycles = 1, num_heads = 12 })
function M.trm(overrides) return build(TRM, overrides, 3) end
function M.trm_mlp(overrides) return build(TRM_MLP, overrides, 3) end
function M.transformer(overrides) return build(TRANSFORMER, overrides, 3) end

-- The defaults of a config's arch: trm (trm_mlp with mlp_t), transformer, else hrm_v1's.
local function arch_base(cfg)
   local arch = type(cfg) == "table" and cfg.arch or nil
   if arch == "trm" then return cfg.mlp_t and TRM_MLP or TRM end
   if arch == "transformer" then return TRANSFORMER end
   return DEFAULTS
end

-- A full config from a partial one: the defaults of its arch with its fields over them.
function M.complete(cfg) return build(arch_base(cfg), cfg, 4) end

-- The reference architecture (27M parameters with puzzle_emb_ndim 512); with overrides.arch =
-- "trm" or "transformer", that arch's reference config.
function M.hrm_v1(overrides) return build(arch_base(overrides), overrides, 3) end

-- The config fields that select an architecture by name: hrm, trm, trm_mlp, transformer (nil
-- for another name; a model file's path is {arch = path}).
function M.arch_fields(name)
   return ({ hrm = { arch = "hrm" }, trm = { arch = "trm" },
             trm_mlp = { arch = "trm", mlp_t = true, pos_encodings = "none" },
             transformer = { arch = "transformer" } })[name]
end

-- CPU-sized presets: `small` trains in minutes to hours, `tiny` in seconds (tests, smoke runs).
local SMALL = { hidden_size = 128, num_heads = 4, H_layers = 2, L_layers = 2 }
local TINY = { hidden_size = 64, num_heads = 2, H_layers = 1, L_layers = 1, halt_max_steps = 4 }

-- Over the defaults of the overrides' arch: small{arch = "trm"} is a small TRM.
local function check_overrides(overrides, fname)
   if overrides ~= nil and type(overrides) ~= "table" then
      error(string.format("hrm.config.%s: bad argument #1 (overrides): expected a table of fields, got %s", fname,
                          type(overrides)), 3)
   end
   return overrides
end
function M.small(overrides) check_overrides(overrides, "small") return build(arch_base(overrides), merged(SMALL, overrides), 3) end
function M.tiny(overrides) check_overrides(overrides, "tiny") return build(arch_base(overrides), merged(TINY, overrides), 3) end

-- A preset by name: "tiny", "small", "hrm_v1", "trm", "trm_mlp" or "transformer".
function M.preset(name, overrides)
   local f = ({ tiny = M.tiny, small = M.small, hrm_v1 = M.hrm_v1, trm = M.trm, trm_mlp = M.trm_mlp,
                transformer = M.transformer })[name]
   if not f then
      error("hrm.config.preset: unknown preset '" .. tostring(name) ..
            "' (tiny, small, hrm_v1, trm, trm_mlp, transformer)", 2)
   end
   return f(overrides)
end

return M
