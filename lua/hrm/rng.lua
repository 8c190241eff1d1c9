-- hrm.rng — the process-wide random generator behind hrm.manual_seed and Tensor.rand/randn.
--
-- It is one C `hrm_rng` (Philox, state = seed + counter), so a script's random draws are
-- reproducible for a given --seed and can be saved/restored as two numbers (get_state /
-- set_state). Models and datasets keep their own generators.
local ffi = require "ffi"

local M = {}
local state = ffi.new("hrm_rng")
local C = require "hrm.ffi"
C.hrm_rng_init(state, 0)

function M.state() return state end

function M.manual_seed(seed)
   if type(seed) ~= "number" or seed < 0 or seed ~= math.floor(seed) then
      error("manual_seed: bad argument #1 (seed): expected a non-negative integer, got " .. tostring(seed), 2)
   end
   C.hrm_rng_init(state, seed)
end

function M.get_state() return { seed = tonumber(state.seed), counter = tonumber(state.counter) } end

function M.set_state(s)
   if type(s) ~= "table" or type(s.seed) ~= "number" or type(s.counter) ~= "number" then
      error("set_state: expected a table {seed = n, counter = n}", 2)
   end
   state.seed, state.counter = s.seed, s.counter
end

-- A uniform float in [0, 1), or an integer in [1, n] / [a, b] like math.random.
function M.random(a, b)
   if (a ~= nil and type(a) ~= "number") or (b ~= nil and type(b) ~= "number") then
      error(string.format("random: bad argument #%d (%s): expected a number, got %s", type(a) ~= "number" and 1 or 2,
                          type(a) ~= "number" and (b == nil and "n" or "a") or "b", type(a) ~= "number" and type(a) or type(b)), 2)
   end
   local u = C.hrm_rng_uniform(state)
   if a == nil then return u end
   if b == nil then a, b = 1, a end
   return a + math.floor(u * (b - a + 1))
end

return M
