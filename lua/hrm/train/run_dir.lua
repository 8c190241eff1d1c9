-- hrm.train.run_dir — the run folder of hrm.train: config.json, metrics.jsonl, TensorBoard events,
-- last.hrm and best.hrm.
--
-- run_dir.open(dir, {config, resume = {path, step} | nil, tensorboard = true}) -> rd. Each record
-- (one log, eval, event or error line) is appended to metrics.jsonl and, for its numbers, to the
-- TensorBoard event file, both flushed at once; a resumed run first drops what followed the
-- checkpoint's step in both. rd:save(state) writes last.hrm (a failure stops the run with a message
-- saying what is left), rd:keep_best() copies it to best.hrm. User-facing failures raise
-- "hrm.train: ..." messages.
-- Does not: decide when to log or save (the loop does), or hold the model.
local fs = require "hrm.fs"
local tensorboard = require "hrm.tensorboard"
local errors = require "hrm.errors"

local M = {}

local format = string.format

local RunDir = {}
RunDir.__index = RunDir

-- Keys every metrics.jsonl line leads with, in this order; the rest follow sorted.
local LEAD = { "step", "split", "set", "lm_loss", "exact_accuracy", "accuracy", "loss" }

-- Keep the lines of metrics.jsonl whose step is <= step (a resumed run rewrites what follows).
local function truncate_metrics(path, step)
   local f = io.open(path, "rb")
   if not f then return end
   local keep = {}
   for line in f:lines() do
      local rec = fs.decode(line)
      if type(rec) == "table" and type(rec.step) == "number" and rec.step <= step then keep[#keep + 1] = line end
   end
   f:close()
   local out = io.open(path, "wb")
   if out then
      for _, line in ipairs(keep) do out:write(line, "\n") end
      out:close()
   end
end

function M.open(dir, opts)
   local ok, derr = fs.mkdir_p(dir)
   if not ok then error("hrm.train: " .. derr, 0) end
   -- the first write into the run directory: a read-only or vanished folder stops the run here
   local wok, werr = fs.write_json(dir .. "/config.json", opts.config, { indent = true, nonfinite = "null" })
   if not wok then
      error(format("hrm.train: the run directory %s is not writable (config.json: %s)\n---> HINT: choose " ..
                   "another 'run' directory, or make this one writable", dir, tostring(werr)), 0)
   end
   local resume = opts.resume
   local mpath = dir .. "/metrics.jsonl"
   if resume then truncate_metrics(mpath, resume.step) else os.remove(mpath) end
   local metrics, ferr = io.open(mpath, "ab")
   if not metrics then error("hrm.train: cannot open metrics.jsonl: " .. tostring(ferr), 0) end
   local rd = setmetatable({ dir = dir, metrics = metrics, known = resume, last = nil }, RunDir)
   if opts.tensorboard ~= false then
      local tb, terr = tensorboard.open(dir, { resume_step = resume and resume.step })
      if not tb then error("hrm.train: " .. terr, 0) end
      rd.tb = tb
      if not resume then tb:text(0, "config", "```\n" .. fs.encode(opts.config, { indent = true, nonfinite = "null" }) .. "\n```") end
   end
   return rd
end

-- The numbers of a record as TensorBoard tags: train/<metric>, eval/<set>/<metric>, <split>/lr.
local function scalars_of(rec)
   local prefix = rec.set and format("%s/%s/", rec.split, rec.set) or rec.split .. "/"
   local values = {}
   for k, v in pairs(rec.metrics or {}) do values[prefix .. k] = v end
   values[prefix .. "lr"], values[prefix .. "epoch"] = rec.lr, rec.epoch
   return values, prefix
end

function RunDir:record(rec)
   self.metrics:write(fs.encode(rec, { nonfinite = "null", lead = LEAD }), "\n")
   self.metrics:flush()
   if self.tb and rec.metrics then
      local values, prefix = scalars_of(rec)
      self.tb:scalars(rec.step, values)
      if rec.halt_histogram then self.tb:histogram(rec.step, prefix .. "halt_steps", rec.halt_histogram) end
   end
end

-- rd:save(state) -> the path of last.hrm: the checkpoint of `state` (checkpoint.save's table).
function RunDir:save(state)
   local path = self.dir .. "/last.hrm"
   local ok, cerr = require("hrm.checkpoint").save(path, state)
   if not ok then -- a run that cannot save must not go on (disk full, folder gone): stop now
      local known = self.last or self.known
      local prev = known and format("%s of step %d %s", known.path, known.step,
                                    fs.exists(known.path) and "is as it was" or "is gone too")
         or "no earlier checkpoint was written"
      error({ hrm_train = format("hrm.train: the checkpoint %s of step %d could not be written: %s; the run " ..
         "stopped, and %s\n---> HINT: free space in (or restore) the run directory, then resume", path, state.step,
         errors.clean(cerr):gsub("%s*%-%-%->.*$", ""), prev) }, 0)
   end
   self.last = { path = path, step = state.step }
   return path
end

-- rd:keep_best() -> the path of best.hrm | nil, err: a copy of the last checkpoint.
function RunDir:keep_best()
   local path = self.dir .. "/best.hrm"
   local ok, err = fs.copy_file(self.last.path, path)
   if not ok then return nil, err end
   return path
end

function RunDir:close()
   if self.metrics then self.metrics:close() self.metrics = nil end
   if self.tb then self.tb:close() self.tb = nil end
end

return M
