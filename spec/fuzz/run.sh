#!/usr/bin/env bash
# run.sh — build every libFuzzer harness in spec/fuzz (clang, ASan + UBSan) and run each for
# SECONDS (default 60) on its committed seeds and regression inputs. Exit status 1 on a finding;
# the crashing input is left in build-fuzz/crash-<harness>-*.
# Usage: bash spec/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DHRM_SANITIZE=ON -DHRM_CUDA=OFF \
   -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
cmake --build build-fuzz --target hrm_core -j"$(nproc)" >/dev/null
status=0
for src in spec/fuzz/fuzz_*.c; do
   name=$(basename "$src" .c)
   corpus=${name#fuzz_}
   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore "$src" build-fuzz/libhrm_core.a \
      -lcjson -ldnnl -lmsgpackc -lxxhash -fopenmp -lm -o "build-fuzz/$name"
   scratch=$(mktemp -d)
   echo "fuzz: $name for ${secs}s"
   if ! "build-fuzz/$name" -max_total_time="$secs" -max_len=8192 -timeout=5 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="build-fuzz/crash-$name-" \
         "$scratch" "spec/fuzz/corpus/$corpus" "spec/fuzz/regress/$corpus" 2>"build-fuzz/$name.log"; then
      echo "fuzz: $name FOUND A PROBLEM (build-fuzz/$name.log)"
      tail -40 "build-fuzz/$name.log"
      status=1
   else
      grep -E "stat::number_of_executed_units" "build-fuzz/$name.log" | sed "s/^/fuzz: $name /"
   fi
   rm -rf "$scratch"
done
exit $status
