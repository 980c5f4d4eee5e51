"""Published weights as published: SonoNet's Lasagne `.npz` (`edge.ml.published`) gives every tensor of
the converted SonoNet16.pth bit for bit and loads into the zoo's SonoNet; an npz that does not fit
(not a zip, foreign names, the wrong count or shapes, pickled objects, a header that claims more than
the file holds, NaN, a non-positive inv_std) is refused in one line and nothing in it runs."""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
import torch

from edge.core.errors import FileFormatError
from edge.ml.checkpoint import load_model
from edge.ml.published import read_npz, sononet_layers
from tests.conftest import assert_one_error, run_main


@pytest.fixture(scope="module")
def release(shared_data):
    d = shared_data / "sononet16"
    if not (d / "SonoNet16.npz").is_file() or not (d / "SonoNet16.pth").is_file():
        pytest.skip(f"SonoNet16.npz or SonoNet16.pth not found in {d}")
    return d


def test_the_published_npz_is_the_converted_pth_tensor_for_tensor(release):
    npz = read_npz(release / "SonoNet16.npz")
    pth = torch.load(release / "SonoNet16.pth", map_location="cpu", weights_only=True)
    assert list(npz) == list(pth)
    for key, tensor in pth.items():
        assert npz[key].dtype == tensor.dtype == torch.float32, key
        assert torch.equal(npz[key], tensor), key


def test_the_npz_loads_into_the_zoo_model_and_a_wrong_width_is_refused(release):
    from_npz, meta = load_model(release / "SonoNet16.npz", model="sononet16")
    from_pth, _ = load_model(release / "SonoNet16.pth", model="sononet16")
    x = torch.randn(1, 1, 288, 224)
    with torch.no_grad():
        assert torch.equal(from_npz(x), from_pth(x))
    assert meta["provenance"]["source"].endswith("SonoNet16.npz")
    with pytest.raises(FileFormatError, match="do not fit model 'sononet32'"):
        load_model(release / "SonoNet16.npz", model="sononet32")


def _sononet16_arrays(rng) -> list[np.ndarray]:
    """75 arrays shaped as SonoNet-16's release: per conv W, then beta, gamma, mean, inv_std."""
    widths = [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128, 64, 14]
    arrays, cin = [], 1
    for i, w in enumerate(widths):
        k = 1 if i >= 13 else 3
        arrays.append(rng.standard_normal((w, cin, k, k)).astype(np.float32))
        arrays += [rng.standard_normal(w).astype(np.float32) for _ in range(3)]
        arrays.append(rng.uniform(0.5, 2.0, w).astype(np.float32))
        cin = w
    assert len(arrays) == 5 * len(sononet_layers())
    return arrays


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _npy_claiming(shape) -> bytes:
    """An .npy member whose header claims `shape` float32 values but holds 16 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 16


def test_an_npz_that_does_not_fit_is_refused_in_one_line_and_nothing_in_it_runs(tmp_path):
    rng = np.random.default_rng(0)
    good = _sononet16_arrays(rng)
    np.savez(tmp_path / "ok.npz", *good)
    state = read_npz(tmp_path / "ok.npz")                       # the synthetic release itself loads
    assert torch.equal(state["features.0.0.1.running_var"],
                       torch.from_numpy(np.float32(1) / (good[4] * good[4]) - np.float32(1e-4)))
    marker = tmp_path / "pwned"
    cases = {}
    (tmp_path / "text.npz").write_text("not a zip at all")
    cases["text.npz"] = "not a NumPy .npz archive"
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    cases["empty.npz"] = "holds 0 members"
    np.savez(tmp_path / "named.npz", weights=good[0])
    cases["named.npz"] = "not one of Lasagne's arr_N arrays"
    np.savez(tmp_path / "short.npz", *good[:10])
    cases["short.npz"] = "holds 10 arrays, SonoNet's release holds arr_0 ... arr_74"
    np.savez(tmp_path / "pickled.npz", *good[:74], np.array([_Exploit(marker)], dtype=object))
    cases["pickled.npz"] = "holds object values, not floating-point weights"
    np.savez(tmp_path / "ints.npz", *[a.astype(np.int32) for a in good])
    cases["ints.npz"] = "holds int32 values"
    with zipfile.ZipFile(tmp_path / "claims.npz", "w") as zf:
        zf.writestr("arr_0.npy", _npy_claiming((10**9,)))
    cases["claims.npz"] = "declares [1000000000] float32 values but holds fewer bytes"
    bad_bn = list(good)
    bad_bn[6] = bad_bn[6][:5]
    np.savez(tmp_path / "bn.npz", *bad_bn)
    cases["bn.npz"] = "arr_6 (the BatchNorm beta after features.0.1.0) has shape [5], expected [16]"
    nan = list(good)
    nan[30] = nan[30].copy()
    nan[30][0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", *nan)
    cases["nan.npz"] = "arr_30 holds NaN or infinite values"
    zero = list(good)
    zero[9] = np.zeros_like(zero[9])
    np.savez(tmp_path / "zero.npz", *zero)
    cases["zero.npz"] = "inv_std after features.0.1.0) has values <= 0"
    for name, needle in cases.items():
        with pytest.raises(FileFormatError) as err:
            load_model(tmp_path / name, model="sononet16")         # through the checkpoint reader's hook
        assert needle in str(err.value), (name, str(err.value))
        assert "\n" not in str(err.value)
    assert not marker.exists()


def test_export_of_a_bad_npz_is_one_line_and_writes_nothing(capsys, tmp_path):
    (tmp_path / "SonoNet16.npz").write_bytes(b"PK\x03\x04 truncated")
    proc = run_main(capsys, "export", tmp_path / "SonoNet16.npz", "--model", "sononet16", "--target", "cpu",
                    "--precision", "fp32", "--out", tmp_path / "bundle")
    assert_one_error(proc, "not a NumPy .npz archive")
    assert not (tmp_path / "bundle").exists()
