#!/bin/sh
# train_scaling.sh — data-parallel scaling of gseg-train on this machine:
# samples/s of 1 process against 2 processes (Gloo over localhost), each
# process with THREADS intra-op threads (default 1), same batch per process.
# Runs alternate; best of ROUNDS. Steady rate: the second epoch of each run.
#
#   sh bench/train_scaling.sh [BUILD_DIR]
# Environment: BACKBONE (resnet50), TILE (256), BATCH (4), THREADS (1),
#   STEPS (6, per epoch), ROUNDS (2), PRECISION (auto).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-test}
BACKBONE=${BACKBONE:-resnet50}
TILE=${TILE:-256}
BATCH=${BATCH:-4}
THREADS=${THREADS:-1}
STEPS=${STEPS:-6}
ROUNDS=${ROUNDS:-2}
PRECISION=${PRECISION:-auto}
work=${GSEG_BENCH_DIR:-bench/work}/train-scaling
mkdir -p "$work"
meson compile -C "$build" gseg-train >/dev/null
tool="$build/src/tools/gseg-train"
args="--data sample_scenes/dataset --backbone $BACKBONE --tile $TILE --batch $BATCH \
      --threads $THREADS --loaders 1 --steps $((2 * STEPS)) --steps-per-epoch $STEPS \
      --val-fraction 0 --seed 1 --precision $PRECISION -q"
# Samples/s of the second epoch from a metrics CSV (samples per step given).
rate() {
    awk -F, -v n="$STEPS" -v s="$2" 'NR == 2 { t1 = $7 } NR == 3 { printf "%.4f", n * s / ($7 - t1) }' "$1"
}
best1=0 best2=0 r=0
port=$((29600 + $$ % 1000))
while [ "$r" -lt "$ROUNDS" ]; do
    # shellcheck disable=SC2086
    "$tool" $args -o "$work/one.gseg" --metrics "$work/one.csv"
    one=$(rate "$work/one.csv" "$BATCH")
    export MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=2
    # shellcheck disable=SC2086
    RANK=1 LOCAL_RANK=1 "$tool" $args -o "$work/two.gseg" --metrics "$work/two1.csv" >/dev/null &
    # shellcheck disable=SC2086
    RANK=0 LOCAL_RANK=0 "$tool" $args -o "$work/two.gseg" --metrics "$work/two.csv"
    wait
    unset MASTER_ADDR MASTER_PORT WORLD_SIZE
    two=$(rate "$work/two.csv" $((2 * BATCH)))
    best1=$(awk -v a="$one" -v b="$best1" 'BEGIN { print (a > b ? a : b) }')
    best2=$(awk -v a="$two" -v b="$best2" 'BEGIN { print (a > b ? a : b) }')
    r=$((r + 1))
    port=$((port + 1))
done
echo "$BACKBONE, tile $TILE, batch $BATCH per process, $THREADS thread(s) per process, precision $PRECISION, best of $ROUNDS:"
echo "  1 process:   $best1 samples/s"
echo "  2 processes: $best2 samples/s (Gloo, localhost)"
echo "  scaling $(awk -v a="$best2" -v b="$best1" 'BEGIN { printf "%.2f", a / b }')x"
