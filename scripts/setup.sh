#!/usr/bin/env bash
# setup.sh — install hrm's build dependencies (Debian 12 packages) and build it into ./build.
#
# Usage: bash scripts/setup.sh [extra cmake args...]
# Installs only what is missing (needs root or sudo for that), then configures and builds.
# OpenMPI gives hrm.dist several processes (mpirun -np N build/hrm ...); -DHRM_MPI=OFF skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(cmake make gcc pkg-config libluajit-5.1-dev luajit libmsgpack-dev libdnnl-dev
          libopenblas-dev libcjson-dev libreadline-dev libxxhash-dev lua-busted bsdutils
          lua-dkjson lua-filesystem lua-term lua-argparse openmpi-bin libopenmpi-dev)
missing=()
for p in "${PACKAGES[@]}"; do
   dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
   echo "setup: installing ${missing[*]}"
   SUDO=""
   [ "$(id -u)" -ne 0 ] && SUDO=sudo
   $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
   $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/hrm"
