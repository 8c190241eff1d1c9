-- Specs of hrm.doc: every public module and function of hrm, its submodules and the task
-- adapters has a help record; every record names something real; docs/api.md is exactly what
-- the records give (regenerate it with `hrm scripts/gen_api_doc.lua > docs/api.md`); help(x)
-- finds the record of values, variants and names.
local hrm = require "hrm"
local doc = require "hrm.doc"

local function help_text(x)
   local out = {}
   local write = io.write
   io.write = function(...) for _, s in ipairs({ ... }) do out[#out + 1] = tostring(s) end end
   local ok, err = pcall(doc.help, x)
   io.write = write
   assert(ok, err)
   return table.concat(out)
end

-- The value a documented path names, walking from hrm or tasks.* (nil when it is gone).
local function resolve(path)
   local root, rest = path:match("^(tasks%.[%w_]+)(.*)$")
   local v
   if root then v = require(root) else v, rest = hrm, path:match("^hrm(.*)$") end
   for part in rest:gmatch("[^.]+") do
      if type(v) ~= "table" then return nil end
      v = v[part]
   end
   return v
end

describe("hrm.doc.surface", function()
   it("has a record for every public module and function", function()
      local missing = {}
      for _, e in ipairs(doc.surface()) do
         if not doc.record_of(e.path) then missing[#missing + 1] = e.path end
      end
      assert.same({}, missing)
   end)

   it("has no record of something that does not exist", function()
      local _, by_path = doc.records()
      local stale = {}
      for path in pairs(by_path) do
         if not path:match("^task%.") and resolve(path) == nil then stale[#stale + 1] = path end
      end
      assert.same({}, stale)
   end)

   it("covers each protocol record by a function of some adapter", function()
      local _, by_path = doc.records()
      for path in pairs(by_path) do
         local fn = path:match("^task%.(.+)$")
         if fn then
            local found = false
            for _, name in ipairs({ "sudoku", "maze", "arc", "template" }) do
               found = found or type(require("tasks." .. name)[fn]) == "function"
            end
            assert.is_true(found, path)
         end
      end
   end)

   it("gives every record a signature, a description and an example", function()
      for _, r in ipairs(doc.records()) do
         assert.is_string(r[2])
         assert.is_true(#r[3] > 10, r[2])
         assert.is_string(r[4], r[2])
      end
   end)
end)

describe("docs/api.md", function()
   it("is what the records generate", function()
      local f = assert(io.open("docs/api.md", "rb"))
      local text = f:read("*a")
      f:close()
      assert.is_true(text == doc.markdown(),
                     "docs/api.md is out of date: run `build/hrm scripts/gen_api_doc.lua > docs/api.md`")
   end)
end)

describe("hrm.help", function()
   it("shows a module's signature, description, example and functions", function()
      local text = help_text(hrm.Model)
      assert.truthy(text:find("hrm.Model(cfg", 1, true))
      assert.truthy(text:find("Example:", 1, true))
      assert.truthy(text:find("solve", 1, true))
   end)

   it("finds a method through a model value and a name", function()
      local model = hrm.Model(hrm.config.tiny{ vocab_size = 6, seq_len = 4 })
      local by_value = help_text(model.solve)
      assert.truthy(by_value:find("model:solve(inputs", 1, true))
      assert.equal(by_value, help_text("Model:solve"))
      assert.truthy(help_text(model):find("[hrm.Model]", 1, true))
      assert.truthy(by_value:find("a table of B booleans", 1, true)) -- the halting protocol
   end)

   it("documents the task adapters, their variants and the protocol", function()
      local sudoku = require "tasks.sudoku"
      assert.truthy(help_text("tasks.sudoku"):find("N x N Sudoku", 1, true))
      local variant = sudoku.new{ size = 4 }
      assert.truthy(help_text(variant.decode):find("task.decode(tokens)", 1, true))
      assert.truthy(help_text(variant):find("[tasks.sudoku]", 1, true))
      assert.truthy(help_text("tasks.maze.check"):find("shortest S-G path", 1, true))
   end)

   it("finds tensor methods and lists the modules without an argument", function()
      assert.truthy(help_text(hrm.Tensor.zeros(2).add):find("t:add(x)", 1, true))
      assert.truthy(help_text():find("tasks.sudoku", 1, true))
   end)

   it("says so when nothing is documented under a name", function()
      assert.equal('help: nothing documented is named "nosuch"; help() lists the modules\n', help_text("nosuch"))
      assert.truthy(help_text("decode"):find("names several things", 1, true))
   end)
end)
