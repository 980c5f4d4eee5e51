"""The frame-source protocol every source kind implements, and the registry `open_source` sweeps.

A source is opened, read until `read()` returns None (end of stream), and closed; it is a context
manager. Subclasses fill in `_open_impl`, `_read_impl` (an image or None) and `_close_impl`; the base
class stamps each image with a monotonic timestamp and a running index that survives reopening, so
the loop can reconnect a source without the frame numbers going back, and with `info`, what names
the image in its source (`_frame_info()`: the file of a folder, the frame number and timestamp of a
video, the device of a probe, the seed and index of the phantom), which each JSONL row carries as
its `frame` object, and with `capture_ms`, what reading it cost (the time in `_read_impl` less any
time its `_pacer` slept).

Paced sources wait *before* they make the next frame (the pacer's sleep first, then decode or
render, then the timestamp), as a capture card's read blocks until a frame arrives: the capture
thread then sleeps, not computes, while inference works on the frame it just handed over.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from edge.core.errors import BadInputError


@dataclass(frozen=True)
class Frame:
    """One captured image (uint8 HxW or HxWx3, RGB), its capture time (`time.monotonic()`), index, and
    `info`: JSON-ready keys naming it in its source, always with "source" (the kind), e.g.
    `{"source": "folder", "file": "img3.png", "path": "scan/img3.png"}` or
    `{"source": "video", "file": "scan.avi", "frame": 12, "pos_ms": 480.0}`."""

    image: np.ndarray
    t: float
    index: int
    info: dict = field(default_factory=dict)
    capture_ms: float = 0.0       # reading it (decode, render, colour conversion), pacing excluded


class Source:
    """Base of all sources. `live` sources (cameras) treat an empty read as a failure, not an end.

    `every_frame` asks the loop not to drop frames: capture waits until inference has taken the last
    one (an unpaced replay of recorded images, where each image is a question to answer). Otherwise
    the newest frame wins, as with a probe that does not wait for us.
    """

    kind: ClassVar[str] = ""
    forms: ClassVar[str] = ""          # the spec forms this kind accepts, for help and error messages
    example: ClassVar[str] = ""        # a spec the registry sweep test can parse
    live: ClassVar[bool] = False
    every_frame: bool = False
    options: ClassVar[dict[str, Callable[[str], object]]] = {}

    def __init__(self):
        self._index = 0
        self.is_open = False

    @classmethod
    def matches(cls, spec: str) -> bool:
        """Whether `spec` (without its `?options`) names a source of this kind."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: str, **opts) -> "Source":
        raise NotImplementedError

    def open(self) -> "Source":
        self._open_impl()
        self.is_open = True
        return self

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the stream (or, for a live source, on a failed grab)."""
        pacer = getattr(self, "_pacer", None)
        slept_before = pacer.slept if isinstance(pacer, Pacer) else None
        start = time.monotonic()
        image = self._read_impl()
        if image is None:
            return None
        t = time.monotonic()
        paced = slept_before is not None and getattr(self, "_pacer", None) is pacer
        slept = pacer.slept - slept_before if paced else 0.0
        frame = Frame(image, t, self._index, {"source": self.kind, **self._frame_info()},
                      max(0.0, (t - start - slept) * 1e3))
        self._index += 1
        return frame

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._close_impl()

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return self.kind

    def _open_impl(self) -> None:
        raise NotImplementedError

    def _read_impl(self) -> np.ndarray | None:
        raise NotImplementedError

    def _close_impl(self) -> None:
        pass

    def _frame_info(self) -> dict:
        """What names the image `_read_impl` just returned in this source (JSON-ready); see `Frame.info`."""
        return {}


SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: add a source kind to the registry `open_source` sweeps (in order)."""
    for attr in ("kind", "forms", "example"):
        if not getattr(cls, attr):
            raise TypeError(f"source class {cls.__name__} must set {attr!r}")
    if cls.kind in SOURCES:
        raise TypeError(f"source kind {cls.kind!r} is registered twice")
    SOURCES[cls.kind] = cls
    return cls


class Pacer:
    """Sleeps so calls to `wait()` come `1/fps` apart; no sleeping when fps is None or 0.

    After a stall it does not burst to catch up: a real probe does not send the frames it missed.
    `slept` adds up the seconds it slept (what `Source.read` leaves out of `capture_ms`).
    """

    def __init__(self, fps: float | None):
        self.period = 1.0 / fps if fps else 0.0
        self._next: float | None = None
        self.slept = 0.0

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        if self._next is not None and self._next > now:
            time.sleep(self._next - now)
            woke = time.monotonic()
            self.slept += woke - now
            now = self._next
        self._next = now + self.period


def as_bool(text: str) -> bool:
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off"):
        return False
    raise BadInputError(f"expected a boolean (1/0, true/false), got {text!r}")


def as_roi(text) -> tuple[int, int, int, int] | None:
    """`y0,y1,x0,x1` (source pixels, the manifest's ROI order) -> a tuple, checked."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        roi = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        roi = ()
    if len(roi) != 4 or not (0 <= roi[0] < roi[1] and 0 <= roi[2] < roi[3]):
        raise BadInputError(f"roi must be y0,y1,x0,x1 with y0<y1 and x0<x1, got {text!r}")
    return roi


def crop(image: np.ndarray, roi) -> np.ndarray:
    """Crop the scanner-screen ROI `(y0, y1, x0, x1)`; a view, no copy."""
    if roi is None:
        return image
    y0, y1, x0, x1 = roi
    out = image[y0:y1, x0:x1]
    if out.size == 0:
        raise BadInputError(f"source roi {list(roi)} lies outside the {image.shape[1]}x{image.shape[0]} frame")
    return out
