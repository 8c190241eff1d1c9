-- demo.lua — the main job of the README: what hrm does, on an embedded default.
--
-- Until the bundled model lands this shows the tensor engine: a seeded matrix product through
-- the GEMM library and its achieved speed.
local hrm = require "hrm"

hrm.manual_seed(0)
local n = 512
local a, b = hrm.Tensor.randn(n, n), hrm.Tensor.randn(n, n)
local t0 = os.clock()
local c = a:matmul(b)
local dt = math.max(os.clock() - t0, 1e-9)
print(string.format("hrm %s on %s, %d threads", hrm.version(), hrm.blas(), hrm.get_threads()))
print(string.format("%dx%d matmul: %.1f GFLOP/s (CPU time), checksum %.4f", n, n, 2 * n ^ 3 / dt / 1e9,
                    c:sum() / n))
print(hrm.Tensor({ { 1, 2 }, { 3, 4 } }):matmul(hrm.Tensor({ { 1, 0 }, { 0, 1 } })))
