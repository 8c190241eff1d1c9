-- spec/tasks_maze_spec.lua: the Maze task adapter (tasks/maze.lua).
-- Uses the 7x7 fixture spec/fixtures/maze_7x7.csv (leading/trailing spaces are data) and
-- generated mazes; nothing here reads ../shared.

local ffi = require "ffi"
local maze = require "tasks.maze"
local util = require "tasks.util"

local FIXTURE = "spec/fixtures/maze_7x7.csv"
local m7 = maze.new{ size = 7 }

local Q1 = " S  #  " .. " ## # #" .. "    #  " .. "# ##  #" .. "    # G" .. " #     " .. "   ##  "
local A1 = "oS  #  " .. "o## # #" .. "oo  #  " .. "#o##  #" .. " ooo#oG" .. " # ooo " .. "   ##  "
-- the other shortest path: through (5,6) instead of (4,5)
local B1 = "oS  #  " .. "o## # #" .. "oo  #  " .. "#o##  #" .. " ooo# G" .. " # oooo" .. "   ##  "

local function has_ansi(s) return s:find("\27[", 1, true) ~= nil end

describe("maze adapter", function()
   it("describes the 30x30 reference task", function()
      assert.equal("maze", maze.name)
      assert.equal(6, maze.vocab_size)
      assert.equal(900, maze.seq_len)
      assert.equal(0, maze.pad_id)
      assert.equal(0, maze.ignore_label_id)
   end)
end)

describe("maze.new", function()
   it("makes other sizes", function()
      assert.equal(49, m7.seq_len)
      assert.equal(6, m7.vocab_size)
      assert.has_error(function() maze.new{ size = 1 } end)
   end)
end)

describe("maze.encode", function()
   it("maps '# SGo' to tokens 1..5", function()
      local inputs, labels = m7.encode{ question = Q1, answer = A1 }
      assert.equal(2, inputs[0])                              -- ' '
      assert.equal(3, inputs[1])                              -- 'S'
      assert.equal(1, inputs[4])                              -- '#'
      assert.equal(4, inputs[34])                             -- 'G'
      assert.equal(5, labels[0])                              -- 'o'
   end)

   it("fills caller-provided arrays and pads labels without an answer", function()
      local bi, bl = ffi.new("uint8_t[98]"), ffi.new("uint8_t[98]", 7)
      m7.encode({ question = Q1 }, bi + 49, bl + 49)
      assert.equal(3, bi[50])
      assert.equal(7, bl[48])
      for i = 49, 97 do assert.equal(0, bl[i]) end
   end)

   it("raises on a wrong length or character", function()
      assert.has_error(function() m7.encode{ question = Q1:sub(2) } end)
      assert.has_error(function() m7.encode{ question = "x" .. Q1:sub(2) } end)
   end)
end)

describe("maze.decode", function()
   it("inverts encode, keeping edge spaces", function()
      local inputs, labels = m7.encode{ question = Q1, answer = A1 }
      assert.equal(Q1, m7.decode(inputs))
      assert.equal(A1, m7.decode(labels))
   end)
end)

describe("maze.load", function()
   it("reads question,answer,path_length without stripping spaces", function()
      local ex = assert(m7.load(FIXTURE))
      assert.equal(2, #ex)
      assert.equal(Q1, ex[1].question)
      assert.equal(A1, ex[1].answer)
      assert.equal(13, ex[1].path_length)
      assert.equal(11, ex[2].path_length)
      assert.equal(49, #ex[2].answer)                        -- CRLF line: only \r removed
   end)

   it("returns nil and an error for a missing file or a size mismatch", function()
      local ex, err = m7.load("spec/fixtures/nope.csv")
      assert.is_nil(ex)
      assert.is_string(err)
      ex, err = maze.load(FIXTURE)                            -- 30x30 adapter, 7x7 data
      assert.is_nil(ex)
      assert.truthy(err:find("expected 900"))
   end)
end)

describe("maze.shortest_distance", function()
   it("returns the BFS distance in moves", function()
      local ex = assert(m7.load(FIXTURE))
      for _, e in ipairs(ex) do assert.equal(e.path_length, m7.shortest_distance(e.question)) end
   end)
end)

describe("maze.check_path", function()
   it("accepts the label and another shortest path", function()
      assert.is_true(m7.check_path(Q1, A1))
      assert.is_true(m7.check_path(Q1, B1))
   end)

   it("rejects broken, long, wall-crossing and edited paths", function()
      local gap = "oS  #  " .. "o## # #" .. " o  #  " .. "#o##  #" .. " ooo#oG" .. " # ooo " .. "   ##  "
      assert.is_false(m7.check_path(Q1, gap))                 -- one cell short, disconnected
      local extra = A1:sub(1, 43) .. "o" .. A1:sub(45)         -- an extra path cell
      assert.is_false(m7.check_path(Q1, extra))
      local wall = A1:sub(1, 4) .. "o" .. A1:sub(6)            -- path on a wall
      assert.is_false(m7.check_path(Q1, wall))
      local moved = A1:gsub("S", " ", 1)
      assert.is_false(m7.check_path(Q1, moved))
      local dangling = "oS  #  " .. "o## # #" .. "oo  #  " .. "#o##  #" .. " oo #oG" .. " # ooo " .. "o  ##  "
      assert.is_false(m7.check_path(Q1, dangling))            -- right count, not connected
   end)
end)

describe("maze.evaluate", function()
   it("scores exact match and any valid shortest path separately", function()
      local ex = assert(m7.load(FIXTURE))
      local r = m7.evaluate({ B1, ex[2].answer }, ex)
      assert.equal(2, r.n)
      assert.equal(0.5, r.exact_accuracy)
      assert.equal(1, r.shortest_path_accuracy)
      assert.near((49 + 49 - 2) / 98, r.accuracy, 1e-12)
   end)

   it("accepts token predictions", function()
      local ex = assert(m7.load(FIXTURE))
      local _, labels = m7.encode(ex[1])
      local r = m7.evaluate({ labels }, { ex[1] })
      assert.equal(1, r.exact_accuracy)
   end)
end)

describe("maze.generate", function()
   it("makes 30x30 mazes whose label is a shortest path of at least min_path moves", function()
      local ex = assert(maze.generate(8, { seed = 3 }))
      for _, e in ipairs(ex) do
         assert.equal(900, #e.question)
         assert.is_true(e.path_length >= 109)
         assert.equal(e.path_length, maze.shortest_distance(e.question))
         assert.is_true(maze.check_path(e.question, e.answer))
         assert.equal(1, select(2, e.question:gsub("S", "")))
         assert.equal(1, select(2, e.question:gsub("G", "")))
      end
   end)

   it("respects min_path and max_path on other sizes", function()
      local m15 = maze.new{ size = 15 }
      local ex = assert(m15.generate(10, { min_path = 20, max_path = 25, seed = 1 }))
      for _, e in ipairs(ex) do
         assert.is_true(e.path_length >= 20 and e.path_length <= 25)
         assert.is_true(m15.check_path(e.question, e.answer))
      end
   end)

   it("is deterministic for a seed", function()
      assert.same(maze.generate(2, { seed = 9 }), maze.generate(2, { seed = 9 }))
      assert.are_not.same(maze.generate(1, { seed = 9 }), maze.generate(1, { seed = 10 }))
   end)

   it("returns nil and a message for an impossible path length", function()
      local ex, err = m7.generate(1, { min_path = 100, max_tries = 2 })
      assert.is_nil(ex)
      assert.is_string(err)
   end)
end)

describe("maze.augment", function()
   it("applies one of the 8 dihedral transforms deterministically", function()
      local e = { question = Q1, answer = A1 }
      local seen = {}
      local rng = util.rng(5)
      for _ = 1, 64 do
         local a, aug = m7.augment(e, rng)
         seen[aug.tid] = a.question
         assert.is_true(m7.check_path(a.question, a.answer))
      end
      for tid = 0, 7 do assert.is_string(seen[tid]) end
      assert.equal(Q1, seen[0])
      local x1 = m7.augment(e, util.rng(1))
      local x2 = m7.augment(e, util.rng(1))
      assert.same(x1, x2)
   end)

   it("matches numpy's rot90 (counter-clockwise) for tid 1", function()
      local q = "S" .. (" "):rep(5) .. "G" .. (" "):rep(42)    -- S top-left, G top-right
      local r = m7.transform({ question = q }, 1).question
      assert.equal("G", r:sub(1, 1))                          -- top-right -> top-left
      assert.equal("S", r:sub(43, 43))                        -- top-left -> bottom-left
   end)
end)

describe("maze.inverse", function()
   it("undoes every transform on strings and tokens", function()
      for tid = 0, 7 do
         local a = m7.transform({ question = Q1, answer = A1 }, tid)
         assert.equal(A1, m7.inverse({ tid = tid }, a.answer))
         local _, labels = m7.encode(a)
         assert.equal(A1, m7.decode(m7.inverse({ tid = tid }, labels)))
      end
   end)
end)

describe("maze.render", function()
   it("draws plain characters without colour", function()
      local s = m7.render({ question = Q1, answer = A1 }, nil, { color = false, solution = true })
      assert.is_false(has_ansi(s))
      assert.equal(A1:sub(1, 7), s:sub(1, 7))
   end)

   it("marks cells that differ from the label only when the path is invalid", function()
      local e = { question = Q1, answer = A1 }
      local other = m7.render(e, B1, { color = false })
      assert.is_nil(other:find("x", 1, true))
      local wall = A1:sub(1, 43) .. "o" .. A1:sub(45)
      local bad = m7.render(e, wall, { color = false })
      assert.truthy(bad:find("x", 1, true))
      assert.is_true(has_ansi(m7.render(e, wall)))
   end)
end)

describe("maze.dataset", function()
   it("builds CSR arrays, with 8 dihedral variants per group when aug is set", function()
      local d = assert(m7.dataset{ arrays = true, path = FIXTURE, aug = true })
      assert.equal(16, d.n)
      assert.equal(2, d.n_groups)
      assert.equal(8, d.group_indices[1])
      assert.equal(16, d.puzzle_indices[16])
      assert.equal(A1, m7.decode(d.labels))
      local plain = m7.dataset{ arrays = true, examples = assert(m7.load(FIXTURE)) }
      assert.equal(2, plain.n)
      assert.equal(1, plain.num_puzzle_identifiers)
   end)
end)
