#!/usr/bin/env bash
# SeFa over several checkpoints and layer specs, one traversal grid per direction.
#
# Runs every (checkpoint, layer spec) job in turn, or only job number $TASK when run as a job array:
#   sbatch --array=0-5 examples/sefa_batch.sh          # SLURM: TASK = $SLURM_ARRAY_TASK_ID
#   TASK=2 bash examples/sefa_batch.sh                 # one job by hand
#   bash examples/sefa_batch.sh                        # all jobs
# Outputs land in $OUT/<checkpoint>/<layers>/ : directions.npz and d<K>.png for the top $K directions.
# Every step is deterministic and refuses to overwrite, so a re-run only redoes what is missing.
set -euo pipefail

OUT=${OUT:-sefa-runs}
K=${K:-5}
CHECKPOINTS=(${CHECKPOINTS:-dcgan-digiface})   # names from `dirfind checkpoints list`, paths or URLs
LAYER_SPECS=(${LAYER_SPECS:-default})            # e.g. "all 0-1 2-5 6-13" for StyleGAN2 (coarse/middle/fine)
TASK=${TASK:-${SLURM_ARRAY_TASK_ID:-}}

jobs=()
for ckpt in "${CHECKPOINTS[@]}"; do
  for layers in "${LAYER_SPECS[@]}"; do jobs+=("$ckpt|$layers"); done
done

run_job() {
  local ckpt=${1%%|*} layers=${1##*|}
  local name
  name=$(basename "$ckpt")
  local dir="$OUT/${name//[^A-Za-z0-9._-]/_}/$layers"
  mkdir -p "$dir"
  local layer_args=()
  [ "$layers" != default ] && layer_args=(--layers "$layers")
  [ -f "$dir/directions.npz" ] || dirfind -q sefa --ckpt "$ckpt" "${layer_args[@]}" -k "$K" --out "$dir/directions.npz" >/dev/null
  for ((d = 0; d < K; d++)); do
    [ -f "$dir/d$d.png" ] || dirfind -q traverse --bank "$dir/directions.npz" --dir "$d" --steps 9 --seeds 0-5 \
      --out "$dir/d$d.png" >/dev/null
  done
  echo "$dir"
}

if [ -n "$TASK" ]; then
  [ "$TASK" -lt "${#jobs[@]}" ] || { echo "TASK $TASK out of range (${#jobs[@]} jobs)" >&2; exit 2; }
  run_job "${jobs[$TASK]}"
else
  for job in "${jobs[@]}"; do run_job "$job"; done
fi
