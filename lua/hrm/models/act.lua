-- hrm/models/act.lua — the ACT wrapper every recurrent model file shares (HRM_SPEC §2, §3).
--
-- One step is one segment for every row (or, at inference, every active row): reset the halted
-- rows from the batch, run the model file's embed and forward (with the tape in training),
-- decide halting (exploration in training, the target-Q from one more segment without
-- gradient), compute the loss head, run the backward of loss / global_batch, and commit the
-- carry. A model file may set net.act = {halt = "compare"|"positive", target_q = bool}: HRM's
-- q_halt > q_continue with the target-Q (the default), or TRM's q_halt > 0 without it
-- (cfg.no_ACT_continue = true gives the latter to any model); without a target-Q the loss is
-- lm + 0.5·q_halt BCE. Every per-row or per-token loop is a C op (core/act.c); this file only orders them.
local ffi = require "ffi"
local C = require "hrm.ffi"
local Tensor = require "hrm.Tensor"

local M = {}

local function check(rc, level)
   if rc ~= 0 then error((ffi.string(C.hrm_last_error()):gsub(" %(%S+:%d+%)$", "")), (level or 1) + 1) end
end

M.METRICS = { "loss", "lm_loss", "q_halt_loss", "q_continue_loss", "accuracy", "exact_accuracy",
              "q_halt_accuracy", "steps", "count" }
M.FIELDS = { "steps", "halted", "inputs", "labels", "puzzle_ids" }

-- ---- the carry -------------------------------------------------------------------------------------

local Carry = {}
Carry.__index = Carry
M.Carry = Carry

-- A tensor made on the host, moved to the model's device (itself on the CPU).
local function on_device(model, t) return t:to(model.device) end

-- A carry of B rows for `model`, in the model's device memory: its recurrent states (B, T, D) and
-- the per-row fields; every row starts halted, so the first step resets all of them.
function M.new_carry(model, B)
   local cfg, net = model.cfg, model.net
   local T, D, S = net.tokens, cfg.hidden_size, cfg.seq_len
   local c = ffi.new("hrm_act_carry")
   local carry = setmetatable({ B = B, model = model, c = c, states = {}, state_names = {} }, Carry)
   local function new(t) return on_device(model, t) end
   c.nstates = #net.states
   for k, st in ipairs(net.states) do
      local z = new(Tensor.zeros(B, T, D))
      carry.states[st[1]] = z
      carry.state_names[k] = st[1]
      c.states[k - 1] = z:cdata()
      local init = model.store:tensor(st[2])
      carry["_init" .. k] = init  -- the struct holds its pointer: keep the view alive
      c.inits[k - 1] = init:cdata()
   end
   carry.steps = new(Tensor.zeros(B, "i32"))
   carry.halted = new(Tensor.ones(B, "u8"))
   carry.inputs = new(Tensor.zeros(B, S, "i32"))
   carry.labels = new(Tensor.full({ B, S }, -100, "i32"))
   carry.puzzle_ids = new(Tensor.zeros(B, "i32"))
   c.steps, c.halted = carry.steps:cdata(), carry.halted:cdata()
   c.inputs, c.labels, c.puzzle_ids = carry.inputs:cdata(), carry.labels:cdata(), carry.puzzle_ids:cdata()
   carry.logits = new(Tensor.zeros(B, S, cfg.vocab_size))
   carry.q_halt_logits = new(Tensor.zeros(B))
   carry.q_continue_logits = new(Tensor.zeros(B))
   return carry
end

-- carry:tensor(name): the carry's tensor "z_H", "z_L" (the model's states), "steps", "halted",
-- "inputs", "labels" or "puzzle_ids" (not a copy).
function Carry:tensor(name)
   local t = self.states[name]
   if t == nil then
      for _, f in ipairs(M.FIELDS) do if f == name then t = self[f] end end
   end
   if t == nil then
      error(string.format("carry_tensor: unknown name \"%s\" (%s, %s)", tostring(name),
                          table.concat(self.state_names, ", "), table.concat(M.FIELDS, ", ")), 2)
   end
   return t
end

-- Names of every carry tensor, states first (checkpoints save them).
function Carry:tensor_names()
   local t = {}
   for _, n in ipairs(self.state_names) do t[#t + 1] = n end
   for _, n in ipairs(M.FIELDS) do t[#t + 1] = n end
   return t
end

function Carry:batch_size() return self.B end

-- ---- working buffers, one set per batch size ------------------------------------------------------------

local function new_work(model, B)
   local cfg, net = model.cfg, model.net
   local T, D, S, V = net.tokens, cfg.hidden_size, cfg.seq_len, cfg.vocab_size
   local function zeros(...) return on_device(model, Tensor.zeros(...)) end
   local w = {
      rows = zeros(B, "i32"), x = zeros(B, T, D), logits = zeros(B, S, V),
      q = zeros(B, 2), q_next = zeros(B, 2), target = zeros(B),
      new_steps = zeros(B, "i32"), new_halted = zeros(B, "u8"),
      dlogits = zeros(B, S, V), dq = zeros(B, 2),
      inputs = zeros(B, S, "i32"), labels = zeros(B, S, "i32"), puzzle_ids = zeros(B, "i32"),
      z = {}, next = {}, views = {}, B = B,
   }
   if model.device ~= "cpu" then w.active = zeros(B, "u8") end  -- a host active mask, staged
   for _, st in ipairs(net.states) do
      w.z[st[1]] = zeros(B, T, D)
      w.next[st[1]] = zeros(B, T, D)
   end
   return w
end

-- Views of the first n rows of every buffer (n < B at inference with inactive rows).
local function rows_view(w, n)
   if n == w.B then return w end
   local v = w.views[n]
   if v then return v end
   v = { z = {}, next = {} }
   for k, t in pairs(w) do
      if Tensor.is_tensor(t) and k ~= "rows" and k ~= "active" then v[k] = t:narrow(1, 1, n) end
   end
   for name, t in pairs(w.z) do v.z[name] = t:narrow(1, 1, n) end
   for name, t in pairs(w.next) do v.next[name] = t:narrow(1, 1, n) end
   v.rows = w.rows
   w.views[n] = v
   return v
end

local function work_for(model, B)
   model._work = model._work or {}
   local w = model._work[B]
   if not w then
      w = new_work(model, B)
      model._work[B] = w
   end
   return w
end

-- ---- one segment ----------------------------------------------------------------------------------------

local n_buf = ffi.new("int32_t[1]")
local metrics_buf = ffi.new("hrm_act_metrics")
local LOSS = { stablemax = 0, softmax = 1 }

-- The model's ACT options: {halt = C rule, target_q = bool}.
function M.options(model)
   local a = model.net.act
   if a == nil then
      local trm_rule = model.cfg.no_ACT_continue
      return { rule = trm_rule and C.HRM_HALT_POSITIVE or C.HRM_HALT_COMPARE, target_q = not trm_rule }
   end
   if a.halt ~= "compare" and a.halt ~= "positive" then
      error("hrm.Model: the model file's net.act.halt must be \"compare\" or \"positive\", got " .. tostring(a.halt), 3)
   end
   return { rule = a.halt == "positive" and C.HRM_HALT_POSITIVE or C.HRM_HALT_COMPARE, target_q = a.target_q and true }
end

-- step(model, carry, batch {inputs, labels, puzzle_identifiers as hrm_batch}, opts) -> metrics
function M.step(model, carry, b, opts)
   local cfg, net, arch = model.cfg, model.net, model.arch
   local train = opts.train and true or false
   local B = carry.B
   check(C.hrm_act_check_batch(carry.c, b, cfg.vocab_size, cfg.num_puzzle_identifiers), 3)
   local w = work_for(model, B)
   local n, rows = B, nil
   if opts.active ~= nil then
      local active = opts.active
      if active:device() ~= model.device then active = w.active:copy(active) end
      check(C.hrm_act_rows(n_buf, w.rows:cdata(), active:cdata()), 3)
      n = n_buf[0]
      if n < B then rows = w.rows end
   end
   local r = {}
   for _, k in ipairs(M.METRICS) do r[k] = 0 end
   r.logits, r.q_halt_logits, r.q_continue_logits = carry.logits, carry.q_halt_logits, carry.q_continue_logits
   if n == 0 then return r end
   local rows_c = rows and rows:cdata() or nil
   check(C.hrm_act_reset(carry.c, b, rows_c, n), 3)

   -- a bf16 model's carry holds bf16 values (HRM_SPEC §1.12), reset rows from H_init/L_init too
   local bf16 = cfg.forward_dtype == "bfloat16"
   local function round(t) if bf16 then check(C.hrm_tensor_round_bf16(t:cdata()), 4) end end

   -- the rows to compute: the carry itself when every row runs, else gathered copies
   local v = rows_view(w, n)
   local z, inputs, labels, pids = carry.states, carry.inputs, carry.labels, carry.puzzle_ids
   if rows then
      z = {}
      for name, t in pairs(carry.states) do
         check(C.hrm_rows_gather(v.z[name]:cdata(), t:cdata(), rows_c, n), 3)
         z[name] = v.z[name]
      end
      for _, f in ipairs({ "inputs", "labels", "puzzle_ids" }) do
         check(C.hrm_rows_gather(v[f]:cdata(), carry[f]:cdata(), rows_c, n), 3)
      end
      inputs, labels, pids = v.inputs, v.labels, v.puzzle_ids
   end
   for _, t in pairs(z) do round(t) end

   -- the segment
   local tape = train and model.tape or nil
   if tape then tape:reset() end
   local x = arch.embed(net, inputs, pids, v.x, tape)
   local new_z, logits, q = arch.forward(net, z, x, { logits = v.logits, q = v.q }, tape)

   -- halting (§2.2.3) and, in training with ACT, the target-Q from one more segment
   local max_steps = cfg.halt_max_steps
   local actopt = M.options(model)
   check(C.hrm_act_halt(v.new_steps:cdata(), v.new_halted:cdata(), carry.steps:cdata(), rows_c, n,
                        q:cdata(), max_steps, cfg.halt_exploration_prob, train and 1 or 0,
                        actopt.rule, model.store:rng(), opts.row_offset or 0), 3)
   local target = nil
   if train and max_steps > 1 and actopt.target_q then
      for name, t in pairs(new_z) do v.next[name]:copy(t) round(v.next[name]) end
      local _, _, q_next = arch.forward(net, v.next, x, { q = v.q_next })
      check(C.hrm_act_target_q(v.target:cdata(), q_next:cdata(), v.new_steps:cdata(), n, max_steps), 3)
      target = v.target:cdata()
   end

   -- the loss head (§3) on the labels of the current data, and its backward
   local have_labels = b.labels ~= nil or train
   if have_labels then
      check(C.hrm_act_loss(metrics_buf, train and v.dlogits:cdata() or nil, train and v.dq:cdata() or nil,
                           logits:cdata(), q:cdata(), labels:cdata(), v.new_steps:cdata(),
                           v.new_halted:cdata(), target, n, LOSS[cfg.loss],
                           opts.global_batch and opts.global_batch > 0 and opts.global_batch or B), 3)
      for _, k in ipairs(M.METRICS) do r[k] = metrics_buf[k] end
   end
   if tape then tape:backward({ logits, q }, { v.dlogits, v.dq }) end

   -- commit the new carry and the outputs
   for name, t in pairs(carry.states) do
      check(C.hrm_rows_scatter(t:cdata(), new_z[name]:cdata(), rows_c, n), 3)
      round(t)
   end
   check(C.hrm_act_commit(carry.c, v.new_steps:cdata(), v.new_halted:cdata(), rows_c, n,
                          carry.logits:cdata(), carry.q_halt_logits:cdata(), carry.q_continue_logits:cdata(),
                          logits:cdata(), q:cdata()), 3)
   return r
end

return M
