#!/usr/bin/env bash
# InterFaceGAN with your own labels, end to end on the default face generator:
#   sample latents + images -> label the images externally -> fit boundaries -> render the edits.
# Replace the scoring step with your classifier or annotations (any CSV: file name, then score columns).
#   bash examples/interfacegan_pipeline.sh            # N=20000 as in the InterFaceGAN paper's setup
#   N=2000 OUT=run bash examples/interfacegan_pipeline.sh
set -euo pipefail

N=${N:-20000}
OUT=${OUT:-interfacegan-run}
CKPT=${CKPT:-dcgan-digiface}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"

# 1. latents and their images, deterministic by seed; resumable if interrupted
[ -f "$OUT/latents.npz" ] || dirfind sample --ckpt "$CKPT" -n "$N" --seed 0 --images "$OUT/faces" --out "$OUT/latents.npz"

# 2. label the images (here: model-free luminance / asymmetry statistics)
[ -f "$OUT/scores.csv" ] || python "$HERE/score_images.py" "$OUT/faces" "$OUT/scores.csv"

# 3. one boundary per score column, then asymmetry made orthogonal to luminance
[ -f "$OUT/boundaries.npz" ] || dirfind interfacegan --latents "$OUT/latents.npz" --scores "$OUT/scores.csv" \
  --out "$OUT/boundaries.npz"
[ -f "$OUT/asymmetry.csv" ] || cut -d, -f1,3 "$OUT/scores.csv" > "$OUT/asymmetry.csv"
[ -f "$OUT/asym_given_lum.npz" ] || dirfind interfacegan --latents "$OUT/latents.npz" --scores "$OUT/asymmetry.csv" \
  --condition "$OUT/boundaries.npz:0" --out "$OUT/asym_given_lum.npz"

# 4. move samples from 3 units below to 3 units above each hyperplane
for d in 0 1; do
  [ -f "$OUT/edit_d$d.png" ] || dirfind traverse --bank "$OUT/boundaries.npz" --dir "$d" --to-distance -3 3 \
    --steps 7 --seeds 0-3 --out "$OUT/edit_d$d.png"
done
echo "$OUT"
