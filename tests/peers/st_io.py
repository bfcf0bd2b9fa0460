"""Tiny safetensors reader/writer shared by the test peers.

The peers exchange tensors with gseg through safetensors files. The PyPI
package `safetensors` is used when it is importable; otherwise (or when the
environment variable GSEG_PEER_PURE_ST=1 is set) this module reads and writes
the format itself with struct + json + numpy:

    u64 little-endian N | N bytes of JSON header | raw little-endian data

The header maps each tensor name to {"dtype", "shape", "data_offsets": [b, e]}
(offsets relative to the start of the data block) and may hold a
"__metadata__" object of string -> string. The header is padded with spaces
to a multiple of 8 bytes, as the reference implementation does.
"""

import json
import os
import struct

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - the peers always have torch
    torch = None

_NP_OF = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_ST_OF = {v.str: k for k, v in _NP_OF.items()}  # "<f4" -> "F32", "|u1" -> "U8"


class SafetensorsError(Exception):
    pass


def _use_package():
    if os.environ.get("GSEG_PEER_PURE_ST") == "1":
        return False
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def backend():
    """'safetensors' when the PyPI package is used, else 'st_io'."""
    return "safetensors" if _use_package() else "st_io"


def _to_numpy(name, t):
    if torch is not None and isinstance(t, torch.Tensor):
        if t.dtype == torch.bfloat16:
            raise SafetensorsError(f"{name}: bf16 is not supported by st_io")
        t = t.detach().cpu().contiguous().numpy()
    a = np.asarray(t)  # not ascontiguousarray: it turns 0-d into 1-d
    dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
    if dt.str not in _ST_OF:
        raise SafetensorsError(f"{name}: unsupported dtype {a.dtype}")
    return a.astype(dt, order="C", copy=False), _ST_OF[dt.str]


def write(path, tensors, metadata=None):
    """Write dict name -> numpy array / torch tensor in safetensors format."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a, st = _to_numpy(name, tensors[name])
        raw = a.tobytes(order="C")
        header[name] = {"dtype": st, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def read(path):
    """Read a safetensors file; returns (dict name -> numpy array, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise SafetensorsError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise SafetensorsError(f"{path}: header length {n} exceeds file size")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: bad JSON header: {e}")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        st = info.get("dtype")
        if st not in _NP_OF:
            raise SafetensorsError(f"{path}: {name}: unsupported dtype {st}")
        dt = _NP_OF[st]
        shape = tuple(int(s) for s in info["shape"])
        b, e = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != count * dt.itemsize or b < 0 or e > len(body):
            raise SafetensorsError(
                f"{path}: {name}: data_offsets {b},{e} do not match "
                f"{st}{list(shape)} in a body of {len(body)} bytes")
        out[name] = np.frombuffer(body[b:e], dtype=dt).reshape(shape).copy()
    return out, metadata


def save_file(tensors, path, metadata=None):
    """Like safetensors.torch.save_file (torch tensors, contiguous)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    if _use_package():
        from safetensors.torch import save_file as _save
        _save(tensors, path, metadata=metadata)
    else:
        write(path, tensors, metadata)


def load_file(path):
    """Like safetensors.torch.load_file: dict name -> torch tensor (CPU)."""
    if not os.path.exists(path):
        raise SafetensorsError(f"{path}: no such file")
    if _use_package():
        from safetensors.torch import load_file as _load
        try:
            return _load(path)
        except Exception as e:  # safetensors_rust.SafetensorError etc.
            raise SafetensorsError(f"{path}: {e}")
    arrays, _ = read(path)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}

