-- hrm.cli — helpers shared by the command-line scripts (scripts/train.lua, eval.lua, solve.lua, ...).
--
-- Option parsing with lua-argparse from a table of options (name, kind, description) that also
-- makes the --help text, KEY=VALUE lists, file tests, error messages without their "file:line: "
-- prefix, and a checkpoint's model with the task it fits. User errors go through M.die: one line
-- "PROG: message" on stderr and exit status 1.
-- Does not: check option combinations; the scripts do.
local argparse = require "argparse"
local fs = require "hrm.fs"

local M = {}

local PRESETS = { tiny = true, small = true, hrm_v1 = true, trm = true, trm_mlp = true, transformer = true }
M.PRESETS = PRESETS

-- Print "prog: msg" on stderr and exit with status 1.
function M.die(prog, msg)
   io.stderr:write(prog, ": ", msg, "\n")
   os.exit(1)
end

-- main(prog, fn, argv): runs fn(argv) without a "--debug" argument; an error that escapes it is
-- one line "prog: message" and exit status 1, unless --debug or HRM_DEBUG=1 asks for the traceback
-- (M.debug is then true, for scripts that catch errors themselves).
function M.main(prog, fn, argv)
   local args, debug = {}, os.getenv("HRM_DEBUG") == "1"
   for _, s in ipairs(argv) do
      if s == "--debug" then debug = true else args[#args + 1] = s end
   end
   M.debug = debug
   if debug then return fn(args) end
   local ok, err = pcall(fn, args)
   if not ok then M.die(prog, M.clean(err) .. "\n---> HINT: --debug (or HRM_DEBUG=1) shows the traceback") end
end

-- An error message without its leading "file:line: " (hrm.errors loads the engine only when needed,
-- so that scripts without it, such as bench_tasks.lua under plain LuaJIT, can parse options).
function M.clean(msg) return require("hrm.errors").clean(msg) end
M.exists, M.is_dir = fs.exists, fs.is_dir

-- The value of option --name of kind `kind` given as the string v, or nil and the message. Kinds:
-- str, list (kept as strings), range (N or A-B -> {A, B}), num (a finite number >= 0), int (>= 1),
-- int0 (>= 0).
local function convert(name, kind, v, strict_ranges)
   if kind == "str" or kind == "list" then return v end
   if kind == "range" then
      local a, b = v:match("^(%d+)%-(%d+)$")
      if a then
         a, b = tonumber(a), tonumber(b)
         if a <= b then return { a, b } end
         if strict_ranges then return nil, string.format("--%s expects A-B with A <= B, got '%s'", name, v) end
      end
      if v:match("^%d+$") then return tonumber(v) end
      return nil, string.format("--%s expects a number or a range A-B, got '%s'", name, v)
   end
   local n = tonumber(v)
   if kind == "num" then
      if not n or n ~= n or n < 0 or n == math.huge then
         return nil, string.format("--%s expects a number >= 0, got '%s'", name, v)
      end
      return n
   end
   local lo = kind == "int0" and 0 or 1
   if not n or n ~= math.floor(n) or n < lo or n > 2^53 then
      return nil, string.format("--%s expects %s integer, got '%s'", name, lo == 0 and "a non-negative" or "a positive", v)
   end
   return n
end

-- The argparse parser of a command-line spec (see M.parse) -> parser, set of the options that take a value.
local function build(spec)
   local p = argparse():usage("usage: " .. spec.usage):add_help(false):help_max_width(100)
   if spec.description then p:description(spec.description) end
   if spec.epilog then p:epilog(spec.epilog) end
   local takes_value = {}
   for g, group in ipairs(spec) do
      local members = {}
      for k = 2, #group do
         local o = group[k]
         local flag, argname = o[1]:match("^(%S+)%s*(.*)$")
         local name, kind = flag:match("^%-%-(.+)$"), o[2]
         local el
         if kind == "flag" then
            el = p:flag(flag, o[3])
         else
            el = p:option(flag, o[3]):argname(argname)
                  :convert(function(v) return convert(name, kind, v, spec.strict_ranges) end)
            if kind == "list" then el:count("*") end
            takes_value[flag] = true
         end
         members[#members + 1] = el:target(name)
      end
      if g == #spec then
         members[#members + 1] = p:flag("--debug", "show the traceback of an unexpected error (also HRM_DEBUG=1)")
         members[#members + 1] = p:flag("-h --help", "this text"):target("help")
      end
      p:group(group[1], unpack(members))
   end
   p:argument("positional"):args("*"):hidden(true)
   return p, takes_value
end

-- argparse's messages in the scripts' words: the option first, "(see --help)" where it helps.
local function reword(msg)
   local opt, guess = msg:match("^unknown option '(.-)'\nDid you mean '(.-)'%?")
   opt = opt or msg:match("^unknown option '(.-)'$")
   if opt then
      return "unknown option " .. opt .. (guess and guess:match("^%-%-") and " (did you mean " .. guess .. "? see --help)" or " (see --help)")
   end
   opt = msg:match("^option '(.-)' requires an argument$")
   if opt then return opt .. " needs a value" end
   opt = msg:match("^option '(.-)' does not take arguments$")
   if opt then return opt .. " takes no value" end
   return msg
end

-- The --help text of a spec.
function M.help(spec) return build(spec):get_help() .. "\n" end

-- parse(prog, argv, spec) -> table of options by name (flags true, lists in order, other
-- arguments in the list .positional). spec: usage (after "usage: "), description, epilog,
-- positional (true when the script takes arguments; else one is an error), strict_ranges (a
-- range A-B with A > B has its own message), and the option groups in order: { title,
-- { "--name ARG", kind, description }, ... } with the kinds of convert or "flag"; --debug and
-- -h/--help join the last group. --help prints the text argparse makes of the spec and exits 0;
-- an error is one line "prog: message" and exit status 1. `--name value` and `--name=value`
-- both work, and a value may be a negative number ("--lr -1" is refused as a number, not as an
-- unknown option -1).
function M.parse(prog, argv, spec)
   local p, takes_value = build(spec)
   local args, i = {}, 1
   while i <= #argv do
      local s, value = argv[i], argv[i + 1]
      if takes_value[s] and value and value:match("^%-[%d.]") then s, i = s .. "=" .. value, i + 1 end
      args[#args + 1], i = s, i + 1
   end
   local ok, a = p:pparse(args)
   if not ok then M.die(prog, reword(a)) end
   if a.help then io.stdout:write(M.help(spec)) os.exit(0) end
   if not spec.positional and a.positional[1] then
      M.die(prog, "unexpected argument '" .. a.positional[1] .. "' (see --help)")
   end
   return a
end

-- {"k=v", ...} (the values of --what) -> {k = v}: numbers, A-B ranges as {A, B} and true/false
-- converted, other values kept as strings; with numbers_only, only numbers are converted.
function M.pairs_table(prog, list, what, numbers_only)
   local t = {}
   for _, s in ipairs(list) do
      local k, v = s:match("^([%w_]+)=(.*)$")
      if not k then M.die(prog, string.format("--%s expects KEY=VALUE, got '%s'", what, s)) end
      local x, y = v:match("^(%-?[%d.]+)%-(%-?[%d.]+)$")
      if tonumber(v) then t[k] = tonumber(v)
      elseif numbers_only then t[k] = v
      elseif x and tonumber(x) and tonumber(y) then t[k] = { tonumber(x), tonumber(y) }
      elseif v == "true" or v == "false" then t[k] = v == "true"
      else t[k] = v end
   end
   return t
end

-- The config fields of --arch NAME|FILE (hrm, trm, trm_mlp, transformer, or a model file's
-- path): {} without --arch; an unknown name is a user error.
function M.arch_of(prog, a)
   if a.arch == nil then return {} end
   local f = require("hrm.config").arch_fields(a.arch)
   if f then return f end
   if not a.arch:find("/", 1, true) and not a.arch:match("%.lua$") then
      M.die(prog, "--arch: unknown architecture '" .. a.arch .. "' (hrm, trm, trm_mlp, transformer, or a model file)")
   end
   if not M.exists(a.arch) then M.die(prog, "--arch: no such model file: " .. a.arch) end
   return { arch = a.arch }
end

-- The model config from --config (a preset or a Lua file returning config fields), --arch and
-- --set, or nil without --config. numbers_only is passed to pairs_table for the --set values.
function M.config_of(prog, a, numbers_only)
   if not a.config then return nil end
   local over = M.pairs_table(prog, a.set, "set", numbers_only)
   for k, v in pairs(M.arch_of(prog, a)) do if over[k] == nil then over[k] = v end end
   local ok, cfg
   if PRESETS[a.config] then
      ok, cfg = pcall(require("hrm").config.preset, a.config, over)
      if not ok then M.die(prog, "--config: " .. M.clean(cfg)) end
   else
      if not M.exists(a.config) then M.die(prog, "--config: no such file: " .. a.config) end
      local chunk, err = loadfile(a.config)
      if not chunk then M.die(prog, "--config: " .. M.clean(err)) end
      ok, cfg = pcall(chunk)
      if not ok or type(cfg) ~= "table" then M.die(prog, "--config: " .. a.config .. " must return a table of config fields") end
      for k, v in pairs(over) do cfg[k] = v end
   end
   return cfg
end

-- The model of checkpoint ckpt (hrm.Model.load; config: M.config_of's, or nil; a.ema: its EMA
-- weights) and the task (a.task/a.size, else the run's) it must fit -> model, info, meta (the run's), task.
function M.model_and_task(prog, ckpt, a, config)
   local model, info = require("hrm.Model").load(ckpt, { config = config, ema = a.ema })
   if not model then M.die(prog, M.clean(info)) end
   local meta = info.run_config and type(info.run_config.meta) == "table" and info.run_config.meta or {}
   local task_name = a.task or meta.task_arg or meta.task or "sudoku"
   local task, terr = require("tasks.registry").load(task_name, { size = a.size or (a.task == nil and meta.size or nil) })
   if not task then M.die(prog, terr) end
   local cfg = model:config()
   if cfg.seq_len ~= task.seq_len or cfg.vocab_size ~= task.vocab_size then
      M.die(prog, string.format("the model (vocab %d, seq_len %d) does not fit task %s (vocab %d, seq_len %d)\n" ..
                                "---> HINT: pass --task/--size as in training", cfg.vocab_size, cfg.seq_len, task.name,
                                task.vocab_size, task.seq_len))
   end
   return model, info, meta, task
end

return M
