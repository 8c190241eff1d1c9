#!/usr/bin/env bash
# test_tutorial.sh — runs every block of docs/tutorial.md in order, in a scratch directory that
# links the repository's build/ and scripts/: ```lua file=NAME blocks are written to NAME,
# ```sh blocks run with bash (any failure fails the test), ```repl blocks are typed into
# `hrm -i` (any error printed at the prompt fails the test). Output blocks are not compared:
# numbers depend on the machine.
# Usage: spec/sh/test_tutorial.sh path/to/hrm   (ctest passes the built binary; under a minute)
set -u
HRM=$(readlink -f "${1:?usage: test_tutorial.sh path/to/hrm}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOC="$ROOT/docs/tutorial.md"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/build" "$tmp/blocks"
ln -s "$HRM" "$tmp/build/hrm"
ln -s "$ROOT/scripts" "$tmp/scripts"
export HRM_HISTORY="$tmp/history"
export HRM_THREADS=1  # as the page's figures were taken; many threads on a busy machine only wait

# Split the document into numbered block files: blocks/NNN.<kind>[.<file name>]
awk -v dir="$tmp/blocks" '
   /^```/ && !inside { inside = 1; n++; kind = substr($1, 4); name = ""
                       if ($2 ~ /^file=/) name = "." substr($2, 6)
                       out = sprintf("%s/%03d.%s%s", dir, n, kind, name); printf "" > out; next }
   /^```/ && inside  { inside = 0; close(out); next }
   inside            { print > out }' "$DOC"

pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

cd "$tmp" || exit 1
ran=0
for block in blocks/*; do
   base=$(basename "$block")
   kind=${base#*.}; kind=${kind%%.*}
   case "$kind" in
      lua)
         name=${base#*.lua.}
         if [ "$name" = "$base" ]; then continue; fi     # a Lua block without file=: shown only
         cp "$block" "$name" && ok ;;
      sh)
         if bash -e "$block" >"$block.out" 2>&1; then ok
         else bad "sh block $base failed:"; sed 's/^/   /' "$block.out" >&2; fi
         ran=$((ran + 1)) ;;
      repl)
         "$HRM" -i <"$block" >"$block.out" 2>"$block.err"; rc=$?
         if [ "$rc" -eq 0 ] && [ ! -s "$block.err" ]; then ok
         else bad "repl block $base: status $rc, errors:"; sed 's/^/   /' "$block.err" >&2; fi
         ran=$((ran + 1)) ;;
   esac
done
[ "$ran" -ge 4 ] && ok || bad "expected at least 4 runnable blocks, ran $ran"
[ -f runs/addition/last.hrm ] && ok || bad "the tutorial's training left no runs/addition/last.hrm"
grep -q "curriculum: 4-digit numbers" runs/addition/metrics.jsonl 2>/dev/null && ok || bad "no curriculum event"
grep -q "valid answer" blocks/*.sh.out 2>/dev/null && ok || bad "solve.lua printed no validity"
grep -qE '^"[0-9?]{5}"$' blocks/*.repl.out 2>/dev/null && ok || bad "the REPL did not show a decoded answer"

echo "tutorial: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
