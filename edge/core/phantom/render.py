"""B-mode image formation: echo map -> acoustic shadows -> speckle -> depth gain -> fan mask.

Fast by construction (the runtime plays sweeps at 23 Hz, benchmarks train on thousands of frames):
shapes are rasterised once with OpenCV at the output size (sub-pixel, so tiny frames stay smooth),
the speckle comes from a per-size bank generated once and cropped at an offset per frame (so a probe
that moves drags its speckle with the tissue, as real speckle does), and the fan mask and depth gain are
cached per size. numpy + OpenCV only: the device runtime imports this.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edge.core.phantom.anatomy import Shape
from edge.core.phantom.scene import APEX_X, APEX_Y, HALF_ANGLE, R0, R1, REF_H, REF_W

_SHIFT = 4                      # OpenCV sub-pixel bits
_TISSUE = 0.33                  # maternal tissue echo outside the uterus


@dataclass(frozen=True)
class Look:
    """Per-frame imaging nuisance: overall gain, depth-gain slope, and where the speckle is cropped."""

    gain: float = 1.0
    slope: float = 0.0
    speckle: tuple[float, float, float, float] = (0.0, 0.0, 0.5, 0.5)   # oy0, ox0, oy1, ox1 in [0, 1)
    blend: float = 0.0                                                  # 0: first crop .. 1: second


@lru_cache(maxsize=8)
def _fan(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(depth gain inside the fan, 0 outside; normalised depth - 0.5) for this output size."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x = (xs + 0.5) * (REF_W / width) - APEX_X
    y = (ys + 0.5) * (REF_H / height) - APEX_Y
    r = np.hypot(x, y)
    d = np.clip((r - R0) / (R1 - R0), 0.0, 1.0)
    inside = (r >= R0) & (r <= R1) & (np.abs(np.arctan2(x, y)) <= HALF_ANGLE)
    gain = 0.95 * np.exp(-1.7 * d) * (1.0 + 1.4 * d) + 0.3 * np.exp(-(((d - 0.03) / 0.03) ** 2))
    return (gain * inside).astype(np.float32), ((d - 0.5) * inside).astype(np.float32)


@lru_cache(maxsize=8)
def _speckle_bank(height: int, width: int) -> np.ndarray:
    """Rayleigh-like speckle (magnitude of blurred complex noise), mean 1, twice the frame size."""
    rng = np.random.default_rng(0x5EED)
    sx, sy = max(0.6, 2.2 * width / REF_W), max(0.5, 1.1 * height / REF_H)   # wider laterally
    re, im = (cv2.GaussianBlur(rng.standard_normal((2 * height, 2 * width)).astype(np.float32), (0, 0),
                               sigmaX=sx, sigmaY=sy) for _ in range(2))
    amp = np.sqrt(re * re + im * im)
    return (amp / amp.mean()).astype(np.float32)


def _speckle(height: int, width: int, look: Look) -> np.ndarray:
    bank = _speckle_bank(height, width)
    oy0, ox0, oy1, ox1 = look.speckle
    a = bank[int(oy0 * height) % height:][:height, int(ox0 * width) % width:][:, :width]
    if look.blend <= 0.0:
        return a
    b = bank[int(oy1 * height) % height:][:height, int(ox1 * width) % width:][:, :width]
    t = np.float32(look.blend * np.pi / 2)      # energy-preserving mix of two decorrelated patterns
    return a * np.cos(t) + b * np.sin(t)


def render(shapes: list[Shape], look: Look, height: int, width: int) -> np.ndarray:
    """Draw `shapes` (reference-frame pixels) as an HxW uint8 B-mode frame, black outside the fan."""
    fill = np.full((height, width), _TISSUE, np.float32)
    edge = np.zeros((height, width), np.float32)
    shadow = np.ones((height, width), np.float32)
    sx, sy = width / REF_W, height / REF_H
    unit = float(1 << _SHIFT)
    scale = np.array([sx * unit, sy * unit])
    apex = np.array([APEX_X * sx, APEX_Y * sy]) * unit
    casters = []
    for sh in shapes:
        p = np.round(sh.pts * scale).astype(np.int32)
        w = max(1, int(round(sh.width * sx)))
        if sh.fill >= 0 and sh.closed:
            cv2.fillPoly(fill, [p], float(sh.fill), cv2.LINE_AA, _SHIFT)
        elif sh.fill >= 0:
            cv2.polylines(fill, [p], False, float(sh.fill), w, cv2.LINE_AA, _SHIFT)
        if sh.edge > 0:
            cv2.polylines(edge, [p], sh.closed, float(sh.edge), w, cv2.LINE_AA, _SHIFT)
        if sh.shadow < 1.0:                     # bone: keeps its own echo in front of its shadow
            casters.append((sh.shadow, p))
            if sh.fill >= 0 and sh.closed:
                cv2.fillPoly(edge, [p], float(sh.fill), cv2.LINE_AA, _SHIFT)
    for strength, p in sorted(casters, key=lambda c: -c[0]):        # the darkest shadow wins overlaps
        far = apex + (p - apex) * 4.0                                 # project away from the probe
        hull = cv2.convexHull(np.concatenate([p, far.astype(np.int32)]))
        cv2.fillConvexPoly(shadow, hull, float(strength), cv2.LINE_AA, _SHIFT)
    gain, ramp = _fan(height, width)
    spk = _speckle(height, width, look)
    img = fill * shadow * spk + edge * (0.55 + 0.45 * spk)       # specular echoes: bright, less speckled
    img *= gain * look.gain + ramp * look.slope
    return cv2.convertScaleAbs(img, alpha=255.0)
