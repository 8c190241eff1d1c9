-- resume_train.lua — the training run behind spec/sh/test_resume.sh (exact resume).
--
-- usage: hrm spec/sh/resume_train.lua straight N DIR   N steps from scratch; DIR/straight.hrm
--        hrm spec/sh/resume_train.lua first N DIR      N steps from scratch; DIR/mid.hrm
--        hrm spec/sh/resume_train.lua resume N DIR     DIR/mid.hrm, then N steps; DIR/resumed.hrm
-- Prints "step k loss <exact>" per step. A tiny model (hidden 32, 1+1 layers, exploration on,
-- so the model's RNG is drawn) trains on a synthetic dataset drawn by hrm.data's sampler; each
-- batch is also shifted by a draw from the global RNG, so all three streams must be restored.
local hrm = require "hrm"
local checkpoint = require "hrm.checkpoint"

local mode, N, dir = arg[1], tonumber(arg[2]), arg[3]
assert(mode and N and dir, "usage: resume_train.lua straight|first|resume N DIR")

local V, S, B, IDS = 6, 8, 4, 5

-- Batches from hrm.data over a fixed synthetic dataset: 12 puzzles of 4 examples in 6 groups.
local n, P, G = 48, 12, 6
local inputs, labels, pid, pidx, gidx = {}, {}, {}, {}, {}
for i = 0, n * S - 1 do
   inputs[i + 1] = (i * 7 + 3) % V
   labels[i + 1] = (i * 5 + (i % 3)) % V
end
for p = 0, P - 1 do pid[p + 1] = p % IDS end
for p = 0, P do pidx[p + 1] = 4 * p end
for g = 0, G do gidx[g + 1] = 2 * g end
local ds = assert(hrm.data.Dataset.new { vocab_size = V, seq_len = S, ignore_label_id = false,
                                         num_puzzle_identifiers = IDS, inputs = inputs, labels = labels,
                                         puzzle_identifiers = pid, puzzle_indices = pidx,
                                         group_indices = gidx, n = n })
local sampler = ds:batches { batch_size = B, train = true, seed = 987654321 }

local model, opt, carry, step
if mode == "resume" then
   local st = assert(checkpoint.load(dir .. "/mid.hrm", { data = sampler }))
   model, opt, carry, step = st.model, st.optim, st.carry, st.step
   assert(st.extra.note == "mid" and st.data == sampler)
else
   hrm.manual_seed(11)
   local cfg = hrm.config.tiny { hidden_size = 32, num_heads = 2, H_layers = 1, L_layers = 1,
                                 halt_max_steps = 3, halt_exploration_prob = 0.5,
                                 vocab_size = V, seq_len = S, num_puzzle_identifiers = IDS }
   model = hrm.Model(cfg, { seed = 5 })
   opt = hrm.optim.AdamATan2(model, { lr = 3e-3, puzzle_emb_lr = 1e-2 })
   carry = model:carry(B)
   step = 0
end

for _ = 1, N do
   step = step + 1
   local batch = assert(sampler:next())
   local shift = hrm.random(0, V - 1)
   local a, l = batch.inputs:data(), batch.labels:data()
   for i = 0, B * S - 1 do
      a[i] = (a[i] + shift) % V
      l[i] = (l[i] + shift) % V
   end
   local out = model:step(carry, batch, { train = true })
   opt:step(3e-3 * (1 - step / 100))
   print(string.format("step %d loss %.17g steps %g", step, out.loss, out.steps))
end

local target = ({ straight = "straight.hrm", first = "mid.hrm", resume = "resumed.hrm" })[mode]
assert(checkpoint.save(dir .. "/" .. target, { model = model, optim = opt, carry = carry, data = sampler,
                                               step = step, extra = { note = mode == "first" and "mid" or "end" } }))
