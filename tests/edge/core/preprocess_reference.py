"""`edge.core.preprocess` as it was before issue 13 (e97fa32), frozen: float32 grey at full size, then
the resize, then the normalisation. The uint8 path is tested against it
(tests/edge/core/test_preprocess.py) and timed against it (benchmarks/bench_realtime.py)."""
from __future__ import annotations

import cv2
import numpy as np

from edge.core import preprocess as pp


def old_to_grey(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame.astype(np.float32, copy=False)
    return frame[..., :3].astype(np.float32).mean(axis=2) if frame.shape[2] > 1 else frame[..., 0].astype(np.float32)


def old_normalize(x: np.ndarray, norm: dict) -> np.ndarray:
    scale = float(norm.get("scale", 255.0))
    if norm["mode"] == "zscore":
        std = float(x.std())
        return (scale * (x - x.mean()) / (std if std > 0 else 1.0)).astype(np.float32)
    mean = np.asarray(norm.get("mean", [0.0]), np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    std = np.asarray(norm.get("std", [1.0]), np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    return ((x / scale - mean) / std).astype(np.float32)


def old_preprocess(frame: np.ndarray, spec: dict, normalise: bool = True) -> np.ndarray:
    """The old `preprocess` (`normalise=False`: CxHxW float32 pixels before the normalisation)."""
    frame = pp.crop_roi(np.asarray(frame), spec.get("roi"))
    h, w = (int(v) for v in spec["resize"])
    interp = pp.INTERPOLATIONS[spec.get("interpolation", "linear")]
    if spec.get("grey", True):
        img = old_to_grey(frame)
        if img.shape != (h, w):
            img = cv2.resize(img, (w, h), interpolation=interp)
        chw = img[None]
    else:
        img = frame if frame.ndim == 3 else frame[..., None]
        img = cv2.resize(img, (w, h), interpolation=interp) if img.shape[:2] != (h, w) else img
        chw = np.ascontiguousarray(np.atleast_3d(img).astype(np.float32).transpose(2, 0, 1))
    return old_normalize(chw, spec["normalize"]) if normalise else chw
