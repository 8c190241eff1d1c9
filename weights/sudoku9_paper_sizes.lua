-- weights/sudoku9_paper_sizes.lua — one training step of each model at its paper's size on 9x9
-- Sudoku, on one thread: `hrm weights/sudoku9_paper_sizes.lua` prints the CPU seconds per step at
-- batch 8 (the figures weights/README.md quotes to say why those sizes were not trained here).
-- Asserts nothing.
local hrm = require "hrm"
hrm.set_threads(1)
local V, S, B = 11, 81, 8
local function measure(name, cfg)
   local model = hrm.Model(cfg, { seed = 1 })
   local opt = hrm.optim.AdamATan2(model, { lr = 1e-4 })
   local inputs, labels = hrm.Tensor.zeros(B, S, "i32"), hrm.Tensor.zeros(B, S, "i32")
   for i = 0, B * S - 1 do inputs:data()[i] = 1 + i % 10; labels:data()[i] = 1 + (i * 7) % 10 end
   local batch = { inputs = inputs, labels = labels }
   local carry = model:carry(B)
   model:step(carry, batch, { train = true }); opt:step()
   local t = os.clock()
   for _ = 1, 2 do model:step(carry, batch, { train = true }); opt:step() end
   print(string.format("%-34s %5.2fM params  %.2f CPU s/step at batch %d", name, model:num_parameters() / 1e6, (os.clock() - t) / 2, B))
end
local common = { vocab_size = V, seq_len = S, puzzle_emb_ndim = 0, puzzle_emb_len = 0 }
measure("HRM (hrm_v1: 512, 4+4 layers, 2x2)", hrm.config.hrm_v1(common))
measure("TRM-MLP (paper Sudoku: 512, 2L, 3x6)", hrm.config.trm_mlp(common))
measure("TRM-Att (512, 2L, 3x6)", hrm.config.trm(common))
