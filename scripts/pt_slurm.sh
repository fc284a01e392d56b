#!/bin/bash
# Parallel tempering on a Slurm cluster: one MPI rank per core, any number of replicas per
# rank (the label trace for a seed does not depend on the rank count).
#
#   sbatch scripts/pt_slurm.sh pt.toml          # first submission
#   sbatch scripts/pt_slurm.sh pt.toml          # after a time-out: the same command resumes
#
# Set-up once (site MPI, mpi4py built against it; do NOT install the `mpich` extra here):
#   module load openmpi          # or your site's MPI module
#   python -m venv ~/venvs/swapmc && . ~/venvs/swapmc/bin/activate
#   pip install --no-binary=mpi4py mpi4py && pip install -e "/path/to/swapmc[plot]"
#
#SBATCH --job-name=swapmc-pt
#SBATCH --ntasks=16                 # MPI ranks; must not exceed the number of replicas
#SBATCH --cpus-per-task=1
#SBATCH --time=24:00:00
#SBATCH --output=swapmc-pt-%j.out
#SBATCH --requeue

set -euo pipefail
CONFIG=${1:?usage: sbatch pt_slurm.sh CONFIG.toml [extra swapmc temper options]}
shift

module load openmpi 2>/dev/null || true            # adapt to your site
source "${SWAPMC_VENV:-$HOME/venvs/swapmc}/bin/activate"

# One thread per rank: NumPy/Numba must not oversubscribe the cores Slurm gave us.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
# Compiled kernels are cached next to the package; a shared, writable cache avoids every
# rank compiling at first start on a read-only installation.
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$HOME/.cache/swapmc-numba}

# srun starts the ranks with the site's PMI; `mpiexec -n $SLURM_NTASKS` works as well.
# Progress goes to stderr from rank 0 only; the summary table is printed at the end.
# Kill at the time limit is safe (atomic, round-tagged checkpoints); resubmit to continue.
srun --mpi=pmix swapmc temper "$CONFIG" --no-progress "$@"
