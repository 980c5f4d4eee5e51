"""Parity measures: box mAP against the reference's boxes, and the gates that refuse an export."""
from __future__ import annotations

import numpy as np
import pytest

from export.parity import ParityError, box_map, check_parity, frames


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
    assert quiet["map"] is None and quiet["displayed_agreement"] == 1.0
    assert box_map(ref, _dets())["displayed_agreement"] == 0.0  # candidate shows boxes the reference does not


def test_fp32_gate_refuses_a_graph_that_differs(ckpts, tmp_path):
    import torch

    from export.onnx import export_onnx
    from export.source import load_for_export

    model, meta = load_for_export(ckpts["plane"])
    export_onnx(model, tmp_path / "p.onnx", "fp32")
    with torch.no_grad():
        model.fc.bias.add_(1e-3)  # the graph no longer matches the model
    inputs = frames(meta["config"]["preprocess"], 4)
    with pytest.raises(ParityError, match=r"fp32 parity failed: max_abs_diff = .* required <= 0.0001"):
        check_parity(model, tmp_path / "p.onnx", "fp32", inputs, "single_label")
    rep = check_parity(model, tmp_path / "p.onnx", "fp32", inputs, "single_label", raise_on_fail=False)
    assert not rep["passed"] and rep["frame_source"] == "edge.phantom" and rep["frames"] == 4
