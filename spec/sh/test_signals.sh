#!/usr/bin/env bash
# test_signals.sh — signals during training: a run profiled by LuaJIT's sampling profiler (a
# SIGPROF handler every millisecond, landing inside oneDNN's GEMMs) finishes normally; an
# interrupt that a pcall swallowed still stops a training loop started afterwards, with a save
# and status 130; and a few rounds of spec/sh/stress_interrupt.sh (SIGINT at random moments:
# status 130, last.hrm loads, the run resumes). Before core/cpu/gemm.c held signals around the
# library calls, the profiled run aborted with "corrupted size vs. prev_size" (3 runs in 3).
# Usage: spec/sh/test_signals.sh path/to/hrm   (ctest passes the built binary)
set -u
HRM=$(readlink -f "${1:?usage: test_signals.sh path/to/hrm}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
pass=0 fail=0
tmp=$(mktemp -d)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$tmp"' EXIT
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

TRAIN=(scripts/train.lua --task sudoku --size 4 --config tiny --set pos_encodings=learned
       --set loss=softmax --set puzzle_emb_ndim=0 --set halt_max_steps=2 --generate 1000
       --eval-generate 64 --batch 64 --lr 2e-3 --warmup 20 --eval-every 40 --threads 1 --plain)

# 1. Under the profiler: every step, evaluation and save with SIGPROF arriving every millisecond.
"$HRM" spec/sh/profile_train.lua "${TRAIN[@]}" --steps 120 --run "$tmp/prof" >"$tmp/prof.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then ok; else bad "profiled run: status $rc: $(tail -2 "$tmp/prof.log")"; fi
grep -q "done: step 120" "$tmp/prof.log" && ok || bad "profiled run did not reach step 120"
grep -Eq "profile_train: [1-9][0-9]* samples" "$tmp/prof.log" && ok || bad "the profiler took no samples"

# 2. Ctrl-C caught by a pcall (the "interrupted" error swallowed), then a training loop.
cat > "$tmp/swallow.lua" <<'EOF'
local ok, err = pcall(function()
   assert(io.open(os.getenv("READY"), "w")):close()  -- the busy loop is about to run
   local n = 0
   while true do n = n + #tostring(n) end
end)
io.stderr:write("caught: ", tostring(err), "\n")
assert(loadfile("scripts/train.lua"))(select(1, ...))
EOF
status=$(READY="$tmp/ready" perl -MPOSIX -e '
   my $pid = fork() // die; $SIG{INT} = "DEFAULT";
   if ($pid == 0) { open STDOUT, ">", $ARGV[0]; open STDERR, ">&STDOUT"; exec @ARGV[1..$#ARGV]; POSIX::_exit(127) }
   for (my $t = 0; $t < 6000 && !-e $ENV{READY}; $t++) { select(undef, undef, undef, 0.01) }
   select(undef, undef, undef, 0.2); kill "INT", $pid; waitpid($pid, 0);
   print(($? & 127) ? "signal " . ($? & 127) : "exit " . ($? >> 8))' \
   "$tmp/swallow.log" "$HRM" "$tmp/swallow.lua" "${TRAIN[@]:1}" --steps 200 --run "$tmp/swallow")
[ "$status" = "exit 130" ] && ok || bad "swallowed interrupt: $status, expected exit 130"
grep -q "caught: .*interrupted" "$tmp/swallow.log" && ok || bad "the pcall did not catch the interrupt"
grep -q "interrupted after step 1;" "$tmp/swallow.log" && ok || bad "training did not stop at step 1"
[ -s "$tmp/swallow/last.hrm" ] && ok || bad "no last.hrm after the swallowed interrupt"

# 3. SIGINT at random moments, then load and resume.
if MAX_DELAY=3 bash spec/sh/stress_interrupt.sh "$HRM" 2 300 7 >"$tmp/stress.log" 2>&1; then ok; else
   bad "stress_interrupt: $(cat "$tmp/stress.log")"
fi
cat "$tmp/stress.log"

echo "test_signals: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
