#!/usr/bin/python3
"""segmentation-models-pytorch (SMP) Unet peer for gseg's model tests.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision)
plus SMP from PyPI installed with --no-deps (see tests/peers/README.md).

  smp_peer.py make --encoder E --bands C --classes K --seed S --out W.safetensors
                   [--bn-stats calibrated|random]
  smp_peer.py forward --encoder E --bands C --classes K --weights W.safetensors
                   --input IN.safetensors --out OUT.safetensors [--threads N]
  smp_peer.py patch --weights W.safetensors --bands C --out OUT.safetensors
  smp_peer.py check-load --encoder E --bands C --classes K --weights W.safetensors
                   [--lenient-dtype]
  smp_peer.py train --encoder E --bands C --classes K --weights W.safetensors
                   --input IN.safetensors --micro M --lr LR --wd WD
                   [--precision fp32|bf16] --out OUT.safetensors

E is resnet50, resnet34 or resnet18. The model is
smp.Unet(encoder_name=E, encoder_weights=None, in_channels=C, classes=K,
decoder_channels=(256, 128, 64, 32, 16)). `forward` reads tensor "x"
(float32 NCHW) and writes "logits" and "proba" (sigmoid when K == 1, softmax
over dim 1 otherwise).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import st_io  # noqa: E402
from tv_peer import PeerError, calib_batches, randomize_bn, read_input  # noqa: E402

ENCODERS = ("resnet50", "resnet34", "resnet18")
DECODER_CHANNELS = (256, 128, 64, 32, 16)


def _smp():
    try:
        import segmentation_models_pytorch as smp
    except ImportError as e:
        raise PeerError(
            f"cannot import segmentation_models_pytorch ({e}); install it with\n"
            "  /usr/bin/python3 -m pip install --break-system-packages --no-deps "
            "segmentation-models-pytorch==0.6.0 timm==1.0.31 huggingface_hub==0.36.2 "
            "safetensors==0.8.0\n(see tests/peers/README.md)")
    return smp


def build(a):
    smp = _smp()
    if a.encoder not in ENCODERS:
        raise PeerError(f"unknown --encoder {a.encoder!r}")
    return smp.Unet(encoder_name=a.encoder, encoder_weights=None,
                    in_channels=a.bands, classes=a.classes,
                    decoder_channels=DECODER_CHANNELS)


def load_strict(model, path, lenient_dtype=False):
    """Load `path` into `model` with strict=True; PeerError on any mismatch."""
    sd = st_io.load_file(path)
    ref = model.state_dict()
    missing = sorted(set(ref) - set(sd))
    unexpected = sorted(set(sd) - set(ref))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): " + ", ".join(missing[:20])
                        + (" ..." if len(missing) > 20 else ""))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(unexpected[:20])
                        + (" ..." if len(unexpected) > 20 else ""))
    for k in sorted(set(ref) & set(sd)):
        if tuple(sd[k].shape) != tuple(ref[k].shape):
            problems.append(f"shape of {k}: file {list(sd[k].shape)}, "
                            f"model {list(ref[k].shape)}")
        elif sd[k].dtype != ref[k].dtype and not lenient_dtype:
            problems.append(f"dtype of {k}: file {sd[k].dtype}, model {ref[k].dtype}")
    if problems:
        raise PeerError(f"{path} does not match {model.name} "
                        f"({len(ref)} tensors expected, {len(sd)} in file):\n  "
                        + "\n  ".join(problems))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # should have been caught above
        raise PeerError(f"{path}: load_state_dict(strict=True) failed:\n{e}")
    return len(sd)


def cmd_make(a):
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = build(a)
    randomize_bn(model, a.seed + 1, calib_batches(a.seed, a.bands), a.bn_stats)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # Only {"format": "pt"}: the safetensors package writes metadata from a
    # hash map, so several keys would come out in varying order (files must
    # be byte-identical for one seed).
    st_io.save_file(sd, a.out, metadata={"format": "pt"})
    if a.pth_plain:  # torch.save of a plain dict (libtorch can read it)
        torch.save(dict(sd), a.pth_plain)
    if a.pth_state_dict:  # torch.save of state_dict() (an OrderedDict)
        torch.save(model.state_dict(), a.pth_state_dict)
    print(f"wrote {a.out}: Unet {a.encoder}, {a.bands} bands, {a.classes} classes, "
          f"{len(sd)} tensors, {sum(p.numel() for p in model.parameters())} parameters "
          f"({st_io.backend()})")


def cmd_forward(a):
    import torch
    torch.set_num_threads(a.threads)
    model = build(a)
    load_strict(model, a.weights)
    model.eval()
    x = read_input(a.input, a.bands)
    with torch.no_grad():
        logits = model(x)
        proba = torch.sigmoid(logits) if a.classes == 1 else torch.softmax(logits, dim=1)
    st_io.save_file({"logits": logits.float().contiguous(),
                     "proba": proba.float().contiguous()}, a.out,
                    metadata={"format": "pt"})
    print(f"wrote {a.out}: logits{list(logits.shape)} "
          f"range [{logits.min().item():.4g}, {logits.max().item():.4g}]")


def cmd_patch(a):
    """SMP's patch_first_conv applied to the first convolution of a state
    dict (3 input bands) for --bands bands; writes encoder.conv1.weight."""
    import torch
    from segmentation_models_pytorch.encoders._utils import patch_first_conv
    _smp()
    w = st_io.load_file(a.weights)["encoder.conv1.weight"]
    conv = torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=False)
    with torch.no_grad():
        conv.weight.copy_(w)
    holder = torch.nn.Sequential(conv)
    patch_first_conv(holder, new_in_channels=a.bands, default_in_channels=w.shape[1],
                     pretrained=True)
    st_io.save_file({"encoder.conv1.weight": holder[0].weight.detach().contiguous()}, a.out,
                    metadata={"format": "pt"})
    print(f"wrote {a.out}: encoder.conv1.weight {list(holder[0].weight.shape)}")


def loss_of(torch, z, t, v, classes):
    """gseg-train's loss: BCE + soft Dice (binary) or CE + mean soft Dice,
    over valid pixels, smoothing 1."""
    F = torch.nn.functional
    nv = v.sum().clamp_min(1.0)
    if classes == 1:
        z = z.squeeze(1)
        bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        p, tv = torch.sigmoid(z) * v, t * v
        dice = 1 - (2 * (p * tv).sum() + 1) / (p.sum() + tv.sum() + 1)
        return (bce * v).sum() / nv + dice
    ti = t.long().clamp(0, classes - 1)
    ce = F.nll_loss(torch.log_softmax(z, 1), ti, reduction="none")
    p = torch.softmax(z, 1) * v.unsqueeze(1)
    oh = F.one_hot(ti, classes).permute(0, 3, 1, 2).float() * v.unsqueeze(1)
    inter, denom = (p * oh).sum((0, 2, 3)), p.sum((0, 2, 3)) + oh.sum((0, 2, 3))
    dice = (1 - (2 * inter + 1) / (denom + 1)).mean()
    return (ce * v).sum() / nv + dice


def cmd_train(a):
    """One AdamW step over --micro accumulated micro-batches x<i>, t<i>
    (targets), v<i> (valid 0/1) of --input, as gseg-train does it; writes
    the new state dict (BatchNorm statistics included)."""
    import torch
    torch.set_num_threads(a.threads)
    model = build(a)
    load_strict(model, a.weights)
    model.train()
    model = model.to(memory_format=torch.channels_last)  # as gseg trains
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    data = st_io.load_file(a.input)
    losses = []
    for i in range(a.micro):
        x, t, v = data[f"x{i}"], data[f"t{i}"], data[f"v{i}"]
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            z = model(x)
        loss = loss_of(torch, z.float(), t, v, a.classes)
        (loss / a.micro).backward()
        losses.append(loss.item())
    opt.step()
    st_io.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.out,
                    metadata={"format": "pt"})
    print(f"wrote {a.out}: losses {', '.join(f'{x:.6f}' for x in losses)}")


def cmd_check_load(a):
    model = build(a)
    n = load_strict(model, a.weights, a.lenient_dtype)
    print(f"ok {n} tensors")


def main(argv=None):
    p = argparse.ArgumentParser(description="SMP Unet peer for gseg tests")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--encoder", choices=ENCODERS, required=True)
        sp.add_argument("--bands", type=int, required=True)
        sp.add_argument("--classes", type=int, required=True)
        sp.add_argument("--threads", type=int, default=1)

    m = sub.add_parser("make", help="write a random SMP Unet state dict")
    common(m)
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--bn-stats", choices=("calibrated", "random"), default="calibrated")
    m.add_argument("--pth-plain", help="also torch.save the state dict as a plain dict")
    m.add_argument("--pth-state-dict", help="also torch.save model.state_dict()")
    m.set_defaults(func=cmd_make)

    pt = sub.add_parser("patch", help="SMP's patch_first_conv on encoder.conv1.weight")
    pt.add_argument("--weights", required=True)
    pt.add_argument("--bands", type=int, required=True)
    pt.add_argument("--out", required=True)
    pt.set_defaults(func=cmd_patch, classes=1, threads=1)

    f = sub.add_parser("forward", help="run the Unet on tensor 'x'")
    common(f)
    f.add_argument("--weights", required=True)
    f.add_argument("--input", required=True)
    f.add_argument("--out", required=True)
    f.set_defaults(func=cmd_forward)

    c = sub.add_parser("check-load", help="load a state dict strictly")
    common(c)
    c.add_argument("--weights", required=True)
    c.add_argument("--lenient-dtype", action="store_true",
                   help="accept dtypes that differ from the model's (SMP casts them)")
    c.set_defaults(func=cmd_check_load)

    tr = sub.add_parser("train", help="one AdamW step over accumulated micro-batches")
    common(tr)
    tr.add_argument("--weights", required=True)
    tr.add_argument("--input", required=True)
    tr.add_argument("--micro", type=int, default=1)
    tr.add_argument("--lr", type=float, required=True)
    tr.add_argument("--wd", type=float, default=0.0)
    tr.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    tr.add_argument("--out", required=True)
    tr.set_defaults(func=cmd_train)

    a = p.parse_args(argv)
    if a.bands < 1 or a.classes < 1 or a.threads < 1:
        p.error("--bands, --classes and --threads must be >= 1")
    try:
        a.func(a)
    except (PeerError, st_io.SafetensorsError, OSError) as e:
        print(f"smp_peer.py {a.cmd}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
