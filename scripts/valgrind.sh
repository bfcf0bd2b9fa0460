#!/bin/sh
# valgrind.sh — gseg-predict under valgrind's memcheck: a sample-scene crop
# through the NDSI baseline (mask, outlines, quicklook, summary) and through
# a small network model. Fails on any memory error or definite leak in gseg;
# tests/valgrind.supp suppresses only third-party noise, each with a reason.
#   sh scripts/valgrind.sh [BUILD_DIR]       (default build-test, as test.sh)
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages valgrind
build=${1:-build-test}
[ -d "$build" ] || meson setup "$build" >/dev/null
meson compile -C "$build" gseg-predict gseg-import >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gdal_translate -q -srcwin 0 0 160 160 -b 1 -b 2 -b 3 -b 4 -b 5 -b 6 \
    sample_scenes/dataset/test/images/scene_001.tif "$work/scene.tif"
vg() {
    valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite --num-callers=30 --suppressions=tests/valgrind.supp "$@"
}
echo "valgrind: gseg-predict, NDSI baseline"
vg "$build/src/tools/gseg-predict" --model ndsi:green=green,swir=swir1 "$work/scene.tif" \
    -o "$work/ndsi.tif" --vector "$work/ndsi.gpkg" --quicklook "$work/ndsi.png" \
    --summary "$work/ndsi.json" -q
echo "valgrind: gseg-predict, resnet18 U-Net"
if [ -x "$build/src/tools/gseg-import" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    /usr/bin/python3 tests/peers/smp_peer.py make --encoder resnet18 --bands 6 --classes 1 \
        --seed 1 --out "$work/r18.safetensors" >/dev/null
    "$build/src/tools/gseg-import" "$work/r18.safetensors" -o "$work/r18.gseg" -q
    vg "$build/src/tools/gseg-predict" --model "$work/r18.gseg" "$work/scene.tif" \
        -o "$work/net.tif" --tile 96 --overlap 16 --threads 1 --readers 1 --precision fp32 -q
else
    echo "  (skipped: this build has no libtorch backend)"
fi
echo "valgrind: clean"
