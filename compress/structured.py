"""Structured (channel) pruning with Torch-Pruning: the pruned net is smaller and faster on any engine.

Three separate, swappable ideas, as in Torch-Pruning itself:

- *what must go together*: `tp.DependencyGraph` (built by the pruner) couples every layer that shares
  a channel, so a residual add's inputs lose the same channels; in a detector (traced along its dense
  path, `detector_forward`) the FPN's inner blocks follow the body, its top-down adds tie the inner
  blocks of every level into one group, and the RPN head's conv, shared by every level, with the ROI
  box head's fc6 (whose inputs are RoIAlign's C x 7 x 7, flattened) tie every level's FPN output into
  one group: all levels keep one channel count, as RPN and ROI pooling need;
- *which channels*: an importance from `IMPORTANCES` (`l1`/`l2` weight magnitude, the paper's
  "smallest weights");
- *how much*: the paper asks for a fraction of *weights*; Torch-Pruning's `pruning_ratio` is a
  fraction of *channels* (weights shrink roughly with its square). `solve_channel_ratio` searches a
  bracket of channel ratios (false position + bisection), measuring the weight fraction each trial
  actually removes, and keeps the closest.

What keeps its size is `compress.layers.kept_outputs`: the classifier's class outputs; a detector's
RPN per-anchor outputs and its ROI predictor. A detector prunes everything else: body, FPN (inner and
output widths), the RPN head conv, the box head's fc6/fc7 hidden width (Torch-Pruning's own Faster
R-CNN example leaves FPN and ROI heads dense; they are over half of this detector's time)::

    >>> pruned, info = prune_structured(model, 0.5)               # doctest: +SKIP
    >>> round(info["achieved"], 2), info["channel_ratio"]         # doctest: +SKIP
    (0.5, 0.29)
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from compress.layers import check_ratio, count_weights, kept_outputs, removed_fraction, scope_name
from edge.core.errors import UnsupportedError
from edge.ml.inputs import example_input, is_detector

IMPORTANCES = {"l1": 1, "l2": 2}       # name -> p of tp.importance.MagnitudeImportance


def make_importance(name: str):
    import torch_pruning as tp

    if name not in IMPORTANCES:
        raise UnsupportedError(f"importance {name!r} is not one of {sorted(IMPORTANCES)}")
    return tp.importance.MagnitudeImportance(p=IMPORTANCES[name])


def detector_forward(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The dense path of a torchvision Faster R-CNN, for tracing its channel dependencies.

    A real forward goes through proposals, NMS and RoIAlign (data-dependent, and RoIAlign is an op
    Torch-Pruning does not know), so the graph is traced on what fixes the channels instead: backbone
    (body + FPN) -> the RPN head on every level (one shared conv) and, for the box head, each pooled
    level at RoIAlign's output size, summed, flattened into fc6 -> fc7 -> predictor. Every conv and
    linear of the detector sees the channels it sees in the real forward.
    """
    import torch.nn.functional as F

    feats = model.backbone(x)
    outs = []
    for f in feats.values():
        logits, deltas = model.rpn.head([f])
        outs += [logits[0], deltas[0]]
    pool = model.roi_heads.box_roi_pool
    size = pool.output_size if isinstance(pool.output_size, int) else tuple(pool.output_size)
    pooled = sum(F.adaptive_avg_pool2d(feats[name], size) for name in pool.featmap_names)
    return [*outs, *model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))]


def _graph_root(model: nn.Module) -> tuple[nn.Module, list[nn.Module], object]:
    """(module the dependency graph is traced on, layers whose outputs must not shrink, forward_fn)."""
    return model, kept_outputs(model), detector_forward if is_detector(model) else None


def prune_channels(model: nn.Module, channel_ratio: float, importance: str = "l1",
                   round_to: int | None = 8) -> nn.Module:
    """A copy of `model` with `channel_ratio` of each prunable layer's channels removed (one shot)."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    root, ignored, forward_fn = _graph_root(model)
    pruner = tp.pruner.MagnitudePruner(root, example_input(model), make_importance(importance),
                                       pruning_ratio=channel_ratio, ignored_layers=ignored,
                                       round_to=round_to, forward_fn=forward_fn)
    pruner.step()
    if is_detector(model):
        model.backbone.out_channels = fpn_channels(model)
    return model


def fpn_channels(model: nn.Module) -> int:
    """The one channel count every FPN level gives (what the RPN head and ROI pooling consume)."""
    fpn = model.backbone.fpn
    widths = {b[0].out_channels for b in fpn.layer_blocks} | {model.rpn.head.conv[0][0].in_channels}
    if len(widths) != 1:
        raise RuntimeError(f"FPN levels give different channel counts {sorted(widths)} after pruning; "
                           f"this is a bug in compress.structured")
    return widths.pop()


def solve_channel_ratio(model: nn.Module, weight_ratio: float, importance: str = "l1",
                        round_to: int | None = 8, steps: int = 10, tol: float = 0.01):
    """Find the channel ratio whose pruning removes `weight_ratio` of the prunable weights, by measuring.

    A bracketing search on the weight fraction each trial *actually* removes: the first guess is the
    square law (1 - sqrt(1 - w)), then false position inside the bracket, falling back to bisection
    when a step would repeat a trial (with `round_to` the fraction moves in steps). Returns
    (pruned copy, channel ratio, weight fraction achieved), the trial closest to the request.
    """
    before = count_weights(model)
    lo, hi = (0.0, 0.0), (0.98, 1.0)           # (channel ratio, weight fraction) brackets
    best, tried = None, set()
    guess = 1.0 - (1.0 - weight_ratio) ** 0.5
    for _ in range(steps):
        r = round(guess, 4)
        if r in tried or not lo[0] < r < hi[0]:
            r = round((lo[0] + hi[0]) / 2, 4)
        tried.add(r)
        trial = prune_channels(model, r, importance, round_to)
        got = removed_fraction(before, count_weights(trial))
        if best is None or abs(got - weight_ratio) < abs(best[2] - weight_ratio):
            best = (trial, r, got)
        if abs(got - weight_ratio) <= tol or hi[0] - lo[0] < 2e-3:
            break
        lo, hi = ((r, got), hi) if got < weight_ratio else (lo, (r, got))
        guess = lo[0] + (weight_ratio - lo[1]) * (hi[0] - lo[0]) / max(hi[1] - lo[1], 1e-9)
    return best


def prune_structured(model: nn.Module, ratio: float, importance: str = "l1",
                     round_to: int | None = 8) -> tuple[nn.Module, dict]:
    """Remove `ratio` of the prunable weights as whole channels; returns (pruned copy, history entry)."""
    ratio = check_ratio(ratio)
    before_out = _output_shapes(model)
    pruned, channel_ratio, achieved = solve_channel_ratio(model, ratio, importance, round_to)
    if _output_shapes(pruned) != before_out:
        raise RuntimeError("structured pruning changed the model's output shapes (its head was "
                           "not protected); this is a bug in compress.structured")
    info = {"step": "prune", "method": "structured", "ratio": ratio, "achieved": round(achieved, 4),
            "channel_ratio": round(channel_ratio, 4), "importance": importance, "round_to": round_to,
            "scope": scope_name(model), "library": "torch-pruning"}
    return pruned, info


def _output_shapes(model: nn.Module):
    if is_detector(model):     # per-image dicts out: the interface is the kept layers' output sizes
        fpn_channels(model)
        return tuple(getattr(m, "out_channels", getattr(m, "out_features", None)) for m in kept_outputs(model))
    was = model.training
    with torch.no_grad():     # (the dependency graph itself needs autograd on: no_grad only here)
        out = model.eval()(example_input(model))
    model.train(was)
    return tuple(out.shape)
