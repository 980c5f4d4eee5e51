"""Device profiles: what each deployment target can do, as data (docs/BRIEF.md, "Deployment targets").

Export checks a request against a profile before doing any work, and `build-engines` takes its
TensorRT workspace from it. Ranges (AGX Xavier ships with 16 or 32 GB) are kept as (low, high); the
budget a check uses is always the low end, so a bundle that fits the smallest variant fits them all::

    >>> from targets import get_target
    >>> t = get_target("jetson-orin-nano")
    >>> t.compute_capability, t.memory_budget_gb, t.supports("int8")
    ('8.7', 4.0, True)

`jetson` names the whole family: its facts are the union (precisions) or the weakest member (memory,
workspace), so one bundle serves any Jetson and each device builds the engine it supports.

`python` and `tensorrt` say what the device's JetPack ships. edgekit's device runtime needs Python >=
`RUNTIME_PYTHON` (pyproject.toml's requires-python) and speaks TensorRT from `RUNTIME_TENSORRT`
(`runtime.trt_compat`); a profile whose JetPack ships less carries a `runtime_note` saying plainly what
edgekit can and cannot do there, which `edgekit targets` and `edgekit export` print (the Jetson Nano:
JetPack 4.6 ships Python 3.6).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edge.core.errors import lookup

PRECISIONS = ("fp32", "fp16", "int8")
RUNTIME_PYTHON = "3.8"     # edgekit's device runtime (runtime, targets, edge.core, the device verbs)
RUNTIME_TENSORRT = "8.2"   # the oldest TensorRT Python API runtime.trt_compat speaks (binding indices)


@dataclass(frozen=True)
class Target:
    """One deployment target. `None` means "varies / not applicable" (a desktop GPU's memory)."""

    name: str
    description: str
    kind: str                                   # "jetson", "family", "gpu", "cpu"
    compute_capability: str | None              # "8.7"; None for a family or the CPU
    memory_gb: tuple[float, float] | None       # (smallest, largest) variant
    precisions: tuple[str, ...]
    dla_cores: tuple[int, int] = (0, 0)         # (smallest, largest) variant
    jetpack: str | None = None
    tensorrt: tuple[str, str] | None = None     # (oldest, newest) TensorRT the target ships
    python: str | None = None
    workspace_mb: int = 1024                    # TensorRT builder workspace on this target
    members: tuple[str, ...] = field(default=())  # for a family: the targets it stands for
    int8_form: str = "tensorrt"                 # the INT8 ONNX this target gets (export.onnx): "tensorrt"
    #   (ModelOpt's Q/DQ as TensorRT builds it) or "onnxruntime" (rewritten so ORT's integer kernels fuse it)

    @property
    def memory_budget_gb(self) -> float | None:
        """The memory a bundle must fit: the smallest variant's."""
        return None if self.memory_gb is None else float(self.memory_gb[0])

    @property
    def has_tensorrt(self) -> bool:
        return self.tensorrt is not None

    def supports(self, precision: str) -> bool:
        return precision in self.precisions

    @property
    def runtime_note(self) -> str | None:
        """What edgekit can and cannot do on this device when its JetPack ships less than the runtime needs."""
        return RUNTIME_NOTES.get(self.name)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "kind": self.kind,
                "compute_capability": self.compute_capability,
                "memory_gb": list(self.memory_gb) if self.memory_gb else None,
                "memory_budget_gb": self.memory_budget_gb, "precisions": list(self.precisions),
                "dla_cores": list(self.dla_cores), "jetpack": self.jetpack,
                "tensorrt": list(self.tensorrt) if self.tensorrt else None, "python": self.python,
                "workspace_mb": self.workspace_mb, "members": list(self.members), "int8_form": self.int8_form,
                "runtime_note": self.runtime_note}


ALL = PRECISIONS
# One line each, printed by `edgekit targets` and as an `edgekit export` warning; README "Device install"
# has the commands. A Jetson whose JetPack ships Python < RUNTIME_PYTHON must have one (tests/targets).
RUNTIME_NOTES = {
    "jetson-nano": "JetPack 4.6 ships Python 3.6 (TensorRT 8.2's Python bindings too) and edgekit's runtime "
                   "needs Python >= 3.8: install python3.8 from Ubuntu 18.04 (apt) and `edgekit run --backend "
                   "onnxruntime` runs fp16/fp32 bundles on the CPU; the tensorrt backend and build-engines also "
                   "need TensorRT 8.2 bindings built for Python 3.8, which JetPack does not ship; or build engines "
                   "with trtexec and run them from your own Python 3.6 code (README: Device install, JetPack 4.6)",
}
_JETSONS = (
    Target("jetson-nano", "Jetson Nano (Maxwell, 128 CUDA cores)", "jetson", "5.3", (4, 4), ("fp32", "fp16"),
           (0, 0), "4.6", ("8.2", "8.2"), "3.6", 512),
    Target("jetson-xavier-nx", "Jetson Xavier NX (Volta, 384 CUDA cores)", "jetson", "7.2", (8, 8), ALL,
           (2, 2), "5.x", ("8.5", "8.5"), "3.8", 1024),
    Target("jetson-agx-xavier", "Jetson AGX Xavier (Volta, 512 CUDA cores)", "jetson", "7.2", (16, 32), ALL,
           (2, 2), "5.x", ("8.5", "8.5"), "3.8", 2048),
    Target("jetson-orin-nano", "Jetson Orin Nano (Ampere, 512-1024 CUDA cores)", "jetson", "8.7", (4, 8), ALL,
           (0, 0), "6.x", ("10.3", "10.3"), "3.10", 1024),
    Target("jetson-orin-nx", "Jetson Orin NX (Ampere, 1024 CUDA cores)", "jetson", "8.7", (8, 16), ALL,
           (1, 2), "6.x", ("10.3", "10.3"), "3.10", 2048),
    Target("jetson-agx-orin", "Jetson AGX Orin (Ampere, 1792-2048 CUDA cores); TensorRT 11 from JetPack 7.2",
           "jetson", "8.7", (32, 64), ALL, (2, 2), "6.x-7.2", ("10.3", "11.x"), "3.10", 4096),
)


def _family(name: str, description: str, members: tuple[Target, ...]) -> Target:
    """A family stands for all its members: every precision any member has, the weakest limits."""
    precisions = tuple(p for p in PRECISIONS if any(m.supports(p) for m in members))
    return Target(name, description, "family", None,
                  (min(m.memory_gb[0] for m in members), max(m.memory_gb[1] for m in members)), precisions,
                  (min(m.dla_cores[0] for m in members), max(m.dla_cores[1] for m in members)),
                  f"{members[0].jetpack.split('-')[0]}-{members[-1].jetpack.split('-')[-1]}",
                  (members[0].tensorrt[0], members[-1].tensorrt[1]), None,
                  min(m.workspace_mb for m in members), tuple(m.name for m in members))


_TARGETS: dict[str, Target] = {t.name: t for t in (
    _family("jetson", "any Jetson: the bundle carries every precision; each device builds what it supports",
            _JETSONS),
    *_JETSONS,
    Target("x86-cuda", "desktop or server NVIDIA GPU (Turing or newer) with TensorRT 10/11", "gpu", None, None,
           ALL, (0, 0), None, ("10.0", "11.x"), f">={RUNTIME_PYTHON}", 4096),
    Target("cpu", "any CPU with ONNX Runtime (no TensorRT; FP16 runs but is no faster than FP32; INT8 in the form "
           "ORT's integer kernels fuse)", "cpu", None, None, ALL, (0, 0), None, None, f">={RUNTIME_PYTHON}", 0,
           int8_form="onnxruntime"),
)}


def get_target(name: str) -> Target:
    """The profile called `name`; a mistyped name gets a suggestion."""
    return lookup(_TARGETS, name, "target", f"expected one of {', '.join(_TARGETS)} (see `edgekit targets`)")


def list_targets() -> list[Target]:
    """Every profile, the Jetson family first, in registry order."""
    return list(_TARGETS.values())
