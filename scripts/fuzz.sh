#!/bin/sh
# fuzz.sh — build gseg's libFuzzer targets (fuzz/, clang with ASan + UBSan)
# and run each for FUZZ_SECONDS (default 60) on a copy of its seed corpus
# (fuzz/corpus/<target>/), one target at a time. Prints one report line per
# target and exits non-zero on any finding: a crash (sanitizer report,
# broken invariant), a leak, a timeout (-timeout=10 s per input) or running
# out of memory (-rss_limit_mb=2048).
#
#   FUZZ_SECONDS=300 sh scripts/fuzz.sh            longer runs
#   FUZZ_TARGETS="fuzz_cli" sh scripts/fuzz.sh     some targets only
#   build-fuzz/fuzz/fuzz_scene CRASH_FILE          reproduce a finding
#
# Findings are kept in build-fuzz/findings/<target>/; inputs the run added
# to the corpus in build-fuzz/run/<target>/corpus/ (the committed corpus is
# never modified: merge worthwhile inputs into it by hand).
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages $FUZZ_PACKAGES

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"fuzz_scene fuzz_safetensors fuzz_cli"}
dir=build-fuzz

if [ ! -f $dir/build.ninja ]; then
    # No libtorch (the network code is not parsed from fuzzed input, and the
    # build is much faster), no tests, no GDAL plugin.
    setup_log=$(mktemp)
    CC=clang CXX=clang++ meson setup $dir -Dfuzzing=true -Db_lundef=false \
        -Dtorch=disabled -Dtests=false -Dgdal_plugin=disabled >"$setup_log" 2>&1 ||
        { cat "$setup_log"; rm -f "$setup_log"; echo "fuzz: meson setup failed" >&2; exit 1; }
    rm -f "$setup_log"
fi
build_targets=""
for t in $targets; do build_targets="$build_targets fuzz/$t"; done
# shellcheck disable=SC2086 # one word per target
meson compile -C $dir $build_targets >$dir/fuzz-build.log 2>&1 ||
    { cat $dir/fuzz-build.log; echo "fuzz: build failed" >&2; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if [ -z "${LSAN_OPTIONS:-}" ] && [ -f fuzz/lsan.supp ]; then
    export LSAN_OPTIONS="suppressions=$(pwd)/fuzz/lsan.supp"
fi

failed=0
for t in $targets; do
    case $t in
        fuzz_scene) max_len=65536 ;;
        fuzz_safetensors) max_len=16384 ;;
        *) max_len=1024 ;;
    esac
    run=$dir/run/$t
    found=$dir/findings/$t
    rm -rf "$run"
    mkdir -p "$run" "$found"
    cp -r fuzz/corpus/$t "$run/corpus"
    seeds=$(ls "$run/corpus" | wc -l)
    dict=""
    [ -f fuzz/$t.dict ] && dict="-dict=fuzz/$t.dict"
    rc=0
    start=$(date +%s)
    # shellcheck disable=SC2086 # $dict is empty or one word
    $dir/fuzz/$t "$run/corpus" -max_total_time="$seconds" -max_len=$max_len \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 $dict \
        -artifact_prefix="$found/" >"$run/log" 2>&1 || rc=$?
    elapsed=$(($(date +%s) - start))
    # (a crash prints the final stats twice: take the last)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$run/log" | tail -1)
    cov=$(grep -ao 'cov: [0-9]* ft: [0-9]*' "$run/log" | tail -1)
    units=$(ls "$run/corpus" | wc -l)
    # crash-, leak-, timeout- and oom- inputs this run wrote (not slow-unit-)
    findings=$(grep -a 'Test unit written to' "$run/log" | grep -v slow-unit- | sort -u | wc -l)
    echo "fuzz: $t: ${execs:-0} runs in $elapsed s (${speed:-0}/s), ${cov:-cov: ?}," \
         "corpus $seeds -> $units, peak rss ${rss:-?} MB, findings $findings"
    if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
        failed=$((failed + 1))
        echo "fuzz: $t FAILED (exit $rc); the report:"
        # the first sanitizer or libFuzzer report, without the chatter
        awk '/runtime error|invariant failed|ERROR: |^SUMMARY/ { on = 1 } on && n++ < 60' \
            "$run/log"
        grep -a 'Test unit written to' "$run/log" | sort -u | sed 's/^/fuzz:   /'
    fi
done
echo "fuzz: $(echo $targets | wc -w) targets, $failed failed"
[ "$failed" -eq 0 ]
