#!/usr/bin/python3
"""torchvision ResNet peer for gseg's encoder tests.

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision).

  tv_peer.py make --seed S --out W.safetensors [--arch resnet50|resnet34|resnet18]
                  [--bands C] [--bn-stats calibrated|random]
  tv_peer.py features --weights W.safetensors --input IN.safetensors
                  --out OUT.safetensors [--arch ...] [--threads N]

`make` writes a torchvision ResNet state dict (random init, non-trivial
BatchNorm statistics, including fc.*). `features` runs the model in eval mode
on tensor "x" of IN and writes f1..f5, the five features SMP's ResNetEncoder
returns after the identity:
  f1 = relu(bn1(conv1(x)))   f2 = layer1(maxpool(f1))   f3 = layer2(f2)
  f4 = layer3(f3)            f5 = layer4(f4)
All tensors are float32, contiguous, NCHW. The architecture of `features` is
taken from --arch, or else recognised from the keys; the input channels from
conv1.weight.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import st_io  # noqa: E402

ARCHS = ("resnet18", "resnet34", "resnet50")


class PeerError(Exception):
    pass


def _torch():
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as e:
        raise PeerError(f"{e}: install Debian's python3-torch python3-torchvision "
                        "and run with /usr/bin/python3")
    return torch


def randomize_bn(model, seed, calib_input=None, mode="calibrated"):
    """Give every BatchNorm2d non-trivial affine parameters and statistics.

    mode "random": weight U[0.75, 1.25], bias U[-0.1, 0.1],
        running_mean U[-0.1, 0.1], running_var U[0.5, 1.5].
    mode "calibrated" (default): the same weight/bias, then running statistics
        measured by train-mode forwards of `calib_input` (a list of tensors),
        then jittered (mean += U[-0.1, 0.1] * std, var *= U[0.8, 1.25]).
        This keeps activations O(1) through deep random networks (ResNet-50
        with "random" statistics reaches |f5| ~ 1e2), so outputs such as
        sigmoid probabilities are not saturated and comparisons stay
        meaningful, while folding BN is exercised as much as with "random".
    num_batches_tracked is set to a non-zero value in both modes.
    Uses its own generator seeded with `seed`: deterministic.
    """
    torch = _torch()
    g = torch.Generator().manual_seed(int(seed))

    def u(n, lo, hi):
        return torch.rand(n, generator=g) * (hi - lo) + lo

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            n = bn.num_features
            bn.weight.copy_(u(n, 0.75, 1.25))
            bn.bias.copy_(u(n, -0.1, 0.1))
            bn.running_mean.copy_(u(n, -0.1, 0.1))
            bn.running_var.copy_(u(n, 0.5, 1.5))
            bn.num_batches_tracked.fill_(1)
        if mode == "random":
            return
        if mode != "calibrated":
            raise PeerError(f"unknown BN statistics mode {mode!r}")
        if not calib_input:
            raise PeerError("calibrated BN statistics need a calibration input")
        saved = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        was_training = model.training
        model.train()
        for x in calib_input:
            model(x)
        model.train(was_training)
        for bn, mom in zip(bns, saved):
            bn.momentum = mom
            n = bn.num_features
            std = bn.running_var.clamp_min(1e-6).sqrt()
            bn.running_mean.add_(u(n, -0.1, 0.1) * std)
            bn.running_var.mul_(u(n, 0.8, 1.25))


def calib_batches(seed, bands, tile=64, batches=2, batch=2):
    """Deterministic calibration inputs: N(0,1) plus a smooth per-band offset."""
    torch = _torch()
    g = torch.Generator().manual_seed(int(seed) + 7919)
    out = []
    for _ in range(batches):
        x = torch.randn(batch, bands, tile, tile, generator=g)
        x += torch.randn(1, bands, 1, 1, generator=g) * 0.5
        out.append(x)
    return out


def build_tv(arch, bands):
    torch = _torch()
    import torchvision
    if arch not in ARCHS:
        raise PeerError(f"unknown --arch {arch!r} (choose from {', '.join(ARCHS)})")
    model = getattr(torchvision.models, arch)(weights=None)
    if bands != 3:
        conv = torch.nn.Conv2d(bands, 64, kernel_size=7, stride=2, padding=3, bias=False)
        torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        model.conv1 = conv
    return model


def arch_from_keys(sd):
    if "layer1.0.conv3.weight" in sd:
        return "resnet50"
    if "layer3.2.conv1.weight" in sd:
        return "resnet34"
    if "layer1.0.conv1.weight" in sd:
        return "resnet18"
    raise PeerError("weights do not look like a torchvision ResNet state dict "
                    "(no layer1.0.conv1.weight)")


def load_checked(model, sd, what):
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise PeerError(f"{what}: state dict does not match the model:\n{e}")


def read_input(path, bands=None):
    torch = _torch()
    t = st_io.load_file(path)
    if "x" not in t:
        raise PeerError(f"{path}: no tensor named 'x' (has: {', '.join(sorted(t)) or 'none'})")
    x = t["x"]
    if x.dtype != torch.float32:
        raise PeerError(f"{path}: 'x' is {x.dtype}, expected float32")
    if x.dim() != 4:
        raise PeerError(f"{path}: 'x' has shape {list(x.shape)}, expected NCHW (4-D)")
    if bands is not None and x.shape[1] != bands:
        raise PeerError(f"{path}: 'x' has {x.shape[1]} channels, the model expects {bands}")
    return x.contiguous()


def cmd_make(a):
    torch = _torch()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = build_tv(a.arch, a.bands)
    randomize_bn(model, a.seed + 1, calib_batches(a.seed, a.bands), a.bn_stats)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    st_io.save_file(sd, a.out, metadata={"format": "pt"})
    print(f"wrote {a.out}: torchvision {a.arch}, {a.bands} bands, {len(sd)} tensors "
          f"({st_io.backend()})")


def cmd_features(a):
    torch = _torch()
    torch.set_num_threads(a.threads)
    sd = st_io.load_file(a.weights)
    arch = a.arch or arch_from_keys(sd)
    if "conv1.weight" not in sd:
        raise PeerError(f"{a.weights}: no conv1.weight")
    bands = int(sd["conv1.weight"].shape[1])
    model = build_tv(arch, bands)
    load_checked(model, sd, a.weights)
    model.eval()
    x = read_input(a.input, bands)
    with torch.no_grad():
        f1 = model.relu(model.bn1(model.conv1(x)))
        f2 = model.layer1(model.maxpool(f1))
        f3 = model.layer2(f2)
        f4 = model.layer3(f3)
        f5 = model.layer4(f4)
    out = {"f1": f1, "f2": f2, "f3": f3, "f4": f4, "f5": f5}
    st_io.save_file({k: v.float().contiguous() for k, v in out.items()}, a.out,
                    metadata={"format": "pt"})
    print(f"wrote {a.out}: " + " ".join(f"{k}{list(v.shape)}" for k, v in out.items()))


def main(argv=None):
    p = argparse.ArgumentParser(description="torchvision ResNet peer for gseg tests")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("make", help="write a random torchvision ResNet state dict")
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--arch", choices=ARCHS, default="resnet50")
    m.add_argument("--bands", type=int, default=3, help="conv1 input channels (default 3)")
    m.add_argument("--bn-stats", choices=("calibrated", "random"), default="calibrated")
    m.add_argument("--threads", type=int, default=1)
    m.set_defaults(func=cmd_make)

    f = sub.add_parser("features", help="write encoder features f1..f5")
    f.add_argument("--weights", required=True)
    f.add_argument("--input", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--arch", choices=ARCHS, default=None,
                   help="default: recognised from the keys")
    f.add_argument("--threads", type=int, default=1)
    f.set_defaults(func=cmd_features)

    a = p.parse_args(argv)
    if getattr(a, "bands", 1) < 1 or a.threads < 1:
        p.error("--bands and --threads must be >= 1")
    try:
        a.func(a)
    except (PeerError, st_io.SafetensorsError, OSError) as e:
        print(f"tv_peer.py {a.cmd}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
