-- tasks/template.lua: a complete, commented task adapter to copy when adding a puzzle type.
-- The example task is "reverse": the input is a row of L digits, the label is the same row
-- reversed. Copy this file (and tasks/util.lua) to tasks/<yourtask>.lua, rename, and replace
-- the task-specific parts marked "TASK". See tasks/README.md for the protocol.
-- Invariants every adapter keeps: fields name/vocab_size/seq_len/pad_id/ignore_label_id;
-- encode writes exactly seq_len tokens per array; misuse raises error(msg, 2); runtime
-- failures (missing file, bad data) return nil, err; no globals; no `require "hrm"`.

local ffi = require "ffi"
local util = require "tasks.util"

local format = string.format

-- TASK: the token layout. Keep PAD = 0 and make ignore_label_id a token that never occurs in
-- real labels (here 0 = PAD), so every real cell is supervised, as in the reference tasks.
local PAD = 0
local DIGIT0 = 1                                              -- digit d -> token d + 1

local function new(opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("template.new: opts must be a table", 2) end
   local L = opts.length or 16                                 -- TASK: variant parameters
   if type(L) ~= "number" or L < 1 or L ~= math.floor(L) then
      error("template.new: length must be a positive integer", 2)
   end
   local color_default = opts.color ~= false

   -- The adapter is a plain table of fields and functions (called with '.', not ':').
   local A = {
      name = "reverse",
      vocab_size = 11,                                         -- PAD + 10 digits
      seq_len = L,
      pad_id = PAD, ignore_label_id = PAD, blank_identifier_id = 0,
   }
   A.new = new                                                 -- variants: require(...).new{...}

   -- TASK: the task value. Here an example is { input = "0123...", output = "...3210" }.
   local function check_digits(s, what)
      if type(s) ~= "string" or #s ~= L or s:find("[^0-9]") then
         return nil, format("%s must be %d digits", what, L)
      end
      return true
   end

   -- encode(example [, inputs, labels]) -> inputs, labels : uint8_t[seq_len] each.
   -- When the caller passes arrays (pointers into a big dataset buffer), fill them in place.
   function A.encode(example, inputs, labels)
      if type(example) ~= "table" then error("template.encode: example must be a table", 2) end
      local ok, err = check_digits(example.input, "input")
      if not ok then error("template.encode: " .. err, 2) end
      inputs = inputs or ffi.new("uint8_t[?]", L)
      labels = labels or ffi.new("uint8_t[?]", L)
      for i = 0, L - 1 do inputs[i] = example.input:byte(i + 1) - 48 + DIGIT0 end
      if example.output ~= nil then
         ok, err = check_digits(example.output, "output")
         if not ok then error("template.encode: " .. err, 2) end
         for i = 0, L - 1 do labels[i] = example.output:byte(i + 1) - 48 + DIGIT0 end
      else
         ffi.fill(labels, L, PAD)                              -- unknown label: all ignored
      end
      return inputs, labels
   end

   -- decode(tokens) -> task value (FFI arrays are 0-based, Lua tables 1-based).
   function A.decode(tokens)
      local t = util.token_reader(tokens, L, "template.decode")
      local out = {}
      for i = 0, L - 1 do
         local v = t[i] - DIGIT0
         out[i + 1] = (v >= 0 and v <= 9) and tostring(v) or "?"
      end
      return table.concat(out)
   end

   -- example(s) -> the example of a puzzle string (what task:solve(model, "0123...") reads).
   function A.example(s) return { input = s } end

   -- task:solve(model, puzzles [, opts]) -> results: encode, model:solve, decode (and check,
   -- when the task defines check(example, prediction) -> true | false, reason).
   function A.solve(_, model, puzzles, sopts) return util.solve_with(A, model, puzzles, sopts) end

   -- load(path [, opts]) -> list of examples | nil, err (CSV "input,output"; spaces kept).
   function A.load(path, lopts)
      if type(path) ~= "string" then error("template.load: path must be a string", 2) end
      local header, rows = util.read_csv(path, { limit = lopts and lopts.limit })
      if not header then return nil, rows end
      local ii, oi = util.column_index(header, "input"), util.column_index(header, "output")
      if not ii then return nil, path .. ": no input column" end
      local out = {}
      for _, row in ipairs(rows) do
         local ex = { input = row[ii], output = oi and row[oi] or nil }
         local ok, err = check_digits(ex.input, "input")
         if ok and ex.output then ok, err = check_digits(ex.output, "output") end
         if not ok then return nil, format("%s: line %d: %s", path, row.lineno, err) end
         out[#out + 1] = ex
      end
      return out
   end

   -- generate(n [, opts]) -> list of labelled examples. Take opts.rng or opts.seed so runs
   -- are reproducible (util.rng is a small deterministic generator).
   function A.generate(n, gopts)
      if type(n) ~= "number" or n < 0 then error("template.generate: n must be a non-negative number", 2) end
      gopts = gopts or {}
      local rng = gopts.rng and util.as_rng(gopts.rng, "template.generate") or util.rng(gopts.seed or 1)
      local out = {}
      for k = 1, n do
         local d = {}
         for i = 1, L do d[i] = tostring(rng:random(10) - 1) end
         local s = table.concat(d)
         out[k] = { input = s, output = s:reverse() }
      end
      return out
   end

   -- augment(example, rng) -> example', aug ; inverse(aug, prediction) -> original frame.
   -- TASK: use only transforms the task is invariant under. Reversal commutes with relabelling
   -- digits, so a digit permutation is a valid augmentation here.
   local function relabel(s, map)
      return (s:gsub("%d", function(c) return tostring(map[tonumber(c)]) end))
   end

   function A.augment(example, rng)
      if type(example) ~= "table" then error("template.augment: example must be a table", 2) end
      rng = util.as_rng(rng, "template.augment")
      local perm, map, inv = util.permutation(10, rng), {}, {}
      for d = 0, 9 do
         map[d] = perm[d + 1] - 1
         inv[map[d]] = d
      end
      local out = { input = relabel(example.input, map) }
      if example.output then out.output = relabel(example.output, map) end
      return out, { map = map, inv = inv }
   end

   function A.inverse(aug, prediction)
      if type(aug) ~= "table" or not aug.inv then error("template.inverse: bad aug", 2) end
      if type(prediction) ~= "string" then prediction = A.decode(prediction) end
      return relabel(prediction, aug.inv)
   end

   -- evaluate(predictions, examples) -> table of metrics (exact_accuracy, accuracy, n).
   function A.evaluate(predictions, examples)
      if type(predictions) ~= "table" or type(examples) ~= "table" then
         error("template.evaluate: predictions and examples must be lists", 2)
      end
      if #predictions ~= #examples then error("template.evaluate: lists differ in length", 2) end
      local exact, cells = 0, 0
      for i, ex in ipairs(examples) do
         local p = predictions[i]
         if type(p) ~= "string" then p = A.decode(p) end
         local same = 0
         for k = 1, L do
            if p:byte(k) == ex.output:byte(k) then same = same + 1 end
         end
         cells = cells + same
         if same == L then exact = exact + 1 end
      end
      local n = #examples
      return { n = n, exact_accuracy = n > 0 and exact / n or 0, accuracy = n > 0 and cells / (n * L) or 0 }
   end

   -- render(example [, prediction [, opts]]) -> string for the terminal (opts.color = false
   -- gives plain text; wrong cells are marked).
   function A.render(example, prediction, ropts)
      if type(example) ~= "table" then error("template.render: example must be a table", 2) end
      local color = color_default
      if ropts and ropts.color ~= nil then color = ropts.color end
      local lines = { "input  " .. example.input }
      if example.output then lines[#lines + 1] = "target " .. example.output end
      if prediction ~= nil then
         if type(prediction) ~= "string" then prediction = A.decode(prediction) end
         local cells = {}
         for k = 1, L do
            local c = prediction:sub(k, k)
            local wrong = example.output and c ~= example.output:sub(k, k)
            cells[k] = wrong and (color and util.paint(c, util.ansi.red, true) or "*") or c
         end
         lines[#lines + 1] = "pred   " .. table.concat(cells)
      end
      return table.concat(lines, "\n")
   end

   -- dataset{ examples = list | path = csv, num_aug = 0, seed } -> arrays | nil, err.
   -- Groups of puzzles of examples, laid out by util.build_arrays in the reference's CSR
   -- layout (HRM_SPEC §5.1). One group per original example, holding it and its augmentations.
   function A.dataset(dopts)
      if type(dopts) ~= "table" then error("template.dataset: expected an options table", 2) end
      local examples = dopts.examples
      if examples == nil then
         local err
         examples, err = A.load(dopts.path)
         if not examples then return nil, err end
      end
      local rng = util.rng(dopts.seed or 0)
      local groups = {}
      for i, ex in ipairs(examples) do
         local group = { { identifier = 0, examples = { ex } } }
         for _ = 1, dopts.num_aug or 0 do
            group[#group + 1] = { identifier = 0, examples = { (A.augment(ex, rng)) } }
         end
         groups[i] = group
      end
      return util.finish_dataset(util.build_arrays(A, groups, { num_puzzle_identifiers = 1 }), dopts)
   end

   return A
end

return new()
