"""ONNX export per precision: checker-clean, ONNX Runtime runs it, parity figures in range."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.core.errors import FileFormatError, UnsupportedError
from export.onnx import OPSET, export_onnx
from export.parity import check_parity, frames
from export.checkpoints import load_for_export


def _ort(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_classifier_each_precision(ckpts, tmp_path, precision):
    model, meta = load_for_export(ckpts["plane_qat" if precision == "int8" else "plane"])
    info = export_onnx(model, tmp_path / f"plane.{precision}.onnx", precision)
    graph = onnx.load(tmp_path / info["file"])
    onnx.checker.check_model(graph)
    assert graph.opset_import[0].version >= OPSET
    assert info["inputs"] == [{"name": "input", "shape": [1, 1, 32, 32], "dtype": "float32"}]
    assert info["outputs"] == [{"name": "logits", "shape": [1, 4], "dtype": "float32", "role": "logits"}]
    out = _ort(tmp_path / info["file"]).run(None, {"input": np.zeros((1, 1, 32, 32), np.float32)})
    assert out[0].shape == (1, 4)
    assert out[0].dtype == np.float32
    assert np.isfinite(out[0]).all()
    report = check_parity(model, tmp_path / info["file"], precision, frames(meta["config"]["preprocess"], 32),
                          "single_label")
    assert report["passed"]
    assert report["top1_agreement"] >= 0.99
    if precision == "fp32":
        assert report["max_abs_diff"] <= 1e-4
    halves = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.graph.initializer)
    assert (halves > 0) == (precision == "fp16")
    assert (info["qdq_pairs"] > 0) == (precision == "int8")


def test_fp16_is_half_the_size(ckpts, tmp_path):
    model, _ = load_for_export(ckpts["plane"])
    a = export_onnx(model, tmp_path / "a.onnx", "fp32")["bytes"]
    b = export_onnx(model, tmp_path / "b.onnx", "fp16")["bytes"]
    assert 0.45 < b / a < 0.55


def test_int8_needs_a_qat_model(ckpts, tmp_path):
    model, _ = load_for_export(ckpts["plane"])
    with pytest.raises(UnsupportedError, match="compress --qat"):
        export_onnx(model, tmp_path / "x.onnx", "int8")
    qat, _ = load_for_export(ckpts["plane_qat"])
    with pytest.raises(UnsupportedError, match="fake quantisation"):
        export_onnx(qat, tmp_path / "y.onnx", "fp16")
    assert not list(tmp_path.iterdir())


def test_qat_restore_reproduces_the_quantized_model(ckpts):
    import torch

    from edge.ml.quantization import is_quantized

    a, meta = load_for_export(ckpts["plane_qat"])
    b, _ = load_for_export(ckpts["plane_qat"])
    twin, _ = load_for_export(ckpts["plane_qat"], float_only=True)
    assert is_quantized(a)
    assert not is_quantized(twin)
    assert meta["quantization"]["method"] == "modelopt"
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.equal(a(x), twin(x))  # fake quantisation changes the numbers a little


def test_bad_quantization_meta_is_refused():
    from edge.ml.models import create_model
    from edge.ml.quantization import restore_quantized

    m = create_model("resnet8", task="plane", input_size=(32, 32))
    with pytest.raises(FileFormatError, match="not 'modelopt'"):
        restore_quantized(m, {"method": "pytorch-fx"})
    with pytest.raises(FileFormatError, match="modelopt_state"):
        restore_quantized(m, {"method": "modelopt"})


@pytest.mark.slow
def test_detector_exports_and_runs(detector_ckpts, tmp_path):
    model, meta = load_for_export(detector_ckpts["det"])
    # the graph normalises (GeneralizedRCNNTransform), so preprocessing must only scale to 0..1
    assert meta["config"]["preprocess"]["normalize"] == {"mode": "meanstd", "mean": [0.0], "std": [1.0],
                                                        "scale": 255.0}
    inputs = frames(meta["config"]["preprocess"], 4)
    for precision in ("fp32", "fp16"):
        info = export_onnx(model, tmp_path / f"det.{precision}.onnx", precision)
        assert [o["name"] for o in info["outputs"]] == ["boxes", "scores", "labels"]
        assert info["outputs"][0]["shape"] == ["detections", 4]
        assert info["outputs"][2]["dtype"] == "int64"
        boxes, scores, labels = _ort(tmp_path / info["file"]).run(None, {"input": inputs[0][None]})
        assert boxes.shape[1] == 4
        assert boxes.dtype == np.float32
        assert scores.shape == labels.shape
        assert labels.dtype == np.int64
        assert (labels >= 1).all()
        assert (boxes >= 0).all()
        assert (boxes <= 64).all()
    # every reference detection as ground truth: fp32 must find the same boxes
    rep = check_parity(model, tmp_path / "det.fp32.onnx", "fp32", inputs, "detection", gt_score=0.0)
    assert rep["map"] >= 99
    assert rep["passed"]
