-- hrm.json — a small strict JSON encoder and decoder for run files (config.json, metrics.jsonl).
--
-- encode(v [, {indent = n, nonfinite = "error"|"null", sort = true}]) writes objects with keys
-- in sorted order, so equal tables give equal text; numbers must be finite unless nonfinite =
-- "null". decode(text [, {null = value}]) accepts exactly RFC 8259 JSON (no comments, no
-- trailing commas, no leading zeros) and returns nil, "json: <what> at line L column C" on
-- anything else. Decoded arrays and objects carry a marker metatable so that empty ones
-- re-encode as [] and {} respectively. Does not: stream, or validate UTF-8 beyond escapes.
local M = {}

local byte, char, sub, find, format = string.byte, string.char, string.sub, string.find, string.format
local concat, floor, huge = table.concat, math.floor, math.huge

-- Sentinels and markers.
M.null = setmetatable({}, { __tostring = function() return "null" end, __name = "json.null" })
local array_mt = { __name = "json.array" }
local object_mt = { __name = "json.object" }

-- json.array(t) / json.object(t): mark a table so that it encodes as [] / {} even when empty.
function M.array(t) return setmetatable(t or {}, array_mt) end
function M.object(t) return setmetatable(t or {}, object_mt) end
function M.is_array(t) return getmetatable(t) == array_mt end

-- ---- encode -------------------------------------------------------------------------------------

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return ESCAPES[c] or format("\\u%04x", byte(c))
   end) .. '"'
end
M.quote = quote

local function number_text(v, path, opts)
   if v ~= v or v == huge or v == -huge then
      if opts.nonfinite == "null" then return "null" end
      error(format("json.encode: cannot encode the non-finite number %s at %s\n---> HINT: pass " ..
                   "{nonfinite = \"null\"} to write null", tostring(v), path), 0)
   end
   if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
   local s = format("%.14g", v)
   if tonumber(s) ~= v then s = format("%.17g", v) end
   return s
end

-- An array is a table marked with json.array or whose keys are exactly 1..n (n >= 1).
local function array_length(t)
   local mt = getmetatable(t)
   if mt == object_mt then return nil end
   local n = #t
   local count = 0
   for _ in pairs(t) do count = count + 1 end
   if mt == array_mt then
      if count ~= n then return nil end
      return n
   end
   if n == 0 or count ~= n then return nil end
   return n
end

local function encode_value(v, out, opts, path, depth, seen, indent)
   local tv = type(v)
   if v == nil or v == M.null then
      out[#out + 1] = "null"
   elseif tv == "boolean" then
      out[#out + 1] = v and "true" or "false"
   elseif tv == "number" then
      out[#out + 1] = number_text(v, path, opts)
   elseif tv == "string" then
      out[#out + 1] = quote(v)
   elseif tv == "cdata" and tonumber(v) ~= nil then
      out[#out + 1] = number_text(tonumber(v), path, opts)
   elseif tv == "table" then
      if seen[v] then error("json.encode: a table refers to itself at " .. path, 0) end
      if depth > 200 then error("json.encode: nesting deeper than 200 at " .. path, 0) end
      seen[v] = true
      local step = opts.indent
      local nl, inner = "", ""
      if step then
         nl = "\n" .. string.rep(" ", indent)
         inner = "\n" .. string.rep(" ", indent + step)
      end
      local n = array_length(v)
      if n then
         if n == 0 then
            out[#out + 1] = "[]"
         else
            out[#out + 1] = "["
            for i = 1, n do
               if i > 1 then out[#out + 1] = "," end
               out[#out + 1] = inner
               encode_value(v[i], out, opts, path .. "[" .. i .. "]", depth + 1, seen, indent + (step or 0))
            end
            out[#out + 1] = nl .. "]"
         end
      else
         local keys = {}
         for k in pairs(v) do
            local tk = type(k)
            if tk == "number" then
               if k ~= floor(k) then
                  error(format("json.encode: non-integer key %s at %s", tostring(k), path), 0)
               end
               keys[#keys + 1] = { format("%d", k), k }
            elseif tk == "string" then
               keys[#keys + 1] = { k, k }
            else
               error(format("json.encode: cannot encode a %s key at %s", tk, path), 0)
            end
         end
         table.sort(keys, function(a, b) return a[1] < b[1] end)
         if #keys == 0 then
            out[#out + 1] = "{}"
         else
            out[#out + 1] = "{"
            for i, k in ipairs(keys) do
               if i > 1 then out[#out + 1] = "," end
               out[#out + 1] = inner
               out[#out + 1] = quote(k[1])
               out[#out + 1] = step and ": " or ":"
               encode_value(v[k[2]], out, opts, path .. "." .. k[1], depth + 1, seen, indent + (step or 0))
            end
            out[#out + 1] = nl .. "}"
         end
      end
      seen[v] = nil
   else
      error(format("json.encode: cannot encode a %s at %s", tv, path), 0)
   end
end

-- encode(value [, opts]) -> string. Misuse (functions, cycles, NaN) raises an error.
function M.encode(v, opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("json.encode: bad argument #2 (opts): expected a table", 2) end
   if opts.indent ~= nil and (type(opts.indent) ~= "number" or opts.indent < 0) then
      error("json.encode: option 'indent' must be a number >= 0", 2)
   end
   local out = {}
   local ok, err = pcall(encode_value, v, out, opts, "$", 0, {}, 0)
   if not ok then error(err, 2) end
   return concat(out)
end

-- ---- decode -------------------------------------------------------------------------------------

local function position(text, pos)
   local line, col = 1, 1
   local i = 1
   while true do
      local nl = find(text, "\n", i, true)
      if not nl or nl >= pos then break end
      line = line + 1
      i = nl + 1
   end
   col = pos - i + 1
   return line, col
end

local function utf8_encode(cp)
   if cp < 0x80 then return char(cp) end
   if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
   if cp < 0x10000 then
      return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
   end
   return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
               0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local ESC_CHAR = { [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f", [110] = "\n",
                   [114] = "\r", [116] = "\t" }

local Decoder = {}
Decoder.__index = Decoder

function Decoder:fail(msg, pos)
   local line, col = position(self.text, pos or self.pos)
   error({ json = format("json: %s at line %d column %d", msg, line, col) }, 0)
end

function Decoder:skip()
   local _, e = find(self.text, "^[ \t\r\n]*", self.pos)
   self.pos = e + 1
end

function Decoder:string()
   local text, pos = self.text, self.pos + 1          -- after the opening quote
   local parts = {}
   while true do
      local s, e = find(text, '^[^"\\%c]+', pos)
      if s then
         parts[#parts + 1] = sub(text, s, e)
         pos = e + 1
      end
      local c = byte(text, pos)
      if c == nil then self:fail("unterminated string", self.pos) end
      if c == 34 then
         self.pos = pos + 1
         return concat(parts)
      elseif c == 92 then
         local e2 = byte(text, pos + 1)
         if e2 == 117 then
            local hex = sub(text, pos + 2, pos + 5)
            if not hex:match("^%x%x%x%x$") then self:fail("bad \\u escape", pos) end
            local cp = tonumber(hex, 16)
            pos = pos + 6
            if cp >= 0xD800 and cp <= 0xDBFF then
               local lo = sub(text, pos, pos + 5)
               if not lo:match("^\\u[dD][c-fC-F]%x%x$") then self:fail("unpaired surrogate in \\u escape", pos) end
               cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(sub(lo, 3), 16) - 0xDC00)
               pos = pos + 6
            elseif cp >= 0xDC00 and cp <= 0xDFFF then
               self:fail("unpaired surrogate in \\u escape", pos - 6)
            end
            parts[#parts + 1] = utf8_encode(cp)
         else
            local ch = ESC_CHAR[e2]
            if not ch then self:fail("bad escape in string", pos) end
            parts[#parts + 1] = ch
            pos = pos + 2
         end
      else
         self:fail("control character in string", pos)
      end
   end
end

function Decoder:number()
   local text, pos = self.text, self.pos
   local s, e = find(text, "^-?%d+", pos)
   if not s then self:fail("bad number", pos) end
   local int = sub(text, s, e)
   if int:match("^-?0%d") then self:fail("leading zero in number", pos) end
   local _, e2 = find(text, "^%.%d+", e + 1)
   if e2 then e = e2 elseif byte(text, e + 1) == 46 then self:fail("bad number", e + 1) end
   local _, e3 = find(text, "^[eE][+-]?%d+", e + 1)
   if e3 then e = e3 elseif byte(text, e + 1) == 101 or byte(text, e + 1) == 69 then
      self:fail("bad number", e + 1)
   end
   self.pos = e + 1
   return tonumber(sub(text, s, e))
end

local LITERALS = { t = { "true", true }, f = { "false", false }, n = { "null" } }

function Decoder:value(depth)
   if depth > 500 then self:fail("nesting deeper than 500") end
   self:skip()
   local text, pos = self.text, self.pos
   local c = sub(text, pos, pos)
   if c == "{" then
      local obj = setmetatable({}, object_mt)
      self.pos = pos + 1
      self:skip()
      if sub(text, self.pos, self.pos) == "}" then
         self.pos = self.pos + 1
         return obj
      end
      while true do
         self:skip()
         if sub(text, self.pos, self.pos) ~= '"' then self:fail("expected a string key") end
         local k = self:string()
         self:skip()
         if sub(text, self.pos, self.pos) ~= ":" then self:fail("expected ':' after a key") end
         self.pos = self.pos + 1
         local v = self:value(depth + 1)
         if v == nil then v = self.null end
         obj[k] = v
         self:skip()
         local d = sub(text, self.pos, self.pos)
         self.pos = self.pos + 1
         if d == "}" then return obj end
         if d ~= "," then self:fail("expected ',' or '}' in an object", self.pos - 1) end
      end
   elseif c == "[" then
      local arr = setmetatable({}, array_mt)
      self.pos = pos + 1
      self:skip()
      if sub(text, self.pos, self.pos) == "]" then
         self.pos = self.pos + 1
         return arr
      end
      local n = 0
      while true do
         local v = self:value(depth + 1)
         n = n + 1
         if v == nil then v = self.null end
         arr[n] = v
         self:skip()
         local d = sub(text, self.pos, self.pos)
         self.pos = self.pos + 1
         if d == "]" then return arr end
         if d ~= "," then self:fail("expected ',' or ']' in an array", self.pos - 1) end
      end
   elseif c == '"' then
      return self:string()
   elseif c == "-" or c:match("%d") then
      return self:number()
   elseif LITERALS[c] then
      local lit = LITERALS[c]
      if sub(text, pos, pos + #lit[1] - 1) ~= lit[1] then self:fail("unexpected character '" .. c .. "'") end
      self.pos = pos + #lit[1]
      if lit[1] == "null" then return self.null end
      return lit[2]
   elseif c == "" then
      self:fail("unexpected end of input")
   else
      self:fail("unexpected character '" .. c .. "'")
   end
end

-- decode(text [, {null = value}]) -> value | nil, err. JSON null becomes json.null (or opts.null).
function M.decode(text, opts)
   if type(text) ~= "string" then
      error("json.decode: bad argument #1 (text): expected a string, got " .. type(text), 2)
   end
   opts = opts or {}
   local null = M.null
   if opts.null ~= nil then null = opts.null end
   local d = setmetatable({ text = text, pos = 1, null = null }, Decoder)
   local ok, res = pcall(function()
      local v = d:value(0)
      d:skip()
      if d.pos <= #text then d:fail("trailing characters after the value") end
      return v
   end)
   if ok then return res end
   if type(res) == "table" and res.json then return nil, res.json end
   error(res, 0)
end

-- read(path) -> value | nil, err ; write(path, value [, opts]) -> true | nil, err
function M.read(path)
   local f, err = io.open(path, "rb")
   if not f then return nil, err end
   local text = f:read("*a")
   f:close()
   local v, derr = M.decode(text)
   if derr then return nil, path .. ": " .. derr end
   return v
end

function M.write(path, v, opts)
   local text = M.encode(v, opts) .. "\n"
   local tmp = path .. ".tmp"
   local f, err = io.open(tmp, "wb")
   if not f then return nil, err end
   local ok, werr = f:write(text)
   local cok, cerr = f:close()  -- a full disk may only show when the buffer is flushed
   if not ok or not cok then os.remove(tmp) return nil, tostring(werr or cerr) end
   local rok, rerr = os.rename(tmp, path)
   if not rok then os.remove(tmp) return nil, rerr end
   return true
end

return M
