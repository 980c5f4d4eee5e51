"""The one record every loader returns: a frame (on disk or in memory) and whatever it is labelled with.

Torch-free, so the runtime and the CLI can list and split datasets without the training stack::

    >>> s = Sample(path=Path("s1/frame_000000.png"), group="s1", plane="AC", anatomy=("abdomen",))
    >>> s.answer("plane"), s.answer("anatomy")
    ('AC', ('abdomen',))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.core.errors import FileFormatError, UnknownNameError

Box = tuple[str, float, float, float, float]       # (label, x1, y1, x2, y2) in the frame's pixels


@dataclass
class Sample:
    """One frame. `group` is what must stay on one side of a split (stream, patient)."""

    path: Path | None
    group: str
    plane: str | None = None
    orientation: str | None = None
    anatomy: tuple[str, ...] | None = None
    boxes: list[Box] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    label: str | None = None                     # the single-label answer (folder, CSV, or per task)
    image: np.ndarray | None = field(default=None, repr=False)   # in-memory frame (phantom fast path)
    extra: dict = field(default_factory=dict)

    def answer(self, task_name: str):
        """What this frame says for an FPUS23 task (None: not labelled for it)."""
        if task_name == "plane":
            return self.plane
        if task_name == "orientation":
            return self.orientation
        if task_name == "anatomy":
            return self.anatomy
        if task_name == "detection":
            return self.boxes or None
        raise UnknownNameError(f"FPUS23 frames carry plane, orientation, anatomy and detection, not {task_name!r}")

    def load_image(self) -> np.ndarray:
        """The frame as uint8 HxW (grey) or HxWx3 (RGB)."""
        if self.image is not None:
            return self.image
        import cv2

        img = cv2.imread(str(self.path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FileFormatError(f"cannot read image {self.path}; check that it is a PNG/JPEG/TIFF file")
        if img.dtype != np.uint8:
            img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(img.max())))
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        return img
