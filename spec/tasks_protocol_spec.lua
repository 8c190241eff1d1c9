-- spec/tasks_protocol_spec.lua: every adapter in tasks/ follows the protocol of
-- tasks/README.md (fields, encode/decode, augment/inverse, dataset arrays), including the
-- copyable tasks/template.lua.

local util = require "tasks.util"

local ADAPTERS = {
   sudoku = { vocab = 11, seq = 81 },
   maze = { vocab = 6, seq = 900 },
   arc = { vocab = 12, seq = 900 },
   template = { vocab = 11, seq = 16 },
}

local ARRAY_FIELDS = { "inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices",
   "n", "vocab_size", "seq_len", "pad_id", "ignore_label_id", "blank_identifier_id",
   "num_puzzle_identifiers" }

local function example_for(name, A)
   if name == "arc" then
      return { input = A.grid{ { 1, 2 }, { 3, 4 } }, output = A.grid{ { 5 } } }
   end
   return A.generate(1, { seed = 3 })[1]
end

describe("task adapter fields", function()
   for name, want in pairs(ADAPTERS) do
      it(name .. " exposes name, vocab_size, seq_len and the functions of the protocol", function()
         local A = require("tasks." .. name)
         assert.is_string(A.name)
         assert.equal(want.vocab, A.vocab_size)
         assert.equal(want.seq, A.seq_len)
         assert.equal(0, A.pad_id)
         assert.equal(0, A.ignore_label_id)
         for _, f in ipairs({ "new", "encode", "decode", "load", "augment", "inverse", "evaluate", "render", "dataset",
                              "solve" }) do
            assert.is_function(A[f], f)
         end
         if name ~= "arc" then assert.is_function(A.generate) end
      end)
   end
end)

describe("task adapter encode and decode", function()
   for name in pairs(ADAPTERS) do
      it(name .. " encodes tokens below vocab_size and decodes labels back", function()
         local A = require("tasks." .. name)
         local ex = example_for(name, A)
         local inputs, labels = A.encode(ex)
         for i = 0, A.seq_len - 1 do
            assert.is_true(inputs[i] < A.vocab_size)
            assert.is_true(labels[i] < A.vocab_size)
         end
         local back = A.decode(labels)
         if name == "arc" then
            assert.same(A.rows(ex.output), A.rows(back))
         else
            assert.equal(ex.solution or ex.answer or ex.output, back)
         end
      end)
   end
end)

describe("task adapter augment and inverse", function()
   for name in pairs(ADAPTERS) do
      it(name .. " inverts its augmentation on the label", function()
         local A = require("tasks." .. name)
         local ex = example_for(name, A)
         local rng = util.rng(12)
         for _ = 1, 8 do
            local aug_ex, aug = A.augment(ex, rng)
            local _, labels = A.encode(aug_ex)
            local back = A.inverse(aug, labels)
            if name == "arc" then
               assert.same(A.rows(ex.output), A.rows(back))
            else
               if type(back) ~= "string" then back = A.decode(back) end
               assert.equal(ex.solution or ex.answer or ex.output, back)
            end
         end
      end)
   end
end)

describe("task adapter dataset", function()
   for name in pairs(ADAPTERS) do
      it(name .. " returns the CSR arrays and metadata", function()
         local A = require("tasks." .. name)
         local d
         if name == "arc" then
            local task = { id = "t", split = "training", train = { example_for(name, A) }, test = {} }
            d = A.dataset{ arrays = true, tasks = { task }, num_aug = 2, seed = 1 }
         else
            d = A.dataset{ arrays = true, examples = A.generate(3, { seed = 1 }) }
         end
         for _, f in ipairs(ARRAY_FIELDS) do assert.is_not_nil(d[f], f) end
         assert.equal(d.n, d.puzzle_indices[d.n_puzzles])
         assert.equal(d.n_puzzles, d.group_indices[d.n_groups])
      end)
   end
end)

describe("template adapter", function()
   local T = require "tasks.template"

   it("makes reversed digit rows and scores them", function()
      local ex = T.generate(4, { seed = 2 })
      for _, e in ipairs(ex) do assert.equal(e.input:reverse(), e.output) end
      local preds = { ex[1].output, ex[2].output, ex[3].input, ex[4].output }
      local r = T.evaluate(preds, ex)
      assert.equal(0.75, r.exact_accuracy)
      assert.truthy(T.render(ex[3], ex[3].input, { color = false }):find("*", 1, true))
   end)

   it("raises on misuse and returns nil, err on a missing file", function()
      assert.has_error(function() T.encode{ input = "12" } end)
      assert.has_error(function() T.new{ length = 0 } end)
      local ex, err = T.load("spec/fixtures/nope.csv")
      assert.is_nil(ex)
      assert.is_string(err)
   end)
end)

describe("task adapter check", function()
   for _, name in ipairs({ "sudoku", "maze" }) do
      it(name .. " accepts its own labelled answer, as tokens or decoded", function()
         local A = require("tasks." .. name)
         local ex = A.generate(1, { seed = 5 })[1]
         local _, labels = A.encode(ex)
         assert.is_true(A.check(ex, labels))
         assert.is_true(A.check(ex, A.decode(labels)))
         local from_string = A.encode(A.example(ex.puzzle or ex.question)) -- the inputs of a puzzle string
         local inputs = A.encode(ex)
         for i = 0, A.seq_len - 1 do assert.equal(inputs[i], from_string[i]) end
      end)
   end

   it("is absent for ARC and the template, where halt = \"verify\" is refused", function()
      assert.is_nil(require("tasks.arc").check)
      assert.is_nil(require("tasks.template").check)
   end)
end)
