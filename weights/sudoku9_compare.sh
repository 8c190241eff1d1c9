#!/usr/bin/env bash
# weights/sudoku9_compare.sh — HRM vs TRM vs TRM-MLP on 9x9 Sudoku under one budget of training
# CPU time: the runs behind the table and the charts of weights/README.md.
#
#   bash weights/sudoku9_compare.sh train MODEL SEED MINUTES OUT   # MODEL: hrm | trm | trm_mlp
#   bash weights/sudoku9_compare.sh eval RUN_DIR [MODEL]           # RUN_DIR/bands.jsonl (default MODEL: RUN_DIR/last.hrm)
#
# Sizes: hidden 96, 3 heads, expansion 4, 8 ACT segments, learned positions (none for TRM-MLP),
# softmax loss, no puzzle embedding; about 230k parameters each. Each model does the work of 24
# block forwards per training step (a backward counted as two): HRM, two one-block nets, 2 H-cycles
# x 4 L-cycles = 10 forwards with the one-step gradient through the last two (2 x 2), plus the 10
# forwards of the next segment that its Q-learning target needs; TRM and TRM-MLP, one two-block
# net, 2 recursions of (2 latent + 1 answer) updates = 12 block forwards, the last recursion
# backpropagated in full (6 x 2), and no target pass (TRM halts on q_halt > 0 alone).
# Same data, curriculum, optimizer, batch and budget for all.
set -euo pipefail
HRM=${HRM:-build/hrm}
SHARED=${SHARED:-../shared/data/sudoku}
COMMON=(--task sudoku --config tiny --set hidden_size=96 --set num_heads=3 --set halt_max_steps=8
        --set loss=softmax --set puzzle_emb_ndim=0)

arch_args() {
   case "$1" in
      hrm) echo "--arch hrm --set H_layers=1 --set L_layers=1 --set H_cycles=2 --set L_cycles=4 --set pos_encodings=learned" ;;
      trm) echo "--arch trm --set L_layers=2 --set H_cycles=2 --set L_cycles=2 --set puzzle_emb_len=0 --set pos_encodings=learned" ;;
      trm_mlp) echo "--arch trm_mlp --set L_layers=2 --set H_cycles=2 --set L_cycles=2 --set puzzle_emb_len=0" ;;
      *) echo "unknown model '$1' (hrm, trm, trm_mlp)" >&2; exit 2 ;;
   esac
}

case "${1:-}" in
train)
   model=$2 seed=$3 minutes=$4 out=$5
   # shellcheck disable=SC2046
   "$HRM" --threads 1 scripts/train.lua "${COMMON[@]}" $(arch_args "$model") \
      --generate 60000 --blanks 8-30 --aug 0 --curriculum weights/sudoku9_curriculum.lua \
      --eval-generate 256 --eval-every 250 --steps 1000000 --minutes "$minutes" \
      --batch 64 --lr 1e-3 --warmup 100 --weight-decay 0.1 --seed "$seed" --run "$out" --plain --log-every 50
   ;;
eval)
   # One JSON line per held-out set in RUN_DIR/bands.jsonl (every row runs the 8 segments).
   run=$2 model=${3:-$2/last.hrm}   # the model at the end of the budget
   {
      for band in 8-12 13-16 17-20 21-25 26-30 31-40 41-55; do
         printf '{"set":"generated %s","result":' "$band"
         "$HRM" --threads 1 scripts/eval.lua "$model" --task sudoku --generate 500 --blanks "$band" --seed 777 --json
         echo '}'
      done
      for f in sudoku_extreme_train_subsample1k tdoku_magictour_top1465; do
         printf '{"set":"%s","result":' "$f"
         "$HRM" --threads 1 scripts/eval.lua "$model" --task sudoku --csv "$SHARED/$f.csv" --limit 300 --json
         echo '}'
      done
   } | tr -d '\n' | sed 's/}{/}\n{/g; s/$/\n/' > "$run/bands.jsonl"
   ;;
*) sed -n 2,7p "$0"; exit 2 ;;
esac
