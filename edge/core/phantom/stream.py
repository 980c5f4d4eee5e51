"""Frames of the phantom: i.i.d. balanced samples for training and smooth probe sweeps for the runtime.

    >>> from edge.core.phantom import sample, sweep
    >>> frames = sample(seed=0, n=8, height=64, width=64)     # balanced over planes and orientations
    >>> [f.plane for f in frames[:4]]
    ['AC', 'BPD', 'FL', 'no plane']
    >>> next(sweep(seed=1)).stream                              # one probe path per seed, 23 Hz
    'stream_hdvf_aroundabd_h'

Both are deterministic per seed. A sweep's stream name follows FPUS23 (``stream_{pose}_{path}_{h|v}``)
and is the group a split must keep together; i.i.d. samples are grouped in blocks of 64 frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from edge.core.phantom.anatomy import S_AC, S_BPD, S_FL, TOL_S, TOL_TILT
from edge.core.phantom.render import Look, render
from edge.core.phantom.scene import ORIENTATIONS, REF_H, REF_W, Layout, View, layout

PLANES = ("AC", "BPD", "FL", "no plane")
_LEVEL = {"AC": S_AC, "BPD": S_BPD, "FL": S_FL}
PATHS = {"aroundhead": S_BPD, "aroundabd": S_AC, "aroundlegs": S_FL, "longrec": 0.5}


@dataclass
class PhantomFrame:
    """One rendered frame and its labels (boxes in this frame's pixels)."""

    image: np.ndarray
    index: int
    t: float
    plane: str
    orientation: str
    anatomy: tuple[str, ...]
    boxes: list[tuple[str, float, float, float, float]]
    stream: str


def frame_from_view(view: View, look: Look, index: int, t: float, stream: str,
                    height: int, width: int, lay: Layout | None = None) -> PhantomFrame:
    """Render `view` and carry its labels, boxes scaled from reference to output pixels."""
    lay = lay or layout(view)
    sx, sy = width / REF_W, height / REF_H
    boxes = [(lbl, x0 * sx, y0 * sy, x1 * sx, y1 * sy) for lbl, x0, y0, x1, y1 in lay.boxes]
    return PhantomFrame(render(lay.shapes, look, height, width), index, t, lay.plane, view.orientation,
                        lay.anatomy, boxes, stream)


def _random_look(rng) -> Look:
    return Look(gain=rng.uniform(0.75, 1.25), slope=rng.uniform(-0.3, 0.3),
                speckle=tuple(rng.random(4)), blend=rng.uniform(0.0, 1.0))


def _propose(rng, plane: str, orientation: str) -> View:
    """A view likely to show `plane`; 'no plane' mixes near misses, other levels and long cuts."""
    common = dict(orientation=orientation, roll=rng.uniform(-18, 18), dx=rng.uniform(-70, 70),
                  depth=rng.uniform(180, 230), scale=rng.uniform(0.88, 1.12))
    if plane in _LEVEL:
        return View(probe="h", s=_LEVEL[plane] + rng.uniform(-0.8, 0.8) * TOL_S,
                    tilt=rng.uniform(-0.6, 0.6) * TOL_TILT, **common)
    kind = rng.random()
    if kind < 0.45:                            # near miss: wrong level, too oblique, or partly outside
        s0, miss = _LEVEL[PLANES[rng.integers(3)]], rng.integers(3)
        s = s0 + (rng.choice([-1, 1]) * rng.uniform(1.05, 2.5) * TOL_S if miss == 0 else
                  rng.uniform(-0.5, 0.5) * TOL_S)
        tilt = rng.choice([-1, 1]) * rng.uniform(1.05, 2.0) * TOL_TILT if miss == 1 else rng.uniform(-8, 8)
        if miss == 2:
            common["dx"] = rng.choice([-1, 1]) * rng.uniform(110, 200)
        return View(probe="h", s=s, tilt=tilt, **common)
    if kind < 0.7:
        return View(probe="h", s=rng.uniform(0.0, 1.0), tilt=rng.uniform(-25, 25), **common)
    return View(probe="v", s=rng.uniform(0.25, 0.75), tilt=rng.uniform(-20, 20), **common)


def sample(seed: int, n: int, height: int = 389, width: int = 672) -> list[PhantomFrame]:
    """`n` independent frames, planes and orientations cycled so classes are balanced."""
    rng = np.random.default_rng([seed, 4004])
    frames = []
    for i in range(n):
        plane, orientation = PLANES[i % 4], ORIENTATIONS[(i // 4 + seed) % 4]
        for _ in range(100):                   # rejection: the label comes from the geometry alone
            view = _propose(rng, plane, orientation)
            lay = layout(view)
            if lay.plane == plane:
                break
        frames.append(frame_from_view(view, _random_look(rng), i, float(i), f"sample{seed}_{i // 64:04d}",
                                      height, width, lay))
    return frames


def sweep_stream(seed: int) -> tuple[str, str, str]:
    """(orientation, path, probe) of sweep `seed`; any 16 consecutive seeds cover every
    (orientation, path) pair once, so their stream names are distinct."""
    path = list(PATHS)[(seed // 4 + seed) % len(PATHS)]
    probe = "h" if path == "longrec" or np.random.default_rng([seed, 2323]).random() < 0.7 else "v"
    return ORIENTATIONS[seed % 4], path, probe


def sweep(seed: int = 0, frames: int | None = None, height: int = 389, width: int = 672,
          fps: float = 23.0) -> Iterator[PhantomFrame]:
    """A probe moving smoothly (sums of slow sinusoids); it crosses the diagnostic planes now and then."""
    orientation, path, probe = sweep_stream(seed)
    name = f"stream_{orientation}_{path}_{probe}"
    rng = np.random.default_rng([seed, 2324])
    freq = rng.uniform(0.02, 0.12, size=(6, 2))
    phase = rng.uniform(0, 2 * math.pi, size=(6, 2))
    centre, amp = PATHS[path], (0.42 if path == "longrec" else 0.085)
    if probe == "v":
        centre, amp = (0.5, 0.22) if path == "longrec" else (float(np.clip(centre, 0.3, 0.7)), 0.12)
    scale, speckle0 = rng.uniform(0.9, 1.1), rng.random(2)
    i = 0
    while frames is None or i < frames:
        t = i / fps
        w = [0.7 * math.sin(2 * math.pi * f0 * t + p0) + 0.3 * math.sin(2 * math.pi * f1 * t + p1)
             for (f0, f1), (p0, p1) in zip(freq, phase)]
        s = centre + amp * w[0]
        view = View(orientation, probe, s, tilt=16.0 * w[1], roll=10.0 * w[2], dx=55.0 * w[3],
                    depth=205.0 + 22.0 * w[4], scale=scale)
        q = s * 40.0                            # speckle decorrelates as the cut moves out of plane
        k = math.floor(q)
        look = Look(gain=1.0 + 0.12 * w[5], slope=0.1 * w[5],
                    speckle=(*_cell(seed, k, speckle0, view), *_cell(seed, k + 1, speckle0, view)), blend=q - k)
        yield frame_from_view(view, look, i, t, name, height, width)
        i += 1


def _cell(seed: int, k: int, base, view: View) -> tuple[float, float]:
    """Speckle crop for out-of-plane cell `k`, shifted with the probe's in-plane motion."""
    r = np.random.default_rng([seed, k & 0xFFFF, 77]).random(2)
    return ((base[0] + r[0] - view.depth / REF_H) % 1.0, (base[1] + r[1] - view.dx / REF_W) % 1.0)
