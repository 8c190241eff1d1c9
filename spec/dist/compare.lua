-- compare.lua — are two training runs the same run? (spec/dist/test_*.sh)
--
-- usage: hrm spec/dist/compare.lua DIR_A DIR_B [first_step]
-- Every train and eval record of metrics.jsonl from first_step on (default 1): each metric equal
-- to 1e-6 relative; last.hrm: the same step and sampler position, every model tensor (weights,
-- puzzle table) and optimizer moment equal to 1e-5 (|a - b| <= 1e-5 max(1, |a|)), the carries
-- to 1e-4 (recurrent activations: GEMMs over other row counts round differently). A puzzle-table element off by about 2 x its rate is reported as a sign-SGD flip of a
-- near-zero gradient sum (the tolerance is not widened for it). Prints the largest differences;
-- exits 1 on any mismatch.
local hrm = require "hrm"

local a_dir, b_dir, first = arg[1], arg[2], tonumber(arg[3] or "1")
assert(a_dir and b_dir, "usage: compare.lua DIR_A DIR_B [first_step]")
local failures = {}
local function fail(fmt, ...) failures[#failures + 1] = string.format(fmt, ...) end

-- train and eval records by "split/set/step"
local function records(dir)
   local recs = assert(hrm.viz.read_metrics(dir .. "/metrics.jsonl"))
   local t = {}
   for _, r in ipairs(recs) do
      if (r.split == "train" or r.split == "eval") and r.step >= first then
         t[string.format("%s/%s/%d", r.split, r.set or "", r.step)] = r.metrics
      end
   end
   return t
end

local ra, rb = records(a_dir), records(b_dir)
local worst_metric, n_metric = 0, 0
for key, ma in pairs(ra) do
   local mb = rb[key]
   if not mb then fail("%s: missing in %s", key, b_dir) else
      for name, va in pairs(ma) do
         local vb = mb[name]
         if type(va) == "number" then
            local rel = math.abs(va - vb) / math.max(math.abs(va), 1e-30)
            if va == vb then rel = 0 end
            worst_metric, n_metric = math.max(worst_metric, rel), n_metric + 1
            if rel > 1e-6 then fail("%s %s: %.9g vs %.9g (relative %.2g)", key, name, va, vb, rel) end
         end
      end
   end
end
for key in pairs(rb) do if not ra[key] then fail("%s: missing in %s", key, a_dir) end end
print(string.format("metrics: %d values compared, largest relative difference %.3g", n_metric, worst_metric))

local sa = assert(hrm.checkpoint.load(a_dir .. "/last.hrm"))
local sb = assert(hrm.checkpoint.load(b_dir .. "/last.hrm"))
if sa.step ~= sb.step then fail("last.hrm: step %s vs %s", tostring(sa.step), tostring(sb.step)) end
local da, db = sa.data_state or sa.data, sb.data_state or sb.data
if type(da) == "table" and type(da.state) == "function" then da, db = da:state(), db:state() end
for _, k in ipairs({ "seed", "epoch", "index", "draws" }) do
   if type(da) == "table" and da[k] ~= db[k] then fail("sampler %s: %s vs %s", k, tostring(da[k]), tostring(db[k])) end
end

local PUZZLE = "model.inner.puzzle_emb.weights"
local pe_lr = 1e-2
-- Largest |a - b| / max(1, |a|) over two tensors; elements beyond tol (1e-5) are listed.
local function compare(label, ta, tb, tol)
   tol = tol or 1e-5
   local a, b = ta:to("f64"), tb:to("f64")
   if a:numel() ~= b:numel() then fail("%s: %d vs %d elements", label, a:numel(), b:numel()) return 0 end
   local pa, pb = a:data(), b:data()
   local worst, flips = 0, 0
   for i = 0, a:numel() - 1 do
      local d = math.abs(pa[i] - pb[i]) / math.max(1, math.abs(pa[i]))
      if d > tol then
         local moved = math.abs(pa[i] - pb[i])
         if label == PUZZLE and pa[i] ~= 0 and pb[i] ~= 0 and moved > 0.05 * pe_lr and moved < 2.05 * pe_lr then
            flips = flips + 1
            print(string.format("note: %s[%d] moved by a sign flip of a near-zero gradient sum: %.7g vs %.7g",
                                label, i, pa[i], pb[i]))
         else
            fail("%s[%d]: %.9g vs %.9g", label, i, pa[i], pb[i])
         end
      elseif d > worst then worst = d end
   end
   return worst, flips
end

local worst_w, flips = 0, 0
for _, name in ipairs(sa.model:tensor_names()) do
   local w, f = compare(name, (sa.model:tensor(name)), (sb.model:tensor(name)))
   worst_w, flips = math.max(worst_w, w), flips + (f or 0)
end
for _, name in ipairs({ "m", "v" }) do
   worst_w = math.max(worst_w, compare("optimizer " .. name, sa.optim:tensor(name), sb.optim:tensor(name)))
end
local ca, cb = sa.carry, sb.carry
if getmetatable(ca) ~= nil and type(ca.tensor) == "function" then ca, cb = { ca }, { cb } end
local worst_c = 0
for i = 1, #ca do
   for _, name in ipairs(ca[i]:tensor_names()) do
      worst_c = math.max(worst_c, compare(string.format("carry %d %s", i, name), ca[i]:tensor(name), cb[i]:tensor(name), 1e-4))
   end
end
print(string.format("weights, puzzle table and moments: largest difference %.3g (sign flips: %d); carries %.3g",
                    worst_w, flips, worst_c))

if #failures > 0 then
   for i = 1, math.min(#failures, 20) do io.stderr:write("mismatch: ", failures[i], "\n") end
   io.stderr:write(string.format("%d mismatches between %s and %s\n", #failures, a_dir, b_dir))
   os.exit(1)
end
print("same run: " .. a_dir .. " and " .. b_dir)
