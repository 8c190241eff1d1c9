#!/usr/bin/env bash
# test_cli.sh — the `hrm` command line as a user meets it: scripts, -e, -l, stdin, errors and
# exit statuses, -v, and the REPL on a real terminal (through `script`, which gives it a pty).
# Usage: spec/sh/test_cli.sh path/to/hrm   (ctest passes the built binary)
set -u
HRM=$(readlink -f "${1:?usage: test_cli.sh path/to/hrm}")
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect_out() { # name expected actual
   if [ "$2" = "$3" ]; then ok; else bad "$1: expected [$2], got [$3]"; fi
}
expect_has() { # name needle haystack
   case "$3" in *"$2"*) ok ;; *) bad "$1: [$2] not in [$3]" ;; esac
}

expect_out "stdin program" "2" "$(echo 'print(1+1)' | "$HRM")"
expect_out "-e chunk" "0" "$("$HRM" -e 'print(hrm.Tensor.zeros(2,3):sum())')"
expect_out "- reads stdin" "3" "$(echo 'print(1+2)' | "$HRM" -)"

cat > "$tmp/args.lua" <<'LUA'
print(arg[0]:match("args.lua$") ~= nil, arg[1], arg[2], select("#", ...), ...)
LUA
expect_out "script args" "true	a	b	2	a	b" "$("$HRM" "$tmp/args.lua" a b)"

echo 'return { answer = 42 }' > "$tmp/mymod.lua"
expect_out "-l module" "42" "$(cd "$tmp" && "$HRM" -l mymod -e 'print(mymod.answer)')"
expect_out "-e order" "1
2" "$("$HRM" -e 'print(1)' -e 'print(2)')"
expect_out "--seed" "true" "$("$HRM" --seed 7 -e 'local a = hrm.Tensor.rand(3); hrm.manual_seed(7); print(a:equal(hrm.Tensor.rand(3)))')"
expect_out "--threads" "1" "$("$HRM" --threads 1 -e 'print(hrm.get_threads())')"
expect_out "library modules set no globals" "nil" "$("$HRM" -e 'print(rawget(_G, "Tensor"))')"

expect_out "tasks resolve from anywhere" "table" "$(cd "$tmp" && "$HRM" -e 'print(type(require "tasks.sudoku"))')"

out=$("$HRM" -v); expect_has "-v versions" "LuaJIT" "$out"; expect_has "-v blas" "BLAS:" "$out"
expect_has "-h" "usage: hrm" "$("$HRM" -h)"

# errors: message on stderr, status 1
for chunk in 'hrm.Tensor.zeros(2,3):matmul(hrm.Tensor.zeros(2,3))' 'hrm.Tensor.zeros(-1)' \
             'local t = hrm.Tensor.zeros(3); print(t[4])' 'error("boom")'; do
   err=$("$HRM" -e "$chunk" 2>&1 >/dev/null); rc=$?
   expect_out "status of $chunk" "1" "$rc"
   expect_has "traceback of $chunk" "stack traceback" "$err"
done
err=$("$HRM" -e 'local t = hrm.Tensor.zeros(3); print(t[4])' 2>&1)
expect_has "range message" "index 4 out of range for dimension 1 of size 3" "$err"
"$HRM" --threads zero -e '' 2>/dev/null; expect_out "bad --threads" "1" "$?"
"$HRM" --nosuch 2>/dev/null; expect_out "unknown option" "1" "$?"
"$HRM" "$tmp/missing.lua" 2>/dev/null; expect_out "missing script" "1" "$?"

# Ctrl-C interrupts a running computation: an error "interrupted", status 1.
"$HRM" -e 'local n = 0; while true do n = n + #tostring(n) end' >"$tmp/int.out" 2>&1 &
pid=$!
sleep 1; kill -INT $pid; wait $pid; rc=$?
expect_out "Ctrl-C status" "1" "$rc"
expect_has "Ctrl-C message" "interrupted" "$(cat "$tmp/int.out")"

# The REPL on a terminal: expression printing, errors that do not end the session, multi-line
# input, persistent history.
if command -v script >/dev/null; then
   export HRM_HISTORY="$tmp/history"
   out=$(printf 'x = 21\nx*2\nerror("boom")\nx+1\nfor i = 1, 2 do\nprint("loop", i)\nend\n' |
         script -qec "$HRM" /dev/null 2>&1)
   expect_has "repl shows 42" "42" "$out"
   expect_has "repl survives error" "boom" "$out"
   expect_has "repl continues" "22" "$out"
   expect_has "repl multi-line" "loop	2" "$out"
   expect_has "history saved" "x*2" "$(cat "$tmp/history" 2>/dev/null)"
   out=$(printf 'x = 5\n' | script -qec "$HRM" /dev/null 2>&1)
   expect_has "history kept across sessions" "x = 21" "$(cat "$tmp/history" 2>/dev/null)"

   # An interactive session driven step by step: each input is sent once the output shows the
   # REPL got to the point before it (a Ctrl-C typed into the terminal drops unread input).
   # Markers are printed as "a".."b" so the echo of the typed line never matches them.
   mkfifo "$tmp/keys"
   script -qfec "$HRM" "$tmp/session" <"$tmp/keys" >/dev/null 2>&1 &
   session=$!
   exec 3>"$tmp/keys"
   keys() { printf "$1" >&3; }
   seen() { tr -d '\r' 2>/dev/null <"$tmp/session" | grep -cF -- "$1"; }
   wait_for() { # text [count]: wait (60 s at most) until the output shows text count times
      local i
      for ((i = 0; i < 600; i++)); do
         [ "$(seen "$1")" -ge "${2:-1}" ] && return 0
         sleep 0.1
      done
      bad "REPL: [$1] never appeared"; return 1
   }
   keys 'hrm.M\t ~= nil, hrm.sch\t.con\t ~= nil\n'   # completes submodules not loaded yet
   wait_for "true	true" && ok
   keys 'if true then\n'; wait_for ">> "
   keys '\003'; wait_for "^C"
   keys '"ab".."c"\n'; wait_for '"abc"' && ok
   keys 'n = 0; print("run".."ning"); while true do n = n + 1 end\n'; wait_for running
   sleep 0.5; keys '\003'; wait_for interrupted && ok   # one Ctrl-C stops it
   keys 'print("al".."ive", n > 0)\n'; wait_for "alive	true" && ok
   # a Ctrl-C while the REPL reports an error (here a slow __tostring) is dropped: the report ends
   keys 'slow = setmetatable({}, {__tostring = function() print("rep".."orting"); local t = os.clock(); while os.clock() - t < 3 do end; return "slow error" end}); error(slow)\n'
   wait_for reporting; sleep 0.5; keys '\003'; wait_for "slow error" && ok
   keys 'print("re".."port done")\n'; wait_for "report done" && ok
   expect_out "Ctrl-C in an error report is dropped" "0" "$(seen "error in error handling")"
   # two quick Ctrl-Cs on a running loop: one "interrupted", no traceback, the session goes on
   for i in 1 2 3; do
      n=$(seen interrupted)
      keys 'print("lo".."op'$i'"); while true do end\n'; wait_for "loop$i"
      sleep 0.3; keys '\003'; sleep 0.0$i; keys '\003'; wait_for interrupted $((n + 1))
   done
   keys 'print("af".."ter double")\n'; wait_for "after double" && ok
   n=$(seen "> ^C")
   keys '\003'; wait_for "> ^C" $((n + 1)); keys '\003'; wait_for "> ^C" $((n + 2))
   keys 'print("still".."here")\n'; wait_for stillhere && ok
   keys 'x = hrm.Tensor.randn(3, 4); x[5]\n'; wait_for "out of range for dimension 1"
   keys 'print("after".."error")\n'; wait_for aftererror
   expect_out "REPL error is one line" "0" "$(seen "stack traceback")"
   keys 'traceback()\n'; wait_for "stack traceback" && ok
   keys 'print("tr".."aced")\n'; wait_for traced
   expect_out "traceback leaves out the REPL" "0" "$(seen "repl.lua")"
   keys 'help(hrm.Model)\n'; wait_for "hrm.Model(cfg [," && ok
   keys 'help "tasks.sudoku"\n'; wait_for "N x N Sudoku" && ok
   keys 'help(hrm.Model.solve)\n'; wait_for "a table of B booleans" && ok
   keys '\004'; exec 3>&-
   wait $session; expect_out "REPL ends with Ctrl-D, status 0" "0" "$?"
   expect_out "no leftover input after Ctrl-C" "0" "$(seen "unexpected symbol")"
else
   echo "script(1) not found: REPL terminal checks skipped"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
