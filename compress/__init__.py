"""Compression: pruning (structured, unstructured, 2:4), INT8 QAT with ModelOpt, and the sweep report.

One call does the FPUS23 recipe for a checkpoint (`edgekit compress` is this call)::

    >>> from compress.sweep import SweepSettings, sweep
    >>> report = sweep("plane.pt", "fpus23/", "compressed/", SweepSettings(
    ...     ratios=(0.3, 0.5, 0.7), method="structured", int8=True, finetune_epochs=3))  # doctest: +SKIP

The pieces are usable alone: `compress.structured.prune_structured`, `compress.unstructured.
prune_unstructured`, `compress.semistructured.prune_2_4`, `compress.quant.quantize_int8`,
`compress.latency.measure_latency`, `compress.report`. The checkpoint's record of a QAT model
(`load_quantized`, `restore_quantized`) belongs to `edge.ml.quantization`, which export reads too.
Imports are lazy so `import compress` stays cheap (torch, torch-pruning and ModelOpt load on use).
"""
from __future__ import annotations

_LAZY = {"prune_structured": "compress.structured", "prune_unstructured": "compress.unstructured",
         "prune_2_4": "compress.semistructured"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")
