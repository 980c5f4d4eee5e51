"""Inference backends, by name, and `auto`: the best one this machine can run for a bundle.

    >>> from runtime.backends import create_backend, pick_backend
    >>> name, why = pick_backend("auto", bundle)                 # doctest: +SKIP
    >>> runner = create_backend(name, bundle.model("plane"))     # doctest: +SKIP

The registry is explicit and swept by the tests; optional backends import their packages lazily, so
a missing TensorRT never breaks the ONNX Runtime path.
"""
from __future__ import annotations

from edge.core.errors import UnsupportedError, lookup
from runtime.backends.base import Backend, check_tensor
from runtime.backends.ort import OnnxRuntimeBackend, OnnxRuntimeCudaBackend, OnnxRuntimeTensorRTBackend
from runtime.backends.tensorrt import TensorRTBackend
from runtime.engines import DeviceFacts, engine_mismatch, select_engine  # re-exported; owned there

BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (
    OnnxRuntimeBackend, OnnxRuntimeCudaBackend, OnnxRuntimeTensorRTBackend, TensorRTBackend)}
AUTO = "auto"

__all__ = ["Backend", "BACKENDS", "AUTO", "DeviceFacts", "check_tensor", "create_backend", "engine_mismatch",
           "pick_backend", "select_engine", "backend_names"]


def backend_names() -> list[str]:
    return [*BACKENDS, AUTO]


def get_backend_class(name: str) -> type[Backend]:
    return lookup(BACKENDS, name, "backend", f"expected one of {', '.join(backend_names())}")


def _tensorrt_fits(bundle) -> str | None:
    """Why the native TensorRT backend cannot run every model of `bundle` here, or None."""
    reason = TensorRTBackend.unavailable()
    if reason:
        return reason
    from runtime.backends.tensorrt import device_facts

    facts = device_facts()
    try:
        for model in bundle.models:
            select_engine(model, facts)
    except UnsupportedError as exc:
        return str(exc)
    return None


def pick_backend(name: str, bundle) -> tuple[str, str]:
    """(backend name, why): `auto` picks tensorrt (engines for this GPU), then ORT TensorRT/CUDA, then CPU."""
    if name != AUTO:
        get_backend_class(name)
        return name, "requested"
    if all(m.engines for m in bundle.models):
        why_not = _tensorrt_fits(bundle)
        if why_not is None:
            return "tensorrt", "auto: the bundle's engines match this GPU and TensorRT"
    else:
        why_not = "the bundle has no TensorRT engines"
    for candidate in ("onnxruntime-trt", "onnxruntime-cuda"):
        if BACKENDS[candidate].unavailable() is None:
            return candidate, f"auto: {why_not}; onnxruntime has the {candidate.split('-')[1]} provider"
    return "onnxruntime", f"auto: {why_not}; no GPU provider in onnxruntime, running on the CPU"


def create_backend(name: str, model, **kwargs) -> Backend:
    """An (inactive) backend of registry name `name` for one `ModelEntry`."""
    cls = get_backend_class(name)
    reason = cls.unavailable()
    if reason:
        raise UnsupportedError(f"backend {name!r} cannot run here: {reason}")
    return cls(model, **kwargs)
