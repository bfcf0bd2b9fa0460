#!/bin/sh
# net_model.sh — model-only throughput of the ResNet-50 U-Net: gseg against
# the same network in Python (segmentation-models-pytorch on Debian's
# python3-torch), same weights, threads, batch, tile and precision, run
# side by side. Prints a Markdown table with the ratios.
#
#   sh bench/net_model.sh [BUILD_DIR]
# The machines are shared and noisy: each configuration runs ROUNDS times,
# gseg and Python alternating, and the best round of each is compared.
# Environment: THREADS (2), BATCH (4), ITERS (4), ROUNDS (3), TILES ("256 512"),
#   PRECISIONS ("fp32 bf16"; bf16 is skipped, with a note, on CPUs without
#   native bf16, where both sides run it through slow emulation).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-test}
THREADS=${THREADS:-2}
BATCH=${BATCH:-4}
ITERS=${ITERS:-4}
ROUNDS=${ROUNDS:-3}
TILES=${TILES:-"256 512"}
PRECISIONS=${PRECISIONS:-"fp32 bf16"}
work=${GSEG_BENCH_DIR:-bench/work}
mkdir -p "$work"
[ -d "$build" ] || meson setup "$build" >/dev/null
meson compile -C "$build" bench_model gseg-import cpu_peak >/dev/null

py=/usr/bin/python3
w="$work/unet_r50_6b.safetensors"
m="$work/unet_r50_6b.gseg"
[ -f "$w" ] || $py tests/peers/smp_peer.py make --encoder resnet50 --bands 6 --classes 1 \
    --seed 1 --out "$w" >/dev/null
"$build/src/tools/gseg-import" "$w" -o "$m" -q

native_bf16=$(grep -qw avx512_bf16 /proc/cpuinfo || grep -qw amx_bf16 /proc/cpuinfo && echo yes || echo no)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); native bf16: $native_bf16"
echo "resnet50 U-Net, 6 bands, batch $BATCH, threads $THREADS; best of $ROUNDS alternating rounds of $ITERS timed iterations (after 2 warm-up)"
echo
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
# The CPU's own peaks on the same threads (bench/cpu_peak): how close to the
# machine each side runs, and the most bf16 can gain over fp32 here.
peak=$("$build/bench/cpu_peak" --threads "$THREADS" --seconds 3)
peak_fp32=$(echo "$peak" | field fp32_gflop_s)
peak_bf16=$(echo "$peak" | field bf16_gflop_s)
echo "CPU peak on $THREADS threads: fp32 FMA $peak_fp32 GFLOP/s, bf16 dot products $peak_bf16 GFLOP/s" \
     "(bf16 / fp32 $(echo "$peak" | field bf16_over_fp32)x)"
echo
echo "| tile | precision | gseg tiles/s | gseg Mpx/s | gseg GFLOP/s (% of peak) | Python Mpx/s (% of peak) | gseg / Python |"
echo "|---|---|---|---|---|---|---|"
for tile in $TILES; do
    for prec in $PRECISIONS; do
        if [ "$prec" = bf16 ] && [ "$native_bf16" = no ]; then
            echo "| $tile | bf16 | skipped: no avx512_bf16/AMX on this CPU | | | | |"
            continue
        fi
        gt=0 gm=0 gf=0 pm=0
        r=0
        while [ $r -lt "$ROUNDS" ]; do
            g=$("$build/bench/bench_model" "$m" --tile "$tile" --batch "$BATCH" \
                --threads "$THREADS" --precision "$prec" --iters "$ITERS" --warmup 2)
            p=$($py bench/peer_model.py --encoder resnet50 --bands 6 --classes 1 --weights "$w" \
                --tile "$tile" --batch "$BATCH" --threads "$THREADS" --precision "$prec" \
                --iters "$ITERS" --warmup 2)
            if awk -v a="$(echo "$g" | field mpx_per_s)" -v b="$gm" 'BEGIN { exit !(a > b) }'; then
                gt=$(echo "$g" | field tiles_per_s)
                gm=$(echo "$g" | field mpx_per_s)
                gf=$(echo "$g" | field gflop_s)
            fi
            pm=$(awk -v a="$(echo "$p" | field mpx_per_s)" -v b="$pm" 'BEGIN { print (a > b ? a : b) }')
            r=$((r + 1))
        done
        ratio=$(awk -v a="$gm" -v b="$pm" 'BEGIN { printf "%.2f", a / b }')
        eval "pk=\$peak_$prec"
        gpc=$(awk -v f="$gf" -v p="$pk" 'BEGIN { printf "%.0f", (p > 0 ? 100 * f / p : 0) }')
        ppc=$(awk -v f="$gf" -v a="$gm" -v b="$pm" -v p="$pk" \
            'BEGIN { printf "%.0f", (p > 0 && a > 0 ? 100 * f * b / a / p : 0) }')
        echo "| $tile | $prec | $gt | $gm | $gf ($gpc %) | $pm ($ppc %) | ${ratio}x |"
        eval "mpx_${tile}_${prec}=$gm"
    done
done
for tile in $TILES; do
    eval "a=\${mpx_${tile}_bf16:-}; b=\${mpx_${tile}_fp32:-}"
    if [ -n "$a" ] && [ -n "$b" ]; then
        echo
        echo "bf16 / fp32 at $tile: $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')x"
    fi
done
