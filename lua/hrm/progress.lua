-- hrm.progress — a progress reporter for training runs and long evaluations.
--
-- On a terminal it keeps one live line, rewritten with "\r" at most `refresh` times a second:
-- step/total, a bar, ETA, samples/s, lm loss, exact accuracy, accuracy and mean ACT steps.
-- Elsewhere (a pipe, a log file, TERM=dumb) it prints a plain line every `every` steps.
-- p:print(line) writes a line above the live one (evaluation results, messages).
-- Does not: read the model or compute metrics; callers pass numbers already normalised.
local term = require "term"

local M = {}

local format, rep, floor = string.format, string.rep, math.floor

local clock
do
   local ok, C = pcall(require, "hrm.ffi")
   if ok and C then
      clock = function() return C.hrm_wall_time() end
   else
      clock = os.clock
   end
end
M.clock = clock

local tty_cache
-- is_tty() -> true when stdout is a terminal (TERM set, not "dumb", lua-term's isatty); asked once.
function M.is_tty()
   if tty_cache == nil then
      local name = os.getenv("TERM")
      tty_cache = name ~= nil and name ~= "" and name ~= "dumb" and term.isatty(io.stdout) or false
   end
   return tty_cache
end

local columns_cache
-- columns() -> the terminal's width (tput), 100 when unknown; asked once. `tput` is run because
-- neither lua-term nor lua-system reports the terminal's width.
function M.columns()
   if columns_cache == nil then
      columns_cache = tonumber(os.getenv("COLUMNS") or "")
      if not columns_cache then
         local p = io.popen("tput cols 2>/dev/null")
         if p then
            columns_cache = tonumber(p:read("*l") or "")
            p:close()
         end
      end
      columns_cache = columns_cache or 100
   end
   return columns_cache
end

-- "1h02m", "3m05s", "12s"
function M.duration(s)
   if s == nil or s ~= s or s == math.huge or s < 0 then return "?" end
   s = floor(s + 0.5)
   if s >= 3600 then return format("%dh%02dm", floor(s / 3600), floor(s % 3600 / 60)) end
   if s >= 60 then return format("%dm%02ds", floor(s / 60), s % 60) end
   return format("%ds", s)
end

local function rate_text(r)
   if r >= 100 then return format("%.0f", r) end
   if r >= 10 then return format("%.1f", r) end
   return format("%.2f", r)
end

-- Metric fields shown after the time, in order.
local FIELDS = {
   { "lm_loss", "lm_loss", "%.4f", "%.3f" },   -- key, label, format (plain), format (live line)
   { "exact_accuracy", "exact", "%.3f", "%.3f" },
   { "accuracy", "acc", "%.3f", "%.3f" },
   { "steps", "steps", "%.2f", "%.1f" },
}

local Progress = {}
Progress.__index = Progress

-- progress.new{total = n, label = "train", every = 10, tty = auto, out = io.stdout,
--              width = 12 (bar), refresh = 10 (redraws per second), start = 0, clock = fn,
--              columns = terminal width (default: tput)}
function M.new(opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("progress.new: bad argument #1 (opts): expected a table", 2) end
   if opts.total ~= nil and (type(opts.total) ~= "number" or opts.total < 0) then
      error("progress.new: option 'total' must be a number >= 0, got " .. tostring(opts.total), 2)
   end
   local every = opts.every or 10
   if type(every) ~= "number" or every < 1 then
      error("progress.new: option 'every' must be a number >= 1, got " .. tostring(every), 2)
   end
   local tty = opts.tty
   if tty == nil then tty = M.is_tty() end
   local now = opts.clock or clock
   local start = opts.start or 0
   return setmetatable({
      total = opts.total, label = opts.label or "", every = every, tty = tty and true or false,
      out = opts.out or io.stdout, width = opts.width or 12, refresh = opts.refresh or 10,
      clock = now, t0 = now(), start = start, step = start, samples = 0, last_draw = -math.huge,
      live = false, values = {}, last_logged = start, columns = opts.columns,
   }, Progress)
end

-- Samples per second and seconds left, from the steps done since creation.
function Progress:rates()
   local dt = self.clock() - self.t0
   local done = self.step - self.start
   local sps = dt > 0 and self.samples / dt or 0
   local eta
   if self.total and done > 0 and dt > 0 then eta = (self.total - self.step) * dt / done end
   return sps, eta, dt
end

function Progress:line(bar)
   local parts = {}
   local sep = bar and " " or "  "                      -- the live line is compact
   if self.label ~= "" then parts[#parts + 1] = self.label end
   if self.total then
      local w = #tostring(self.total)
      parts[#parts + 1] = format("%" .. w .. "d/%d", self.step, self.total)
      if bar then
         local frac = self.total > 0 and math.min(1, self.step / self.total) or 1
         local full = floor(frac * self.width + 0.5)
         parts[#parts + 1] = "[" .. rep("#", full) .. rep(".", self.width - full) .. "]"
      end
   else
      parts[#parts + 1] = format("step %d", self.step)
   end
   -- time first: a narrow terminal cuts the end of the line
   local sps, eta = self:rates()
   if self.total then parts[#parts + 1] = "ETA " .. M.duration(eta) end
   if self.samples > 0 then parts[#parts + 1] = rate_text(sps) .. (bar and "/s" or " samples/s") end
   for _, f in ipairs(FIELDS) do
      local v = self.values[f[1]]
      if type(v) == "number" then parts[#parts + 1] = f[2] .. " " .. format(bar and f[4] or f[3], v) end
   end
   return table.concat(parts, sep)
end

function Progress:draw()
   local line = self:line(true)
   local width = self.columns or M.columns()
   if #line >= width then line = line:sub(1, width - 1) end
   self.out:write("\r", line, "\27[K")
   self.out:flush()
   self.live = true
   self.last_draw = self.clock()
end

-- p:update(step, values): values may hold lm_loss, exact_accuracy, accuracy, steps (numbers) and
-- samples (samples processed since the previous update). Missing values keep their last ones.
function Progress:update(step, values)
   if type(step) ~= "number" then error("progress.update: bad argument #1 (step): expected a number", 2) end
   self.step = step
   if values then
      for k, v in pairs(values) do
         if k == "samples" then self.samples = self.samples + v else self.values[k] = v end
      end
   end
   if self.tty then
      local final = self.total and step >= self.total
      if final or self.clock() - self.last_draw >= 1 / self.refresh then self:draw() end
   elseif step - self.last_logged >= self.every or (self.total and step >= self.total and step > self.last_logged) then
      self.last_logged = step
      self.out:write(self:line(false), "\n")
      self.out:flush()
   end
end

-- p:print(text): a line of its own, above the live line on a terminal.
function Progress:print(text)
   if self.tty and self.live then
      self.out:write("\r\27[K", text, "\n")
      self:draw()
   else
      self.out:write(text, "\n")
      self.out:flush()
   end
end

-- p:finish([message]): ends the live line (and prints message on a line of its own).
function Progress:finish(message)
   if self.tty and self.live then
      self:draw()
      self.out:write("\n")
      self.live = false
   end
   if message then self.out:write(message, "\n") end
   self.out:flush()
   local _, _, dt = self:rates()
   return dt
end

M.Progress = Progress
return M
