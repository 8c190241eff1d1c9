-- hrm.safetensors — read and write safetensors files as tables of named tensors.
--
-- load(path) -> {name = Tensor, ...}, names (sorted)   or nil, err
-- save(path, {name = Tensor, ...})  -> true             or nil, err   (atomic write)
-- The C reader validates the whole file (core/safetensors.c); tensors keep their stored dtype.
local ffi = require "ffi"
local C = require "hrm.ffi"
local errors = require "hrm.errors"
local Tensor = require "hrm.Tensor"

local M = {}

function M.load(path)
   if type(path) ~= "string" then error("safetensors.load: bad argument #1 (path): expected a string", 2) end
   local out = ffi.new("hrm_safetensors *[1]")
   if C.hrm_safetensors_open(out, path) ~= 0 then return nil, errors.last() end
   local f = ffi.gc(out[0], C.hrm_safetensors_free)
   local tensors, names = {}, {}
   local t = ffi.new("hrm_tensor *[1]")
   for i = 0, C.hrm_safetensors_count(f) - 1 do
      local name = ffi.string(C.hrm_safetensors_name(f, i))
      if C.hrm_safetensors_get(t, f, name) ~= 0 then return nil, errors.last() end
      tensors[name] = Tensor._wrap(t[0])
      names[#names + 1] = name
   end
   C.hrm_safetensors_free(ffi.gc(f, nil))
   table.sort(names)
   return tensors, names
end

function M.save(path, tensors)
   if type(path) ~= "string" then error("safetensors.save: bad argument #1 (path): expected a string", 2) end
   if type(tensors) ~= "table" then error("safetensors.save: bad argument #2: expected a table of tensors", 2) end
   local names = {}
   for k, v in pairs(tensors) do
      if type(k) ~= "string" or not Tensor.is_tensor(v) then
         error("safetensors.save: every entry must be name = hrm.Tensor (bad entry " .. tostring(k) .. ")", 2)
      end
      names[#names + 1] = k
   end
   table.sort(names)
   local n = #names
   local cnames = ffi.new("const char *[?]", math.max(n, 1))
   local ctensors = ffi.new("const hrm_tensor *[?]", math.max(n, 1))
   for i, k in ipairs(names) do
      cnames[i - 1] = names[i]
      ctensors[i - 1] = tensors[k]:cdata()
   end
   if C.hrm_safetensors_write(path, n, cnames, ctensors) ~= 0 then return nil, errors.last() end
   return true
end

return M
