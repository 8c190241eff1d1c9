#!/usr/bin/env bash
# test_tensorboard.sh — hrm.train's TensorBoard events read back by the tensorboard package.
#
# A run stopped after step 14 (checkpoint at step 10) and resumed to step 24; then
# tensorboard_check.py compares every scalar, histogram and the config text with metrics.jsonl
# (no duplicate or out-of-order steps across the resume). Python with tensorboard comes from
# HRM_TB_PYTHON (the CMake cache variable of that name, or the environment; .ci/run
# makes a venv and sets it), else `python3`; without it the test prints
# SKIP and exits 77 (ctest reports it as skipped), or fails under HRM_TB_REQUIRED=1 (CI).
# Usage: spec/sh/test_tensorboard.sh path/to/hrm   (cwd = repo root)
set -u
HRM=$(readlink -f "${1:?usage: test_tensorboard.sh path/to/hrm}")
PY=${HRM_TB_PYTHON:-python3}
if ! "$PY" -c "import tensorboard" 2>/dev/null; then
   [ "${HRM_TB_REQUIRED:-0}" = 1 ] && { echo "FAIL: HRM_TB_REQUIRED=1 but '$PY' has no tensorboard"; exit 1; }
   echo "SKIP: test_tensorboard needs Python with the tensorboard package (pip install tensorboard;" \
        "set HRM_TB_PYTHON to that python); none found as '$PY'"
   exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$HRM" --threads 1 spec/sh/tensorboard_train.lua first "$tmp/run" || { echo "FAIL: first run"; exit 1; }
"$PY" spec/sh/tensorboard_check.py "$tmp/run" > "$tmp/first.txt" || { cat "$tmp/first.txt"; echo "FAIL: before the resume"; exit 1; }
"$HRM" --threads 1 spec/sh/tensorboard_train.lua resume "$tmp/run" || { echo "FAIL: resumed run"; exit 1; }
"$PY" spec/sh/tensorboard_check.py "$tmp/run" || { echo "FAIL: after the resume"; exit 1; }
[ "$(ls "$tmp/run" | grep -c '^events\.out\.tfevents\.')" -eq 1 ] || { echo "FAIL: expected one event file"; exit 1; }
echo "test_tensorboard: passed"
