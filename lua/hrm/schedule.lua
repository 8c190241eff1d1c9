-- hrm.schedule — learning-rate schedules as closures: step -> multiplier of the base rates.
--
-- warmup_cosine is the reference's cosine_schedule_with_warmup_lr_lambda (HRM_SPEC §4.3): the
-- step counter starts at 1, linear warmup, then cosine decay to min_ratio (min_ratio 1, the
-- reference's default, means constant after warmup). Both optimizers share the multiplier.
local M = {}

local function need(opts, key, fname, min)
   local v = opts[key]
   if type(v) ~= "number" or v < (min or 0) then
      error(string.format("hrm.schedule.%s: option '%s' must be a number >= %g, got %s", fname, key,
                          min or 0, tostring(v)), 3)
   end
   return v
end

function M.warmup_cosine(opts)
   opts = opts or {}
   local warmup = need(opts, "warmup", "warmup_cosine")
   local total = need(opts, "total", "warmup_cosine")
   local r = opts.min_ratio == nil and 1 or need(opts, "min_ratio", "warmup_cosine")
   local cycles = opts.num_cycles or 0.5
   return function(step)
      if step < warmup then return step / math.max(1, warmup) end
      local progress = (step - warmup) / math.max(1, total - warmup)
      return r + math.max(0, (1 - r) * 0.5 * (1 + math.cos(math.pi * cycles * 2 * progress)))
   end
end

-- The reference's default: linear warmup, then constant.
function M.warmup_constant(opts)
   opts = opts or {}
   local warmup = need(opts, "warmup", "warmup_constant")
   return function(step)
      if step < warmup then return step / math.max(1, warmup) end
      return 1
   end
end

function M.constant() return function() return 1 end end

return M
