-- train_run.lua — the training run behind spec/dist/test_*.sh, at any world size (mpirun or not).
--
-- usage: hrm spec/dist/train_run.lua DIR [key=value ...]
-- keys: steps (10), batch (8), accumulate (1), resume (a checkpoint), data_seed (1), eval_every
-- (5), sleep (seconds per step, for the fault test), eval (1: evaluate), fail_rank (this rank
-- alone raises an error after step 3). hrm.train runs into
-- DIR (metrics.jsonl with a train record per step, last.hrm); puzzle embeddings on (16 puzzle ids,
-- sign-SGD), exploration on, 4 ACT steps. The data are drawn from data_seed, so a rank launched
-- with another seed has other data.
local hrm = require "hrm"

local dir = assert(arg[1], "usage: train_run.lua DIR [key=value ...]")
local o = { steps = 10, batch = 8, accumulate = 1, data_seed = 1, eval_every = 5, sleep = 0, eval = 1, fail_rank = -1 }
for i = 2, #arg do
   local k, v = arg[i]:match("^([%w_]+)=(.*)$")
   assert(k and o[k] ~= nil or k == "resume", "unknown argument " .. arg[i])
   o[k] = tonumber(v) or v
end

local V, S, IDS = 6, 8, 17

-- 64 examples of 16 puzzles (4 each, puzzle p has identifier p + 1), one group per 2 puzzles.
local function dataset(n, seed)
   local inputs, labels, pid, pidx, gidx = {}, {}, {}, {}, {}
   local x = seed
   for i = 1, n * S do
      x = (x * 1103515245 + 12345) % 2147483648
      inputs[i] = 1 + x % (V - 1)
      labels[i] = 1 + (inputs[i] + i) % (V - 1)
   end
   local P = n / 4
   for p = 0, P - 1 do pid[p + 1] = 1 + p % (IDS - 1) end
   for p = 0, P do pidx[p + 1] = 4 * p end
   for g = 0, P / 2 do gidx[g + 1] = 2 * g end
   return assert(hrm.data.Dataset.new { vocab_size = V, seq_len = S, ignore_label_id = false,
                                        num_puzzle_identifiers = IDS, inputs = inputs, labels = labels,
                                        puzzle_identifiers = pid, puzzle_indices = pidx,
                                        group_indices = gidx, n = n })
end

local cfg = hrm.config.tiny { hidden_size = 32, num_heads = 2, H_layers = 1, L_layers = 1, H_cycles = 2,
                              L_cycles = 2, halt_max_steps = 4, halt_exploration_prob = 0.5,
                              vocab_size = V, seq_len = S, num_puzzle_identifiers = IDS, puzzle_emb_ndim = 32 }
local model = hrm.Model(cfg, { seed = 5 })
local opt = hrm.optim.AdamATan2(model, { lr = 3e-3, puzzle_emb_lr = 1e-2, weight_decay = 0.1 })
local sleep = o.sleep > 0 and function()
   local t = hrm.C.hrm_wall_time() + o.sleep
   while hrm.C.hrm_wall_time() < t do end
end or nil

local ok, res = pcall(hrm.train, {
   model = model, optim = opt, data = dataset(64, o.data_seed),
   eval = o.eval == 1 and dataset(24, 7) or nil, eval_every = o.eval == 1 and o.eval_every or nil, eval_batch = 5,
   steps = o.steps, batch = o.batch, accumulate = o.accumulate, seed = 3, log_every = 1, run = dir,
   resume = o.resume, progress = false, tensorboard = false,
   schedule = hrm.schedule.warmup_cosine { warmup = 2, total = 20, min_ratio = 0.1 },
   on_log = sleep and function(rec) if rec.split == "train" then sleep() end end,
   curriculum = o.fail_rank >= 0 and function(step)
      if step == 3 and hrm.dist.rank() == o.fail_rank then error("a failure on this rank alone") end
   end or nil,
})
if not ok then -- a refused launch, raised on every rank: rank 0 says it, as scripts/train.lua does
   if hrm.dist.rank() == 0 then io.stderr:write(tostring(res), "\n") end
   os.exit(1)
end
if hrm.dist.rank() == 0 then print(string.format("done: step %d", res.step)) end
