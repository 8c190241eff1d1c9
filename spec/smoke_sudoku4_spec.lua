-- Smoke: a tiny HRM learns 4x4 Sudoku from generated puzzles within a bounded budget, using
-- only model:step and opt:step (the same calls hrm.train is built on).
--
-- Setting (measured: about 35 s on one core, held-out exact accuracy 0.945 with seed 1):
-- hidden 64, 1+1 layers, learned positions, softmax loss, no puzzle embedding, halt_max_steps 2,
-- batch 64, AdamATan2 lr 2e-3 (50 warm-up steps), 600 steps, 2-6 blanks per puzzle.
local hrm = require "hrm"
local sudoku = require("tasks.sudoku").new{ size = 4 }

local S = sudoku.seq_len
local B, STEPS, LR = 64, 600, 2e-3

local function fill(inputs, labels, n, seed)
   local ex = assert(sudoku.generate(n, { blanks = { 2, 6 }, seed = seed }))
   local a, b = inputs:data(), labels and labels:data()
   for r = 1, n do
      local i8, l8 = sudoku.encode(ex[r])
      for s = 0, S - 1 do
         a[(r - 1) * S + s] = i8[s]
         if b then b[(r - 1) * S + s] = l8[s] end
      end
   end
   return ex
end

describe("a tiny model on 4x4 Sudoku", function()
   it("lowers its loss and solves at least 85% of held-out puzzles", function()
      local threads = hrm.get_threads()
      hrm.set_threads(1) -- a model this small runs fastest on one thread
      local cfg = hrm.config.hrm_v1{ hidden_size = 64, num_heads = 2, H_layers = 1, L_layers = 1,
         halt_max_steps = 2, vocab_size = sudoku.vocab_size, seq_len = S, puzzle_emb_ndim = 0,
         pos_encodings = "learned", loss = "softmax" }
      local model = hrm.Model(cfg, { seed = 1 })
      local opt = hrm.optim.AdamATan2(model, { lr = LR, weight_decay = 0.1 })
      local carry = model:carry(B)
      local inputs, labels = hrm.Tensor.zeros(B, S, "i32"), hrm.Tensor.zeros(B, S, "i32")
      local first, last = 0, 0
      for step = 1, STEPS do
         fill(inputs, labels, B, 1000 + step)
         local r = model:step(carry, { inputs = inputs, labels = labels }, { train = true })
         opt:step(LR * math.min(1, step / 50))
         if step <= 20 then first = first + r.lm_loss / B end
         if step > STEPS - 20 then last = last + r.lm_loss / B end
      end
      assert.is_true(last < 0.25 * first, string.format("loss %.4f -> %.4f", first / 20, last / 20))

      local N = 200
      local held = hrm.Tensor.zeros(N, S, "i32")
      local ex = fill(held, nil, N, 99) -- seeds 1001.. were used for training
      local res = model:solve({ inputs = held })
      local solved, p = 0, res.predictions:data()
      for r = 1, N do
         local _, want = sudoku.encode(ex[r])
         local ok = true
         for s = 0, S - 1 do ok = ok and p[(r - 1) * S + s] == want[s] end
         if ok then solved = solved + 1 end
      end
      print(string.format("\n4x4 Sudoku: loss %.4f -> %.4f, held-out exact accuracy %.3f", first / 20,
                          last / 20, solved / N))
      hrm.set_threads(threads)
      assert.is_true(solved / N >= 0.85, string.format("held-out exact accuracy %.3f", solved / N))
   end)
end)
