-- hrm.train.dist — data parallelism for hrm.train over hrm.dist (the reference's DDP recipe).
--
-- The global batch is fixed: every rank draws the same global batches from the same sampler and
-- steps on its slice of rows (rank r: rows r*b+1 .. (r+1)*b of each micro-batch, b = batch /
-- ranks, exploration draws keyed by global row); after the micro-batches the flat gradient is
-- summed and the puzzle-table rows of every rank gathered (hrm.dist.reduce_gradients), so each
-- rank applies the same update. Step sums, stop requests and evaluation are reduced; rank 0
-- alone logs and writes. Checkpoints hold the global carry (gathered), so a run saved at one
-- world size resumes at another. At world size 1 every function is a no-op or the identity.
-- Does not: start processes, or decide anything (curricula, schedules) a rank could decide alone.
local ffi = require "ffi"
local bit = require "bit"
local dist = require "hrm.dist"
local Tensor = require "hrm.Tensor"

local M = {}
local D = {}
D.__index = D

local format = string.format

-- An error every rank raised alike (a refused launch): raised by all ranks, printed by rank 0.
local function shared_error(fmt, ...)
   error({ hrm_train = format("hrm.train: " .. fmt, ...), shared = true }, 0)
end
M.is_shared = function(e) return type(e) == "table" and e.shared == true end

-- new(batch, accumulate) -> d: the rank's share of the global batch, checked.
function M.new(batch, accumulate)
   local rank, size = dist.init()
   local d = setmetatable({ rank = rank, size = size, batch = batch, k = accumulate, views = setmetatable({}, { __mode = "k" }) }, D)
   if size > 1 and batch % size ~= 0 then
      shared_error("the batch of %d rows does not divide among %d ranks (each rank steps on batch / ranks rows " ..
                   "of every micro-batch)\n---> HINT: use a batch that is a multiple of %d, or launch %s ranks",
                   batch, size, size, M.divisors(batch))
   end
   d.local_batch = batch / size
   d.row_offset = rank * d.local_batch
   return d
end

-- The world sizes that divide n (for the hint), as "1, 2, 4, ...".
function M.divisors(n)
   local t = {}
   for i = 1, math.min(n, 64) do if n % i == 0 then t[#t + 1] = tostring(i) end end
   return table.concat(t, ", ")
end

-- ---- checks before the first step --------------------------------------------------------------------

-- 48 bits of FNV-1a over a string (exact as a Lua number).
local function hash(s, h)
   h = h or 0xcbf29ce484222325ULL
   for i = 1, #s do h = bit.bxor(h, s:byte(i)) * 0x100000001b3ULL end
   return h
end
local function hash48(h) return tonumber(h % 0x1000000000000ULL) end

-- A stable text of plain data (sorted keys; functions and userdata by type only).
local function serialize(v, out)
   out = out or {}
   local t = type(v)
   if t == "table" then
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      out[#out + 1] = "{"
      for _, k in ipairs(keys) do
         out[#out + 1] = tostring(k) .. "="
         serialize(v[k], out)
         out[#out + 1] = ","
      end
      out[#out + 1] = "}"
   elseif t == "number" or t == "string" or t == "boolean" then
      out[#out + 1] = t:sub(1, 1) .. tostring(v)
   else
      out[#out + 1] = t
   end
   return out
end

-- The first global batch the iterator will give, hashed (the iterator's position is kept).
local function data_hash(it, size)
   local h = hash(tostring(size))
   if type(it.state) ~= "function" or type(it.set_state) ~= "function" then return hash48(h) end
   local st = it:state()
   local b = it:next()
   if b ~= nil then
      for _, f in ipairs({ "inputs", "labels", "puzzle_identifiers" }) do
         local t = b[f]
         if Tensor.is_tensor(t) then
            h = hash(ffi.string(t:data(), t:numel() * 4), h)
         end
      end
   end
   it:set_state(st)
   return hash48(h)
end

-- check{model = cfg, options = record, optim = settings, iterator = it, source = src}: every
-- rank holds the same configuration and draws the same data, or every rank refuses the run
-- naming the first rank that differs from rank 0 and what differs.
function D:check(what)
   if self.size == 1 then return end
   local size_ok, n = pcall(function() return what.source:size() end)
   local parts = {
      { "model configuration", hash48(hash(table.concat(serialize(what.model)))) },
      { "training options", hash48(hash(table.concat(serialize(what.options)))) },
      { "optimizer settings", hash48(hash(table.concat(serialize(what.optim)))) },
      { "training data", data_hash(what.iterator, size_ok and n or "?") },
   }
   local mine = Tensor.zeros(#parts, "f64")
   for i, p in ipairs(parts) do mine[i] = p[2] end
   local all = dist.all_gather(mine):data()
   for r = 1, self.size - 1 do
      for i, p in ipairs(parts) do
         if all[r * #parts + i - 1] ~= all[i - 1] then
            shared_error("rank %d and rank 0 have different %s: every rank must be launched with the same " ..
                         "options and data\n---> HINT: one command line for all ranks, data files identical " ..
                         "on every host", r, p[1])
         end
      end
   end
end

-- ---- the step -------------------------------------------------------------------------------------------

-- The rank's rows of a global batch (views, made once per batch table).
function D:slice(b)
   if self.size == 1 then return b end
   local v = self.views[b]
   if v == nil then
      local first, n = self.row_offset + 1, self.local_batch
      v = { count = n }
      for _, f in ipairs({ "inputs", "labels", "puzzle_identifiers" }) do
         if b[f] ~= nil then v[f] = b[f]:narrow(1, first, n) end
      end
      self.views[b] = v
   end
   return v
end

-- Every model tensor (parameters, buffers, puzzle table) from rank 0.
function D:sync_weights(model)
   if self.size == 1 then return end
   for _, name in ipairs(model:tensor_names()) do dist.broadcast(model:tensor(name), 0) end
end

-- After the micro-batches: gradients and puzzle rows exchanged, the step's sums added up.
function D:reduce(model, sums, keys)
   if self.size == 1 then return end
   dist.reduce_gradients(model, self.k)
   local buf = self.sums_buf or Tensor.zeros(#keys, "f64")
   self.sums_buf = buf
   for i, key in ipairs(keys) do buf[i] = sums[key] end
   dist.all_reduce(buf)
   local p = buf:data()
   for i, key in ipairs(keys) do sums[key] = p[i - 1] end
end

-- One flag summed over the ranks (a tensor made once).
function D:flag_sum(v)
   local buf = self.flag_buf or Tensor.zeros(1, "f64")
   self.flag_buf = buf
   buf[1] = v and 1 or 0
   dist.all_reduce(buf)
   return buf[1] > 0
end

-- any(flag) -> true when the flag is set on any rank (a Ctrl-C).
function D:any(flag)
   if self.size == 1 then return flag end
   return self:flag_sum(flag)
end

-- agree(flag) -> rank 0's flag on every rank (a decision taken from rank 0's clock).
function D:agree(flag)
   if self.size == 1 then return flag end
   return self:flag_sum(self.rank == 0 and flag)
end

-- ---- checkpoints ----------------------------------------------------------------------------------------

-- The global carries (every rank's rows in rank order) for a checkpoint; made at first use.
function D:global_carries(model, carries)
   if self.size == 1 then return carries end
   self.global = self.global or {}
   for i, c in ipairs(carries) do
      local g = self.global[i] or model:carry(self.batch)
      self.global[i] = g
      for _, name in ipairs(c:tensor_names()) do dist.all_gather(c:tensor(name), g:tensor(name)) end
   end
   return self.global
end

-- The rows of a saved (global) carry tensor that belong to this rank.
function D:rows_of(t)
   if self.size == 1 or t:size(1) ~= self.batch then return t end
   return t:narrow(1, self.row_offset + 1, self.local_batch)
end

return M
