"""`edgekit bench-archs` with TensorRT, on the device side's fakes of every TensorRT API (8.2 binding
indices, 8.5 both, 10 and 11 tensor names; tests/device/fakes.py): the engine is built by
`runtime.engines.build_engine` and run through `runtime.trt_compat`, buffers freed, the table written."""
from __future__ import annotations

import json

import pytest

from tests.device.fakes import FakeCuda, FakeTensorRT


@pytest.mark.parametrize("api", ["8.2", "8.5", "10", "11"])
def test_bench_archs_times_with_tensorrt_on_every_api(api, tmp_path, monkeypatch):
    import runtime.archbench as ab
    from runtime import engines, trt_compat
    from runtime.backends import tensorrt as trt_backend

    cuda = FakeCuda(integrated=api != "10")            # a Jetson maps host memory; a desktop GPU copies
    trt = FakeTensorRT(api, cuda)
    folder = tmp_path / "archs"
    folder.mkdir()
    (folder / "000.onnx").write_bytes(b"onnx")
    arch = {"stem": "conv3", "blocks": [1], "widths": [8], "input_size": [32, 32], "key": "conv3-b1-w8-32x32"}
    (folder / "archs.json").write_text(json.dumps({"format": ab.INDEX_FORMAT, "version": ab.VERSION, "precision": "fp16",
                                                   "archs": [{"file": "000.onnx", "arch": arch, "reference": None}]}))
    built = []
    caps = trt_compat.BuilderCaps(strongly_typed=api in ("10", "11"), precision_flags=api != "11",
                                  memory_pool=api != "8.2", explicit_batch_flag=api != "11")
    monkeypatch.setattr(trt_compat, "builder_caps", lambda module: caps)
    monkeypatch.setattr(engines, "build_engine", lambda module, path, settings, mb: built.append(settings) or b"fake plan")
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: (trt, cuda))
    monkeypatch.setattr(engines, "device_facts", lambda module=None: engines.DeviceFacts("Orin", "8.7", trt.__version__))

    table = ab.bench_archs(folder, tmp_path / "table.json", backend="tensorrt", rounds=2, runs_per_round=3, warmup=1)
    assert table["backend"] == "tensorrt"
    assert table["device"]["tensorrt"] == trt.__version__
    entry = table["entries"][0]
    assert entry["clock"] == "wall-clock"
    assert entry["runs"] == 6
    assert entry["median_ms"] >= 0
    assert cuda.calls.count("execute") == 1 + 6                          # warm-up, then the timed runs
    assert built[0].builder_flags == (() if caps.strongly_typed else ("FP16",))   # 8.x: the index's precision
    assert cuda.freed                                                    # every buffer released
    assert cuda.calls[-2:] == ["pop", "detach"]
    assert ab.read_table(tmp_path / "table.json")["entries"][0]["arch"]["key"] == arch["key"]
