-- hrm.train.source — what the training loop and evaluation accept as data, and how they draw from it.
--
-- A data source is anything with source:batches{batch_size, train, seed [, epochs_per_iter]} ->
-- iterator, where it:next() returns {inputs, labels, puzzle_identifiers [, count]} (i32 tensors;
-- nil once a test pass is over) and it:state()/it:set_state(s) allow exact resume. hrm.data.Dataset
-- is one; a task adapter's dataset{...} arrays table is wrapped into one.
-- Does not: draw batches itself (the source's sampler does), or hold any state.
local errors = require "hrm.errors"

local M = {}

function M.is_source(x)
   if type(x) ~= "table" then return false end
   local ok, b = pcall(function() return x.batches end)
   return ok and type(b) == "function"
end

function M.is_arrays(x)
   return type(x) == "table" and x.inputs ~= nil and x.seq_len ~= nil and x.n ~= nil
end

local DATASET_FIELDS = { "inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices",
                         "n", "n_puzzles", "n_groups", "vocab_size", "seq_len", "pad_id",
                         "ignore_label_id", "blank_identifier_id", "num_puzzle_identifiers", "identifiers" }

-- as_source(x) -> a data source: x itself when it has :batches, an hrm.data.Dataset built from
-- a task adapter's arrays table (tasks/util.lua build_arrays), or nil, err.
function M.as_source(x)
   if M.is_source(x) then return x end
   if M.is_arrays(x) then
      local t = {}
      for _, k in ipairs(DATASET_FIELDS) do t[k] = x[k] end
      return require("hrm.data").Dataset.new(t)
   end
   return nil, "expected a data source (an hrm.data.Dataset, a task adapter's dataset{...} " ..
               "arrays, or a table with :batches{...}), got " .. type(x)
end

-- Examples drawn per epoch: total_groups x mean_puzzle_examples (the reference's count), else size().
function M.epoch_examples(src)
   local ok, meta = pcall(function() return src:meta() end)
   if ok and type(meta) == "table" and meta.total_groups and meta.mean_puzzle_examples then
      local n = meta.total_groups * meta.mean_puzzle_examples
      if n > 0 then return n end
   end
   local ok2, n = pcall(function() return src:size() end)
   if ok2 and type(n) == "number" then return n end
   return nil
end

-- A train iterator over src; a dataset smaller than one batch joins several epochs per pass
-- (the sampler's epochs_per_iter), as the reference joins eval_interval epochs.
function M.train_iterator(src, batch, seed)
   local o = { batch_size = batch, train = true, seed = seed }
   local n = M.epoch_examples(src)
   if n and n > 0 and n < batch then o.epochs_per_iter = math.ceil(batch / n) + 1 end
   local ok, it = pcall(src.batches, src, o)
   if not ok then error("hrm.train: the training data: " .. errors.clean(it), 0) end
   return it
end

-- Rows of a batch that are real (padded test rows come last and have no labels).
function M.real_rows(b, B)
   if type(b.count) == "number" then return b.count end
   local S = b.labels:size(2)
   local lab = b.labels:data()
   local n = 0
   for r = 0, B - 1 do
      for s = 0, S - 1 do
         if lab[r * S + s] ~= -100 then n = r + 1 break end
      end
   end
   return n
end

return M
