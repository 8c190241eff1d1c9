-- Specs of hrm.checkpoint: save/load round trips of every part of a training state, model files,
-- errors for missing, truncated, corrupted and foreign files, and misuse. The cross-process exact
-- resume is spec/sh/test_resume.sh; the format's own validation is spec/c/test_checkpoint.c.
local ffi = require "ffi"
local hrm = require "hrm"
local Tensor = hrm.Tensor
local checkpoint = require "hrm.checkpoint"
local rng = require "hrm.rng"

local V, S, B = 6, 5, 3

local function tiny_cfg()
   return { hidden_size = 32, num_heads = 2, H_layers = 1, L_layers = 1, H_cycles = 1, L_cycles = 2,
            halt_max_steps = 3, halt_exploration_prob = 0.5, puzzle_emb_ndim = 32,
            num_puzzle_identifiers = 4, vocab_size = V, seq_len = S }
end

local function batch(seed)
   hrm.manual_seed(seed)
   return { inputs = (Tensor.rand(B, S) * V):to("i32"), labels = (Tensor.rand(B, S) * V):to("i32"),
            puzzle_identifiers = (Tensor.rand(B) * 4):to("i32") }
end

local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(require("hrm.fs").mkdir_p(tmpdir))
local function tmp(name) return tmpdir .. "/" .. name end

local function read_bytes(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return s
end

local function write_bytes(path, s)
   local f = assert(io.open(path, "wb"))
   f:write(s)
   f:close()
end

-- Rewrite the checkpoint at src into dst through the C writer (so its checksums are right), with
-- meta = edit_meta(meta) and tensor `name` replaced by edit_tensor(name, t) where that returns one.
local C = hrm.C
local function resave(src, dst, edit_meta, edit_tensor)
   local out = ffi.new("hrm_checkpoint *[1]")
   assert(C.hrm_checkpoint_open(out, src) == 0, ffi.string(C.hrm_last_error()))
   local f = out[0]
   local n = C.hrm_checkpoint_count(f)
   local names, tensors = ffi.new("const char *[?]", n), ffi.new("const hrm_tensor *[?]", n)
   local keep = {}
   for i = 0, n - 1 do
      local name = ffi.string(C.hrm_checkpoint_name(f, i))
      local t = ffi.new("hrm_tensor *[1]")
      assert(C.hrm_checkpoint_get(t, f, name) == 0)
      local wrapped = Tensor._wrap(t[0])
      if edit_tensor then wrapped = edit_tensor(name, wrapped) or wrapped end
      keep[#keep + 1], keep[#keep + 2] = name, wrapped
      names[i], tensors[i] = keep[#keep - 1], wrapped:cdata()
   end
   local meta = ffi.string(C.hrm_checkpoint_meta(f))
   if edit_meta then meta = edit_meta(meta) end
   local rc = C.hrm_checkpoint_write(dst, meta, n, names, tensors)
   C.hrm_checkpoint_free(f)
   assert(rc == 0, ffi.string(C.hrm_last_error()))
   return keep
end

-- A model, optimizer and carry after two training steps (so moments and carry are non-trivial).
local function trained()
   local m = hrm.Model(tiny_cfg(), { seed = 7 })
   local o = hrm.optim.AdamATan2(m, { lr = 1e-3, weight_decay = 0.05 })
   local c = m:carry(B)
   for k = 1, 2 do
      m:step(c, batch(k), { train = true })
      o:step()
   end
   return m, o, c
end

local function same_tensors(a, b)
   return a:dtype() == b:dtype() and a:numel() == b:numel() and a:equal(b)
end

-- A stand-in sampler: its state holds 64-bit cdata, as the C sampler's does.
local function fake_sampler(pos)
   local s = { pos = pos }
   function s:state() return { seed = 0xfedcba9876543210ULL, index = self.pos, nested = { 1, 2, 3 } } end
   function s:set_state(t) self.restored = t; self.pos = t.index end
   return s
end

describe("checkpoint.save", function()
   it("writes a model, optimizer, carry, sampler, step and extra table", function()
      local m, o, c = trained()
      assert.is_true(checkpoint.save(tmp("a.hrm"), { model = m, optim = o, carry = c, data = fake_sampler(5),
                                                     step = 2, extra = { note = "x" } }))
      local info = assert(checkpoint.info(tmp("a.hrm")))
      assert.equal("state", info.kind)
      assert.equal(2, info.step)
      local names = {}
      for _, n in ipairs(info.tensors) do names[n] = true end
      assert.is_true(names["optim.m"] and names["optim.v"] and names["optim.t"])
      assert.is_true(names["carry.1.z_H"] and names["carry.1.puzzle_ids"])
      assert.is_true(names["model.inner.puzzle_emb.weights"])
   end)

   it("gives the same bytes for the same state", function()
      local m, o, c = trained()
      assert(checkpoint.save(tmp("b1.hrm"), { model = m, optim = o, carry = c, step = 1 }))
      assert(checkpoint.save(tmp("b2.hrm"), { model = m, optim = o, carry = c, step = 1 }))
      assert.equal(read_bytes(tmp("b1.hrm")), read_bytes(tmp("b2.hrm")))
   end)

   it("raises on misuse", function()
      local m, o = trained()
      local other = hrm.Model(tiny_cfg())
      assert.has_error(function() checkpoint.save(1, { model = m }) end,
                       "checkpoint.save: bad argument #1 (path): expected a file name, got 1")
      assert.has_error(function() checkpoint.save(tmp("x.hrm"), { optim = o }) end,
                       "checkpoint.save: state.model must be an hrm.Model")
      assert.has_error(function() checkpoint.save(tmp("x.hrm"), { model = other, optim = o }) end,
                       "checkpoint.save: state.optim belongs to another model")
      assert.has_error(function() checkpoint.save(tmp("x.hrm"), { model = m, carry = { other:carry(1) } }) end,
                       "checkpoint.save: carry 1 is not a carry of state.model")
      assert.has_error(function() checkpoint.save(tmp("x.hrm"), { model = m, data = {} }) end,
                       "checkpoint.save: state.data must be a sampler with a :state() method")
      assert.has_error(function() checkpoint.save(tmp("x.hrm"), { model = m, extra = { f = print } }) end)
      assert.is_nil(io.open(tmp("x.hrm")))
   end)

   it("returns nil and a message when the file cannot be written", function()
      local m = trained()
      local ok, err = checkpoint.save(tmp("no/such/folder/a.hrm"), { model = m })
      assert.is_nil(ok)
      assert.truthy(err:find("no/such/folder", 1, true))
   end)

   it("leaves the previous checkpoint in place when a save is refused", function()
      local m = trained()
      assert(checkpoint.save(tmp("keep.hrm"), { model = m, step = 1 }))
      local before = read_bytes(tmp("keep.hrm"))
      pcall(checkpoint.save, tmp("keep.hrm"), { model = m, step = 2, extra = { bad = 0 / 0 } })
      assert.equal(before, read_bytes(tmp("keep.hrm")))
   end)
end)

describe("checkpoint.load", function()
   it("restores every tensor, setting and random state", function()
      local m, o, c = trained()
      local model_rng = m:rng_state()
      hrm.manual_seed(99)
      hrm.random()
      local global = rng.get_state()
      assert(checkpoint.save(tmp("full.hrm"), { model = m, optim = o, carry = c, data = fake_sampler(17),
                                                step = 42, extra = { tag = "run", list = { 1, 2.5 }, nested = { a = { b = true } } } }))
      hrm.manual_seed(1)
      local sampler = fake_sampler(0)
      local st = assert(checkpoint.load(tmp("full.hrm"), { data = sampler }))
      assert.same(global, rng.get_state())
      assert.same(model_rng, st.model:rng_state())
      assert.same(m:config(), st.model:config())
      for _, name in ipairs(m:tensor_names()) do
         assert.is_true(same_tensors(m:tensor(name), st.model:tensor(name)), name)
      end
      for _, k in ipairs({ "m", "v", "t" }) do assert.is_true(same_tensors(o:tensor(k), st.optim:tensor(k)), k) end
      assert.equal(o.kind, st.optim.kind)
      assert.same(o.settings, st.optim.settings)
      for _, f in ipairs(c:tensor_names()) do
         assert.is_true(same_tensors(c:tensor(f), st.carry:tensor(f)), f)
      end
      assert.equal(B, st.carry:batch_size())
      assert.equal(42, st.step)
      assert.same({ tag = "run", list = { 1, 2.5 }, nested = { a = { b = true } } }, st.extra)
      assert.equal(sampler, st.data)
      assert.equal(17, sampler.pos)
      assert.is_true(ffi.istype("uint64_t", sampler.restored.seed))
      assert.is_true(sampler.restored.seed == 0xfedcba9876543210ULL)
      assert.same({ 1, 2, 3 }, st.data_state.nested)
   end)

   it("continues training exactly like the original", function()
      local m, o, c = trained()
      assert(checkpoint.save(tmp("cont.hrm"), { model = m, optim = o, carry = c }))
      local st = assert(checkpoint.load(tmp("cont.hrm")))
      local b = batch(3)
      local r1 = m:step(c, b, { train = true })
      o:step()
      local r2 = st.model:step(st.carry, b, { train = true })
      st.optim:step()
      assert.equal(r1.loss, r2.loss)
      for _, name in ipairs(m:tensor_names()) do
         assert.is_true(same_tensors(m:tensor(name), st.model:tensor(name)), name)
      end
   end)

   it("stores a bf16 model's carry states in bf16 (meta version 2) and continues exactly", function()
      if C.hrm_set_gemm_dtype(C.HRM_DTYPE_BF16) ~= 0 then
         pending("bf16 GEMMs are unavailable in this build or on this CPU")
         return
      end
      C.hrm_set_gemm_dtype(C.HRM_DTYPE_F32)
      local cfg = tiny_cfg()
      cfg.forward_dtype = "bfloat16"
      local m = hrm.Model(cfg, { seed = 7 })
      local o = hrm.optim.AdamATan2(m, { lr = 1e-3 })
      local c = m:carry(B)
      m:step(c, batch(1), { train = true })
      o:step()
      local path = tmp("bf16carry.hrm")
      assert(checkpoint.save(path, { model = m, optim = o, carry = c }))
      local out = ffi.new("hrm_checkpoint *[1]")
      assert(C.hrm_checkpoint_open(out, path) == 0)
      local dtype, ndim, shape = ffi.new("int32_t[1]"), ffi.new("int32_t[1]"), ffi.new("int64_t[4]")
      assert.equal(0, C.hrm_checkpoint_info(dtype, ndim, shape, out[0], "carry.1.z_H"))
      assert.equal(C.HRM_DTYPE_BF16, dtype[0])
      assert.truthy(ffi.string(C.hrm_checkpoint_meta(out[0])):find('"hrm_checkpoint":2', 1, true))
      C.hrm_checkpoint_free(out[0])
      local st = assert(checkpoint.load(path))
      assert.is_true(same_tensors(c:tensor("z_H"), st.carry:tensor("z_H")))
      assert.is_true(same_tensors(c:tensor("z_L"), st.carry:tensor("z_L")))
      local r1 = m:step(c, batch(2), { train = true })
      local r2 = st.model:step(st.carry, batch(2), { train = true })
      assert.equal(r1.loss, r2.loss)
   end)

   it("keeps a list of carries a list", function()
      local m = trained()
      local c1, c2 = m:carry(1), m:carry(2)
      assert(checkpoint.save(tmp("list.hrm"), { model = m, carry = { c1, c2 } }))
      local st = assert(checkpoint.load(tmp("list.hrm")))
      assert.equal(2, #st.carry)
      assert.equal(1, st.carry[1]:batch_size())
      assert.equal(2, st.carry[2]:batch_size())
   end)

   it("returns the sampler state when no sampler is given, and can skip the global RNG", function()
      local m = trained()
      assert(checkpoint.save(tmp("ds.hrm"), { model = m, data = fake_sampler(3) }))
      hrm.manual_seed(5)
      local before = rng.get_state()
      local st = assert(checkpoint.load(tmp("ds.hrm"), { rng = false }))
      assert.same(before, rng.get_state())
      assert.equal(3, st.data_state.index)
      assert.is_nil(st.data)
      assert.is_nil(st.optim)
      assert.is_nil(st.carry)
      assert(checkpoint.save(tmp("nods.hrm"), { model = m }))
      local none, err = checkpoint.load(tmp("nods.hrm"), { data = fake_sampler(0) })
      assert.is_nil(none)
      assert.truthy(err:find("holds no sampler state", 1, true))
   end)

   it("returns nil and a message for missing, truncated, corrupted and foreign files", function()
      local m, o, c = trained()
      assert(checkpoint.save(tmp("good.hrm"), { model = m, optim = o, carry = c }))
      local good = read_bytes(tmp("good.hrm"))
      local function load_err(bytes)
         write_bytes(tmp("bad.hrm"), bytes)
         local st, err = checkpoint.load(tmp("bad.hrm"))
         assert.is_nil(st)
         assert.is_string(err)
         return err
      end
      local st, err = checkpoint.load(tmp("missing.hrm"))
      assert.is_nil(st)
      assert.truthy(err:find("cannot open", 1, true))
      assert.truthy(load_err(good:sub(1, #good - 10)):find("truncated", 1, true))
      assert.truthy(load_err(good:sub(1, 100)):find("truncated", 1, true))
      assert.truthy(load_err(""):find("is empty", 1, true))
      assert.truthy(load_err(good .. "x"):find("after the checkpoint's end", 1, true))
      assert.truthy(load_err((good:gsub("\163hrm", "\163hrx", 1))):find("format 'hrx'", 1, true))
      -- an edited meta is refused by the header's checksum; rewritten with valid checksums, by
      -- the meta's own checks
      assert.truthy(load_err((good:gsub("\"hidden_size\":32", "\"hidden_size\":64", 1)))
                    :find("the header (format, version, meta, tensor names, dtypes and shapes) fails its checksum", 1, true))
      assert.truthy(load_err((good:gsub("\"hidden_size\":32", "[\"hidden_size\":3", 1)))
                    :find("fails its checksum", 1, true))
      local function resaved_err(edit)
         resave(tmp("good.hrm"), tmp("edited.hrm"), function(meta) return (meta:gsub(edit[1], edit[2], 1)) end)
         return load_err(read_bytes(tmp("edited.hrm")))
      end
      assert.truthy(resaved_err{ "\"hrm_checkpoint\":1", "\"hrm_checkpoint\":7" }:find("meta version 7", 1, true))
      assert.truthy(resaved_err{ "\"hidden_size\":32", "\"hidden_size\":31" }:find("cannot build the stored model", 1, true))
      assert.truthy(resaved_err{ "\"hidden_size\":32", "\"hidden_size\":64" }:find("has shape [6, 32] in", 1, true))
      m:save_safetensors(tmp("w.safetensors"))
      assert.truthy(load_err(read_bytes(tmp("w.safetensors"))):find("looks like safetensors", 1, true))
      -- random bit flips: always refused with a message (the file is checksummed)
      math.randomseed(3)
      for _ = 1, 100 do
         local at = math.random(1, #good)
         local flipped = good:sub(1, at - 1) .. string.char(bit.bxor(good:byte(at), bit.lshift(1, math.random(0, 7))))
                         .. good:sub(at + 1)
         write_bytes(tmp("flip.hrm"), flipped)
         local s, e = checkpoint.load(tmp("flip.hrm"))
         assert.is_nil(s)
         assert.is_string(e)
      end
   end)

   it("refuses a stored carry whose tokens, ids, halted flags or steps are out of range, naming field, file and row", function()
      local m, o, c = trained()
      assert(checkpoint.save(tmp("carry.hrm"), { model = m, optim = o, carry = c }))
      local cases = {
         { "inputs", -1, 2, "inputs of row 2 (position 1) is -1, expected a token in [0, 6)" },
         { "inputs", V, 1, "inputs of row 1 (position 1) is 6, expected a token in [0, 6)" },
         { "labels", 1e9, 3, "labels of row 3 (position 1) is 1000000000, expected a token in [0, 6) or -100 (ignored)" },
         { "puzzle_ids", 4, 1, "puzzle_ids of row 1 is 4, expected a puzzle id in [0, 4) (num_puzzle_identifiers)" },
         { "halted", 2, 2, "halted of row 2 is 2, expected 0 or 1" },
         { "steps", -3, 3, "steps of row 3 is -3, expected a count >= 0" },
      }
      for _, case in ipairs(cases) do
         local field, value, row, msg = case[1], case[2], case[3], case[4]
         resave(tmp("carry.hrm"), tmp("bad_carry.hrm"), nil, function(name, t)
            if name ~= "carry.1." .. field then return nil end
            local p = t:data()
            local per_row = t:dim() == 2 and t:size(2) or 1
            p[(row - 1) * per_row] = value
            return t
         end)
         local st, err = checkpoint.load(tmp("bad_carry.hrm"))
         assert.is_nil(st)
         assert.equal("'" .. tmp("bad_carry.hrm") .. "': carry 1: " .. msg .. "\n---> HINT: the file is damaged " ..
                      "or was not written by hrm", err)
      end
      -- -100 labels (ignored) and in-range values load
      resave(tmp("carry.hrm"), tmp("ok_carry.hrm"), nil, function(name, t)
         if name == "carry.1.labels" then t:data()[0] = -100 return t end
      end)
      assert.is_table((checkpoint.load(tmp("ok_carry.hrm"))))
      assert.is_true(checkpoint.validate_carry(c, m:config()))
   end)

   it("stores the caller's own tensors in the same file (state.tensors)", function()
      local m = trained()
      local ema = { ["ema.w"] = Tensor.new({ 1.5, -2, 3 }), ["ids"] = Tensor.new({ 4, 5 }):to("i32") }
      assert(checkpoint.save(tmp("own.hrm"), { model = m, tensors = ema }))
      local st = assert(checkpoint.load(tmp("own.hrm")))
      assert.same({ 1.5, -2, 3 }, st.tensors["ema.w"]:totable())
      assert.same({ 4, 5 }, st.tensors.ids:totable())
      assert.equal("i32", st.tensors.ids:dtype())
      assert.is_true(st.checked)
      assert.has_error(function() checkpoint.save(tmp("own.hrm"), { model = m, tensors = { x = 1 } }) end,
                       "checkpoint.save: state.tensors must map non-empty names to tensors (x)")
   end)

   it("refuses an .hrm file written without checkpoint meta", function()
      assert.equal(0, hrm.C.hrm_checkpoint_write(tmp("raw.hrm"), "{\"x\": 1}", 0, nil, nil))
      local st, err = checkpoint.load(tmp("raw.hrm"))
      assert.is_nil(st)
      assert.truthy(err:find("without hrm.checkpoint's meta", 1, true))
   end)

   it("raises on misuse", function()
      assert.has_error(function() checkpoint.load(nil) end,
                       "checkpoint.load: bad argument #1 (path): expected a file name, got nil")
      assert.has_error(function() checkpoint.load(tmp("a.hrm"), { data = {} }) end,
                       "checkpoint.load: opts.data must be a sampler with a :set_state() method")
   end)
end)

describe("model:save and hrm.Model.load", function()
   it("round-trip the weights and the config", function()
      local m = trained()
      assert.is_true(m:save(tmp("model.hrm")))
      local m2 = assert(hrm.Model.load(tmp("model.hrm")))
      assert.same(m:config(), m2:config())
      for _, name in ipairs(m:tensor_names()) do
         assert.is_true(same_tensors(m:tensor(name), m2:tensor(name)), name)
      end
      assert.equal("model", checkpoint.info(tmp("model.hrm")).kind)
   end)

   it("load the model of a full checkpoint", function()
      local m, o, c = trained()
      assert(checkpoint.save(tmp("full2.hrm"), { model = m, optim = o, carry = c }))
      local m2 = assert(hrm.Model.load(tmp("full2.hrm")))
      assert.is_true(same_tensors(m:tensor("model.inner.H_init"), m2:tensor("model.inner.H_init")))
   end)

   it("load from a run directory (best.hrm, else last.hrm) with the run's step, extra and config", function()
      local m, o, c = trained()
      local run = tmp("run")
      assert(require("hrm.fs").mkdir_p(run))
      assert(require("hrm.fs").write_json(run .. "/config.json", { model = m:config() }))
      local shadow = m:tensor("model.inner.H_init"):clone():fill(0.25)
      assert(checkpoint.save(run .. "/last.hrm", { model = m, optim = o, carry = c, step = 7,
                                                   extra = { ema = { decay = 0.9 } },
                                                   tensors = { ["ema.model.inner.H_init"] = shadow } }))
      local m2, info = assert(hrm.Model.load(run))
      assert.equal(run .. "/last.hrm", info.path)
      assert.equal(7, info.step)
      assert.equal(0.9, info.extra.ema.decay)
      assert.equal(m:config().hidden_size, info.run_config.model.hidden_size)
      assert.is_true(same_tensors(m:tensor("model.inner.H_init"), m2:tensor("model.inner.H_init")))
      local m3 = assert(hrm.Model.load(run, { ema = true }))
      assert.is_true(same_tensors(shadow, m3:tensor("model.inner.H_init")))
      -- a .safetensors file takes its config from the run's config.json beside it
      assert(m:save_safetensors(run .. "/w.safetensors"))
      local m4 = assert(hrm.Model.load(run .. "/w.safetensors"))
      assert.is_true(same_tensors(m:tensor("model.inner.H_init"), m4:tensor("model.inner.H_init")))
      local none, err = hrm.Model.load(tmp("model.hrm"), { ema = true })
      assert.is_nil(none)
      assert.equal(tmp("model.hrm") .. ": the run kept no EMA of the weights", err)
   end)

   it("return nil and a message for a bad file, and raise on misuse", function()
      local st, err = hrm.Model.load(tmp("nothing.hrm"))
      assert.is_nil(st)
      assert.truthy(err:find("nothing.hrm", 1, true))
      local m = trained()
      assert.has_error(function() m:save(3) end, "save: bad argument #2 (path): expected a file name, got 3")
      assert.has_error(function() hrm.Model.load(false) end)
   end)
end)

teardown(function() os.execute("rm -rf " .. tmpdir) end)
