"""A folder of images played as a stream (sorted by name), optionally looped and paced.

Useful to replay a recording (`edgekit run --record DIR` writes exactly this) or a dataset's frames.
An unreadable file is skipped with a warning instead of ending the stream.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import FileFormatError, MissingFileError
from runtime.sources.base import Pacer, Source, as_bool, as_roi, crop, register_source
from runtime.sources.opencv import to_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@register_source
class FolderSource(Source):
    """Images in a directory, in sorted order; `fps` paces them, `loop` starts over at the end.

    Unpaced (no `fps`), every image is processed in order: the loop waits for inference instead of
    dropping images (`every_frame`), so `edgekit run --source DIR --frames N` answers the first N
    images whatever the machine's speed. With `fps` the folder plays like a probe: the newest wins.
    """

    kind = "folder"
    forms = "DIR of png/jpg/tif/tiff/bmp images (options ?loop=1&fps=F&roi=y0,y1,x0,x1)"
    example = "frames/"
    options = {"loop": as_bool, "fps": float, "roi": as_roi}

    def __init__(self, path, loop: bool = False, fps: float | None = None, roi=None):
        super().__init__()
        self.path, self.loop, self.fps, self.roi = Path(path), loop, fps, as_roi(roi)
        self.every_frame = not fps
        self.files: list[Path] = []
        self.skipped = 0
        self._pos, self._pacer = 0, Pacer(fps)
        self._last: Path | None = None

    @classmethod
    def matches(cls, spec: str) -> bool:
        return Path(spec).is_dir() or spec.endswith("/")

    @classmethod
    def from_spec(cls, spec: str, **opts) -> "FolderSource":
        if not Path(spec).is_dir():
            raise MissingFileError(f"image folder not found: {spec}; check the path")
        return cls(spec, **opts)

    def describe(self) -> str:
        return f"folder {self.path}" + (f" ({len(self.files)} images)" if self.files else "")

    def _open_impl(self) -> None:
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FileFormatError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}")
        self._pos, self._pacer = 0, Pacer(self.fps)

    def _next_path(self) -> Path | None:
        if self._pos >= len(self.files):
            if not self.loop:
                return None
            self._pos = 0
        self._pos += 1
        return self.files[self._pos - 1]

    def _read_impl(self) -> np.ndarray | None:
        self._pacer.wait()                # first: the capture thread sleeps while inference works
        for _ in range(len(self.files)):  # skip unreadable files, but never spin forever
            path = self._next_path()
            if path is None:
                return None
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is not None:
                self._last = path
                return to_rgb(crop(image, self.roi))
            self.skipped += 1
            print(f"warning: skipping unreadable image {path}", file=sys.stderr)
        return None

    def _frame_info(self) -> dict:
        return {"file": self._last.name, "path": str(self._last)} if self._last is not None else {}
