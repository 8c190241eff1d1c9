-- spec/tasks_util_spec.lua: shared helpers of the task adapters (tasks/util.lua).

local ffi = require "ffi"
local util = require "tasks.util"

local function tmpfile(text)
   local path = os.tmpname()
   assert(util.write_file(path, text))
   return path
end

describe("util.read_csv", function()
   it("keeps leading and trailing spaces and strips only \\r", function()
      local path = tmpfile("a,b\n  x , y  \r\n")
      local header, rows = util.read_csv(path)
      os.remove(path)
      assert.same({ "a", "b" }, header)
      assert.same({ "  x ", " y  " }, { rows[1][1], rows[1][2] })
   end)

   it("parses quoted fields with commas and doubled quotes", function()
      local path = tmpfile('a,b\n"1,2","say ""hi"""\n')
      local _, rows = util.read_csv(path)
      os.remove(path)
      assert.equal("1,2", rows[1][1])
      assert.equal('say "hi"', rows[1][2])
   end)

   it("returns nil and an error for a missing file or a ragged row", function()
      assert.is_nil((util.read_csv("spec/fixtures/nope.csv")))
      local path = tmpfile("a,b\n1\n")
      local h, err = util.read_csv(path)
      os.remove(path)
      assert.is_nil(h)
      assert.truthy(err:find("line 2"))
   end)
end)

describe("util.json_decode", function()
   it("decodes nested values", function()
      local v = util.json_decode('{"a": [1, -2.5e1, true, null], "b": "x\\n\\u00e9", "c": {}}')
      assert.same({ 1, -25, true, util.json_null }, v.a)
      assert.equal("x\n\195\169", v.b)
      assert.same({}, v.c)
   end)

   it("returns nil and a message on malformed text", function()
      local v, err = util.json_decode("[1, 2")
      assert.is_nil(v)
      assert.truthy(err:find("JSON"))
   end)
end)

describe("util.json_encode", function()
   it("round-trips through json_decode with sorted keys", function()
      local v = { z = { { 1, 2 }, { 3 } }, a = "q\"", m = 0.5 }
      local s = util.json_encode(v)
      assert.equal('{"a":"q\\"","m":0.5,"z":[[1,2],[3]]}', s)
      assert.same(v, util.json_decode(s))
   end)
end)

describe("util.rng", function()
   it("is deterministic per seed and stays in range", function()
      local a, b, c = util.rng(7), util.rng(7), util.rng(8)
      local same_c = true
      for _ = 1, 100 do
         local x = a:random(6)
         assert.equal(x, b:random(6))
         assert.is_true(x >= 1 and x <= 6)
         if x ~= c:random(6) then same_c = false end
         local u = a:uniform()
         b:uniform()
         c:uniform()
         assert.is_true(u >= 0 and u < 1)
      end
      assert.is_false(same_c)
   end)

   it("is roughly uniform", function()
      local r, counts = util.rng(1), { 0, 0, 0, 0 }
      for _ = 1, 40000 do
         local k = r:random(4)
         counts[k] = counts[k] + 1
      end
      for k = 1, 4 do assert.is_true(math.abs(counts[k] - 10000) < 500) end
   end)

   it("supports random(m, n)", function()
      local r = util.rng(3)
      for _ = 1, 50 do
         local x = r:random(5, 7)
         assert.is_true(x >= 5 and x <= 7)
      end
   end)
end)

describe("util.permutation", function()
   it("returns a permutation of 1..n", function()
      local p = util.permutation(9, util.rng(2))
      table.sort(p)
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, p)
   end)
end)

describe("util.dihedral_map", function()
   it("composes each transform with its inverse to the identity", function()
      for tid = 0, 7 do
         local f, g = util.dihedral_map(tid, 5), util.dihedral_map(util.DIHEDRAL_INVERSE[tid], 5)
         for i = 0, 24 do assert.equal(i, f[g[i]]) end
      end
   end)
end)

describe("util.build_arrays", function()
   it("lays out groups, puzzles and examples in CSR form", function()
      local adapter = {
         seq_len = 2, vocab_size = 3,
         encode = function(ex, inputs, labels)
            inputs[0], inputs[1], labels[0], labels[1] = ex, ex, ex + 1, ex + 1
            return inputs, labels
         end,
      }
      local groups = {
         { { identifier = 5, examples = { 1, 2 } }, { identifier = 6, examples = { 3 } } },
         { { identifier = 7, examples = { 4 } } },
      }
      local d = util.build_arrays(adapter, groups, { num_puzzle_identifiers = 8 })
      assert.equal(4, d.n)
      assert.equal(3, d.n_puzzles)
      assert.equal(2, d.n_groups)
      assert.same({ 0, 2, 3, 4 }, { d.puzzle_indices[0], d.puzzle_indices[1], d.puzzle_indices[2], d.puzzle_indices[3] })
      assert.same({ 0, 2, 3 }, { d.group_indices[0], d.group_indices[1], d.group_indices[2] })
      assert.same({ 5, 6, 7 }, { d.puzzle_identifiers[0], d.puzzle_identifiers[1], d.puzzle_identifiers[2] })
      assert.equal(3, d.inputs[4])
      assert.equal(5, d.labels[7])
      assert.equal(8, d.num_puzzle_identifiers)
      assert.near(4 / 3, d.mean_puzzle_examples, 1e-12)
      assert.is_true(ffi.istype("uint8_t[?]", d.inputs))
      assert.is_true(ffi.istype("int32_t[?]", d.puzzle_indices))
   end)
end)
