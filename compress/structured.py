"""Structured (channel) pruning with Torch-Pruning: the pruned net is smaller and faster on any engine.

Three separate, swappable ideas, as in Torch-Pruning itself:

- *what must go together*: `tp.DependencyGraph` (built by the pruner) couples every layer that shares
  a channel, so a residual add's inputs lose the same channels and a detector's FPN inner blocks lose
  the input channels its backbone body stopped producing;
- *which channels*: an importance from `IMPORTANCES` (`l1`/`l2` weight magnitude, the paper's
  "smallest weights");
- *how much*: the paper asks for a fraction of *weights*; Torch-Pruning's `pruning_ratio` is a
  fraction of *channels* (weights shrink roughly with its square). `solve_channel_ratio` searches a
  bracket of channel ratios (false position + bisection), measuring the weight fraction each trial
  actually removes, and keeps the closest.

The final classifier keeps its outputs, and a detector prunes only its backbone body (RPN, ROI heads
and FPN outputs stay as they are, like Torch-Pruning's Faster R-CNN example)::

    >>> pruned, info = prune_structured(model, 0.5)               # doctest: +SKIP
    >>> round(info["achieved"], 2), info["channel_ratio"]         # doctest: +SKIP
    (0.5, 0.29)
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from compress.layers import PRUNABLE, check_ratio, count_weights, removed_fraction, scope_name
from edge.core.errors import UnsupportedError
from edge.ml.inputs import example_input, is_detector

IMPORTANCES = {"l1": 1, "l2": 2}       # name -> p of tp.importance.MagnitudeImportance


def make_importance(name: str):
    import torch_pruning as tp

    if name not in IMPORTANCES:
        raise UnsupportedError(f"importance {name!r} is not one of {sorted(IMPORTANCES)}")
    return tp.importance.MagnitudeImportance(p=IMPORTANCES[name])


def _graph_root(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """(module the dependency graph is traced on, layers whose outputs must not shrink)."""
    if is_detector(model):
        # body + FPN traced together so the FPN's inputs follow the body; FPN outputs stay fixed
        return model.backbone, [model.backbone.fpn]
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    n_out = model.edge_config.task.num_classes
    keep = [m for m in layers if getattr(m, "out_channels", getattr(m, "out_features", None)) == n_out]
    return model, list({id(m): m for m in [*keep, layers[-1]]}.values())


def prune_channels(model: nn.Module, channel_ratio: float, importance: str = "l1",
                   round_to: int | None = 8) -> nn.Module:
    """A copy of `model` with `channel_ratio` of each prunable layer's channels removed (one shot)."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    root, ignored = _graph_root(model)
    pruner = tp.pruner.MagnitudePruner(root, example_input(model), make_importance(importance),
                                       pruning_ratio=channel_ratio, ignored_layers=ignored,
                                       round_to=round_to)
    pruner.step()
    return model


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
        raise RuntimeError("structured pruning changed the model's output shapes (classifier head "
                               "not protected); this is a bug in compress.structured")
    info = {"step": "prune", "method": "structured", "ratio": ratio, "achieved": round(achieved, 4),
            "channel_ratio": round(channel_ratio, 4), "importance": importance, "round_to": round_to,
            "scope": scope_name(model), "library": "torch-pruning"}
    return pruned, info


def _output_shapes(model: nn.Module):
    if is_detector(model):     # a detector's outputs are per-image dicts; its head is never pruned
        return None
    was = model.training
    with torch.no_grad():     # (the dependency graph itself needs autograd on: no_grad only here)
        out = model.eval()(example_input(model))
    model.train(was)
    return tuple(out.shape)
