#!/usr/bin/env bash
# test_faults.sh — failures of a 2-rank training job (label dist).
#
# Usage: bash spec/dist/test_faults.sh build/hrm
# 1. A rank killed mid-run (SIGKILL) ends the whole job within 30 s with a non-zero status and
#    a message naming the lost rank; no process of the job is left; the last checkpoint on disk
#    loads. 2. An error only rank 1 raises ends the job with its message. 3. Bad launches are refused before the first step, naming the problem, printed once:
#    a world size that does not divide the batch, and ranks with different data or options.
# Exits 77 (skipped) in a build without MPI.
set -euo pipefail
hrm=$(realpath "$1")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { cat "$dir/log" 2>/dev/null || true; echo "FAIL: $*"; exit 1; }

# ---- 1. a rank killed mid-run ----
bash spec/dist/mpirun.sh 2 "$hrm" spec/dist/train_run.lua "$dir/run" steps=100000 eval_every=2 sleep=0.05 \
   >"$dir/log" 2>&1 &
launcher=$!
for _ in $(seq 600); do [ -f "$dir/run/last.hrm" ] && break; sleep 0.1; done
[ -f "$dir/run/last.hrm" ] || { rc=0; wait $launcher || rc=$?; [ $rc -eq 77 ] && { cat "$dir/log"; exit 77; }; fail "no checkpoint"; }
victim=""
for pid in $(pgrep -f "train_run.lua $dir/run" || true); do
   if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
done
[ -n "$victim" ] || fail "rank 1 not found"
kill -9 "$victim"
start=$(date +%s)
rc=0
timeout 30 tail --pid=$launcher -f /dev/null || fail "the job did not end within 30 s of losing rank 1"
wait $launcher || rc=$?
echo "the job ended $(( $(date +%s) - start )) s after rank 1 was killed, status $rc"
[ $rc -ne 0 ] || fail "status 0 after a lost rank"
grep -q "rank 1" "$dir/log" || fail "no message names rank 1"
left=$(pgrep -f "train_run.lua $dir/run" || true)
[ -z "$left" ] || fail "processes left: $left"
"$hrm" -e "local st = assert(hrm.checkpoint.load('$dir/run/last.hrm')) print('last checkpoint loads: step ' .. st.step)" \
   || fail "the last checkpoint does not load"
grep -m1 "rank 1" "$dir/log"

# ---- 2. a failure one rank alone sees (its curriculum raises) ends the job, naming the rank ----
rc=0
timeout 60 bash spec/dist/mpirun.sh 2 "$hrm" spec/dist/train_run.lua "$dir/alone" fail_rank=1 >"$dir/log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "status $rc after a failure on rank 1"
grep -q "hrm.train (rank 1 of 2): .*a failure on this rank alone" "$dir/log" || fail "no message from rank 1"
[ -z "$(pgrep -f "train_run.lua $dir/alone" || true)" ] || fail "processes left after a failure on rank 1"
grep -m1 "rank 1 of 2" "$dir/log"

# ---- 3. bad launches, refused before the first step ----
refused() { # refused PATTERN MPIRUN-ARGS...: status non-zero, the message once, no step logged
   local pattern=$1
   shift
   rm -rf "$dir/bad"
   rc=0
   OMPI_MCA_mpi_yield_when_idle=1 timeout 120 mpirun --oversubscribe --allow-run-as-root "$@" >"$dir/log" 2>&1 || rc=$?
   [ $rc -ne 0 ] || fail "launch accepted: $*"
   [ "$(grep -c -- "$pattern" "$dir/log")" -eq 1 ] || fail "expected the message '$pattern' once"
   ! grep -q '"split":"train"' "$dir/bad/metrics.jsonl" 2>/dev/null || fail "a step ran"
   grep -m1 -- "$pattern" "$dir/log"
}
args=(scripts/train.lua --size 4 --generate 64 --steps 2 --batch 8 --no-eval --run "$dir/bad" --quiet)
refused "does not divide among 3 ranks" -np 3 "$hrm" "${args[@]}"
refused "have different training data" -np 1 "$hrm" spec/dist/train_run.lua "$dir/bad" data_seed=1 : \
   -np 1 "$hrm" spec/dist/train_run.lua "$dir/bad" data_seed=2
refused "have different training options" -np 1 "$hrm" "${args[@]}" : -np 1 "$hrm" "${args[@]}" --steps 3
refused "have different model configuration" -np 1 "$hrm" "${args[@]}" : -np 1 "$hrm" "${args[@]}" --set hidden_size=32
echo "PASS: faults end the job; bad launches are refused"
