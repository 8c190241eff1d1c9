-- spec/sh/profile_train.lua — run a script under LuaJIT's sampling profiler (jit.profile: a
-- SIGPROF timer with a signal handler, every millisecond), as a user profiling a training run
-- would. Usage: hrm spec/sh/profile_train.lua script.lua [args...]; prints the sample count.
local profile = require "jit.profile"
local samples = 0
profile.start("fi1", function() samples = samples + 1 end)
local script = assert(arg[1], "usage: profile_train.lua script.lua [args...]")
local chunk = assert(loadfile(script))
local ok, err = pcall(chunk, select(2, ...))
profile.stop()
io.stderr:write(string.format("profile_train: %d samples\n", samples))
if not ok then error(err, 0) end
