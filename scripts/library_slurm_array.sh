#!/bin/bash
# A glass library built by a Slurm job array: every array task is one `swapmc library build`
# of the same config, on one core. Two modes; choose by the file system the library is on.
#
# SHARED FILE (default): every task claims its next chain through the one library file, so
# no task idles while chains remain and tasks, resubmissions and `mpiexec` jobs can be mixed
# freely (SLURM_ARRAY_TASK_ID is only logged). Needs POSIX locks that work across nodes:
# GPFS, Lustre mounted with `flock` (`localflock` locks within one node only), NFS with a
# working lockd, or a node-local disk when every task runs on that node.
#
#   sbatch --array=0-63 scripts/library_slurm_array.sh lib.toml
#
# SHARDED (NFS without lockd, `nolock`/`local_lock=all` mounts, or when unsure): task i
# writes only its own file <library>.shard-<i>-of-<N>.sqlite, with the chains k where
# k mod N = i; no file is ever written from two nodes, and no chain belongs to two shards.
# N is SHARDS (or [library] shards in the config); keep it fixed for the whole build, and
# submit the array indices 0 .. N-1 (a task outside that range stops with an error). A
# shard's chains are fixed in advance, so the shard with the longest chains ends last: run
# more shards than tasks at once (below: 256 shards, at most 64 running) and Slurm gives each
# freed core to the next shard. Merge when all tasks have ended:
#
#   jid=$(SHARDS=256 sbatch --parsable --array=0-255%64 scripts/library_slurm_array.sh lib.toml)
#   sbatch --dependency=afterany:$jid --wrap \
#       "swapmc library merge glasses.sqlite glasses.shard-*-of-256.sqlite"
#
# The merge verifies every sample, keeps each chain once, refuses shards that disagree and
# can be rerun at any time (it only adds what is missing). `swapmc library ls` and `export`
# also read several shard files at once. Until the build is complete keep the shard files:
# rerunning a shard (more `samples`, or after a time-out) skips what its file holds.
#
# Either mode: after a time-out, resubmit the same command. Stored samples are kept and the
# chains in flight resume from their checkpoints in <library>.work/ (shared by all tasks).
#
# Set-up once (no MPI needed for array tasks of one core):
#   python -m venv ~/venvs/swapmc && . ~/venvs/swapmc/bin/activate
#   pip install -e "/path/to/swapmc"
#
#SBATCH --job-name=swapmc-library
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=12:00:00
#SBATCH --output=swapmc-library-%A_%a.out

set -euo pipefail
CONFIG=${1:?usage: [SHARDS=N] sbatch --array=0-M library_slurm_array.sh CONFIG.toml [extra swapmc library build options]}
shift

source "${SWAPMC_VENV:-$HOME/venvs/swapmc}/bin/activate"

# One thread per task: NumPy/Numba must not oversubscribe the core Slurm gave us.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
# Compiled kernels are cached next to the package; a shared, writable cache avoids every
# task compiling at first start on a read-only installation.
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$HOME/.cache/swapmc-numba}

# Sharded: the shard index is SLURM_ARRAY_TASK_ID (swapmc reads it; --shard I overrides).
# Progress lines are off: the log gets one line per stored sample.
swapmc library build "$CONFIG" --no-progress ${SHARDS:+--shards "$SHARDS"} "$@"
