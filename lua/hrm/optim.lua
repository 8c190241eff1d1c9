-- hrm.optim — the reference's optimizers over a model's flat parameter block (C: core/optim.c).
--
-- AdamATan2 (a = b = 1, no epsilon, decoupled decay first, betas (0.9, 0.95)) on every
-- parameter and sign-SGD with decoupled decay on the rows of the puzzle table seen in the batch;
-- AdamW as an option. opt:step([lr [, puzzle_emb_lr]]) applies and then zeroes the gradients;
-- the arguments are absolute rates, and `lr` alone scales the puzzle rate by lr / base lr.
local ffi = require "ffi"
local C = require "hrm.ffi"
local errors = require "hrm.errors"
local Tensor = require "hrm.Tensor"

local M = {}
local Optim = {}
Optim.__index = Optim

local KINDS = { AdamATan2 = 0, AdamW = 1 }

local function number_opt(opts, key, default, fname)
   local v = opts[key]
   if v == nil then return default end
   if type(v) ~= "number" or v ~= v or v < 0 then
      error(string.format("%s: option '%s' must be a number >= 0, got %s", fname, key, tostring(v)), 4)
   end
   return v
end

local function make(kind, model, opts)
   local fname = "hrm.optim." .. kind
   if type(model) ~= "table" or rawget(model, "store") == nil then
      error(fname .. ": bad argument #1 (model): expected an hrm.Model", 3)
   end
   opts = opts or {}
   local betas = opts.betas or { 0.9, 0.95 }
   if type(betas) ~= "table" or type(betas[1]) ~= "number" or type(betas[2]) ~= "number"
      or betas[1] < 0 or betas[1] >= 1 or betas[2] < 0 or betas[2] >= 1 then
      error(fname .. ": option 'betas' must be {b1, b2} with 0 <= b < 1", 3)
   end
   local cfg = ffi.new("hrm_optim_config")
   cfg.kind = KINDS[kind]
   cfg.lr = number_opt(opts, "lr", 1e-4, fname)
   cfg.beta1, cfg.beta2 = betas[1], betas[2]
   cfg.weight_decay = number_opt(opts, "weight_decay", 0.1, fname)
   cfg.eps = number_opt(opts, "eps", 1e-8, fname)
   cfg.puzzle_emb_lr = number_opt(opts, "puzzle_emb_lr", 1e-2, fname)
   cfg.puzzle_emb_weight_decay = number_opt(opts, "puzzle_emb_weight_decay", 0.1, fname)
   local out = ffi.new("hrm_optim *[1]")
   if C.hrm_optim_new(out, model.store._h, cfg) ~= 0 then
      error(errors.last(), 3)
   end
   return setmetatable({ _h = ffi.gc(out[0], C.hrm_optim_free), model = model, kind = kind,
                         lr = cfg.lr, puzzle_emb_lr = cfg.puzzle_emb_lr,
                         settings = { lr = cfg.lr, betas = { betas[1], betas[2] },
                                      weight_decay = cfg.weight_decay, eps = cfg.eps,
                                      puzzle_emb_lr = cfg.puzzle_emb_lr,
                                      puzzle_emb_weight_decay = cfg.puzzle_emb_weight_decay } },
                       Optim)
end

function M.AdamATan2(model, opts) return make("AdamATan2", model, opts) end
function M.AdamW(model, opts) return make("AdamW", model, opts) end

function Optim:step(lr, puzzle_emb_lr)
   if lr == nil then
      lr, puzzle_emb_lr = self.lr, self.puzzle_emb_lr
   elseif puzzle_emb_lr == nil then
      puzzle_emb_lr = self.lr > 0 and self.puzzle_emb_lr * lr / self.lr or self.puzzle_emb_lr
   end
   if type(lr) ~= "number" or lr < 0 or type(puzzle_emb_lr) ~= "number" or puzzle_emb_lr < 0 then
      error("step: learning rates must be numbers >= 0", 2)
   end
   if C.hrm_optim_step(self._h, lr, puzzle_emb_lr) ~= 0 then
      error(errors.last(), 2)
   end
end

-- A view of the optimizer state: "m", "v" (flat) or "t" (the step count).
function Optim:tensor(name)
   local out = ffi.new("hrm_tensor *[1]")
   if C.hrm_optim_tensor(out, self._h, name) ~= 0 then error(errors.last(), 2) end
   return Tensor._wrap(out[0])
end

function Optim:__tostring()
   local s = self.settings
   return string.format("hrm.optim.%s (lr %g, betas %g/%g, weight_decay %g, puzzle_emb_lr %g, puzzle_emb_weight_decay %g)",
                        self.kind, s.lr, s.betas[1], s.betas[2], s.weight_decay, s.puzzle_emb_lr,
                        s.puzzle_emb_weight_decay)
end

M.Optim = Optim
return M
