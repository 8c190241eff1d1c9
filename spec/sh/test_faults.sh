#!/usr/bin/env bash
# test_faults.sh — faults a training run survives (spec/sh/fault_train.lua runs the training):
#   1. Ctrl-C with the output piped into a reader that is gone (as `| tee log` is, killed by the
#      same Ctrl-C): the run saves its last step instead of dying of SIGPIPE;
#   2. disk full during a checkpoint save: ENOSPC from a small tmpfs when this process may mount
#      one (root), else EFBIG from `ulimit -f` (the line printed says which): the run stops with a
#      message naming the checkpoint, and the previous one is intact, byte for byte;
#   3. kill -9 at random points of repeated saves (20 trials): the file on disk is always the
#      previous or the new checkpoint, complete (its 16 MB tensor holds its step) and loadable;
#   4. a read-only run folder (a read-only tmpfs; skipped without mount) and a vanished one
#      (before a resume, and during a run): a clear error at start, or at the first save.
# Usage: spec/sh/test_faults.sh path/to/hrm   (ctest passes the built binary; cwd = repo root)
set -u
HRM=$(readlink -f "${1:?usage: test_faults.sh path/to/hrm}")
RUN=spec/sh/fault_train.lua
pass=0 fail=0
tmp=$(mktemp -d)
mounts=()
cleanup() {
   for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
   rm -rf "$tmp"
}
trap cleanup EXIT
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
train() { "$HRM" --threads 1 "$RUN" train "$@"; }
step_of() { "$HRM" "$RUN" check "$1" 2>/dev/null | sed -n 's/^step //p'; }
# step_of reads checkpoints of "train" runs (no big tensor): only the step matters there
ck_step() { "$HRM" -e "local st = require('hrm.checkpoint').load('$1'); print(st and st.step or 'none')" 2>/dev/null; }
can_mount() {
   mkdir -p "$tmp/probe" && mount -t tmpfs -o size=64k tmpfs "$tmp/probe" 2>/dev/null &&
      umount "$tmp/probe" && return 0
   return 1
}
small_fs() { # small_fs DIR SIZE [ro]: a tmpfs there
   mkdir -p "$1"
   mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$1" && mounts+=("$1")
}

# ---- 1. Ctrl-C, output into a closed pipe ---------------------------------------------------------
d="$tmp/pipe"
mkdir -p "$d"
( train "$d" 100000 2>"$tmp/pipe.err"; echo $? > "$tmp/pipe.rc" ) | head -n 1 > /dev/null &
for _ in $(seq 1 200); do [ -e "$d/started" ] && break; sleep 0.05; done
pid=$(pgrep -f -n "fault_train.lua train $d ")
sleep 0.5            # head has exited: the next progress lines go into a closed pipe
if [ -n "$pid" ]; then kill -INT "$pid"; else bad "the piped run is not running (killed by SIGPIPE?)"; fi
wait
rc=$(cat "$tmp/pipe.rc" 2>/dev/null)
[ "$rc" = 0 ] && ok || bad "piped run: exit status $rc, expected 0 (141 is death by SIGPIPE); $(cat "$tmp/pipe.err")"
s=$(ck_step "$d/last.hrm")
[ -n "$s" ] && [ "$s" != none ] && [ "$s" -ge 2 ] && ok || bad "piped run: no last.hrm saved on Ctrl-C (step '$s')"
echo "Ctrl-C into a closed pipe: exit $rc, last.hrm at step $s"

# ---- 2. disk full during a save -----------------------------------------------------------------------
d="$tmp/full/run"
if can_mount; then
   kind="ENOSPC (a 4 MiB tmpfs)"
   small_fs "$tmp/full" 4m
   train "$d" 3 > /dev/null 2>&1 || bad "disk full: the first run failed"
   cp "$d/last.hrm" "$tmp/last.copy"
   # fill the file system, then give back 64 KiB: room for config.json and metrics, not a checkpoint
   dd if=/dev/zero of="$tmp/full/filler" bs=4096 2>/dev/null
   size=$(stat -c %s "$tmp/full/filler")
   truncate -s $((size - 65536)) "$tmp/full/filler"
   train "$d" 6 resume > /dev/null 2> "$tmp/full.err"
   rc=$?
else
   kind="EFBIG (ulimit -f 64: no tmpfs can be mounted here)"
   train "$d" 3 > /dev/null 2>&1 || bad "disk full: the first run failed"
   cp "$d/last.hrm" "$tmp/last.copy"
   (trap '' XFSZ; ulimit -f 64; train "$d" 6 resume > /dev/null 2> "$tmp/full.err")
   rc=$?
fi
echo "disk full during a save, from $kind: exit $rc"
sed 's/^/   /' "$tmp/full.err"
[ "$rc" = 1 ] && ok || bad "disk full: exit status $rc, expected 1"
grep -q "the checkpoint $d/last.hrm of step 6 could not be written" "$tmp/full.err" && ok ||
   bad "disk full: the message does not name the checkpoint"
grep -q "$d/last.hrm of step 3 is as it was" "$tmp/full.err" && ok || bad "disk full: no word on the previous checkpoint"
cmp -s "$d/last.hrm" "$tmp/last.copy" && ok || bad "disk full: the previous checkpoint changed"
[ "$(ck_step "$d/last.hrm")" = 3 ] && ok || bad "disk full: the previous checkpoint does not load"
ls "$d" | grep -q '\.tmp' && bad "disk full: temporary file left: $(ls "$d")" || ok

# ---- 3. kill -9 during saves ----------------------------------------------------------------------------
f="$tmp/kill/k.hrm"
mkdir -p "$tmp/kill"
next=1 prev=none mid=0 trials=20
for trial in $(seq 1 $trials); do
   "$HRM" --threads 1 "$RUN" saveloop "$f" "$next" > "$tmp/kill/out" 2>/dev/null &
   pid=$!
   sleep "0.$(( 150 + RANDOM % 450 ))"
   kill -9 "$pid"
   wait "$pid" 2>/dev/null
   last=$(sed -n 's/^saved //p' "$tmp/kill/out" | tail -n 1)
   ls "$tmp/kill" | grep -q '\.tmp\.' && mid=$((mid + 1))
   rm -f "$tmp/kill"/*.tmp.*
   got=$(step_of "$f")
   # the previous checkpoint (the last save that returned, or the one before this trial) or the new one
   before=${last:-$prev}
   # (a process killed before its first save ever finished leaves no file at all: also correct)
   if [ -n "$got" ] && { [ "$got" = "$before" ] || [ "$got" = $(( ${before/none/0} + 1 )) ]; }; then ok
   elif [ "$before" = none ] && [ ! -e "$f" ]; then ok; else
      bad "kill -9 trial $trial: on disk '$got' ($("$HRM" "$RUN" check "$f")), last save returned '$before'"
   fi
   prev=${got:-$prev}
   next=$(( ${prev/none/0} + 1 ))
done
echo "kill -9 during saves: $trials trials, $mid killed inside a write (a temporary file left), file always complete"

# ---- 4. read-only and vanished run folders -------------------------------------------------------------
if can_mount; then
   small_fs "$tmp/ro" 1m ro
   train "$tmp/ro" 1000000 > /dev/null 2> "$tmp/ro.err"
   rc=$?
   [ "$rc" = 1 ] && grep -q "the run directory $tmp/ro is not writable" "$tmp/ro.err" && ok ||
      bad "read-only run folder: exit $rc: $(cat "$tmp/ro.err")"
   echo "read-only run folder: $(head -n 1 "$tmp/ro.err")"
else
   echo "read-only run folder: skipped (no tmpfs can be mounted here; root ignores permissions)"
fi
train "$tmp/gone" 6 resume > /dev/null 2> "$tmp/gone.err"
rc=$?
[ "$rc" = 1 ] && grep -q "cannot resume from $tmp/gone: cannot open" "$tmp/gone.err" && ok ||
   bad "vanished folder before a resume: exit $rc: $(cat "$tmp/gone.err")"
echo "vanished run folder, resume: $(head -n 1 "$tmp/gone.err")"
train "$tmp/vanish" 6 vanish=4 > /dev/null 2> "$tmp/vanish.err"
rc=$?
[ "$rc" = 1 ] && grep -q "the checkpoint $tmp/vanish/last.hrm of step 6 could not be written" "$tmp/vanish.err" && ok ||
   bad "vanished folder during a run: exit $rc: $(cat "$tmp/vanish.err")"
echo "vanished run folder, during a run: $(head -n 1 "$tmp/vanish.err")"

echo "test_faults: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
