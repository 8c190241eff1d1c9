#!/usr/bin/env bash
# scripts/bf16_quality.sh — does training with forward_dtype = "bfloat16" learn as well as float32?
#
#   SEEDS=N bash scripts/bf16_quality.sh [OUT]   # runs under OUT (default runs/bf16_quality)
#
# The README's 4x4 Sudoku run (1,500 steps) with seeds 1 .. N (default 3) in each precision, and one 9x9
# TRM-MLP run per precision under 10 minutes of training CPU time (the recipe of
# weights/sudoku9_compare.sh, seed 1). Each run is evaluated in its own precision on held-out
# generated puzzles (seed 777: 1,000 4x4 boards with 2-6 blanks; 500 9x9 boards with 31-40 and
# 500 with 41-55 blanks). Prints exact accuracy per run, the fp32 seeds' mean and standard
# deviation, and whether every bf16 figure lies within 2 of them. One thread per run, two runs at
# a time; a run whose evaluation is already in OUT is not repeated (raise SEEDS to add seeds).
set -euo pipefail
HRM=${HRM:-build/hrm}
OUT=${1:-runs/bf16_quality}
SEEDS=${SEEDS:-3}
mkdir -p "$OUT"

sudoku4() { # PREC SEED
   [ -s "$OUT/s4-$1-$2.json" ] && return
   "$HRM" scripts/train.lua --task sudoku --size 4 --config tiny \
      --set pos_encodings=learned --set loss=softmax --set puzzle_emb_ndim=0 --set halt_max_steps=2 \
      --set forward_dtype="$1" --generate 20000 --blanks 2-6 --steps 1500 --batch 64 --lr 2e-3 \
      --warmup 50 --seed "$2" --threads 1 --plain --run "$OUT/s4-$1-$2" > "$OUT/s4-$1-$2.log" 2>&1
   "$HRM" --threads 1 scripts/eval.lua "$OUT/s4-$1-$2/last.hrm" --task sudoku --size 4 --generate 1000 \
      --blanks 2-6 --seed 777 --json > "$OUT/s4-$1-$2.json"
}

sudoku9() { # PREC
   local run="$OUT/s9-$1"
   [ -s "$run-41-55.json" ] && return
   "$HRM" --threads 1 scripts/train.lua --task sudoku --config tiny --set hidden_size=96 --set num_heads=3 \
      --set halt_max_steps=8 --set loss=softmax --set puzzle_emb_ndim=0 --set forward_dtype="$1" \
      --arch trm_mlp --set L_layers=2 --set H_cycles=2 --set L_cycles=2 --set puzzle_emb_len=0 \
      --generate 60000 --blanks 8-30 --aug 0 --curriculum weights/sudoku9_curriculum.lua \
      --eval-generate 256 --eval-every 250 --steps 1000000 --minutes 10 --batch 64 --lr 1e-3 \
      --warmup 100 --weight-decay 0.1 --seed 1 --plain --log-every 50 --run "$run" > "$run.log" 2>&1
   for band in 31-40 41-55; do
      "$HRM" --threads 1 scripts/eval.lua "$run/last.hrm" --task sudoku --generate 500 --blanks "$band" \
         --seed 777 --json > "$run-$band.json"
   done
}

echo "training (logs in $OUT) ..."
sudoku9 float32 & sudoku9 bfloat16 & wait
for seed in $(seq 1 "$SEEDS"); do sudoku4 float32 "$seed" & sudoku4 bfloat16 "$seed" & wait; done

report=$(mktemp --suffix=.lua)
trap 'rm -f "$report"' EXIT
cat > "$report" <<'LUA'
local json = require "dkjson"
local out, seeds = arg[1], tonumber(arg[2])
local function exact(path)
   local f = assert(io.open(path))
   local r = json.decode(f:read("*a"))
   f:close()
   return r.exact_accuracy
end
local function stats(xs)
   local m = 0
   for _, x in ipairs(xs) do m = m + x / #xs end
   local v = 0
   for _, x in ipairs(xs) do v = v + (x - m) ^ 2 / (#xs - 1) end
   return m, math.sqrt(v)
end
local f32, b16 = {}, {}
print(string.format("4x4 Sudoku, 1,500 steps, %d seeds, held-out exact accuracy (1,000 boards, 2-6 blanks)", seeds))
for seed = 1, seeds do
   f32[seed] = exact(out .. "/s4-float32-" .. seed .. ".json")
   b16[seed] = exact(out .. "/s4-bfloat16-" .. seed .. ".json")
   print(string.format("  seed %d   float32 %.4f   bfloat16 %.4f", seed, f32[seed], b16[seed]))
end
local m, s = stats(f32)
local mb, sb = stats(b16)
print(string.format("  mean     float32 %.4f +- %.4f   bfloat16 %.4f +- %.4f (sd over seeds)", m, s, mb, sb))
print(string.format("  bf16 - fp32 means: %+.4f, standard error %.4f", mb - m, math.sqrt((s ^ 2 + sb ^ 2) / seeds)))
local ok = true
for seed = 1, seeds do
   local inside = math.abs(b16[seed] - m) <= 2 * s + 1e-9
   ok = ok and inside
   print(string.format("  bf16 seed %d: %+.4f from the fp32 mean = %.1f sd -> %s", seed, b16[seed] - m,
                       s > 0 and math.abs(b16[seed] - m) / s or 0, inside and "within 2 sd" or "OUTSIDE 2 sd"))
end
print("9x9 Sudoku, TRM-MLP 274k, 10 training CPU minutes, held-out exact accuracy (500 boards each)")
for _, band in ipairs({ "31-40", "41-55" }) do
   print(string.format("  %s blanks   float32 %.4f   bfloat16 %.4f", band, exact(out .. "/s9-float32-" .. band .. ".json"),
                       exact(out .. "/s9-bfloat16-" .. band .. ".json")))
end
local z = s > 0 and (mb - m) / s or 0
print(string.format("verdict on 4x4: the bf16 mean is %.1f sd of the fp32 seeds from their mean (%s); %s",
                    z, math.abs(z) <= 2 and "within 2" or "OUTSIDE 2",
                    ok and "every bf16 seed within 2 sd" or "some bf16 seeds OUTSIDE 2 sd"))
LUA
"$HRM" "$report" "$OUT" "$SEEDS"
