-- Golden parity of the TRM model file (and the models beside it) against the PyTorch twin
-- scripts/ref/trm_ref.py (fixtures from scripts/ref/make_trm_golden.py): trm = RoPE, a 3-position
-- prefix holding a zero-padded 96-value puzzle vector, 1 + 1 recursions of 3 + 1 calls;
-- trm_none = no positions, softmax, 2 + 1 recursions. Eval segments 1 and last (logits, Q,
-- metrics), a training step (metrics, Q and every gradient: the full backpropagation through the
-- last recursion's L_cycles + 1 calls), and a 10-step trajectory (metrics, halting, final weights
-- with the puzzle table, and the EMA of the weights kept by hrm.train's EMA), at 1e-4 relative to
-- each tensor's largest magnitude.
local hrm = require "hrm"
local json = require "dkjson"

local TOL = 1e-4
hrm.set_threads(1)   -- models this small run fastest on one thread (and this process is the spec's)

local function read_json(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return json.decode(s)
end

-- max |a - b| / max(max |b|, 1e-6); infinite when a holds a NaN or an infinity
local function rel_err(a, b)
   assert.equal(b:numel(), a:numel())
   local diff, scale = 0, 1e-6
   local ca, cb = a:float(), b:float()
   local pa, pb = ca:data(), cb:data()
   for i = 0, a:numel() - 1 do
      local x = pa[i]
      if x ~= x or math.abs(x) == math.huge then return math.huge end
      diff = math.max(diff, math.abs(x - pb[i]))
      scale = math.max(scale, math.abs(pb[i]))
   end
   return diff / scale
end

local function check_close(what, mine, ref)
   assert.is_not_nil(ref, "fixture tensor " .. what .. " is missing")
   local e = rel_err(mine, ref)
   assert.is_true(e <= TOL, string.format("%s: relative error %.3g > %.0e", what, e, TOL))
end

local function check_metrics(what, names, out, ref)
   assert.is_not_nil(ref, "fixture tensor " .. what .. " is missing")
   for i, k in ipairs(names) do
      assert.near(ref[i], out[k], TOL * math.max(1, math.abs(ref[i])), what .. "." .. k)
   end
end

for _, stem in ipairs({ "trm", "trm_none", "trm_mlp", "transformer" }) do
   describe("golden parity (" .. stem .. ")", function()
      local meta = read_json("spec/golden/" .. stem .. ".json")
      local fx = assert(hrm.safetensors.load("spec/golden/" .. stem .. ".safetensors"))
      local model = hrm.Model(meta.config, { seed = 3 })
      local B = meta.B
      local batch = { inputs = fx["batch.inputs"], labels = fx["batch.labels"],
                      puzzle_identifiers = fx["batch.puzzle_identifiers"] }
      local function load_weights()
         for _, name in ipairs(model:tensor_names()) do
            assert.is_not_nil(fx[name], "fixture tensor " .. name .. " is missing")
            model:tensor(name):copy(fx[name])
         end
      end

      it("has the twin's parameters under the twin's names", function()
         assert.equal(meta.num_parameters, model:num_parameters())
         local _, _, names = model:parameters()
         for _, name in ipairs(names) do assert.is_not_nil(fx["grad." .. name], name) end
      end)

      it("matches logits and Q after the first and last eval segment, and the last one's metrics", function()
         load_weights()
         local last = meta.config.halt_max_steps
         local carry = model:carry(B)
         for seg = 1, last do
            local out = model:step(carry, batch, { train = false })
            if seg == 1 or seg == last then
               local p = "eval.seg" .. seg .. "."
               check_close(stem .. " " .. p .. "logits", out.logits, fx[p .. "logits"])
               check_close(stem .. " " .. p .. "q_halt", out.q_halt_logits, fx[p .. "q_halt"])
               check_close(stem .. " " .. p .. "q_continue", out.q_continue_logits, fx[p .. "q_continue"])
               if seg == 1 then check_close(stem .. " eval.seg1.z_H", carry:tensor("z_H"), fx["eval.seg1.z_H"]) end
               if seg == last then check_metrics(stem .. " " .. p .. "metrics", meta.metric_names, out, fx[p .. "metrics"]) end
            end
         end
      end)

      it("matches the losses, metrics, Q and every gradient of a training step", function()
         load_weights()
         model:zero_grad()
         local out = model:step(model:carry(B), batch, { train = true, global_batch = meta.global_batch })
         check_metrics(stem .. " train.metrics", meta.metric_names, out, fx["train.metrics"])
         assert.equal(0, out.q_continue_loss)   -- no target-Q segment (no_ACT_continue)
         check_close(stem .. " train.q_halt", out.q_halt_logits, fx["train.q_halt"])
         local params, grads, names = model:parameters()
         assert.is_true(#params >= 10)
         for i, name in ipairs(names) do check_close(stem .. " grad." .. name, grads[i], fx["grad." .. name]) end
      end)

      it("follows the 10-step training trajectory and its EMA", function()
         load_weights()
         model:zero_grad()
         local o = meta.optim
         local opt = hrm.optim.AdamATan2(model, { lr = o.lr, betas = { o.beta1, o.beta2 },
            weight_decay = o.weight_decay, puzzle_emb_lr = o.puzzle_emb_lr,
            puzzle_emb_weight_decay = o.puzzle_emb_weight_decay })
         local ema = hrm.train.new_ema(model, meta.ema_decay)
         local carry = model:carry(B)
         for s = 1, meta.traj_steps do
            local out = model:step(carry, { inputs = fx["traj.inputs"][s], labels = fx["traj.labels"][s],
                                            puzzle_identifiers = fx["traj.puzzle_identifiers"][s] },
                                   { train = true, global_batch = meta.global_batch })
            check_metrics(string.format("%s traj.metrics[%d]", stem, s), meta.metric_names, out, fx["traj.metrics"][s])
            assert.same(fx["traj.halted"][s]:totable(), carry:tensor("halted"):to("i32"):totable())
            opt:step()
            ema:update()
         end
         local _, _, names = model:parameters()
         names[#names + 1] = "model.inner.puzzle_emb.weights"
         for _, name in ipairs(names) do
            check_close(stem .. " final." .. name, model:tensor(name), fx["final." .. name])
         end
         table.remove(names)
         local shadow = ema:tensors()
         for _, name in ipairs(names) do
            check_close(stem .. " ema." .. name, shadow[name], fx["ema." .. name])
         end
      end)
   end)
end
