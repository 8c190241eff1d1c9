-- Specs of hrm.dist: the collectives at whatever world size the spec is started with — world
-- size 1 as a plain spec, 2 ranks through spec/dist/mpirun.sh (ctest label dist). Every rank
-- fills its tensors from its rank number, so each expected value is computed, not stored.
local hrm = require "hrm"
local dist = require "hrm.dist"

local rank, size = dist.init()

-- A 1-D tensor of n elements, element i (0-based) = f(i).
local function filled(n, dtype, f)
   local t = hrm.Tensor.zeros(n, dtype)
   local p = t:data()
   for i = 0, n - 1 do p[i] = f(i) end
   return t
end

-- The first index where t differs from f(i), or nil.
local function mismatch(t, f)
   local p = t:data()
   for i = 0, t:numel() - 1 do
      if tonumber(p[i]) ~= f(i) then return i, tonumber(p[i]), f(i) end
   end
   return nil
end

local DTYPES = { "f32", "f64", "i32", "i64", "u8" }
local SIZES = { 0, 1, 1000000 }

describe("hrm.dist.init", function()
   it("agrees with the launcher about the rank and the world size", function()
      local launched = tonumber(os.getenv("OMPI_COMM_WORLD_SIZE") or "")
      assert.equals(launched or 1, size)
      assert.is_true(rank >= 0 and rank < size)
      assert.equals(rank, dist.rank())
      assert.is_true(dist.local_size() >= 1 and dist.local_size() <= size)
   end)

   it("says what this build can talk over", function()
      local b = dist.built()
      assert.is_boolean(b.mpi)
      assert.is_boolean(b.nccl)
      if size > 1 then assert.is_true(b.mpi) end
   end)
end)

describe("hrm.dist.all_reduce", function()
   for _, dtype in ipairs(DTYPES) do
      for _, n in ipairs(SIZES) do
         it(string.format("sums %d %s elements over the ranks", n, dtype), function()
            -- element i of rank r is (i + r) mod 7: small enough for u8 and exact in f32
            local t = filled(n, dtype, function(i) return (i + rank) % 7 end)
            assert.equals(t, dist.all_reduce(t))
            local function want(i)
               local s = 0
               for r = 0, size - 1 do s = s + (i + r) % 7 end
               return s
            end
            assert.is_nil((mismatch(t, want)))
         end)
      end
   end

   for _, dtype in ipairs(DTYPES) do
      it("takes the max of " .. dtype .. " elements over the ranks", function()
         local t = filled(1000, dtype, function(i) return (i * 3 + rank * 5) % 11 end)
         dist.all_reduce(t, "max")
         assert.is_nil((mismatch(t, function(i)
            local m = 0
            for r = 0, size - 1 do m = math.max(m, (i * 3 + r * 5) % 11) end
            return m
         end)))
      end)
   end

   it("refuses an unknown op, a non-tensor and bf16", function()
      local t = hrm.Tensor.zeros(3)
      assert.has_error(function() dist.all_reduce(t, "min") end,
                       "all_reduce: bad argument #2 (op): expected \"sum\" or \"max\", got min")
      assert.has_error(function() dist.all_reduce({ 1, 2 }) end,
                       "all_reduce: bad argument #1 (t): expected an hrm.Tensor, got table")
      local ok, err = pcall(dist.all_reduce, hrm.Tensor.zeros(3, "bf16"))
      assert.is_false(ok)
      assert.matches("bf16 tensors are not reduced", err, 1, true)
   end)
end)

describe("hrm.dist.broadcast", function()
   for _, dtype in ipairs({ "f32", "f64", "i32", "i64", "u8", "bf16" }) do
      for _, n in ipairs(SIZES) do
         it(string.format("gives every rank the last rank's %d %s elements", n, dtype), function()
            local root = size - 1
            local t = hrm.Tensor.zeros(n, dtype)
            if dtype ~= "bf16" then
               local p = t:data()
               for i = 0, n - 1 do p[i] = rank == root and (i % 5) + 1 or 0 end
            end
            dist.broadcast(t, root)
            if dtype ~= "bf16" then assert.is_nil((mismatch(t, function(i) return (i % 5) + 1 end))) end
         end)
      end
   end

   it("refuses a root that is not a rank", function()
      local ok, err = pcall(dist.broadcast, hrm.Tensor.zeros(2), size)
      assert.is_false(ok)
      assert.matches(string.format("root = %d is not a rank (0..%d)", size, size - 1), err, 1, true)
      assert.has_error(function() dist.broadcast(hrm.Tensor.zeros(2), 0.5) end,
                       "broadcast: bad argument #2 (root): expected a rank number, got 0.5")
   end)
end)

describe("hrm.dist.all_gather", function()
   for _, dtype in ipairs({ "f32", "f64", "i32", "i64", "u8" }) do
      for _, n in ipairs(SIZES) do
         it(string.format("stacks every rank's %d %s elements in rank order", n, dtype), function()
            local t = filled(n, dtype, function(i) return (i + 3 * rank) % 13 end)
            local out = dist.all_gather(t)
            assert.same({ size, n }, { out:size(1), out:size(2) })
            assert.is_nil((mismatch(out, function(j)
               local r, i = math.floor(j / math.max(n, 1)), j % math.max(n, 1)
               return (i + 3 * r) % 13
            end)))
         end)
      end
   end

   it("fills a given tensor and refuses one of the wrong size", function()
      local out = hrm.Tensor.zeros(size * 2, "i32")
      dist.all_gather(filled(2, "i32", function(i) return rank * 10 + i end), out)
      assert.is_nil((mismatch(out, function(j) return math.floor(j / 2) * 10 + j % 2 end)))
      local ok, err = pcall(dist.all_gather, hrm.Tensor.zeros(2, "i32"), hrm.Tensor.zeros(size * 2 + 1, "i32"))
      assert.is_false(ok)
      assert.matches("out has " .. (size * 2 + 1) .. " elements", err, 1, true)
   end)
end)

describe("hrm.dist.barrier", function()
   it("returns on every rank", function()
      dist.barrier()
      local one = dist.all_reduce(hrm.Tensor.ones(1))
      assert.equals(size, one[1])
   end)
end)

describe("hrm.dist on CUDA tensors (NCCL)", function()
   it("reduces, broadcasts and gathers device tensors at world size 1", function()
      if not hrm.cuda_available() or not dist.built().nccl or size ~= 1 then
         local why = not hrm.cuda_available() and "no CUDA device" or not dist.built().nccl and
                     "this build has no NCCL" or "multi-GPU runs are checked on a multi-GPU machine"
         print("skipped: hrm.dist over NCCL: " .. why)
         return
      end
      local t = filled(1000, "f32", function(i) return i % 9 end):to("cuda")
      dist.all_reduce(t)
      dist.broadcast(t, 0)
      local g = dist.all_gather(t)
      assert.equals("cuda", g:device())
      assert.is_nil((mismatch(g:to("cpu"), function(i) return i % 9 end)))
      dist.all_reduce(t, "max")
      assert.is_nil((mismatch(t:to("cpu"), function(i) return i % 9 end)))
   end)
end)
