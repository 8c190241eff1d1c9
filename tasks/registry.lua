-- tasks/registry.lua — the task adapters a script can name, and loading one by name or path.
--
-- registry.load(name_or_path [, {size = n}]) -> adapter | nil, err: a built-in name below or the
-- path of a Lua file returning an adapter table (tasks/README.md: name, vocab_size, seq_len,
-- encode, decode, dataset, ...); `size` makes a variant through adapter.new{size = n}.
-- registry.names lists the built-in names. Add a task here to make it a built-in one.
-- Does not: build datasets; the hrm package itself knows no task by name.
local M = {}

local BUILTIN = { sudoku = "tasks.sudoku", maze = "tasks.maze", arc = "tasks.arc" }
M.names = { "sudoku", "maze", "arc" }

-- hrm.errors.clean without loading the engine (adapters run under stock luajit)
local function clean(msg) return (tostring(msg):gsub("^[^\n]-:%d+: ", "", 1)) end

function M.load(name, opts)
   if type(name) ~= "string" then error("registry.load: bad argument #1: expected a task name or path", 2) end
   opts = opts or {}
   local adapter
   if BUILTIN[name] then
      adapter = require(BUILTIN[name])
   elseif name:match("%.lua$") or name:find("/", 1, true) then
      local chunk, err = loadfile(name)
      if not chunk then return nil, "cannot load the task adapter: " .. tostring(err) end
      local ok, res = pcall(chunk)
      if not ok then return nil, "the task adapter " .. name .. " failed: " .. tostring(res) end
      adapter = res
   else
      return nil, string.format("unknown task '%s' (use %s, or the path of an adapter .lua file)", name,
                                table.concat(M.names, ", "))
   end
   if type(adapter) ~= "table" then return nil, "the task adapter " .. name .. " did not return a table" end
   if opts.size ~= nil then
      if type(adapter.new) ~= "function" then return nil, "task '" .. name .. "' has no variants (no .new)" end
      local ok, res = pcall(adapter.new, { size = opts.size })
      if not ok then return nil, clean(res) end
      adapter = res
   end
   for _, k in ipairs({ "vocab_size", "seq_len" }) do
      if type(adapter[k]) ~= "number" then return nil, "the task adapter " .. name .. " has no number '" .. k .. "'" end
   end
   for _, k in ipairs({ "encode", "decode", "dataset" }) do
      if type(adapter[k]) ~= "function" then return nil, "the task adapter " .. name .. " has no function '" .. k .. "'" end
   end
   return adapter
end

return M
