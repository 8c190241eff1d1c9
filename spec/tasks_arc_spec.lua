-- spec/tasks_arc_spec.lua: the ARC task adapter (tasks/arc.lua).
-- Uses tiny JSON fixtures in spec/fixtures/ (arc_tiny_challenges/solutions.json, arc_task.json);
-- nothing here reads ../shared.

local ffi = require "ffi"
local arc = require "tasks.arc"
local util = require "tasks.util"

local CHALLENGES = "spec/fixtures/arc_tiny_challenges.json"

local function has_ansi(s) return s:find("\27[", 1, true) ~= nil end

local function rows_of(g) return arc.rows(g) end

-- numpy rot90 (counter-clockwise) on nested rows, as a reference
local function np_rot90(rows)
   local h, w, out = #rows, #rows[1], {}
   for i = 1, w do
      out[i] = {}
      for j = 1, h do out[i][j] = rows[j][w - i + 1] end
   end
   return out
end

describe("arc adapter", function()
   it("describes the 30x30 canvas task", function()
      assert.equal("arc", arc.name)
      assert.equal(12, arc.vocab_size)
      assert.equal(900, arc.seq_len)
      assert.equal(0, arc.pad_id)
      assert.equal(1, arc.eos_id)
      assert.same({ [0] = 0, 3, 2, 1, 4, 5, 6, 7 }, arc.DIHEDRAL_INVERSE)
   end)
end)

describe("arc.grid and arc.rows", function()
   it("round-trip nested lists", function()
      local rows = { { 1, 2, 3 }, { 4, 5, 6 } }
      local g = arc.grid(rows)
      assert.equal(2, g.h)
      assert.equal(3, g.w)
      assert.same(rows, arc.rows(g))
   end)

   it("raises on ragged rows, bad colours and oversize grids", function()
      assert.has_error(function() arc.grid({ { 1, 2 }, { 3 } }) end)
      assert.has_error(function() arc.grid({ { 10 } }) end)
      local big = {}
      for r = 1, 31 do big[r] = { 0 } end
      assert.has_error(function() arc.grid(big) end)
   end)
end)

describe("arc.encode", function()
   it("offsets colours by 2 and closes the grid with EOS, leaving the corner PAD", function()
      local inputs, labels = arc.encode{ input = { { 1, 2 }, { 3, 4 } }, output = { { 5 } } }
      assert.equal(3, inputs[0])
      assert.equal(4, inputs[1])
      assert.equal(1, inputs[2])                              -- EOS column
      assert.equal(5, inputs[30])
      assert.equal(1, inputs[60])                             -- EOS row
      assert.equal(1, inputs[61])
      assert.equal(0, inputs[62])                             -- corner stays PAD
      assert.equal(7, labels[0])
      assert.equal(1, labels[1])
      assert.equal(1, labels[30])
      assert.equal(0, labels[31])
   end)

   it("places both grids at the same translation offset", function()
      local inputs, labels = arc.encode{ input = { { 1 } }, output = { { 2, 2 } }, pad_r = 3, pad_c = 5 }
      assert.equal(0, inputs[0])
      assert.equal(3, inputs[3 * 30 + 5])
      assert.equal(4, labels[3 * 30 + 5])
      assert.equal(4, labels[3 * 30 + 6])
      assert.equal(1, labels[3 * 30 + 7])
      assert.equal(1, labels[4 * 30 + 5])
   end)

   it("writes no EOS past the canvas edge", function()
      local rows = {}
      for r = 1, 30 do
         rows[r] = {}
         for c = 1, 30 do rows[r][c] = (r + c) % 10 end
      end
      local inputs = arc.encode{ input = rows }
      for i = 0, 899 do assert.is_true(inputs[i] >= 2) end
   end)

   it("fills caller arrays and pads labels without an output", function()
      local bi, bl = ffi.new("uint8_t[1800]"), ffi.new("uint8_t[1800]", 9)
      arc.encode({ input = { { 0 } } }, bi + 900, bl + 900)
      assert.equal(2, bi[900])
      assert.equal(9, bl[899])
      assert.equal(0, bl[900])
   end)

   it("raises when a grid does not fit at its offset", function()
      assert.has_error(function() arc.encode{ input = { { 1, 1 } }, pad_c = 29 } end)
   end)
end)

describe("arc.decode", function()
   it("crops an encoded grid back", function()
      local rows = { { 1, 2, 3 }, { 4, 5, 6 } }
      local inputs = arc.encode{ input = rows }
      assert.same(rows, rows_of(arc.decode(inputs)))
   end)

   it("takes the largest top-left all-colour rectangle", function()
      local t = ffi.new("uint8_t[900]")
      for c = 0, 2 do t[c] = 3 end                             -- row 0: 3 colours
      t[3] = 1
      for c = 0, 1 do t[30 + c] = 4 end                        -- row 1: 2 colours
      t[32] = 0
      local g = arc.decode(t)
      assert.equal(2, g.h)
      assert.equal(2, g.w)
      assert.same({ { 1, 1 }, { 2, 2 } }, rows_of(g))
   end)

   it("returns an empty grid when the first cell is not a colour", function()
      local g = arc.decode(ffi.new("uint8_t[900]"))
      assert.equal(0, g.h * g.w)
   end)
end)

describe("arc.load", function()
   it("reads a challenges file and its sibling solutions", function()
      local tasks = assert(arc.load(CHALLENGES))
      assert.equal(2, #tasks)
      assert.equal("aaaa0001", tasks[1].id)
      assert.equal("training", tasks[1].split)
      assert.equal(2, #tasks[1].train)
      assert.same({ { 0, 3 }, { 0, 0 } }, rows_of(tasks[1].test[1].output))
      assert.same({ { 9, 8, 7 } }, rows_of(tasks[2].test[2].output))
   end)

   it("reads a single-task file and takes the split from options", function()
      local tasks = assert(arc.load("spec/fixtures/arc_task.json", { split = "evaluation" }))
      assert.equal(1, #tasks)
      assert.equal("arc_task", tasks[1].id)
      assert.equal("evaluation", tasks[1].split)
      assert.same({ { 6, 6 } }, rows_of(tasks[1].test[1].output))
   end)

   it("selects ids and honours limit", function()
      assert.equal("bbbb0002", assert(arc.load(CHALLENGES, { ids = { "bbbb0002" } }))[1].id)
      assert.equal(1, #assert(arc.load(CHALLENGES, { limit = 1 })))
   end)

   it("returns nil and an error for missing or malformed files", function()
      local t, err = arc.load("spec/fixtures/nope.json")
      assert.is_nil(t)
      assert.is_string(err)
      t, err = arc.load("spec/fixtures/arc_broken.json")
      assert.is_nil(t)
      assert.truthy(err:find("row 2"))
      t, err = arc.load("spec/fixtures/sudoku_small.csv")
      assert.is_nil(t)
      assert.truthy(err:find("JSON"))
   end)
end)

describe("arc.augment", function()
   it("applies one transform and colour map to every grid of a task, fixing black", function()
      local task = assert(arc.load(CHALLENGES))[1]
      local t, aug = arc.augment(task, util.rng(3))
      assert.equal(0, aug.colors[0])
      assert.equal("aaaa0001_" .. aug.name, t.id)
      assert.truthy(aug.name:match("^t%d_%d%d%d%d%d%d%d%d%d%d$"))
      assert.same(rows_of(arc.transform_grid(task.train[2].output, aug.tid, aug.colors)), rows_of(t.train[2].output))
      assert.same(rows_of(arc.transform_grid(task.test[1].input, aug.tid, aug.colors)), rows_of(t.test[1].input))
   end)

   it("matches numpy for the rotations and reflections", function()
      local rows = { { 1, 2, 3 }, { 4, 5, 6 } }
      local r1 = np_rot90(rows)
      assert.same(r1, rows_of(arc.transform_grid(rows, 1)))
      assert.same(np_rot90(r1), rows_of(arc.transform_grid(rows, 2)))
      assert.same(np_rot90(np_rot90(r1)), rows_of(arc.transform_grid(rows, 3)))
      assert.same({ { 3, 2, 1 }, { 6, 5, 4 } }, rows_of(arc.transform_grid(rows, 4)))
      assert.same({ { 4, 5, 6 }, { 1, 2, 3 } }, rows_of(arc.transform_grid(rows, 5)))
      assert.same({ { 1, 4 }, { 2, 5 }, { 3, 6 } }, rows_of(arc.transform_grid(rows, 6)))
      assert.same({ { 6, 3 }, { 5, 2 }, { 4, 1 } }, rows_of(arc.transform_grid(rows, 7)))
   end)

   it("is deterministic under a seed", function()
      local task = assert(arc.load(CHALLENGES))[2]
      local a, augA = arc.augment(task, util.rng(8))
      local b, augB = arc.augment(task, util.rng(8))
      assert.equal(augA.name, augB.name)
      assert.same(rows_of(a.train[1].input), rows_of(b.train[1].input))
   end)
end)

describe("arc.inverse", function()
   it("undoes every dihedral transform and colour permutation", function()
      local rows = { { 1, 2, 0 }, { 4, 5, 6 } }
      local rng = util.rng(1)
      for tid = 0, 7 do
         local perm = util.permutation(9, rng)
         local colors = { [0] = 0 }
         for c = 1, 9 do colors[c] = perm[c] end
         local aug = arc.make_aug(tid, colors)
         local fwd = arc.transform_grid(rows, tid, colors)
         assert.same(rows, rows_of(arc.inverse(aug, fwd)))
         assert.same(rows, rows_of(arc.inverse(aug, (arc.encode{ input = fwd }))))
      end
   end)
end)

describe("arc.variants", function()
   it("de-duplicates augmented variants by grid hash", function()
      local one = { id = "one", train = { { input = arc.grid{ { 3 } }, output = arc.grid{ { 3 } } } }, test = {} }
      local vs = arc.variants(one, { num_aug = 1000, seed = 1 })
      assert.equal(9, #vs)                                    -- 9 colours, 1 geometry
      local black = { id = "black", train = { { input = arc.grid{ { 0 } }, output = arc.grid{ { 0 } } } }, test = {} }
      assert.equal(1, #arc.variants(black, { num_aug = 50, seed = 1 }))
      local names = {}
      for _, v in ipairs(vs) do
         assert.is_nil(names[v.name])
         names[v.name] = true
      end
   end)

   it("stops at num_aug + 1 and names variants <task>_t<tid>_<colour map>", function()
      local task = assert(arc.load(CHALLENGES))[2]
      local vs = arc.variants(task, { num_aug = 10, seed = 2 })
      assert.equal(11, #vs)
      assert.equal("bbbb0002", vs[1].name)
      assert.is_nil(vs[1].aug)
      for i = 2, 11 do assert.truthy(vs[i].name:match("^bbbb0002_t[0-7]_0%d%d%d%d%d%d%d%d%d$")) end
   end)
end)

describe("arc.build", function()
   it("splits evaluation tasks: demonstrations to train, test pairs to test", function()
      local tasks = assert(arc.load(CHALLENGES, { split = "evaluation" }))
      local built = arc.build(tasks, { num_aug = 4, seed = 1 })
      assert.equal(2, #built.train)
      assert.equal(2, #built.test)
      assert.equal(5, #built.train[1])
      assert.equal(2, #built.train[1][1].examples)
      assert.equal(1, #built.test[1][1].examples)
      assert.equal(2, #built.test[2][1].examples)
      assert.equal("<blank>", built.identifiers[0])
      -- the same variant keeps its identifier across splits
      assert.equal(built.train[2][3].identifier, built.test[2][3].identifier)
      assert.equal(built.train[2][3].name, built.identifiers[built.test[2][3].identifier])
      assert.equal(11, built.num_puzzle_identifiers)
   end)

   it("sends every pair of a training task to train", function()
      local tasks = assert(arc.load(CHALLENGES))
      local built = arc.build(tasks, { num_aug = 2, seed = 1 })
      assert.equal(0, #built.test)
      assert.equal(3, #built.train[1][1].examples)
   end)

   it("translates all train examples of a variant but one, and never the test split", function()
      local tasks = assert(arc.load(CHALLENGES, { split = "evaluation" }))
      local built = arc.build(tasks, { num_aug = 20, seed = 3 })
      local moved = 0
      for _, p in ipairs(built.train[1]) do
         local still = 0
         for _, e in ipairs(p.examples) do
            if e.pad_r == 0 and e.pad_c == 0 then still = still + 1 else moved = moved + 1 end
         end
         assert.is_true(still >= 1)
      end
      assert.is_true(moved > 10)
      for _, g in ipairs(built.test) do
         for _, p in ipairs(g) do
            for _, e in ipairs(p.examples) do assert.is_nil(e.pad_r) end
         end
      end
      local flat = arc.build(tasks, { num_aug = 3, seed = 3, translate = false })
      for _, p in ipairs(flat.train[1]) do
         for _, e in ipairs(p.examples) do assert.equal(0, e.pad_r + e.pad_c) end
      end
   end)
end)

describe("arc.dataset", function()
   it("lays the splits out in CSR arrays with one identifier per variant", function()
      local tasks = assert(arc.load(CHALLENGES, { split = "evaluation" }))
      local train, built = arc.dataset{ arrays = true, tasks = tasks, num_aug = 3, seed = 1 }
      assert.equal(2, train.n_groups)
      assert.equal(8, train.n_puzzles)
      assert.equal(4 * 2 + 4 * 1, train.n)
      assert.equal(4, train.group_indices[1])
      assert.equal(2, train.puzzle_indices[1])
      assert.equal(1, train.puzzle_identifiers[0])
      assert.equal(9, train.num_puzzle_identifiers)
      local test = arc.dataset{ arrays = true, built = built, split = "test" }
      assert.equal(4 * 1 + 4 * 2, test.n)
      assert.equal(test.puzzle_identifiers[4], train.puzzle_identifiers[4])
      assert.equal("<blank>", test.identifiers[0])
   end)
end)

describe("arc.evaluate", function()
   local function task_list()
      return assert(arc.load(CHALLENGES, { split = "evaluation" }))
   end

   it("scores perfect predictions from the test arrays as solved", function()
      local test, built = arc.dataset{ arrays = true, tasks = task_list(), split = "test", num_aug = 5, seed = 2 }
      local preds = {}
      for p = 0, test.n_puzzles - 1 do
         for e = test.puzzle_indices[p], test.puzzle_indices[p + 1] - 1 do
            preds[#preds + 1] = { puzzle_identifier = test.puzzle_identifiers[p],
               inputs = test.inputs + e * 900, tokens = test.labels + e * 900, q_halt = 1 }
         end
      end
      preds[#preds + 1] = { puzzle_identifier = 0, tokens = test.labels }   -- padding row
      local r = arc.evaluate(preds, built)
      assert.equal(2, r.n_tasks)
      assert.equal(3, r.n_test_inputs)
      assert.equal(1, r.pass_at_1)
      assert.equal(1, r.arc_prize_score)
      assert.equal(0, r.unmatched)
      assert.equal(6, r.ranked.aaaa0001[1][1].count)
   end)

   it("votes by count, then mean sigmoid(q_halt), then first appearance", function()
      local tasks = task_list()
      local A, B, C = { { 0, 3 }, { 0, 0 } }, { { 3, 0 }, { 0, 0 } }, { { 3, 3 }, { 3, 3 } }
      local function row(g, q) return { task = "aaaa0001", index = 1, prediction = g, q_halt = q } end
      -- A and B tie on count; B has the higher mean q; C is confident but alone
      local r = arc.evaluate({ row(A, 0), row(B, 2), row(A, 0), row(B, 2), row(C, 10) }, tasks)
      local ranked = r.ranked.aaaa0001[1]
      assert.same(B, rows_of(ranked[1].grid))
      assert.same(A, rows_of(ranked[2].grid))
      assert.same(C, rows_of(ranked[3].grid))
      assert.near(1 / (1 + math.exp(-2)), ranked[1].q, 1e-12)
      assert.is_false(r.per_task.aaaa0001.solved[1])
      assert.is_true(r.per_task.aaaa0001.solved[2])
      -- a full tie keeps the first grid seen
      local t = arc.evaluate({ row(C, 1), row(A, 1) }, tasks)
      assert.same(C, rows_of(t.ranked.aaaa0001[1][1].grid))
   end)

   it("gives all-or-nothing task credit and ARC Prize fractional credit", function()
      local tasks = task_list()
      local rows = {
         { task = "aaaa0001", index = 1, prediction = { { 0, 3 }, { 0, 0 } } },
         { task = "bbbb0002", index = 1, prediction = { { 6, 5, 4 } } },
         { task = "bbbb0002", index = 2, prediction = { { 7, 8, 9 } } },
      }
      local r = arc.evaluate(rows, tasks)
      assert.equal(0.5, r.pass_at_1)                          -- bbbb0002 misses one input
      assert.equal(0.75, r.score_at[1])                       -- (1 + 1/2) / 2
      assert.near(2 / 3, r.input_pass_at[1], 1e-12)
      assert.equal(0.5, r.per_task.bbbb0002.fraction[2])
   end)

   it("de-augments predictions and matches test inputs by hash", function()
      local tasks = task_list()
      local aug = arc.make_aug(1, { [0] = 0, 2, 3, 4, 5, 6, 7, 8, 9, 1 })
      local inp = arc.transform_grid(tasks[2].test[2].input, aug.tid, aug.colors)
      local out = arc.transform_grid(tasks[2].test[2].output, aug.tid, aug.colors)
      local r = arc.evaluate({
         { task = "bbbb0002", aug = aug, inputs = (arc.encode{ input = inp }), tokens = (arc.encode{ input = out }) },
         { task = "bbbb0002", inputs = { { 1, 1 } }, prediction = { { 1 } } },           -- unknown input
      }, tasks)
      assert.equal(0.5, r.per_task.bbbb0002.fraction[1])
      assert.equal(1, r.unmatched)
   end)
end)

describe("arc.submission", function()
   it("writes the top two grids per test input, repeating or zero-filling", function()
      local tasks = assert(arc.load(CHALLENGES, { split = "evaluation" }))
      local r = arc.evaluate({
         { task = "bbbb0002", index = 1, prediction = { { 6, 5, 4 } }, q_halt = 1 },
         { task = "bbbb0002", index = 1, prediction = { { 1 } } },
         { task = "bbbb0002", index = 2, prediction = { { 9, 8, 7 } } },
      }, tasks)
      local sub = arc.submission(r)
      assert.same({ { 6, 5, 4 } }, sub.bbbb0002[1].attempt_1)
      assert.same({ { 1 } }, sub.bbbb0002[1].attempt_2)
      assert.same({ { 9, 8, 7 } }, sub.bbbb0002[2].attempt_2)
      assert.same({ { 0 } }, sub.aaaa0001[1].attempt_1)
      local path = os.tmpname()
      assert.is_true(arc.write_submission(path, r))
      local back = assert(util.read_json(path))
      os.remove(path)
      assert.same(sub, back)
   end)
end)

describe("arc.render", function()
   it("shows input, expected and predicted side by side in plain text", function()
      local pair = { input = { { 1, 2 } }, output = { { 3, 4 }, { 5, 6 } } }
      local s = arc.render(pair, { { 3, 4 }, { 5, 0 } }, { color = false })
      assert.is_false(has_ansi(s))
      assert.truthy(s:find("input 1x2", 1, true))
      assert.truthy(s:find("expected 2x2", 1, true))
      assert.truthy(s:find("predicted 2x2 wrong", 1, true))
      assert.truthy(s:find("0!", 1, true))
   end)

   it("uses ANSI 256 background colours by default", function()
      local s = arc.render({ input = { { 1, 2 } } })
      assert.truthy(s:find("\27[48;5;", 1, true))
      assert.is_false(has_ansi(arc.new{ color = false }.render_grid({ { 1 } })))
   end)
end)
