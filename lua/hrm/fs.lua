-- hrm.fs — the package's file helpers: directories through LuaFileSystem, JSON files through dkjson.
--
-- Directories: exists, is_dir, mkdir_p, list (sorted names), copy_file (through a temporary file).
-- JSON: encode writes object keys in sorted order and every number so that it reads back exactly
-- (dkjson alone writes 14 digits), non-finite numbers as null; decode refuses trailing text;
-- read/write do whole files (write goes through a temporary file and a rename). Decoded arrays
-- keep dkjson's {__jsontype = "array"} mark, so an empty one re-encodes as [].
-- Does not: shell out, or keep any state.
local lfs = require "lfs"
local dkjson = require "dkjson"

local M = {}

local format, floor, huge = string.format, math.floor, math.huge

-- ---- directories ------------------------------------------------------------------------------------

function M.exists(path) return lfs.attributes(path, "mode") ~= nil end
function M.is_dir(path) return lfs.attributes(path, "mode") == "directory" end

-- mkdir_p(dir) -> true | nil, err: the directory and its missing parents.
function M.mkdir_p(dir)
   if M.is_dir(dir) then return true end
   local parent = dir:match("^(.*[^/])/+[^/]+/*$")
   if parent and not M.is_dir(parent) then
      local ok, err = M.mkdir_p(parent)
      if not ok then return nil, err end
   end
   local ok, err = lfs.mkdir(dir)
   if not ok and not M.is_dir(dir) then return nil, "cannot create the directory " .. dir .. ": " .. tostring(err) end
   return true
end

-- list(dir) -> sorted names in dir (no "." or "..") | nil, err
function M.list(dir)
   local ok, iter, state = pcall(lfs.dir, dir)
   if not ok then return nil, tostring(iter) end
   local names = {}
   for name in iter, state do
      if name ~= "." and name ~= ".." then names[#names + 1] = name end
   end
   table.sort(names)
   return names
end

-- copy_file(src, dst) -> true | nil, err: dst appears whole or not at all.
function M.copy_file(src, dst)
   local fi, err = io.open(src, "rb")
   if not fi then return nil, err end
   local tmp = dst .. ".tmp"
   local fo, err2 = io.open(tmp, "wb")
   if not fo then fi:close() return nil, err2 end
   local wok, werr = true, nil
   while wok do
      local chunk = fi:read(1048576)
      if not chunk then break end
      wok, werr = fo:write(chunk)
   end
   fi:close()
   local cok, cerr = fo:close()
   if not wok or not cok then os.remove(tmp) return nil, tostring(werr or cerr) end
   local ok, rerr = os.rename(tmp, dst)
   if not ok then os.remove(tmp) return nil, rerr end
   return true
end

-- ---- JSON -----------------------------------------------------------------------------------------------

M.null = dkjson.null

-- array(t): mark t so that it encodes as [] even when empty.
function M.array(t) return setmetatable(t or {}, { __jsontype = "array" }) end

-- A number dkjson would shorten, as a value that writes itself exactly.
local exact_mt = { __tojson = function(self) return self[1] end }

local function exact(v)
   if v ~= v or v == huge or v == -huge or tonumber(tostring(v)) == v then return v end
   local text = (v == floor(v) and v > -2 ^ 63 and v < 2 ^ 63) and format("%d", v) or format("%.17g", v)
   return setmetatable({ text }, exact_mt)
end

-- A copy of v that dkjson writes exactly, and every string key found in it (keys[k] = true).
local function prepare(v, keys, null_nonfinite, path, depth)
   local tv = type(v)
   if tv == "number" then
      if not null_nonfinite and (v ~= v or v == huge or v == -huge) then
         error(format("json: cannot encode the non-finite number %s at %s", tostring(v), path), 0)
      end
      return exact(v)
   end
   if tv ~= "table" or v == M.null then return v end
   if depth > 100 then error("json: tables nested deeper than 100 at " .. path, 0) end
   local t = {}
   for k, x in pairs(v) do
      if type(k) == "string" then keys[k] = true end
      t[k] = prepare(x, keys, null_nonfinite, path .. "." .. tostring(k), depth + 1)
   end
   return setmetatable(t, getmetatable(v))
end

-- encode(v [, {indent = true, nonfinite = "null", lead = {keys}}]) -> text, with object keys in
-- sorted order after those of `lead`. NaN and infinities raise an error unless nonfinite = "null"
-- writes them as null.
function M.encode(v, opts)
   local keys = {}
   local t = prepare(v, keys, opts and opts.nonfinite == "null", "$", 0)
   local order = {}
   for _, k in ipairs(opts and opts.lead or {}) do keys[k] = nil order[#order + 1] = k end
   local rest = {}
   for k in pairs(keys) do rest[#rest + 1] = k end
   table.sort(rest)
   for _, k in ipairs(rest) do order[#order + 1] = k end
   return dkjson.encode(t, { indent = opts and opts.indent or nil, keyorder = order })
end

-- decode(text) -> value | nil, err ("null" becomes fs.null)
function M.decode(text)
   local v, pos, err = dkjson.decode(text, 1, M.null)
   if err then return nil, err end
   if text:find("%S", pos) then return nil, "unexpected text after the JSON value at character " .. pos end
   return v
end

-- read_json(path) -> value | nil, err
function M.read_json(path)
   local f, err = io.open(path, "rb")
   if not f then return nil, err end
   local text = f:read("*a")
   f:close()
   local v, derr = M.decode(text)
   if derr then return nil, path .. ": " .. derr end
   return v
end

-- write_json(path, v [, {indent = true}]) -> true | nil, err
function M.write_json(path, v, opts)
   local text = M.encode(v, opts) .. "\n"
   local tmp = path .. ".tmp"
   local f, err = io.open(tmp, "wb")
   if not f then return nil, err end
   local ok, werr = f:write(text)
   local cok, cerr = f:close() -- a full disk may only show when the buffer is flushed
   if not ok or not cok then os.remove(tmp) return nil, tostring(werr or cerr) end
   local rok, rerr = os.rename(tmp, path)
   if not rok then os.remove(tmp) return nil, rerr end
   return true
end

return M
