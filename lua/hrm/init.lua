-- hrm — the Lua package of the Hierarchical Reasoning Model engine (a flat manifest).
--
-- `local hrm = require "hrm"` gives tensors, models, optimizers, schedules, datasets and the
-- training loop; submodules load on first use. The package sets no globals (the `hrm` host
-- makes `hrm` a global for scripts and the REPL).
local ffi = require "ffi"
local C = require "hrm.ffi"
local rng = require "hrm.rng"

local hrm = {}

hrm.C = C
hrm.Tensor = require "hrm.Tensor"
hrm.manual_seed = rng.manual_seed
hrm.random = rng.random

function hrm.version() return ffi.string(C.hrm_version()) end
function hrm.blas() return ffi.string(C.hrm_blas_info()) end
function hrm.get_threads() return C.hrm_get_threads() end
function hrm.cuda_available() return C.hrm_cuda_available() == 1 end

function hrm.set_threads(n)
   if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
      error("set_threads: bad argument #1 (n): expected a whole number >= 1, got " .. tostring(n), 2)
   end
   if C.hrm_set_threads(n) ~= 0 then error(require("hrm.errors").last(), 2) end
end

local default_device = "cpu"
function hrm.set_default_device(name)
   if name ~= "cpu" and name ~= "cuda" then
      error("set_default_device: bad argument #1 (name): expected \"cpu\" or \"cuda\", got " .. tostring(name), 2)
   end
   if name == "cuda" and not hrm.cuda_available() then
      error("set_default_device: CUDA is not available (this build has no CUDA backend or no GPU " ..
            "is present)\n---> HINT: use --device cpu", 2)
   end
   default_device = name
end
function hrm.default_device() return default_device end

-- Submodules loaded on first use: hrm.Model, hrm.config, hrm.optim, hrm.schedule, hrm.data, ...
local lazy = {
   repl = "hrm.repl", Model = "hrm.Model", config = "hrm.config", optim = "hrm.optim",
   schedule = "hrm.schedule", data = "hrm.data", checkpoint = "hrm.checkpoint",
   train = "hrm.train", progress = "hrm.progress", viz = "hrm.viz", fs = "hrm.fs",
   safetensors = "hrm.safetensors", nn = "hrm.nn", doc = "hrm.doc", dist = "hrm.dist",
}

-- help(x): the documentation of a function, module or name ("tasks.sudoku"), see hrm.doc.
function hrm.help(x) return require("hrm.doc").help(x) end

return setmetatable(hrm, {
   __submodules = lazy, -- what the REPL completes before first use
   __index = function(t, k)
      local name = lazy[k]
      if name == nil then return nil end
      local m = require(name)
      rawset(t, k, m)
      return m
   end,
})
