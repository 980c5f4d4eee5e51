"""Sources read through `cv2.VideoCapture`: USB/UVC and V4L2 capture devices, and video files.

A capture card showing the scanner's screen is the usual probe input on a Jetson: it is opened with
the V4L2 backend and MJPEG (uncompressed 1080p does not fit USB 2 at 30 Hz), and the scanner's UI is
cropped away with `roi`. Frames come out RGB.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import FileFormatError, MissingFileError
from runtime.sources.base import Pacer, Source, as_bool, as_roi, crop, register_source

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mjpg", ".mjpeg", ".m4v", ".mpg", ".mpeg", ".wmv")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey) -> RGB (or grey), uint8."""
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


@register_source
class CameraSource(Source):
    """A live capture device: `usb:N` (index N) or `/dev/videoN`; an empty grab means unplugged."""

    kind = "camera"
    forms = "usb:N, /dev/videoN (options ?width=W&height=H&fps=F&roi=y0,y1,x0,x1)"
    example = "usb:0"
    live = True
    options = {"width": int, "height": int, "fps": float, "roi": as_roi, "fourcc": str}
    _pattern = re.compile(r"^(usb:(\d+)|/dev/video(\d+))$")

    def __init__(self, device: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None, roi=None, fourcc: str = "MJPG"):
        super().__init__()
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.roi, self.fourcc = as_roi(roi), fourcc
        self._cap = None

    @classmethod
    def matches(cls, spec: str) -> bool:
        return spec.startswith("usb:") or spec.startswith("/dev/video")

    @classmethod
    def from_spec(cls, spec: str, **opts) -> "CameraSource":
        m = cls._pattern.match(spec)
        if not m:
            from edge.core.errors import BadInputError

            raise BadInputError(f"bad camera source {spec!r}; expected {cls.forms}")
        return cls(int(m.group(2)) if m.group(2) is not None else spec, **opts)

    def describe(self) -> str:
        return f"camera usb:{self.device}" if isinstance(self.device, int) else f"camera {self.device}"

    def _open_impl(self) -> None:
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") and hasattr(cv2, "CAP_V4L2") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.device, api)
        if not cap.isOpened():
            cap.release()
            raise MissingFileError(f"no {self.describe()}; check the cable and "
                                   f"`ls /dev/video*`, or pass another --source (usb:N, /dev/videoN)")
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc[:4].ljust(4)))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps)):
            if value:
                cap.set(prop, value)
        self._cap = cap

    def _read_impl(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        return to_rgb(crop(image, self.roi)) if ok and image is not None else None

    def _frame_info(self) -> dict:
        return {"device": f"usb:{self.device}" if isinstance(self.device, int) else str(self.device)}

    def _close_impl(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


@register_source
class VideoSource(Source):
    """A video file, paced to its own frame rate (`realtime`, default) or as fast as it decodes."""

    kind = "video"
    forms = "PATH.avi|.mp4|.mkv|... (options ?realtime=0&loop=1&roi=y0,y1,x0,x1)"
    example = "scan.avi"
    options = {"realtime": as_bool, "loop": as_bool, "roi": as_roi}

    def __init__(self, path, realtime: bool = True, loop: bool = False, roi=None):
        super().__init__()
        self.path, self.realtime, self.loop, self.roi = Path(path), realtime, loop, as_roi(roi)
        self._cap, self._pacer = None, Pacer(None)

    @classmethod
    def matches(cls, spec: str) -> bool:
        return Path(spec).suffix.lower() in VIDEO_SUFFIXES or Path(spec).is_file()

    @classmethod
    def from_spec(cls, spec: str, **opts) -> "VideoSource":
        if not Path(spec).is_file():
            raise MissingFileError(f"video file not found: {spec}; check the path")
        return cls(spec, **opts)

    def describe(self) -> str:
        return f"video {self.path.name}"

    def _open_impl(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise FileFormatError(f"{self.path} is not a video OpenCV can decode; convert it (e.g. to MJPG .avi)")
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        self._cap, self._pacer = cap, Pacer(fps if self.realtime else None)

    def _read_impl(self) -> np.ndarray | None:
        self._pacer.wait()                # first, as a probe's frame arrives: then decode, convert, stamp
        ok, image = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        if not ok or image is None:
            return None
        return to_rgb(crop(image, self.roi))

    def _frame_info(self) -> dict:
        """The file, the number of the frame just decoded (0-based, from the start of the file: it
        restarts when `loop` rewinds) and its timestamp in the video, ms."""
        number = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1
        return {"file": self.path.name, "frame": number, "pos_ms": round(float(self._cap.get(cv2.CAP_PROP_POS_MSEC)), 3)}

    def _close_impl(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
