-- Specs of the TRM model file (lua/hrm/models/trm.lua) and its config: trm.yaml's defaults, the
-- reference's parameter count, refused configs, TRM's halting rule in training and at inference,
-- finite differences of one whole training segment (full backpropagation through every call of
-- the recursion; also with TRM-MLP's token mixing), a checkpoint round trip, and smoke runs in
-- which a tiny TRM and a tiny TRM-MLP learn 4x4 Sudoku.
local ffi = require "ffi"
local hrm = require "hrm"
local Tensor = hrm.Tensor

-- D 8, 2 heads, 2 layers, 1 recursion of 2 + 1 calls, V 5, S 6, a 3-position prefix holding
-- 12 puzzle values (zero-padded), 3 puzzle ids
local function tiny(over)
   local c = { hidden_size = 8, num_heads = 2, expansion = 1.0, L_layers = 2, H_cycles = 1, L_cycles = 2,
               halt_max_steps = 4, halt_exploration_prob = 0.0, puzzle_emb_ndim = 12, puzzle_emb_len = 3,
               num_puzzle_identifiers = 3, vocab_size = 5, seq_len = 6 }
   for k, v in pairs(over or {}) do c[k] = v end
   return hrm.config.trm(c)
end

local function ints(flat, B, S)
   local t = Tensor(flat, "i32")
   if S then return t:view(B, S) end
   return t
end

-- a fixed pseudo-random fill (LCG), values in [offset, offset + scale)
local seed = 12345
local function urand()
   seed = (seed * 1103515245 + 12345) % 2147483648
   return seed / 2147483648
end
local function fill_random(t, scale, offset)
   local p = t:data()
   for k = 0, t:numel() - 1 do p[k] = scale * urand() + offset end
end

local function batch(B, S, k0)
   local inp, lab = {}, {}
   for k = 0, B * S - 1 do
      inp[k + 1], lab[k + 1] = (k * 7 + k0) % 5, (k * 3 + k0) % 5
   end
   lab[5] = -100
   local ids = {}
   for b = 1, B do ids[b] = (b + k0) % 3 end
   return { inputs = ints(inp, B, S), labels = ints(lab, B, S), puzzle_identifiers = ints(ids) }
end

describe("hrm.config.trm", function()
   it("has trm.yaml's defaults", function()
      local c = hrm.config.trm{ vocab_size = 11, seq_len = 81 }
      assert.same({ "trm", 2, 3, 6, 512, 8, 4, 16, 16, 512, "rope", true, false },
                  { c.arch, c.L_layers, c.H_cycles, c.L_cycles, c.hidden_size, c.num_heads, c.expansion,
                    c.puzzle_emb_len, c.halt_max_steps, c.puzzle_emb_ndim, c.pos_encodings, c.no_ACT_continue,
                    c.mlp_t })
      local m = hrm.config.trm_mlp{ vocab_size = 11, seq_len = 81 }
      assert.same({ "trm", true, "none" }, { m.arch, m.mlp_t, m.pos_encodings })
   end)

   it("gives the reference's 6,828,034 parameters for Sudoku (vocab 11, seq 81, RoPE)", function()
      local m = hrm.Model(hrm.config.trm{ vocab_size = 11, seq_len = 81 }, { empty = true })
      assert.equal(6828034, m:num_parameters())
      assert.equal(97, m.net.tokens)
      local names = m:tensor_names()
      assert.equal("model.inner.L_level.layers.1.mlp.down_proj.weight", names[#names - 3])
      local _, g = m:tensor("model.inner.L_level.layers.0.self_attn.qkv_proj.weight")
      assert.same({ 1536, 512 }, g:size())
      assert.same({ 1, 512 }, m:tensor("model.inner.puzzle_emb.weights"):size())
   end)

   it("gives the reference's 5,028,866 parameters for TRM-MLP on Sudoku (no positions, sequence 97)", function()
      local m = hrm.Model(hrm.config.trm_mlp{ vocab_size = 11, seq_len = 81 }, { empty = true })
      assert.equal(5028866, m:num_parameters())
      -- the token SwiGLU over T = 97: inter roundup(round(4 · 97 · 2/3), 256) = 512
      assert.same({ 1024, 97 }, m:tensor("model.inner.L_level.layers.0.mlp_t.gate_up_proj.weight"):size())
      assert.same({ 97, 512 }, m:tensor("model.inner.L_level.layers.1.mlp_t.down_proj.weight"):size())
      local names = m:tensor_names()
      for _, n in ipairs(names) do assert.is_nil(n:find("self_attn", 1, true), n) end
      assert.truthy(tostring(m):find("token MLP over 97 tokens", 1, true))
   end)

   it("refuses what the reference cannot run, saying why", function()
      assert.has_error(function() hrm.Model(tiny{ no_ACT_continue = false }) end,
         "hrm.Model: no_ACT_continue = false is not supported for arch trm: the reference's path for it " ..
         "unpacks five values from an inner forward that returns three, so it cannot run" ..
         "\n---> HINT: keep no_ACT_continue = true (q_halt > 0 halts, no target-Q)")
      assert.has_error(function() hrm.Model(tiny{ puzzle_emb_ndim = 0 }) end,
         "hrm.config: puzzle_emb_len = 3 needs puzzle_emb_ndim > 0 (without a puzzle embedding no prefix " ..
         "is prepended)\n---> HINT: set puzzle_emb_len = 0")
      assert.has_error(function() hrm.Model(tiny{ puzzle_emb_len = 1 }) end,
         "hrm.config: puzzle_emb_len = 1 positions of hidden_size 8 cannot hold puzzle_emb_ndim = 12")
      assert.has_error(function() hrm.Model(tiny{ L_layers = 0 }) end,
         "hrm.Model: field 'L_layers' = 0 must be >= 1 for arch trm")
      assert.has_error(function() hrm.Model(tiny{ no_ACT_continue = 1 }) end,
         "hrm.config: field 'no_ACT_continue' must be true or false, got 1")
      assert.has_error(function() hrm.config.trm{ puzzle_len = 2 } end, "hrm.config: unknown field 'puzzle_len'")
   end)

   it("keeps HRM's prefix rule and defaults for arch hrm", function()
      local c = hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81 }
      assert.same({ 0, false, false }, { c.puzzle_emb_len, c.no_ACT_continue, c.mlp_t })
      assert.equal(27275266, hrm.Model(c, { empty = true }):num_parameters())
      assert.has_error(function() hrm.Model(hrm.config.tiny{ vocab_size = 5, seq_len = 4, mlp_t = true }) end,
         "hrm.Model: field 'mlp_t' is for arch trm (HRM has no token-mixing variant)")
   end)
end)

describe("TRM halting", function()
   -- q = bias only: q_halt = h, q_continue = c for every row
   local function with_q(m, h, c)
      fill_random(m:tensor("model.inner.q_head.weight"), 0, 0)
      local b = m:tensor("model.inner.q_head.bias"):data()
      b[0], b[1] = h, c
   end

   it("halts a row in training when q_halt > 0, whatever q_continue, with no target-Q", function()
      local m = hrm.Model(tiny(), { seed = 1 })
      with_q(m, 0.5, 3)   -- HRM's rule (q_halt > q_continue) would not halt
      local c = m:carry(3)
      local out = m:step(c, batch(3, 6, 1), { train = true })
      assert.same({ 1, 1, 1 }, c:tensor("halted"):to("i32"):totable())
      assert.equal(0, out.q_continue_loss)
      with_q(m, -0.5, -3) -- HRM's rule would halt
      c = m:carry(3)
      m:step(c, batch(3, 6, 1), { train = true })
      assert.same({ 0, 0, 0 }, c:tensor("halted"):to("i32"):totable())
   end)

   it("stops solving a row at q_halt > 0 with halt = \"q\"", function()
      local m = hrm.Model(tiny(), { seed = 1 })
      with_q(m, 0.5, 3)
      assert.same({ 1, 1 }, m:solve({ inputs = batch(2, 6, 1).inputs }, { halt = "q" }).steps:totable())
      with_q(m, -0.5, -3)
      assert.same({ 4, 4 }, m:solve({ inputs = batch(2, 6, 1).inputs }, { halt = "q" }).steps:totable())
   end)

   it("gives any model TRM's rule through no_ACT_continue", function()
      local m = hrm.Model(hrm.config.tiny{ vocab_size = 5, seq_len = 6, no_ACT_continue = true, num_puzzle_identifiers = 3,
                                           halt_exploration_prob = 0 }, { seed = 1 })
      with_q(m, 0.5, 3)
      local c = m:carry(2)
      local out = m:step(c, batch(2, 6, 1), { train = true })
      assert.same({ 1, 1 }, c:tensor("halted"):to("i32"):totable())
      assert.equal(0, out.q_continue_loss)
   end)
end)

describe("the gradient of one TRM training segment", function()
   -- With H_cycles = 1 every call of the segment is in the graph (L_cycles z-updates and the
   -- y-update through the shared weights), so the backward is the exact gradient of the loss
   -- from the segment's (constant) carry: compare it with central differences.
   local H = 1e-2
   local function check(pos, loss, mlp_t)
      local m = hrm.Model(tiny{ pos_encodings = pos, loss = loss, mlp_t = mlp_t or false }, { seed = 5 })
      fill_random(m:tensor("model.inner.q_head.weight"), 1.0, -0.5)
      local qb = m:tensor("model.inner.q_head.bias"):data()
      qb[0], qb[1] = -0.3, 0.2
      fill_random(m:tensor("model.inner.puzzle_emb.weights"), 2, -1)
      local B = 3
      local c = m:carry(B)
      local b1, b2 = batch(B, 6, 1), batch(B, 6, 4)
      m:step(c, b1, { train = true })
      local h = c:tensor("halted"):data()
      h[0], h[1], h[2] = 0, 1, 0   -- rows 0 and 2 continue, row 1 restarts on b2
      local c0 = {}
      for _, n in ipairs(c:tensor_names()) do c0[n] = c:tensor(n):clone() end
      local function restore() for n, t in pairs(c0) do c:tensor(n):copy(t) end end
      m:zero_grad()
      local out = m:step(c, b2, { train = true, global_batch = 5 })
      local function seg_loss()
         restore()
         local o = m:step(c, b2, { train = false })
         return (o.lm_loss + 0.5 * o.q_halt_loss) / 5
      end
      assert.near(out.loss / 5, seg_loss(), 1e-5 * out.loss)
      local params, grads, names = m:parameters()
      local saved = {}
      for i, g in ipairs(grads) do saved[i] = g:clone() end
      local tried = 0
      for i, name in ipairs(names) do
         local p, g, n = params[i]:data(), saved[i]:data(), params[i]:numel()
         local nz = 0
         for k = 0, n - 1 do if g[k] ~= 0 then nz = nz + 1 end end
         assert.is_true(nz > 0, name .. " has an all-zero gradient")
         for j = 0, math.min(n, 5) - 1 do
            local k = n <= 5 and j or math.floor(urand() * n)
            -- central differences at h and h/2, Richardson-combined: the h^2 term cancels
            local function central(h)
               local x0 = p[k]
               p[k] = x0 + h
               local xp, lp = p[k], seg_loss()
               p[k] = x0 - h
               local xm, lm = p[k], seg_loss()
               p[k] = x0
               return (lp - lm) / (xp - xm)
            end
            local fd = (4 * central(H / 2) - central(H)) / 3
            assert.is_true(math.abs(fd - g[k]) <= 5e-5 + 5e-3 * math.abs(fd),
                           string.format("%s[%d]: fd %.7g analytic %.7g", name, k, fd, g[k]))
            tried = tried + 1
         end
      end
      assert.is_true(tried >= 5 * 11)
   end

   it("matches finite differences with RoPE and stablemax", function() check("rope", "stablemax") end)
   it("matches finite differences with no positions and softmax", function() check("none", "softmax") end)
   it("matches finite differences with TRM-MLP's token mixing", function() check("none", "stablemax", true) end)
end)

describe("a TRM checkpoint", function()
   it("saves and loads its arch and TRM fields, giving the same outputs", function()
      local m = hrm.Model(tiny{ H_cycles = 2 }, { seed = 2 })
      local path = os.tmpname()
      assert(m:save(path))
      local m2 = assert(hrm.Model.load(path))
      os.remove(path)
      assert.same({ "trm", 3, true, false }, { m2.cfg.arch, m2.cfg.puzzle_emb_len, m2.cfg.no_ACT_continue,
                                              m2.cfg.mlp_t })
      local b = batch(2, 6, 3)
      local o1 = m:step(m:carry(2), b, { train = false }).logits:clone()
      local o2 = m2:step(m2:carry(2), b, { train = false }).logits
      assert.same(o1:totable(), o2:totable())
   end)
end)

-- A tiny TRM (attention, or TRM-MLP's token mixing) trained on 4x4 Sudoku with model:step and
-- opt:step lowers its LM loss to under half its start within 120 steps.
local function smoke(name, over)
   local sudoku = require("tasks.sudoku").new{ size = 4 }
   local S, B, STEPS, LR = sudoku.seq_len, 32, 120, 3e-3
   local threads = hrm.get_threads()
   hrm.set_threads(1)
   local c = { hidden_size = 32, num_heads = 2, L_layers = 1, H_cycles = 2, L_cycles = 2, halt_max_steps = 2,
               vocab_size = sudoku.vocab_size, seq_len = S, puzzle_emb_ndim = 0, puzzle_emb_len = 0,
               pos_encodings = "learned", loss = "softmax" }
   for k, v in pairs(over) do c[k] = v end
   local model = hrm.Model(hrm.config.trm(c), { seed = 1 })
   local opt = hrm.optim.AdamATan2(model, { lr = LR, weight_decay = 0.1 })
   local carry = model:carry(B)
   local inputs, labels = Tensor.zeros(B, S, "i32"), Tensor.zeros(B, S, "i32")
   local first, last = 0, 0
   for step = 1, STEPS do
      local ex = assert(sudoku.generate(B, { blanks = { 2, 6 }, seed = 500 + step }))
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
   print(string.format("\ntiny %s, 4x4 Sudoku: lm loss %.4f -> %.4f", name, first / 10, last / 10))
   assert.is_true(last < 0.5 * first, string.format("loss %.4f -> %.4f", first / 10, last / 10))
end

describe("a tiny TRM on 4x4 Sudoku", function()
   it("lowers its loss well below the start", function() smoke("TRM", {}) end)
   it("lowers its loss well below the start with token mixing (TRM-MLP)", function()
      smoke("TRM-MLP", { mlp_t = true, pos_encodings = "none" })
   end)
end)
