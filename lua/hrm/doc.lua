-- hrm.doc — the API documentation: help(x) in the REPL and docs/api.md, from one set of records.
--
-- The records live in lua/hrm/doc/*.lua, one file per part of the API; each is
-- { path | {paths...}, signature, description, example }. help(x) finds the record of a value
-- (a module, a function, a model, a tensor, a task adapter or one of its variants) or of a
-- name ("tasks.sudoku", "Model:solve", "solve"); M.markdown() writes docs/api.md; M.surface()
-- lists every public module and function, so a spec checks that each has a record and that
-- docs/api.md is what the records give. Does not: parse source comments.
local M = {}

M.parts = {
   { "hrm.doc.core", "The package, tensors and the REPL" },
   { "hrm.doc.model", "Models, configs, optimizers and schedules" },
   { "hrm.doc.nn", "Modules (hrm.nn)" },
   { "hrm.doc.data", "Data and files" },
   { "hrm.doc.train", "Training, progress and plots" },
   { "hrm.doc.tasks", "Task adapters (tasks.*)" },
}
M.tasks = { "sudoku", "maze", "arc", "template", "util" }

local format, concat = string.format, table.concat

-- All records in order, and path -> record.
local all, by_path
local function records()
   if all then return all, by_path end
   all, by_path = {}, {}
   for _, part in ipairs(M.parts) do
      for _, r in ipairs(require(part[1])) do
         r.part = part[1]
         r.paths = type(r[1]) == "table" and r[1] or { r[1] }
         all[#all + 1] = r
         for _, p in ipairs(r.paths) do
            if by_path[p] then error("hrm.doc: two records for " .. p) end
            by_path[p] = r
         end
      end
   end
   return all, by_path
end
M.records = records

local function has_functions(t)
   for _, v in pairs(t) do if type(v) == "function" then return true end end
   return false
end

-- surface() -> list of {path, value, kind = "module" | "function"}, sorted by path: the
-- package, its submodules, the task adapters, and the functions of each (and of the classes
-- they hold, one level down).
function M.surface()
   local hrm = require "hrm"
   local out, seen = {}, {}
   local function walk(path, t, depth)
      if seen[t] then return end
      seen[t] = true
      for k, v in pairs(t) do
         if type(k) == "string" and not k:match("^_") and k ~= "C" then
            if type(v) == "function" then
               out[#out + 1] = { path = path .. "." .. k, value = v, kind = "function" }
            elseif type(v) == "table" and depth < 2 and has_functions(v) then
               walk(path .. "." .. k, v, depth + 1)
            end
         end
      end
   end
   local modules = { { "hrm", hrm } }
   local names = {}
   for k in pairs(getmetatable(hrm).__submodules) do names[#names + 1] = k end
   for k, v in pairs(hrm) do -- submodules loaded with the package (hrm.Tensor)
      if type(v) == "table" and k ~= "C" and has_functions(v) and not getmetatable(hrm).__submodules[k] then
         names[#names + 1] = k
      end
   end
   table.sort(names)
   for _, k in ipairs(names) do modules[#modules + 1] = { "hrm." .. k, hrm[k] } end
   for _, k in ipairs(M.tasks) do modules[#modules + 1] = { "tasks." .. k, require("tasks." .. k) } end
   for _, m in ipairs(modules) do
      out[#out + 1] = { path = m[1], value = m[2], kind = "module" }
   end
   for _, m in ipairs(modules) do walk(m[1], m[2], m[1] == "hrm" and 2 or 0) end
   table.sort(out, function(a, b) return a.path < b.path end)
   return out
end

-- Where a function's code starts: variants of an adapter (sudoku.new{size = 4}) hold other
-- closures of the same code.
local function location(fn)
   local info = debug.getinfo(fn, "S")
   if info.what ~= "Lua" then return nil end
   return info.source .. ":" .. info.linedefined
end

local by_value, by_location
local function index()
   if by_value then return end
   by_value, by_location = {}, {}
   for _, e in ipairs(M.surface()) do
      by_value[e.value] = by_value[e.value] or e.path
      if e.kind == "function" then
         local loc = location(e.value)
         if loc then by_location[loc] = by_location[loc] or e.path end
      end
   end
end

-- The record of a path; task adapters share the protocol's records ("task.encode").
local function record_of(path)
   local _, map = records()
   if map[path] then return map[path], path end
   local fn = path:match("^tasks%.[%w_]+%.([%w_]+)$")
   if fn and map["task." .. fn] then return map["task." .. fn], path end
   return nil
end
M.record_of = record_of

local function path_of_value(x)
   index()
   if by_value[x] then return by_value[x] end
   if type(x) == "function" then
      local loc = location(x)
      return loc and by_location[loc]
   end
   if require("hrm.Tensor").is_tensor(x) then return "hrm.Tensor" end
   if type(x) == "table" then
      local mt = getmetatable(x)
      if mt and by_value[mt] then return by_value[mt] end
      if type(x.encode) == "function" and type(x.decode) == "function" then -- an adapter variant
         local p = path_of_value(x.encode)
         if p then return (p:gsub("%.encode$", "")) end
      end
   end
   return nil
end

-- A name as typed: exact, under hrm., with ':' for '.', or the one path ending in it.
local function path_of_name(s)
   local _, map = records()
   local dotted = s:gsub(":", ".")
   for _, p in ipairs({ s, dotted, "hrm." .. dotted, "tasks." .. dotted }) do
      if record_of(p) then return p end
   end
   -- "Tensor:add" -> paths ending in ".add" that pass through "Tensor" (hrm.Tensor.methods.add)
   local qualifier, last = dotted:match("^(.*)%.([^.]+)$")
   last = last or dotted
   local found = {}
   for path in pairs(map) do
      if path:sub(-#last - 1) == "." .. last and (not qualifier or path:find(qualifier, 1, true)) then
         found[#found + 1] = path
      end
   end
   table.sort(found)
   if #found == 1 then return found[1] end
   return nil, found
end

local function indent(text, pad)
   return pad .. text:gsub("\n", "\n" .. pad)
end

-- Lines of at most `width` characters.
local function wrap(text, width)
   local lines, line = {}, ""
   for word in text:gmatch("%S+") do
      if #line > 0 and #line + 1 + #word > width then
         lines[#lines + 1] = line
         line = word
      else
         line = #line > 0 and line .. " " .. word or word
      end
   end
   if #line > 0 then lines[#lines + 1] = line end
   return concat(lines, "\n")
end

-- The members of a module that have records, for its help text.
local function members(path)
   local out = {}
   for _, e in ipairs(M.surface()) do
      local rest = e.path:sub(#path + 2)
      if e.path:sub(1, #path + 1) == path .. "." and e.kind == "function" and not rest:find(".", 1, true) then
         out[#out + 1] = rest
      end
   end
   return out
end

-- text(path) -> the help text of a documented path.
function M.text(path)
   local r = record_of(path)
   local parts = { r[2] .. "   [" .. path .. "]", "", wrap(r[3], 92) }
   if r[4] then parts[#parts + 1] = "\nExample:\n" .. indent(r[4], "   ") end
   local m = members(path)
   if #m > 0 then
      parts[#parts + 1] = "\nFunctions: " .. wrap(concat(m, ", "), 80):gsub("\n", "\n           ")
      parts[#parts + 1] = format('help "%s.NAME" shows one.', path)
   end
   return concat(parts, "\n")
end

local OVERVIEW = [[
help(x) shows the signature, a description and an example of x: a module (help(hrm.Model)),
a function (help(hrm.Tensor.zeros), help(model.solve)), a value (a model, a tensor, a task
adapter) or a name (help "tasks.sudoku", help "Model:solve", help "decode").

Modules: hrm, %s,
         tasks.%s
The same text is docs/api.md. traceback() shows the stack of the last error at the prompt.]]

-- help([x]) prints the documentation of x and returns nothing; unknown x prints what is known.
function M.help(x)
   local text
   if x == nil then
      local subs = {}
      for _, e in ipairs(M.surface()) do
         if e.kind == "module" and e.path:match("^hrm%.") then subs[#subs + 1] = e.path end
      end
      text = format(OVERVIEW, wrap(concat(subs, ", "), 80):gsub("\n", "\n         "), concat(M.tasks, ", tasks."))
   else
      local path, candidates
      if type(x) == "string" then path, candidates = path_of_name(x) else path = path_of_value(x) end
      if path and record_of(path) then
         text = M.text(path)
      elseif candidates and #candidates > 1 then
         text = format("help: %q names several things: %s", x, concat(candidates, ", "))
      elseif type(x) == "string" then
         text = format("help: nothing documented is named %q; help() lists the modules", x)
      else
         text = format("help: no documentation for this %s%s; help() lists the modules", type(x),
                       path and " (" .. path .. ")" or "")
      end
   end
   io.write(text, "\n")
   io.flush()
end

-- markdown() -> the text of docs/api.md.
function M.markdown()
   local recs = records()
   local out = { "# hrm API reference\n",
      "Generated from `lua/hrm/doc/*.lua` by `hrm scripts/gen_api_doc.lua > docs/api.md`; the",
      "REPL's `help(x)` shows the same records. `spec/doc_spec.lua` fails when this file and the",
      "records differ, or when a public function has no record.\n" }
   for _, part in ipairs(M.parts) do
      out[#out + 1] = "## " .. part[2] .. "\n"
      for _, r in ipairs(recs) do
         if r.part == part[1] then
            out[#out + 1] = format("### `%s`\n", r[2])
            local names = {}
            for _, p in ipairs(r.paths) do names[#names + 1] = "`" .. p .. "`" end
            out[#out + 1] = concat(names, ", ") .. "\n"
            out[#out + 1] = wrap(r[3], 96) .. "\n"
            if r[4] then out[#out + 1] = "```lua\n" .. r[4] .. "\n```\n" end
         end
      end
   end
   return concat(out, "\n")
end

return M
