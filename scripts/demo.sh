#!/bin/sh
# demo.sh — the main job on the bundled sample scenes, end to end:
#   build gseg (installing missing Debian packages when run as root),
#   train a ResNet-50 U-Net on sample_scenes (a few minutes on 2 cores),
#   evaluate it against the NDSI baseline on the test scenes,
#   map a test scene: Cloud-Optimized GeoTIFF mask, GeoPackage outlines,
#   a quicklook PNG, and say how to open them in QGIS.
# Everything goes to out/. DEMO_STEPS (default 180) sets the training steps.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages $BUILD_PACKAGES

[ -d build ] || meson setup build -Dtests=false >/dev/null 2>&1
meson compile -C build >/dev/null
tools=build/src/tools
mkdir -p out
scene=sample_scenes/dataset/test/images/scene_001.tif

if [ -x $tools/gseg-train ]; then
    model=out/model.gseg
    echo "== gseg-train: a resnet50 U-Net on sample_scenes/dataset (${DEMO_STEPS:-180} steps)"
    $tools/gseg-train --data sample_scenes/dataset -o $model --steps "${DEMO_STEPS:-180}" \
        --batch 4 --tile 256 --steps-per-epoch 30 --metrics out/train_metrics.csv
    echo
    echo "== gseg-evaluate: the trained model and the NDSI baseline on the test scenes"
    for m in $model ndsi:green=green,swir=swir1; do
        $tools/gseg-evaluate --model "$m" --data sample_scenes/dataset/test -q \
            --json out/eval_$(basename "$m" | tr ':=,' '___').json >/dev/null
    done
    /usr/bin/python3 - out/eval_model.gseg.json out/eval_ndsi_green_green_swir_swir1.json <<'EOF'
import json, sys
print(f"{'model':<34} {'mean IoU':>9} {'glacier IoU':>12} {'area error':>11}")
for path, name in zip(sys.argv[1:], ["gseg network (out/model.gseg)", "NDSI baseline (> 0.4)"]):
    o = json.load(open(path))["overall"]
    g = o["classes"][1]["iou"]
    print(f"{name:<34} {o['mean_iou']:>9.3f} {g:>12.3f} {o['area_error_pct']:>10.1f}%")
EOF
else
    model=ndsi:green=green,swir=swir1
    echo "(this gseg was built without libtorch: mapping with the NDSI baseline)"
fi

echo
echo "== gseg-predict: $scene"
$tools/gseg-predict --model "$model" --image_path "$scene" -o out/scene_001_mask.tif \
    --vector out/scene_001_outlines.gpkg --quicklook out/scene_001_quicklook.png \
    --summary out/scene_001_summary.json

echo
layout=$(gdalinfo out/scene_001_mask.tif | grep -q 'LAYOUT=COG' && echo "Cloud-Optimized GeoTIFF" || echo GeoTIFF)
echo "Mask:      out/scene_001_mask.tif ($layout, $(gdalsrsinfo -o epsg out/scene_001_mask.tif 2>/dev/null | tr -d '\n'))"
echo "Outlines:  out/scene_001_outlines.gpkg, layer glaciers:"
ogrinfo -q -sql "SELECT COUNT(*) AS polygons, SUM(area_km2) AS glacier_km2 FROM glaciers" \
    out/scene_001_outlines.gpkg | sed -n 's/^ *\(polygons\|glacier_km2\)[^=]*= */  \1: /p'
echo "Quicklook: out/scene_001_quicklook.png"
echo "Summary:   out/scene_001_summary.json"
echo
echo "Open in QGIS (Layer > Add Layer, or drag the files in; they come styled):"
echo "  qgis $scene out/scene_001_mask.tif out/scene_001_outlines.gpkg"
if [ -f build/gdal_plugin/gdal_GSEG.so ]; then
    echo "Or read the prediction straight through the GDAL driver (docs/gdal-driver.md):"
    echo "  GDAL_DRIVER_PATH=build/gdal_plugin gdalinfo GSEG:model=$model:$scene"
fi
