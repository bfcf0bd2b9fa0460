#!/bin/sh
# predict_pipeline.sh — gseg-predict with a ResNet-50 U-Net, end to end (read,
# tile, normalise, network, blend, threshold, write), measured side by side in
# one run on this machine:
#   (a) end-to-end throughput against the model alone: tile pixels per second
#       of the scene (tiles x tile^2 / the scene's seconds, from
#       gseg-predict --summary) over bench_model's Mpx/s at the same tile,
#       batch, threads and precision (goal >= 0.90x);
#   (b) against bench/peer_predict.py — the same job in Python: rasterio
#       windowed reads, SMP Unet on Debian's python3-torch with the same
#       weights (gseg-export), the model's mean/std and threshold, the same
#       tile/overlap/batch/threads/precision (bf16 by torch.autocast), blending
#       into whole-scene float32 numpy arrays, a DEFLATE GeoTIFF mask written
#       with rasterio: speed (scene seconds; goal gseg >= 1.5x) and peak RSS
#       (/usr/bin/time %M; goal gseg <= 0.5x);
#   (c) peak RSS of gseg-predict on a 16384^2 scene (the 4096^2 one upsampled)
#       over the 4096^2 one (goal <= 1.2x);
#   (d) gseg bf16 against fp32: speed ratio and mask agreement (share of valid
#       pixels with the same mask value; goal >= 99.5 %);
#   and the agreement of the Python peer's masks with gseg's (fp32: > 99.9 %
#   expected; less means one of them is wrong).
#
#   sh bench/predict_pipeline.sh [BUILD_DIR]          (default build-test)
#   MODEL=random sh bench/predict_pipeline.sh          (random weights, quick)
#   MODEL=bench/work/learning/model.gseg sh bench/predict_pipeline.sh
#                              (train_learning.sh's model: 7 bands, 7-band scenes)
#
# Model: MODEL=path uses that .gseg model (its bands must be bands of the
#   synthetic scene, by name — blue green red nir swir1 swir2 elevation — or
#   number). Unset: a resnet50 U-Net on the six reflectance bands trained once
#   with gseg-train on sample_scenes for TRAIN_SECONDS (270) and cached as
#   WORK/trained_r50_6b.gseg. MODEL=random: random weights made by
#   tests/peers/smp_peer.py and imported with gseg-import (mean/std measured
#   on the scene), cached as WORK/random_r50_6b.gseg; its masks mean nothing
#   and many scores sit near the threshold, so its bf16 agreement (~98 %) is
#   no measure of bf16.
# Scenes (cached in WORK = ${GSEG_BENCH_DIR:-bench/work}/predict, about 1 GB):
#   gseg-synth SIZE^2 (4096), the model's bands kept (the six reflectance
#   bands for a 6-band model), tiled DEFLATE; and the same upsampled to
#   BIG_SIZE^2 (16384, as bench/ndsi_engine.sh does).
# Each configuration runs ROUNDS times alternating gseg-predict, the Python
# peer and bench_model; the best round of each is compared (peak RSS: the
# largest of gseg's rounds against the smallest of the peer's). The BIG_SIZE
# scene runs once, with gseg only, at bf16 when measured, else fp32; (c)
# compares it with the smallest peak of gseg's SIZE rounds at that precision.
# Masks compared are those of the last round.
# Environment: TILE (256), OVERLAP (32), BATCH (4), THREADS (2), ROUNDS (2),
#   PRECISIONS ("fp32 bf16"; bf16 is skipped, with a note, on CPUs without
#   avx512_bf16/AMX), ITERS (bench_model's timed iterations; default: as
#   many as the round's gseg-predict ran batches, so both sides are timed
#   over the same work: on a noisy machine the best of a few short runs
#   is biased upward against a long one), SIZE (4096),
#   BIG_SIZE (16384; BIG=0 skips that run, which takes the longest: about
#   5500 tiles), READERS (passed as --readers when set), GSEG_PREDICT_ARGS
#   (more gseg-predict options), TRAIN_SECONDS (270).
# Run time at the defaults on a quiet 2-core machine: roughly an hour (most
# of it the fp32 rounds and the BIG_SIZE scene), plus the training once.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages $BUILD_PACKAGES $TEST_PACKAGES time python3-rasterio
PIP_FLAGS=--no-deps need_pip segmentation_models_pytorch "$SMP_PIP"
need_pip safetensors "safetensors==0.8.0"
build=${1:-build-test}
TILE=${TILE:-256}
OVERLAP=${OVERLAP:-32}
BATCH=${BATCH:-4}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
PRECISIONS=${PRECISIONS:-"fp32 bf16"}
ITERS=${ITERS:-}
SIZE=${SIZE:-4096}
BIG_SIZE=${BIG_SIZE:-16384}
BIG=${BIG:-1}
READERS=${READERS:-}
GSEG_PREDICT_ARGS=${GSEG_PREDICT_ARGS:-}
TRAIN_SECONDS=${TRAIN_SECONDS:-270}
MODEL=${MODEL:-}
work=${GSEG_BENCH_DIR:-bench/work}/predict
runs=$work/runs
mkdir -p "$work" "$runs"
py=/usr/bin/python3
bin=$build/src/tools
[ -d "$build" ] || meson setup "$build" >/dev/null
meson compile -C "$build" gseg-predict gseg-synth gseg-import gseg-export gseg-info \
    bench_model cpu_peak >/dev/null
if ! "$bin/gseg-predict" --help | grep -q -- --summary ||
   ! "$bin/gseg-predict" --help | grep -q -- --batch; then
    echo "predict_pipeline.sh: this gseg-predict has no --batch/--summary" >&2
    exit 1
fi

# run NAME CMD...: runs CMD with its output in $runs/NAME.log and
# "seconds peak_rss_kib" in $runs/NAME.time; stops the bench on failure.
run() {
    name=$1; shift
    echo "$*" >"$runs/$name.cmd"
    /usr/bin/time -f "%e %M" -o "$runs/$name.time" "$@" >"$runs/$name.log" 2>&1 || {
        echo "predict_pipeline.sh: failed: $*" >&2
        tail -20 "$runs/$name.log" >&2
        exit 1
    }
}

# The synthetic scene (7 bands: blue green red nir swir1 swir2 elevation).
synth=$work/synth$SIZE.tif
[ -f "$synth" ] || "$bin/gseg-synth" --size "$SIZE" --seed 7 -q "$synth" "$work/synth${SIZE}_mask.tif"

# The model.
case $MODEL in
"")
    model=$work/trained_r50_6b.gseg
    if [ ! -f "$model" ]; then
        meson compile -C "$build" gseg-train >/dev/null
        echo "Training the model once: gseg-train resnet50 on sample_scenes, $TRAIN_SECONDS s" >&2
        rm -f "$work/train.gseg" "$work"/train.last.*
        "$bin/gseg-train" --data sample_scenes/dataset -o "$work/train.gseg" --backbone resnet50 \
            --bands blue,green,red,nir,swir1,swir2 --tile "$TILE" --batch 4 --threads "$THREADS" \
            --epochs 1000 --steps-per-epoch 25 --max-time "$TRAIN_SECONDS" --seed 1 -q \
            --metrics "$work/train.csv"
        mv "$work/train.gseg" "$model"
        rm -f "$work"/train.last.*
    fi
    ;;
random)
    model=$work/random_r50_6b.gseg
    if [ ! -f "$model" ]; then
        $py tests/peers/smp_peer.py make --encoder resnet50 --bands 6 --classes 1 --seed 1 \
            --out "$work/random_r50_6b.safetensors" >/dev/null
        # mean/std of the scene's reflectance bands (valid pixels, decimated read)
        stats=$($py - "$synth" <<'PY'
import sys
import numpy as np
from osgeo import gdal
ds = gdal.Open(sys.argv[1])
m, s = [], []
for b in range(1, 7):
    band = ds.GetRasterBand(b)
    a = band.ReadAsArray(buf_xsize=1024, buf_ysize=1024).astype(np.float64)
    nd = band.GetNoDataValue()
    a = a[a != nd] if nd is not None else a.ravel()
    m.append(f"{a.mean():.1f}")
    s.append(f"{max(a.std(), 1.0):.1f}")
print(",".join(m), ",".join(s))
PY
)
        "$bin/gseg-import" "$work/random_r50_6b.safetensors" -o "$model" -q \
            --bands blue,green,red,nir,swir1,swir2 --mean "${stats% *}" --std "${stats#* }"
    fi
    ;;
*)
    model=$MODEL
    [ -f "$model" ] || { echo "predict_pipeline.sh: MODEL $model: no such file" >&2; exit 1; }
    ;;
esac
info=$work/model_info.json
weights=$work/model_weights.safetensors
"$bin/gseg-info" "$model" --json >"$info"
"$bin/gseg-export" "$model" -o "$weights" -q
nb=$($py -c 'import json, sys; print(json.load(open(sys.argv[1]))["architecture"]["in_channels"])' "$info")
[ "$nb" -le 7 ] || { echo "predict_pipeline.sh: a $nb-band model; the synthetic scene has 7" >&2; exit 1; }

# Scenes with the model's band count: bands 1..nb of the synthetic scene.
scene=$work/s${SIZE}_${nb}b.tif
big=$work/s${BIG_SIZE}_${nb}b.tif
if [ ! -f "$scene" ]; then
    sel=$(seq 1 "$nb" | sed 's/^/-b /' | tr '\n' ' ')
    # shellcheck disable=SC2086 # $sel is a list of options
    gdal_translate -q $sel -co TILED=YES -co COMPRESS=DEFLATE -co PREDICTOR=2 "$synth" "$scene"
fi
if [ "$BIG" = 1 ] && [ ! -f "$big" ]; then
    echo "Making the ${BIG_SIZE}^2 scene (upsampling, a few minutes)" >&2
    gdal_translate -q -outsize "$BIG_SIZE" "$BIG_SIZE" -r nearest -co TILED=YES \
        -co COMPRESS=DEFLATE -co PREDICTOR=2 -co BIGTIFF=YES "$scene" "$big.tmp.tif"
    mv "$big.tmp.tif" "$big"
fi

native_bf16=$(grep -qw avx512_bf16 /proc/cpuinfo || grep -qw amx_bf16 /proc/cpuinfo && echo yes || echo no)
precs=""
skipped=""
for p in $PRECISIONS; do
    if [ "$p" = bf16 ] && [ "$native_bf16" = no ]; then skipped="$skipped $p"; else precs="$precs $p"; fi
done
[ -n "$precs" ] || { echo "predict_pipeline.sh: no precision left to measure" >&2; exit 1; }
extra=""
[ -z "$READERS" ] || extra="--readers $READERS"

predict() { # predict NAME SCENE PRECISION
    # shellcheck disable=SC2086 # $extra and GSEG_PREDICT_ARGS are option lists
    run "$1" "$bin/gseg-predict" --model "$model" "$2" -o "$runs/$1.tif" --tile "$TILE" \
        --overlap "$OVERLAP" --batch "$BATCH" --threads "$THREADS" --precision "$3" -q \
        --summary "$runs/$1.json" $extra $GSEG_PREDICT_ARGS
}
peer() { # peer NAME SCENE PRECISION
    run "$1" "$py" bench/peer_predict.py "$2" -o "$runs/$1.tif" --weights "$weights" \
        --info "$info" --tile "$TILE" --overlap "$OVERLAP" --batch "$BATCH" \
        --threads "$THREADS" --precision "$3" -q --summary "$runs/$1.json"
}
model_only() { # model_only NAME PRECISION GSEG_RUN: as many batches as GSEG_RUN's
    iters=$ITERS
    [ -n "$iters" ] || iters=$($py -c '
import json, sys
s = json.load(open(sys.argv[1]))["scenes"][0]
print(max(1, -(-(s["tiles"] - s["tiles_skipped"]) // int(sys.argv[2]))))' "$runs/$3.json" "$BATCH")
    run "$1" "$build/bench/bench_model" "$model" --tile "$TILE" --batch "$BATCH" \
        --threads "$THREADS" --precision "$2" --iters "$iters" --warmup 2
    cp "$runs/$1.log" "$runs/$1.json"
}

rm -f "$runs"/*
cat "$scene" >/dev/null # the first run should not pay for a cold page cache
# The CPU's fp32 and bf16 peaks on THREADS threads, before and after the runs.
"$build/bench/cpu_peak" --threads "$THREADS" --seconds 3 >"$runs/peak_1.json"
for p in $precs; do
    r=1
    while [ $r -le "$ROUNDS" ]; do
        echo "round $r/$ROUNDS, $p: gseg-predict, Python peer, bench_model" >&2
        predict "gseg_${p}_r$r" "$scene" "$p"
        peer "peer_${p}_r$r" "$scene" "$p"
        model_only "model_${p}_r$r" "$p" "gseg_${p}_r$r"
        r=$((r + 1))
    done
done
"$build/bench/cpu_peak" --threads "$THREADS" --seconds 3 >"$runs/peak_2.json"
big_prec=""
if [ "$BIG" = 1 ]; then
    big_prec=${precs# }
    big_prec=${big_prec%% *}
    case " $precs " in *" bf16 "*) big_prec=bf16 ;; esac
    echo "gseg-predict on the ${BIG_SIZE}^2 scene, $big_prec" >&2
    predict "gseg_big_$big_prec" "$big" "$big_prec"
    rm -f "$runs/gseg_big_$big_prec.tif"
fi

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); native bf16: $native_bf16"
echo "$("$bin/gseg-predict" --version 2>/dev/null | head -1); model $model: $($py -c '
import json, sys
j = json.load(open(sys.argv[1]))
a = j["architecture"]
print("%s U-Net, %d bands (%s), threshold %g" % (a["encoder"], a["in_channels"],
      ",".join(b["name"] for b in j["bands"]), j["threshold"]))' "$info")"
echo "scene ${SIZE}^2 x $nb bands UInt16 (gseg-synth, tiled DEFLATE); tile $TILE, overlap $OVERLAP," \
     "batch $BATCH, $THREADS threads; best of $ROUNDS alternating rounds"
[ -z "$skipped" ] || echo "skipped:$skipped (no avx512_bf16/AMX on this CPU: emulated, slow on both sides)"
echo
$py - "$runs" "$precs" "$ROUNDS" "$TILE" "$SIZE" "$BIG_SIZE" "$big_prec" <<'PY'
import json
import os
import sys

import numpy as np
from osgeo import gdal

runs, precs, rounds, tile = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4])
size, big_size, big_prec = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]


def load(name):
    with open(os.path.join(runs, name + ".json")) as f:
        j = json.load(f)
    with open(os.path.join(runs, name + ".time")) as f:
        wall, rss = f.read().split()[-2:]
    return j, float(wall), int(rss) / 1024.0


def scene_stats(name):
    j, wall, rss = load(name)
    s = j["scenes"][0]
    tp = s.get("tile_pixels") or s["tiles"] * tile * tile
    return {"seconds": s["seconds"], "tile_mpx": tp / s["seconds"] / 1e6,
            "mpx": s["pixels"] / s["seconds"] / 1e6, "tiles": s["tiles"],
            "model_seconds": s.get("model_seconds"), "wall": wall, "rss": rss}


def best(prefix, p):
    rs = [scene_stats(f"{prefix}_{p}_r{r}") for r in range(1, rounds + 1)]
    b = dict(max(rs, key=lambda x: x["tile_mpx"]))
    b["wall"] = min(x["wall"] for x in rs)
    b["rss_max"] = max(x["rss"] for x in rs)
    b["rss_min"] = min(x["rss"] for x in rs)
    return b


def model_only(p):
    return max(load(f"model_{p}_r{r}")[0]["mpx_per_s"] for r in range(1, rounds + 1))


def read_mask(name):
    return gdal.Open(os.path.join(runs, name + ".tif")).ReadAsArray()


def agreement(a, b):
    """share of valid pixels (valid in either) with the same value; nodata mismatches"""
    v = (a != 255) | (b != 255)
    n = int(v.sum())
    return (100.0 * float((a[v] == b[v]).sum()) / n if n else float("nan"),
            int(((a == 255) != (b == 255)).sum()), n)


def share(m):
    v = m != 255
    return 100.0 * float((m[v] == 1).sum()) / max(int(v.sum()), 1)


def yes(ok):
    return "yes" if ok else "**NO**"


g = {p: best("gseg", p) for p in precs}
q = {p: best("peer", p) for p in precs}
mo = {p: model_only(p) for p in precs}
masks = {(w, p): read_mask(f"{w}_{p}_r{rounds}") for w in ("gseg", "peer") for p in precs}

print("### (a) end to end against the model alone (goal >= 0.90x)")
print()
print("| precision | tiles | gseg-predict tile Mpx/s | (model share of its time) | bench_model Mpx/s | ratio | goal |")
print("|---|---|---|---|---|---|---|")
for p in precs:
    x = g[p]
    ms = f"{100 * x['model_seconds'] / x['seconds']:.0f} %" if x.get("model_seconds") else "-"
    r = x["tile_mpx"] / mo[p]
    print(f"| {p} | {x['tiles']} | {x['tile_mpx']:.3f} | {ms} | {mo[p]:.3f} | {r:.2f}x | {yes(r >= 0.90)} |")
print()
print("### (b) gseg-predict against the Python peer (goals: >= 1.5x speed, <= 0.5x peak RSS)")
print()
print("| precision | gseg s | Python s | gseg Mpx/s | Python Mpx/s | speed ratio | wall s gseg / Python (ratio) | gseg peak MiB | Python peak MiB | RSS ratio | goals |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for p in precs:
    a, b = g[p], q[p]
    sr = b["seconds"] / a["seconds"]
    wr = b["wall"] / a["wall"]
    mr = a["rss_max"] / b["rss_min"]
    print(f"| {p} | {a['seconds']:.1f} | {b['seconds']:.1f} | {a['mpx']:.3f} | {b['mpx']:.3f} | "
          f"{sr:.2f}x | {a['wall']:.1f} / {b['wall']:.1f} ({wr:.2f}x) | {a['rss_max']:.0f} | "
          f"{b['rss_min']:.0f} | {mr:.2f}x | speed {yes(sr >= 1.5)}, RSS {yes(mr <= 0.5)} |")
print()
print("Seconds are the scene's (open to mask written, model loaded before); Mpx/s are scene")
print("pixels per second; wall is the whole process (start-up and model load included).")
print()
if big_prec:
    x = scene_stats(f"gseg_big_{big_prec}")
    ref = g[big_prec]
    r = x["rss"] / ref["rss_min"]
    print(f"### (c) peak RSS against scene size (goal <= 1.2x), gseg-predict {big_prec}")
    print()
    print("| scene | seconds | tile Mpx/s | peak MiB | ratio |")
    print("|---|---|---|---|---|")
    print(f"| {size}² | {ref['seconds']:.1f} | {ref['tile_mpx']:.3f} | {ref['rss_min']:.0f} | 1 |")
    print(f"| {big_size}² | {x['seconds']:.1f} | {x['tile_mpx']:.3f} | {x['rss']:.0f} | "
          f"{r:.2f}x: {yes(r <= 1.2)} |")
    print()
if "fp32" in precs and "bf16" in precs:
    print("### (d) bf16 against fp32 (goal: mask agreement >= 99.5 %)")
    print()
    print("| | fp32 Mpx/s | bf16 Mpx/s | speed bf16 / fp32 | mask agreement | glacier % fp32 / bf16 | goal |")
    print("|---|---|---|---|---|---|---|")
    for w, name, st in (("gseg", "gseg-predict", g), ("peer", "Python peer", q)):
        ag, nd, _ = agreement(masks[(w, "fp32")], masks[(w, "bf16")])
        sp = st["bf16"]["tile_mpx"] / st["fp32"]["tile_mpx"]
        goal = yes(ag >= 99.5) if w == "gseg" else "(info)"
        print(f"| {name} | {st['fp32']['tile_mpx']:.3f} | {st['bf16']['tile_mpx']:.3f} | {sp:.2f}x | "
              f"{ag:.3f} %{f' ({nd} nodata mismatches)' if nd else ''} | "
              f"{share(masks[(w, 'fp32')]):.2f} / {share(masks[(w, 'bf16')]):.2f} | {goal} |")
    print(f"| bench_model | {mo['fp32']:.3f} | {mo['bf16']:.3f} | {mo['bf16'] / mo['fp32']:.2f}x | | | |")
    print()
peaks = [json.load(open(os.path.join(runs, f"peak_{i}.json"))) for i in (1, 2)]
peak = {"fp32": max(x["fp32_gflop_s"] for x in peaks), "bf16": max(x["bf16_gflop_s"] for x in peaks)}
print("### (e) against the CPU's peak (bench/cpu_peak: FMA / VDPBF16PS loops on the same threads)")
print()
print(f"Peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s "
      f"(bf16 / fp32 {peak['bf16'] / peak['fp32']:.2f}x). The network's FLOPs at the CPU's peak are")
print("the fastest any implementation can run this job; the Python peer's time over that bounds")
print("the speed ratio (b) can reach on this machine.")
print()
print("| precision | bench_model GFLOP/s (% of peak) | gseg-predict GFLOP/s (% of peak) | "
      "Python peer GFLOP/s (% of peak) | network alone at peak, s | bound on (b) |")
print("|---|---|---|---|---|---|")
for p in precs:
    if not peak.get(p):
        continue
    mj = max((load(f"model_{p}_r{r}")[0] for r in range(1, rounds + 1)), key=lambda j: j["mpx_per_s"])
    gflop_per_mpx = mj["gflop_s"] / mj["mpx_per_s"]
    gf = g[p]["tile_mpx"] * gflop_per_mpx
    scene_gflop = g[p]["tile_mpx"] * g[p]["seconds"] * gflop_per_mpx
    pf = scene_gflop / q[p]["seconds"]
    at_peak = scene_gflop / peak[p]
    print(f"| {p} | {mj['gflop_s']:.0f} ({100 * mj['gflop_s'] / peak[p]:.0f} %) | {gf:.0f} "
          f"({100 * gf / peak[p]:.0f} %) | {pf:.0f} ({100 * pf / peak[p]:.0f} %) | {at_peak:.1f} | "
          f"{q[p]['seconds'] / at_peak:.2f}x |")
print()
print("### Masks: the Python peer against gseg-predict (fp32: > 99.9 % expected)")
print()
print("| precision | agreement | nodata mismatches | valid pixels | glacier % gseg / Python | check |")
print("|---|---|---|---|---|---|")
for p in precs:
    ag, nd, n = agreement(masks[("gseg", p)], masks[("peer", p)])
    ok = "ok" if nd == 0 and (p != "fp32" or ag > 99.9) else "**investigate**"
    if p != "fp32" and nd == 0:
        ok = "(info)"
    print(f"| {p} | {ag:.4f} % | {nd} | {n} | {share(masks[('gseg', p)]):.2f} / "
          f"{share(masks[('peer', p)]):.2f} | {ok} |")
print()
print("### Commands (round 1)")
print()
print("```")
names = [f"{w}_{p}_r1" for p in precs for w in ("gseg", "peer", "model")]
if big_prec:
    names.append(f"gseg_big_{big_prec}")
for n in names:
    with open(os.path.join(runs, n + ".cmd")) as f:
        print(f.read().strip())
print("```")
PY
