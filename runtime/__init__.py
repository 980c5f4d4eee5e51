"""edgekit's on-device runtime: sources -> backends -> pipeline -> outputs, never torch.

    >>> import runtime
    >>> summary = runtime.run("bundle/", source="usb:0", headless=True)     # doctest: +SKIP

Public names are loaded on first use, so `from runtime.bundle import sha256_file` (as `export/`
does) stays as cheap as that one module.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "run": "runtime.api", "bench": "runtime.api",
    "load_bundle": "runtime.bundle", "Bundle": "runtime.bundle", "ModelEntry": "runtime.bundle",
    "sha256_file": "runtime.bundle", "SCHEMA_VERSION": "runtime.bundle",
    "open_source": "runtime.sources", "Frame": "runtime.sources", "Source": "runtime.sources",
    "SOURCES": "runtime.sources",
    "create_backend": "runtime.backends", "pick_backend": "runtime.backends", "BACKENDS": "runtime.backends",
    "Pipeline": "runtime.pipeline", "Result": "runtime.pipeline",
    "run_loop": "runtime.loop", "LatestFrame": "runtime.loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
