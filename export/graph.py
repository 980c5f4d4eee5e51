"""What goes into the ONNX graph: tensor-in/tensors-out wrappers, output names by role, FP16 islands.

Detectors (torchvision Faster R-CNN) take a list of CxHxW images and return dicts; the wrapper makes
their graph `input` (1xCxHxW float32) -> `boxes`, `scores`, `labels`. Normalisation: the manifest's
preprocess scales pixels to 0..1 (mean 0, std 1) and the graph's own GeneralizedRCNNTransform applies
the model's `image_mean/image_std`, so the device normalises exactly once and the ONNX equals PyTorch.
The transform's resize is an identity when `min_size/max_size` equal the input size (the zoo's default).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils._pytree import tree_map

from edge.ml.inputs import is_detector

# Compute-heavy parts of a Faster R-CNN that run in FP16; anchors, box coding, RoIAlign, NMS stay FP32.
DETECTOR_FP16_ISLANDS = ("backbone", "rpn.head", "roi_heads.box_head", "roi_heads.box_predictor")


def output_names(model: nn.Module) -> list[str]:
    """Output names = roles (docs/ARCHITECTURE.md): logits; boxes, scores, labels; cam."""
    cfg = getattr(model, "edge_config", None)
    if cfg is not None:
        return list(cfg.outputs)
    return ["boxes", "scores", "labels"] if is_detector(model) else ["logits"]


class DetectorGraph(nn.Module):
    """A batch-of-one tensor in, (boxes N x 4, scores N, labels N int64) out."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor):
        out = self.detector([x[0]])[0]
        return out["boxes"], out["scores"], out["labels"]


class _Half(nn.Module):
    """Runs `module` in FP16: floating inputs cast down, floating outputs cast back to FP32."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.half()

    def forward(self, *args):
        args = tree_map(lambda t: t.half() if torch.is_tensor(t) and t.is_floating_point() else t, args)
        out = self.module(*args)
        return tree_map(lambda t: t.float() if torch.is_tensor(t) and t.is_floating_point() else t, out)


def with_fp16_islands(detector: nn.Module, islands=DETECTOR_FP16_ISLANDS) -> nn.Module:
    """A copy of `detector` whose convolutional parts run in FP16 (graph I/O stays FP32).

    onnxconverter-common's FP16 pass breaks torchvision's If subgraphs, so detectors are cast in
    PyTorch before export instead; classifiers go through the ONNX pass (see export.onnx).
    """
    half = copy.deepcopy(detector).eval()
    for name in islands:
        parent_name, _, attr = name.rpartition(".")
        parent = half.get_submodule(parent_name) if parent_name else half
        setattr(parent, attr, _Half(getattr(parent, attr)))
    return half


def graph_module(model: nn.Module) -> nn.Module:
    """The module `torch.onnx.export` traces: detectors wrapped, classifiers as they are.

    Models with class-score maps (SonoNet, soft-proposal nets) return `(logits, cam)` only with
    `export_cam` set, so the graph gets both outputs.
    """
    if "cam" in output_names(model) and hasattr(model, "export_cam"):
        model.export_cam = True
    return DetectorGraph(model).eval() if is_detector(model) else model.eval()


def run_reference(model: nn.Module, x: torch.Tensor) -> list:
    """PyTorch outputs for one 1xCxHxW input, as numpy arrays in output-name order."""
    with torch.no_grad():
        out = graph_module(model)(x)
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().cpu().numpy() for o in out]
