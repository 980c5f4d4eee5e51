"""Compression: pruning (structured, unstructured, 2:4), INT8 QAT with ModelOpt, and the sweep report.

One call does the FPUS23 recipe for a checkpoint (`edgekit compress` is this call)::

    >>> from compress import SweepSettings, sweep
    >>> report = sweep("plane.pt", "fpus23/", "compressed/", SweepSettings(
    ...     ratios=(0.3, 0.5, 0.7), method="structured", int8=True, finetune_epochs=3))  # doctest: +SKIP

The pieces are usable alone: `compress.structured.prune_structured`, `compress.unstructured.
prune_unstructured`, `compress.semistructured.prune_2_4`, `compress.quant.quantize_int8`,
`restore_quantized`, `load_quantized`, `compress.latency.measure_latency`, `compress.report`.
The sweep itself lives in `compress.recipe` (so `compress.sweep` stays the function).
Imports are lazy so `import compress` stays cheap (torch, torch-pruning and ModelOpt load on use).
"""
from __future__ import annotations

_LAZY = {"sweep": "compress.recipe", "SweepSettings": "compress.recipe", "load_quantized": "compress.quant", "restore_quantized": "compress.quant",
         "prune_structured": "compress.structured", "prune_unstructured": "compress.unstructured",
         "prune_2_4": "compress.semistructured"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")
