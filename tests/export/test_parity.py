"""Parity measures: box mAP against the reference's boxes, and the gates that refuse an export."""
from __future__ import annotations

import numpy as np
import pytest

from export.parity import ParityError, _detector, box_map, check_parity, frames, phantom_set, truth_map


def _dets(seed=0, n_frames=6, k=4):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_frames):
        xy, wh = rng.uniform(0, 40, (k, 2)), rng.uniform(8, 20, (k, 2))
        out.append((np.hstack([xy, xy + wh]).astype(np.float32), rng.uniform(0.6, 1, k).astype(np.float32),
                    rng.integers(1, 5, k)))
    return out


def test_box_map_identical_jittered_shifted():
    ref = _dets()
    assert box_map(ref, ref)["map"] == 100.0
    rng = np.random.default_rng(1)
    jit = [(b + rng.normal(0, 0.05, b.shape).astype(np.float32), s, l) for b, s, l in ref]
    assert box_map(ref, jit)["map"] >= 99
    assert box_map(ref, [(b + 4, s, l) for b, s, l in ref])["map"] < 50
    assert box_map(ref, [(b, s, l % 4 + 1) for b, s, l in ref])["map"] < 1  # wrong labels


def test_box_map_without_confident_reference_boxes():
    ref = [(b, s * 0.1, l) for b, s, l in _dets()]
    quiet = box_map(ref, ref)
    assert quiet["map"] is None
    assert quiet["displayed_agreement"] == 1.0
    assert box_map(ref, _dets())["displayed_agreement"] == 0.0  # candidate shows boxes the reference does not


def test_reduced_precision_detectors_are_gated_against_the_truth():
    truth = [(b, l) for b, _, l in _dets()]
    ref = [(b, s, l) for (b, l), (_, s, _) in zip(truth, _dets())]          # a perfect detector
    assert truth_map(truth, ref) == 100.0
    assert truth_map([(np.zeros((0, 4)), np.zeros(0))], ref[:1]) is None
    # reference and candidate off the truth by 0.6 px either way: they disagree at IoU .95 by 1.2 px,
    # yet each finds every part as well as the other
    right, left = ([(b + np.array([d, 0, d, 0], np.float32), s, l) for b, s, l in ref] for d in (0.6, -0.6))
    gate = _detector("int8", right, left, 0.5, truth)
    assert gate["agreement_map"] < 90
    assert gate["metric"] == "map_delta"
    assert gate["map_delta"] <= 1.0
    assert gate["passed"]
    assert gate["truth_map"] == gate["truth_map_reference"] < 100
    nudged = left
    worse = _detector("int8", ref, [(b + 4, s, l) for b, s, l in ref], 0.5, truth)
    assert worse["metric"] == "map_delta"
    assert not worse["passed"]
    assert worse["truth_map"] < 50
    assert _detector("fp32", ref, nudged, 0.5, truth)["metric"] == "map"          # fp32: agreement gate
    weak = [(b + 15, s, l) for b, s, l in ref]                                    # reference misses all
    assert _detector("int8", weak, weak, 0.5, truth)["metric"] == "map"           # no working reference


def test_phantom_set_truth_in_model_input_pixels():
    spec = {"roi": None, "grey": True, "resize": [64, 96], "interpolation": "linear",
            "normalize": {"mode": "meanstd", "mean": [0.5], "std": [0.25], "scale": 255.0}}
    labels = ["head", "arms", "legs", "abdomen"]
    inputs, truth = phantom_set(spec, 8, labels=labels)
    assert len(inputs) == len(truth) == 8
    assert inputs[0].shape == (1, 64, 96)
    boxes = np.concatenate([b for b, _ in truth])
    ids = np.concatenate([l for _, l in truth])
    assert len(boxes) > 0
    assert boxes[:, [0, 2]].max() <= 96
    assert boxes[:, [1, 3]].max() <= 64
    assert set(ids.tolist()) <= {1, 2, 3, 4}
    assert (boxes[:, 2] > boxes[:, 0]).all()
    assert phantom_set(spec, 8)[1] is None
    assert np.array_equal(frames(spec, 8)[3], inputs[3])


def test_fp32_gate_refuses_a_graph_that_differs(ckpts, tmp_path):
    import torch

    from export.onnx import export_onnx
    from export.checkpoints import load_for_export

    model, meta = load_for_export(ckpts["plane"])
    export_onnx(model, tmp_path / "p.onnx", "fp32")
    with torch.no_grad():
        model.fc.bias.add_(1e-3)  # the graph no longer matches the model
    inputs = frames(meta["config"]["preprocess"], 4)
    with pytest.raises(ParityError, match=r"fp32 parity failed: max_abs_diff = .* required <= 0.0001"):
        check_parity(model, tmp_path / "p.onnx", "fp32", inputs, "single_label")
    rep = check_parity(model, tmp_path / "p.onnx", "fp32", inputs, "single_label", raise_on_fail=False)
    assert not rep["passed"]
    assert rep["frame_source"] == "edge.core.phantom"
    assert rep["frames"] == 4


def test_fp32_bound_scales_with_the_logits_and_still_catches_a_changed_graph():
    from export.parity import _classifier, fp32_bound

    rng = np.random.default_rng(0)
    small = rng.uniform(-0.9, 0.9, (8, 4)).astype(np.float32)
    assert fp32_bound(small) == 1e-4                                   # logits within +-1: 1e-4 absolute
    assert not _classifier("single_label", "fp32", small, small + 2e-4)["passed"]
    large = (small * 300).astype(np.float32)                           # untrained SonoNet on z-score x 255
    rounding = large * np.float32(1 + 1e-6)                            # ~8 float32 ulps: 2.7e-4 absolute
    rep = _classifier("single_label", "fp32", large, rounding)
    assert rep["max_abs_diff"] > 1e-4
    assert rep["passed"]
    assert rep["bound"] == pytest.approx(fp32_bound(large))
    assert not _classifier("single_label", "fp32", large, large + 0.01 * np.abs(large).max())["passed"]


def test_fp32_gate_on_sononet16_with_large_logits(tmp_path):
    """An untrained SonoNet-16 on z-score x 255 frames has logits in the hundreds: rounding passes, a
    BatchNorm shift of 1% of that size (a genuine graph difference) is still refused."""
    import torch

    from edge.ml.models import create_model
    from export.onnx import export_onnx

    model = create_model("sononet16", task="standard_plane", input_size=(96, 64), roi=None).eval()
    export_onnx(model, tmp_path / "s.onnx", "fp32")
    inputs = frames(model.edge_config.preprocess, 6)
    rep = check_parity(model, tmp_path / "s.onnx", "fp32", inputs, "single_label")
    assert rep["passed"]
    assert rep["max_abs_ref"] > 10
    assert rep["bound"] == pytest.approx(1e-4 * rep["max_abs_ref"])
    with torch.no_grad():
        model.adaption[4].bias.add_(0.01 * rep["max_abs_ref"])
    with pytest.raises(ParityError, match=r"max_abs_diff = .* required <= .*1e-4 x max\(1, max\|logit\|"):
        check_parity(model, tmp_path / "s.onnx", "fp32", inputs, "single_label")
