-- Specs of hrm.cli, the option parser (lua-argparse under a table of options) and KEY=VALUE lists
-- the command-line scripts share: flags, values in both forms, lists, positional arguments, the
-- --help text made from the table, and the one-line user errors (unknown option, missing value,
-- bad number) that end with exit status 1.
local cli = require "hrm.cli"

-- Runs f(...) with os.exit, io.stdout and io.stderr replaced -> exit status (nil when f returned),
-- what was written on stderr and what on stdout.
local function run(f, ...)
   local written = { err = {}, out = {} }
   local function sink(into)
      return { write = function(self, ...)
         for _, s in ipairs({ ... }) do into[#into + 1] = tostring(s) end
         return self
      end }
   end
   local real_exit, real_stdout, real_stderr = os.exit, io.stdout, io.stderr
   os.exit = function(code) error({ exit = code }, 0) end
   io.stdout, io.stderr = sink(written.out), sink(written.err)
   local ok, err = pcall(f, ...)
   os.exit, io.stdout, io.stderr = real_exit, real_stdout, real_stderr
   if not ok and type(err) ~= "table" then error(err, 0) end
   return not ok and err.exit or nil, table.concat(written.err), table.concat(written.out)
end

local function spec(extra)
   local s = {
      usage = "test.lua [options]",
      description = "A test program.",
      { "run",
         { "--quiet", "flag", "no output" },
         { "--task NAME", "str", "the task" },
         { "--set KEY=VALUE", "list", "a field (repeatable)" },
      },
      { "numbers",
         { "--steps N", "int", "steps" },
         { "--seed N", "int0", "seed" },
         { "--lr X", "num", "rate" },
         { "--blanks A-B", "range", "blank cells" },
      },
   }
   for k, v in pairs(extra or {}) do s[k] = v end
   return s
end

local function parse(argv, extra) return cli.parse("test.lua", argv, spec(extra)) end

describe("cli.parse", function()
   it("sets flags to true and leaves absent options nil", function()
      local a = parse({ "--quiet" })
      assert.is_true(a.quiet)
      assert.is_nil(a.help)
      assert.is_nil(a.task)
   end)

   it("takes a value from the next argument", function()
      local a = parse({ "--task", "maze", "--steps", "12" })
      assert.equal("maze", a.task)
      assert.equal(12, a.steps)
   end)

   it("takes a value after '=' in the same argument", function()
      local a = parse({ "--task=arc", "--seed=0", "--lr=1e-4" })
      assert.equal("arc", a.task)
      assert.equal(0, a.seed)
      assert.equal(1e-4, a.lr)
   end)

   it("keeps the last value of an option given twice", function()
      assert.equal(7, parse({ "--steps", "3", "--steps=7" }).steps)
   end)

   it("converts ranges to a number or a pair", function()
      assert.equal(30, parse({ "--blanks", "30" }).blanks)
      assert.same({ 20, 40 }, parse({ "--blanks=20-40" }).blanks)
   end)

   it("collects list options in order, empty when not given", function()
      assert.same({}, parse({}).set)
      assert.same({ "a=1", "b=2" }, parse({ "--set", "a=1", "--set=b=2" }).set)
   end)

   it("keeps other arguments as positional when asked", function()
      local a = parse({ "run", "--quiet", "-", "x" }, { positional = true })
      assert.same({ "run", "-", "x" }, a.positional)
   end)

   it("prints the help text made from the spec on -h and --help, status 0", function()
      for _, flag in ipairs({ "-h", "--help" }) do
         local code, err, out = run(parse, { flag })
         assert.equal(0, code)
         assert.equal("", err)
         assert.equal(cli.help(spec()), out)
      end
      local text = cli.help(spec())
      assert.truthy(text:find("^usage: test.lua %[options%]\n\nA test program.\n"))
      for _, line in ipairs({ "run:", "numbers:", "--quiet", "--task NAME", "--set KEY=VALUE", "a field (repeatable)",
                              "--blanks A-B", "-h, --help", "--debug" }) do
         assert.truthy(text:find(line, 1, true), line)
      end
      assert.truthy(text:find("--quiet[^\n]*\n[^\n]*--task", 1), "options in the spec's order")
   end)

   it("rejects an unknown option with status 1 and one line", function()
      local code, err = run(parse, { "--nope" })
      assert.equal(1, code)
      assert.equal("test.lua: unknown option --nope (see --help)\n", err)
   end)

   it("suggests the option meant by a misspelt one", function()
      local _, err = run(parse, { "--stesp", "3" })
      assert.equal("test.lua: unknown option --stesp (did you mean --steps? see --help)\n", err)
   end)

   it("rejects an argument starting with a dash as an unknown option", function()
      local code, err = run(parse, { "-x" }, { positional = true })
      assert.equal(1, code)
      assert.equal("test.lua: unknown option -x (see --help)\n", err)
   end)

   it("rejects a stray argument when there are no positional arguments", function()
      local code, err = run(parse, { "extra" })
      assert.equal(1, code)
      assert.equal("test.lua: unexpected argument 'extra' (see --help)\n", err)
   end)

   it("rejects an option missing its value", function()
      local code, err = run(parse, { "--quiet", "--steps" })
      assert.equal(1, code)
      assert.equal("test.lua: --steps needs a value\n", err)
   end)

   it("rejects a value given to a flag", function()
      local code, err = run(parse, { "--quiet=yes" })
      assert.equal(1, code)
      assert.equal("test.lua: --quiet takes no value\n", err)
   end)

   it("rejects bad numbers with the expected kind in the message", function()
      local cases = {
         { { "--steps", "abc" }, "--steps expects a positive integer, got 'abc'" },
         { { "--steps", "0" }, "--steps expects a positive integer, got '0'" },
         { { "--steps", "1.5" }, "--steps expects a positive integer, got '1.5'" },
         { { "--steps", "-2" }, "--steps expects a positive integer, got '-2'" },
         { { "--seed", "-1" }, "--seed expects a non-negative integer, got '-1'" },
         { { "--lr=-.5" }, "--lr expects a number >= 0, got '-.5'" },
         { { "--lr", "fast" }, "--lr expects a number >= 0, got 'fast'" },
         { { "--lr", "inf" }, "--lr expects a number >= 0, got 'inf'" },
         { { "--blanks", "40-x" }, "--blanks expects a number or a range A-B, got '40-x'" },
      }
      for _, c in ipairs(cases) do
         local code, err = run(parse, c[1])
         assert.equal(1, code)
         assert.equal("test.lua: " .. c[2] .. "\n", err)
      end
   end)

   it("names a reversed range only with strict_ranges", function()
      local _, plain = run(parse, { "--blanks", "40-20" })
      assert.equal("test.lua: --blanks expects a number or a range A-B, got '40-20'\n", plain)
      local _, strict = run(parse, { "--blanks", "40-20" }, { strict_ranges = true })
      assert.equal("test.lua: --blanks expects A-B with A <= B, got '40-20'\n", strict)
   end)
end)

describe("cli.pairs_table", function()
   it("converts numbers, ranges and booleans and keeps other strings", function()
      local t = cli.pairs_table("test.lua", { "n=3", "x=-0.5", "r=2-8", "b=true", "c=false", "s=abc", "e=" }, "gen")
      assert.same({ n = 3, x = -0.5, r = { 2, 8 }, b = true, c = false, s = "abc", e = "" }, t)
   end)

   it("lets a later pair override an earlier one", function()
      assert.same({ k = 2 }, cli.pairs_table("test.lua", { "k=1", "k=2" }, "set"))
   end)

   it("converts only numbers with numbers_only", function()
      local t = cli.pairs_table("test.lua", { "n=3", "r=2-8", "b=true" }, "set", true)
      assert.same({ n = 3, r = "2-8", b = "true" }, t)
   end)

   it("rejects an item without '=' naming the option", function()
      local code, err = run(cli.pairs_table, "test.lua", { "a=1", "oops" }, "set")
      assert.equal(1, code)
      assert.equal("test.lua: --set expects KEY=VALUE, got 'oops'\n", err)
   end)
end)
