-- sudoku9_curriculum.lua — the curriculum that trained weights/sudoku9.hrm on a CPU: generated
-- 9x9 boards whose blank count grows each time the smoothed train exact accuracy crosses the
-- level's threshold (the pattern of scripts/curricula/sudoku_blanks.lua, with levels sized for a
-- small model that starts from nothing).
local root = package.hrm_home or "."
local blanks = dofile(root .. "/scripts/curricula/sudoku_blanks.lua")

return blanks.with_levels{
   { blanks = { 2, 6 }, promote_at = 0.8 },
   { blanks = { 5, 10 }, promote_at = 0.8 },
   { blanks = { 8, 15 }, promote_at = 0.8 },
   { blanks = { 12, 20 }, promote_at = 0.75 },
   { blanks = { 16, 25 }, promote_at = 0.75 },
   { blanks = { 20, 30 }, promote_at = 0.7 },
   { blanks = { 25, 35 }, promote_at = 0.7 },
   { blanks = { 30, 40 }, promote_at = 0.7 },
   { blanks = { 35, 45 }, promote_at = 0.7 },
   { blanks = { 40, 50 }, promote_at = 0.7 },
   { blanks = { 45, 55 } },
}
