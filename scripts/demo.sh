#!/bin/sh
# demo.sh — build gseg and map glaciers in a bundled sample scene:
# a Cloud-Optimized GeoTIFF mask plus GeoPackage outlines under out/.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages $BUILD_PACKAGES

[ -d build ] || meson setup build -Dtests=false >/dev/null
meson compile -C build >/dev/null

scene=sample_scenes/dataset/test/images/scene_001.tif
mkdir -p out
echo "gseg-predict: NDSI baseline on $scene"
build/src/tools/gseg-predict --model ndsi:green=green,swir=swir1 \
    --image_path "$scene" -o out/scene_001_mask.tif \
    --vector out/scene_001_outlines.gpkg --min-area 0.01

echo
layout=$(gdalinfo out/scene_001_mask.tif | grep -q 'LAYOUT=COG' && echo "Cloud-Optimized GeoTIFF" || echo GeoTIFF)
echo "Mask:     out/scene_001_mask.tif ($layout, $(gdalsrsinfo -o epsg out/scene_001_mask.tif 2>/dev/null | tr -d '\n'))"
echo "Outlines: out/scene_001_outlines.gpkg, layer glaciers:"
ogrinfo -q -sql "SELECT COUNT(*) AS polygons, SUM(area_km2) AS glacier_km2 FROM glaciers" \
    out/scene_001_outlines.gpkg | sed -n 's/^ *\(polygons\|glacier_km2\)[^=]*= */  \1: /p'
echo "Open both in QGIS (Layer > Add Layer), or: qgis out/scene_001_mask.tif out/scene_001_outlines.gpkg"
