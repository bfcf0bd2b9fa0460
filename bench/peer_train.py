#!/usr/bin/python3
"""Training-step throughput peer: the same U-Net in PyTorch (SMP on Debian's
python3-torch), AdamW, BCE + soft Dice on a binary target, on a fixed
random batch (no data loading at all: the peer's best case); fp32, or bf16
mixed precision by torch.autocast; optionally channels-last.

  bench/peer_train.py [--encoder resnet50] [--bands 7] [--tile 256] [--batch 4]
                      [--threads 2] [--iters 8] [--warmup 2]
                      [--precision fp32|bf16] [--channels-last]

Prints one line of JSON: samples_per_s, seconds, settings.
"""
import argparse
import json
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--encoder", default="resnet50")
    p.add_argument("--bands", type=int, default=7)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    import torch
    import segmentation_models_pytorch as smp
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = smp.Unet(a.encoder, encoder_weights=None, in_channels=a.bands, classes=1,
                     decoder_channels=(256, 128, 64, 32, 16))
    model.train()
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=mf)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x = torch.randn(a.batch, a.bands, a.tile, a.tile).contiguous(memory_format=mf)
    t = (torch.rand(a.batch, a.tile, a.tile) > 0.5).float()
    v = torch.ones_like(t)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            z = model(x)
        z = z.float().squeeze(1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none")
        pr = torch.sigmoid(z) * v
        dice = 1 - (2 * (pr * t).sum() + 1) / (pr.sum() + t.sum() + 1)
        loss = (bce * v).sum() / v.sum() + dice
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    sec = time.perf_counter() - t0
    print(json.dumps({"impl": "python", "encoder": a.encoder, "tile": a.tile, "batch": a.batch,
                      "threads": a.threads, "iters": a.iters, "precision": a.precision,
                      "channels_last": a.channels_last, "seconds": round(sec, 3),
                      "samples_per_s": round(a.iters * a.batch / sec, 4)}))


if __name__ == "__main__":
    main()
