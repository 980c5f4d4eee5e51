"""Faster R-CNN detectors on ResNet backbones, built from torchvision's parts.

The backbone is edgekit's ResNet (1-channel stem) wrapped in torchvision's FPN; RPN and ROI heads are
torchvision's. The model takes images in 0..1 (preprocess scales by 255) and normalises inside the
graph with `image_mean/image_std`, as torchvision detectors do, so an exported ONNX carries it.
`min_size/max_size` follow the input size, so a 224x224 frame is not upscaled to 800 pixels.

The RPN and ROI-head sizes are keyword arguments of the builder (torchvision's own names, see
`RCNN_OPTIONS`), so `create_model` records them in the checkpoint's `model.kwargs` and a reloaded
detector samples, keeps and returns exactly what the trained one did::

    >>> det = create_model("fasterrcnn_resnet10", task="detection", input_size=(224, 224))
    >>> cpu = create_model("fasterrcnn_resnet10", task="detection", input_size=(128, 128),
    ...                    rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_test=100,
    ...                    box_batch_size_per_image=32)
    >>> cpu.roi_heads.fg_bg_sampler.batch_size_per_image, cpu.eval().rpn.post_nms_top_n()
    (32, 100)
"""
from __future__ import annotations

from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN

from edge.core.errors import BadInputError, closest
from edge.ml.models.config import make_preprocess
from edge.ml.models.registry import register_model
from edge.ml.models.resnet import ARCHS, ResNet
from edge.core.tasks import DETECTION

DETECTOR_OUTPUTS = ("boxes", "scores", "labels")
# FPUS23 anatomy spans a few to a few hundred pixels: anchors a level smaller than torchvision's
# defaults (32..512) suit frames of 224..400 pixels.
DEFAULT_ANCHORS = ((16,), (32,), (64,), (128,), (256,))
# torchvision FasterRCNN keyword arguments a zoo detector takes (plain numbers, so a checkpoint records
# them), with torchvision's defaults; `box_detections_per_img` is the zoo's 50 (the phantom and FPUS23
# frames hold a handful of structures).
RCNN_OPTIONS = {
    "rpn_pre_nms_top_n_train": 2000, "rpn_pre_nms_top_n_test": 1000,
    "rpn_post_nms_top_n_train": 2000, "rpn_post_nms_top_n_test": 1000,
    "rpn_nms_thresh": 0.7, "rpn_fg_iou_thresh": 0.7, "rpn_bg_iou_thresh": 0.3,
    "rpn_batch_size_per_image": 256, "rpn_positive_fraction": 0.5, "rpn_score_thresh": 0.0,
    "box_score_thresh": 0.05, "box_nms_thresh": 0.5, "box_detections_per_img": 50,
    "box_fg_iou_thresh": 0.5, "box_bg_iou_thresh": 0.5, "box_batch_size_per_image": 512,
    "box_positive_fraction": 0.25,
}


def resnet_fpn(arch: str, in_chans: int, out_channels: int = 128) -> BackboneWithFPN:
    """A ResNet body with an FPN over all its stages (torchvision's BackboneWithFPN)."""
    blocks, widths = ARCHS[arch]
    body = ResNet(blocks, widths, num_classes=1, in_chans=in_chans)
    return_layers = {f"layer{i + 1}": str(i) for i in range(len(blocks))}
    return BackboneWithFPN(body, return_layers, list(widths), out_channels)


def _detector(arch, task, input_size, in_chans, mean=0.5, std=0.25, fpn_channels=128,
              anchors=DEFAULT_ANCHORS, min_size=None, max_size=None, **rcnn):
    """min_size/max_size: torchvision's resize bounds (default: the input size, so no resize);
    **rcnn: any of `RCNN_OPTIONS`."""
    unknown = sorted(set(rcnn) - set(RCNN_OPTIONS))
    if unknown:
        raise BadInputError(f"unknown detector option {unknown[0]!r}{closest(unknown[0], RCNN_OPTIONS)}; "
                            f"a Faster R-CNN takes {', '.join(RCNN_OPTIONS)}")
    backbone = resnet_fpn(arch, in_chans, fpn_channels)
    levels = len(ARCHS[arch][0]) + 1  # FPN adds a max-pooled level
    sizes = tuple(tuple(a) for a in anchors)[:levels]
    anchor_gen = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    model = FasterRCNN(
        backbone, num_classes=task.num_classes + 1, rpn_anchor_generator=anchor_gen,
        min_size=min(input_size) if min_size is None else min_size,
        max_size=max(input_size) if max_size is None else max_size,
        image_mean=[mean] * in_chans, image_std=[std] * in_chans, **{**RCNN_OPTIONS, **rcnn})
    # The graph normalises; preprocessing only scales pixels to 0..1.
    preprocess = make_preprocess(input_size, mean=0.0, std=1.0, grey=in_chans == 1)
    return model, preprocess, DETECTOR_OUTPUTS


@register_model(family="fasterrcnn", kinds=(DETECTION,))
def fasterrcnn_resnet10(task, input_size, in_chans, **kw):
    """Faster R-CNN with a ResNet10 + FPN backbone: the FPUS23 paper's NAS-found detector."""
    return _detector("resnet10", task, input_size, in_chans, **kw)


@register_model(family="fasterrcnn", kinds=(DETECTION,))
def fasterrcnn_resnet34(task, input_size, in_chans, **kw):
    """Faster R-CNN with a ResNet34 + FPN backbone: the FPUS23 baseline detector."""
    return _detector("resnet34", task, input_size, in_chans, **kw)
