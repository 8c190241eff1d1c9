-- hrm.tensorboard — a TensorBoard event-file writer: scalars, histograms and text, no TensorFlow.
--
-- An event file is a sequence of TFRecords (uint64 length, masked CRC32C of the length, the bytes,
-- masked CRC32C of the bytes), each holding one `Event` protobuf (wall_time, step, and either the
-- file_version "brain.Event:2" or a `Summary` of tagged values), encoded here by hand.
-- tensorboard.open(dir [, {resume_step = N}]) -> writer: a fresh run starts a new file (older
-- event files in dir are removed, as metrics.jsonl is rewritten); resume_step keeps only the events
-- at steps <= N in the existing file and appends there, so a resumed run has no duplicate or
-- out-of-order steps. Every write is flushed, so the file can be read while training runs.
-- Does not: read summaries back for display, or compress.
local ffi = require "ffi"
local bit = require "bit"
local fs = require "hrm.fs"
local clock = require("hrm.progress").clock

local M = {}

local band, bxor, rshift, ror = bit.band, bit.bxor, bit.rshift, bit.ror
local byte, char, concat, format = string.byte, string.char, table.concat, string.format

-- ---- CRC32C (Castagnoli), masked as TFRecord wants it ------------------------------------------------

local CRC_TABLE = {}
for i = 0, 255 do
   local c = i
   for _ = 1, 8 do
      if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0x82F63B78) else c = rshift(c, 1) end
   end
   CRC_TABLE[i] = c
end

-- crc32c(s) -> the CRC as an unsigned number
function M.crc32c(s)
   local c = -1
   for i = 1, #s do c = bxor(rshift(c, 8), CRC_TABLE[band(bxor(c, byte(s, i)), 0xFF)]) end
   return bxor(c, -1) % 2 ^ 32
end

local function masked_crc(s) return (ror(M.crc32c(s), 15) % 2 ^ 32 + 0xa282ead8) % 2 ^ 32 end

local u32, u64, f32, f64 = ffi.new("uint32_t[1]"), ffi.new("uint64_t[1]"), ffi.new("float[1]"), ffi.new("double[1]")
local function le32(v) u32[0] = v return ffi.string(u32, 4) end  -- the hosts hrm runs on are little-endian

-- record(data) -> the TFRecord framing of data
local function record(data)
   u64[0] = #data
   local len = ffi.string(u64, 8)
   return concat({ len, le32(masked_crc(len)), data, le32(masked_crc(data)) })
end

-- ---- protobuf encoding ------------------------------------------------------------------------------

local function varint(n)
   local out = {}
   repeat
      local b = n % 128
      n = (n - b) / 128
      out[#out + 1] = char(n > 0 and b + 128 or b)
   until n == 0
   return concat(out)
end

local function key(field, wire) return varint(field * 8 + wire) end
local function int_field(field, v) return key(field, 0) .. varint(v) end
local function bytes_field(field, s) return key(field, 2) .. varint(#s) .. s end
local function double_field(field, v) f64[0] = v return key(field, 1) .. ffi.string(f64, 8) end
local function float_field(field, v) f32[0] = v return key(field, 5) .. ffi.string(f32, 4) end
local function packed_doubles(field, list)
   local out = {}
   for i, v in ipairs(list) do f64[0] = v out[i] = ffi.string(f64, 8) end
   return bytes_field(field, concat(out))
end

-- Event{wall_time = 1, step = 2, file_version = 3, summary = 5}
local function event(wall_time, step, body) return double_field(1, wall_time) .. int_field(2, step) .. body end

-- Summary.Value{tag = 1, simple_value = 2, histo = 5, tensor = 8, metadata = 9}
local function scalar_value(tag, v) return bytes_field(1, bytes_field(1, tag) .. float_field(2, v)) end

-- HistogramProto{min = 1, max = 2, num = 3, sum = 4, sum_squares = 5, bucket_limit = 6, bucket = 7}
local function histogram_value(tag, counts)
   local limits, buckets, lo, hi, num, sum, sq = {}, {}, nil, nil, 0, 0, 0
   for s, n in ipairs(counts) do
      limits[s], buckets[s] = s, n
      if n > 0 then lo, hi = lo or s, s end
      num, sum, sq = num + n, sum + n * s, sq + n * s * s
   end
   local h = double_field(1, lo or 0) .. double_field(2, hi or 0) .. double_field(3, num) .. double_field(4, sum) ..
             double_field(5, sq) .. packed_doubles(6, limits) .. packed_doubles(7, buckets)
   return bytes_field(1, bytes_field(1, tag) .. bytes_field(5, h))
end

-- Text: a string tensor (TensorProto{dtype = 1: DT_STRING = 7, tensor_shape = 2, string_val = 8})
-- with the text plugin's metadata (SummaryMetadata{plugin_data = 1: {plugin_name = 1}}).
local function text_value(tag, text)
   local tensor = int_field(1, 7) .. bytes_field(2, "") .. bytes_field(8, text)
   local metadata = bytes_field(1, bytes_field(1, "text"))
   return bytes_field(1, bytes_field(1, tag) .. bytes_field(8, tensor) .. bytes_field(9, metadata))
end

-- ---- reading back what this writer wrote (for resume) -------------------------------------------------

local function read_varint(s, pos)
   local n, mul = 0, 1
   while true do
      local b = byte(s, pos)
      if not b then return nil end
      pos = pos + 1
      n = n + (b % 128) * mul
      if b < 128 then return n, pos end
      mul = mul * 128
   end
end

-- The step of an encoded Event (0 when it has none).
local function event_step(data)
   local pos = 1
   while pos <= #data do
      local k, p = read_varint(data, pos)
      if not k then return nil end
      local field, wire = math.floor(k / 8), k % 8
      if wire == 0 then
         local v, q = read_varint(data, p)
         if not v then return nil end
         if field == 2 then return v end
         pos = q
      elseif wire == 1 then pos = p + 8
      elseif wire == 5 then pos = p + 4
      elseif wire == 2 then
         local len, q = read_varint(data, p)
         if not len then return nil end
         pos = q + len
      else return nil end
   end
   return 0
end

-- The records of an event file whose step is <= last_step; reading stops at a damaged or torn record.
local function records_up_to(text, last_step)
   local keep, pos = {}, 1
   while pos + 12 <= #text do
      ffi.copy(u64, text:sub(pos, pos + 7), 8)
      local len = tonumber(u64[0])
      local data = text:sub(pos + 12, pos + 11 + len)
      local tail = text:sub(pos + 12 + len, pos + 15 + len)
      if #data ~= len or #tail ~= 4 or tail ~= le32(masked_crc(data)) then break end
      local step = event_step(data)
      if step == nil then break end
      if step <= last_step then keep[#keep + 1] = text:sub(pos, pos + 15 + len) end
      pos = pos + 16 + len
   end
   return concat(keep)
end

-- ---- the writer ----------------------------------------------------------------------------------------

local Writer = {}
Writer.__index = Writer

local PREFIX = "events.out.tfevents."

local function event_files(dir)
   local names = fs.list(dir) or {}
   local files = {}
   for _, name in ipairs(names) do
      if name:sub(1, #PREFIX) == PREFIX then files[#files + 1] = dir .. "/" .. name end
   end
   return files
end

-- open(dir [, {resume_step = N}]) -> writer | nil, err
function M.open(dir, opts)
   opts = opts or {}
   local files = event_files(dir)
   local path
   if opts.resume_step and #files > 0 then
      for _, p in ipairs(files) do
         local f, err = io.open(p, "rb")
         if not f then return nil, err end
         local kept = records_up_to(f:read("*a"), opts.resume_step)
         f:close()
         local out, werr = io.open(p, "wb")
         if not out then return nil, werr end
         out:write(kept)
         out:close()
      end
      path = files[#files]
   else
      for _, p in ipairs(files) do os.remove(p) end
      path = format("%s/%s%010d.hrm", dir, PREFIX, os.time())
   end
   local f, err = io.open(path, "ab")
   if not f then return nil, "cannot open the TensorBoard event file " .. path .. ": " .. tostring(err) end
   local w = setmetatable({ file = f, path = path, epoch0 = os.time(), clock0 = clock() }, Writer)
   if f:seek("end") == 0 then w:write(event(w:wall_time(), 0, bytes_field(3, "brain.Event:2"))) end
   return w
end

function Writer:wall_time() return self.epoch0 + (clock() - self.clock0) end

function Writer:write(data)
   local ok, err = self.file:write(record(data))
   if ok then ok, err = self.file:flush() end
   return ok, err
end

local function summary(step, wall, values) return event(wall, step, bytes_field(5, concat(values))) end

-- w:scalars(step, {tag = number, ...}) -> true | nil, err: one event with every value (sorted by tag).
function Writer:scalars(step, values)
   local tags = {}
   for tag, v in pairs(values) do if type(v) == "number" then tags[#tags + 1] = tag end end
   table.sort(tags)
   local encoded = {}
   for i, tag in ipairs(tags) do encoded[i] = scalar_value(tag, values[tag]) end
   return self:write(summary(step, self:wall_time(), encoded))
end

-- w:histogram(step, tag, counts) -> true | nil, err: counts[v] = how many times the integer v occurred.
function Writer:histogram(step, tag, counts)
   return self:write(summary(step, self:wall_time(), { histogram_value(tag, counts) }))
end

-- w:text(step, tag, text) -> true | nil, err (Markdown, shown in TensorBoard's Text tab)
function Writer:text(step, tag, text)
   return self:write(summary(step, self:wall_time(), { text_value(tag, text) }))
end

function Writer:close()
   if self.file then self.file:close() self.file = nil end
end

return M
