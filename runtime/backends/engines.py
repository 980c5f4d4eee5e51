"""Which recorded TensorRT engine (if any) may run on this device: a pure function of data.

A TensorRT engine is compiled for one GPU and one TensorRT version; loading it elsewhere fails or,
worse, misbehaves. The manifest records where each engine was built, so the runtime can refuse a
mismatch with a message before touching TensorRT. Keeping the decision free of TensorRT and CUDA
means it is tested on any machine::

    >>> facts = DeviceFacts(gpu="Orin", compute_capability="8.7", tensorrt="10.3.0")
    >>> select_engine(bundle.model("plane"), facts).file          # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.errors import MissingFileError, UnsupportedError
from runtime.bundle import EngineEntry, ModelEntry


@dataclass(frozen=True)
class DeviceFacts:
    """What an engine depends on: GPU name, compute capability ("8.7") and TensorRT version."""

    gpu: str
    compute_capability: str
    tensorrt: str

    def describe(self) -> str:
        return f"{self.gpu} (compute {self.compute_capability}), TensorRT {self.tensorrt}"


def _version3(version: str) -> tuple[str, ...]:
    """Major.minor.patch: engines are portable across TensorRT builds of one release, no further."""
    return tuple(str(version).split(".")[:3])


def engine_mismatch(engine: EngineEntry, device: DeviceFacts) -> str | None:
    """Why `engine` cannot run on `device` ("built for ... but this device has ..."), or None."""
    problems = []
    if engine.gpu.strip().lower() != device.gpu.strip().lower():
        problems.append(f"GPU {engine.gpu!r} != {device.gpu!r}")
    if str(engine.compute_capability) != str(device.compute_capability):
        problems.append(f"compute capability {engine.compute_capability} != {device.compute_capability}")
    if _version3(engine.tensorrt) != _version3(device.tensorrt):
        problems.append(f"TensorRT {engine.tensorrt} != {device.tensorrt}")
    return "; ".join(problems) or None


def select_engine(model: ModelEntry, device: DeviceFacts, bundle_hint: str = "BUNDLE") -> EngineEntry:
    """The model's engine built for `device`; UnsupportedError saying how to build one otherwise."""
    fix = f"run `edgekit build-engines {bundle_hint}` on this device"
    if not model.engines:
        raise UnsupportedError(f"model {model.name!r} has no TensorRT engine in the bundle; {fix}, or use "
                               f"--backend onnxruntime")
    reasons = []
    for engine in model.engines:
        why = engine_mismatch(engine, device)
        if why is None:
            if not engine.file.is_file():
                raise MissingFileError(f"engine {engine.file.name} of model {model.name!r} is recorded in "
                                       f"manifest.json but missing; {fix}")
            return engine
        reasons.append(f"{engine.file.name}: {why}")
    raise UnsupportedError(f"model {model.name!r} has no engine for this device ({device.describe()}): "
                           f"{' | '.join(reasons)}; {fix}")
