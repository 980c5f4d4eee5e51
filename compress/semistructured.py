"""2:4 semi-structured sparsity: in every 4 consecutive input weights keep the 2 largest.

The pattern Ampere and Orin sparse tensor cores execute at up to twice the dense rate (TensorRT with
sparse weights enabled: `trtexec --sparsity=enable`). Groups run along the input (reduction)
dimension, channels innermost as TensorRT lays convolution weights out: a conv weight
(out, in, kh, kw) is viewed as (out, kh, kw, in) and split into groups of 4 input channels, a
linear weight (out, in) along `in`. Layers whose input dimension is not a multiple of 4 (a 1-channel
stem) stay dense and are listed. The speed-up needs those sparse tensor cores under TensorRT: a CPU
or ONNX Runtime run stores and multiplies the zeros and is no faster.

The ratio is fixed: half of every eligible layer. Masks stay on during fine-tuning
(`torch.nn.utils.prune.custom_from_mask`), then `unstructured.make_permanent` folds them in::

    >>> pruned, info = prune_2_4(model)
    >>> info["skipped"]                                    # doctest: +SKIP
    ['conv1']
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from compress.layers import count_nonzero, count_weights, prunable_layers, scope_name

N, M = 2, 4
SPEEDUP_NOTE = ("2:4 speed-up needs Ampere/Orin sparse tensor cores under TensorRT (sparse weights "
                "enabled); a CPU or ONNX Runtime run is dense and no faster")


def _grouped(w: torch.Tensor) -> torch.Tensor:
    """(groups, 4) view order of `w`'s elements, input dim innermost."""
    return (w.permute(0, 2, 3, 1) if w.dim() == 4 else w).reshape(-1, M)


def _ungrouped(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.dim() == 4:
        o, i, kh, kw = like.shape
        return g.reshape(o, kh, kw, i).permute(0, 3, 1, 2).contiguous()
    return g.reshape(like.shape)


def eligible(layer: nn.Module) -> bool:
    """Conv (ungrouped) and linear layers whose input dim is a multiple of 4."""
    w = layer.weight
    return w.dim() in (2, 4) and w.shape[1] % M == 0 and getattr(layer, "groups", 1) == 1


def mask_2_4(w: torch.Tensor) -> torch.Tensor:
    """1/0 mask keeping the N largest |w| of every group of M along the input dim."""
    g = _grouped(w.detach().abs())
    keep = torch.zeros_like(g)
    keep.scatter_(1, g.topk(N, dim=1).indices, 1.0)
    return _ungrouped(keep, w)


def follows_2_4(w: torch.Tensor) -> bool:
    """True if at most N of every M consecutive input weights are non-zero."""
    return bool(((_grouped(w.detach()) != 0).sum(1) <= N).all())


def prune_2_4(model: nn.Module) -> tuple[nn.Module, dict]:
    """A copy of `model` with a 2:4 mask on every eligible prunable layer; returns (copy, history entry)."""
    model = copy.deepcopy(model)
    skipped = []
    for name, m in prunable_layers(model).items():
        if eligible(m):
            prune.custom_from_mask(m, "weight", mask_2_4(m.weight))
        else:
            skipped.append(name)
    achieved = 1.0 - count_nonzero(model) / count_weights(model)
    info = {"step": "prune", "method": "2:4", "ratio": 0.5, "achieved": round(achieved, 4),
            "scope": scope_name(model), "skipped": skipped, "note": SPEEDUP_NOTE,
            "library": "torch.nn.utils.prune"}
    return model, info


def compressed_bytes(model: nn.Module) -> dict:
    """Weight memory in the 2:4 compressed form: half the values plus 2-bit indices per kept value."""
    from edge.ml.report import BYTES_PER, weight_bytes

    dense = weight_bytes(model)
    out = {}
    for prec, nbytes in dense.items():
        if prec == "fp16":
            continue
        saved = 0
        for m in prunable_layers(model).values():
            if eligible(m) and follows_2_4(m.weight):
                n = m.weight.numel()
                saved += n * BYTES_PER[prec] - (n // 2 * BYTES_PER[prec] + n // 2 * 2 // 8)
        out[prec] = nbytes - saved
    return {"2:4": out}
