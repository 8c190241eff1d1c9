#!/usr/bin/env bash
# bench_gemm_libs.sh — which GEMM library, by measurement: fp32 and bf16 GFLOP/s of Debian's
# oneDNN 2.6.3 (what hrm links), oneDNN 3.2 (PyPI onednn-cpu-gomp, GNU OpenMP like hrm) and
# oneMKL 2026.2 (PyPI mkl, GNU OpenMP threading layer) on the hrm_v1 training step's linear-layer
# GEMMs, beside this machine's fp32 FMA and bf16 dot-product peaks. Prints one table; asserts
# nothing.
#
#   bash scripts/bench_gemm_libs.sh [--iters N] [--threads N]      (defaults: 10, all cores)
#
# The wheels are fetched once into third_party/ (gitignored) with pip download and unpacked
# there; each build of scripts/bench_gemm_libs.c finds its library through an rpath into that
# prefix, so nothing is installed system-wide (needs python3 -m pip, unzip, cc and Debian's
# libdnnl-dev). The peaks come from build/hrm (build hrm first).
# Not used: the onednn 2026.x wheel, a SYCL + TBB build that needs Intel's compiler runtime
# (libsycl, libimf, libsvml, libintlc).
set -euo pipefail
die() { echo "bench_gemm_libs.sh: $*" >&2; exit 2; }

iters=10
threads=$(nproc)
while [ $# -gt 0 ]; do
   case "$1" in
      --iters|--threads) [ $# -ge 2 ] || die "$1 takes a positive integer"
                         if [ "$1" = --iters ]; then iters="$2"; else threads="$2"; fi
                         shift 2 ;;
      *) die "unknown argument '$1' (accepted: --iters N, --threads N)" ;;
   esac
done
for v in "$iters" "$threads"; do
   [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "--iters and --threads take a positive integer, got '$v'"
done

root=$(cd "$(dirname "$0")/.." && pwd)
prefix="$root/third_party"
hrm="$root/build/hrm"
[ -x "$hrm" ] || die "$hrm not found: build hrm first (bash scripts/setup.sh)"

ONEDNN_VER=2023.2.0   # oneDNN 3.2
MKL_VER=2026.2.1

# fetch WHEEL_NAME VERSION: the wheel's path in $prefix/wheels, downloaded unless already there
fetch() {
   local file
   file=$(ls "$prefix"/wheels/"${1//-/_}"-"$2"-*.whl 2>/dev/null | head -n 1 || true)
   if [ -z "$file" ]; then
      python3 -m pip download --quiet --no-deps "$1==$2" -d "$prefix/wheels" >&2
      file=$(ls "$prefix"/wheels/"${1//-/_}"-"$2"-*.whl | head -n 1)
   fi
   echo "$file"
}

# unpack DIR VERSION RUNTIME_WHEEL LIB_PATTERNS HEADER_WHEEL: once, the runtime wheel's libraries
# matching the patterns into DIR/lib and the header wheel's include/ into DIR/include
unpack() {
   local dir="$1" version="$2" runtime="$3" libs="$4" headers="$5"
   [ -f "$dir/.unpacked" ] && return 0
   rm -rf "$dir" && mkdir -p "$dir/lib"
   local patterns=()
   for l in $libs; do patterns+=("*.data/data/lib/$l"); done
   unzip -q -j -o "$(fetch "$runtime" "$version")" "${patterns[@]}" -d "$dir/lib"
   unzip -q -o "$(fetch "$headers" "$version")" '*.data/data/include/*' -d "$dir/x"
   mv "$dir"/x/*.data/data/include "$dir/include" && rm -rf "$dir/x"
   touch "$dir/.unpacked"
}

dnnl3="$prefix/onednn-$ONEDNN_VER"
mkl="$prefix/mkl-$MKL_VER"
unpack "$dnnl3" $ONEDNN_VER onednn-cpu-gomp 'libdnnl.so*' onednn-devel-cpu-gomp
# the interface, threading and core layers, and the CPU kernels that libmkl_core loads
unpack "$mkl" $MKL_VER mkl 'libmkl_intel_lp64.so.* libmkl_gnu_thread.so.* libmkl_core.so.*
   libmkl_def.so.* libmkl_mc3.so.* libmkl_avx2.so.* libmkl_avx512.so.* libmkl_avx10.so.*' \
   mkl-include

# build NAME CFLAGS...: scripts/bench_gemm_libs.c into $prefix/bin/NAME
mkdir -p "$prefix/bin"
build() {
   local name="$1"; shift
   cc -std=c11 -O2 -D_GNU_SOURCE -fopenmp "$root/scripts/bench_gemm_libs.c" -o "$prefix/bin/$name" \
      "$@" -lm
}
build debian-onednn -DGEMM_DNNL -ldnnl
build onednn3 -DGEMM_DNNL -I"$dnnl3/include" "$dnnl3/lib/libdnnl.so.3" -Wl,-rpath,"$dnnl3/lib"
# --disable-new-dtags: an RPATH (not RUNPATH) also serves libmkl_core's dlopen of its CPU kernels
build mkl -DGEMM_MKL -I"$mkl/include" "$mkl"/lib/libmkl_{intel_lp64,gnu_thread,core}.so.* \
      -Wl,--disable-new-dtags,-rpath,"$mkl/lib"

echo "GEMM libraries on the hrm_v1 training step's linear-layer GEMMs (batch 32, 82 tokens; each"
echo "shape weighted by its FLOPs, median of $iters runs), $threads threads, GFLOP/s"
printf '%-34s %10s %10s\n' library fp32 bf16
for name in debian-onednn onednn3 mkl; do
   row=$(OMP_NUM_THREADS=$threads "$prefix/bin/$name" "$iters" "$threads") || true  # 0.0: failed
   [ -n "$row" ] || row=$'?\tfailed\tfailed'
   IFS=$'\t' read -r lib fp32 bf16 <<< "$row"
   printf '%-34s %10s %10s\n' "$lib ($name)" "$fp32" "$bf16"
done
"$hrm" -e "
local ffi, hrm = require 'ffi', require 'hrm'
hrm.set_threads($threads)
local isa = ffi.new('const char *[1]')
local bf16 = hrm.C.hrm_bf16_peak_gflops(isa)
print(string.format('%-34s %10.1f %10.1f', 'machine peak (FMA / ' .. ffi.string(isa[0]) .. ')',
                    hrm.C.hrm_fma_peak_gflops(), bf16))"
