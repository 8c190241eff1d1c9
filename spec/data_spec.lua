-- data_spec.lua — hrm.data: Dataset building, loading and saving, batches and their state.
--
-- Files are made by the spec itself in a temporary folder (a reference-style numpy folder is
-- written byte by byte); spec/fixtures/data/refdir is a tiny folder numpy wrote. Checks the Lua
-- API and its error conventions; the C engine's own checks are in spec/c/test_dataset.c.
local ffi = require "ffi"
local hrm = require "hrm"
local data = hrm.data
local Dataset = data.Dataset

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p " .. tmp) == 0)
teardown(function() os.execute("rm -rf " .. tmp) end)

local function write(path, bytes)
   local f = assert(io.open(path, "wb"))
   f:write(bytes)
   f:close()
end

-- A little .npy writer: version 1.0, little-endian data given as a Lua byte string.
local function npy(descr, shape, bytes)
   local dims = table.concat(shape, ", ") .. (#shape == 1 and "," or "")
   local dict = string.format("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims)
   local total = 10 + #dict + 1
   local pad = (64 - total % 64) % 64
   local hlen = #dict + pad + 1
   return "\147NUMPY\1\0" .. string.char(hlen % 256, math.floor(hlen / 256)) .. dict ..
          string.rep(" ", pad) .. "\n" .. bytes
end

local function i32_bytes(list)
   local a = ffi.new("int32_t[?]", #list)
   for i, v in ipairs(list) do a[i - 1] = v end
   return ffi.string(a, 4 * #list)
end

-- 6 examples of 4 tokens; puzzles {0,1} {2} {3,4,5}; groups {p0, p1} {p2}.
local function sample_arrays()
   local n, S = 6, 4
   local inputs, labels = ffi.new("uint8_t[?]", n * S), ffi.new("uint8_t[?]", n * S)
   for i = 0, n * S - 1 do
      inputs[i] = (i * 3) % 10
      labels[i] = i % 5
   end
   return {
      inputs = inputs, labels = labels, n = n,
      puzzle_identifiers = { 1, 2, 3 }, puzzle_indices = { 0, 2, 3, 6 }, group_indices = { 0, 2, 3 },
   }
end

local function sample()
   local ds = Dataset.new{ vocab_size = 10, seq_len = 4, num_puzzle_identifiers = 4 }
   return ds:add(sample_arrays())
end

local function snapshot(b)
   return { b.inputs:totable(), b.labels:totable(), b.puzzle_identifiers:totable(), b.count }
end

describe("hrm.data.Dataset.new", function()
   it("makes an empty dataset with the given metadata and defaults", function()
      local ds = Dataset.new{ vocab_size = 12, seq_len = 9 }
      assert.equal(0, ds:size())
      local m = ds:meta()
      assert.same({ 12, 9, 0, 0, 0, 1 }, { m.vocab_size, m.seq_len, m.pad_id, m.ignore_label_id,
                                           m.blank_identifier_id, m.num_puzzle_identifiers })
      assert.same({ "all" }, m.sets)
   end)

   it("takes ignore_label_id = false as no ignore label", function()
      local ds = Dataset.new{ vocab_size = 3, seq_len = 1, ignore_label_id = false }
      assert.is_false(ds:meta().ignore_label_id)
   end)

   it("raises on misuse", function()
      assert.has_error(function() Dataset.new() end)
      assert.has_error(function() Dataset.new{ seq_len = 4 } end,
                       "hrm.data.Dataset.new: bad field 'vocab_size': expected an integer, got nil")
      assert.has_error(function() Dataset.new{ vocab_size = 4, seq_len = 4, colour = 1 } end,
                       "hrm.data.Dataset.new: unknown field 'colour'")
      assert.has_error(function() Dataset.new{ vocab_size = 4, seq_len = 4, pad_id = 4 } end)
   end)

   it("builds from an adapter's arrays table in one call", function()
      local sudoku = require "tasks.sudoku"
      local arrays = assert(sudoku.dataset{ arrays = true, path = "spec/fixtures/sudoku_small.csv", num_aug = 2,
                                            seed = 1 })
      local ds = Dataset.new(arrays)
      assert.equal(arrays.n, ds:size())
      assert.equal(arrays.n_groups, ds:groups())
      assert.equal(3 * ds:groups(), ds:puzzles())
      assert.equal(81, ds:meta().seq_len)
   end)
end)

describe("ds:add", function()
   it("appends FFI arrays, Lua lists and tensors, offsetting the CSR indices", function()
      local ds = sample()
      assert.same({ 6, 3, 2 }, { ds:size(), ds:puzzles(), ds:groups() })
      local t = hrm.Tensor({ { 1, 2, 3, 4 } }, "u8")
      assert.equal(ds, ds:add{ inputs = t, labels = t, n = 1 })
      ds:add{ inputs = { 5, 5, 5, 5 }, labels = { 0, 1, 2, 3 } } -- n inferred, one puzzle, one group
      assert.same({ 8, 5, 4 }, { ds:size(), ds:puzzles(), ds:groups() })
      local x, y = ds:example(8)
      assert.same({ 5, 5, 5, 5 }, x)
      assert.same({ 0, 1, 2, 3 }, y)
   end)

   it("raises when the arrays are wrong and leaves the dataset unchanged", function()
      local ds = sample()
      local a = sample_arrays()
      a.puzzle_identifiers = { 1, 2, 9 }
      assert.has_error(function() ds:add(a) end)
      a = sample_arrays()
      a.group_indices = { 0, 3, 3 }
      assert.has_error(function() ds:add(a) end)
      a = sample_arrays()
      a.labels = ffi.new("int32_t[?]", 24)
      assert.has_error(function() ds:add(a) end,
                       "add: inputs are u8 but labels are i32: they must have the same type")
      assert.has_error(function() ds:add{ inputs = "x", labels = "y", n = 1 } end)
      assert.has_error(function()
         ds:add{ inputs = ffi.new("uint8_t[3]"), labels = ffi.new("uint8_t[3]"), n = 1 }
      end)
      assert.equal(6, ds:size())
   end)
end)

describe("ds:meta, ds:size, ds:puzzles, ds:groups", function()
   it("report the counts and the derived metadata", function()
      local ds = sample()
      local m = ds:meta()
      assert.equal(2, m.total_groups)
      assert.equal(2, m.mean_puzzle_examples)
      assert.matches("6 examples, 3 puzzles, 2 groups", tostring(ds))
   end)
end)

describe("ds:save and Dataset.load", function()
   it("round-trip a dataset through .hrmd", function()
      local ds = sample()
      ds:set_identifiers{ "<blank>", "one", "two" }
      local path = tmp .. "/s.hrmd"
      assert.is_true(ds:save(path))
      local back = assert(Dataset.load(path))
      assert.same({ 6, 3, 2 }, { back:size(), back:puzzles(), back:groups() })
      assert.same(ds:meta(), back:meta())
      for i = 1, 6 do assert.same({ ds:example(i) }, { back:example(i) }) end
      assert.equal("two", back:identifier(2))
      assert.is_nil(back:identifier(3))
   end)

   it("return nil and a message on runtime failures", function()
      local ds, err = Dataset.load(tmp .. "/absent.hrmd")
      assert.is_nil(ds)
      assert.matches("absent.hrmd", err)
      write(tmp .. "/junk.hrmd", "\129\166format\164nope")
      ds, err = Dataset.load(tmp .. "/junk.hrmd")
      assert.is_nil(ds)
      assert.matches("not an .hrmd file", err)
      local ok
      ok, err = sample():save(tmp .. "/no/such/folder/x.hrmd")
      assert.is_nil(ok)
      assert.matches("x.hrmd", err)
   end)

   it("raise on misuse", function()
      assert.has_error(function() Dataset.load(3) end)
      assert.has_error(function() Dataset.load("x", 3) end)
      assert.has_error(function() sample():save() end)
   end)

   it("read a reference numpy folder made here", function()
      local root = tmp .. "/ref"
      assert(os.execute("mkdir -p " .. root .. "/train") == 0)
      local d = root .. "/train/"
      write(d .. "dataset.json", '{"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, ' ..
            '"vocab_size": 10, "seq_len": 4, "num_puzzle_identifiers": 4, "total_groups": 2, ' ..
            '"mean_puzzle_examples": 2.0, "sets": ["all"]}')
      local a = sample_arrays()
      write(d .. "all__inputs.npy", npy("|u1", { 6, 4 }, ffi.string(a.inputs, 24)))
      write(d .. "all__labels.npy", npy("|u1", { 6, 4 }, ffi.string(a.labels, 24)))
      write(d .. "all__puzzle_identifiers.npy", npy("<i4", { 3 }, i32_bytes{ 1, 2, 3 }))
      write(d .. "all__puzzle_indices.npy", npy("<i4", { 4 }, i32_bytes{ 0, 2, 3, 6 }))
      write(d .. "all__group_indices.npy", npy("<i4", { 3 }, i32_bytes{ 0, 2, 3 }))
      write(root .. "/identifiers.json", '["<blank>", "a", "b", "c"]')
      local ds = assert(Dataset.load(root, "train"))
      local ref = sample()
      assert.same({ 6, 3, 2 }, { ds:size(), ds:puzzles(), ds:groups() })
      for i = 1, 6 do assert.same({ ref:example(i) }, { ds:example(i) }) end
      assert.equal("c", ds:identifier(3))
      assert.truthy(Dataset.load(root .. "/train"))
      local none, err = Dataset.load(root)
      assert.is_nil(none)
      assert.matches("give one", err)
   end)

   it("read the folder numpy wrote (spec/fixtures/data/refdir)", function()
      for _, split in ipairs({ "train", "test" }) do
         local ds = assert(Dataset.load("spec/fixtures/data/refdir", split))
         assert.same({ 8, 4, 2 }, { ds:size(), ds:puzzles(), ds:groups() })
         local x, y = ds:example(3)
         for j = 1, 16 do
            assert.equal((3 * 2 + j - 1) % 6, x[j])
            assert.equal((2 + 2 * (j - 1)) % 6, y[j])
         end
         assert.equal("a", ds:identifier(1))
      end
   end)
end)

describe("ds:batches", function()
   it("gives full train batches, the same sequence for the same seed", function()
      local ds = sample()
      local a = ds:batches{ batch_size = 3, train = true, seed = 5 }
      local b = ds:batches{ batch_size = 3, train = true, seed = 5 }
      local c = ds:batches{ batch_size = 3, train = true, seed = 6 }
      local differ = 0
      for _ = 1, 20 do
         local x, y, z = snapshot(a:next()), snapshot(b:next()), snapshot(c:next())
         assert.equal(3, x[4])
         assert.same(x, y)
         if not pcall(assert.same, x, z) then differ = differ + 1 end
      end
      assert.is_true(differ > 0)
   end)

   it("refills the same tensors and maps ignored labels to -100", function()
      local ds = sample()
      local it = ds:batches{ batch_size = 4 }
      local b1 = it:next()
      local inputs = b1.inputs
      local b2 = it:next()
      assert.equal(b1, b2)
      assert.equal(inputs, b2.inputs)
      assert.equal("i32", b2.inputs:dtype())
      assert.same({ 4, 4 }, b2.inputs:size())
      -- the second test batch holds examples 5 and 6, then padding
      assert.equal(2, b2.count)
      assert.same({ 3, 3, 0, 0 }, b2.puzzle_identifiers:totable())
      assert.same({ -100, -100, -100, -100 }, b2.labels[4]:totable())
      assert.same({ 0, 0, 0, 0 }, b2.inputs[4]:totable())
      assert.same({ 1, 2, 3, 4 }, b2.labels[1]:totable())
      assert.same({ -100, 1, 2, 3 }, b2.labels[2]:totable()) -- label 0 is the ignore label
      assert.is_nil(it:next())
   end)

   it("iterates with a for loop over one test epoch", function()
      local ds = sample()
      local seen = 0
      for batch in ds:batches{ batch_size = 4 } do seen = seen + batch.count end
      assert.equal(6, seen)
      local epochs = 0
      for _ in ds:batches{ batch_size = 3, train = true, epochs = 2 } do epochs = epochs + 1 end
      assert.is_true(epochs >= 2)
   end)

   it("raises on misuse", function()
      local ds = sample()
      assert.has_error(function() ds:batches() end)
      assert.has_error(function() ds:batches{ batch_size = 0 } end)
      assert.has_error(function() ds:batches{ batch_size = 2, shuffle = true } end,
                       "batches: unknown option 'shuffle'")
      assert.has_error(function() ds:batches{ batch_size = 100, train = true } end)
   end)
end)

describe("it:state, it:set_state, it:epoch", function()
   it("continue exactly where a checkpoint left off", function()
      local ds = sample()
      local a = ds:batches{ batch_size = 3, train = true, seed = 11 }
      for _ = 1, 7 do a:next() end
      local st = a:state()
      assert.same({ "draws", "epoch", "index", "seed" }, (function()
         local k = {}
         for key in pairs(st) do k[#k + 1] = key end
         table.sort(k)
         return k
      end)())
      assert.equal(st.epoch, a:epoch())
      local expect = {}
      for i = 1, 10 do expect[i] = snapshot(a:next()) end
      local b = ds:batches{ batch_size = 3, train = true, seed = 11 }
      b:set_state(st)
      for i = 1, 10 do assert.same(expect[i], snapshot(b:next())) end
      b:reset()
      assert.equal(0, b:epoch())
   end)

   it("raise on a state from another sampler", function()
      local ds = sample()
      local a = ds:batches{ batch_size = 3, train = true, seed = 1 }
      assert.has_error(function() a:set_state{ seed = 2, epoch = 0, index = 0, draws = 0 } end)
      assert.has_error(function() a:set_state{ seed = 1, epoch = 0, index = -1, draws = 0 } end)
      assert.has_error(function() a:set_state("x") end)
   end)
end)

describe("ds:free", function()
   it("releases the dataset; running iterators keep it alive", function()
      local ds = sample()
      local it = ds:batches{ batch_size = 2 }
      ds:free()
      assert.has_error(function() ds:size() end, "size: the dataset was freed")
      assert.equal(2, it:next().count)
      ds:free()
   end)
end)
