"""INT8 accuracy debugging: the layer responsible is named, and keeping it float is recorded and exported."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

BROKEN = "layer2.0.conv1"


def _responsive(model, x):
    """The untrained net with a head that spreads its answers over the classes (an untrained head
    answers one class for every frame, so no quantisation error could change an answer)."""
    with torch.no_grad():
        f = torch.flatten(model.avgpool(model.forward_features(x)), 1)
        mu = f.mean(0)
        _, s, v = torch.linalg.svd(f - mu, full_matrices=False)
        model.fc.weight.copy_(v[:4] * 40 / s[:4, None])
        model.fc.bias.copy_(-model.fc.weight @ mu)
    return model


@pytest.fixture(scope="module")
def broken_qat(plane_model, plane_sets, tmp_path_factory):
    """A calibrated QAT model with one layer's weight range crushed to 2%: its INT8 is the damage."""
    from compress.data import calibration_batches
    from compress.quant import quantize_int8
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.quantization import quantization_meta

    batches = calibration_batches(plane_model, plane_sets[0], n=16)
    net = _responsive(copy.deepcopy(plane_model), batches[0])
    q = quantize_int8(net, batches)
    with torch.no_grad():
        q.get_submodule(BROKEN).weight_quantizer._amax.mul_(0.02)
    path = save_checkpoint(tmp_path_factory.mktemp("dbg") / "broken.pt", q, quantization=quantization_meta(q))
    return q, path


def test_the_broken_layer_ranks_first_and_keeping_it_float_recovers(broken_qat, plane_sets):
    from compress.data import calibration_batches
    from compress.int8_debug import debug_int8, to_markdown
    from edge.ml.quantization import is_quantized, quantized_layers

    q, _ = broken_qat
    before = quantized_layers(q)
    rep = debug_int8(q, calibration_batches(q, plane_sets[0], n=16), target_agreement=0.9)
    assert quantized_layers(q) == before                            # every quantizer switched back on
    assert is_quantized(q)
    top = rep["layers"][0]
    assert top["layer"] == BROKEN
    assert top["alone_sqnr_db"] == min(r["alone_sqnr_db"] for r in rep["layers"])
    assert top["gain_db"] > 3
    assert rep["agreement"] < 0.9                                   # INT8 changes many answers
    assert rep["suggest_keep_float"] == [BROKEN]
    (step,) = rep["suggestion_steps"]
    assert step["keep_float"] == [BROKEN]
    assert step["agreement"] >= 0.9
    assert {r["rank"] for r in rep["layers"]} == set(range(1, len(before) + 1))
    json.dumps(rep)                                                 # plain data for --report
    assert BROKEN in to_markdown(rep)


def test_keep_float_checkpoint_is_recorded_and_exports_float(broken_qat, tmp_path):
    from compress.int8_debug import write_kept_float
    from edge.ml.checkpoint import load_checkpoint
    from edge.ml.quantization import load_quantized, quantized_layers
    from export.onnx import build_graph
    from edge.ml.quantization import count_qdq

    q, path = broken_qat
    out = write_kept_float(path, [BROKEN], tmp_path / "kept.pt")
    raw = load_checkpoint(out["checkpoint"])
    assert raw["quantization"]["keep_float"] == [BROKEN]
    assert raw["compression"][-1]["step"] == "keep-float"
    back, _ = load_quantized(out["checkpoint"])
    assert BROKEN not in quantized_layers(back)
    assert len(quantized_layers(back)) == len(quantized_layers(q)) - 1
    assert count_qdq(build_graph(back, "int8")) == count_qdq(build_graph(q, "int8")) - 2   # its input and weight


def test_unknown_layer_is_refused_in_one_line(broken_qat):
    from compress.int8_debug import write_kept_float
    from edge.core.errors import BadInputError

    with pytest.raises(BadInputError, match="not a quantised layer.*int8-debug"):
        write_kept_float(broken_qat[1], ["layer9.conv"], "unused.pt")


def test_compress_debug_int8_looks_into_losing_variants(broken_qat):
    from edge.app.cli.compress import _debug_losses

    report = {"variants": [{"name": "baseline", "precision": "fp32", "value": 0.9, "checkpoint": "b.pt"},
                           {"name": "int8", "precision": "int8", "value": 0.85, "checkpoint": str(broken_qat[1])}]}
    (done,) = _debug_losses(report, None, threshold=1.0)
    assert (done["variant"], done["loss_points"]) == ("int8", -5.0)
    assert json.loads(Path(done["report"]).read_text())["layers"][0]["layer"] == BROKEN
    assert _debug_losses(report, None, threshold=10.0) == []
