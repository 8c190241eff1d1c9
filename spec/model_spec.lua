-- Specs of hrm.Model: construction, parameters, step and its errors, solve policies, files.
local hrm = require "hrm"
local Tensor = hrm.Tensor

local function tiny_cfg(over)
   local c = { hidden_size = 32, num_heads = 2, H_layers = 1, L_layers = 1, H_cycles = 1, L_cycles = 2,
               halt_max_steps = 3, puzzle_emb_ndim = 32, num_puzzle_identifiers = 3, vocab_size = 6,
               seq_len = 5 }
   for k, v in pairs(over or {}) do c[k] = v end
   return c
end

local function batch(B, S, V, seed)
   hrm.manual_seed(seed or 1)
   local inputs = (Tensor.rand(B, S) * V):to("i32")
   local labels = (Tensor.rand(B, S) * V):to("i32")
   return { inputs = inputs, labels = labels, puzzle_identifiers = Tensor.zeros(B, "i32") }
end

describe("hrm.Model construction", function()
   it("has the reference's parameter count for hrm_v1 on Sudoku", function()
      local m = hrm.Model(hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81 })
      assert.equal(27275266, m:num_parameters())
      assert.truthy(tostring(m):find("27.28M parameters", 1, true))
   end)

   it("names tensors as the reference's state dict", function()
      local m = hrm.Model(tiny_cfg())
      local names = {}
      for _, n in ipairs(m:tensor_names()) do names[n] = true end
      assert.is_true(names["model.inner.H_level.layers.0.self_attn.qkv_proj.weight"])
      assert.is_true(names["model.inner.puzzle_emb.weights"])
      assert.is_true(names["model.inner.H_init"])
      local w = m:tensor("model.inner.q_head.bias")
      assert.same({ -5, -5 }, w:totable())
      assert.has_error(function() m:tensor("nope") end)
   end)

   it("is deterministic for a seed", function()
      local a = hrm.Model(tiny_cfg(), { seed = 4 })
      local b = hrm.Model(tiny_cfg(), { seed = 4 })
      local n = "model.inner.L_level.layers.0.mlp.down_proj.weight"
      assert.is_true(a:tensor(n):equal(b:tensor(n)))
      local c = hrm.Model(tiny_cfg(), { seed = 5 })
      assert.is_false(a:tensor(n):equal(c:tensor(n)))
   end)
end)

describe("hrm.Model:step", function()
   local m = hrm.Model(tiny_cfg())

   it("returns logits, Q values and the reference's batch sums", function()
      local carry = m:carry(4)
      local out = m:step(carry, batch(4, 5, 6), { train = true })
      assert.same({ 4, 5, 6 }, out.logits:size())
      assert.equal(4, out.q_halt_logits:numel())
      assert.is_true(out.loss > 0)
      assert.near(out.lm_loss + 0.5 * (out.q_halt_loss + out.q_continue_loss), out.loss, 1e-6)
      local _, grads = m:parameters()
      local norm = 0
      for _, g in ipairs(grads) do norm = norm + (g * g):sum() end
      assert.is_true(norm > 0)
      m:zero_grad()
   end)

   it("runs every row to halt_max_steps in eval", function()
      local carry = m:carry(2)
      local b = batch(2, 5, 6)
      for s = 1, 3 do
         local out = m:step(carry, b, { train = false })
         if s < 3 then assert.equal(0, out.count) else assert.equal(2, out.count); assert.equal(6, out.steps) end
      end
   end)

   it("refuses wrong dtypes, shapes and out-of-range ids with clear messages", function()
      local carry = m:carry(2)
      local b = batch(2, 5, 6)
      assert.has_error(function() m:step(carry, { inputs = b.inputs:to("f32"), labels = b.labels }) end,
                       "step: bad argument #2 (batch): batch.inputs: expected integer token ids (i32), got a f32 tensor\n" ..
                       "---> HINT: t:to(\"i32\")")
      assert.has_error(function() m:step(carry, { inputs = Tensor.zeros(2, 4, "i32"), labels = b.labels }) end,
                       "step: bad argument #2 (batch): batch.inputs: a tensor of shape {2,4}, expected (B, 5): rows of seq_len token ids")
      local bad = b.inputs:clone()
      bad[1][2] = 6
      local ok, err = pcall(m.step, m, carry, { inputs = bad, labels = b.labels })
      assert.is_false(ok)
      assert.truthy(err:find("6", 1, true))
      local pid = Tensor({ 0, 9 }, "i32")
      ok, err = pcall(m.step, m, carry, { inputs = b.inputs, labels = b.labels, puzzle_identifiers = pid })
      assert.is_false(ok)
      assert.truthy(err:find("9", 1, true))
      assert.has_error(function() m:step({}, b) end)
   end)
end)

describe("hrm.Model:solve", function()
   local m = hrm.Model(tiny_cfg({ halt_max_steps = 4 }))
   local b = batch(3, 5, 6)

   it("runs max_steps segments under the \"max\" policy", function()
      local r = m:solve({ inputs = b.inputs })
      assert.same({ 4, 4, 4 }, r.steps:totable())
      assert.same({ 3, 5 }, r.predictions:size())
   end)

   it("stops rows whose q_halt exceeds q_continue under \"q\"", function()
      m:tensor("model.inner.q_head.bias"):copy(Tensor({ 1, -1 }))
      local r = m:solve({ inputs = b.inputs }, { halt = "q" })
      assert.same({ 1, 1, 1 }, r.steps:totable())
      m:tensor("model.inner.q_head.bias"):copy(Tensor({ -5, -5 }))
   end)

   it("asks a Lua policy which rows to stop", function()
      local seen = 0
      local r = m:solve({ inputs = b.inputs }, { halt = function(info)
         seen = seen + 1
         if info.segment == 2 then return { 2 } end
         return {}
      end })
      assert.same({ 4, 2, 4 }, r.steps:totable())
      assert.equal(4, seen)
   end)

   it("takes a policy's booleans and u8 tensors, and refuses anything else", function()
      local r = m:solve({ inputs = b.inputs }, { halt = function(info) return info.segment == 3 end })
      assert.same({ 3, 3, 3 }, r.steps:totable())
      r = m:solve({ inputs = b.inputs }, { halt = function() return { true, false, true } end })
      assert.same({ 1, 4, 1 }, r.steps:totable())
      r = m:solve({ inputs = b.inputs }, { halt = function(info)
         if info.segment == 2 then return Tensor({ 0, 0, 1 }):to("u8") end
      end })
      assert.same({ 4, 4, 2 }, r.steps:totable())
      assert.error_matches(function()
         m:solve({ inputs = b.inputs }, { halt = function() return Tensor({ 1, 1 }):to("u8") end })
      end, "returned a u8 tensor of 2 elements; expected u8 of the batch size 3")
      assert.error_matches(function()
         m:solve({ inputs = b.inputs }, { halt = function() return { 0 } end })
      end, "returned row 0 at %[1%]")
      assert.error_matches(function()
         m:solve({ inputs = b.inputs }, { halt = function() return "all" end })
      end, "returned a string")
   end)

   it("gives the same predictions as step for rows still running", function()
      local carry = m:carry(3)
      local out
      for _ = 1, 4 do out = m:step(carry, { inputs = b.inputs }, { train = false }) end
      local r = m:solve({ inputs = b.inputs })
      assert.same(out.logits:argmax(3):totable()[1][1] - 1, r.predictions[1][1])
   end)
end)

describe("hrm.Model with forward_dtype bfloat16", function()
   local bf16_gemms = hrm.C.hrm_set_gemm_dtype(hrm.C.HRM_DTYPE_BF16) == 0
   hrm.C.hrm_set_gemm_dtype(hrm.C.HRM_DTYPE_F32)
   local function max_diff(a, b)
      local fa, fb = a:float(), b:float() -- kept alive while their data is read
      local pa, pb, d = fa:data(), fb:data(), 0
      for i = 0, a:numel() - 1 do d = math.max(d, math.abs(pa[i] - pb[i])) end
      return d
   end
   local function max_abs(a) return max_diff(a, Tensor.zeros(a:numel())) end
   local function bits_are_bf16(t) return max_diff(t, t:to("bf16")) == 0 end

   if not bf16_gemms then
      pending("bf16 GEMMs are unavailable in this build or on this CPU")
      return
   end

   it("keeps a bf16 carry, differs from float32 only by rounding, and restores the GEMM precision", function()
      local f32 = hrm.Model(tiny_cfg(), { seed = 5 })
      local b16 = hrm.Model(tiny_cfg({ forward_dtype = "bfloat16" }), { seed = 5 })
      local b = batch(3, 5, 6)
      local c32, c16 = f32:carry(3), b16:carry(3)
      local o32 = f32:step(c32, b, { train = true })
      local o16 = b16:step(c16, b, { train = true })
      assert.equal(hrm.C.HRM_DTYPE_F32, hrm.C.hrm_get_gemm_dtype())
      assert.is_true(bits_are_bf16(c16:tensor("z_H")) and bits_are_bf16(c16:tensor("z_L")))
      assert.is_false(bits_are_bf16(c32:tensor("z_H")))
      assert.are_not.equal(o32.loss, o16.loss)
      assert.near(o32.loss, o16.loss, 0.05 * math.abs(o32.loss))
      -- the gradients differ by bf16 rounding too
      local _, g32 = f32.store:tensor("model.inner.lm_head.weight")
      local _, g16 = b16.store:tensor("model.inner.lm_head.weight")
      local d = max_diff(g16, g32)
      assert.is_true(d > 0 and d < 0.05 * max_abs(g32), "gradient difference " .. d)
   end)

   it("gives the previous GEMM precision back when a step fails", function()
      local m = hrm.Model(tiny_cfg({ forward_dtype = "bfloat16" }))
      local bad = { inputs = Tensor.full({ 2, 5 }, 99, "i32") }
      assert.has_error(function() m:step(m:carry(2), bad, { train = false }) end)
      assert.equal(hrm.C.HRM_DTYPE_F32, hrm.C.hrm_get_gemm_dtype())
   end)

   it("solves and keeps forward_dtype through a checkpoint", function()
      local m = hrm.Model(tiny_cfg({ forward_dtype = "bfloat16" }), { seed = 2 })
      local path = os.tmpname()
      m:save(path)
      local back = hrm.Model.load(path)
      os.remove(path)
      assert.equal("bfloat16", back:config().forward_dtype)
      local b = batch(2, 5, 6)
      assert.same(m:solve(b.inputs).predictions:totable(), back:solve(b.inputs).predictions:totable())
   end)
end)

describe("hrm.Model safetensors", function()
   it("exports and imports as the identity, accepting the _orig_mod. prefix", function()
      local dir = os.tmpname()
      local a = hrm.Model(tiny_cfg(), { seed = 1 })
      assert.is_true(a:save_safetensors(dir .. ".st"))
      local b = hrm.Model(tiny_cfg(), { seed = 2 })
      assert.is_true(b:load_safetensors(dir .. ".st"))
      for _, n in ipairs(a:tensor_names()) do assert.is_true(a:tensor(n):equal(b:tensor(n))) end
      local t = assert(hrm.safetensors.load(dir .. ".st"))
      local pref = {}
      for k, v in pairs(t) do pref["_orig_mod." .. k] = v:to("bf16") end
      assert.is_true(hrm.safetensors.save(dir .. ".bf", pref))
      local c = hrm.Model(tiny_cfg(), { seed = 3 })
      assert.is_true(c:load_safetensors(dir .. ".bf"))
      local n = "model.inner.lm_head.weight"
      assert.is_true(c:tensor(n):allclose(a:tensor(n), 1e-2, 1e-3))
      os.remove(dir .. ".st"); os.remove(dir .. ".bf"); os.remove(dir)
   end)

   it("reports a missing file and mis-shaped tensors by name", function()
      local m = hrm.Model(tiny_cfg())
      local ok, err = m:load_safetensors("/nonexistent/file.safetensors")
      assert.is_nil(ok)
      assert.truthy(err:find("/nonexistent/file.safetensors", 1, true))
      local path = os.tmpname()
      hrm.Model(tiny_cfg({ vocab_size = 7 })):save_safetensors(path)
      ok, err = m:load_safetensors(path)
      assert.is_nil(ok)
      assert.truthy(err:find("embed_tokens", 1, true))
      os.remove(path)
   end)
end)
