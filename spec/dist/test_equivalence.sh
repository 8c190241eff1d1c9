#!/usr/bin/env bash
# test_equivalence.sh — 2 ranks x batch B/2 train as 1 rank x batch B (label dist).
#
# Usage: bash spec/dist/test_equivalence.sh build/hrm
# 10 steps, same seed, puzzle embeddings (sign-SGD) and exploration on, evaluations at steps 5
# and 10 (sharded over the ranks); once with one micro-batch a step and once with two.
# spec/dist/compare.lua: metrics to 1e-6 relative, weights, puzzle table and moments to 1e-5.
# Exits 77 (skipped) in a build without MPI.
set -euo pipefail
hrm=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for k in 1 2; do
   "$hrm" spec/dist/train_run.lua "$dir/one_$k" accumulate=$k >/dev/null
   rc=0
   bash spec/dist/mpirun.sh 2 "$hrm" spec/dist/train_run.lua "$dir/two_$k" accumulate=$k >"$dir/log" 2>&1 || rc=$?
   if [ $rc -eq 77 ]; then cat "$dir/log"; exit 77; fi
   [ $rc -eq 0 ] || { cat "$dir/log"; echo "FAIL: the 2-rank run failed ($rc)"; exit 1; }
   # rank 0 alone printed: one "done" line
   [ "$(grep -c '^done: step 10' "$dir/log")" -eq 1 ] || { cat "$dir/log"; echo "FAIL: not one done line"; exit 1; }
   echo "accumulate $k:"
   "$hrm" spec/dist/compare.lua "$dir/one_$k" "$dir/two_$k"
done
echo "PASS: 2 ranks equal 1 rank"
