#!/bin/sh
# train_speed.sh — training throughput: gseg-train (whole runs: data loading,
# augmentation, steps) against bench/peer_train.py (the same network, loss and
# optimiser in PyTorch on a fixed in-memory batch, default NCHW layout and
# channels-last), alternating, best of ROUNDS, at the same precision. Also
# prints the share of time gseg-train waited for data.
#
# gseg-train is measured two ways:
#  - whole run: its second epoch of STEPS steps, with the first epoch's
#    checkpoint (about 390 MB for ResNet-50: weights and AdamW moments)
#    written meanwhile; the sample scenes make epochs this short, real
#    scenes make them hundreds of steps long;
#  - training loop: the steps after the first WARM, from the time at the
#    end of the first epoch of a run of STEPS steps and of a run of WARM
#    steps (the start, band statistics and the warm-up cancel); data
#    loading and augmentation are in, checkpoints out — the peer's loop.
#
#   sh bench/train_speed.sh [BUILD_DIR]
# Environment: BACKBONE (resnet50), TILE (256), BATCH (4), THREADS (2),
#   STEPS (12), ROUNDS (2), PRECISION (bf16 on CPUs with native bf16, else
#   fp32).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-test}
BACKBONE=${BACKBONE:-resnet50}
TILE=${TILE:-256}
BATCH=${BATCH:-4}
THREADS=${THREADS:-2}
STEPS=${STEPS:-12}
WARM=${WARM:-2}
ROUNDS=${ROUNDS:-2}
native=$(grep -qw avx512_bf16 /proc/cpuinfo || grep -qw amx_bf16 /proc/cpuinfo && echo bf16 || echo fp32)
PRECISION=${PRECISION:-$native}
work=${GSEG_BENCH_DIR:-bench/work}/train-speed
mkdir -p "$work"
meson compile -C "$build" gseg-train bench_model cpu_peak >/dev/null
best_g=0 best_s=0 best_p=0 best_c=0 wait=""
r=0
while [ $r -lt "$ROUNDS" ]; do
    # 2 warm-up steps are inside the run; samples/s covers all steps.
    train() { # steps, steps per epoch, metrics file
        "$build/src/tools/gseg-train" --data sample_scenes/dataset -o "$work/m.gseg" \
            --backbone "$BACKBONE" --tile "$TILE" --batch "$BATCH" --threads "$THREADS" \
            --steps "$1" --steps-per-epoch "$2" --val-fraction 0 --seed 1 \
            --precision "$PRECISION" --metrics "$3" 2>/dev/null | tail -1
    }
    line=$(train $((2 * STEPS)) "$STEPS" "$work/m.csv")
    g=$(awk -F, -v n="$STEPS" -v b="$BATCH" 'NR == 2 { t1 = $7 } NR == 3 { printf "%.4f", n * b / ($7 - t1) }' "$work/m.csv")
    train "$WARM" "$WARM" "$work/w.csv" >/dev/null
    s=$(awk -F, -v n=$((STEPS - WARM)) -v b="$BATCH" 'FNR == 2 && NR == FNR { tw = $7 }
        FNR == 2 && NR != FNR { printf "%.4f", n * b / ($7 - tw) }' "$work/w.csv" "$work/m.csv")
    wait=$(echo "$line" | sed -n 's/.*samples\/s, \([0-9.]*\) % waiting.*/\1/p')
    peer() {
        /usr/bin/python3 bench/peer_train.py --encoder "$BACKBONE" --bands 7 --tile "$TILE" \
            --batch "$BATCH" --threads "$THREADS" --iters "$STEPS" --warmup 2 \
            --precision "$PRECISION" "$@" | sed -n 's/.*"samples_per_s": \([0-9.]*\).*/\1/p'
    }
    p=$(peer)
    pc=$(peer --channels-last)
    best_g=$(awk -v a="$g" -v b="$best_g" 'BEGIN { print (a > b ? a : b) }')
    best_s=$(awk -v a="$s" -v b="$best_s" 'BEGIN { print (a > b ? a : b) }')
    best_p=$(awk -v a="$p" -v b="$best_p" 'BEGIN { print (a > b ? a : b) }')
    best_c=$(awk -v a="$pc" -v b="$best_c" 'BEGIN { print (a > b ? a : b) }')
    r=$((r + 1))
done
# Against the CPU's peak: a training step is about 3 forward passes of
# FLOPs (forward, then gradients of inputs and of weights); the forward
# FLOPs of one tile come from bench_model on the model just trained.
peak=$("$build/bench/cpu_peak" --threads "$THREADS" --seconds 3 |
    sed -n "s/.*\"${PRECISION}_gflop_s\": \([0-9.]*\).*/\1/p")
fwd=$("$build/bench/bench_model" "$work/m.gseg" --tile "$TILE" --batch 1 --threads "$THREADS" \
    --precision fp32 --iters 1 --warmup 0 |
    awk '{ match($0, /"gflop_s": [0-9.]+/); g = substr($0, RSTART + 11, RLENGTH - 11);
           match($0, /"tiles_per_s": [0-9.]+/); t = substr($0, RSTART + 15, RLENGTH - 15);
           printf "%.3f", g / t }')
pct() { awk -v s="$1" -v f="$fwd" -v p="$peak" 'BEGIN { printf "%.0f", (p > 0 ? 100 * 3 * f * s / p : 0) }'; }
echo "$BACKBONE, tile $TILE, batch $BATCH, $THREADS threads, $PRECISION, $STEPS steps, best of $ROUNDS:"
echo "  gseg-train loop   $best_s samples/s, $(pct "$best_s") % of the CPU's $PRECISION peak (steps $((WARM + 1))..$STEPS of a run: data, steps; waiting for data $wait %)"
echo "  gseg-train run    $best_g samples/s, $(pct "$best_g") % of peak (second epoch: data, steps, the first epoch's checkpoint)"
echo "  Python NCHW       $best_p samples/s, $(pct "$best_p") % of peak (fixed batch, no data loading; PyTorch's default layout)"
echo "  Python chan.-last $best_c samples/s, $(pct "$best_c") % of peak (the same, channels-last)"
echo "  ($fwd GFLOP per forward pass of a tile, x 3 per training sample; peak $peak GFLOP/s from bench/cpu_peak)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "  training loop: $(ratio "$best_s" "$best_p")x over the default Python loop, $(ratio "$best_s" "$best_c")x over channels-last"
echo "  whole run:     $(ratio "$best_g" "$best_p")x over the default Python loop, $(ratio "$best_g" "$best_c")x over channels-last"
