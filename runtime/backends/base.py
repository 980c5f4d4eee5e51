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

from edge.errors import BadInputError, EdgekitError
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
