#!/bin/sh
# ndsi_engine.sh — the raster engine's benchmarks, measured side by side in one
# run on this machine:
#   1. peak RSS of NDSI prediction on 4096² and 16384² six-band UInt16 scenes
#      (goal: the larger <= 1.2x the smaller);
#   2. throughput against gdal_translate of the same scene to COG (the I/O
#      limit), as a ratio of Mpx/s (goal >= 0.7x).
# Usage: sh bench/ndsi_engine.sh [BUILD_DIR]   (default: build)
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages $BUILD_PACKAGES time
B=${1:-build}
[ -d "$B" ] || meson setup "$B" >/dev/null
meson compile -C "$B" >/dev/null
W=${GSEG_BENCH_DIR:-bench/work}
mkdir -p "$W"
predict=$B/src/tools/gseg-predict

# Scenes: a synthetic 4096² scene (six reflectance bands, tiled, DEFLATE) and
# the same upsampled to 16384².
if [ ! -f "$W/s4096.tif" ]; then
    "$B/src/tools/gseg-synth" --size 4096 --seed 7 -q "$W/synth4096.tif" "$W/synth4096_mask.tif"
    gdal_translate -q -b 1 -b 2 -b 3 -b 4 -b 5 -b 6 -co TILED=YES -co COMPRESS=DEFLATE \
        -co PREDICTOR=2 "$W/synth4096.tif" "$W/s4096.tif"
fi
[ -f "$W/s16384.tif" ] || gdal_translate -q -outsize 16384 16384 -r nearest -co TILED=YES \
    -co COMPRESS=DEFLATE -co PREDICTOR=2 -co BIGTIFF=YES "$W/s4096.tif" "$W/s16384.tif"

# run LABEL CMD...: prints "LABEL seconds peak_rss_kib"
run() {
    label=$1; shift
    /usr/bin/time -f "%e %M" -o "$W/time.txt" "$@" >/dev/null 2>"$W/stderr.txt" ||
        { cat "$W/stderr.txt" >&2; exit 1; }
    echo "$label $(cat "$W/time.txt")"
}

rm -f "$W"/out_*
{
    for n in 4096 16384; do
        run "gseg_$n" "$predict" -q --model ndsi:green=2,swir=5 --image_path "$W/s$n.tif" \
            -o "$W/out_gseg_$n.tif"
        run "gdal_translate_$n" gdal_translate -q -of COG -co NUM_THREADS=ALL_CPUS \
            "$W/s$n.tif" "$W/out_gdal_$n.tif"
        rm -f "$W"/out_*
    done
} | tee "$W/results.txt"

awk '
    { t[$1] = $2; m[$1] = $3 }
    END {
        for (i = 0; i < 2; i++) {
            n = i ? 16384 : 4096; px = n * n / 1e6
            printf "%5d²: gseg %.1f Mpx/s (%.1f s, %.0f MiB peak), gdal_translate -of COG %.1f Mpx/s (%.1f s): ratio %.2fx\n",
                n, px / t["gseg_" n], t["gseg_" n], m["gseg_" n] / 1024,
                px / t["gdal_translate_" n], t["gdal_translate_" n],
                t["gdal_translate_" n] / t["gseg_" n]
        }
        printf "peak RSS 16384² / 4096²: %.2fx (%.0f / %.0f MiB)\n",
            m["gseg_16384"] / m["gseg_4096"], m["gseg_16384"] / 1024, m["gseg_4096"] / 1024
    }' "$W/results.txt"
