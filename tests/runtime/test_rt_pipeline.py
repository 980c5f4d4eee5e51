"""The pipeline: every kind's postprocessing, boxes mapped back to frame pixels, smoothing, timings."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rt_models
import runtime.pipeline as pipeline_module
from edge.core.errors import BadInputError
from runtime.bundle import load_bundle
from runtime.overlay import draw_overlay
from runtime.pipeline import Pipeline
from runtime.postprocess import Geometry, detections
from runtime.sources import Frame

ROI = [10, 90, 20, 180]  # y0 y1 x0 x1: an 80 x 160 crop of a 100 x 200 frame -> 32 x 32 (x5 wide, x2.5 high)


@pytest.fixture(scope="module")
def roi_pipeline(tmp_path_factory):
    bundle = load_bundle(rt_models.write_bundle(tmp_path_factory.mktemp("roi"), roi=ROI))
    with Pipeline(bundle, backend="onnxruntime") as pipe:
        yield pipe


def frame(value: int, index: int = 0) -> Frame:
    return Frame(np.full((100, 200), value, np.uint8), 0.0, index)


def test_single_and_multi_label(roi_pipeline):
    white, black = roi_pipeline.process(frame(255)), roi_pipeline.process(frame(0, 1))
    plane = white.outputs["plane"]
    assert plane.label == "AC"
    assert plane.confidence == pytest.approx(np.exp(2) / (np.exp([2, -2, 0, 1]).sum()))
    assert sum(plane.confidences.values()) == pytest.approx(1.0, abs=1e-4)
    assert black.outputs["plane"].label == "BPD"
    assert white.outputs["anatomy"].labels == ["head", "abdomen"]  # sigmoid [.88 .12 .5 .73] over 0.6
    assert black.outputs["anatomy"].labels == ["arms"]


def test_detection_boxes_mapped_to_frame_pixels(roi_pipeline):
    det = roi_pipeline.process(frame(128)).outputs["detection"]
    # model box [4, 8, 12, 16] -> x: 4*5+20, y: 8*2.5+10 ...; the background box and the 0.3 box are dropped
    assert det.boxes == [{"box": [40.0, 30.0, 80.0, 50.0], "score": 0.9, "label": "head"}]
    assert det.label == "head"
    assert det.confidence == pytest.approx(0.9)


def test_cam_heatmap_and_box_in_frame_pixels(roi_pipeline):
    img = np.zeros((100, 200), np.uint8)
    img[30:50, 100:140] = 255  # model pixels rows 8-16, cols 16-24: the 8x8-pooled map's cell (1, 2)
    out = roi_pipeline.process(Frame(img, 0.0, 0)).outputs["sononet"]
    assert out.label == "Abdominal"
    assert out.heatmap.shape == (4, 4)
    assert out.heatmap.max() == pytest.approx(1.0)
    assert np.unravel_index(out.heatmap.argmax(), out.heatmap.shape) == (1, 2)
    assert out.cam_box == [100.0, 30.0, 140.0, 50.0]
    assert out.heatmap_region == [20.0, 10.0, 180.0, 90.0]


def test_result_timings_latency_and_json(roi_pipeline):
    result = roi_pipeline.process(Frame(np.zeros((100, 200, 3), np.uint8), 0.0, 7))
    assert set(result.timings) == {"plane", "anatomy", "detection", "sononet"}
    assert all(set(t) == {"preprocess", "infer", "postprocess"} for t in result.timings.values())
    assert result.done >= result.started
    assert result.latency_ms >= result.wait_ms >= 0
    d = json.loads(json.dumps(result.to_dict()))
    assert d["index"] == 7
    assert d["models"]["detection"]["boxes"][0]["label"] == "head"
    assert "heatmap" not in d["models"]["sononet"]
    assert d["models"]["sononet"]["cam_box"] is None


def test_models_sharing_a_spec_preprocess_once(roi_pipeline, monkeypatch):
    calls = []
    real = pipeline_module.preprocess
    monkeypatch.setattr(pipeline_module, "preprocess", lambda img, spec: calls.append(1) or real(img, spec))
    roi_pipeline.process(frame(10))
    assert len(calls) == 1


def test_smoothing_holds_a_label_through_one_odd_frame(bundle_dir):
    bundle = load_bundle(bundle_dir)
    small = [Frame(np.full((32, 32), v, np.uint8), 0.0, i) for i, v in enumerate([255, 255, 0])]
    with Pipeline(bundle, backend="onnxruntime", smooth=0.8, models=["plane"]) as smooth, \
            Pipeline(bundle, backend="onnxruntime", models=["plane"]) as raw:
        smoothed = [smooth.process(f).outputs["plane"] for f in small]
        plain = [raw.process(f).outputs["plane"] for f in small]
        assert plain[-1].label == "BPD"
        assert smoothed[-1].label == "AC"
        assert smoothed[-1].confidence == pytest.approx(0.8 * plain[0].confidence + 0.2 * plain[-1].confidences["AC"],
                                                        abs=1e-4)
        for i in range(20):
            last = smooth.process(Frame(small[2].image, 0.0, 3 + i)).outputs["plane"]
        assert last.label == "BPD"
    with pytest.raises(BadInputError, match="smoothing"):
        Pipeline(bundle, backend="onnxruntime", smooth=1.0)


def test_geometry_clips_roi_like_preprocess():
    g = Geometry.of((50, 60), {"roi": [-5, 40, 10, 100], "resize": [20, 25]})
    assert (g.x0, g.y0, g.width, g.height) == (10, 0, 50, 40)
    assert g.sx == 2.0
    assert g.sy == 2.0
    assert g.boxes_to_frame(np.array([[0, 0, 100, 100]])).tolist() == [[10, 0, 60, 40]]


def test_detections_accept_a_batch_dimension():
    g = Geometry.of((32, 32), {"roi": None, "resize": [32, 32]})
    out = detections(rt_models.DET_BOXES[None], rt_models.DET_SCORES[None], rt_models.DET_LABELS[None],
                     ["head", "arms", "legs", "abdomen"], g, threshold=0.2)
    assert [d["label"] for d in out] == ["head", "legs"]  # score order, background dropped


def test_roi_outside_the_frame_is_a_user_error(roi_pipeline):
    with pytest.raises(BadInputError, match="ROI"):
        roi_pipeline.process(Frame(np.zeros((5, 5), np.uint8), 0.0, 0))


def test_overlay_draws_on_a_copy(roi_pipeline):
    img = np.zeros((100, 200), np.uint8)
    img[30:50, 100:140] = 255
    result = roi_pipeline.process(Frame(img, 0.0, 0))
    canvas = draw_overlay(img, result, fps=23.0)
    assert canvas.shape == (100, 200, 3)
    assert canvas.dtype == np.uint8
    assert img.max() == 255
    assert (canvas[:, :, 0] != img).any()
