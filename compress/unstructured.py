"""Unstructured magnitude pruning (Han et al.): zero the globally smallest weights, keep them zero.

`torch.nn.utils.prune.global_unstructured` with L1 ranks every prunable weight of the scope together
and masks the smallest `ratio` of them; the masks stay on through fine-tuning (the weights are
`weight_orig * weight_mask`, so pruned entries stay zero), then `make_permanent` folds them in.
Later training (QAT) keeps the zeros with `keep_zeros`, which masks the gradients.

A dense engine stores and multiplies the zeros: dense size and latency do not change. The saving is
in a sparse format; `sparse_bytes` reports two, per prunable layer viewed as a matrix
(out x in*kh*kw):

- `csr`: values + int32 column index per non-zero + int32 row pointers (rows + 1);
- `bitmask`: values of the non-zeros + one bit per element (position bitmap).

Everything outside the prunable weights (biases, BatchNorm) is counted dense in both::

    >>> pruned, info = prune_unstructured(model, 0.5)       # masks on
    >>> fit(pruned, train_set, epochs=2)                    # doctest: +SKIP
    >>> make_permanent(pruned); info["achieved"]            # doctest: +SKIP
    0.5
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn
from torch.nn.utils import prune

from compress.layers import check_ratio, count_nonzero, count_weights, prunable_layers, scope_name
from edge.ml.report import BYTES_PER, weight_bytes


def prune_unstructured(model: nn.Module, ratio: float) -> tuple[nn.Module, dict]:
    """A copy of `model` with the smallest `ratio` of its prunable weights masked to zero (masks kept)."""
    ratio = check_ratio(ratio)
    model = copy.deepcopy(model)
    layers = prunable_layers(model)
    prune.global_unstructured([(m, "weight") for m in layers.values()],
                              pruning_method=prune.L1Unstructured, amount=ratio)
    achieved = 1.0 - count_nonzero(model) / count_weights(model)
    info = {"step": "prune", "method": "unstructured", "ratio": ratio, "achieved": round(achieved, 4),
            "importance": "l1", "scope": scope_name(model), "library": "torch.nn.utils.prune"}
    return model, info


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every `torch.nn.utils.prune` mask into its weight (plain `weight` parameters again)."""
    for m in model.modules():
        if prune.is_pruned(m) and hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    return model


@contextlib.contextmanager
def keep_zeros(model: nn.Module):
    """While active, gradients of the prunable weights are zero wherever the weight is zero.

    With zero gradients Adam/SGD never move those entries (their moments stay zero, and weight decay
    of a zero weight is zero), so the sparsity pattern survives fine-tuning and QAT exactly.
    """
    handles = []
    for m in prunable_layers(model).values():
        mask = (m.weight.detach() != 0).to(m.weight.dtype)
        if bool(mask.all()):
            continue
        handles.append(m.weight.register_hook(lambda g, mask=mask: g * mask))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def sparse_bytes(model: nn.Module) -> dict:
    """Weight memory if the prunable layers were stored sparse (`csr` and `bitmask`), at FP32 and INT8."""
    layers = prunable_layers(model)
    dense_rest = {p: b - sum(m.weight.numel() for m in layers.values()) * BYTES_PER[p]
                  for p, b in weight_bytes(model).items()}
    out = {}
    for fmt in ("csr", "bitmask"):
        out[fmt] = {}
        for prec in ("fp32", "int8"):
            total = dense_rest[prec]
            for m in layers.values():
                w = m.weight.detach()
                nnz, rows = int(torch.count_nonzero(w)), w.shape[0]
                total += nnz * BYTES_PER[prec]
                total += nnz * 4 + (rows + 1) * 4 if fmt == "csr" else (w.numel() + 7) // 8
            out[fmt][prec] = total
    return out
