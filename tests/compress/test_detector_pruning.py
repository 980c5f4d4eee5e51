"""Structured pruning of a Faster R-CNN: body, FPN (one width for every level), RPN head and ROI box
head shrink; the RPN's per-anchor outputs and the box predictor's outputs stay; it rebuilds and exports."""
from __future__ import annotations

import copy

import pytest
import torch


@pytest.fixture(scope="module")
def pruned(detector):
    """(the detector with distinct FPN and fc6 biases, its 50% structured copy, the history entry)."""
    from compress.structured import prune_structured

    torch.manual_seed(1)
    det = copy.deepcopy(detector)
    for block in det.backbone.fpn.layer_blocks:        # torchvision zeroes FPN biases: make them say
        torch.nn.init.normal_(block[0].bias)           # which channels were kept
    return (det, *prune_structured(det, 0.5))


def _width(m):
    return getattr(m, "out_channels", getattr(m, "out_features", None))


def test_fpn_and_heads_shrink_and_the_interface_stays(pruned):
    from compress.layers import kept_outputs
    from compress.structured import fpn_channels

    det, net, info = pruned
    assert info["scope"] == "model"
    assert 0.45 <= info["achieved"] <= 0.55
    assert [_width(m) for m in kept_outputs(net)] == [_width(m) for m in kept_outputs(det)] == [3, 12, 5, 20]
    fpn, rpn, box = net.backbone.fpn, net.rpn.head, net.roi_heads.box_head
    width = fpn_channels(net)                      # one width: every level, the RPN conv and fc6 agree
    assert width < 32
    assert net.backbone.out_channels == width
    assert {b[0].out_channels for b in fpn.layer_blocks} == {width}
    assert box.fc6.in_features == width * 7 * 7                       # RoIAlign's C x 7 x 7, flattened
    assert rpn.conv[0][0].out_channels == rpn.cls_logits.in_channels == rpn.bbox_pred.in_channels < 32
    assert box.fc6.out_features == box.fc7.in_features < 1024
    assert net.roi_heads.box_predictor.cls_score.in_features == box.fc7.out_features < 1024
    assert fpn.inner_blocks[3][0].in_channels == net.backbone.body.layer4[0].conv2.out_channels < 512
    assert det.backbone.fpn.layer_blocks[0][0].out_channels == 32          # the input is untouched


def test_fc6_keeps_the_weights_of_the_kept_channels_and_units(pruned):
    det, net, _ = pruned
    old_bias, new_bias = det.backbone.fpn.layer_blocks[0][0].bias, net.backbone.fpn.layer_blocks[0][0].bias
    channels = [int((old_bias == b).nonzero()) for b in new_bias]           # FPN channels that survived
    old_fc6, new_fc6 = det.roi_heads.box_head.fc6, net.roi_heads.box_head.fc6
    units = [int((old_fc6.bias == b).nonzero()) for b in new_fc6.bias]      # fc6 units that survived
    cols = torch.cat([torch.arange(c * 49, (c + 1) * 49) for c in channels])
    assert torch.equal(new_fc6.weight, old_fc6.weight[units][:, cols])


def test_pruned_detector_rebuilds_and_exports(pruned, tmp_path):
    import onnx
    import onnxruntime as ort

    from edge.ml.checkpoint import load_model, save_checkpoint
    from export.graph import output_names
    from export.onnx import _trace        # export_onnx without onnxslim (slow; tests/export cover it)

    _, net, info = pruned
    path = save_checkpoint(tmp_path / "det.pt", net, compression=[info])
    back, _ = load_model(path)
    assert back.backbone.out_channels == net.backbone.out_channels
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a, b = net.eval()([x[0]])[0], back([x[0]])[0]
    assert torch.equal(a["boxes"], b["boxes"])
    assert torch.equal(a["scores"], b["scores"])
    graph = _trace(back, output_names(back))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    boxes, scores, _ = session.run(None, {"input": x.numpy()})
    onnx.checker.check_model(graph)
    assert boxes.shape == tuple(a["boxes"].shape)
    assert torch.allclose(torch.from_numpy(scores), a["scores"], atol=1e-4)
