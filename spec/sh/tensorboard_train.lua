-- tensorboard_train.lua — the training runs behind spec/sh/test_tensorboard.sh.
--
-- usage: hrm spec/sh/tensorboard_train.lua first DIR    14 of 24 steps, stopped by an error after
--                                                      step 14 (last.hrm is at step 10)
--        hrm spec/sh/tensorboard_train.lua resume DIR   resumes DIR/last.hrm to step 24
-- A tiny HRM on a synthetic next-colour task, logged every 2 steps, evaluated every 5 steps on
-- two sets, so the resumed run must drop steps 11-14 from metrics.jsonl and the event file.
local hrm = require "hrm"
local ffi = require "ffi"

local mode, dir = arg[1], arg[2]
assert((mode == "first" or mode == "resume") and dir, "usage: tensorboard_train.lua first|resume DIR")

local S, V = 8, 6
local function arrays(n, seed)
   local inputs, labels = ffi.new("uint8_t[?]", n * S), ffi.new("uint8_t[?]", n * S)
   local state = 12345 + seed * 7919
   for i = 0, n * S - 1 do
      state = (state * 1103515245 + 12345) % 2147483648
      local x = math.floor(state / 65536) % 4
      inputs[i], labels[i] = 2 + x, 2 + (x + 1) % 4
   end
   return hrm.data.Dataset.new { vocab_size = V, seq_len = S, inputs = inputs, labels = labels, n = n }
end

local model = hrm.Model(hrm.config.tiny { hidden_size = 32, num_heads = 2, expansion = 2, H_layers = 1, L_layers = 1,
                                          H_cycles = 1, L_cycles = 1, halt_max_steps = 3, puzzle_emb_ndim = 0,
                                          vocab_size = V, seq_len = S }, { seed = 1 })
local opt = hrm.optim.AdamATan2(model, { lr = 3e-3, weight_decay = 0.1 })
local ok, err = pcall(hrm.train, {
   model = model, optim = opt, data = arrays(128, 1), eval = { a = arrays(16, 2), b = arrays(8, 3) },
   steps = 24, batch = 8, log_every = 2, eval_every = 5, run = dir, quiet = true,
   schedule = hrm.schedule.warmup_cosine { warmup = 4, total = 24, min_ratio = 0.1 },
   resume = mode == "resume" and dir or nil,
   on_log = function(rec)
      if mode == "first" and rec.split == "train" and rec.step == 14 then error("stopped after step 14") end
   end,
})
if mode == "first" then assert(not ok and tostring(err):find("stopped after step 14"), tostring(err))
else assert(ok, err) end
