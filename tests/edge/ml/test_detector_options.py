"""Faster R-CNN RPN/ROI sizes are model kwargs: recorded in the checkpoint, the same after reloading."""
from __future__ import annotations

import pytest
import torch

CPU = dict(rpn_pre_nms_top_n_train=600, rpn_pre_nms_top_n_test=600, rpn_post_nms_top_n_train=300,
           rpn_post_nms_top_n_test=100, box_batch_size_per_image=32, box_detections_per_img=20,
           min_size=48, max_size=96)


def _sizes(net) -> dict:
    rpn, roi, tf = net.rpn, net.roi_heads, net.transform
    return {"pre": dict(rpn._pre_nms_top_n), "post": dict(rpn._post_nms_top_n),
            "rpn_batch": rpn.fg_bg_sampler.batch_size_per_image, "rois": roi.fg_bg_sampler.batch_size_per_image,
            "dets": roi.detections_per_img, "score": roi.score_thresh, "min": tf.min_size, "max": tf.max_size}


def test_detector_options_survive_a_checkpoint(tmp_path):
    from edge.ml.checkpoint import load_model, save_checkpoint
    from edge.ml.models import create_model

    torch.manual_seed(0)
    net = create_model("fasterrcnn_resnet10", task="detection", input_size=(64, 64), fpn_channels=32, **CPU)
    assert _sizes(net) == {"pre": {"training": 600, "testing": 600}, "post": {"training": 300, "testing": 100},
                           "rpn_batch": 256, "rois": 32, "dets": 20, "score": 0.05, "min": (48,), "max": 96}
    save_checkpoint(tmp_path / "det.pt", net)
    loaded, meta = load_model(tmp_path / "det.pt")
    assert {k: meta["model"]["kwargs"][k] for k in CPU} == CPU
    assert _sizes(loaded) == _sizes(net)
    x = [torch.rand(1, 64, 64)]
    with torch.no_grad():
        a, b = net.eval()(x)[0], loaded(x)[0]
    assert len(a["boxes"]) <= 20
    assert torch.equal(a["boxes"], b["boxes"])


def test_detector_defaults_follow_the_input_size():
    from edge.ml.models import create_model

    net = create_model("fasterrcnn_resnet10", task="detection", input_size=(64, 80), fpn_channels=32)
    s = _sizes(net)
    assert (s["min"], s["max"], s["dets"], s["rois"]) == ((64,), 80, 50, 512)


def test_unknown_detector_option_is_one_line():
    from edge.core.errors import BadInputError
    from edge.ml.models import create_model

    with pytest.raises(BadInputError, match="did you mean 'box_batch_size_per_image'"):
        create_model("fasterrcnn_resnet10", task="detection", input_size=(64, 64), box_batch_size_per_img=32)
