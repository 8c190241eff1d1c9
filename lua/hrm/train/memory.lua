-- hrm.train.memory — carries made only when they fit, and out-of-memory failures told as such.
--
-- make_carries(model, batch, k) refuses, before any is made, k carries of `batch` rows whose bytes
-- (measured on a one-row carry) exceed MemAvailable; message(batch, what) is the one-line
-- explanation with a hint; is_memory_error(e) recognises an allocation failure from the C core.
-- Does not: free or limit memory.
local errors = require "hrm.errors"

local M = {}

local format = string.format
local DTYPE_BYTES = { f32 = 4, f64 = 8, bf16 = 2, i32 = 4, i64 = 8, u8 = 1 }

-- Bytes of memory the system can still give (MemAvailable), or nil where /proc/meminfo is absent.
function M.available()
   local f = io.open("/proc/meminfo", "rb")
   if not f then return nil end
   local text = f:read("*a")
   f:close()
   local kb = text and text:match("MemAvailable:%s*(%d+) kB")
   return kb and tonumber(kb) * 1024 or nil
end

local function gib(bytes) return format("%.1f GiB", bytes / 2 ^ 30) end

-- A C error as one clause: no position, no hint.
function M.clause(e) return (errors.clean(e):gsub("%s*%-%-%->.*$", "")) end

function M.is_memory_error(e)
   e = tostring(e)
   return e:find("cannot allocate", 1, true) ~= nil or e:find("out of memory", 1, true) ~= nil
end

-- The message of a batch that does not fit: what was asked, what is available.
function M.message(batch, asked)
   local avail = M.available()
   return format("hrm.train: batch %d does not fit in memory: %s, and %s available\n---> HINT: use a " ..
                 "smaller batch (with 'accumulate' to keep the global batch)", batch, asked,
                 avail and (gib(avail) .. " is") or "an unknown amount is")
end

function M.make_carries(model, batch, k)
   local one, per_row = model:carry(1), 0
   for _, name in ipairs(one:tensor_names()) do
      local t = one:tensor(name)
      per_row = per_row + t:numel() * (DTYPE_BYTES[t:dtype()] or 4)
   end
   local need, avail = per_row * batch * k, M.available()
   if avail and need > avail then
      error(M.message(batch, format("%d carr%s of %d rows need %s", k, k == 1 and "y" or "ies", batch, gib(need))), 0)
   end
   local carries = {}
   for i = 1, k do
      local ok, c = pcall(model.carry, model, batch)
      if not ok then
         if M.is_memory_error(c) then error(M.message(batch, M.clause(c)), 0) end
         error(c, 0)
      end
      carries[i] = c
   end
   return carries
end

return M
