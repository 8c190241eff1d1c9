-- Golden parity through the Lua API: the fixtures of the PyTorch twin (spec/golden) reproduced
-- by hrm.Model:step and hrm.optim.AdamATan2 (the C test test_parity.c checks the same from C).
local hrm = require "hrm"
local json = require "dkjson"

local TOL = 1e-4

local function read_json(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return json.decode(s)
end

local function rel_err(a, b)
   local diff, scale = 0, 1e-6
   local ca, cb = a:float(), b:float() -- kept alive while their data is read
   local pa, pb = ca:data(), cb:data()
   for i = 0, a:numel() - 1 do
      diff = math.max(diff, math.abs(pa[i] - pb[i]))
      scale = math.max(scale, math.abs(pb[i]))
   end
   return diff / scale
end

for _, stem in ipairs({ "tiny", "learned" }) do
   describe("golden parity (" .. stem .. ")", function()
      local meta = read_json("spec/golden/" .. stem .. ".json")
      local fx = assert(hrm.safetensors.load("spec/golden/" .. stem .. ".safetensors"))
      local B = meta.B
      local model = hrm.Model(meta.config, { seed = 3 })

      local function load_weights()
         for _, name in ipairs(model:tensor_names()) do
            model:tensor(name):copy(fx[name])
         end
      end
      local batch = { inputs = fx["batch.inputs"], labels = fx["batch.labels"],
                      puzzle_identifiers = fx["batch.puzzle_identifiers"] }

      it("matches logits and Q after the first and last eval segment", function()
         load_weights()
         local carry = model:carry(B)
         for seg = 1, meta.config.halt_max_steps do
            local out = model:step(carry, batch, { train = false })
            if seg == 1 or seg == meta.config.halt_max_steps then
               local p = "eval.seg" .. seg .. "."
               assert.is_true(rel_err(out.logits, fx[p .. "logits"]) < TOL)
               assert.is_true(rel_err(out.q_halt_logits, fx[p .. "q_halt"]) < TOL)
               assert.is_true(rel_err(out.q_continue_logits, fx[p .. "q_continue"]) < TOL)
            end
         end
      end)

      it("matches the losses, metrics and every gradient of a training step", function()
         load_weights()
         model:zero_grad()
         local out = model:step(model:carry(B), batch, { train = true, global_batch = meta.global_batch })
         local ref = fx["train.metrics"]
         for i, k in ipairs(meta.metric_names) do
            assert.near(ref[i], out[k], TOL * math.max(1, math.abs(ref[i])))
         end
         local params, grads, names = model:parameters()
         assert.is_true(#params >= 8)
         for i, name in ipairs(names) do
            local e = rel_err(grads[i], fx["grad." .. name])
            assert(e < TOL, name .. ": relative error " .. e)
         end
      end)

      it("follows the 10-step training trajectory", function()
         load_weights()
         model:zero_grad()
         local o = meta.optim
         local opt = hrm.optim.AdamATan2(model, { lr = o.lr, betas = { o.beta1, o.beta2 },
            weight_decay = o.weight_decay, puzzle_emb_lr = o.puzzle_emb_lr,
            puzzle_emb_weight_decay = o.puzzle_emb_weight_decay })
         local carry = model:carry(B)
         for s = 1, meta.traj_steps do
            local out = model:step(carry, { inputs = fx["traj.inputs"][s], labels = fx["traj.labels"][s],
                                            puzzle_identifiers = fx["traj.puzzle_identifiers"][s] },
                                   { train = true, global_batch = meta.global_batch })
            local ref = fx["traj.metrics"][s]
            assert.near(ref[1], out.loss, TOL * math.max(1, math.abs(ref[1])))
            assert.same(fx["traj.halted"][s]:totable(), carry:tensor("halted"):to("i32"):totable())
            opt:step()
         end
         for _, name in ipairs(model:tensor_names()) do
            local ref = fx["final." .. name]
            if ref then
               local e = rel_err(model:tensor(name), ref)
               assert(e < TOL, name .. ": relative error " .. e)
            end
         end
      end)
   end)
end
