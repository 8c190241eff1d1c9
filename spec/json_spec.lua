-- Specs of hrm.json: deterministic encoding, finite numbers, escapes, strict decoding with positions.
local json = require "hrm.json"

describe("hrm.json.encode", function()
   it("writes object keys in sorted order, so equal tables give equal text", function()
      assert.equal('{"a":1,"b":[1,2,3],"c":{"x":true,"y":false}}',
                   json.encode({ c = { y = false, x = true }, b = { 1, 2, 3 }, a = 1 }))
   end)

   it("writes integers without a fraction and other numbers so that they read back exactly", function()
      assert.equal("[0,-3,1e+300,0.1]", json.encode({ 0, -3, 1e300, 0.1 }))
      local v = 1 / 3
      assert.equal(v, json.decode(json.encode(v)))
   end)

   it("escapes quotes, backslashes and control characters", function()
      assert.equal([["a\"b\\c\n\t\u0001"]], json.encode('a"b\\c\n\t\1'))
   end)

   it("refuses NaN and infinities unless asked to write null", function()
      assert.has_error(function() json.encode({ x = 0 / 0 }) end)
      assert.has_error(function() json.encode(math.huge) end)
      assert.equal('{"x":null}', json.encode({ x = 0 / 0 }, { nonfinite = "null" }))
   end)

   it("refuses functions, cycles and mixed keys", function()
      assert.has_error(function() json.encode({ f = print }) end)
      local t = {}
      t.self = t
      assert.has_error(function() json.encode(t) end)
      assert.has_error(function() json.encode({ [true] = 1 }) end)
   end)

   it("keeps empty arrays and objects apart with json.array / json.object", function()
      assert.equal("[]", json.encode(json.array()))
      assert.equal("{}", json.encode({}))
      assert.equal('{"a":[],"o":{}}', json.encode(json.decode('{"o":{},"a":[]}')))
   end)

   it("indents when asked", function()
      assert.equal('{\n  "a": [\n    1\n  ]\n}', json.encode({ a = { 1 } }, { indent = 2 }))
   end)
end)

describe("hrm.json.decode", function()
   it("reads values, nesting, escapes and surrogate pairs", function()
      local v = assert(json.decode(' {"a": [1, 2.5e1, -0.5, {"b": null}], "s": "\\u00e9\\ud83d\\ude00\\n", "t": true} '))
      assert.same({ 1, 25, -0.5 }, { v.a[1], v.a[2], v.a[3] })
      assert.equal(json.null, v.a[4].b)
      assert.equal("é😀\n", v.s)
      assert.is_true(v.t)
   end)

   it("maps null to a chosen value", function()
      assert.same({ x = false }, json.decode('{"x": null}', { null = false }))
   end)

   it("returns nil and an error with line and column for malformed input", function()
      local cases = {
         { '{"a":1,}', "expected a string key at line 1 column 8" },
         { "[01]", "leading zero" },
         { '"abc', "unterminated string" },
         { "[1] x", "trailing characters" },
         { "", "unexpected end of input" },
         { "[1.]", "bad number" },
         { '"\\q"', "bad escape" },
         { '"a\tb"', "control character" },
         { '"\\ud800"', "unpaired surrogate" },
         { '{\n  "a":\n  nul}', "at line 3 column 3" },
         { "// c\n1", "unexpected character '/'" },
      }
      for _, c in ipairs(cases) do
         local v, err = json.decode(c[1])
         assert.is_nil(v)
         assert.truthy(err:find(c[2], 1, true), err)
      end
   end)

   it("raises on a non-string argument", function()
      assert.has_error(function() json.decode(42) end)
   end)

   it("round-trips through read and write", function()
      local p = os.tmpname()
      assert(json.write(p, { n = 3, list = { "x", "y" } }))
      assert.same({ n = 3, list = { "x", "y" } }, json.read(p))
      os.remove(p)
      local v, err = json.read(p)
      assert.is_nil(v)
      assert.is_string(err)
   end)
end)
