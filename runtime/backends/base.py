"""The runner protocol every inference backend implements (after Polygraphy's BaseRunner).

The base class owns the lifecycle (`activate()` / `infer()` / `deactivate()`, context manager) and the
input checks, so every backend refuses a wrong feed with the same message naming the tensor, what it
received and what the model expects. A backend fills in `activate_impl`, `infer_impl` and
`deactivate_impl`::

    >>> with OnnxRuntimeBackend(bundle.model("plane")) as runner:      # doctest: +SKIP
    ...     outputs = runner.infer({"input": x})                       # {"logits": array}
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from edge.core.errors import BadInputError, EdgekitError, FileFormatError
from edge.core.tasks import DETECTION
from runtime.bundle import ModelEntry, TensorSpec


def _is_dynamic(dim) -> bool:
    return dim is None or isinstance(dim, str) or (isinstance(dim, int) and dim < 0)


def check_tensor(spec: TensorSpec, value) -> None:
    """Raise BadInputError unless `value` is an ndarray of the spec's dtype and (static) shape."""
    if not isinstance(value, np.ndarray):
        raise BadInputError(f"Input tensor: {spec.name} | Received a {type(value).__name__}; "
                            f"expected a numpy array of dtype {spec.dtype}, shape {list(spec.shape)}")
    if value.dtype != np.dtype(spec.dtype):
        raise BadInputError(f"Input tensor: {spec.name} | Received dtype {value.dtype}; expected {spec.dtype}")
    shape_ok = len(value.shape) == len(spec.shape) and all(
        _is_dynamic(want) or int(want) == got for want, got in zip(spec.shape, value.shape))
    if not shape_ok:
        raise BadInputError(f"Input tensor: {spec.name} | Received shape {list(value.shape)}; "
                            f"expected {list(spec.shape)}")


def _static(dim) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0


def _class_dim(spec: TensorSpec, shape) -> int | None:
    """Where a classifier's class count lives: the last dim of `logits`, dim -3 of a `cam` map."""
    axis = -1 if spec.role == "logits" else -3
    if len(shape) < -axis:
        return None
    return shape[axis] if _static(shape[axis]) else None


def check_graph(model: ModelEntry, source: str, inputs, outputs) -> None:
    """Refuse a model file that disagrees with manifest.json, before the first frame crashes in it.

    `inputs` / `outputs` are the loaded graph's (or engine's) tensors as `(name, shape, dtype)`, with
    shape None when unknown and dynamic dims as None, strings or negative ints. Names (and their
    count), dtypes, ranks and every dim static on both sides must agree; a classifier's class count
    must equal its number of labels.
    """
    fix = "re-export the bundle"
    for io, declared, actual in (("inputs", model.inputs, inputs), ("outputs", model.outputs, outputs)):
        want, got = sorted(t.name for t in declared), sorted(str(a[0]) for a in actual)
        if want != got:
            raise FileFormatError(f"model {model.name!r}: {source} has {io} {got} but manifest.json says {want}; "
                                  f"{fix}")
        graph = {str(name): (shape, dtype) for name, shape, dtype in actual}
        for t in declared:
            shape, dtype = graph[t.name]
            what = f"model {model.name!r}: {io[:-1]} {t.name!r}"
            if dtype is not None and str(dtype) != t.dtype:
                raise FileFormatError(f"{what} is {t.dtype} in manifest.json but {dtype} in {source}; {fix}")
            if shape is None:
                continue
            shape = list(shape)
            # an input the graph fixes must be fixed, to the same size, in the manifest: the feed follows it
            if len(shape) != len(t.shape) or any(
                    (_static(a) or io == "inputs") and _static(b) and a != b for a, b in zip(t.shape, shape)):
                raise FileFormatError(f"{what} has shape {list(t.shape)} in manifest.json but "
                                      f"{[d if _static(d) else '?' for d in shape]} in {source}; {fix}")
    if model.kind == DETECTION:
        return  # detector labels are 1-based ids, not a class axis
    graph_out = {str(name): shape for name, shape, _ in outputs}
    for t in model.outputs:
        if t.role not in ("logits", "cam"):
            continue
        classes = _class_dim(t, t.shape) or (_class_dim(t, list(graph_out[t.name]))
                                             if graph_out[t.name] is not None else None)
        if classes is not None and classes != len(model.labels):
            raise FileFormatError(f"model {model.name!r}: output {t.name!r} of {source} has {classes} classes but "
                                  f"manifest.json lists {len(model.labels)} labels; {fix}")


class Backend:
    """One model on one inference engine. Subclasses set `name` and fill in the `*_impl` hooks."""

    name: ClassVar[str] = ""

    def __init__(self, model: ModelEntry):
        self.model = model
        self.is_active = False

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run on this machine, or None if it can (no heavy work here)."""
        return None

    def activate(self) -> "Backend":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.is_active = False
            self.deactivate_impl()

    def __enter__(self) -> "Backend":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def check_feed(self, feed: dict) -> None:
        """Exactly the model's inputs, each with its dtype and shape (dynamic dims accept any size)."""
        expected = {t.name: t for t in self.model.inputs}
        missing, extra = sorted(set(expected) - set(feed)), sorted(set(feed) - set(expected))
        if missing or extra:
            raise BadInputError(f"model {self.model.name!r}: received inputs {sorted(feed)}; expected "
                                f"{sorted(expected)}" + (f" (missing {missing})" if missing else "")
                                + (f" (unexpected {extra})" if extra else ""))
        for name, spec in expected.items():
            check_tensor(spec, feed[name])

    def infer(self, feed: dict[str, np.ndarray], check: bool = True) -> dict[str, np.ndarray]:
        """Run one inference; outputs by name. `check=False` skips the feed checks in a hot loop."""
        if not self.is_active:
            raise EdgekitError(f"{self.name} backend for {self.model.name!r} is not active; "
                               f"call activate() or use it as a context manager")
        if check:
            self.check_feed(feed)
        return self.infer_impl(feed)

    def device_memory(self) -> dict | None:
        """{"used_bytes", "total_bytes"} of the accelerator when the backend can tell, else None."""
        return None

    def describe(self) -> str:
        return f"{self.name} ({self.model.precision})"

    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass
