-- hrm.dist — several processes: who am I, and the collectives (C: core/dist.c).
--
-- `mpirun -np N hrm script.lua` starts N ranks; hrm.dist.init() joins them (a plain `hrm
-- script.lua` is world size 1, no MPI needed, and every collective returns its input). CPU
-- tensors travel over MPI, CUDA tensors over NCCL. Collectives are in place and every rank must
-- make the same calls in the same order with the same dtypes and shapes.
-- Does not: start processes (the launcher does), or talk over anything but MPI and NCCL.
local C = require "hrm.ffi"
local Tensor = require "hrm.Tensor"
local errors = require "hrm.errors"

local M = {}

local OPS = { sum = 0, max = 1 }

local function check(rc) if rc ~= 0 then error(errors.last(), 3) end end

local function tensor_arg(t, fname, argn, name)
   if not Tensor.is_tensor(t) then
      error(string.format("%s: bad argument #%d (%s): expected an hrm.Tensor, got %s", fname, argn, name,
                          type(t)), 3)
   end
   return t:cdata()
end

-- init() -> rank, size: join the launcher's job (idempotent).
function M.init()
   check(C.hrm_dist_init())
   return C.hrm_dist_rank(), C.hrm_dist_size()
end

function M.rank() M.init() return C.hrm_dist_rank() end
function M.size() M.init() return C.hrm_dist_size() end
function M.local_size() M.init() return C.hrm_dist_local_size() end
function M.is_main() return M.rank() == 0 end

-- built() -> {mpi = bool, nccl = bool}: what this build can talk over.
function M.built() return { mpi = C.hrm_dist_mpi_built() == 1, nccl = C.hrm_dist_nccl_built() == 1 } end

-- all_reduce(t [, "sum" | "max"]) -> t, now the sum (or max) of every rank's t.
function M.all_reduce(t, op)
   local p = tensor_arg(t, "all_reduce", 1, "t")
   local code = OPS[op or "sum"]
   if code == nil then
      error("all_reduce: bad argument #2 (op): expected \"sum\" or \"max\", got " .. tostring(op), 2)
   end
   M.init()
   check(C.hrm_dist_all_reduce(p, code))
   return t
end

-- broadcast(t [, root = 0]) -> t, now root's t.
function M.broadcast(t, root)
   local p = tensor_arg(t, "broadcast", 1, "t")
   root = root or 0
   if type(root) ~= "number" or root % 1 ~= 0 then
      error("broadcast: bad argument #2 (root): expected a rank number, got " .. tostring(root), 2)
   end
   M.init()
   check(C.hrm_dist_broadcast(p, root))
   return t
end

-- all_gather(t [, out]) -> out: every rank's t stacked along a new first dimension of size
-- size() (out, when given, is any tensor of that many elements, dtype and device).
function M.all_gather(t, out)
   local p = tensor_arg(t, "all_gather", 1, "t")
   M.init()
   if out == nil then
      local dims = { C.hrm_dist_size() }
      for d = 0, p.ndim - 1 do dims[#dims + 1] = tonumber(p.shape[d]) end
      out = Tensor.zeros(dims, t:dtype()):to(t:device())
   end
   check(C.hrm_dist_all_gather(tensor_arg(out, "all_gather", 2, "out"), p))
   return out
end

function M.barrier()
   M.init()
   check(C.hrm_dist_barrier())
end

-- abort([status = 1]): end every rank of the job at once (after a failure only this rank saw);
-- at world size 1 it returns and the caller exits as usual.
function M.abort(status)
   status = status or 1
   if type(status) ~= "number" or status % 1 ~= 0 then
      error("abort: bad argument #1 (status): expected a whole number, got " .. tostring(status), 2)
   end
   io.stdout:flush()
   io.stderr:flush()
   C.hrm_dist_abort(status)
end

-- finalize(): leave the job (also done at exit).
function M.finalize() check(C.hrm_dist_finalize()) end

-- reduce_gradients(model, chunks): the data-parallel step's exchange (see hrm.h).
function M.reduce_gradients(model, chunks)
   check(C.hrm_dist_reduce_gradients(model.store:handle(), chunks or 1))
end

-- print(...) on rank 0 only.
function M.print(...)
   if M.rank() == 0 then print(...) end
end

return M
