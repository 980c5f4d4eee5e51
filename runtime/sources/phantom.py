"""The phantom simulator's sweep (`edge.core.phantom`) as a source: a probe with no hardware.

It plays the FPUS23-like 23 Hz sweep, paced to real time by default (what a scanner sends) or as fast
as it renders (`?realtime=0`, for benchmarks and tests). The simulator is imported when the source
opens, so the other sources work in an install without it.

The phantom knows the answer to every frame, and says it: each frame's `info` carries `truth`
(`{"plane", "orientation", "anatomy": [...], "boxes": [{"label", "box": [x1, y1, x2, y2]}], "stream",
"t"}`, boxes in this frame's pixels, like a detector's answers), so a run's JSONL can be scored against
it (`edgekit demo` does); `?truth=0` leaves it out.
"""
from __future__ import annotations

import re

import numpy as np

from edge.core.errors import BadInputError, UnsupportedError
from runtime.sources.base import Pacer, Source, as_bool, register_source


@register_source
class PhantomSource(Source):
    """`phantom` or `phantom:SEED`: the simulated sweep; `frames` ends it (None: endless)."""

    kind = "phantom"
    forms = "phantom, phantom:SEED (options ?realtime=0&frames=N&fps=F&width=W&height=H&truth=0)"
    example = "phantom:3"
    options = {"realtime": as_bool, "frames": int, "fps": float, "width": int, "height": int, "truth": as_bool}
    _pattern = re.compile(r"^phantom(?::(\d+))?$")

    def __init__(self, seed: int = 0, realtime: bool = True, frames: int | None = None, fps: float = 23.0,
                 width: int = 672, height: int = 389, truth: bool = True):
        super().__init__()
        for name, value in (("fps", fps), ("width", width), ("height", height), ("frames", frames)):
            if value is not None and value <= 0:
                raise BadInputError(f"phantom source: {name}={value:g} must be above 0 "
                                    f"(for an unpaced sweep use ?realtime=0)")
        self.seed, self.realtime, self.frames, self.fps = seed, realtime, frames, fps
        self.width, self.height, self.truth = width, height, truth
        self._sweep, self._pacer = None, Pacer(None)
        self._last_index: int | None = None
        self._last_truth: dict | None = None

    @classmethod
    def matches(cls, spec: str) -> bool:
        return spec == "phantom" or spec.startswith("phantom:")

    @classmethod
    def from_spec(cls, spec: str, **opts) -> "PhantomSource":
        m = cls._pattern.match(spec)
        if not m:
            raise BadInputError(f"bad phantom source {spec!r}; expected {cls.forms}")
        return cls(seed=int(m.group(1) or 0), **opts)

    def describe(self) -> str:
        pace = f"{self.fps:g} Hz" if self.realtime else "as fast as possible"
        return f"phantom seed {self.seed} ({pace})"

    def _open_impl(self) -> None:
        try:
            from edge.core.phantom import sweep
        except ImportError as exc:
            raise UnsupportedError(f"the phantom simulator (edge.core.phantom) is not available ({exc}); "
                                   f"use another --source (a video, an image folder, usb:N)") from None
        self._sweep = iter(sweep(seed=self.seed, frames=self.frames, height=self.height, width=self.width,
                                 fps=self.fps))
        self._pacer = Pacer(self.fps if self.realtime else None)

    def _read_impl(self) -> np.ndarray | None:
        self._pacer.wait()                # first: the capture thread sleeps while inference works
        f = next(self._sweep, None)
        if f is None:
            return None
        self._last_index = f.index
        self._last_truth = frame_truth(f) if self.truth else None
        return f.image

    def _frame_info(self) -> dict:
        info = {"seed": self.seed, "index": self._last_index}
        if self._last_truth is not None:
            info["truth"] = self._last_truth
        return info

    def _close_impl(self) -> None:
        close = getattr(self._sweep, "close", None)
        if close is not None:
            close()
        self._sweep = None


def frame_truth(f) -> dict:
    """What the phantom knows of one `PhantomFrame`, JSON-ready (boxes as a detector reports them)."""
    return {"plane": f.plane, "orientation": f.orientation, "anatomy": list(f.anatomy),
            "boxes": [{"label": b[0], "box": [round(float(v), 1) for v in b[1:5]]} for b in f.boxes],
            "stream": f.stream, "t": round(float(f.t), 6)}
