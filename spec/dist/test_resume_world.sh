#!/usr/bin/env bash
# test_resume_world.sh — a run saved at 2 ranks resumes at 1 rank exactly (label dist).
#
# Usage: bash spec/dist/test_resume_world.sh build/hrm
# 2 ranks train 4 steps and save (the checkpoint holds the global carry and sampler position);
# 1 rank resumes it for 4 more; the result equals 8 uninterrupted steps at 1 rank
# (spec/dist/compare.lua's tolerances), and 1 rank then 2 ranks too. Exits 77 (skipped) in a build without MPI.
set -euo pipefail
hrm=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$hrm" spec/dist/train_run.lua "$dir/straight" steps=8 eval=0 >/dev/null
rc=0
bash spec/dist/mpirun.sh 2 "$hrm" spec/dist/train_run.lua "$dir/split" steps=4 eval=0 >"$dir/log" 2>&1 || rc=$?
if [ $rc -eq 77 ]; then cat "$dir/log"; exit 77; fi
[ $rc -eq 0 ] || { cat "$dir/log"; echo "FAIL: the 2-rank run failed ($rc)"; exit 1; }
"$hrm" spec/dist/train_run.lua "$dir/split" steps=8 eval=0 resume="$dir/split/last.hrm" >/dev/null
"$hrm" spec/dist/compare.lua "$dir/straight" "$dir/split"
echo "PASS: 2 ranks x 4 steps, then 1 rank x 4 steps = 8 steps"
# and the other way: 1 rank x 4 steps, then 2 ranks x 4 steps
"$hrm" spec/dist/train_run.lua "$dir/grow" steps=4 eval=0 >/dev/null
bash spec/dist/mpirun.sh 2 "$hrm" spec/dist/train_run.lua "$dir/grow" steps=8 eval=0 resume="$dir/grow/last.hrm" \
   >"$dir/log" 2>&1 || { cat "$dir/log"; echo "FAIL: the 2-rank resume failed"; exit 1; }
"$hrm" spec/dist/compare.lua "$dir/straight" "$dir/grow"
echo "PASS: 1 rank x 4 steps, then 2 ranks x 4 steps = 8 steps"
