#!/usr/bin/env bash
# test_resume.sh — exact resume across processes: N steps straight vs N/2, save, load in a fresh
# `hrm` process, N/2 more. The losses and the final checkpoints (weights, optimizer moments,
# carry, RNG and sampler states) must be identical to the bit. Also: a save that fails midway
# (file size limit) leaves the previous checkpoint intact and no temporary file behind.
# Usage: spec/sh/test_resume.sh path/to/hrm   (ctest passes the built binary; cwd = repo root)
set -u
HRM=$(readlink -f "${1:?usage: test_resume.sh path/to/hrm}")
RUN=spec/sh/resume_train.lua
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

N=8 HALF=4
"$HRM" --threads 1 "$RUN" straight $N "$tmp" > "$tmp/straight.txt" || bad "straight run failed"
"$HRM" --threads 1 "$RUN" first $HALF "$tmp" > "$tmp/first.txt" || bad "first half failed"
"$HRM" --threads 1 "$RUN" resume $HALF "$tmp" > "$tmp/resume.txt" || bad "resumed half failed"

if cat "$tmp/first.txt" "$tmp/resume.txt" | cmp -s - "$tmp/straight.txt"; then ok; else
   bad "losses differ"; diff "$tmp/straight.txt" <(cat "$tmp/first.txt" "$tmp/resume.txt") >&2
fi
[ "$(wc -l < "$tmp/straight.txt")" -eq $N ] && ok || bad "expected $N steps"
if cmp -s "$tmp/straight.hrm" "$tmp/resumed.hrm"; then ok; else bad "final checkpoints differ"; fi
cat "$tmp/straight.txt"

# Atomicity: a save cut short by a 4 KiB file size limit fails, the old file stays as it was.
cp "$tmp/mid.hrm" "$tmp/mid.copy"
out=$( (trap '' XFSZ; ulimit -f 4; "$HRM" -e "
   local ck = require 'hrm.checkpoint'
   local st = assert(ck.load('$tmp/mid.hrm'))
   print(ck.save('$tmp/mid.hrm', { model = st.model, optim = st.optim, step = 99 }))") 2>&1)
case "$out" in nil*"mid.hrm"*) ok ;; *) bad "interrupted save: expected nil, err; got [$out]" ;; esac
cmp -s "$tmp/mid.hrm" "$tmp/mid.copy" && ok || bad "the previous checkpoint changed"
ls "$tmp" | grep -q '\.tmp\.' && bad "temporary file left: $(ls "$tmp")" || ok

echo "test_resume: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
