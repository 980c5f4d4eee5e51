"""What a built zoo model is and takes, read from its `edge_config`: one definition for every stage.

`edge.ml.report` counts FLOPs on `example_input`, `compress` traces and prunes on it, `export` traces the
ONNX graph on it; all of them ask `is_detector` (the task kind, not the class: a detector is whatever
serves a detection task). Torch loads only when an input is made::

    >>> from edge.ml.models import create_model                           # doctest: +SKIP
    >>> example_input(create_model("resnet8", input_size=(64, 64))).shape   # doctest: +SKIP
    torch.Size([1, 1, 64, 64])
"""
from __future__ import annotations

from edge.core.tasks import DETECTION


def is_detector(model) -> bool:
    """True for a model built for a detection task (its forward takes a list of images)."""
    cfg = getattr(model, "edge_config", None)
    return cfg is not None and cfg.task.kind == DETECTION


def example_input(model, batch: int = 1, input_size=None, zeros: bool = False):
    """A `batch x in_chans x H x W` float tensor at the model's own size (or `input_size`).

    Random by default (a report's or a pruner's forward pass); `zeros` for export, so tracing draws
    nothing from torch's random generator. A model without `edge_config` gets 1 x 224 x 224.
    """
    import torch

    cfg = getattr(model, "edge_config", None)
    size = tuple(input_size or (cfg.input_size if cfg else (224, 224)))
    chans = cfg.in_chans if cfg else 1
    return (torch.zeros if zeros else torch.rand)(batch, chans, *size)
