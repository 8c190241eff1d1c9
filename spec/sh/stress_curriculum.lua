-- spec/sh/stress_curriculum.lua — a curriculum for the interrupt stress runs (stress_interrupt.sh):
-- the bundled sudoku_blanks pattern on 4x4 boards, every level left as soon as it may be (100
-- steps), so the training data is swapped every 100 steps and signals land in swaps too.
return dofile("scripts/curricula/sudoku_blanks.lua").with_levels{
   { blanks = { 2, 4 }, promote_at = 0 },
   { blanks = { 3, 6 }, promote_at = 0 },
   { blanks = { 4, 8 }, promote_at = 0 },
   { blanks = { 2, 8 }, promote_at = 0 },
   { blanks = { 4, 10 } },
}
