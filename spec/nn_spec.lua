-- Specs of hrm.nn (modules, store, tape) as a researcher uses them from Lua, of model files
-- (the worked variant docs/examples/hrm_window2.lua, a model file by path), and of the ops that
-- replaced Lua loops (EMA, argmax).
local hrm = require "hrm"
local nn = require "hrm.nn"
local Tensor = hrm.Tensor

local function tmp(name) return os.tmpname() .. "-" .. name end

local function tiny(over)
   local c = { vocab_size = 7, seq_len = 6, puzzle_emb_ndim = 0, halt_max_steps = 2 }
   for k, v in pairs(over or {}) do c[k] = v end
   return hrm.config.tiny(c)
end

local function batch_of(B, S, V, seed)
   local inputs, labels = Tensor.zeros(B, S, "i32"), Tensor.zeros(B, S, "i32")
   local pi, pl = inputs:data(), labels:data()
   for k = 0, B * S - 1 do
      pi[k] = (k * 3 + seed) % V
      pl[k] = (k * 5 + 2 * seed) % V
   end
   return { inputs = inputs, labels = labels }
end

describe("hrm.nn modules", function()
   local store, block, head
   before_each(function()
      store = nn.Store{ seed = 3 }
      block = nn.Block(store, "blk", { hidden_size = 16, num_heads = 2, tokens = 4, rope = true })
      head = nn.Linear(store, "head", 16, 5, { bias = true })
      store:build()
   end)

   it("run on tensors in the REPL and print their structure", function()
      local y = head(block(Tensor.randn(2, 4, 16)))
      assert.same({ 2, 4, 5 }, y:size())
      local text = tostring(block)
      assert.truthy(text:find("nn.Block blk", 1, true))
      assert.truthy(text:find("hidden 16, heads 2", 1, true))
      assert.equal(16 * 48 + 16 * 16 + 2 * 256 * 16 + 256 * 16, block:num_parameters())
      assert.truthy(tostring(head):find("(16 -> 5, bias)", 1, true))
      assert.equal(block:num_parameters() + head:num_parameters(), store:num_parameters())
      assert.same({ "blk.self_attn.qkv_proj.weight", "blk.self_attn.o_proj.weight",
                    "blk.mlp.gate_up_proj.weight", "blk.mlp.down_proj.weight", "head.weight", "head.bias" },
                  store:names())
   end)

   it("give the same output through a tape as untaped", function()
      local x = Tensor.randn(3, 4, 16)
      local tape = nn.Tape(store)
      local y = tape:call(head, tape:call(block, x))
      assert.is_true(y:equal(head(block(x))))
      assert.equal(2, tape:calls())
   end)

   it("accumulate weight gradients over repeated calls and route input gradients", function()
      local x = Tensor.randn(2, 4, 16)
      local g = Tensor.randn(2, 4, 5)
      local tape = nn.Tape(store)
      tape:watch(x)
      local y = tape:call(head, tape:call(block, tape:call(block, x)))
      local dx = tape:backward({ y }, { g })
      local _, gw = store:tensor("blk.mlp.down_proj.weight")
      local once = gw:clone()
      assert.is_true((once * once):sum() > 0)
      assert.is_true(dx:equal(tape:grad(x)))
      assert.same({ 2, 4, 16 }, dx:size())
      -- the same again adds the same amount
      tape:reset()
      tape:watch(x)
      y = tape:call(head, tape:call(block, tape:call(block, x)))
      tape:backward({ y }, { g })
      assert.is_true(gw:allclose(once * 2, 1e-5, 1e-6))
      assert.is_true(tape:grad(x):equal(dx))
   end)

   it("refuse misuse with a clear message", function()
      local x = Tensor.randn(2, 4, 16)
      local tape = nn.Tape(store)
      local y = tape:call(block, x)
      tape:backward({ y }, { Tensor.ones(2, 4, 16) })
      assert.error_matches(function() tape:backward({ y }, { Tensor.ones(2, 4, 16) }) end,
                           "backward already ran on these calls")
      local other = nn.Store{}
      local foreign = nn.Block(other, "blk", { hidden_size = 16, num_heads = 2, tokens = 4 })
      other:build()
      tape:reset()
      assert.error_matches(function() tape:call(foreign, x) end, "belongs to another model")
      assert.error_matches(function() block(Tensor.randn(2, 5, 16)) end, "expected %(B, 4, 16%)")
      assert.error_matches(function() block(Tensor.zeros(2, 4, 16, "i32")) end, "input 1 is i32, expected f32")
      local out = tape:call(block, x)
      assert.error_matches(function() block:forward(out, x) end, "output of a call on a tape")
      head:free()
      assert.error_matches(function() head(x) end, "the module was freed")
      assert.error_matches(function() nn.Linear(store, "late", 2, 2) end, "built already")
      assert.error_matches(function() nn.Block(store, 3, {}) end, "bad argument #2 %(name%)")
   end)
end)

describe("model files", function()
   it("train the worked variant with a wider gradient window", function()
      local cfg = tiny{ arch = "docs/examples/hrm_window2.lua" }
      local variant = hrm.Model(cfg, { seed = 5 })
      local base = hrm.Model(tiny(), { seed = 5 })
      assert.equal("docs/examples/hrm_window2.lua", variant:config().arch)
      assert.equal(16, #variant:config().arch_hash)
      -- the same modules and init; one step: the same forward, a different gradient
      for _, name in ipairs(base:tensor_names()) do
         assert.is_true(variant:tensor(name):equal(base:tensor(name)), name)
      end
      local b = batch_of(8, 6, 7, 1)
      local ov = variant:step(variant:carry(8), b, { train = true })
      local ob = base:step(base:carry(8), b, { train = true })
      assert.near(ob.loss, ov.loss, 1e-6 * math.abs(ob.loss))
      local _, gv = variant:tensor("model.inner.L_level.layers.0.self_attn.qkv_proj.weight")
      local _, gb = base:tensor("model.inner.L_level.layers.0.self_attn.qkv_proj.weight")
      assert.is_false(gv:allclose(gb, 1e-3, 1e-6))
      local _, hv = variant:tensor("model.inner.lm_head.weight")
      local _, hb = base:tensor("model.inner.lm_head.weight")
      assert.is_true(hv:allclose(hb, 1e-5, 1e-7))
      -- a few steps of training lower its loss on a fixed batch
      variant:zero_grad()
      local opt = hrm.optim.AdamATan2(variant, { lr = 3e-3, weight_decay = 0 })
      local first, last
      for s = 1, 30 do
         local out = variant:step(variant:carry(8), b, { train = true })
         if s == 1 then first = out.lm_loss end
         last = out.lm_loss
         opt:step()
      end
      assert.is_true(last < 0.7 * first, string.format("lm_loss %.4f -> %.4f", first, last))
   end)

   it("refuse a saved model whose file has changed", function()
      local src = assert(io.open("docs/examples/hrm_window2.lua")):read("*a")
      local path = tmp("model.lua")
      local f = assert(io.open(path, "w"))
      f:write(src)
      f:close()
      local m = hrm.Model(tiny{ arch = path }, { seed = 1 })
      local ckpt = tmp("m.hrm")
      assert(m:save(ckpt))
      assert(hrm.Model.load(ckpt))
      f = assert(io.open(path, "a"))
      f:write("\n-- edited\n")
      f:close()
      local ok, err = hrm.Model.load(ckpt)
      assert.is_nil(ok)
      assert.truthy(tostring(err):find("has changed since this model was saved", 1, true))
      os.remove(path)
      os.remove(ckpt)
   end)

   it("name what is wrong with a model file", function()
      assert.error_matches(function() hrm.Model(tiny{ arch = "no_such_model" }) end, "unknown arch 'no_such_model'")
      assert.error_matches(function() hrm.Model(tiny{ arch = "/no/such/file.lua" }) end, "cannot read the model file")
      local path = tmp("bad.lua")
      local f = assert(io.open(path, "w"))
      f:write("return { build = 1 }")
      f:close()
      assert.error_matches(function() hrm.Model(tiny{ arch = path }) end, "must return a table with build, embed and forward")
      os.remove(path)
   end)
end)

describe("puzzle-embedding gradients under accumulation", function()
   it("keep every micro-batch's rows, as one step on the whole batch", function()
      local cfg = tiny{ puzzle_emb_ndim = 64, num_puzzle_identifiers = 4, halt_max_steps = 1 }
      local function run(parts)
         local m = hrm.Model(cfg, { seed = 2 })
         local table_ = m:tensor("model.inner.puzzle_emb.weights")
         local pt = table_:data()
         for k = 0, table_:numel() - 1 do pt[k] = math.sin(k) end
         local opt = hrm.optim.AdamATan2(m, { lr = 1e-3, puzzle_emb_lr = 0.1, weight_decay = 0 })
         for _, p in ipairs(parts) do
            local b = batch_of(p.B, 6, 7, p.seed)
            b.puzzle_identifiers = Tensor.full({ p.B }, p.id, "i32")
            m:step(m:carry(p.B), b, { train = true, global_batch = 4 })
         end
         local ids = m.store:sparse_rows()
         opt:step()
         return m, ids
      end
      local before = hrm.Model(cfg, { seed = 2 })
      local m2, ids = run({ { B = 2, id = 1, seed = 1 }, { B = 2, id = 2, seed = 1 } })
      assert.same({ 1, 1, 2, 2 }, ids:totable())
      local t = m2:tensor("model.inner.puzzle_emb.weights")
      -- rows 1 and 2 moved (sign-SGD moves every touched element by lr), rows 0 and 3 did not
      for row = 0, 3 do
         local moved = 0
         for e = 1, 64 do
            local k = row * 64 + e - 1
            if math.abs(t:data()[k] - math.sin(k)) > 0.05 then moved = moved + 1 end
         end
         if row == 1 or row == 2 then assert.is_true(moved > 32, "row " .. row)
         else assert.equal(0, moved, "row " .. row) end
      end
      before:free()
   end)

   it("equal one step on the whole batch", function()
      local cfg = tiny{ puzzle_emb_ndim = 64, num_puzzle_identifiers = 4, halt_max_steps = 1 }
      local function fresh()
         local m = hrm.Model(cfg, { seed = 2 })
         local pt = m:tensor("model.inner.puzzle_emb.weights"):data()
         for k = 0, 4 * 64 - 1 do pt[k] = math.sin(k) end
         return m, hrm.optim.AdamATan2(m, { lr = 1e-3, puzzle_emb_lr = 0.1, weight_decay = 0 })
      end
      local whole = batch_of(4, 6, 7, 1)
      whole.puzzle_identifiers = Tensor({ 1, 1, 2, 2 }):to("i32")
      local a, oa = fresh()
      a:step(a:carry(4), whole, { train = true })
      oa:step()
      local b, ob = fresh()
      for half = 0, 1 do
         local part = { inputs = whole.inputs:narrow(1, 2 * half + 1, 2):clone(),
                        labels = whole.labels:narrow(1, 2 * half + 1, 2):clone(),
                        puzzle_identifiers = Tensor({ half + 1, half + 1 }):to("i32") }
         b:step(b:carry(2), part, { train = true, global_batch = 4 })
      end
      ob:step()
      for _, name in ipairs(a:tensor_names()) do
         assert.is_true(a:tensor(name):allclose(b:tensor(name), 1e-5, 1e-6), name)
      end
   end)
end)

describe("ops that replaced Lua loops", function()
   it("update an EMA exactly as decay * ema + (1 - decay) * x in double", function()
      local ema, x = Tensor.randn(1000), Tensor.randn(1000)
      local want = ema:clone()
      local pw, px = want:data(), x:data()
      for j = 0, 999 do pw[j] = 0.999 * pw[j] + (1 - 0.999) * px[j] end
      assert.equal(0, hrm.C.hrm_ema_update(ema:cdata(), x:cdata(), 0.999))
      assert.is_true(ema:equal(want))
      assert.equal(hrm.C.HRM_ERR_SHAPE, hrm.C.hrm_ema_update(ema:cdata(), Tensor.zeros(3):cdata(), 0.9))
   end)

   it("take the first maximum of each row", function()
      local x = Tensor.new({ { 1, 3, 3 }, { -1, -2, -0.5 }, { 0, 0, 0 } })
      local pred = Tensor.zeros(3, "i32")
      assert.equal(0, hrm.C.hrm_argmax_rows(pred:cdata(), x:cdata()))
      assert.same({ 1, 2, 0 }, pred:totable())
   end)
end)
