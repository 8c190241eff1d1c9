#!/usr/bin/env bash
# test_scripts.sh — the programs scripts/train.lua, eval.lua, solve.lua and plot.lua as a user
# meets them: --help (made by argparse for these, demo.lua and the bench scripts), user errors (bad task, missing file, bad number or --set value, unknown
# option; demo.lua's ranges) giving one clear line on stderr, no traceback and status 1 (--debug
# and HRM_DEBUG=1 show it), and a tiny end-to-end run (4x4 Sudoku, a model of hidden size 16, a
# few steps) that trains (lm_loss and exact accuracy first), resumes with --resume alone,
# evaluates, solves and plots.
# Usage: spec/sh/test_scripts.sh path/to/hrm   (ctest passes the built binary)
set -u
HRM=$(readlink -f "${1:?usage: test_scripts.sh path/to/hrm}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect_out() { # name expected actual
   if [ "$2" = "$3" ]; then ok; else bad "$1: expected [$2], got [$3]"; fi
}
expect_has() { # name needle haystack
   case "$3" in *"$2"*) ok ;; *) bad "$1: [$2] not in [$3]" ;; esac
}
# user_error NAME NEEDLE command...: status 1, NEEDLE on stderr, one line (plus an optional
# "---> HINT:" line), no traceback
user_error() {
   local name=$1 needle=$2; shift 2
   local err rc
   err=$("$@" 2>&1 >/dev/null); rc=$?
   expect_out "$name: status" "1" "$rc"
   expect_has "$name: message" "$needle" "$err"
   case "$err" in *"stack traceback"*) bad "$name: traceback in [$err]" ;; *) ok ;; esac
   expect_out "$name: one line" "1" "$(printf '%s\n' "$err" | grep -vc '^---> HINT:')"
}

T="$HRM scripts/train.lua"
E="$HRM scripts/eval.lua"
S="$HRM scripts/solve.lua"
P="$HRM scripts/plot.lua"

# ---- --help ----------------------------------------------------------------------------------------
# the text argparse makes from each script's options: usage first, every option, -h the same
for s in train eval solve plot demo bench bench_step bench_checkpoint; do
   out=$("$HRM" scripts/$s.lua --help); rc=$?
   expect_out "$s --help status" "0" "$rc"
   expect_out "$s --help usage" "usage: hrm scripts/$s.lua" "$(printf '%s\n' "$out" | head -1 | cut -d' ' -f1-3)"
   expect_has "$s --help lists --help" "-h, --help" "$out"
   expect_out "$s -h" "$out" "$("$HRM" scripts/$s.lua -h)"
done
out=$("$HRM" scripts/train.lua --help)
for opt in "--task NAME|FILE" "--generate N" "--eval-every N" "--puzzle-emb-weight-decay X" "--resume PATH" "--debug"; do
   expect_has "train --help lists $opt" "$opt" "$out"
done
expect_has "train --help exit status" "exit status: 0 done, 1 error, 130 interrupted" "$out"
expect_has "solve --help --halt" "--halt max|q" "$("$HRM" scripts/solve.lua --help)"

# ---- train.lua user errors ----------------------------------------------------------------------------
user_error "train bad task" "unknown task 'chess'" $T --task chess --generate 10
user_error "train missing csv" "no such file: $tmp/none.csv" $T --csv "$tmp/none.csv"
user_error "train missing adapter" "cannot load the task adapter" $T --task "$tmp/none.lua" --generate 4
user_error "train bad steps" "--steps expects a positive integer, got 'abc'" $T --steps abc
user_error "train zero batch" "--batch expects a positive integer, got '0'" $T --batch 0
user_error "train bad lr" "--lr expects a number >= 0, got 'fast'" $T --lr fast
user_error "train bad blanks" "--blanks expects a number or a range A-B" $T --blanks 40-x
user_error "train unknown option" "unknown option --nope" $T --nope
user_error "train misspelt option" "unknown option --stesp (did you mean --steps? see --help)" $T --stesp 3
user_error "train flag with a value" "--plain takes no value" $T --plain=yes
user_error "train stray argument" "unexpected argument 'extra' (see --help)" $T extra
user_error "train missing value" "--steps needs a value" $T --generate 4 --steps
user_error "train no data" "no training data" $T --steps 3
user_error "train bad preset" "--config: no such file: giant" $T --config giant --generate 4
user_error "train bad set" "unknown field 'hidden'" $T --task sudoku --size 4 --generate 4 --set hidden=3
user_error "train bad ema" "--ema expects a decay in (0, 1)" $T --generate 4 --ema 2
user_error "train missing curriculum" "--curriculum: no such file" $T --generate 4 --curriculum "$tmp/c.lua"
user_error "train missing resume" "--resume: no such file" $T --generate 4 --resume "$tmp/x.hrm"
TS="$T --task sudoku --size 4 --generate 8 --steps 1 --quiet --run $tmp/never"
user_error "train set not a number" "--set hidden_size=abc: hidden_size expects a number" $TS --set hidden_size=abc
user_error "train set out of range" "--set: config.halt_max_steps = 0 must be >= 1" $TS --set halt_max_steps=0
user_error "demo blanks out of range" "--blanks expects A-B with 0 <= A <= B <= 16" "$HRM" scripts/demo.lua --blanks 70-80
user_error "demo n zero" "--n expects a positive integer, got '0'" "$HRM" scripts/demo.lua --n 0
user_error "demo unknown option" "unknown option --nope" "$HRM" scripts/demo.lua --nope
user_error "bench bad steps" "--steps expects a positive integer, got 'x'" "$HRM" scripts/bench.lua --steps x
user_error "plot unknown option" "unknown option -x" $P -x
err=$(HRM_DEBUG=1 $TS --set halt_max_steps=0 2>&1)
expect_has "HRM_DEBUG shows the traceback" "stack traceback" "$err"
err=$($TS --set halt_max_steps=0 --debug 2>&1)
expect_has "--debug shows the traceback" "stack traceback" "$err"

# ---- a tiny run ------------------------------------------------------------------------------------------
run="$tmp/run"
out=$($T --task sudoku --size 4 --generate 64 --blanks 6-8 --eval-generate 16 --steps 6 --batch 8 \
      --eval-every 3 --log-every 2 --lr 1e-3 --set hidden_size=16 --set num_heads=2 --set expansion=2 \
      --set halt_max_steps=2 --threads 1 --plain --seed 3 --run "$run" 2>&1); rc=$?
expect_out "train run status" "0" "$rc"
expect_has "train run done" "done: step 6" "$out"
for f in config.json metrics.jsonl last.hrm best.hrm; do
   [ -f "$run/$f" ] && ok || bad "train run: no $f"
done
expect_out "metrics lines" "5" "$(wc -l < "$run/metrics.jsonl" | tr -d ' ')"
expect_has "metrics lines lead with lm_loss and exact accuracy" '"metrics":{"lm_loss":' "$(head -1 "$run/metrics.jsonl")"
expect_has "metrics lines lead with lm_loss and exact accuracy" ',"exact_accuracy":' "$(head -1 "$run/metrics.jsonl")"
expect_has "progress lines lead with lm_loss" "lm_loss" "$(printf '%s\n' "$out" | grep '^train ' | head -1)"
case "$(printf '%s\n' "$out" | grep '^train ' | head -1)" in *" loss "*) bad "progress shows the total loss" ;; *) ok ;; esac
expect_has "eval lines name the set once" "eval step 3  lm_loss" "$out"
case "$out" in *"eval eval"*) bad "eval eval in [$out]" ;; *) ok ;; esac
ls "$run" | grep -q '^events\.out\.tfevents\.' && ok || bad "train run: no TensorBoard event file"

# --resume alone continues from the run's own options; a truncated last.hrm is reported as such
out=$($T --resume "$run" --steps 8 --plain 2>&1); rc=$?
expect_out "resume alone status" "0" "$rc"
expect_has "resume alone continues" "done: step 8" "$out"
expect_has "resume alone keeps the task" "task sudoku4" "$out"
# a copied run folder resumes into the copy: the original is left as it was
cp -r "$run" "$tmp/copy" && before=$(cksum < "$run/metrics.jsonl")
out=$($T --resume "$tmp/copy" --steps 9 --plain 2>&1); rc=$?
expect_out "resume a copy status" "0" "$rc"
expect_has "resume a copy writes the copy" "run directory $tmp/copy" "$out"
expect_out "resume a copy leaves the original" "$before" "$(cksum < "$run/metrics.jsonl")"
cp -r "$run" "$tmp/cut" && head -c 3000 "$run/last.hrm" > "$tmp/cut/last.hrm"
user_error "resume truncated" "the file is truncated or corrupt" $T --resume "$tmp/cut" --steps 10

# ---- eval.lua ------------------------------------------------------------------------------------------------
out=$($E "$run" --threads 1 2>&1); rc=$?
expect_out "eval status" "0" "$rc"
expect_has "eval exact" "exact accuracy" "$out"
expect_has "eval histogram" "halting step" "$out"
out=$($E "$run/last.hrm" --halt q --json --threads 1); rc=$?
expect_out "eval json status" "0" "$rc"
expect_has "eval json count" '"count":16' "$out"
expect_has "eval json halt" '"halt":"q"' "$out"
user_error "eval missing checkpoint" "no such file: $tmp/none.hrm" $E "$tmp/none.hrm"
user_error "eval no checkpoint" "give a checkpoint" $E
user_error "eval bad batch" "--batch expects a positive integer, got '-2'" $E "$run" --batch -2
user_error "eval bad halt" "--halt expects max or q" $E "$run" --halt sometimes
user_error "eval bad task" "unknown task 'chess'" $E "$run" --task chess
user_error "eval task mismatch" "does not fit task maze" $E "$run" --task maze
user_error "eval missing csv" "no such file" $E "$run" --csv "$tmp/none.csv"
mkdir -p "$tmp/w"
"$HRM" -e "local m = hrm.Model(hrm.config.tiny{vocab_size = 6, seq_len = 16, hidden_size = 16, num_heads = 2})
           assert(m:save_safetensors('$tmp/w/model.safetensors'))"
user_error "eval safetensors without config" "needs a model config" $E "$tmp/w/model.safetensors" --task sudoku --size 4
user_error "eval missing config" "--config: no such file" $E "$tmp/w/model.safetensors" --config "$tmp/none.lua"
out=$($E "$tmp/w/model.safetensors" --config tiny --set vocab_size=6 --set seq_len=16 --set hidden_size=16 \
      --set num_heads=2 --task sudoku --size 4 --generate 8 --threads 1 2>&1); rc=$?
expect_out "eval safetensors status" "0" "$rc"
expect_has "eval safetensors count" "8 puzzles" "$out"

# ---- solve.lua -------------------------------------------------------------------------------------------------
out=$($S "$run" "1.3...1.4..2.3.." --no-color --threads 1 2>&1); rc=$?
expect_out "solve status" "0" "$rc"
expect_has "solve steps" "steps 2/2" "$out"
expect_has "solve confidence" "Q-halt confidence" "$out"
out=$(printf '1.3...1.4..2.3..\n.2..4..1..3..1.2\n' | $S "$run" --halt q --trace --no-color --threads 1); rc=$?
expect_out "solve stdin status" "0" "$rc"
expect_has "solve stdin second" "== puzzle 2 (stdin line 2)" "$out"
expect_has "solve trace" "-- segment 1" "$out"
expect_has "solve says whether the answer is valid" "valid answer" "$out"
out=$($S weights/sudoku4.hrm "..23...13.1..43." --size 4 --halt verify --no-color --threads 1 2>&1); rc=$?
expect_out "solve --halt verify status" "0" "$rc"
expect_has "solve --halt verify stops at a valid answer" ", valid answer" "$out"
"$HRM" -e "assert(hrm.Model(hrm.config.tiny{vocab_size = 11, seq_len = 16}):save('$tmp/reverse.hrm'))"
user_error "solve --halt verify without check" "--halt verify needs a task that can check an answer" \
   $S "$tmp/reverse.hrm" 0123456789012345 --task tasks/template.lua --halt verify
user_error "solve bad halt" "--halt expects max, q or verify, got 'x'" $S "$run" x --halt x
user_error "solve bad puzzle" "argument 1: sudoku.encode" $S "$run" "12x"
user_error "solve missing file" "--file: no such file" $S "$run" --file "$tmp/p.txt"
user_error "solve bad max-steps" "--max-steps expects a positive integer, got 'many'" $S "$run" x --max-steps many
user_error "solve missing checkpoint" "no such file" $S "$tmp/none" x

# ---- plot.lua ----------------------------------------------------------------------------------------------------
out=$($P "$run"); rc=$?
expect_out "plot status" "0" "$rc"
for f in loss accuracy steps lr halting; do
   head -c 4 "$run/$f.svg" 2>/dev/null | grep -q '<svg' && ok || bad "plot: no $f.svg"
done
user_error "plot missing dir" "no metrics.jsonl in $tmp/none" $P "$tmp/none"
# two runs compared (the same run twice, as two seeds of one model): three charts, the second dashed
mkdir -p "$tmp/cmp"
out=$($P "$run" "$run" --out "$tmp/cmp" --labels "tiny-s1,tiny-s2" --axis cpu); rc=$?
expect_out "plot compare status" "0" "$rc"
for f in exact accuracy loss; do
   grep -q 'training CPU minutes' "$tmp/cmp/compare_$f.svg" 2>/dev/null && ok || bad "plot compare: no compare_$f.svg against CPU minutes"
done
grep -q 'stroke-dasharray="6,4"' "$tmp/cmp/compare_loss.svg" && ok || bad "plot compare: the second seed is not dashed"
user_error "plot compare labels" "--labels names 1 runs, 2 were given" $P "$run" "$run" --out "$tmp/cmp" --labels one
user_error "plot compare axis" "--axis expects cpu, step or time, got 'epoch'" $P "$run" "$run" --out "$tmp/cmp" --axis epoch
user_error "plot no dir" "give a run directory" $P

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
