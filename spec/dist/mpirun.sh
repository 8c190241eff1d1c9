#!/usr/bin/env bash
# spec/dist/mpirun.sh — run a distributed check under mpirun, or skip it (status 77, ctest's skip)
# where this build has no MPI or no mpirun is installed.
#
# Usage: bash spec/dist/mpirun.sh NP HRM ARGS...   (runs: mpirun -np NP HRM ARGS...)
# Oversubscription and root are allowed (CI runs two ranks on two cores, as root); idle ranks
# yield their core instead of spinning.
set -euo pipefail
np=$1 hrm=$2
shift 2
if ! "$hrm" -e 'os.exit(hrm.dist.built().mpi and 0 or 77)'; then
   echo "skipped: this build has no MPI (cmake -DHRM_MPI=ON with libopenmpi-dev installed)"
   exit 77
fi
if ! command -v mpirun >/dev/null; then
   echo "skipped: no mpirun on PATH (apt-get install openmpi-bin)"
   exit 77
fi
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
exec mpirun --oversubscribe --allow-run-as-root -np "$np" "$hrm" "$@"
