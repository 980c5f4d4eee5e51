"""Ultrasound augmentations for training: what changes between fetuses, scanners and sonographers.

Applied to the frame as loaded (uint8 HxW or HxWxC, in frame pixels, before `edge.core.preprocess`),
so training and the device keep one and the same preprocessing and only training frames vary:

- ``flip``: a horizontal flip, an inverted probe; the dataset swaps head up/down in the orientation
  label (`edge.core.phantom.scene.flip_orientation`) and boxes are mirrored;
- ``zoom`` and ``rotate``: the depth setting (scale about the probe apex, then cropped or padded with
  black to the frame) and a small tilt of the probe in the image plane (rotation about the apex);
  boxes are mapped through the same transform (the box around the mapped corners, clipped);
- ``gain`` and ``tgc``: overall gain and a depth-dependent time-gain-compensation curve (a smooth
  log-gain in the distance from the apex: a slope and a bow);
- ``shadow``: an acoustic shadow, a dark wedge along the beam from some depth down (bone, gas);
- ``speckle``: multiplicative speckle (gamma noise, mean 1, spatially correlated like a real PSF).

Each fires with its probability and draws its strength from a bounded range, from a numpy Generator,
so a seed gives the same frames. The intensity changes are multiplicative, so the black outside the
fan stays black. The apex defaults to the FPUS23 fan's (`edge.core.phantom.scene`: above the top
centre of the frame); other scanners' fans differ only by a small amount for these small angles.

    >>> import numpy as np
    >>> img = np.full((40, 60), 120, np.uint8)
    >>> out, boxes, flipped = Augment()(img, [("head", 10.0, 10.0, 20.0, 20.0)], np.random.default_rng(0))
    >>> out.shape, out.dtype
    ((40, 60), dtype('uint8'))
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from edge.core.errors import BadInputError
from edge.core.phantom.scene import APEX_X, APEX_Y, HALF_ANGLE, REF_H, REF_W

APEX = (APEX_X / REF_W, APEX_Y / REF_H)          # (x, y) as fractions of the frame's width and height
FAN_DEGREES = math.degrees(HALF_ANGLE)


@dataclass(frozen=True)
class Augment:
    """Probabilities (0..1) and strength ranges of each augmentation; `Augment()` is the training recipe."""

    flip: float = 0.5
    zoom: float = 0.5
    zoom_range: tuple[float, float] = (0.85, 1.15)      # scale about the apex (<1: deeper view)
    rotate: float = 0.5
    max_degrees: float = 10.0                           # rotation about the apex, either way
    gain: float = 0.8
    gain_range: tuple[float, float] = (0.7, 1.35)
    tgc: float = 0.5
    tgc_strength: float = 0.5                           # |slope| and |bow| of the log-gain over depth
    shadow: float = 0.3
    shadow_depth: tuple[float, float] = (0.3, 0.85)     # attenuation inside the wedge
    shadow_degrees: tuple[float, float] = (2.0, 8.0)    # wedge width
    speckle: float = 0.5
    speckle_strength: tuple[float, float] = (0.2, 0.7)  # 0: none, 1: fully developed (gamma, 2 looks)
    apex: tuple[float, float] = APEX

    def __post_init__(self):
        for name in ("flip", "zoom", "rotate", "gain", "tgc", "shadow", "speckle"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise BadInputError(f"augmentation probability {name}={p} must be between 0 and 1")
        for name in ("zoom_range", "gain_range", "shadow_depth", "shadow_degrees", "speckle_strength"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi:
                raise BadInputError(f"augmentation range {name}={(lo, hi)} must be 0 < low <= high")
        if not 0.0 <= self.max_degrees <= 45.0 or not 0.0 <= self.tgc_strength <= 2.0:
            raise BadInputError(f"max_degrees {self.max_degrees} (0..45) or tgc_strength {self.tgc_strength} "
                                f"(0..2) is out of range")

    def for_kind(self, kind: str) -> Augment:
        """Multi-label (anatomy in view) answers change if a part leaves the frame: no zooming in."""
        if kind == "multi_label" and self.zoom_range[1] > 1.0:
            return replace(self, zoom_range=(min(self.zoom_range[0], 1.0), 1.0))
        return self

    def to_dict(self) -> dict:
        """Plain data for a checkpoint's recipe."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def __call__(self, img: np.ndarray, boxes, rng: np.random.Generator):
        """(augmented frame, boxes in its pixels, flipped?) for a frame and its (label, x1, y1, x2, y2) boxes."""
        h, w = img.shape[:2]
        boxes, flipped = list(boxes), False
        if rng.random() < self.flip:
            img, boxes, flipped = hflip(img, boxes) + (True,)
        scale = rng.uniform(*self.zoom_range) if rng.random() < self.zoom else 1.0
        degrees = rng.uniform(-self.max_degrees, self.max_degrees) if rng.random() < self.rotate else 0.0
        if scale != 1.0 or degrees != 0.0:
            img, boxes = zoom_rotate(img, boxes, scale, degrees, self.apex)
        gain = np.float32(rng.uniform(*self.gain_range) if rng.random() < self.gain else 1.0)
        m = None
        if rng.random() < self.tgc:
            s = self.tgc_strength
            m = tgc_map((h, w), rng.uniform(-s, s), rng.uniform(-s, s), self.apex)
        if rng.random() < self.shadow:
            sm = shadow_map((h, w), rng.uniform(-FAN_DEGREES, FAN_DEGREES) * 0.9, rng.uniform(*self.shadow_degrees),
                            rng.uniform(0.2, 0.7), rng.uniform(*self.shadow_depth), self.apex)
            m = sm if m is None else m * sm
        if rng.random() < self.speckle:
            sp = speckle_map((h, w), rng.uniform(*self.speckle_strength), rng)
            m = sp if m is None else m * sp
        if m is not None or gain != 1.0:
            img = apply_gain(img, gain if m is None else m * gain)
        return img, boxes, flipped


def hflip(img: np.ndarray, boxes=()) -> tuple[np.ndarray, list]:
    """The frame mirrored left-right and its (label, x1, y1, x2, y2) boxes with it."""
    w = img.shape[1]
    return np.ascontiguousarray(img[:, ::-1]), [(b[0], w - b[3], b[2], w - b[1], b[4]) for b in boxes]


def apex_px(shape, apex=APEX) -> tuple[float, float]:
    """The probe apex in pixels of a frame of `shape` (it lies above the frame)."""
    return apex[0] * shape[1], apex[1] * shape[0]


def zoom_rotate(img: np.ndarray, boxes, scale: float, degrees: float, apex=APEX) -> tuple[np.ndarray, list]:
    """Scale by `scale` and rotate by `degrees` (counter-clockwise on screen) about the probe apex; the frame
    keeps its size (cropped, or padded with black). Boxes: the box around their mapped corners, clipped to
    the frame; boxes left under a pixel wide or high are dropped."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(apex_px((h, w), apex), degrees, scale)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, transform_boxes(boxes, m, (h, w))


def transform_boxes(boxes, m: np.ndarray, shape) -> list:
    """(label, x1, y1, x2, y2) boxes through the 2x3 affine `m`, as axis-aligned boxes clipped to `shape`."""
    h, w = shape[:2]
    out = []
    for label, x1, y1, x2, y2 in boxes:
        corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], dtype=np.float64) @ m.T
        nx1, ny1 = np.clip(corners.min(0), 0, (w, h))
        nx2, ny2 = np.clip(corners.max(0), 0, (w, h))
        if nx2 - nx1 >= 1.0 and ny2 - ny1 >= 1.0:
            out.append((label, float(nx1), float(ny1), float(nx2), float(ny2)))
    return out


@lru_cache(maxsize=8)
def _polar(shape: tuple[int, int], apex: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(depth 0..1 from the nearest to the farthest pixel, beam angle in degrees) of every pixel."""
    h, w = shape
    ax, ay = apex_px(shape, apex)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs + 0.5 - ax, ys + 0.5 - ay
    r = np.hypot(dx, dy)
    depth = ((r - r.min()) / max(float(r.max() - r.min()), 1e-6)).astype(np.float32)
    angle = np.degrees(np.arctan2(dx, dy)).astype(np.float32)
    for a in (depth, angle):
        a.setflags(write=False)
    return depth, angle


def tgc_map(shape, slope: float, bow: float, apex=APEX) -> np.ndarray:
    """A time-gain-compensation curve as a gain per pixel: exp(slope * (d - 1/2) + bow * ((d - 1/2)^2 - 1/12))
    over the depth d (0..1) from the apex, so its log has mean 0 over depth."""
    depth, _ = _polar((int(shape[0]), int(shape[1])), tuple(apex))
    d = depth - 0.5
    return np.exp(slope * d + bow * (d * d - 1.0 / 12.0)).astype(np.float32)


def shadow_map(shape, angle: float, width: float, start: float, strength: float, apex=APEX) -> np.ndarray:
    """An acoustic shadow as a gain per pixel: 1 - `strength` inside a wedge of `width` degrees centred on
    beam `angle` (0: straight down) from depth `start` (0..1) on, with soft edges."""
    depth, ang = _polar((int(shape[0]), int(shape[1])), tuple(apex))
    across = np.clip((width / 2 + 1.0 - np.abs(ang - angle)) / 2.0, 0.0, 1.0)    # ~2 degree soft edge
    along = np.clip((depth - start) / 0.05, 0.0, 1.0)
    return (1.0 - strength * across * along).astype(np.float32)


@lru_cache(maxsize=4)
def _speckle_bank(shape: tuple[int, int]) -> np.ndarray:
    """Gamma speckle (2 looks), lightly correlated, mean 1, twice the frame in each direction (seeded)."""
    h, w = shape
    rng = np.random.default_rng(0x5BEC)
    g = rng.gamma(2.0, 0.5, size=(2 * h, 2 * w)).astype(np.float32)
    g = cv2.GaussianBlur(g, (0, 0), sigmaX=0.8, sigmaY=0.6)
    g /= g.mean()
    g = (g - 1.0) / g.std() * math.sqrt(0.5) + 1.0            # the variance of 2 looks again after the blur
    g.setflags(write=False)
    return g


def speckle_map(shape, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative speckle as a gain per pixel, mean 1: 1 + strength * (gamma noise - 1), never below 0."""
    h, w = int(shape[0]), int(shape[1])
    bank = _speckle_bank((h, w))
    oy, ox = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    return np.maximum(1.0 + np.float32(strength) * (bank[oy:oy + h, ox:ox + w] - 1.0), 0.0)


def apply_gain(img: np.ndarray, gain) -> np.ndarray:
    """`img` times a scalar or a per-pixel gain (HxW), in its own dtype (uint8 saturates at 255)."""
    g = np.asarray(gain, dtype=np.float32)
    if img.ndim == 3 and g.ndim == 2:
        g = g[:, :, None]
    out = img.astype(np.float32) * g
    if img.dtype == np.uint8:
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return out.astype(img.dtype)
