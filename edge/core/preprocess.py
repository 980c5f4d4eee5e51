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

Order of work, so the cost follows the model's input size, not the source's: the ROI is cropped (a
view), the uint8 frame is resized by OpenCV as it is, every colour channel, and only the small
resized image is averaged to grey (the mean of R, G and B in float32, alpha ignored: SonoNet's
convention, not OpenCV's BT.601 weights) and normalised. A grey HxW uint8 frame is resized and
converted to float32 at the model's size, nothing else. Averaging is linear, so averaging after the
resize gives the image averaging before it would; what differs from the float implementation this
module had before issue 13 (float32 grey at full size, then the resize; kept as the reference in
tests/edge/core/test_preprocess.py and benchmarks/bench_realtime.py) is OpenCV's uint8 arithmetic:
each resized channel is rounded to an integer, and linear and area use fixed-point weights. Cubic
overshoots 0..255 next to sharp edges, which a uint8 result would clip (by up to 62 grey levels on
the released SonoNet frames' overlays), so a cubic spec resizes the cropped frame as int16 instead.
Against that reference, on phantom, noise, sharp-edged, BGRA, 1920x1080 and the released SonoNet
frames, sizes up and down, the largest differences measured are, in 0..255 grey levels before
normalisation:

    nearest 0 | cubic 0.5 | area 0.5 down, 0.81 up | linear 0.81          (tested bound: 1.0)

so at most 1.0 / (scale * std) after `meanstd` (0.0157 for 255 and std 0.25; measured 0.0114),
and about scale * 1.0 / sigma after `zscore` (sigma: the resized image's own standard deviation;
measured 4.6 on outputs of scale 255, 0.018 standard deviations; tested bound 2 * scale / sigma).
Colour specs (`grey: false`) resized uint8 already and are unchanged, bit for bit; frames already
at the model's size, and float frames, have nothing to round. Depths OpenCV cannot resize (bool,
int32, ...) go through float32.

Cost, `benchmarks/bench_realtime.py` on 2 heavily shared cores (load ~6.5): an RGB 1920x1080 frame
to 64x64 linear 0.06 ms (87 ms before), to 128x128 0.3 ms (86); cubic 288x224 from an 85% ROI
6.6 ms (62; about 2 ms with less load: the int16 copy and a 3-channel resize); area 64x64 14 ms (92;
OpenCV's area resize with a non-integer factor reads every pixel; 1.3 ms at 1024x768, an integer
factor). The runtime computes one input per distinct spec per frame; no full-size conversion is
left to share between specs.

`pixels(frame, spec)` is `preprocess` without the normalisation.

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
    """HxW or HxWxC (C=1,3,4) -> HxW float32, grey as the mean of the colour channels, at full size.

    Not on the hot path: `preprocess` resizes first and averages the channels on the small image."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame.astype(np.float32, copy=False)
    if frame.ndim == 3 and frame.shape[2] in (1, 3, 4):
        return _channel_mean(frame) if frame.shape[2] > 1 else frame[..., 0].astype(np.float32)
    raise BadInputError(f"frame of shape {frame.shape} is not HxW or HxWx(1|3|4)")


def _channel_mean(img: np.ndarray) -> np.ndarray:
    """HxWx(3|4) -> HxW float32 mean of the first three channels; bit for bit numpy's
    `img[..., :3].astype(np.float32).mean(axis=2)` (((R + G) + B) / 3 in float32), without its strided
    reduction."""
    f = img[..., :3].astype(np.float32)
    out = f[..., 0] + f[..., 1]
    out += f[..., 2]
    out /= np.float32(3.0)
    return out


def normalize(x: np.ndarray, norm: dict) -> np.ndarray:
    """Apply the spec's normalisation to float pixels in 0..255, per channel (C first or HxW)."""
    scale = float(norm.get("scale", 255.0))
    if norm["mode"] == "zscore":
        std = float(x.std())
        return (scale * (x - x.mean()) / (std if std > 0 else 1.0)).astype(np.float32)
    mean = np.asarray(norm.get("mean", [0.0]), np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    std = np.asarray(norm.get("std", [1.0]), np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    out = x / scale                   # (x / scale - mean) / std, in place: the same float32 results
    if out.shape != np.broadcast_shapes(out.shape, mean.shape, std.shape):
        return ((x / scale - mean) / std).astype(np.float32)
    out -= mean
    out /= std
    return out if out.dtype == np.float32 else out.astype(np.float32)


# the depths cv2.resize takes as they are; anything else (bool, int32, float16, ...) goes through float32
_RESIZABLE = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64))


def _resize(img: np.ndarray, hw: tuple[int, int], interp: int) -> np.ndarray:
    if img.dtype not in _RESIZABLE:
        img = img.astype(np.float32)
    return img if img.shape[:2] == hw else cv2.resize(img, (hw[1], hw[0]), interpolation=interp)


def pixels(frame: np.ndarray, spec: dict) -> np.ndarray:
    """What `preprocess` normalises: CxHxW float32 in the frame's own units (0..255 for uint8),
    cropped, resized and (for a grey spec) averaged to grey at the model's size."""
    frame = crop_roi(np.asarray(frame), spec.get("roi"))
    hw = (int(spec["resize"][0]), int(spec["resize"][1]))
    interp = INTERPOLATIONS[spec.get("interpolation", "linear")]
    if not spec.get("grey", True):    # colour models: uint8 resize, as it always was
        img = _resize(frame if frame.ndim == 3 else frame[..., None], hw, interp)
        return np.ascontiguousarray(np.atleast_3d(img).astype(np.float32).transpose(2, 0, 1))
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    elif not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
        raise BadInputError(f"frame of shape {frame.shape} is not HxW or HxWx(1|3|4)")
    if interp == cv2.INTER_CUBIC and frame.dtype == np.uint8 and frame.shape[:2] != hw:
        frame = frame.astype(np.int16)  # cubic overshoots 0..255 at sharp edges: room so it is not clipped
    small = _resize(frame, hw, interp)  # the integer frame as it is, every channel: no full-size float
    return (_channel_mean(small) if small.ndim == 3 else small.astype(np.float32))[None]


def preprocess(frame: np.ndarray, spec: dict) -> np.ndarray:
    """One frame (uint8 HxW or HxWxC) -> float32 CxHxW model input, exactly as the spec says."""
    return normalize(pixels(frame, spec), spec["normalize"])
