-- Specs of solving: model:solve's inputs (tensor, table of rows, batch) and halting-policy
-- protocol, task:solve(model, puzzles) with puzzle strings, decode of a tensor row, check and
-- halt = "verify". Uses the bundled 4x4 Sudoku model (weights/sudoku4.hrm).
local hrm = require "hrm"
local sudoku4 = require("tasks.sudoku").new{ size = 4 }
local maze = require "tasks.maze"

local model = assert(hrm.Model.load("weights/sudoku4.hrm"))
local PUZZLES = { "..23...13.1..43.", "1...........4..." }

local function rows_of(puzzles)
   local rows = {}
   for i, p in ipairs(puzzles) do
      local x = sudoku4.encode{ puzzle = p }
      rows[i] = {}
      for k = 0, sudoku4.seq_len - 1 do rows[i][k + 1] = x[k] end
   end
   return rows
end

describe("model:solve inputs", function()
   it("gives the same answer for a table of rows, a tensor and a batch", function()
      local rows = rows_of(PUZZLES)
      local a = model:solve(rows)
      local tensor = hrm.Tensor(rows, "i32")
      local b = model:solve(tensor)
      local c = model:solve({ inputs = tensor })
      local d = model:solve(hrm.Tensor(rows, "u8"))
      assert.is_true(a.predictions:equal(b.predictions))
      assert.is_true(a.predictions:equal(c.predictions))
      assert.is_true(a.predictions:equal(d.predictions))
      assert.same({ 2, 16 }, a.predictions:size())
   end)

   it("takes one row as a flat table or an encoded FFI array", function()
      local row = rows_of({ PUZZLES[1] })[1]
      local a = model:solve(row)
      local b = model:solve({ (sudoku4.encode{ puzzle = PUZZLES[1] }) })
      assert.is_true(a.predictions:equal(b.predictions))
   end)
end)

describe("model:step inputs", function()
   it("gives the same losses for tables of rows as for i32 tensors", function()
      local rows = rows_of(PUZZLES)
      local labels = {}
      for i, p in ipairs(PUZZLES) do
         local _, y = sudoku4.encode{ puzzle = p, solution = sudoku4.solve(p) }
         labels[i] = {}
         for k = 0, 15 do labels[i][k + 1] = y[k] end
      end
      local ca, cb, counted = model:carry(2), model:carry(2), 0
      local as_tensors = { inputs = hrm.Tensor(rows, "i32"), labels = hrm.Tensor(labels, "u8") }
      for _ = 1, 4 do -- until the rows halt (only halted rows count)
         local a = model:step(ca, { inputs = rows, labels = labels })
         local lm_loss, exact, count = a.lm_loss, a.exact_accuracy, a.count
         local b = model:step(cb, as_tensors)
         assert.equal(lm_loss, b.lm_loss)
         assert.equal(exact, b.exact_accuracy)
         assert.equal(count, b.count)
         counted = counted + count
      end
      assert.is_true(counted >= 2)
   end)
end)

describe("model:solve halting policies", function()
   local rows = rows_of(PUZZLES)
   local function steps_with(policy)
      local r = model:solve(rows, { halt = policy, max_steps = 4 })
      return r.steps:totable()
   end

   it("documents what the policy function receives", function()
      local seen
      model:solve(rows, { halt = function(info) seen = seen or info return true end })
      assert.equal(1, seen.segment)
      assert.same({ 2, 16 }, seen.predictions:size())
      assert.equal("u8", seen.active:dtype())
      assert.equal(2, seen.q_halt_logits:numel())
      assert.equal(2, seen.q_continue_logits:numel())
      assert.equal(2, seen.steps:numel())
   end)

   it("stops rows given as 1-based row numbers", function()
      assert.same({ 1, 4 }, steps_with(function() return { 1 } end))
   end)

   it("stops every row on true and none on false or nil", function()
      assert.same({ 1, 1 }, steps_with(function() return true end))
      assert.same({ 4, 4 }, steps_with(function() return false end))
      assert.same({ 4, 4 }, steps_with(function() end))
   end)

   it("stops rows given as a table of booleans", function()
      assert.same({ 4, 1 }, steps_with(function() return { false, true } end))
   end)

   it("stops rows given as a u8 tensor of exactly B elements", function()
      assert.same({ 1, 4 }, steps_with(function() return hrm.Tensor({ 1, 0 }, "u8") end))
   end)

   it("rejects a tensor of another size or dtype, bad rows and other values", function()
      assert.error_matches(function() steps_with(function() return hrm.Tensor({ 1 }, "u8") end) end,
                           "u8 tensor of 1 elements; expected u8 of the batch size 2", 1, true)
      assert.error_matches(function() steps_with(function() return hrm.Tensor({ 1, 0 }, "i32") end) end,
                           "returned a i32 tensor of 2 elements", 1, true)
      assert.error_matches(function() steps_with(function() return { 3 } end) end,
                           "returned row 3 at [1]; expected row numbers 1..2 or booleans", 1, true)
      assert.error_matches(function() steps_with(function() return "all" end) end,
                           "returned a string; expected nil, a boolean", 1, true)
   end)

   it("refuses halt = \"verify\" without a task", function()
      assert.error_matches(function() model:solve(rows, { halt = "verify" }) end,
                           "solve: option 'halt' = \"verify\" needs a task that checks answers", 1, true)
   end)
end)

describe("task.decode", function()
   it("reads a row of model:solve's predictions as well as a table", function()
      local r = model:solve(rows_of(PUZZLES))
      local from_tensor = sudoku4.decode(r.predictions[1])
      local p = r.predictions[1]:totable()
      assert.equal(from_tensor, sudoku4.decode(p))
      assert.equal(16, #from_tensor)
      assert.error_matches(function() sudoku4.decode(hrm.Tensor.zeros(3, "i32")) end,
                           "sudoku.decode: expected 16 tokens, got a tensor of 3", 1, true)
   end)
end)

describe("task.check", function()
   it("accepts a valid grid that keeps the givens and says why otherwise", function()
      local ex = { puzzle = PUZZLES[1] }
      local solution = sudoku4.solve(PUZZLES[1])
      assert.is_true(sudoku4.check(ex, solution))
      assert.same({ false, "row 1 repeats a digit" }, { sudoku4.check(ex, "3323" .. solution:sub(5)) })
      assert.is_true(sudoku4.check(ex, sudoku4.encode{ puzzle = solution }))
   end)

   it("accepts any shortest maze path", function()
      local m = maze.new{ size = 9 }
      local ex = m.generate(1, { seed = 3 })[1]
      assert.is_true(m.check(ex, ex.answer))
      local ok, why = m.check(ex, ex.question)
      assert.is_false(ok)
      assert.truthy(why:find("shortest path", 1, true))
   end)
end)

describe("task:solve", function()
   it("solves puzzle strings and says whether each answer is valid", function()
      local results = sudoku4:solve(model, PUZZLES, { halt = "q" })
      assert.equal(2, #results)
      for i, r in ipairs(results) do
         assert.equal(PUZZLES[i], r.example.puzzle)
         assert.equal(r.answer, sudoku4.decode(results.result.predictions[i]))
         assert.equal(sudoku4.check(r.example, r.answer), r.valid)
         assert.is_true(r.steps >= 1 and r.steps <= 4)
      end
      assert.equal(1, #sudoku4:solve(model, PUZZLES[1]))
   end)

   it("with halt = \"verify\" stops each row at the first segment whose answer checks", function()
      local full = sudoku4:solve(model, PUZZLES, { halt = "max" })
      local verified = sudoku4:solve(model, PUZZLES, { halt = "verify" })
      local traced = {}
      model:solve(rows_of(PUZZLES), { halt = function(info)
         local p = info.predictions:data()
         for r = 0, 1 do
            if not traced[r + 1] and sudoku4.check({ puzzle = PUZZLES[r + 1] }, p + r * 16) then traced[r + 1] = info.segment end
         end
      end })
      for i = 1, 2 do
         assert.equal(4, full[i].steps)
         assert.equal(traced[i] or 4, verified[i].steps)
         if traced[i] then assert.is_true(verified[i].valid) end
      end
   end)
end)
