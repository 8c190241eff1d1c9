#!/usr/bin/env bash
# bench_ab.sh — compare the HRM step of two builds: runs scripts/bench_step.lua alternately with
# each build's binary (A, B, A, B, ...), then prints the median and the spread (min..max) of each
# figure (wall `_s` and process CPU `_cpu` seconds) and B's change against A. Prints figures;
# asserts nothing.
#
#   bash scripts/bench_ab.sh BUILD_A BUILD_B [RUNS=7] [bench_step options...]
#   e.g. bash scripts/bench_ab.sh ../before/build build 7 --config small --threads 1
set -euo pipefail
a=$1 b=$2 runs=${3:-7}
shift 3 || shift $#
here="$(cd "$(dirname "$0")" && pwd)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r = 1; r <= runs; r++)); do
   for side in a b; do
      bin=$([ $side = a ] && echo "$a" || echo "$b")/hrm
      "$bin" "$here/bench_step.lua" "$@" >> "$out/$side"
   done
done
python3 - "$out/a" "$out/b" "$a" "$b" <<'PY'
import sys, statistics
def read(p):
    rows = [dict(kv.split("=") for kv in line.split()) for line in open(p) if "=" in line]
    return {k: [float(r[k]) for r in rows] for k in rows[0] if k.endswith(("_s", "_cpu"))}, rows[0]
A, meta = read(sys.argv[1]); B, _ = read(sys.argv[2])
print(f"config {meta['config']}, batch {meta['batch']}, threads {meta['threads']}, {len(A['train_step_s'])} runs each")
print(f"{'figure':14} {'A median':>10} {'A spread':>17} {'B median':>10} {'B spread':>17} {'B vs A':>8}")
for k in A:
    ma, mb = statistics.median(A[k]), statistics.median(B[k])
    if ma == 0: continue  # a figure not measured (bench_step.lua --no-infer)
    print(f"{k:14} {ma:10.4f} {min(A[k]):8.4f}..{max(A[k]):<8.4f} {mb:10.4f} {min(B[k]):8.4f}..{max(B[k]):<8.4f} {100*(mb/ma-1):+7.1f}%")
print(f"A = {sys.argv[3]}, B = {sys.argv[4]}")
PY
