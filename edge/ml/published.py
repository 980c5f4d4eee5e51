"""Weights as their authors publish them: SonoNet's `.npz` release, read into the zoo's SonoNet.

Baumgartner et al. publish SonoNet-16/32/64 (repository baumgach/SonoNet-weights, Apache-2.0) as a
NumPy archive written by Lasagne: `arr_0` ... `arr_74`, the network's parameters in layer order. Per
convolution its `W` (out x in x kh x kw; no bias, a BatchNorm follows), per BatchNorm `beta`,
`gamma`, `mean` and `inv_std` = 1 / sqrt(var + 1e-4). Fifteen conv+BN pairs: the five feature stages
(2, 2, 3, 3, 3 convs) and the two 1x1 adaptation convs. `read_npz` returns them as the state_dict of
`edge.ml.models.sononet` under the key names of the common PyTorch port (`features.{stage}.{conv}.0`
conv, `.1` BN; `adaption.0`/`.1`, `adaption.3`/`.4`), with `running_var = 1 / inv_std**2 - 1e-4`
computed in float32: the converted SonoNet16.pth, tensor for tensor, bit for bit (tested on the
released SonoNet16.npz). The width (16, 32, 64) is in the shapes, so `--model sononet16|32|64` picks
the network and a mismatch is refused by the strict load (`edge.ml.checkpoint.load_state`); the
repository's SmallNet.npz, another architecture, is refused by its array count.

The file comes from outside, so nothing in it runs and nothing unbounded is allocated: it is opened
as a zip, every member's .npy header is read first (float arrays only, at most 4-D, the declared size
within the member's bytes and `MAX_BYTES` in all), then the arrays with `allow_pickle=False`. A file
that does not fit is refused in one line (`FileFormatError`) naming what is wrong.

    >>> state = read_npz("SonoNet16.npz")                               # doctest: +SKIP
    >>> model, meta = load_model("SonoNet16.npz", model="sononet16")    # doctest: +SKIP
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from edge.core.errors import FileFormatError

BN_EPS = np.float32(1e-4)            # Lasagne's BatchNorm epsilon in the release (edge.ml.models.sononet.BN_EPS)
STAGE_CONVS = (2, 2, 3, 3, 3)
PER_LAYER = ("W", "beta", "gamma", "mean", "inv_std")
MAX_ARRAYS = 1000
MAX_BYTES = 1 << 30                  # 1 GiB of weights; SonoNet-64 holds about 60 MB
_FIX = "pass the SonoNet16/32/64.npz of baumgach/SonoNet-weights as downloaded, or a PyTorch state_dict (.pth)"


def sononet_layers() -> list[tuple[str, str]]:
    """(conv, its BatchNorm) key prefixes in the release's order."""
    layers = [(f"features.{s}.{c}.0", f"features.{s}.{c}.1") for s, n in enumerate(STAGE_CONVS) for c in range(n)]
    return layers + [("adaption.0", "adaption.1"), ("adaption.3", "adaption.4")]


def _bad(path, what: str) -> FileFormatError:
    return FileFormatError(f"{path}: {what}; {_FIX}")


def _headers(zf: zipfile.ZipFile, path) -> dict[int, tuple]:
    """{N: (shape, dtype)} of every `arr_N.npy`, from the headers alone, every bound checked."""
    infos = zf.infolist()
    if not infos or len(infos) > MAX_ARRAYS:
        raise _bad(path, f"holds {len(infos)} members, not a weight archive")
    if sum(i.file_size for i in infos) > MAX_BYTES:
        raise _bad(path, f"unpacks to more than {MAX_BYTES >> 20} MiB, far more than any zoo model's weights")
    out = {}
    for info in infos:
        m = re.fullmatch(r"arr_(\d{1,4})\.npy", info.filename)
        if not m:
            raise _bad(path, f"member {info.filename[:60]!r} is not one of Lasagne's arr_N arrays "
                             f"(not a published SonoNet weight file)")
        try:
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _fortran, dtype = read(f)
                header = f.tell() if f.seekable() else 128
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
            raise _bad(path, f"{info.filename} is not a readable .npy array ({type(exc).__name__}: "
                             f"{str(exc)[:80]})") from None
        if dtype.hasobject or dtype.kind != "f":
            raise _bad(path, f"{info.filename} holds {dtype} values, not floating-point weights")
        if len(shape) > 4 or any(d < 0 for d in shape):
            raise _bad(path, f"{info.filename} has shape {list(shape)[:6]}, not a weight's (at most 4-D)")
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > max(0, info.file_size - min(header, info.file_size)):
            raise _bad(path, f"{info.filename} declares {list(shape)} {dtype} values but holds fewer bytes "
                             f"(truncated or crafted)")
        out[int(m.group(1))] = (tuple(shape), dtype)
    return out


def read_npz(path) -> dict:
    """The release's arrays as the zoo SonoNet's state_dict {name: float32 tensor} (see the module doc)."""
    import torch

    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _bad(path, f"not a NumPy .npz archive ({type(exc).__name__}: {str(exc)[:80]})") from None
    with zf:
        headers = _headers(zf, path)
        layers = sononet_layers()
        want = len(layers) * len(PER_LAYER)
        if sorted(headers) != list(range(len(headers))) or len(headers) != want:
            raise _bad(path, f"holds {len(headers)} arrays, SonoNet's release holds arr_0 ... arr_{want - 1} "
                             f"({len(layers)} conv layers x {', '.join(PER_LAYER)})")
        for i, (conv, _bn) in enumerate(layers):
            w_shape = headers[5 * i][0]
            if len(w_shape) != 4:
                raise _bad(path, f"arr_{5 * i} (the W of {conv}) has shape {list(w_shape)}, expected a 4-D conv kernel")
            for j, name in enumerate(PER_LAYER[1:], start=1):
                if headers[5 * i + j][0] != (w_shape[0],):
                    raise _bad(path, f"arr_{5 * i + j} (the BatchNorm {name} after {conv}) has shape "
                                     f"{list(headers[5 * i + j][0])}, expected [{w_shape[0]}]")
        arrays = {}
        for n in range(want):
            try:
                with zf.open(f"arr_{n}.npy") as f:
                    a = np.lib.format.read_array(f, allow_pickle=False)
            except (ValueError, OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
                raise _bad(path, f"arr_{n}.npy cannot be read ({type(exc).__name__}: {str(exc)[:80]})") from None
            a = np.ascontiguousarray(a, dtype=np.float32)
            if not np.isfinite(a).all():
                raise _bad(path, f"arr_{n} holds NaN or infinite values")
            arrays[n] = a
    state = {}
    for i, (conv, bn) in enumerate(layers):
        w, beta, gamma, mean, inv_std = (arrays[5 * i + j] for j in range(5))
        if not (inv_std > 0).all():
            raise _bad(path, f"arr_{5 * i + 4} (the BatchNorm inv_std after {conv}) has values <= 0")
        var = np.float32(1.0) / (inv_std * inv_std) - BN_EPS
        for key, value in ((f"{conv}.weight", w), (f"{bn}.weight", gamma), (f"{bn}.bias", beta),
                           (f"{bn}.running_mean", mean), (f"{bn}.running_var", var.astype(np.float32))):
            state[key] = torch.from_numpy(np.ascontiguousarray(value))
    return state
