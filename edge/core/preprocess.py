"""Frame preprocessing as data: the one implementation training and the device runtime share.

A spec is the `preprocess` dict a checkpoint's config and a bundle's manifest carry::

    {"roi": [y0, y1, x0, x1] | None,       # crop of the scanner screen, in source pixels
     "grey": True,                          # mean of RGB (SonoNet's convention)
     "resize": [height, width],
     "interpolation": "linear" | "cubic" | "area",
     "normalize": {"mode": "meanstd", "mean": [0.5], "std": [0.25], "scale": 255.0}
               | {"mode": "zscore", "scale": 255.0}}

    >>> import numpy as np
    >>> x = preprocess(np.zeros((389, 672), np.uint8), default_spec((224, 224)))
    >>> x.shape, x.dtype
    ((1, 224, 224), dtype('float32'))

Torch-free (numpy + OpenCV): the runtime imports it on the device.
"""
from __future__ import annotations

import cv2
import numpy as np

from edge.core.errors import BadInputError

INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA,
                  "nearest": cv2.INTER_NEAREST}


def default_spec(input_size: tuple[int, int], mean: float = 0.5, std: float = 0.25) -> dict:
    """The spec for a 1-channel model of `input_size` (height, width) with mean/std normalisation."""
    return {"roi": None, "grey": True, "resize": [int(input_size[0]), int(input_size[1])],
            "interpolation": "linear",
            "normalize": {"mode": "meanstd", "mean": [mean], "std": [std], "scale": 255.0}}


def validate_spec(spec: dict) -> dict:
    """Check a spec read from a file; raise BadInputError naming the bad field."""
    if not isinstance(spec, dict):
        raise BadInputError(f"preprocess spec must be a mapping, got {type(spec).__name__}")
    size = spec.get("resize")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(int(v) > 0 for v in size)):
        raise BadInputError(f"preprocess.resize must be [height, width] > 0, got {size!r}")
    if spec.get("interpolation", "linear") not in INTERPOLATIONS:
        raise BadInputError(f"preprocess.interpolation {spec.get('interpolation')!r} is not one of "
                            f"{', '.join(INTERPOLATIONS)}")
    roi = spec.get("roi")
    if roi is not None and not (len(roi) == 4 and roi[0] < roi[1] and roi[2] < roi[3]):
        raise BadInputError(f"preprocess.roi must be [y0, y1, x0, x1] with y0<y1 and x0<x1, got {roi!r}")
    mode = spec.get("normalize", {}).get("mode")
    if mode not in ("meanstd", "zscore"):
        raise BadInputError(f"preprocess.normalize.mode must be 'meanstd' or 'zscore', got {mode!r}")
    return spec


def crop_roi(frame: np.ndarray, roi) -> np.ndarray:
    """Crop `[y0, y1, x0, x1]` (clipped to the frame); a view, no copy."""
    if roi is None:
        return frame
    y0, y1, x0, x1 = (int(v) for v in roi)
    h, w = frame.shape[:2]
    out = frame[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    if out.size == 0:
        raise BadInputError(f"ROI [y0, y1, x0, x1] = {list(roi)} lies outside the {w}x{h} (width x height) "
                            f"frame; use a source with the frames the model was exported for, or re-export "
                            f"with a preprocess.roi inside them")
    return out


def box_targets(boxes, frame_shape: tuple[int, int], spec: dict, labels) -> tuple[np.ndarray, np.ndarray]:
    """Frame-pixel boxes `(label, x0, y0, x1, y1)` -> (Nx4 float32 boxes in the model input's pixels
    (ROI crop, then resize, clipped), N int64 1-based indices into `labels`). Boxes under one pixel
    wide or high after the crop, and labels not in `labels`, are dropped.

    >>> box_targets([("head", 10, 20, 50, 60), ("tail", 0, 0, 9, 9)], (100, 200),
    ...             {"roi": [0, 100, 0, 100], "resize": [50, 50]}, ["arms", "head"])
    (array([[ 5., 10., 25., 30.]], dtype=float32), array([2]))
    """
    labels = list(labels)
    h, w = frame_shape
    roi = spec.get("roi")
    y0, y1, x0, x1 = (0, h, 0, w) if roi is None else (max(0, roi[0]), min(h, roi[1]), max(0, roi[2]), min(w, roi[3]))
    out_h, out_w = spec["resize"]
    sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
    rows, ids = [], []
    for lbl, bx0, by0, bx1, by1 in boxes:
        b = [np.clip((bx0 - x0) * sx, 0, out_w), np.clip((by0 - y0) * sy, 0, out_h),
             np.clip((bx1 - x0) * sx, 0, out_w), np.clip((by1 - y0) * sy, 0, out_h)]
        if b[2] - b[0] >= 1 and b[3] - b[1] >= 1 and lbl in labels:
            rows.append(b)
            ids.append(labels.index(lbl) + 1)
    return np.array(rows, np.float32).reshape(-1, 4), np.array(ids, np.int64)


def to_grey(frame: np.ndarray) -> np.ndarray:
    """HxW or HxWxC (C=1,3,4) uint8 -> HxW float32, grey as the mean of the colour channels."""
    if frame.ndim == 2:
        return frame.astype(np.float32, copy=False)
    if frame.ndim == 3 and frame.shape[2] in (1, 3, 4):
        return frame[..., :3].astype(np.float32).mean(axis=2) if frame.shape[2] > 1 \
            else frame[..., 0].astype(np.float32)
    raise BadInputError(f"frame of shape {frame.shape} is not HxW or HxWx(1|3|4)")


def normalize(x: np.ndarray, norm: dict) -> np.ndarray:
    """Apply the spec's normalisation to float pixels in 0..255, per channel (C first or HxW)."""
    scale = float(norm.get("scale", 255.0))
    if norm["mode"] == "zscore":
        std = float(x.std())
        return (scale * (x - x.mean()) / (std if std > 0 else 1.0)).astype(np.float32)
    mean = np.asarray(norm.get("mean", [0.0]), np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    std = np.asarray(norm.get("std", [1.0]), np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    return ((x / scale - mean) / std).astype(np.float32)


def preprocess(frame: np.ndarray, spec: dict) -> np.ndarray:
    """One uint8 frame (HxW or HxWxC) -> float32 CxHxW model input, exactly as the spec says."""
    frame = crop_roi(np.asarray(frame), spec.get("roi"))
    h, w = (int(v) for v in spec["resize"])
    interp = INTERPOLATIONS[spec.get("interpolation", "linear")]
    if spec.get("grey", True):
        img = to_grey(frame)
        if img.shape != (h, w):
            img = cv2.resize(img, (w, h), interpolation=interp)
        chw = img[None]
    else:
        img = frame if frame.ndim == 3 else frame[..., None]
        img = cv2.resize(img, (w, h), interpolation=interp) if img.shape[:2] != (h, w) else img
        chw = np.ascontiguousarray(np.atleast_3d(img).astype(np.float32).transpose(2, 0, 1))
    return normalize(chw, spec["normalize"])
