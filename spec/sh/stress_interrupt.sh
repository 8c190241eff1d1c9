#!/usr/bin/env bash
# stress_interrupt.sh — Ctrl-C at random moments of a training run must always end in a clean
# save. Each run trains a tiny 4x4 Sudoku model (evaluation and checkpoint every EVAL_EVERY
# steps, the training data swapped every 100 steps by spec/sh/stress_curriculum.lua) and gets one
# SIGINT after a random delay, so signals land inside steps, evaluations, saves and curriculum
# swaps. Every run must exit with status 130 (or 0 if it finished first) and never end in a
# signal; its last.hrm must load, and a resumed run must continue from it and finish (status 0).
# Not run by ctest (spec/sh/test_signals.sh runs a few rounds); .ci/run runs it on the guard build.
#
# Usage: spec/sh/stress_interrupt.sh path/to/hrm [runs] [steps] [seed]
#   env: THREADS (1), MIN_DELAY / MAX_DELAY in seconds (0 / 8), EVAL_EVERY (25), KEEP=1 keeps
#   the run directories. Prints one line per run and a summary; status 0 when every run passed.
# Delays count from the training's first line ("task ..."): before it, a signal meets the program
# starting up or the script's setup, where Ctrl-C is an ordinary "interrupted" error (status 1).
set -u
HRM=$(readlink -f "${1:?usage: stress_interrupt.sh path/to/hrm [runs] [steps] [seed]}")
RUNS=${2:-10}
STEPS=${3:-600}
SEED=${4:-1}
THREADS=${THREADS:-1}
MIN_DELAY=${MIN_DELAY:-0}
MAX_DELAY=${MAX_DELAY:-8}
EVAL_EVERY=${EVAL_EVERY:-25}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
tmp=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] && echo "run directories in $tmp" || trap 'rm -rf "$tmp"' EXIT

# run_with_signal DELAY LOG cmd...: start cmd, wait until its log shows the training's "task"
# line, SIGINT DELAY seconds later, print "exit N" or "signal N" (bash's `wait` cannot tell an
# exit status of 130 from a death by SIGINT).
run_with_signal() {
   perl -MPOSIX -e '
      my ($delay, $log, @cmd) = @ARGV;
      $SIG{INT} = "DEFAULT";
      my $pid = fork() // die "fork: $!";
      if ($pid == 0) {
         open STDOUT, ">", $log or POSIX::_exit(126);
         open STDERR, ">&STDOUT";
         exec @cmd or POSIX::_exit(127);
      }
      my $ready = 0;
      for (my $t = 0; $t < 12000 && !$ready; $t++) {  # up to 120 s for the setup
         if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            print "exit ", ($? >> 8), " (ended before the training started)\n";
            exit 0;
         }
         if (open my $fh, "<", $log) { $ready = grep { /^task / } <$fh>; close $fh }
         select(undef, undef, undef, 0.01) unless $ready;
      }
      select(undef, undef, undef, $delay);
      kill "INT", $pid;
      waitpid($pid, 0);
      my $st = $?;
      print(($st & 127) ? "signal " . ($st & 127) : "exit " . ($st >> 8), "\n");' "$@"
}

train_args() { # run directory, extra args
   local dir=$1; shift
   echo --task sudoku --size 4 --config tiny --set pos_encodings=learned --set loss=softmax \
      --set puzzle_emb_ndim=0 --set halt_max_steps=2 --generate 3000 --eval-generate 128 \
      --batch 64 --lr 2e-3 --warmup 20 --eval-every "$EVAL_EVERY" --log-every 5 \
      --threads "$THREADS" --curriculum spec/sh/stress_curriculum.lua --plain --run "$dir" "$@"
}

RANDOM=$SEED
pass=0 fail=0 finished=0
for r in $(seq 1 "$RUNS"); do
   # uniform delay in [MIN_DELAY, MAX_DELAY] with millisecond resolution
   delay=$(awk -v lo="$MIN_DELAY" -v hi="$MAX_DELAY" -v u="$(( (RANDOM << 15 | RANDOM) % 1000001 ))" \
              'BEGIN { printf "%.3f", lo + (hi - lo) * u / 1000000 }')
   dir="$tmp/run$r"
   # shellcheck disable=SC2046
   seed=$((SEED * 1000 + r))
   status=$(run_with_signal "$delay" "$tmp/run$r.log" "$HRM" scripts/train.lua \
               $(train_args "$dir" --steps "$STEPS" --seed "$seed"))
   step=$(grep -o 'interrupted after step [0-9]*' "$tmp/run$r.log" | grep -o '[0-9]*$')
   problem=""
   case "$status" in
      "exit 130") [ -n "$step" ] || problem="status 130 without an 'interrupted after step' line" ;;
      "exit 0") finished=$((finished + 1)); step=$STEPS ;;
      *) problem="ended with $status" ;;
   esac
   if [ -z "$problem" ] && [ "$step" -gt 0 ]; then
      if [ ! -s "$dir/last.hrm" ]; then
         problem="no last.hrm"
      elif ! "$HRM" -e "local st = assert(require('hrm.checkpoint').load('$dir/last.hrm'))
                       assert(st.step == $step, 'last.hrm holds step ' .. tostring(st.step))" \
              >"$tmp/load$r.log" 2>&1; then
         problem="last.hrm does not load: $(tail -1 "$tmp/load$r.log")"
      elif ! "$HRM" scripts/train.lua $(train_args "$dir" --steps $((step + 3)) --seed "$seed" --resume "$dir") \
              >"$tmp/resume$r.log" 2>&1; then
         problem="resume failed: $(tail -1 "$tmp/resume$r.log")"
      elif ! grep -q "done: step $((step + 3))" "$tmp/resume$r.log"; then
         problem="the resumed run did not reach step $((step + 3))"
      fi
   fi
   if [ -z "$problem" ]; then
      pass=$((pass + 1))
      printf 'run %d: SIGINT after %ss, %s at step %s, resumed\n' "$r" "$delay" "$status" "$step"
   else
      fail=$((fail + 1))
      printf 'run %d: SIGINT after %ss: FAIL: %s\n' "$r" "$delay" "$problem"
      tail -5 "$tmp/run$r.log" | sed 's/^/    /'
   fi
done
echo "stress_interrupt: $pass passed, $fail failed ($finished finished before the signal)"
[ "$fail" -eq 0 ]
