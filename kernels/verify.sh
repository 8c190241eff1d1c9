#!/usr/bin/env bash
# verify.sh — everything that proves the CUDA backend right, in one run on a machine with an
# NVIDIA GPU: build for the GPU found, the `cuda` ctest label, compute-sanitizer memcheck and
# racecheck on the op tests, the golden fixtures on CUDA (f32 GEMMs), a 50-step training
# trajectory against the CPU (f32 and bf16 GEMMs) with a checkpoint round trip to the CPU.
# Each stage has its own time limit (the whole fits in 8 minutes on an H100-class GPU); each
# stage's log goes to DIR/<stage>.log and one line per stage to DIR/summary.txt.
#
#   bash kernels/verify.sh DIR
#
# Exit status: 0 when every stage passed, 1 when one failed, 77 when no GPU is present.
set -uo pipefail
out=${1:?usage: bash kernels/verify.sh DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
summary="$out/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

if ! cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1) || [ -z "$cap" ]; then
   note "no NVIDIA GPU found (nvidia-smi): nothing verified"
   exit 77
fi
arch=${cap/./}
note "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1), sm_$arch"
note "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
build="$out/build"
failed=0

# stage NAME SECONDS COMMAND...: runs it with a time limit, records pass/FAIL/TIMEOUT and the time
stage() {
   local name=$1 limit=$2; shift 2
   local t0=$SECONDS rc
   timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
   rc=$?
   local result=pass
   if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then result="TIMEOUT (${limit} s)"; failed=1
   elif [ $rc -eq 77 ]; then result="skipped"; failed=1
   elif [ $rc -ne 0 ]; then result="FAIL (status $rc)"; failed=1; fi
   note "$(printf '%-22s %-20s %4d s  %s' "$name" "$result" $((SECONDS - t0)) "$name.log")"
   return $rc
}

stage build 240 bash -c "cmake -S . -B '$build' -DCMAKE_BUILD_TYPE=Release -DHRM_CUDA=ON \
   -DCMAKE_CUDA_ARCHITECTURES=$arch && cmake --build '$build' -j\$(nproc)" || { note "build failed: stopping"; exit 1; }
hrm="$build/hrm"
busted=$(command -v busted)

stage ctest_cuda 120 ctest --test-dir "$build" -L cuda --output-on-failure
# each op test under the sanitizers (the block test too: it runs the module code on the GPU)
for t in test_cuda_ops test_cuda_block; do
   stage "memcheck_$t" 120 compute-sanitizer --tool memcheck --error-exitcode 1 "$build/$t"
   stage "racecheck_$t" 120 compute-sanitizer --tool racecheck --error-exitcode 1 "$build/$t"
done
# the golden fixtures with every model built on the GPU (f32 GEMMs)
stage golden_cuda 120 "$hrm" --device cuda "$busted" --run=ci spec/parity_spec.lua spec/trm_parity_spec.lua
stage trajectory_f32 90 "$hrm" kernels/verify_trajectory.lua --steps 50 --gemm f32
stage trajectory_bf16 90 "$hrm" kernels/verify_trajectory.lua --steps 50 --gemm bf16
# the worst differences the trajectories measured, for kernels/README.md
grep -h "worst relative" "$out"/trajectory_*.log >> "$summary" 2>/dev/null

note "result: $([ $failed -eq 0 ] && echo "every stage passed" || echo "some stage FAILED")"
exit $failed
