#!/usr/bin/python3
"""Model-only throughput peer: SMP Unet in PyTorch, for comparison with gseg.

Run with Debian's /usr/bin/python3 (python3-torch 1.13) plus
segmentation-models-pytorch installed as in tests/peers/README.md.

  bench/peer_model.py [--encoder resnet50] [--bands 6] [--classes 1]
      [--weights W.safetensors] [--tile 256] [--batch 4] [--threads 2]
      [--precision fp32|bf16] [--iters 10] [--warmup 2] [--seed 0]

Builds smp.Unet(encoder, encoder_weights=None, in_channels=bands,
classes=classes, decoder_channels=(256,128,64,32,16)), loads --weights
strictly when given (random init otherwise), puts model and input in
channels_last, and times `iters` forward passes of a batch of random tiles
under torch.inference_mode() (bf16: torch.autocast("cpu", dtype=bfloat16))
after `warmup` untimed ones. Prints one line of JSON:
tiles_per_s, mpx_per_s (input megapixels per second), seconds (timed total),
plus the per-iteration minimum/median and the settings.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "peers"))


def fail(msg):
    print(f"peer_model.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser(description="SMP Unet model-only throughput")
    p.add_argument("--encoder", default="resnet50",
                   choices=("resnet50", "resnet34", "resnet18"))
    p.add_argument("--bands", type=int, default=6)
    p.add_argument("--classes", type=int, default=1)
    p.add_argument("--weights", default=None, help="safetensors state dict (optional)")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    for name in ("bands", "classes", "tile", "batch", "threads", "iters"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be >= 1")
    if a.warmup < 0:
        p.error("--warmup must be >= 0")

    try:
        import torch
        import segmentation_models_pytorch as smp
    except ImportError as e:
        fail(f"{e}: see tests/peers/README.md for the install commands")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = smp.Unet(encoder_name=a.encoder, encoder_weights=None,
                     in_channels=a.bands, classes=a.classes,
                     decoder_channels=(256, 128, 64, 32, 16))
    if a.weights:
        import st_io
        try:
            sd = st_io.load_file(a.weights)
            model.load_state_dict(sd, strict=True)
        except (st_io.SafetensorsError, RuntimeError, OSError) as e:
            lines = str(e).splitlines()
            fail(f"{a.weights}: " + "\n".join(lines[:12])
                 + ("\n..." if len(lines) > 12 else ""))
    model.eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, a.bands, a.tile, a.tile)
    x = x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            if a.precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = model(x)
            else:
                y = model(x)
        return y

    for _ in range(a.warmup):
        y = run()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        y = run()
        times.append(time.perf_counter() - t0)
    total = sum(times)
    tiles = a.iters * a.batch
    result = {
        "peer": "smp",
        "encoder": a.encoder, "bands": a.bands, "classes": a.classes,
        "tile": a.tile, "batch": a.batch, "threads": a.threads,
        "precision": a.precision, "iters": a.iters, "warmup": a.warmup,
        "weights": a.weights or "random",
        "tiles_per_s": round(tiles / total, 4),
        "mpx_per_s": round(tiles * a.tile * a.tile / total / 1e6, 4),
        "seconds": round(total, 4),
        "iter_s_min": round(min(times), 4),
        "iter_s_median": round(statistics.median(times), 4),
        "out_dtype": str(y.dtype).replace("torch.", ""),
        "torch": torch.__version__, "smp": smp.__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
