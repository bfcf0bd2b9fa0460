#!/bin/sh
# test.sh — build gseg and run its test suite.
# GSEG_SANITIZE=1 builds and tests under AddressSanitizer + UBSan instead.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages $BUILD_PACKAGES $TEST_PACKAGES
PIP_FLAGS=--no-deps need_pip segmentation_models_pytorch "$SMP_PIP"
need_pip safetensors "safetensors==0.8.0"

if [ "${GSEG_SANITIZE:-0}" = 1 ]; then
    dir=build-sanitize
    # The GDAL plugin is left out here: it runs inside GDAL's own programs
    # (gdalinfo, QGIS), which are not built with the sanitizers, and an
    # ASan-built plugin cannot load into them. The plain run tests it.
    [ -d $dir ] || meson setup $dir -Db_sanitize=address,undefined -Db_lundef=false \
        -Dgdal_plugin=disabled >/dev/null
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp}"
else
    dir=build-test
    [ -d $dir ] || meson setup $dir >/dev/null
fi
meson compile -C $dir
rc=0
meson test -C $dir --print-errorlogs --num-processes 2 >$dir/test-summary.txt 2>&1 || rc=$?
cat $dir/test-summary.txt
# The odd-input sweep's table (file, tool, outcome), whatever the result.
awk '/^==== odd-input sweep/ {p = 1} p {print} /^==== [0-9]+ runs in/ {p = 0}' \
    $dir/meson-logs/testlog.txt
# One closing line that any CI reads: suites passed and failed, and the
# individual Check cases they ran.
ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' $dir/test-summary.txt)
fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' $dir/test-summary.txt)
checks=$(grep -ho 'Checks: [0-9]*' $dir/meson-logs/testlog.txt | awk '{s += $2} END {print s + 0}')
echo "Check cases run: $checks"
echo "suites: ${ok:-0} passed, ${fail:-0} failed"
exit $rc
