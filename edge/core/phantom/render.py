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
from edge.core.phantom.patient import Patient
from edge.core.phantom.scene import APEX_X, APEX_Y, HALF_ANGLE, R0, R1, REF_H, REF_W

_SHIFT = 4                      # OpenCV sub-pixel bits


@dataclass(frozen=True)
class Look:
    """Per-frame imaging nuisance: overall gain, depth-gain slope, and where the speckle is cropped;
    `patient` holds the day's settings and artefacts (None: the reference), `dropout` how much of the
    patient's contact dropout shows in this frame (0..1)."""

    gain: float = 1.0
    slope: float = 0.0
    speckle: tuple[float, float, float, float] = (0.0, 0.0, 0.5, 0.5)   # oy0, ox0, oy1, ox1 in [0, 1)
    blend: float = 0.0                                                  # 0: first crop .. 1: second
    patient: Patient | None = None
    dropout: float = 0.0


_REFERENCE = Patient()


@lru_cache(maxsize=8)
def _geometry(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(normalised depth 0..1 in the fan, inside-the-fan mask) for this output size."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x = (xs + 0.5) * (REF_W / width) - APEX_X
    y = (ys + 0.5) * (REF_H / height) - APEX_Y
    r = np.hypot(x, y)
    d = np.clip((r - R0) / (R1 - R0), 0.0, 1.0)
    return d, (r >= R0) & (r <= R1) & (np.abs(np.arctan2(x, y)) <= HALF_ANGLE)


@lru_cache(maxsize=16)
def _fan(height: int, width: int, pt: Patient = _REFERENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(depth gain inside the fan, 0 outside; normalised depth - 0.5; reverberation echo before the
    gain, or None) for this output size and this patient's attenuation, TGC and reverberation."""
    d, inside = _geometry(height, width)
    tgc = np.interp(d, np.linspace(0.0, 1.0, len(pt.tgc)), pt.tgc)
    gain = (0.95 * np.exp(-pt.attenuation * d) * (1.0 + 1.4 * d) * tgc
            + 0.3 * np.exp(-(((d - 0.03) / 0.03) ** 2)))
    reverb = None
    if pt.reverb > 0.0:                         # copies of the skin echo at multiples of the wall depth
        reverb = sum(pt.reverb * 0.55 ** k * np.exp(-(((d - k * pt.reverb_gap) / 0.008) ** 2))
                     for k in range(1, 5))
        reverb = (reverb * inside / np.maximum(gain, 1e-3)).astype(np.float32)   # drawn before the gain
    return (gain * inside).astype(np.float32), ((d - 0.5) * inside).astype(np.float32), reverb


@lru_cache(maxsize=16)
def _speckle_bank(height: int, width: int, grain: float = 1.0, contrast: float = 1.0) -> np.ndarray:
    """Rayleigh-like speckle (magnitude of blurred complex noise), mean 1, twice the frame size;
    `grain` scales the speckle size, `contrast` its spread about 1 (1: fully developed)."""
    rng = np.random.default_rng(0x5EED)
    sx, sy = max(0.6, 2.2 * grain * width / REF_W), max(0.5, 1.1 * grain * height / REF_H)  # wider laterally
    re, im = (cv2.GaussianBlur(rng.standard_normal((2 * height, 2 * width)).astype(np.float32), (0, 0),
                               sigmaX=sx, sigmaY=sy) for _ in range(2))
    amp = np.sqrt(re * re + im * im)
    return (1.0 - contrast + contrast * amp / amp.mean()).astype(np.float32)


def _speckle(height: int, width: int, look: Look, pt: Patient) -> np.ndarray:
    bank = _speckle_bank(height, width, pt.grain, pt.speckle)
    oy0, ox0, oy1, ox1 = look.speckle
    a = bank[int(oy0 * height) % height:][:height, int(ox0 * width) % width:][:, :width]
    if look.blend <= 0.0:
        return a
    b = bank[int(oy1 * height) % height:][:height, int(ox1 * width) % width:][:, :width]
    t = look.blend * np.pi / 2                  # mix of two decorrelated patterns, mean kept at 1
    c, s = np.cos(t), np.sin(t)
    return a * np.float32(c / (c + s)) + b * np.float32(s / (c + s))


def render(shapes: list[Shape], look: Look, height: int, width: int) -> np.ndarray:
    """Draw `shapes` (reference-frame pixels) as an HxW uint8 B-mode frame, black outside the fan."""
    pt = look.patient or _REFERENCE
    fill = np.full((height, width), pt.tissue, np.float32)
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
    if pt.dropout > 0.0 and look.dropout > 0.0:  # poor contact at one end of the probe: a dark wedge
        transmit, wedge = _dropout_wedge(pt, look.dropout, apex, sx, sy)
        dim = np.ones((height, width), np.float32)
        cv2.fillConvexPoly(dim, wedge, transmit, cv2.LINE_AA, _SHIFT)
        shadow *= dim
        edge *= dim
    gain, ramp, reverb = _fan(height, width, pt if pt is _REFERENCE else _imaging(pt))
    spk = _speckle(height, width, look, pt)
    if reverb is not None:                      # reverberation: a specular-like echo, less speckled
        edge += reverb
    fill *= shadow
    fill *= spk
    spk = spk * np.float32(0.45)                # a new array: `spk` may be the cached bank itself
    spk += np.float32(0.55)
    edge *= spk                                 # specular echoes: bright, less speckled
    fill += edge
    if look.slope:
        fill *= gain * np.float32(look.gain * pt.gain) + ramp * np.float32(look.slope)
    else:
        fill *= gain
        fill *= np.float32(look.gain * pt.gain)
    return cv2.convertScaleAbs(fill, alpha=255.0)


def _imaging(pt: Patient) -> Patient:
    """The patient reduced to what the gain map depends on, so sizes and echoes share a cache entry."""
    return Patient(tgc=pt.tgc, attenuation=pt.attenuation, reverb=pt.reverb, reverb_gap=pt.reverb_gap)


def _dropout_wedge(pt: Patient, amount: float, apex: np.ndarray, sx: float, sy: float):
    """(transmission, polygon) of the contact dropout: a wedge from the apex along one fan edge."""
    edge_angle = pt.dropout_side * HALF_ANGLE
    inner = edge_angle - pt.dropout_side * np.radians(pt.dropout_deg)
    lo, hi = sorted((inner, edge_angle + pt.dropout_side * 0.05))
    th = np.linspace(lo, hi, 6)
    r = R1 * 1.05 * np.float64(1 << _SHIFT)
    far = np.stack([apex[0] + r * sx * np.sin(th), apex[1] + r * sy * np.cos(th)], 1)
    poly = np.concatenate([apex[None], far]).astype(np.int32)
    return float(1.0 - pt.dropout * min(1.0, amount)), poly
