-- scripts/curricula/sudoku_blanks.lua — a curriculum for hrm.train: Sudoku boards get more blank
-- cells each time the model's exact accuracy crosses a threshold. It is also the pattern to copy
-- for your own curricula:
--
--    hrm scripts/train.lua --task sudoku --generate 2000 --curriculum scripts/curricula/sudoku_blanks.lua
--
-- A curriculum file returns function(step, metrics, ctx) -> nil or a table of changes, or (as this
-- file does, to export with_levels too) a table whose `curriculum` field is that function. hrm.train
-- calls it once before the first step (metrics == nil; also after a resume, with ctx.resumed) and
-- after every optimizer step with metrics = {train = this step's metrics, eval = the latest
-- evaluation by set name, evaluated = true on steps that just evaluated}. Changes it may return:
-- data (a new training source), eval, lr, puzzle_emb_lr, halt_max_steps / halt_exploration_prob
-- (when the model supports set_halting), message (logged to metrics.jsonl). Keep your own state
-- in ctx.state (plain numbers/strings/tables): it is saved in every checkpoint and given back on
-- resume, so a resumed run rebuilds the same data and continues exactly.
-- Does not: touch the model or the optimizer directly (return changes instead).

-- The levels: blank cells per generated board, and the smoothed train exact accuracy that moves
-- the run to the next level. Edit these (or copy the file) for your own schedule, or build a
-- curriculum over other levels with `dofile(this file).with_levels{...}` (weights/ does this).
local DEFAULT_LEVELS = {
   { blanks = { 20, 30 }, promote_at = 0.8 },
   { blanks = { 30, 40 }, promote_at = 0.8 },
   { blanks = { 40, 50 }, promote_at = 0.7 },
   { blanks = { 50, 60 } },                      -- the last level: stay here
}
local SMOOTHING = 0.98        -- exponential moving average of the train exact accuracy
local MIN_STEPS = 100         -- steps at a level before it may be left

local function with_levels(LEVELS)
   -- Data for a level: generated deterministically from (seed, level), so that a resumed run gets
   -- the very same boards and the saved sampler position still means the same thing.
   local function level_data(ctx, level)
      local task = ctx.task or require("tasks.sudoku")
      local args = ctx.args or {}
      local n = args.generate or 2000
      local seed = (args.seed or 0) * 1000 + level
      local boards, err = task.generate(n, { blanks = LEVELS[level].blanks, seed = seed })
      if not boards then error("sudoku_blanks: " .. tostring(err), 0) end
      return task.dataset{ examples = boards, num_aug = args.aug or 0, seed = seed }
   end

   return function(step, metrics, ctx)
      local st = ctx.state                      -- persisted across checkpoints
      if metrics == nil then
         -- Start (or resume): (re)build the data of the current level.
         st.level = st.level or 1
         st.since = st.since or step
         st.ema = st.ema or 0
         return {
            data = level_data(ctx, st.level),
            message = string.format("curriculum: level %d, %d-%d blanks%s", st.level, LEVELS[st.level].blanks[1],
                                    LEVELS[st.level].blanks[2], ctx.resumed and " (resumed)" or ""),
         }
      end
      -- Smooth the train exact accuracy (only rows that halted this step count in it).
      if metrics.train.count > 0 then
         st.ema = SMOOTHING * st.ema + (1 - SMOOTHING) * metrics.train.exact_accuracy
      end
      local level = LEVELS[st.level]
      if level.promote_at and step - st.since >= MIN_STEPS and st.ema >= level.promote_at then
         st.level, st.since, st.ema = st.level + 1, step, 0
         local b = LEVELS[st.level].blanks
         return {
            data = level_data(ctx, st.level),
            message = string.format("curriculum: level %d at step %d, %d-%d blanks", st.level, step, b[1], b[2]),
         }
      end
   end
end

return { curriculum = with_levels(DEFAULT_LEVELS), with_levels = with_levels }
