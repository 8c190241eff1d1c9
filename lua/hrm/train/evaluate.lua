-- hrm.train.evaluate — the reference's evaluation of a model on a data source (HRM_SPEC §3.5).
--
-- evaluate(model, source, {batch = 64, halt_max_steps, progress, on_batch, dist}) -> metrics, hist
-- Per batch a fresh carry and halt_max_steps eval segments; the metrics of the last segment are
-- summed over all batches and divided by the total count (padded rows have no labels, so the
-- model's count leaves them out). Also: q_steps, the mean step at which the Q head first says halt
-- (q_halt > q_continue; halt_max_steps if never), and its histogram hist[s] = rows.
-- With dist = true under several processes (hrm.dist), rank r evaluates batches r+1, r+1+N, ...
-- and the sums are added up over the ranks, so every rank returns the metrics of the whole set.
-- Does not: touch the weights (the caller swaps in EMA weights), or write files.
local ffi = require "ffi"
local source = require "hrm.train.source"
local errors = require "hrm.errors"
local Tensor = require "hrm.Tensor"

local M = {}

-- The metrics of a step and of an evaluation, in the order logs show them.
M.metric_keys = { "lm_loss", "exact_accuracy", "accuracy", "loss", "q_halt_loss", "q_continue_loss",
                  "q_halt_accuracy", "steps" }

-- The sums of every rank's batches, on every rank.
local function add_up(shard, sums, hist, count, q_sum, rows_seen)
   local keys, H = M.metric_keys, #hist
   local t = Tensor.zeros(#keys + 3 + H, "f64")
   local p = t:data()
   for i, k in ipairs(keys) do p[i - 1] = sums[k] end
   p[#keys], p[#keys + 1], p[#keys + 2] = count, q_sum, rows_seen
   for s = 1, H do p[#keys + 2 + s] = hist[s] end
   shard.dist.all_reduce(t)
   for i, k in ipairs(keys) do sums[k] = p[i - 1] end
   for s = 1, H do hist[s] = p[#keys + 2 + s] end
   return p[#keys], p[#keys + 1], p[#keys + 2]
end

-- on_batch(batch, out, info) sees the last segment's outputs of every batch (info = {rows = real
-- rows, q_step = i32 per row (0-based row index), batch_index}); progress:update(n, {samples}).
function M.evaluate(model, data, opts)
   opts = opts or {}
   local src, err = source.as_source(data)
   if not src then error("evaluate: bad argument #2 (source): " .. err, 2) end
   local B = opts.batch or 64
   if type(B) ~= "number" or B < 1 or B ~= math.floor(B) then
      error("evaluate: option 'batch' must be a positive integer, got " .. tostring(B), 2)
   end
   local sok, size = pcall(function() return src:size() end)
   if sok and type(size) == "number" and size >= 1 and size < B then B = size end -- no all-padding rows
   local H = opts.halt_max_steps or model:config().halt_max_steps
   local shard
   if opts.dist then
      local dist = require "hrm.dist"
      local rank, size = dist.init()
      if size > 1 then shard = { dist = dist, rank = rank, size = size } end
   end
   local ok, it = pcall(src.batches, src, { batch_size = B, train = false })
   if not ok then return nil, errors.clean(it) end
   -- One carry serves every batch: after halt_max_steps eval segments all rows are halted, so the
   -- next step resets every row to the initial state with the new batch (a fresh carry).
   local carry = model:carry(B)
   local sums, count = {}, 0
   for _, k in ipairs(M.metric_keys) do sums[k] = 0 end
   local hist = {}
   for s = 1, H do hist[s] = 0 end
   local q_sum, rows_seen, nb = 0, 0, 0
   local qstep = ffi.new("int32_t[?]", B)
   while true do
      local b, berr = it:next()
      if berr then return nil, berr end
      if b == nil then break end
      nb = nb + 1
      if shard and (nb - 1) % shard.size ~= shard.rank then goto continue end
      local rows = source.real_rows(b, B)
      ffi.fill(qstep, 4 * B, 0)
      local out
      for seg = 1, H do
         out = model:step(carry, b, { train = false })
         local qh, qc = out.q_halt_logits:data(), out.q_continue_logits:data()
         for r = 0, rows - 1 do
            if qstep[r] == 0 and qh[r] > qc[r] then qstep[r] = seg end
         end
      end
      for _, k in ipairs(M.metric_keys) do sums[k] = sums[k] + out[k] end
      count = count + out.count
      for r = 0, rows - 1 do
         local s = qstep[r] == 0 and H or qstep[r]
         qstep[r] = s
         hist[s] = hist[s] + 1
         q_sum = q_sum + s
      end
      rows_seen = rows_seen + rows
      if opts.on_batch then opts.on_batch(b, out, { rows = rows, q_step = qstep, batch_index = nb }) end
      if opts.progress then opts.progress:update(nb, { samples = rows }) end
      ::continue::
   end
   if shard then count, q_sum, rows_seen = add_up(shard, sums, hist, count, q_sum, rows_seen) end
   local m = { count = count, rows = rows_seen, batches = nb }
   for _, k in ipairs(M.metric_keys) do m[k] = count > 0 and sums[k] / count or 0 end
   m.q_steps = rows_seen > 0 and q_sum / rows_seen or 0
   return m, hist
end

return M
