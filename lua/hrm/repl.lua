-- hrm.repl — what the interactive prompt of `hrm` does with a line (the C host reads lines).
--
-- eval(source) compiles the input as an expression first (so `x*2` prints 42; a leading `=`
-- is optional), then as statements (`x = f(); x[5]` prints x[5]); an unfinished statement
-- returns "incomplete" so the host reads more lines. Input runs uncompiled (jit.off), so Ctrl-C
-- stops even a tight loop. Values print pretty: tables to a depth limit, tensors summarised. An
-- error prints its message only; traceback() prints the last error's stack (without the REPL's
-- own frames).
-- complete(text) lists completions of globals, table fields, methods (tensors too) and the
-- submodules of `hrm` not loaded yet.
local M = {}

M.max_depth = 2
M.max_items = 30

local function is_tensor(v)
   return require("hrm.Tensor").is_tensor(v)
end

local function key_text(k)
   if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
   return "[" .. (type(k) == "string" and string.format("%q", k) or tostring(k)) .. "]"
end

-- A readable rendering of any value: tables sorted by key, nested to max_depth.
function M.pretty(v, depth, seen)
   depth, seen = depth or 0, seen or {}
   local tv = type(v)
   if tv == "string" then return string.format("%q", v) end
   if tv ~= "table" then return tostring(v) end
   local mt = getmetatable(v)
   if type(mt) == "table" and mt.__tostring then return tostring(v) end
   if seen[v] then return "<cycle>" end
   if depth >= M.max_depth then return "{...}" end
   seen[v] = true
   local keys = {}
   for k in pairs(v) do keys[#keys + 1] = k end
   table.sort(keys, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      if ta == "number" or ta == "string" then return a < b end
      return tostring(a) < tostring(b)
   end)
   local parts, n = {}, #v
   for i, k in ipairs(keys) do
      if i > M.max_items then
         parts[#parts + 1] = string.format("... (%d more)", #keys - M.max_items)
         break
      end
      local val = M.pretty(v[k], depth + 1, seen)
      if type(k) == "number" and k >= 1 and k <= n and k == math.floor(k) then
         parts[#parts + 1] = val
      else
         parts[#parts + 1] = key_text(k) .. " = " .. val
      end
   end
   seen[v] = nil
   local one = "{" .. table.concat(parts, ", ") .. "}"
   if #one <= 80 then return one end
   local pad = string.rep("   ", depth + 1)
   return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. "\n" .. string.rep("   ", depth) .. "}"
end

local function report(msg)
   io.stderr:write(tostring(msg), "\n")
   io.stderr:flush()
end

-- "ok", "incomplete" or "error"; prints results and errors itself.
function M.eval(source)
   source = source:gsub("^%s*=", "")
   local fn, err_expr = loadstring("return " .. source, "=stdin")
   local err
   if not fn then
      fn, err = loadstring(source, "=stdin")
   end
   if not fn then -- "x = f(); x[5]": statements, then an expression whose value prints
      local head, tail = source:match("^(.*);([^;]*)$")
      if head then fn = loadstring(head .. "; return " .. tail, "=stdin") end
   end
   if not fn then
      if err:match("'<eof>'$") or err_expr:match("'<eof>'$") then return "incomplete" end
      report(err)
      return "error"
   end
   if jit then jit.off(fn, true) end -- interpreted, so one Ctrl-C stops a loop typed here
   -- The interactive host lets Ctrl-C stop only the typed chunk, not this report of its end.
   local interruptible = M._interruptible or function() end
   local message
   interruptible(true)
   local results = { xpcall(fn, function(e)
      interruptible(false)
      message = type(e) == "string" and e or M.pretty(e)
      local trace = debug.traceback(message, 2)
      M.last_traceback = trace:gsub("\n%s*%[C%]: in function 'xpcall'.*$", "")
      return message
   end) }
   interruptible(false)
   if not results[1] then
      report(message)
      return "error"
   end
   local n = table.maxn(results)
   if n > 1 then
      local out = {}
      for i = 2, n do out[#out + 1] = M.pretty(results[i]) end
      io.write(table.concat(out, "\t"), "\n")
      io.flush()
   end
   return "ok"
end

-- Completions of `text`: "na" -> globals, "a.b.c" -> fields of a.b, "t:me" -> methods of t.
function M.complete(text)
   local prefix, sep, partial = text:match("^(.-)([%.:])([%w_]*)$")
   local scope
   if not prefix then
      partial, prefix, sep, scope = text, "", "", _G
   else
      scope = _G
      for part in prefix:gmatch("[^%.:]+") do
         if type(scope) ~= "table" then return {} end
         local ok, nxt = pcall(function() return scope[part] end)
         if not ok then return {} end
         scope = nxt
      end
   end
   local seen, out = {}, {}
   local function add_keys(t)
      if type(t) ~= "table" then return end
      for k in pairs(t) do
         if type(k) == "string" and not seen[k] and k:sub(1, #partial) == partial and k:sub(1, 1) ~= "_" then
            seen[k] = true
            out[#out + 1] = prefix .. sep .. k
         end
      end
   end
   if is_tensor(scope) then
      add_keys(require("hrm.Tensor").methods)
   elseif type(scope) == "table" then
      add_keys(scope)
      local mt = getmetatable(scope)
      if type(mt) == "table" then
         if type(mt.__index) == "table" then add_keys(mt.__index) end
         if type(mt.__submodules) == "table" then add_keys(mt.__submodules) end -- hrm's lazy ones
      end
   elseif type(scope) == "string" then
      add_keys(string)
   end
   table.sort(out)
   return out
end

-- traceback(): the stack of the last error at the prompt.
function M.traceback()
   io.write((M.last_traceback or "no error yet"), "\n")
   io.flush()
end

-- The session's start: the banner, and the globals `help` and `traceback` (the REPL only).
function M.banner()
   local hrm = require "hrm"
   if rawget(_G, "help") == nil then rawset(_G, "help", hrm.help) end
   if rawget(_G, "traceback") == nil then rawset(_G, "traceback", M.traceback) end
   io.write(string.format("hrm %s  (%s, %d threads)  --  the global `hrm` is loaded; help() for help, " ..
                          "traceback() after an error; Ctrl-D quits\n",
                          hrm.version(), jit and jit.version or "Lua", hrm.get_threads()))
end

return M
