"""INT8 QAT checkpoints: plain data on disk, the same model back, Q/DQ ONNX that ONNX Runtime runs."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def qat_ckpt(plane_model, plane_sets, tmp_path_factory):
    from compress.data import calibration_batches
    from edge.ml.quantization import quantization_meta
    from compress.quant import quantize_int8
    from compress.structured import prune_structured
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.training.fit import fit

    pruned, info = prune_structured(plane_model, 0.5)
    q = quantize_int8(copy.deepcopy(pruned), calibration_batches(pruned, plane_sets[0], n=16))
    fit(q, plane_sets[0], epochs=1, batch_size=8, lr=1e-4, progress=False)
    path = save_checkpoint(tmp_path_factory.mktemp("q") / "q.pt", q.eval(), compression=[info],
                           quantization=quantization_meta(q, calib_samples=16))
    return path, q, pruned


def test_qat_checkpoint_is_plain_data_and_restores_the_same_model(qat_ckpt):
    from edge.ml.quantization import is_quantized, load_quantized

    path, q, _ = qat_ckpt
    raw = torch.load(path, weights_only=True)          # no pickled code: loads under the safe unpickler
    field = raw["quantization"]
    assert field["method"] == "modelopt"
    assert field["format"] == "int8_qdq"
    assert field["config"] == "INT8_DEFAULT_CFG"
    assert any(k.endswith("weight_quantizer._amax") for k in raw["state_dict"])
    back, meta = load_quantized(path)
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        assert is_quantized(back)
        assert torch.equal(back(x), q(x))
    twin, _ = load_quantized(path, float_only=True)
    assert not is_quantized(twin)
    assert meta["compression"][0]["method"] == "structured"


def test_export_reads_the_same_contract(qat_ckpt):
    """export/ rebuilds QAT models on its own (export.checkpoints); it must read our checkpoints."""
    pytest.importorskip("export.checkpoints")
    from export.checkpoints import load_for_export

    path, q, _ = qat_ckpt
    model, _ = load_for_export(path)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), q(x))


def test_non_plain_state_is_caught():
    from edge.ml.quantization import check_plain

    check_plain({"a": [1, 2.0, "x", None, (True, torch.float32)]})
    with pytest.raises(TypeError, match="not plain data"):
        check_plain({"a": [object()]})


def test_int8_onnx_has_qdq_and_runs_in_onnxruntime(qat_ckpt, tmp_path):
    import onnx

    from compress.latency import ort_session, write_onnx
    from edge.ml.quantization import count_qdq, load_quantized

    model, _ = load_quantized(qat_ckpt[0])
    path = write_onnx(model, tmp_path / "q.onnx")
    assert count_qdq(onnx.load(str(path))) >= 10
    x = torch.rand(1, 1, 32, 32)
    got = ort_session(path).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(got - want).max() < 5e-3


def test_int8_weight_memory_is_a_quarter(qat_ckpt):
    from edge.ml.quantization import int8_weight_bytes
    from edge.ml.report import weight_bytes

    _, q, pruned = qat_ckpt
    fp32 = weight_bytes(pruned)["fp32"]
    assert abs(int8_weight_bytes(q) / (fp32 / 4) - 1) < 0.05


def test_quantize_int8_keeps_named_layers_float(qat_ckpt, plane_sets):
    from compress.data import calibration_batches
    from compress.quant import quantize_int8
    from edge.core.errors import BadInputError
    from edge.ml.quantization import quantization_meta, quantized_layers

    _, q, pruned = qat_ckpt
    kept = quantize_int8(copy.deepcopy(pruned), calibration_batches(pruned, plane_sets[0], n=8), keep_float=["fc"])
    assert quantized_layers(kept) == [n for n in quantized_layers(q) if n != "fc"]
    assert quantization_meta(kept, keep_float=["fc"])["keep_float"] == ["fc"]
    assert "keep_float" not in quantization_meta(q)
    with pytest.raises(BadInputError, match="'layer1' is not a quantised layer"):
        quantize_int8(copy.deepcopy(pruned), calibration_batches(pruned, plane_sets[0], n=8), keep_float=["layer1"])
