-- bench_checkpoint.lua — checkpoint save/load times and peak memory at real sizes (not a test).
--
-- usage: hrm scripts/bench_checkpoint.lua model DIR             hrm_v1 on Sudoku (27M parameters):
--                                                                save and load a model file and a
--                                                                training checkpoint (+ AdamATan2)
--        hrm scripts/bench_checkpoint.lua puzzle-save DIR [N]   hrm_v1 with an N x 512 f32 puzzle
--                                                                table (default N = 1000000)
--        hrm scripts/bench_checkpoint.lua puzzle-load DIR       load it back in a fresh process
--        hrm scripts/bench_checkpoint.lua hrmd DIR [N]          an .hrmd of N x 81 Sudoku rows
--                                                                (default 4000000, ~650 MB): time
--                                                                to open it, then the first batch
--                                                                (its token payloads verified)
-- Prints wall times and the process's peak resident memory (VmHWM), so that the puzzle table
-- can be seen to be held once (table bytes + model), not twice. Writes DIR/*.hrm (GBs).
local hrm = require "hrm"
local checkpoint = require "hrm.checkpoint"

local cli = require "hrm.cli"
local pos = cli.parse("bench_checkpoint.lua", { ... }, {
   usage = "hrm scripts/bench_checkpoint.lua model|puzzle-save|puzzle-load|hrmd DIR [N]",
   description = "Save and load times and peak memory of checkpoints and .hrmd files at real sizes.",
   positional = true,
   { "options" },
}).positional
local mode, dir = pos[1], pos[2]
local N = tonumber(pos[3] or "1000000")
if not (mode and dir) or #pos > 3 or not N then
   cli.die("bench_checkpoint.lua", "expected MODE DIR [N] (see --help)")
end

local function vm_hwm_mb()
   local f = io.open("/proc/self/status")
   if not f then return -1 end
   local s = f:read("*a")
   f:close()
   return tonumber(s:match("VmHWM:%s+(%d+)") or -1024) / 1024
end

local function timed(label, fn)
   local t0 = hrm.C.hrm_wall_time()
   local r1, r2 = fn()
   print(string.format("%-34s %8.3f s   peak RSS %8.0f MB", label, hrm.C.hrm_wall_time() - t0, vm_hwm_mb()))
   return r1, r2
end

local function file_mb(path)
   local f = assert(io.open(path, "rb"))
   local n = f:seek("end")
   f:close()
   return n / 2 ^ 20
end

local sudoku = { vocab_size = 11, seq_len = 81, num_puzzle_identifiers = 1 }

if mode == "model" then
   local m = timed("build hrm_v1 (Sudoku)", function() return hrm.Model(hrm.config.hrm_v1(sudoku)) end)
   print(string.format("parameters: %d", m:num_parameters()))
   local o = hrm.optim.AdamATan2(m)
   local c = m:carry(32)
   assert(timed("model:save", function() return m:save(dir .. "/model.hrm") end))
   assert(timed("checkpoint.save (model+optim+carry)", function()
      return checkpoint.save(dir .. "/state.hrm", { model = m, optim = o, carry = c, step = 1 })
   end))
   print(string.format("sizes: model.hrm %.1f MB, state.hrm %.1f MB", file_mb(dir .. "/model.hrm"),
                       file_mb(dir .. "/state.hrm")))
   for _ = 1, 3 do
      assert(timed("open + verify model.hrm (info)", function() return checkpoint.info(dir .. "/model.hrm") end))
   end
   assert(timed("checkpoint.load_weights (27M)", function() return checkpoint.load_weights(m, dir .. "/model.hrm") end))
   assert(timed("hrm.Model.load", function() return hrm.Model.load(dir .. "/model.hrm") end))
   assert(timed("checkpoint.load (model+optim+carry)", function() return checkpoint.load(dir .. "/state.hrm") end))
elseif mode == "puzzle-save" then
   print(string.format("baseline peak RSS %.0f MB", vm_hwm_mb()))
   local cfg = hrm.config.hrm_v1 { vocab_size = 11, seq_len = 81, num_puzzle_identifiers = N, puzzle_emb_ndim = 512 }
   local m = timed(string.format("build with a %d x 512 table", N), function() return hrm.Model(cfg) end)
   local t = m:tensor("model.inner.puzzle_emb.weights")
   t:fill(0.25)
   local p = t:data()
   for i = 0, N - 1, 997 do p[i * 512 + i % 512] = i end
   print(string.format("table: %.0f MB, sum %.17g", t:numel() * 4 / 2 ^ 20, t:sum()))
   assert(timed("model:save", function() return m:save(dir .. "/puzzle.hrm") end))
   print(string.format("file: %.0f MB", file_mb(dir .. "/puzzle.hrm")))
elseif mode == "puzzle-load" then
   print(string.format("baseline peak RSS %.0f MB", vm_hwm_mb()))
   local m = assert(timed("hrm.Model.load", function() return hrm.Model.load(dir .. "/puzzle.hrm") end))
   local t = m:tensor("model.inner.puzzle_emb.weights")
   print(string.format("table: %.0f MB, sum %.17g", t:numel() * 4 / 2 ^ 20, t:sum()))
elseif mode == "hrmd" then
   N = tonumber(pos[3] or "4000000")
   local path = dir .. "/big.hrmd"
   local S = 81
   local inputs = hrm.Tensor.zeros({ N, S }, "i32")
   local p = inputs:data()
   for i = 0, N * S - 1 do p[i] = i % 10 end
   local ds = assert(hrm.data.Dataset.new { vocab_size = 11, seq_len = S, inputs = inputs, labels = inputs, n = N })
   assert(timed("save .hrmd", function() return ds:save(path) end))
   ds, inputs = nil, nil
   collectgarbage()
   print(string.format("file: %.0f MB", file_mb(path)))
   for _ = 1, 2 do
      local d = assert(timed("Dataset.load (open)", function() return hrm.data.Dataset.load(path) end))
      local it = d:batches { batch_size = 32, train = true, seed = 1 }
      assert(timed("first batch (verifies tokens)", function() return it:next() end))
      assert(timed("second batch", function() return it:next() end))
   end
else
   error("unknown mode " .. tostring(mode))
end
