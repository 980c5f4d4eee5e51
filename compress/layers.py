"""What may be pruned in a model, and how much of it was: shared by every pruning method.

The FPUS23 paper prunes "the smallest 30/50/70% of weights". edgekit reads that as a fraction of the
*prunable weights*: the weight tensors of the convolutions and linear layers inside the pruning
scope. The scope is the whole model, a classifier or a torchvision Faster R-CNN alike: a detector's
backbone body, FPN, RPN head and ROI box head are all in it (they are where its time goes: at 128x128
the ROI box head alone is over half the MACs). What must keep its size is the model's interface,
`kept_outputs`: a classifier's class outputs; a detector's RPN per-anchor outputs (objectness and box
deltas) and its ROI predictor's class scores and box regression. Their *inputs* still shrink with the
layers feeding them. Every method is measured the same way, so a structured 50% and an unstructured
50% remove the same number of weights::

    >>> scope = pruning_scope(model)                        # doctest: +SKIP
    >>> before = count_weights(scope)
    >>> ...prune...
    >>> removed_fraction(before, count_weights(scope))      # 0.5 for half the weights gone
"""
from __future__ import annotations

import torch
from torch import nn

from edge.core.errors import BadInputError
from edge.ml.inputs import is_detector

PRUNABLE = (nn.Conv2d, nn.Linear)


def pruning_scope(model: nn.Module) -> nn.Module:
    """The module whose weights are pruned: the whole model (a detector's heads included)."""
    return model


def scope_name(model: nn.Module) -> str:
    return "model"


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{qualified name: conv/linear layer} inside the pruning scope, named as in the model's state_dict."""
    return {n: m for n, m in pruning_scope(model).named_modules() if isinstance(m, PRUNABLE)}


def kept_outputs(model: nn.Module) -> list[nn.Module]:
    """Layers whose outputs are the model's interface and keep their size (their inputs may shrink).

    A classifier: every layer with the task's class count as outputs, and the last layer. A torchvision
    Faster R-CNN: the RPN head's per-anchor objectness and box-delta convs, and the ROI box predictor
    (class scores, per-class box regression).
    """
    if is_detector(model):
        return [model.rpn.head.cls_logits, model.rpn.head.bbox_pred,
                *(m for m in model.roi_heads.box_predictor.modules() if isinstance(m, PRUNABLE))]
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    n_out = model.edge_config.task.num_classes
    keep = [m for m in layers if getattr(m, "out_channels", getattr(m, "out_features", None)) == n_out]
    return list({id(m): m for m in [*keep, layers[-1]]}.values())


def _dense_weight(layer: nn.Module) -> torch.Tensor:
    # under torch.nn.utils.prune the live weight is `weight_orig * weight_mask`; count the structure
    return getattr(layer, "weight_orig", layer.weight)


def count_weights(model: nn.Module) -> int:
    """Elements of the prunable weight tensors (their size, zeros included)."""
    return sum(_dense_weight(m).numel() for m in prunable_layers(model).values())


def count_nonzero(model: nn.Module) -> int:
    """Non-zero elements of the prunable weights (after masks, if any)."""
    return sum(int(torch.count_nonzero(m.weight.detach())) for m in prunable_layers(model).values())


def removed_fraction(before: int, after: int) -> float:
    return 1.0 - after / before if before else 0.0


def check_ratio(ratio: float) -> float:
    """A pruning ratio must leave something: 0 < ratio < 1."""
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        r = float("nan")
    if not 0.0 < r < 1.0:
        raise BadInputError(f"pruning ratio {ratio!r} is not a fraction of weights to remove; expected "
                            f"a number between 0 and 1 (exclusive), e.g. 0.5")
    return r

