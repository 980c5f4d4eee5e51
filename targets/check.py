"""Check an export request against a target before any work is done.

A refusal is an `UnsupportedError` (one line: target, precision, why, the fix); a request that works
but is risky, or goes to a device where edgekit's runtime cannot do everything (a profile's
`runtime_note`: the Jetson Nano), comes back with warnings. Memory: a Jetson's DRAM is shared by the
CPU and the GPU, so the OS, capture, display and TensorRT's builder workspace all live in it (a 4 GB
Nano has about 2.5 GB free after boot). edgekit flags a model set (weights + peak activations at the requested
precision) larger than `MEMORY_FRACTION` (a quarter) of the target's smallest variant::

    >>> check_request("jetson-orin-nano", "int8", 40e6).warnings
    []
    >>> check_request("jetson-nano", "int8", 40e6)
    Traceback (most recent call last):
    ...
    edge.core.errors.UnsupportedError: target jetson-nano cannot run int8: ...
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edge.core.errors import BadInputError, UnsupportedError
from targets.profiles import PRECISIONS, Target, get_target

MEMORY_FRACTION = 0.25
INT8_MIN_CC = (6, 1)  # DP4A, the first INT8 dot-product instruction TensorRT's INT8 kernels need


@dataclass
class RequestCheck:
    """An accepted request; `warnings` are one-line notes the CLI prints (nothing is refused)."""

    target: Target
    precision: str
    model_bytes_total: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"target": self.target.name, "precision": self.precision,
                "model_bytes_total": self.model_bytes_total, "warnings": list(self.warnings)}


def _why_not(target: Target, precision: str) -> str:
    """The reason a target lacks a precision, from its facts."""
    cc = target.compute_capability
    if precision == "int8" and cc and tuple(int(v) for v in cc.split(".")) < INT8_MIN_CC:
        return (f"its GPU (compute capability {cc}) has no INT8 instructions (DP4A needs 6.1+) and "
                f"TensorRT {target.tensorrt[0]} on JetPack {target.jetpack} has no INT8 path for it")
    return f"it supports only {', '.join(target.precisions)}"


def best_precision(target: Target) -> str:
    """The fastest precision a target runs: int8 > fp16 > fp32."""
    return next(p for p in ("int8", "fp16", "fp32") if target.supports(p))


def check_request(target: str | Target, precision: str, model_bytes_total: int | float = 0) -> RequestCheck:
    """Refuse what the target cannot run; warn when the model set is large for its memory."""
    t = target if isinstance(target, Target) else get_target(target)
    if precision not in PRECISIONS:
        raise BadInputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if not t.supports(precision):
        fallback = next(p for p in ("fp16", "fp32") if t.supports(p))
        raise UnsupportedError(f"target {t.name} cannot run {precision}: {_why_not(t, precision)}; "
                               f"use --precision {fallback}")
    check = RequestCheck(t, precision, int(model_bytes_total))
    budget = t.memory_budget_gb
    if budget and model_bytes_total > MEMORY_FRACTION * budget * 1e9:
        check.warnings.append(
            f"the model set needs {model_bytes_total / 1e6:.0f} MB at {precision}, more than "
            f"{MEMORY_FRACTION:.0%} of {t.name}'s {budget:g} GB shared memory; expect memory pressure "
            f"next to capture and display (prune, use int8, or bundle fewer models)")
    lacking = [m for m in t.members if not get_target(m).supports(precision)]
    if lacking:
        check.warnings.append(f"{', '.join(lacking)} cannot run {precision}; the bundle carries an fp16 "
                              f"fallback those devices build their engines from")
    for name in (t.name, *t.members):  # say plainly what edgekit cannot do where the bundle may go
        note = get_target(name).runtime_note
        if note:
            check.warnings.append(f"{name}: {note}")
    if t.kind == "cpu" and precision == "fp16":
        check.warnings.append("fp16 on the CPU runs through casts and is no faster than fp32; "
                              "use --precision fp32 or int8 for target cpu")
    return check
