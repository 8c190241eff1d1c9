-- Whole-model checks of hrm.Model through the Lua API: hrm_v1's parameter count, names, order,
-- shapes and init; config and batch validation messages; a finite-difference check of one whole
-- training segment (every parameter, sampled coordinates, and the puzzle prefix); the NaN-loss
-- error; the H/L cycle schedule; determinism; evaluation halting and the active-row mask; batch
-- sizes; and the optimizers' single-step math against values computed here in double.
-- Fixtures (configs, seeds, batches, the xorshift draws and their order) and tolerances are those
-- of the former C test test_model.c; the `it` blocks run in its order, so the draws match.
local ffi = require "ffi"
local bit = require "bit"
local hrm = require "hrm"
local Tensor = hrm.Tensor
local C = hrm.C

local PUZZLE = "model.inner.puzzle_emb.weights"

-- ---- helpers ----------------------------------------------------------------------------------

-- xorshift64, one stream for the whole file (the C test's urand)
local rs = 0x9E3779B97F4A7C15ULL
local function urand()
   rs = bit.bxor(rs, bit.lshift(rs, 13))
   rs = bit.bxor(rs, bit.rshift(rs, 7))
   rs = bit.bxor(rs, bit.lshift(rs, 17))
   return tonumber(bit.rshift(rs, 11)) / 9007199254740992.0
end

-- D 8, 2 heads, 2 + 2 layers, 2 x 2 cycles, 4 segments, no exploration, V 5, S 6,
-- puzzle_emb_ndim 12 (P = 2, the second prefix position half zero-padded), 3 puzzle ids
local function tiny_config(over)
   local c = { hidden_size = 8, num_heads = 2, expansion = 1.0, H_layers = 2, L_layers = 2, H_cycles = 2,
               L_cycles = 2, halt_max_steps = 4, halt_exploration_prob = 0.0, puzzle_emb_ndim = 12,
               num_puzzle_identifiers = 3, vocab_size = 5, seq_len = 6 }
   for k, v in pairs(over or {}) do c[k] = v end
   return c
end

-- an i32 tensor from a flat Lua array, (n) or viewed (B, S)
local function ints(flat, B, S)
   local t = Tensor(flat, "i32")
   if S then return t:view(B, S) end
   return t
end

local function fill_random(t, scale, offset)
   local p = t:data()
   for k = 0, t:numel() - 1 do p[k] = scale * urand() + offset end
end

-- A full copy of a carry's state, to rerun a step from the same point.
local function snapshot(carry)
   local s = {}
   for _, name in ipairs(carry:tensor_names()) do s[name] = carry:tensor(name):clone() end
   return s
end
local function restore(s, carry)
   for name, t in pairs(s) do carry:tensor(name):copy(t) end
end

local function set_all(t, v)
   local p = t:data()
   for k = 0, t:numel() - 1 do p[k] = v end
end

local function max_abs_diff(a, b)
   local pa, pb, d = a:data(), b:data(), 0
   for k = 0, a:numel() - 1 do
      local e = math.abs(pa[k] - pb[k])
      if e ~= e then return math.huge end
      d = math.max(d, e)
   end
   return d
end

local function max_abs(a)
   local p, m = a:data(), 0
   for k = 0, a:numel() - 1 do m = math.max(m, math.abs(p[k])) end
   return m
end

local function index_of(list, x)
   for i, v in ipairs(list) do if v == x then return i end end
   return nil
end

-- ---- config validation --------------------------------------------------------------------------

describe("config validation", function()
   local function c_default()
      local c = ffi.new("hrm_config")
      C.hrm_config_default(c)
      return c
   end
   local function last_error() return ffi.string(C.hrm_last_error()) end

   -- the C check refuses c and names `field`; the model refuses the same config in Lua with `lua_msg`
   local function expect_config_error(c, field, lua_cfg, lua_msg)
      assert.equal(C.HRM_ERR_ARG, C.hrm_config_check(c))
      local msg = last_error()
      assert.is_truthy(msg:find(field, 1, true), "message \"" .. msg .. "\" does not name " .. field)
      if lua_msg then
         assert.has_error(function() hrm.Model(lua_cfg) end, lua_msg)
      else
         local ok, err = pcall(hrm.Model, lua_cfg)
         assert.is_false(ok)
         assert.is_truthy(tostring(err):find(field, 1, true), tostring(err))
      end
   end

   local function sudoku(over)
      local t = { vocab_size = 11, seq_len = 81 }
      for k, v in pairs(over or {}) do t[k] = v end
      return t
   end

   it("has the hrm_v1 defaults in C and in Lua", function()
      local c = c_default()
      assert.is_true(c.hidden_size == 512 and c.num_heads == 8 and c.expansion == 4.0 and c.H_layers == 4 and
                     c.L_layers == 4 and c.L_cycles == 2 and c.halt_max_steps == 16 and
                     c.halt_exploration_prob == 0.1 and c.pos_encodings == C.HRM_POS_ROPE and
                     c.rms_norm_eps == 1e-5 and c.rope_theta == 10000.0 and c.loss == C.HRM_LOSS_STABLEMAX)
      local l = hrm.config.hrm_v1(sudoku())
      assert.is_true(l.hidden_size == 512 and l.num_heads == 8 and l.expansion == 4 and l.H_layers == 4 and
                     l.L_layers == 4 and l.L_cycles == 2 and l.halt_max_steps == 16 and
                     l.halt_exploration_prob == 0.1 and l.pos_encodings == "rope" and l.rms_norm_eps == 1e-5 and
                     l.rope_theta == 10000 and l.loss == "stablemax")
   end)

   it("names the offending field of every impossible value", function()
      local c = c_default()
      expect_config_error(c, "config.vocab_size", { seq_len = 81 },
                          "hrm.config: field 'vocab_size' is required (the task adapter gives it: task.vocab_size)")
      c.vocab_size = 11
      expect_config_error(c, "config.seq_len", { vocab_size = 11 },
                          "hrm.config: field 'seq_len' is required (the task adapter gives it: task.seq_len)")
      c.seq_len = 81
      assert.equal(C.HRM_OK, C.hrm_config_check(c))
      local b = ffi.new("hrm_config", c)
      b.num_heads = 513
      expect_config_error(b, "config.num_heads", sudoku{ num_heads = 513 },
                          "config.num_heads = 513 must be in 1..hidden_size (512)")
      b = ffi.new("hrm_config", c)
      b.hidden_size = 0
      expect_config_error(b, "config.hidden_size", sudoku{ hidden_size = 0 },
                          "config.hidden_size = 0 must be in 1..65536")
      b = ffi.new("hrm_config", c)
      b.hidden_size, b.num_heads = 24, 8   -- head dim 3: odd, RoPE cannot pair it
      expect_config_error(b, "rope", sudoku{ hidden_size = 24, num_heads = 8 },
                          "config: rope needs an even head dim, hidden_size / num_heads = 3")
      b.pos_encodings = C.HRM_POS_LEARNED
      assert.equal(C.HRM_OK, C.hrm_config_check(b))
      assert.equal("learned", hrm.Model(sudoku{ hidden_size = 24, num_heads = 8, pos_encodings = "learned",
                                                H_layers = 1, L_layers = 1 }).cfg.pos_encodings)
      b = ffi.new("hrm_config", c)
      b.pos_encodings = 7
      expect_config_error(b, "config.pos_encodings", sudoku{ pos_encodings = 7 },
                          "hrm.config: field 'pos_encodings' must be \"rope\", \"learned\" or \"none\", got 7")
      b = ffi.new("hrm_config", c)
      b.halt_exploration_prob = 1.5
      expect_config_error(b, "config.halt_exploration_prob", sudoku{ halt_exploration_prob = 1.5 },
                          "config.halt_exploration_prob = 1.5 must be in [0, 1]")
      b = ffi.new("hrm_config", c)
      b.num_puzzle_identifiers = 0
      expect_config_error(b, "config.num_puzzle_identifiers", sudoku{ num_puzzle_identifiers = 0 },
                          "config.num_puzzle_identifiers = 0 must be >= 1 when puzzle_emb_ndim > 0")
      b.puzzle_emb_ndim = 0
      assert.equal(C.HRM_OK, C.hrm_config_check(b))
      b = ffi.new("hrm_config", c)
      b.loss = 3
      expect_config_error(b, "config.loss", sudoku{ loss = 3 },
                          "hrm.config: field 'loss' must be \"stablemax\" or \"softmax\", got 3")
      b = ffi.new("hrm_config", c)
      b.H_cycles = 0
      expect_config_error(b, "config.H_cycles", sudoku{ H_cycles = 0 }, "config.H_cycles = 0 must be in 1..1024")
      b = ffi.new("hrm_config", c)
      b.expansion = 0 / 0
      expect_config_error(b, "config.expansion", sudoku{ expansion = 0 / 0 }, nil)  -- "nan" or "-nan"
      assert.equal(C.HRM_ERR_ARG, C.hrm_config_check(nil))
   end)

   it("refuses a CUDA model where there is no CUDA device", function()
      local cfg = tiny_config()
      if hrm.cuda_available() then
         assert.equal("cuda", hrm.Model(cfg, { device = "cuda" }).device)
      else
         local ok, err = pcall(hrm.Model, cfg, { device = "cuda" })
         assert.is_false(ok)
         assert.is_truthy(tostring(err):find("not available", 1, true), tostring(err))
      end
   end)
end)

-- ---- batch validation ---------------------------------------------------------------------------

describe("batch validation", function()
   it("names the offending entry and leaves the carry untouched", function()
      local m = hrm.Model(tiny_config(), { seed = 1 })
      local c = m:carry(2)
      assert.equal(2, c:batch_size())
      local inf, labf = {}, {}
      for k = 1, 12 do inf[k], labf[k] = 0, 0 end
      local pidf = { 0, 2 }
      local function b()
         return { inputs = ints(inf, 2, 6), labels = ints(labf, 2, 6), puzzle_identifiers = ints(pidf) }
      end
      inf[1 * 6 + 2 + 1] = 7
      assert.has_error(function() m:step(c, b(), { train = false }) end,
                       "step: batch.inputs[1][2] = 7 is out of range [0, 5)")
      inf[1 * 6 + 2 + 1] = -1
      assert.has_error(function() m:step(c, b(), { train = false }) end,
                       "step: batch.inputs[1][2] = -1 is out of range [0, 5)")
      inf[1 * 6 + 2 + 1] = 4
      labf[6] = -5
      assert.has_error(function() m:step(c, b(), { train = true }) end,
                       "step: batch.labels[0][5] = -5 is neither in [0, 5) nor -100")
      labf[6] = -100
      pidf[2] = 3
      assert.has_error(function() m:step(c, b(), { train = true }) end,
                       "step: batch.puzzle_ids[1] = 3 is out of range [0, 3)")
      pidf[2] = 2
      -- three rows for a carry of two: refused by the Lua shape check, and by the C batch check
      local in3 = {}
      for k = 1, 18 do in3[k] = 0 end
      assert.has_error(function() m:step(c, { inputs = ints(in3, 3, 6) }, { train = false }) end,
                       "step: bad argument #2 (batch): batch.inputs has shape {3,6}, expected {2,6}")
      local raw = ffi.new("hrm_batch")
      local keep = ints(in3, 3, 6)
      raw.inputs, raw.B = ffi.cast("const int32_t *", keep:cdata().data), 3
      assert.equal(C.HRM_ERR_SHAPE, C.hrm_act_check_batch(c.c, raw, 5, 3))
      assert.is_truthy(ffi.string(C.hrm_last_error()):find("batch.B = 3", 1, true))
      assert.has_error(function() m:step(c, { inputs = b().inputs, puzzle_identifiers = b().puzzle_identifiers },
                                         { train = true }) end, "step: bad argument #2 (batch): batch.labels is missing")
      -- nothing was touched by the failures: all rows still halted, steps 0
      assert.same({ 1, 1 }, c:tensor("halted"):to("i32"):totable())
      assert.same({ 0, 0 }, c:tensor("steps"):totable())
      assert.has_error(function() c:tensor("nope") end,
                       "carry_tensor: unknown name \"nope\" (z_H, z_L, steps, halted, inputs, labels, puzzle_ids)")
      -- a wrong-sized tensor option (the C API's wrong output tensor has no Lua counterpart)
      assert.has_error(function() m:step(c, b(), { train = false, active = Tensor({ 1, 1, 1 }, "u8") }) end,
                       "step: option 'active' must be a u8 tensor of the batch size")
      assert.has_error(function() m:step(c, b(), { train = true, row_offset = -2 }) end,
                       "step: option 'row_offset' must be an integer >= 0, got -2")
      assert.has_error(function() m:step(c, b(), { train = true, row_offset = 1.5 }) end,
                       "step: option 'row_offset' must be an integer >= 0, got 1.5")
      -- eval without labels: losses and metrics are zero
      local out = m:step(c, { inputs = b().inputs, puzzle_identifiers = b().puzzle_identifiers }, { train = false })
      assert.is_true(out.loss == 0 and out.count == 0)
   end)
end)

-- ---- finite differences over one training segment -----------------------------------------------

-- One H and one L call per segment: the 1-step gradient is then the exact gradient of the
-- segment from its (constant) carry; the cycle-schedule check covers more cycles.
local function segment_gradient(pos, loss, ndim)
   local cfg = tiny_config{ H_cycles = 1, L_cycles = 1, pos_encodings = pos, loss = loss, puzzle_emb_ndim = ndim }
   local m = hrm.Model(cfg, { seed = 7 })
   local B, E = 3, ndim
   local c = m:carry(B)
   -- give the Q head and the puzzle table weight so that their paths carry gradient
   fill_random(m:tensor("model.inner.q_head.weight"), 1.0, -0.5)
   local qb = m:tensor("model.inner.q_head.bias"):data()
   qb[0], qb[1] = 0.3, -0.2
   local ptable = ndim > 0 and m:tensor(PUZZLE) or nil
   if ptable then fill_random(ptable, 2, -1) end

   local in1, lab1, in2, lab2 = {}, {}, {}, {}
   for k = 0, 17 do
      in1[k + 1], lab1[k + 1] = (k * 7 + 3) % 5, (k * 3 + 1) % 5
      in2[k + 1], lab2[k + 1] = (k * 2 + 1) % 5, (k * 5 + 2) % 5
   end
   lab1[4 + 1], lab2[7 + 1], lab2[8 + 1] = -100, -100, -100
   local b1 = { inputs = ints(in1, B, 6), labels = ints(lab1, B, 6), puzzle_identifiers = ints({ 2, 0, 2 }) }
   local b2 = { inputs = ints(in2, B, 6), labels = ints(lab2, B, 6), puzzle_identifiers = ints({ 1, 1, 0 }) }
   local out = m:step(c, b1, { train = true })
   assert.is_true(out.count >= 0 and out.q_continue_loss > 0)
   -- second segment: row 1 restarts on the new batch, rows 0 and 2 continue
   local halted = c:tensor("halted"):data()
   halted[0], halted[1], halted[2] = 0, 1, 0
   local c0 = snapshot(c)
   m:zero_grad()
   out = m:step(c, b2, { train = true, global_batch = 5 })  -- the gradient is of total / 5
   local total_train = out.loss
   -- the target the step used: sigmoid of the next forward's Q on the new carry
   local target = ffi.new("float[3]")
   do
      local c1 = snapshot(c)
      set_all(c:tensor("halted"), 0)
      local steps = c:tensor("steps"):totable()
      local o2 = m:step(c, b2, { train = false })
      local qh, qc = o2.q_halt_logits:data(), o2.q_continue_logits:data()
      for b = 0, B - 1 do
         local h, q = qh[b], qc[b]
         local x = steps[b + 1] >= cfg.halt_max_steps and h or (h > q and h or q)
         target[b] = 1 / (1 + math.exp(-x))
      end
      restore(c1, c)
   end
   -- keep the analytic gradients, then probe the loss
   local params, grads, names = m:parameters()
   local saved = {}
   for i, g in ipairs(grads) do saved[i] = g:clone() end
   local ids, pgrad
   if ndim > 0 then
      ids, pgrad = m.store:sparse_rows()
      assert.equal(B, ids:numel())
      assert.same({ 2, 1, 2 }, ids:totable())  -- continuing rows keep their ids
   end

   -- total / G with the training step's target held fixed, from the same starting carry
   local function segment_loss()
      restore(c0, c)
      local o = m:step(c, b2, { train = false })
      local qcl, q = 0, o.q_continue_logits:data()
      for b = 0, B - 1 do
         local x, y = q[b], target[b]
         qcl = qcl + math.max(x, 0) - x * y + math.log(1 + math.exp(-math.abs(x)))
      end
      return (o.lm_loss + 0.5 * (o.q_halt_loss + qcl)) / 5
   end
   assert.near(total_train, segment_loss() * 5, 1e-5 * math.abs(total_train))

   local tried = 0
   local function fd_one(ptr, k, analytic, what)
      local x0 = ptr[k]
      ptr[k] = x0 + 1e-2
      local xp = ptr[k]                       -- the float the model sees
      local lp = segment_loss()
      ptr[k] = x0 - 1e-2
      local xm = ptr[k]
      local lm = segment_loss()
      ptr[k] = x0
      local fd = (lp - lm) / (xp - xm)
      tried = tried + 1
      assert.is_true(math.abs(fd - analytic) <= 5e-5 + 5e-3 * math.abs(fd),
                     string.format("%s[%d]: fd %.7g analytic %.7g", what, k, fd, analytic))
   end

   for i, name in ipairs(names) do
      local g, n = saved[i]:data(), params[i]:numel()
      local nz = 0
      for k = 0, n - 1 do if g[k] ~= 0 then nz = nz + 1 end end
      assert.is_true(nz > 0, name .. " has an all-zero gradient")
      local samples = math.min(n, 6)
      for j = 0, samples - 1 do
         local k = samples == n and j or math.floor(urand() * n)
         fd_one(params[i]:data(), k, g[k], name)
      end
   end
   -- puzzle prefix: the table rows of the ids in the data, local grads of equal ids summed
   if ndim > 0 then
      local tp, pg, pid = ptable:data(), pgrad:data(), ids:data()
      for id = 0, 2 do
         for e = 0, E - 1, 3 do
            local an, used = 0, false
            for b = 0, B - 1 do
               if pid[b] == id then
                  an, used = an + pg[b * E + e], true
               end
            end
            fd_one(tp, id * E + e, an, PUZZLE)
            if used then assert.is_true(an ~= 0, string.format("puzzle row %d, column %d: zero gradient", id, e)) end
         end
      end
   end
   assert.is_true(tried >= 6 * 8)
end

describe("the gradient of one training segment", function()
   it("matches finite differences with RoPE, stablemax and a 2-position puzzle prefix", function()
      segment_gradient("rope", "stablemax", 12)
   end)
   it("matches finite differences with learned positions, softmax and a puzzle prefix", function()
      segment_gradient("learned", "softmax", 12)
   end)
   it("matches finite differences with no positions, stablemax and no puzzle prefix", function()
      segment_gradient("none", "stablemax", 0)
   end)
end)

describe("a non-finite loss", function()
   it("is an error that leaves the carry where it was", function()
      local m = hrm.Model(tiny_config(), { seed = 9 })
      local c = m:carry(2)
      local zeros = {}
      for k = 1, 12 do zeros[k] = 0 end
      local b = { inputs = ints(zeros, 2, 6), labels = ints(zeros, 2, 6) }
      m:tensor("model.inner.lm_head.weight"):data()[3] = 0 / 0
      local ok, err = pcall(m.step, m, c, b, { train = true })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("the loss is not finite", 1, true), tostring(err))
      assert.equal(0, c:tensor("steps")[1])  -- the carry was not advanced
   end)
end)

-- ---- the cycle schedule ----------------------------------------------------------------------------

-- H_cycles = L_cycles = 2 runs L, L, H, L without gradient, then L, H with it. A model with one
-- cycle of each runs L, H per step, and a step whose z_H is put back afterwards is a lone L.
-- So the 2/2 training step must equal, state and gradients, the 1/1 sequence
-- (L)(L H)(L)[L H] with the last step in training.
describe("the cycle schedule", function()
   it("equals the same L and H calls made one cycle at a time", function()
      local A = hrm.Model(tiny_config{ halt_max_steps = 1 }, { seed = 11 })  -- no target-Q forward
      local Bm = hrm.Model(tiny_config{ halt_max_steps = 1, H_cycles = 1, L_cycles = 1 }, { seed = 11 })
      assert.equal(A:num_parameters(), Bm:num_parameters())
      local pa, ga, names = A:parameters()
      local pb, gb = Bm:parameters()
      for i, name in ipairs(names) do assert.is_true(pa[i]:equal(pb[i]), name) end
      local qw = A:tensor("model.inner.q_head.weight"):data()
      for k = 0, 15 do qw[k] = 0.5 * (2 * urand() - 1) end
      fill_random(A:tensor(PUZZLE), 2, -1)
      for i = 1, #pa do pb[i]:copy(pa[i]) end
      Bm:tensor(PUZZLE):copy(A:tensor(PUZZLE))
      local cA, cB = A:carry(3), Bm:carry(3)
      local inf, labf = {}, {}
      for j = 0, 17 do inf[j + 1], labf[j + 1] = (j * 3 + 2) % 5, (j * 4 + 1) % 5 end
      labf[3 + 1] = -100
      local b = { inputs = ints(inf, 3, 6), labels = ints(labf, 3, 6), puzzle_identifiers = ints({ 1, 0, 1 }) }
      -- a common, non-trivial starting state
      local ob = Bm:step(cB, b, { train = false })
      restore(snapshot(cB), cA)
      set_all(cA:tensor("halted"), 0)
      local oa = A:step(cA, b, { train = true })
      local oa_loss, oa_lm = oa.loss, oa.lm_loss
      for k = 0, 3 do
         set_all(cB:tensor("halted"), 0)
         local zh = cB:tensor("z_H"):clone()
         ob = Bm:step(cB, b, { train = k == 3 })
         if k == 0 or k == 2 then cB:tensor("z_H"):copy(zh) end  -- a lone L call
      end
      local dz = math.max(max_abs_diff(cA:tensor("z_H"), cB:tensor("z_H")),
                          max_abs_diff(cA:tensor("z_L"), cB:tensor("z_L")))
      local dg, gmax = 0, 0
      for i = 1, #ga do
         dg = math.max(dg, max_abs_diff(ga[i], gb[i]))
         gmax = math.max(gmax, max_abs(ga[i]))
      end
      local ia, sa = A.store:sparse_rows()
      local ib, sb = Bm.store:sparse_rows()
      assert.same(ia:totable(), ib:totable())
      assert.equal(3, ia:numel())
      dg = math.max(dg, max_abs_diff(sa, sb))
      assert.is_true(dz <= 1e-6, "|dz| " .. dz)
      assert.is_true(gmax > 0 and dg <= 1e-6 * gmax, string.format("|dgrad| %.3g, max grad %.3g", dg, gmax))
      assert.near(oa_loss, ob.loss, 1e-9 * math.abs(oa_loss))
      assert.near(oa_lm, ob.lm_loss, 1e-9 * math.abs(oa_lm))
      -- training steps leave the parameters alone
      for i, name in ipairs(names) do assert.is_true(pa[i]:equal(pb[i]), name) end
   end)
end)

-- ---- determinism, halting, active rows --------------------------------------------------------------

describe("determinism", function()
   local function run_steps(m, c, n)
      local losses = {}
      for k = 0, n - 1 do
         local inf, labf = {}, {}
         for j = 0, 17 do inf[j + 1], labf[j + 1] = (j * 7 + k) % 5, (j + 3 * k) % 5 end
         local out = m:step(c, { inputs = ints(inf, 3, 6), labels = ints(labf, 3, 6),
                                 puzzle_identifiers = ints({ 0, 1, 2 }) }, { train = true })
         losses[k + 1] = out.loss
      end
      return losses
   end

   it("gives the same weights, losses, gradients, states and RNG for a seed", function()
      local cfg = tiny_config{ halt_exploration_prob = 0.5 }
      local a = hrm.Model(cfg, { seed = 42 })
      local b = hrm.Model(cfg, { seed = 42 })
      local d = hrm.Model(cfg, { seed = 43 })
      local pa, ga, names = a:parameters()
      local pb, gb = b:parameters()
      local pd = d:parameters()
      local same_ab, same_ad = true, true
      for i = 1, #pa do
         same_ab = same_ab and pa[i]:equal(pb[i])
         same_ad = same_ad and pa[i]:equal(pd[i])
      end
      assert.is_true(same_ab)
      assert.is_true(a:tensor("model.inner.H_init"):equal(b:tensor("model.inner.H_init")))
      assert.is_false(same_ad)
      local ca, cb = a:carry(3), b:carry(3)
      local before = a:rng_state().counter
      local la = run_steps(a, ca, 5)
      local lb = run_steps(b, cb, 5)
      assert.same(la, lb)
      for i, name in ipairs(names) do assert.is_true(ga[i]:equal(gb[i]), name) end
      assert.is_true(ca:tensor("z_H"):equal(cb:tensor("z_H")))
      local ra, rb = a:rng_state(), b:rng_state()
      assert.is_true(ra.counter == rb.counter and ra.counter > 0)
      assert.is_true(ra.counter > before)  -- the exploration draws came from the model's RNG
   end)
end)

describe("evaluation halting", function()
   it("halts every row after halt_max_steps, restarts it, and computes only active rows", function()
      local cfg = tiny_config()
      local m = hrm.Model(cfg, { seed = 3 })
      local c = m:carry(3)
      local inf, labf = {}, {}
      for j = 0, 17 do inf[j + 1], labf[j + 1] = j % 5, (j + 1) % 5 end
      labf[1], labf[2] = -100, -100
      local b = { inputs = ints(inf, 3, 6), labels = ints(labf, 3, 6) }
      local steps, halted = c:tensor("steps"):data(), c:tensor("halted"):data()
      for k = 1, cfg.halt_max_steps do
         local out = m:step(c, b, { train = false })
         assert.is_true(steps[0] == k and steps[1] == k and steps[2] == k)
         local last = k == cfg.halt_max_steps and 1 or 0
         assert.is_true(halted[0] == last and halted[1] == last and halted[2] == last)
         assert.equal(last == 1 and 3 or 0, out.count)
         if last == 1 then assert.equal(3 * cfg.halt_max_steps, out.steps) end
         assert.is_true(out.q_continue_loss == 0 and out.lm_loss > 0)
         local l17 = out.logits:data()[17]
         assert.is_true(l17 == l17 and math.abs(l17) < math.huge)
      end
      -- halted rows restart
      m:step(c, b, { train = false })
      assert.is_true(steps[0] == 1 and halted[0] == 0)
      -- an active mask computes only its rows and leaves the others' carry as it was
      local z1 = c:tensor("z_H")[2]:clone()
      local active = Tensor({ 1, 0, 1 }, "u8")
      local before = snapshot(c)
      local out = m:step(c, b, { train = false, active = active })
      assert.is_true(steps[0] == 2 and steps[1] == 1 and steps[2] == 2)
      assert.is_true(z1:equal(c:tensor("z_H")[2]))
      -- the active rows match a full step of an identical state
      local masked = { c:tensor("z_H")[1]:clone(), c:tensor("z_H")[3]:clone(), out.logits[1]:clone(),
                       out.logits[3]:clone() }
      restore(before, c)
      out = m:step(c, b, { train = false })
      local full = { c:tensor("z_H")[1], c:tensor("z_H")[3], out.logits[1], out.logits[3] }
      for i = 1, 4 do assert.is_true(max_abs_diff(masked[i], full[i]) < 1e-5) end
      assert.has_error(function() m:step(c, b, { train = true, active = active }) end,
                       "step: option 'active' is for evaluation only (train = true)")
   end)
end)

-- Carries of different batch sizes share one model; rows are independent.
describe("batch sizes", function()
   it("gives the same rows at two batch sizes after training at both", function()
      local m = hrm.Model(tiny_config(), { seed = 21 })
      local c2, c4 = m:carry(2), m:carry(4)
      local inf, labf = {}, {}
      for j = 0, 23 do inf[j + 1], labf[j + 1] = (j * 3) % 5, (j * 2 + 1) % 5 end
      local in4, lab4 = ints(inf, 4, 6), ints(labf, 4, 6)
      local pid4 = ints({ 1, 2, 1, 0 })
      local b2 = { inputs = in4:narrow(1, 1, 2), labels = lab4:narrow(1, 1, 2), puzzle_identifiers = pid4:narrow(1, 1, 2) }
      local b4 = { inputs = in4, labels = lab4, puzzle_identifiers = pid4 }
      m:step(c2, b2, { train = true })
      m:step(c4, b4, { train = false })  -- a new batch size in eval
      m:step(c4, b4, { train = true })   -- then training at the larger size
      m:zero_grad()
      c2, c4 = m:carry(2), m:carry(4)
      local l2 = m:step(c2, b2, { train = false }).logits:clone()
      local l4 = m:step(c4, b4, { train = false }).logits
      assert.is_true(max_abs_diff(l2, l4:narrow(1, 1, 2)) < 1e-5)
   end)
end)

-- ---- optimizers ---------------------------------------------------------------------------------------

describe("the optimizers", function()
   local m = hrm.Model(tiny_config(), { seed = 5 })
   local params, grads = m:parameters()
   local n = m:num_parameters()
   -- a coordinate of the flat parameter block: value and gradient pointers and the offset
   local function coord(flat)
      local off = flat
      for i, p in ipairs(params) do
         local k = p:numel()
         if off < k then return p:data(), grads[i]:data(), off end
         off = off - k
      end
      error("flat index " .. flat .. " is beyond the parameters")
   end
   local ks = { 0, 17, n - 1 }
   local gs = { { 0.5, -0.25, 0.0 }, { -1.0, 3.0, 0.0 } }
   local lr = 2e-3
   local settings = { lr = 1e-4, betas = { 0.9, 0.95 }, weight_decay = 0.1, eps = 1e-8, puzzle_emb_lr = 1e-2,
                      puzzle_emb_weight_decay = 0.1 }

   it("takes AdamATan2 steps as computed in double, and exposes its state", function()
      local o = hrm.optim.AdamATan2(m, settings)
      local P, M, V = {}, { 0, 0, 0 }, { 0, 0, 0 }
      for j = 1, 3 do
         local p, _, k = coord(ks[j])
         P[j] = p[k]
      end
      for step = 1, 2 do
         for j = 1, 3 do
            local _, g, k = coord(ks[j])
            g[k] = gs[step][j]
         end
         o:step(lr, 0.0)
         for j = 1, 3 do
            local gr = gs[step][j]
            P[j] = P[j] * (1 - lr * 0.1)
            M[j] = M[j] + 0.1 * (gr - M[j])
            V[j] = V[j] + 0.05 * (gr * gr - V[j])
            local mh, vh = M[j] / (1 - 0.9 ^ step), V[j] / (1 - 0.95 ^ step)
            P[j] = P[j] - lr * math.atan2(mh, math.sqrt(vh))
            local p, _, k = coord(ks[j])
            assert.near(P[j], p[k], 1e-6)
         end
         local _, g0, k0 = coord(ks[1])
         local _, g1, k1 = coord(ks[2])
         assert.is_true(g0[k0] == 0 and g1[k1] == 0)  -- zeroed after the step
      end
      local t = o:tensor("t")
      assert.is_true(t:dtype() == "f64" and t[1] == 2.0)
      local mt = o:tensor("m")
      assert.equal(n, mt:numel())
      assert.near(M[2], mt:data()[17], 1e-7)
      local ok, err = pcall(o.tensor, o, "w")
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("optim_tensor: unknown name \"w\" (m, v, t)", 1, true), tostring(err))
   end)

   it("takes AdamW steps with PyTorch's semantics", function()
      local o = hrm.optim.AdamW(m, settings)
      local P, M, V = {}, { 0, 0, 0 }, { 0, 0, 0 }
      for j = 1, 3 do
         local p, _, k = coord(ks[j])
         P[j] = p[k]
      end
      for step = 1, 2 do
         for j = 1, 3 do
            local _, g, k = coord(ks[j])
            g[k] = gs[step][j]
         end
         o:step(lr, 0.0)
         for j = 1, 3 do
            local gr = gs[step][j]
            P[j] = P[j] * (1 - lr * 0.1)
            M[j] = 0.9 * M[j] + 0.1 * gr
            V[j] = 0.95 * V[j] + 0.05 * gr * gr
            local bc1, bc2 = 1 - 0.9 ^ step, 1 - 0.95 ^ step
            P[j] = P[j] - lr / bc1 * M[j] / (math.sqrt(V[j]) / math.sqrt(bc2) + 1e-8)
            local p, _, k = coord(ks[j])
            assert.near(P[j], p[k], 1e-6)
         end
      end
   end)

   it("refuses eps = 0 for AdamW and beta2 = 1", function()
      local s = {}
      for k, v in pairs(settings) do s[k] = v end
      s.eps = 0
      local ok, err = pcall(hrm.optim.AdamW, m, s)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("optim_new: eps = 0 must be > 0 for adamw", 1, true), tostring(err))
      s.eps, s.betas = 1e-8, { 0.9, 1.0 }
      assert.has_error(function() hrm.optim.AdamW(m, s) end,
                       "hrm.optim.AdamW: option 'betas' must be {b1, b2} with 0 <= b < 1")
   end)

   it("applies sign-SGD to the puzzle rows of the batch, duplicate ids summed first", function()
      local o = hrm.optim.AdamATan2(m, settings)
      local ptable = m:tensor(PUZZLE)
      fill_random(ptable, 2, -1)
      local c = m:carry(3)
      local f = {}
      for j = 0, 17 do f[j + 1] = j % 5 end
      -- the Q head reads the prefix only through the trunk; zero table rows still get gradient
      m:step(c, { inputs = ints(f, 3, 6), labels = ints(f, 3, 6), puzzle_identifiers = ints({ 2, 0, 2 }) },
             { train = true })
      local keep = ptable:clone()  -- holds the storage `before` points into
      local before = keep:data()
      local ids, pgt = m.store:sparse_rows()
      assert.same({ 2, 0, 2 }, ids:totable())
      local pg = pgt:data()
      local plr, pwd = 0.01, 0.1
      o:step(0.0, plr)
      local tp = ptable:data()
      local ok, worst = true, ""
      for e = 0, 11 do
         local g2, g0 = pg[0 * 12 + e] + pg[2 * 12 + e], pg[1 * 12 + e]
         local s2 = g2 > 0 and 1 or g2 < 0 and -1 or 0
         local s0 = g0 > 0 and 1 or g0 < 0 and -1 or 0
         local want2 = before[2 * 12 + e] * (1 - plr * pwd) - plr * s2
         local want0 = before[0 * 12 + e] * (1 - plr * pwd) - plr * s0
         if math.abs(tp[2 * 12 + e] - want2) >= 1e-6 then ok, worst = false, "row 2, column " .. e end
         if math.abs(tp[0 * 12 + e] - want0) >= 1e-6 then ok, worst = false, "row 0, column " .. e end
         if tp[1 * 12 + e] ~= before[1 * 12 + e] then ok, worst = false, "row 1 (not in the batch), column " .. e end
      end
      assert.is_true(ok, worst)
      assert.equal(0, m.store:sparse_pending())
      local ids2 = m.store:sparse_rows()
      assert.equal(0, ids2:numel())
   end)
end)

-- ---- parameter count and names ------------------------------------------------------------------------

describe("hrm_v1", function()
   it("has 27,275,266 parameters for Sudoku, in the reference's order, shapes and init", function()
      local cfg = hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81 }
      assert.is_true(cfg.puzzle_emb_ndim == 512 and cfg.hidden_size == 512 and cfg.H_cycles == 2)
      local m = hrm.Model(cfg, { seed = 0 })
      assert.equal(27275266, m:num_parameters())
      -- 4 + 32 parameters, then H_init, L_init, puzzle_emb.weights
      local names = m:tensor_names()
      assert.equal(39, #names)
      local store = m.store
      local name, value, grad, kind = store:entry(0, true)
      assert.equal("model.inner.embed_tokens.embedding_weight", name)
      assert.is_true(kind == "param" and grad ~= nil and value:size(1) == 11 and value:size(2) == 512)
      local down = "model.inner.L_level.layers.3.mlp.down_proj.weight"
      assert.equal(35 + 1, index_of(names, down))
      local v = m:tensor(down)
      assert.same({ 512, 1536 }, v:size())
      -- LeCun init: std 1/sqrt(1536), truncated at 2.2736945 std
      local p, ss, mx = v:data(), 0, 0
      for k = 0, v:numel() - 1 do
         ss = ss + p[k] * p[k]
         mx = math.max(mx, math.abs(p[k]))
      end
      assert.near(1 / math.sqrt(1536), math.sqrt(ss / v:numel()), 2e-4)
      assert.is_true(mx <= 2.2736945 / math.sqrt(1536) + 1e-6)
      local pi = index_of(names, PUZZLE)
      local _, pv, pgrad, pkind = store:entry(pi - 1, true)
      assert.is_true(pkind == "sparse" and pgrad == nil and pv:size(1) == 1 and pv:size(2) == 512)
      assert.equal(0, pv:data()[7])
      assert.is_truthy(index_of(names, "model.inner.H_init"))
      assert.equal(3 + 1, index_of(names, "model.inner.q_head.bias"))
      assert.is_nil(index_of(names, "model.inner.embed_pos.embedding_weight"))
      assert.same({ -5, -5 }, m:tensor("model.inner.q_head.bias"):totable())
      local qw = m:tensor("model.inner.q_head.weight")
      local zero, qp = true, qw:data()
      for k = 0, qw:numel() - 1 do zero = zero and qp[k] == 0 end
      assert.is_true(zero)
   end)

   it("adds T x D parameters with learned positions", function()
      local m = hrm.Model(hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81, pos_encodings = "learned",
                                              hidden_size = 64, num_heads = 4, puzzle_emb_ndim = 64,
                                              H_layers = 1, L_layers = 1 })
      -- blocks: qkv 3*64^2, o 64^2, gate_up 2*256*64, down 64*256; positions (81 + 1) * 64
      local block = 3 * 64 * 64 + 64 * 64 + 2 * 256 * 64 + 64 * 256
      assert.equal(2 * block + 2 * 11 * 64 + 2 * 64 + 2 + 82 * 64, m:num_parameters())
      assert.equal(4 + 1, index_of(m:tensor_names(), "model.inner.embed_pos.embedding_weight"))
   end)
end)
