#!/usr/bin/env bash
# test_archs.sh — every architecture through the programs: for trm, trm_mlp, transformer and a
# model file (docs/examples/hrm_window2.lua), scripts/train.lua --arch trains a tiny model on
# 4x4 Sudoku (with an EMA and evaluations), eval.lua evaluates it (EMA weights), solve.lua solves
# a puzzle with the Q policy, and a run stopped halfway and resumed with --resume ends with the
# same losses, weights and EMA as one run straight through. Also weights in a .safetensors file
# read with --config and --arch, and --arch user errors.
# Usage: spec/sh/test_archs.sh path/to/hrm   (ctest passes the built binary)
set -u
HRM=$(readlink -f "${1:?usage: test_archs.sh path/to/hrm}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect_out() { if [ "$2" = "$3" ]; then ok; else bad "$1: expected [$2], got [$3]"; fi; }
expect_has() { case "$3" in *"$2"*) ok ;; *) bad "$1: [$2] not in [$3]" ;; esac; }

T="$HRM scripts/train.lua"
COMMON="--task sudoku --size 4 --generate 64 --blanks 6-8 --batch 8 --log-every 1 --lr 1e-3
        --set hidden_size=16 --set num_heads=2 --set halt_max_steps=3 --ema 0.9 --threads 1 --plain --seed 3"

losses() { grep '"split":"train"' "$1/metrics.jsonl" | grep -o '[{,]"loss":[-0-9.e]*' | tr '\n' ' '; }

for arch in trm trm_mlp transformer docs/examples/hrm_window2.lua; do
   name=$(basename "$arch" .lua)
   case $arch in trm|trm_mlp) extra="--set H_cycles=2 --set L_cycles=2" ;; *) extra="" ;; esac
   run="$tmp/$name"
   out=$($T --arch "$arch" $COMMON $extra --eval-generate 16 --eval-every 2 --steps 4 --run "$run" 2>&1); rc=$?
   expect_out "$name train status" "0" "$rc"
   expect_has "$name train done" "done: step 4" "$out"
   arch_of=$("$HRM" -e "print(assert(hrm.Model.load('$run/last.hrm')):config().arch)" 2>&1)
   expect_out "$name checkpoint arch" "$(case $arch in trm_mlp) echo trm ;; *) echo "$arch" ;; esac)" "$arch_of"
   ema_of() {  # the EMA weights stored inside a checkpoint, as one line of numbers
      "$HRM" -e "local st = assert(require('hrm.checkpoint').load('$1'))
         local keys, out = {}, {}
         for k in pairs(st.tensors or {}) do if k:match('^ema%.') then keys[#keys + 1] = k end end
         table.sort(keys)
         for _, k in ipairs(keys) do local t = st.tensors[k]; out[#out + 1] = k .. ' ' .. t:sum() end
         print(#keys > 0 and table.concat(out, ' ') or 'no EMA')" 2>&1
   }
   [ "$(ema_of "$run/last.hrm")" != "no EMA" ] && ok || bad "$name: no EMA weights in the checkpoint"
   out=$($HRM scripts/eval.lua "$run" --ema --threads 1 2>&1); rc=$?
   expect_out "$name eval status" "0" "$rc"
   expect_has "$name eval EMA" "(EMA weights)" "$out"
   expect_has "$name eval exact" "exact accuracy" "$out"
   out=$($HRM scripts/solve.lua "$run" "1.3...1.4..2.3.." --halt q --no-color --threads 1 2>&1); rc=$?
   expect_out "$name solve status" "0" "$rc"
   expect_has "$name solve steps" "steps " "$out"

   # exact resume: 4 steps straight against 2, then --resume to 4
   $T --arch "$arch" $COMMON $extra --no-eval --steps 4 --run "$tmp/$name-a" > /dev/null 2>&1 || bad "$name straight run"
   $T --arch "$arch" $COMMON $extra --no-eval --steps 2 --run "$tmp/$name-b" > /dev/null 2>&1 || bad "$name first half"
   $T --arch "$arch" $COMMON $extra --no-eval --steps 4 --resume "$tmp/$name-b" > /dev/null 2>&1 || bad "$name resume"
   la=$(losses "$tmp/$name-a"); lb=$(losses "$tmp/$name-b")
   expect_out "$name resumed losses" "$la" "$lb"
   [ "$(echo "$la" | wc -w)" -eq 4 ] && ok || bad "$name: expected 4 losses, got [$la]"
   same=$("$HRM" -e "
      local ck = require 'hrm.checkpoint'
      local a, b = assert(ck.load('$tmp/$name-a/last.hrm')), assert(ck.load('$tmp/$name-b/last.hrm'))
      for _, n in ipairs(a.model:tensor_names()) do
         local x, y = a.model:tensor(n):data(), b.model:tensor(n):data()
         for i = 0, a.model:tensor(n):numel() - 1 do if x[i] ~= y[i] then print('differs: ' .. n) return end end
      end
      print(a.step == 4 and b.step == 4 and 'same' or 'steps differ')" 2>&1)
   expect_out "$name resumed weights" "same" "$same"
   [ "$(ema_of "$tmp/$name-a/last.hrm")" = "$(ema_of "$tmp/$name-b/last.hrm")" ] && ok ||
      bad "$name: resumed EMA differs"
done

# ---- a .safetensors file with --config and --arch (eval.lua, solve.lua) --------------------------------
"$HRM" -e "local m = hrm.Model(hrm.config.tiny{ arch = 'trm', mlp_t = true, pos_encodings = 'none', vocab_size = 6,
              seq_len = 16, hidden_size = 16, num_heads = 2 })
           assert(m:save_safetensors('$tmp/trm_mlp.safetensors'))"
SET="--set vocab_size=6 --set seq_len=16 --set hidden_size=16 --set num_heads=2"
out=$($HRM scripts/eval.lua "$tmp/trm_mlp.safetensors" --config tiny --arch trm_mlp $SET --task sudoku --size 4 \
      --generate 8 --threads 1 2>&1); rc=$?
expect_out "eval safetensors --arch status" "0" "$rc"
expect_has "eval safetensors --arch count" "8 puzzles" "$out"
out=$($HRM scripts/solve.lua "$tmp/trm_mlp.safetensors" --config tiny --arch trm_mlp $SET --task sudoku --size 4 \
      "1.3...1.4..2.3.." --no-color --threads 1 2>&1); rc=$?
expect_out "solve safetensors --arch status" "0" "$rc"
err=$($HRM scripts/eval.lua "$tmp/trm_mlp.safetensors" --config tiny $SET --task sudoku --size 4 --generate 8 2>&1); rc=$?
expect_out "eval safetensors without --arch status" "1" "$rc"   # an HRM layout: the names do not match

# ---- --arch user errors ----------------------------------------------------------------------------
err=$($T --arch chess --generate 4 --steps 1 2>&1 >/dev/null); rc=$?
expect_out "unknown arch status" "1" "$rc"
expect_has "unknown arch message" "--arch: unknown architecture 'chess' (hrm, trm, trm_mlp, transformer, or a model file)" "$err"
err=$($T --arch "$tmp/none.lua" --generate 4 --steps 1 2>&1 >/dev/null); rc=$?
expect_out "missing arch file status" "1" "$rc"
expect_has "missing arch file message" "--arch: no such model file: $tmp/none.lua" "$err"
err=$($T --arch trm --set no_ACT_continue=false --task sudoku --size 4 --generate 4 --steps 1 2>&1 >/dev/null); rc=$?
expect_out "trm no_ACT_continue status" "1" "$rc"
expect_has "trm no_ACT_continue message" "no_ACT_continue = false is not supported for arch trm" "$err"

echo "test_archs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
