-- Specs of the FFI boundary: every cdef struct has the compiler's size; versions are readable.
local ffi = require "ffi"
local hrm = require "hrm"
local C = hrm.C

describe("the C ABI", function()
   for _, name in ipairs({ "hrm_tensor", "hrm_rng", "hrm_config", "hrm_batch", "hrm_block_config",
                           "hrm_act_carry", "hrm_act_metrics", "hrm_optim_config", "hrm_tensor_ref", "hrm_dataset_meta",
                           "hrm_dataset_arrays", "hrm_sampler_config", "hrm_sampler_state" }) do
      it("agrees on sizeof(" .. name .. ")", function()
         local csize = tonumber(C.hrm_sizeof(name))
         assert.is_true(csize > 0)
         assert.equal(csize, ffi.sizeof(name))
      end)
   end

   it("reports versions, threads and the BLAS", function()
      assert.truthy(hrm.version():match("^%d+%.%d+%.%d+$"))
      assert.is_true(C.hrm_abi_version() >= 1)
      assert.is_true(hrm.get_threads() >= 1)
      assert.truthy(#hrm.blas() > 0)
   end)

   it("sets threads and refuses nonsense", function()
      local n = hrm.get_threads()
      hrm.set_threads(1)
      assert.equal(1, hrm.get_threads())
      hrm.set_threads(n)
      assert.has_error(function() hrm.set_threads(0) end)
   end)

   it("measures the machine's FMA peak above what a GEMM reaches", function()
      -- one thread; the peak is timed on the thread's own CPU clock, so another process taking
      -- the core does not lower it, and a GEMM slowed the same way only reads lower; the best of
      -- up to three measurements counts
      local n = hrm.get_threads()
      hrm.set_threads(1)
      local peak, gemm = 0, 0
      for _ = 1, 3 do
         peak = math.max(peak, C.hrm_fma_peak_gflops())
         gemm = C.hrm_gemm_gflops(384, 384, 384, 0, 0, 5)
         if gemm <= 1.1 * peak then break end
      end
      hrm.set_threads(n)
      assert.is_true(peak > 0 and peak < 1e5, "FMA peak " .. peak)
      assert.is_true(gemm > 0, "GEMM rate " .. gemm)
      -- no GEMM passes the arithmetic peak (a peak with merged or hoisted chains would be far off)
      assert.is_true(gemm <= 1.1 * peak, string.format("GEMM %.1f > FMA peak %.1f", gemm, peak))
      assert.is_true(gemm >= 0.1 * peak, string.format("GEMM %.1f << FMA peak %.1f", gemm, peak))
   end)

   it("measures the bf16 dot-product peak on the instructions the CPU has", function()
      local cpuinfo = io.open("/proc/cpuinfo")
      if not cpuinfo then return end  -- no way to know what the CPU has
      local text = cpuinfo:read("*a")
      cpuinfo:close()
      local flags = " " .. (text:match("\nflags%s*:([^\n]*)") or "") .. " "
      local has_avx512_bf16 = flags:find(" avx512_bf16 ", 1, true) ~= nil
      local has_amx_bf16 = flags:find(" amx_bf16 ", 1, true) ~= nil
      -- The bounds on bf16 / FMA peak. A 512-bit VDPBF16PS does 64 FLOP to an FMA's 32 and no
      -- core issues it faster than FMAs (a larger ratio means miscounted or hoisted work). AMD's
      -- Zen 4 and 5 issue it at the FMA rate: twice the FMA peak. Intel's pre-AMX cores issue it
      -- more slowly (measured at about 0.5x on a Xeon that hides its AMX). AMX tiles are far above.
      local amd = text:find("AuthenticAMD", 1, true) ~= nil
      local low, high = amd and 1.2 or 0.3, 2.5
      -- one thread, timed on its own CPU clock as the FMA peak is; the best of up to three tries
      local n = hrm.get_threads()
      hrm.set_threads(1)
      local isa_out = ffi.new("const char *[1]")
      local bf16, fma = 0, 0
      for _ = 1, 3 do
         bf16 = math.max(bf16, C.hrm_bf16_peak_gflops(isa_out))
         fma = math.max(fma, C.hrm_fma_peak_gflops())
         if ffi.string(isa_out[0]) == "amx" then low, high = 1.2, math.huge end
         if bf16 > low * fma and bf16 < high * fma then break end
      end
      hrm.set_threads(n)
      local isa = ffi.string(isa_out[0])
      if has_amx_bf16 then
         -- AMX where Linux grants the tile data, else the AVX-512 BF16 fallback
         assert.truthy(isa == "amx" or isa == "avx512_bf16", isa)
      elseif has_avx512_bf16 then
         assert.equal("avx512_bf16", isa)
      else
         assert.equal("none", isa)
         assert.equal(0, bf16)
         return
      end
      assert.is_true(bf16 > low * fma and bf16 < high * fma,
                     string.format("%s peak %.1f GFLOP/s, FMA peak %.1f: expected %.1fx to %.1fx",
                                   isa, bf16, fma, low, high))
   end)

   it("sets no globals from library modules", function()
      assert.is_nil(rawget(_G, "Tensor"))
      assert.is_nil(rawget(_G, "C"))
   end)
end)
