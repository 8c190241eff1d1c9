-- Specs of the transformer baseline's model file (lua/hrm/models/transformer.lua): its config
-- (transformers_baseline.yaml), attention narrower than the hidden size (12 heads of 42 at 512),
-- the parameter count, refused configs, its ACT (one state; halting on q_halt > q_continue with
-- no target-Q) and a smoke run on 4x4 Sudoku. Golden parity is in trm_parity_spec.lua.
local hrm = require "hrm"
local Tensor = hrm.Tensor

local function tiny(over)
   local c = { hidden_size = 12, num_heads = 5, expansion = 1.0, H_layers = 2, halt_max_steps = 3,
               halt_exploration_prob = 0.0, puzzle_emb_ndim = 0, vocab_size = 5, seq_len = 6 }
   for k, v in pairs(over or {}) do c[k] = v end
   return hrm.config.transformer(c)
end

local function batch(B, S)
   local inp, lab = {}, {}
   for k = 0, B * S - 1 do inp[k + 1], lab[k + 1] = (k * 7 + 1) % 5, (k * 3 + 2) % 5 end
   return { inputs = Tensor(inp, "i32"):view(B, S), labels = Tensor(lab, "i32"):view(B, S) }
end

describe("hrm.config.transformer", function()
   it("has transformers_baseline.yaml's defaults", function()
      local c = hrm.config.transformer{ vocab_size = 11, seq_len = 81 }
      assert.same({ "transformer", 8, 1, 512, 12, 4, 512, "rope", 16 },
                  { c.arch, c.H_layers, c.H_cycles, c.hidden_size, c.num_heads, c.expansion, c.puzzle_emb_ndim,
                    c.pos_encodings, c.halt_max_steps })
   end)

   it("gives 12 heads of 42 at hidden 512 (width 504) and 27,144,194 parameters for Sudoku", function()
      local m = hrm.Model(hrm.config.transformer{ vocab_size = 11, seq_len = 81 }, { empty = true })
      assert.same({ 1512, 512 }, m:tensor("model.inner.H_level.layers.7.self_attn.qkv_proj.weight"):size())
      assert.same({ 512, 504 }, m:tensor("model.inner.H_level.layers.0.self_attn.o_proj.weight"):size())
      -- 8 x (512·1512 + 504·512 + 512·3072 + 1536·512) + 2 x 11·512 + 1026
      assert.equal(27144194, m:num_parameters())
      assert.equal(82, m.net.tokens)
      assert.same({ "z_H" }, m:carry(1).state_names)
   end)

   it("refuses what the baseline does not have", function()
      assert.has_error(function() hrm.Model(tiny{ pos_encodings = "none" }) end,
         "hrm.Model: pos_encodings = \"none\" is not supported by the transformer baseline (rope or learned)")
      assert.has_error(function() hrm.Model(tiny{ puzzle_emb_ndim = 12, puzzle_emb_len = 2 }) end,
         "hrm.Model: field 'puzzle_emb_len' is for arch trm: the transformer baseline's prefix is " ..
         "ceil(puzzle_emb_ndim / hidden_size)\n---> HINT: leave puzzle_emb_len = 0")
      assert.has_error(function() hrm.Model(tiny{ mlp_t = true }) end,
         "hrm.Model: field 'mlp_t' is for arch trm, not transformer")
      assert.has_error(function() hrm.Model(tiny{ num_heads = 13 }) end,
         "config.num_heads = 13 must be in 1..hidden_size (12)")
   end)
end)

describe("the baseline's ACT", function()
   it("halts on q_halt > q_continue in training and runs no target-Q segment", function()
      local m = hrm.Model(tiny(), { seed = 1 })
      local w = m:tensor("model.inner.q_head.weight"):data()
      for k = 0, 23 do w[k] = 0 end
      local b = m:tensor("model.inner.q_head.bias"):data()
      b[0], b[1] = -1, -2   -- q_halt > q_continue, q_halt < 0
      local c = m:carry(2)
      local out = m:step(c, batch(2, 6), { train = true })
      assert.same({ 1, 1 }, c:tensor("halted"):to("i32"):totable())
      assert.equal(0, out.q_continue_loss)
      b[0], b[1] = 1, 2
      c = m:carry(2)
      m:step(c, batch(2, 6), { train = true })
      assert.same({ 0, 0 }, c:tensor("halted"):to("i32"):totable())
   end)
end)

describe("a tiny transformer baseline on 4x4 Sudoku", function()
   it("lowers its loss well below the start", function()
      local sudoku = require("tasks.sudoku").new{ size = 4 }
      local S, B, STEPS, LR = sudoku.seq_len, 32, 120, 3e-3
      local threads = hrm.get_threads()
      hrm.set_threads(1)
      local model = hrm.Model(hrm.config.transformer{ hidden_size = 32, num_heads = 3, H_layers = 2,
         halt_max_steps = 2, vocab_size = sudoku.vocab_size, seq_len = S, puzzle_emb_ndim = 0,
         pos_encodings = "learned", loss = "softmax" }, { seed = 1 })
      local opt = hrm.optim.AdamATan2(model, { lr = LR, weight_decay = 0.1 })
      local carry = model:carry(B)
      local inputs, labels = Tensor.zeros(B, S, "i32"), Tensor.zeros(B, S, "i32")
      local first, last = 0, 0
      for step = 1, STEPS do
         local ex = assert(sudoku.generate(B, { blanks = { 2, 6 }, seed = 700 + step }))
         local a, l = inputs:data(), labels:data()
         for r = 1, B do
            local i8, l8 = sudoku.encode(ex[r])
            for s = 0, S - 1 do a[(r - 1) * S + s], l[(r - 1) * S + s] = i8[s], l8[s] end
         end
         local r = model:step(carry, { inputs = inputs, labels = labels }, { train = true })
         opt:step(LR * math.min(1, step / 20))
         if step <= 10 then first = first + r.lm_loss / B end
         if step > STEPS - 10 then last = last + r.lm_loss / B end
      end
      hrm.set_threads(threads)
      print(string.format("\ntiny transformer baseline, 4x4 Sudoku: lm loss %.4f -> %.4f", first / 10, last / 10))
      assert.is_true(last < 0.5 * first, string.format("loss %.4f -> %.4f", first / 10, last / 10))
   end)
end)
