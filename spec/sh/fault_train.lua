-- fault_train.lua — the programs behind spec/sh/test_faults.sh (faults a training run survives).
--
-- usage: hrm spec/sh/fault_train.lua train DIR STEPS [resume] [vanish=K]
--           hrm.train of a tiny model into DIR (eval and checkpoint every 3 steps, a plain progress
--           line every step); DIR/started appears after step 2; vanish=K removes DIR after step K
--        hrm spec/sh/fault_train.lua saveloop PATH FIRST
--           checkpoint.save PATH again and again (steps FIRST, FIRST+1, ...) with a 16 MB tensor
--           filled with the step, printing "saved K" after each save returns
--        hrm spec/sh/fault_train.lua check PATH
--           prints "step K" when PATH loads and its big tensor holds K everywhere, else "bad ..."
-- Errors of hrm.train print one line on stderr and exit 1, as scripts/train.lua does.
local hrm = require "hrm"
local checkpoint = require "hrm.checkpoint"

local mode = arg[1]
local V, S, B = 6, 8, 4

local function data(n, seed)
   local inputs, labels = {}, {}
   for i = 0, n * S - 1 do
      inputs[i + 1] = (i * 7 + seed) % V
      labels[i + 1] = (i * 5 + (i % 3) + seed) % V
   end
   return hrm.data.Dataset.new { vocab_size = V, seq_len = S, inputs = inputs, labels = labels, n = n }
end

local function tiny_model()
   return hrm.Model(hrm.config.tiny { hidden_size = 32, num_heads = 2, H_layers = 1, L_layers = 1,
                                       halt_max_steps = 2, puzzle_emb_ndim = 0, vocab_size = V, seq_len = S },
                    { seed = 3 })
end

local function touch(path)
   local f = io.open(path, "wb")
   if f then f:close() end
end

if mode == "train" then
   local dir, steps = arg[2], tonumber(arg[3])
   local resume, vanish = false, nil
   for i = 4, #arg do
      if arg[i] == "resume" then resume = true end
      local k = arg[i]:match("^vanish=(%d+)$")
      if k then vanish = tonumber(k) end
   end
   local model = tiny_model()
   local ok, err = pcall(hrm.train, {
      model = model, optim = hrm.optim.AdamATan2(model, { lr = 1e-3 }), data = data(64, 1),
      eval = data(8, 2), eval_every = 3, steps = steps, batch = B, log_every = 1, progress = "plain",
      run = dir, resume = resume and dir or nil,
      on_log = function(rec)
         if rec.split ~= "train" then return end
         if rec.step == 2 then touch(dir .. "/started") end
         if vanish and rec.step == vanish then os.execute("rm -rf '" .. dir .. "'") end
      end,
   })
   if not ok then
      io.stderr:write("fault_train: ", tostring(err), "\n")
      os.exit(1)
   end
elseif mode == "saveloop" then
   local path, k = arg[2], tonumber(arg[3])
   local model = tiny_model()
   local big = hrm.Tensor.zeros(4 * 1024 * 1024)
   while true do
      big:fill(k)
      assert(checkpoint.save(path, { model = model, step = k, tensors = { big = big } }))
      io.stdout:write("saved ", k, "\n")
      io.stdout:flush()
      k = k + 1
   end
elseif mode == "check" then
   local st, err = checkpoint.load(arg[2])
   if not st then print("bad: " .. tostring(err)) os.exit(0) end
   local big = st.tensors.big
   if not big or big:min() ~= st.step or big:max() ~= st.step then
      print("bad: the big tensor does not hold the step " .. tostring(st.step))
   else
      print("step " .. st.step)
   end
else
   io.stderr:write("usage: hrm spec/sh/fault_train.lua train|saveloop|check ...\n")
   os.exit(2)
end
