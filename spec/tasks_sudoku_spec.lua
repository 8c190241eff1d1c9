-- spec/tasks_sudoku_spec.lua: the Sudoku task adapter (tasks/sudoku.lua).
-- Fixtures live in spec/fixtures/; nothing here reads ../shared. Runs in a few seconds.

local ffi = require "ffi"
local sudoku = require "tasks.sudoku"
local util = require "tasks.util"

local FIXTURE = "spec/fixtures/sudoku_small.csv"

-- first rows of tdoku_forum_hardest_1106.csv (puzzle, solution)
local HARD = {
   { "........8..3...4...9..2..6.....79.......612...6.5.2.7...8...5...1.....2.4.5.....3",
     "621943758783615492594728361142879635357461289869532174238197546916354827475286913" },
   { "........2..8.1.9..5....3.4....1.93...6..3..8...37......4......53.1.7.8..2........",
     "639847512478512963512693748724189356965234187183765294847921635351476829296358471" },
   { "..2...7...1.....6.5......18....37.......49.....41.23....3.2.9...8.....5.6.......2",
     "832416795417985263596273418951837624328649571764152389173528946289364157645791832" },
}
local EASY = { puzzle = "...7.2..5....95.8.19..8..67..4...6....79...2.26...1......5......39.....8....784..",
   solution = "846712935372695184195483267984237651517964823263851749728549316439126578651378492" }

local function has_ansi(s) return s:find("\27[", 1, true) ~= nil end

describe("sudoku adapter", function()
   it("describes the 9x9 reference task", function()
      assert.equal("sudoku", sudoku.name)
      assert.equal(11, sudoku.vocab_size)
      assert.equal(81, sudoku.seq_len)
      assert.equal(0, sudoku.pad_id)
      assert.equal(0, sudoku.ignore_label_id)
   end)
end)

describe("sudoku.new", function()
   it("makes 4x4 and 6x6 variants with the right boxes and vocabulary", function()
      local s4, s6 = sudoku.new{ size = 4 }, sudoku.new{ size = 6 }
      assert.same({ 2, 2 }, s4.box)
      assert.same({ 2, 3 }, s6.box)
      assert.equal(6, s4.vocab_size)
      assert.equal(16, s4.seq_len)
      assert.equal(8, s6.vocab_size)
      assert.equal(36, s6.seq_len)
   end)

   it("rejects sizes without a box shape", function()
      assert.has_error(function() sudoku.new{ size = 7 } end)
      assert.has_error(function() sudoku.new{ size = 2 } end)
      assert.has_error(function() sudoku.new{ size = 9, box = { 2, 4 } } end)
   end)
end)

describe("sudoku.parse and sudoku.format", function()
   it("round-trip a board with '.' and '0' as blanks", function()
      local b = EASY.puzzle:gsub("%.", "0")
      local v = sudoku.parse(b)
      assert.equal(0, v[0])
      assert.equal(7, v[3])
      assert.equal(EASY.puzzle, sudoku.format(v))
   end)

   it("raises on a bad character or length", function()
      assert.has_error(function() sudoku.parse(("x"):rep(81)) end)
      assert.has_error(function() sudoku.parse("123") end)
   end)
end)

describe("sudoku.encode", function()
   it("maps blank to 1 and digit d to d + 1, labels to the solution", function()
      local inputs, labels = sudoku.encode(EASY)
      assert.equal(1, inputs[0])
      assert.equal(8, inputs[3])                             -- '7'
      assert.equal(9, labels[0])                             -- '8'
      for i = 0, 80 do
         assert.is_true(labels[i] >= 2 and labels[i] <= 10)  -- every cell supervised
      end
   end)

   it("fills caller-provided arrays at an offset", function()
      local buf_i, buf_l = ffi.new("uint8_t[162]"), ffi.new("uint8_t[162]")
      sudoku.encode(EASY, buf_i + 81, buf_l + 81)
      assert.equal(0, buf_i[80])
      assert.equal(8, buf_i[81 + 3])
      assert.equal(9, buf_l[81])
   end)

   it("leaves labels as PAD when there is no solution", function()
      local _, labels = sudoku.encode{ puzzle = EASY.puzzle }
      for i = 0, 80 do assert.equal(0, labels[i]) end
   end)

   it("raises on a malformed example", function()
      assert.has_error(function() sudoku.encode{ puzzle = "12" } end)
      assert.has_error(function() sudoku.encode("not a table") end)
   end)
end)

describe("sudoku.decode", function()
   it("inverts encode for inputs and labels", function()
      local inputs, labels = sudoku.encode(EASY)
      assert.equal(EASY.puzzle, sudoku.decode(inputs))
      assert.equal(EASY.solution, sudoku.decode(labels))
   end)

   it("accepts a 1-based Lua table of tokens", function()
      local _, labels = sudoku.encode(EASY)
      local t = {}
      for i = 0, 80 do t[i + 1] = labels[i] end
      assert.equal(EASY.solution, sudoku.decode(t))
   end)
end)

describe("sudoku.solve", function()
   it("solves known hard puzzles uniquely and reports branching", function()
      for _, p in ipairs(HARD) do
         local sol, count, branches = sudoku.solve(p[1])
         assert.equal(p[2], sol)
         assert.equal(1, count)
         assert.is_true(branches > 0)
      end
   end)

   it("stops counting at the limit on a puzzle with many solutions", function()
      local sol, count = sudoku.solve(("."):rep(81))
      assert.equal(2, count)
      assert.is_true(sudoku.is_valid(sol))
      local _, c5 = sudoku.solve(("."):rep(81), { limit = 5 })
      assert.equal(5, c5)
   end)

   it("returns nil for a contradictory puzzle", function()
      local bad = "11" .. ("."):rep(79)
      local sol, count = sudoku.solve(bad)
      assert.is_nil(sol)
      assert.equal(0, count)
   end)

   it("solves 4x4 and 6x6 boards", function()
      local s4 = sudoku.new{ size = 4 }
      local sol, count = s4.solve("1.3..41..1..4..1")
      assert.equal(1, count)
      assert.equal("1234341221434321", sol)
      local s6 = sudoku.new{ size = 6 }
      local p = s6.generate(1, { blanks = 20, seed = 3 })[1]
      assert.equal(p.solution, (s6.solve(p.puzzle)))
   end)
end)

describe("sudoku.count_solutions", function()
   it("counts 1 for a unique puzzle and 0 for a broken one", function()
      assert.equal(1, (sudoku.count_solutions(HARD[2][1])))
      assert.equal(0, (sudoku.count_solutions("11" .. ("."):rep(79))))
   end)
end)

describe("sudoku.is_valid", function()
   it("accepts a solution and checks it against the givens", function()
      assert.is_true(sudoku.is_valid(EASY.solution))
      assert.is_true(sudoku.is_valid(EASY.solution, EASY.puzzle))
      assert.is_false(sudoku.is_valid(HARD[1][2], EASY.puzzle))
   end)

   it("rejects repeated digits and blanks", function()
      local swapped = EASY.solution:sub(1, 1) .. EASY.solution:sub(1, 1) .. EASY.solution:sub(3)
      local ok, why = sudoku.is_valid(swapped)
      assert.is_false(ok)
      assert.truthy(why:find("repeats"))
      assert.is_false(sudoku.is_valid(EASY.puzzle))
   end)
end)

describe("sudoku.generate", function()
   it("makes puzzles with unique solutions and the requested givens", function()
      local ex = assert(sudoku.generate(30, { givens = 35, seed = 7 }))
      assert.equal(30, #ex)
      for _, e in ipairs(ex) do
         assert.equal(35, e.givens)
         assert.equal(81 - 35, select(2, e.puzzle:gsub("%.", "")))
         assert.is_true(sudoku.is_valid(e.solution, e.puzzle))
         local count = sudoku.count_solutions(e.puzzle)
         assert.equal(1, count)
      end
   end)

   it("draws blanks from a range", function()
      local ex = assert(sudoku.generate(20, { blanks = { 40, 50 }, seed = 2 }))
      local seen = {}
      for _, e in ipairs(ex) do
         local blanks = 81 - e.givens
         assert.is_true(blanks >= 40 and blanks <= 50)
         seen[blanks] = true
      end
      assert.is_true(next(seen, next(seen)) ~= nil)          -- more than one value
   end)

   it("controls difficulty through the solver branch count", function()
      local easy = assert(sudoku.generate(10, { givens = 26, max_branches = 0, seed = 4 }))
      for _, e in ipairs(easy) do
         assert.equal(0, e.branches)
         assert.equal(0, select(2, sudoku.count_solutions(e.puzzle)))
      end
      local hard = assert(sudoku.generate(5, { givens = 24, min_branches = 4, seed = 4 }))
      for _, e in ipairs(hard) do
         assert.is_true(e.branches >= 4)
         assert.equal(e.branches, select(2, sudoku.count_solutions(e.puzzle)))
         assert.equal(1, (sudoku.count_solutions(e.puzzle)))
      end
   end)

   it("is deterministic for a seed and differs across seeds", function()
      local a = sudoku.generate(3, { seed = 11 })
      local b = sudoku.generate(3, { seed = 11 })
      local c = sudoku.generate(3, { seed = 12 })
      assert.same(a, b)
      assert.are_not.same(a, c)
   end)

   it("takes an rng object", function()
      local a = sudoku.generate(2, { rng = util.rng(5) })
      local b = sudoku.generate(2, { rng = util.rng(5) })
      assert.same(a, b)
   end)

   it("works for 4x4 and 6x6 boards", function()
      for _, n in ipairs({ 4, 6 }) do
         local s = sudoku.new{ size = n }
         for _, e in ipairs(assert(s.generate(10, { blanks = math.floor(n * n / 2), seed = n }))) do
            assert.is_true(s.is_valid(e.solution, e.puzzle))
            assert.equal(1, (s.count_solutions(e.puzzle)))
         end
      end
   end)

   it("returns nil and a message when the constraints cannot be met", function()
      local ex, err = sudoku.generate(1, { givens = 20, max_branches = 0, max_tries = 3, seed = 1 })
      assert.is_nil(ex)
      assert.truthy(err:find("after 3 tries"))
   end)
end)

describe("sudoku.augment", function()
   it("keeps the puzzle and solution consistent", function()
      local rng = util.rng(3)
      for _ = 1, 20 do
         local e = sudoku.augment(EASY, rng)
         assert.is_true(sudoku.is_valid(e.solution, e.puzzle))
         assert.equal(1, (sudoku.count_solutions(e.puzzle)))
      end
   end)

   it("is deterministic under an rng seed", function()
      local a = sudoku.augment(EASY, util.rng(9))
      local b = sudoku.augment(EASY, util.rng(9))
      assert.same(a, b)
      assert.are_not.equal(EASY.puzzle, a.puzzle)
   end)

   it("transposes about half of the time", function()
      local rng, t = util.rng(1), 0
      for _ = 1, 200 do
         local _, aug = sudoku.augment(EASY, rng)
         if aug.transpose then t = t + 1 end
      end
      assert.is_true(t > 60 and t < 140)
   end)

   it("permutes bands, stacks and rows/columns inside them", function()
      local _, aug = sudoku.augment(EASY, util.rng(2))
      for k = 0, 2 do
         local band = math.floor(aug.row_perm[k * 3 + 1] / 3)
         for j = 2, 3 do assert.equal(band, math.floor(aug.row_perm[k * 3 + j] / 3)) end
      end
      assert.equal(0, aug.digits[0])
   end)

   it("raises without an rng", function()
      assert.has_error(function() sudoku.augment(EASY, "x") end)
   end)
end)

describe("sudoku.inverse", function()
   it("undoes augment on strings and tokens", function()
      local rng = util.rng(17)
      for _ = 1, 20 do
         local e, aug = sudoku.augment(EASY, rng)
         assert.equal(EASY.solution, sudoku.inverse(aug, e.solution))
         assert.equal(EASY.puzzle, sudoku.inverse(aug, e.puzzle))
         local _, labels = sudoku.encode(e)
         assert.equal(EASY.solution, sudoku.decode(sudoku.inverse(aug, labels)))
      end
   end)

   it("undoes augment on 6x6 boards (no transpose with 2x3 boxes)", function()
      local s6 = sudoku.new{ size = 6 }
      local p = s6.generate(1, { blanks = 18, seed = 8 })[1]
      local rng = util.rng(4)
      for _ = 1, 10 do
         local e, aug = s6.augment(p, rng)
         assert.is_false(aug.transpose)
         assert.is_true(s6.is_valid(e.solution, e.puzzle))
         assert.equal(p.solution, s6.inverse(aug, e.solution))
      end
   end)
end)

describe("sudoku.load", function()
   it("reads puzzle,solution CSV rows and keeps extra columns", function()
      local ex = assert(sudoku.load(FIXTURE))
      assert.equal(4, #ex)
      assert.equal(HARD[1][1], ex[1].puzzle)
      assert.equal(HARD[1][2], ex[1].solution)
      assert.equal(22, ex[1].clues)
      assert.equal(502, ex[1].solver_guesses)
   end)

   it("honours limit", function()
      assert.equal(2, #assert(sudoku.load(FIXTURE, { limit = 2 })))
   end)

   it("returns nil and an error for a missing or malformed file", function()
      local ex, err = sudoku.load("spec/fixtures/does_not_exist.csv")
      assert.is_nil(ex)
      assert.is_string(err)
      ex, err = sudoku.load("spec/fixtures/sudoku_bad.csv")
      assert.is_nil(ex)
      assert.truthy(err:find("line 2"))
   end)
end)

describe("sudoku.evaluate", function()
   it("reports exact and cell accuracy", function()
      local examples = { EASY, { puzzle = HARD[1][1], solution = HARD[1][2] } }
      local wrong = HARD[1][2]:sub(1, 79) .. HARD[1][2]:sub(81, 81) .. HARD[1][2]:sub(80, 80)
      local r = sudoku.evaluate({ EASY.solution, wrong }, examples)
      assert.equal(2, r.n)
      assert.equal(0.5, r.exact_accuracy)
      assert.near((81 + 79) / 162, r.accuracy, 1e-12)
      assert.equal(0.5, r.valid_accuracy)
   end)

   it("accepts token predictions", function()
      local _, labels = sudoku.encode(EASY)
      assert.equal(1, sudoku.evaluate({ labels }, { EASY }).exact_accuracy)
   end)

   it("raises when the lists differ in length", function()
      assert.has_error(function() sudoku.evaluate({}, { EASY }) end)
   end)
end)

describe("sudoku.render", function()
   it("draws box lines and plain cells without colour", function()
      local s = sudoku.render(EASY, nil, { color = false })
      assert.is_false(has_ansi(s))
      assert.truthy(s:find("|", 1, true))
      assert.truthy(s:find("------+-------+------", 1, true))
      assert.equal(11, select(2, s:gsub("\n", "")) + 1)
   end)

   it("marks filled cells and wrong cells in plain mode", function()
      local wrong = "9" .. EASY.solution:sub(2)
      local s = sudoku.render(EASY, wrong, { color = false })
      assert.truthy(s:find("9*", 1, true))
      assert.truthy(s:find("'", 1, true))
   end)

   it("uses bold givens and red wrong cells in colour mode", function()
      local wrong = "9" .. EASY.solution:sub(2)
      local s = sudoku.render(EASY, wrong)
      assert.truthy(s:find(util.ansi.bold, 1, true))
      assert.truthy(s:find(util.ansi.red, 1, true))
      local plain = sudoku.new{ color = false }
      assert.is_false(has_ansi(plain.render(EASY, wrong)))
   end)
end)

describe("sudoku.dataset", function()
   it("builds an hrm.data.Dataset by default", function()
      local ds = assert(sudoku.dataset{ examples = { EASY }, num_aug = 2, seed = 1 })
      assert.equal(3, ds:size())
      assert.equal(1, ds:groups())
   end)

   it("builds CSR arrays with one group per puzzle", function()
      local d = sudoku.dataset{ arrays = true, examples = { EASY, { puzzle = HARD[1][1], solution = HARD[1][2] } }, num_aug = 3, seed = 1 }
      assert.equal(8, d.n)
      assert.equal(8, d.n_puzzles)
      assert.equal(2, d.n_groups)
      assert.equal(81, d.seq_len)
      assert.equal(11, d.vocab_size)
      assert.equal(1, d.num_puzzle_identifiers)
      assert.equal(0, d.group_indices[0])
      assert.equal(4, d.group_indices[1])
      assert.equal(8, d.group_indices[2])
      for p = 0, 8 do assert.equal(p, d.puzzle_indices[p]) end
      for p = 0, 7 do assert.equal(0, d.puzzle_identifiers[p]) end
      assert.equal(EASY.solution, sudoku.decode(d.labels))
      assert.equal(HARD[1][1], sudoku.decode(d.inputs + 4 * 81))
   end)

   it("loads from a path and reports load errors", function()
      local d = assert(sudoku.dataset{ arrays = true, path = FIXTURE })
      assert.equal(4, d.n)
      local none, err = sudoku.dataset{ path = "spec/fixtures/nope.csv" }
      assert.is_nil(none)
      assert.is_string(err)
      assert.has_error(function() sudoku.dataset{} end)
   end)
end)
