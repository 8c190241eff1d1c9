-- Specs of hrm.tensorboard: the CRC32C of TFRecord framing and the resume rule (events after the
-- resumed step are dropped). spec/sh/test_tensorboard.sh reads whole runs back with TensorBoard.
local tb = require "hrm.tensorboard"
local fs = require "hrm.fs"

describe("hrm.tensorboard.crc32c", function()
   it("matches the Castagnoli check value", function()
      assert.equal(0xE3069283, tb.crc32c("123456789"))
      assert.equal(0, tb.crc32c(""))
   end)
end)

describe("hrm.tensorboard.open", function()
   local dir = os.tmpname()
   os.remove(dir)
   assert(fs.mkdir_p(dir))

   local function size(path)
      local f = assert(io.open(path, "rb"))
      local n = f:seek("end")
      f:close()
      return n
   end

   it("appends to one file and, on resume, keeps only the events up to the resumed step", function()
      local w = assert(tb.open(dir))
      local path = w.path
      assert.is_true(w:scalars(1, { ["train/lm_loss"] = 1 }))
      local at1 = size(path)
      assert.is_true(w:scalars(2, { ["train/lm_loss"] = 0.5 }))
      assert.is_true(w:histogram(2, "eval/halt_steps", { 0, 3, 1 }))
      w:close()
      assert.is_true(size(path) > at1)
      w = assert(tb.open(dir, { resume_step = 1 }))
      assert.equal(path, w.path)
      assert.equal(at1, size(path))
      w:close()
      assert.same({ (path:match("[^/]+$")) }, fs.list(dir))
   end)

   it("starts a new file for a fresh run", function()
      local w = assert(tb.open(dir))
      w:close()
      assert.equal(1, #fs.list(dir))
      for _, name in ipairs(fs.list(dir)) do os.remove(dir .. "/" .. name) end
      os.remove(dir)
   end)
end)
