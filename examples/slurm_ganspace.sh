#!/bin/bash
# GANSpace on 10^6 samples over several GPU nodes: one torchrun per node (started by srun), all
# processes rendezvous on the first node, each takes one GPU (dirfind's --device auto picks
# cuda:LOCAL_RANK). The bank equals a one-process run (docs/distributed.md).
#
#   sbatch examples/slurm_ganspace.sh [CKPT] [N] [OUT] [more ganspace options]
#   sbatch --nodes 4 --gpus-per-node 8 examples/slurm_ganspace.sh stylegan2-ffhq-1024 1000000 /shared/gs.npz -k 100
#
# OUT (and so OUT.progress/) must be on a filesystem every node sees. The job always passes
# --resume: a first run starts from zero, a requeued or resubmitted one continues (with any number
# of nodes). SLURM sends SIGTERM 120 s before the time limit; torchrun forwards it and every
# process saves its progress at the end of its batch.
#
#SBATCH --job-name=dirfind-ganspace
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=%x-%j.out

set -euo pipefail

CKPT=${1:-dcgan-digiface}
N=${2:-1000000}
OUT=${3:-ganspace_${SLURM_JOB_ID:-local}.npz}
shift $(( $# < 3 ? $# : 3 ))

# source /path/to/venv/bin/activate        # the environment dirfind is installed in

GPUS=${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L 2>/dev/null | wc -l)}
[ "${GPUS:-0}" -ge 1 ] || GPUS=1
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=${DIRFIND_RDZV_PORT:-29500}
# CPU threads per process: the node's cores shared by its processes (at least 1)
CPUS=${SLURM_CPUS_PER_TASK:-$GPUS}
export OMP_NUM_THREADS=$(( CPUS / GPUS > 0 ? CPUS / GPUS : 1 ))
# a process that stops answering ends the job after this many seconds (exit 10, progress kept)
export DIRFIND_DIST_TIMEOUT=${DIRFIND_DIST_TIMEOUT:-1800}

echo "dirfind ganspace: $SLURM_NNODES node(s) x $GPUS GPU(s), rendezvous $HEAD:$PORT, out $OUT"

srun --kill-on-bad-exit=1 torchrun \
    --nnodes "$SLURM_NNODES" \
    --nproc-per-node "$GPUS" \
    --rdzv-backend c10d \
    --rdzv-endpoint "$HEAD:$PORT" \
    --rdzv-id "$SLURM_JOB_ID" \
    --local-ranks-filter 0 \
    -m dirfind ganspace --ckpt "$CKPT" -n "$N" --out "$OUT" --resume --checkpoint-every 300 "$@"

echo "wrote $OUT"
