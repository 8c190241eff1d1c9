-- hrm_window2.lua — HRM with a wider gradient window: the last two L calls and the last H call
-- carry gradient (the reference's 1-step gradient keeps one L call). A worked variant of
-- lua/hrm/models/hrm.lua for docs/models.md; train it with cfg.arch = "docs/examples/hrm_window2.lua".
--
-- Everything but the forward comes from the HRM file: the same modules, names and heads, so its
-- checkpoints and safetensors use the reference's names and the bundled weights load into it.
local nn = require "hrm.nn"
local HRM = require "hrm.models.hrm"

local M = { name = "hrm_window2", build = HRM.build, embed = HRM.embed }

function M.forward(net, z, x, out, tape)
   local cfg = net.cfg
   local zH, zL = z.z_H, z.z_L
   local calls = cfg.H_cycles * cfg.L_cycles     -- L calls in a segment
   local l_call = 0
   for h = 1, cfg.H_cycles do
      for _ = 1, cfg.L_cycles do
         l_call = l_call + 1
         -- the last two L calls are in the graph (the first of them reads the detached state)
         zL = l_call > calls - 2 and nn.call(tape, net.L_level, zL, zL, zH, x)
              or net.L_level:forward(zL, zL, zH, x)
      end
      if h < cfg.H_cycles then net.H_level:forward(zH, zH, zL)
      else zH = nn.call(tape, net.H_level, zH, zH, zL) end
   end
   local q = nn.call(tape, net.q_head, out.q, zH)
   local logits = out.logits and nn.call(tape, net.lm_head, out.logits, zH)
   return { z_H = zH, z_L = zL }, logits, q
end

return M
