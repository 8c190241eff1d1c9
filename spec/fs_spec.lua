-- Specs of hrm.fs: JSON through dkjson with sorted keys and exact numbers, strict decoding, and the
-- directory helpers over LuaFileSystem.
local fs = require "hrm.fs"

local root = os.tmpname()
os.remove(root)

describe("hrm.fs.encode", function()
   it("writes object keys in sorted order, after the `lead` keys", function()
      assert.equal('{"a":1,"b":[1,2,3],"c":{"x":true,"y":false}}',
                   fs.encode({ c = { y = false, x = true }, b = { 1, 2, 3 }, a = 1 }))
      assert.equal('{"step":3,"a":1,"z":2}', fs.encode({ z = 2, a = 1, step = 3 }, { lead = { "step" } }))
   end)

   it("writes numbers so that they read back exactly", function()
      for _, v in ipairs({ 1 / 3, 0.1, 2 ^ 53 + 2, -1e-300, 12345678901234567 }) do
         assert.equal(v, fs.decode(fs.encode(v)))
      end
   end)

   it("refuses NaN and infinities unless asked to write null", function()
      assert.has_error(function() fs.encode({ x = 0 / 0 }) end, "json: cannot encode the non-finite number nan at $.x")
      assert.equal('{"x":null}', fs.encode({ x = 1 / 0 }, { nonfinite = "null" }))
   end)

   it("keeps an empty array apart from an empty object through a round trip", function()
      assert.equal("[]", fs.encode(fs.array()))
      assert.equal('{"a":[]}', fs.encode(fs.decode('{"a":[]}')))
   end)
end)

describe("hrm.fs.decode", function()
   it("maps null to fs.null and refuses text after the value", function()
      assert.equal(fs.null, fs.decode('{"a":null}').a)
      local v, err = fs.decode("[1] x")
      assert.is_nil(v)
      assert.equal("unexpected text after the JSON value at character 4", err)
      v, err = fs.decode("{bad")
      assert.is_nil(v)
      assert.truthy(err:find("line 1", 1, true), err)
   end)
end)

describe("hrm.fs directories", function()
   it("makes nested directories, lists them sorted, copies and writes JSON files whole", function()
      assert.is_true(fs.mkdir_p(root .. "/a/b/c"))
      assert.is_true(fs.is_dir(root .. "/a/b/c"))
      assert.is_true(fs.write_json(root .. "/a/z.json", { k = 1 }))
      assert.is_true(fs.copy_file(root .. "/a/z.json", root .. "/a/y.json"))
      assert.same({ "b", "y.json", "z.json" }, fs.list(root .. "/a"))
      assert.same({ k = 1 }, fs.read_json(root .. "/a/y.json"))
      assert.is_false(fs.exists(root .. "/a/z.json.tmp"))
      local ok, err = fs.mkdir_p(root .. "/a/z.json/d")
      assert.is_nil(ok)
      assert.truthy(err:find("cannot create the directory", 1, true), err)
   end)
   teardown(function()
      for _, p in ipairs({ "/a/b/c", "/a/b", "/a/y.json", "/a/z.json", "/a", "" }) do os.remove(root .. p) end
   end)
end)
