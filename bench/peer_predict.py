#!/usr/bin/python3
"""Prediction pipeline peer: what gseg-predict does with a network model,
written the way a Python user naturally would, for bench/predict_pipeline.sh.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-rasterio,
python3-numpy) plus segmentation-models-pytorch and safetensors installed as
in tests/peers/README.md.

  bench/peer_predict.py SCENE.tif -o MASK.tif --weights W.safetensors
      --info INFO.json [--tile 256] [--overlap 32] [--batch 4] [--threads 2]
      [--precision fp32|bf16] [--summary S.json] [--proba P.tif] [-q]

W.safetensors is the model's state dict (`gseg-export MODEL.gseg -o W`),
INFO.json what `gseg-info MODEL.gseg --json` prints: the architecture
(encoder, in_channels, outputs), the input bands with their mean/std, the
threshold, and the tiling the model was trained with (the defaults of
--tile/--overlap).

The pipeline:
  * smp.Unet(encoder, in_channels, classes=outputs, decoder_channels
    (256,128,64,32,16)) loaded strictly with safetensors.torch.load_file +
    load_state_dict; eval mode, channels-last, torch.set_num_threads;
  * the scene opened with rasterio; the model's bands picked by number or by
    band description (as gseg does: "swir1" matches "SWIR1", "B3" matches
    "..._B3"); band scale/offset applied;
  * gseg's tile grid: square tiles stepping by tile - overlap, the last tile
    of each row/column shifted inward to end at the edge (scenes smaller
    than a tile are zero-padded after normalisation);
  * per tile a rasterio windowed read (all bands), validity = every band
    finite and not its nodata value (or set in its mask band when it has no
    nodata), normalisation (x - mean) / std with invalid pixels set to 0,
    tiles with no valid pixel skipped;
  * batches of --batch tiles through the network under
    torch.inference_mode() (bf16: torch.autocast("cpu", dtype=bfloat16)),
    sigmoid (softmax for several outputs) in float32;
  * blending: a weighted average accumulated into whole-scene float32 numpy
    arrays (sum of weight x score, sum of weights), the weights separable
    raised-cosine ramps `overlap` pixels wide centred in each overlap of
    neighbouring tiles (where gseg puts its blend zones, so a model that is
    the same on both sides gives the same blend);
  * the mask: score > the model's threshold (argmax for several outputs),
    255 where the pixel is not valid; written with rasterio as one GeoTIFF
    (Byte, DEFLATE, tiled 512, nodata 255, same CRS and transform).
--proba also writes the blended scores (Float32, NaN where not valid), to
compare with gseg-predict --proba when the masks disagree.
GDAL's block cache is left at its default (5 % of RAM), as such a script
leaves it; no GDAL option is set.

Prints one line of JSON unless -q; --summary writes the same in the shape of
gseg-predict's --summary: {"seconds": total, "scenes": [{"input", "status",
"seconds" (open to mask written, without the model load), "tiles" (tiles
through the network), "tile_pixels" (tiles x tile^2), "model_seconds",
"read_seconds", "blend_seconds", "write_seconds", "pixels",
"valid_pixels", "class_pixels"}], settings}.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

T_START = time.perf_counter()


def fail(msg):
    print(f"peer_predict.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def name_matches(name, sel):
    """gseg's band selector rule (src/read/scene.c)."""
    n, s = name.lower(), sel.lower()
    if n == s:
        return True
    if n.endswith("_" + s):
        return True
    return ("_" + s + "_") in n


def select_bands(src, names):
    """1-based band indexes of the model's bands in the scene."""
    descs = [d or f"band {i + 1}" for i, d in enumerate(src.descriptions)]
    out = []
    for sel in names:
        sel = str(sel)
        if sel.isdigit():
            v = int(sel)
            if not 1 <= v <= src.count:
                fail(f"band {v} requested but the scene has {src.count} bands")
            out.append(v)
            continue
        idx = [i + 1 for i, d in enumerate(descs) if name_matches(d, sel)]
        if not idx:
            fail(f"no band named {sel!r} (bands: {', '.join(descs)})")
        out.append(idx[0])
    return out


def axis_layout(size, tile, overlap):
    """Tile starts along one axis and, per tile, the blend weights over its
    window (float32, length min(size, tile)): gseg's grid (src/tile/grid.c)
    and blend zones (src/stitch/stitcher.c)."""
    if size <= tile:
        return [0], [None]
    step = tile - overlap
    n = 1 + (size - tile + step - 1) // step
    pos = [size - tile if i == n - 1 else i * step for i in range(n)]
    z0, z1 = [0] * n, [0] * n
    for i in range(n - 1):
        mid = (pos[i + 1] + pos[i] + tile) / 2.0
        o = pos[i] + tile - pos[i + 1]
        room = math.inf
        if i > 0:
            room = min(room, mid - (pos[i] + pos[i - 1] + tile) / 2.0)
        if i + 2 < n:
            room = min(room, (pos[i + 2] + pos[i + 1] + tile) / 2.0 - mid)
        ln = min(overlap, o)
        if ln > room:
            ln = int(room)
        ln = max(ln, 0)
        z0[i] = pos[i + 1] + (o - ln) // 2
        z1[i] = z0[i] + ln
        if i > 0 and z0[i] < z1[i - 1]:
            z0[i] = z1[i - 1]
        z1[i] = max(z1[i], z0[i])
    import numpy as np
    weights = []
    for i in range(n):
        x = np.arange(pos[i], pos[i] + tile)
        w = np.ones(tile, dtype=np.float64)
        own0 = 0 if i == 0 else z0[i - 1]
        own1 = size if i == n - 1 else z1[i]
        w[(x < own0) | (x >= own1)] = 0.0
        if i > 0 and z1[i - 1] > z0[i - 1]:   # left zone: ramp up
            ln = z1[i - 1] - z0[i - 1]
            j = np.arange(ln)
            r = (0.5 - 0.5 * np.cos(math.pi * (j + 0.5) / ln)).astype(np.float32)
            w[z0[i - 1] - pos[i]:z1[i - 1] - pos[i]] = r
        if i < n - 1 and z1[i] > z0[i]:       # right zone: ramp down
            ln = z1[i] - z0[i]
            j = np.arange(ln)
            r = (0.5 - 0.5 * np.cos(math.pi * (j + 0.5) / ln)).astype(np.float32)
            w[z0[i] - pos[i]:z1[i] - pos[i]] = 1.0 - r
        weights.append(w.astype(np.float32))
    return pos, weights


def main():
    p = argparse.ArgumentParser(description="rasterio + PyTorch prediction pipeline peer")
    p.add_argument("scene")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--weights", required=True, help="state dict (gseg-export)")
    p.add_argument("--info", required=True, help="gseg-info MODEL --json output")
    p.add_argument("--tile", type=int, default=0, help="default: the model's")
    p.add_argument("--overlap", type=int, default=-1, help="default: the model's")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--summary", default=None)
    p.add_argument("--proba", default=None, help="also write the blended scores")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args()
    if a.batch < 1 or a.threads < 1:
        p.error("--batch and --threads must be >= 1")

    try:
        import numpy as np
        import rasterio
        from rasterio.enums import MaskFlags
        from rasterio.windows import Window
        import torch
        import segmentation_models_pytorch as smp
    except ImportError as e:
        fail(f"{e}: needs python3-rasterio, python3-torch and SMP (tests/peers/README.md)")
    try:
        from safetensors.torch import load_file
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "tests", "peers"))
        from st_io import load_file

    try:
        with open(a.info) as f:
            info = json.load(f)
        arch = info["architecture"]
        encoder, nb, K = arch["encoder"], int(arch["in_channels"]), int(arch["outputs"])
        bands = info["bands"]
        names = [b["name"] for b in bands]
        mean = np.array([b["mean"] for b in bands], dtype=np.float64)
        std = np.array([b["std"] for b in bands], dtype=np.float64)
        thr = float(info.get("threshold", 0.5))
        tile = a.tile if a.tile > 0 else int(info.get("tile") or 512)
        overlap = (a.overlap if a.overlap >= 0 else
                   int(info["overlap"]) if a.tile <= 0 and info.get("tile") else tile // 8)
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{a.info}: not gseg-info --json output ({e})")
    if len(names) != nb:
        fail(f"{a.info}: {len(names)} bands for {nb} input channels")
    if not 8 <= tile or not 0 <= overlap < tile:
        fail(f"bad tiling: tile {tile}, overlap {overlap}")

    torch.set_num_threads(a.threads)
    model = smp.Unet(encoder_name=encoder, encoder_weights=None, in_channels=nb, classes=K,
                     decoder_channels=(256, 128, 64, 32, 16))
    try:
        model.load_state_dict(load_file(a.weights), strict=True)
    except (RuntimeError, OSError) as e:
        fail(f"{a.weights}: {str(e).splitlines()[0]}")
    model.eval()
    model = model.to(memory_format=torch.channels_last)
    t_model_loaded = time.perf_counter()

    # mean/std as gseg applies them: (x - mean) * (1 / std), in float32
    mu = mean.astype(np.float32)[:, None, None]
    inv = (1.0 / std).astype(np.float32)[:, None, None]

    t0 = time.perf_counter()
    t_read = t_model = t_blend = 0.0
    with rasterio.open(a.scene) as src:
        idx = select_bands(src, names)
        H, W = src.height, src.width
        scales = [src.scales[i - 1] for i in idx]
        offsets = [src.offsets[i - 1] for i in idx]
        scaled = any(s not in (1.0, 0.0, None) for s in scales) or any(o for o in offsets)
        sc = np.array([s if s else 1.0 for s in scales], np.float32)[:, None, None]
        of = np.array([o or 0.0 for o in offsets], np.float32)[:, None, None]
        nodata = [src.nodatavals[i - 1] for i in idx]
        flags = src.mask_flag_enums
        use_mask = [nd is None and MaskFlags.all_valid not in flags[i - 1]
                    for nd, i in zip(nodata, idx)]

        ys, wys = axis_layout(H, tile, overlap)
        xs, wxs = axis_layout(W, tile, overlap)
        th, tw = min(H, tile), min(W, tile)

        # whole-scene accumulators
        acc = np.zeros((K, H, W), dtype=np.float32)
        wsum = np.zeros((H, W), dtype=np.float32)
        valid = np.zeros((H, W), dtype=bool)

        x = np.zeros((a.batch, nb, tile, tile), dtype=np.float32)
        pending = []  # (row, col) of the tiles in x
        ntiles = 0
        skipped = 0

        def flush():
            nonlocal t_model, t_blend, ntiles
            n = len(pending)
            if n == 0:
                return
            tm = time.perf_counter()
            xt = torch.from_numpy(x[:n]).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                if a.precision == "bf16":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        y = model(xt)
                else:
                    y = model(xt)
                y = y.float()
                y = torch.sigmoid(y) if K == 1 else torch.softmax(y, dim=1)
                prob = y.contiguous().numpy()
            tb = time.perf_counter()
            t_model += tb - tm
            for k, (r, c) in enumerate(pending):
                y0, x0 = ys[r], xs[c]
                wy, wx = wys[r], wxs[c]
                if wy is None:
                    wy = np.ones(th, np.float32)
                if wx is None:
                    wx = np.ones(tw, np.float32)
                w2 = wy[:th, None] * wx[None, :tw]
                acc[:, y0:y0 + th, x0:x0 + tw] += prob[k, :, :th, :tw] * w2
                wsum[y0:y0 + th, x0:x0 + tw] += w2
            t_blend += time.perf_counter() - tb
            ntiles += n
            pending.clear()

        for r in range(len(ys)):
            for c in range(len(xs)):
                tr = time.perf_counter()
                win = Window(xs[c], ys[r], tw, th)
                d = src.read(idx, window=win, out_dtype="float32")
                ok = np.isfinite(d).all(axis=0)
                for b in range(nb):
                    if nodata[b] is not None and not math.isnan(nodata[b]):
                        ok &= d[b] != np.float32(nodata[b])
                    elif use_mask[b]:
                        ok &= src.read_masks(idx[b], window=win) != 0
                if scaled:
                    d = d * sc + of
                valid[ys[r]:ys[r] + th, xs[c]:xs[c] + tw] = ok
                if not ok.any():
                    skipped += 1
                    t_read += time.perf_counter() - tr
                    continue
                slot = x[len(pending)]
                slot.fill(0.0)
                slot[:, :th, :tw] = np.where(ok, (d - mu) * inv, np.float32(0.0))
                pending.append((r, c))
                t_read += time.perf_counter() - tr
                if len(pending) == a.batch:
                    flush()
        flush()

        tb = time.perf_counter()
        if K == 1:
            score = acc[0] / np.maximum(wsum, np.float32(1e-30))
            mask = (score > np.float32(thr)).astype(np.uint8)
            del score
        else:
            mask = np.argmax(acc, axis=0).astype(np.uint8)
        mask[~valid] = 255
        if not a.proba:
            del acc, wsum
        t_blend += time.perf_counter() - tb
        crs, transform = src.crs, src.transform

    tw0 = time.perf_counter()
    out_profile = {
        "driver": "GTiff", "width": W, "height": H, "count": 1, "dtype": "uint8",
        "crs": crs, "transform": transform, "nodata": 255, "compress": "deflate",
        "tiled": True, "blockxsize": 512, "blockysize": 512,
    }
    if W * H > 2 ** 31:
        out_profile["BIGTIFF"] = "IF_SAFER"
    with rasterio.open(a.output, "w", **out_profile) as dst:
        dst.write(mask, 1)
    t_end = time.perf_counter()
    if a.proba:  # not timed
        score = acc / np.maximum(wsum, np.float32(1e-30))
        score[:, ~valid] = np.nan
        out_profile.update(count=K, dtype="float32", nodata=float("nan"))
        with rasterio.open(a.proba, "w", **out_profile) as dst:
            dst.write(score)

    nvalid = int(valid.sum())
    counts = np.bincount(mask[valid], minlength=max(K, 2))
    scene = {
        "input": a.scene, "output": a.output, "status": "ok",
        "seconds": round(t_end - t0, 4),
        "tiles": ntiles, "tiles_skipped": skipped,
        "tile_pixels": ntiles * tile * tile,
        "model_seconds": round(t_model, 4),
        "read_seconds": round(t_read, 4),
        "blend_seconds": round(t_blend, 4),
        "write_seconds": round(t_end - tw0, 4),
        "pixels": W * H, "valid_pixels": nvalid,
        "class_pixels": [int(v) for v in counts],
    }
    result = {
        "peer": "python", "seconds": round(t_end - T_START, 4),
        "model_load_seconds": round(t_model_loaded - T_START, 4),
        "scenes": [scene],
        "tile": tile, "overlap": overlap, "batch": a.batch, "threads": a.threads,
        "precision": a.precision, "encoder": encoder, "bands": nb, "outputs": K,
        "threshold": thr,
        "torch": torch.__version__, "smp": smp.__version__,
        "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__,
        "machine": platform.machine(),
    }
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    if not a.quiet:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
