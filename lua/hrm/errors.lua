-- hrm.errors — error text as users read it: the C core's message without its "(file.c:line)" suffix,
-- and a Lua error without its leading "file.lua:line: " position.
--
-- Every Lua module reads C errors through last() so that messages read the same everywhere; the
-- position stays available to developers through a debugger or HRM_DEBUG tracebacks.
-- Does not: format, log or exit.
local ffi = require "ffi"
local C = require "hrm.ffi"

local M = {}

-- last() -> the C core's last error message, without " (file.c:line)".
function M.last() return (ffi.string(C.hrm_last_error()):gsub(" %(%S+:%d+%)$", "")) end

-- clean(msg) -> msg without a leading "file:line: " (a Lua error raised with a position).
function M.clean(msg) return (tostring(msg):gsub("^[^\n]-:%d+: ", "", 1)) end

return M
