#!/bin/sh
# train_learning.sh — does a network trained by gseg-train on the bundled
# sample scenes beat the NDSI baseline on the test scenes, within a time
# budget on this machine? Prints the validation curve and both evaluations.
#
#   sh bench/train_learning.sh [BUILD_DIR]
# Environment: BACKBONE (resnet50), BUDGET seconds of training (900), TILE
#   (256), BATCH (4), THREADS (2), STEPS_PER_EPOCH (25).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-test}
BACKBONE=${BACKBONE:-resnet50}
BUDGET=${BUDGET:-900}
TILE=${TILE:-256}
BATCH=${BATCH:-4}
THREADS=${THREADS:-2}
SPE=${STEPS_PER_EPOCH:-25}
work=${GSEG_BENCH_DIR:-bench/work}/learning
mkdir -p "$work"
[ -d "$build" ] || meson setup "$build" >/dev/null
meson compile -C "$build" gseg-train gseg-evaluate >/dev/null
data=sample_scenes/dataset
echo "== NDSI baseline on $data/test"
"$build/src/tools/gseg-evaluate" --model ndsi:green=green,swir=swir1 --data $data/test -q \
    --json "$work/ndsi.json" | tail -4
echo
echo "== gseg-train $BACKBONE, tile $TILE, batch $BATCH, $THREADS threads, budget $BUDGET s"
start=$(date +%s)
"$build/src/tools/gseg-train" --data $data -o "$work/model.gseg" --backbone "$BACKBONE" \
    --tile "$TILE" --batch "$BATCH" --threads "$THREADS" --steps-per-epoch "$SPE" \
    --epochs 1000 --max-time "$BUDGET" --seed 1 -q --metrics "$work/curve.csv"
echo "wall time $(( $(date +%s) - start )) s"
echo "validation curve (epoch, step, train loss, val mIoU, val glacier IoU, seconds):"
awk -F, 'NR > 1 { printf "  %3d %5d %.4f %.4f %.4f %7.1f\n", $1, $2, $4, $5, $6, $7 }' "$work/curve.csv"
echo
echo "== the trained model on $data/test"
"$build/src/tools/gseg-evaluate" --model "$work/model.gseg" --data $data/test -q \
    --threads "$THREADS" --json "$work/model.json" | tail -4
/usr/bin/python3 - "$work/ndsi.json" "$work/model.json" <<'PY'
import json, sys
a, b = (json.load(open(f))["overall"] for f in sys.argv[1:3])
print(f"test mIoU: NDSI {a['mean_iou']:.4f}, network {b['mean_iou']:.4f} "
      f"({'above' if b['mean_iou'] > a['mean_iou'] else 'NOT above'} the baseline); "
      f"glacier IoU {a['classes'][1]['iou']:.4f} -> {b['classes'][1]['iou']:.4f}")
PY
