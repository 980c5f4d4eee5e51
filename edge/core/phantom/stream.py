"""Frames of the phantom: i.i.d. balanced samples for training and smooth probe sweeps for the runtime.

    >>> from edge.core.phantom import sample, sweep
    >>> frames = sample(seed=0, n=8, height=64, width=64)     # balanced over planes and orientations
    >>> [f.plane for f in frames[:4]]
    ['AC', 'BPD', 'FL', 'no plane']
    >>> next(sweep(seed=1)).stream                              # one probe path per seed, 23 Hz
    'stream_hdvf_aroundabd_h'

Both are deterministic per seed. A sweep's stream name follows FPUS23 (``stream_{pose}_{path}_{h|v}``)
and is the group a split must keep together; i.i.d. samples are grouped in blocks of 64 frames.
One stream is one patient (`edge.core.phantom.patient`): a sweep's fetus (size, age, proportions) and
day (depth setting, probe pressure, gain, TGC, speckle, artefacts) are drawn from its seed, and each
64-frame block of `sample` is another patient; the probe's motion and the gain jitter vary per frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from edge.core.phantom.anatomy import S_AC, S_BPD, S_FL, TOL_S, TOL_TILT
from edge.core.phantom.patient import Patient, draw_patient
from edge.core.phantom.render import Look, render
from edge.core.phantom.scene import ORIENTATIONS, REF_H, REF_W, Layout, View, layout

PLANES = ("AC", "BPD", "FL", "no plane")
_LEVEL = {"AC": S_AC, "BPD": S_BPD, "FL": S_FL}
PATHS = {"aroundhead": S_BPD, "aroundabd": S_AC, "aroundlegs": S_FL, "longrec": 0.5}
VISIT = (4.5, 7.0)                      # seconds between the sonographer's holds on a plane


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
    patient: Patient | None = None          # the stream's fetus and day (None: the reference fetus)
    view: View | None = None                # the probe and fetus the labels come from (layout(view))


def frame_from_view(view: View, look: Look, index: int, t: float, stream: str,
                    height: int, width: int, lay: Layout | None = None) -> PhantomFrame:
    """Render `view` and carry its labels, boxes scaled from reference to output pixels."""
    lay = lay or layout(view)
    sx, sy = width / REF_W, height / REF_H
    boxes = [(lbl, x0 * sx, y0 * sy, x1 * sx, y1 * sy) for lbl, x0, y0, x1, y1 in lay.boxes]
    return PhantomFrame(render(lay.shapes, look, height, width), index, t, lay.plane, view.orientation,
                        lay.anatomy, boxes, stream, view.patient, view)


def _random_look(rng, patient: Patient | None = None) -> Look:
    return Look(gain=rng.uniform(0.8, 1.2), slope=rng.uniform(-0.3, 0.3),
                speckle=tuple(rng.random(4)), blend=rng.uniform(0.0, 1.0), patient=patient,
                dropout=float(rng.random() < 0.5) * rng.uniform(0.5, 1.0))


def _propose(rng, plane: str, orientation: str, patient: Patient | None = None) -> View:
    """A view likely to show `plane`; 'no plane' mixes near misses, other levels and long cuts."""
    common = dict(orientation=orientation, roll=rng.uniform(-18, 18), dx=rng.uniform(-70, 70),
                  depth=rng.uniform(180, 230), scale=rng.uniform(0.94, 1.06), patient=patient)
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


def sample(seed: int, n: int, height: int = 389, width: int = 672,
           patient: Patient | None = None) -> list[PhantomFrame]:
    """`n` independent frames, planes and orientations cycled so classes are balanced. Each block of
    64 frames (one group) is one patient drawn from (seed, block), unless `patient` is given (e.g.
    `Patient()`, the reference fetus)."""
    rng = np.random.default_rng([seed, 4004])
    frames = []
    for i in range(n):
        plane, orientation = PLANES[i % 4], ORIENTATIONS[(i // 4 + seed) % 4]
        if i % 64 == 0:
            who = patient or draw_patient(seed, 4004, i // 64)
        for _ in range(100):                   # rejection: the label comes from the geometry alone
            view = _propose(rng, plane, orientation, who)
            lay = layout(view)
            if lay.plane == plane:
                break
        frames.append(frame_from_view(view, _random_look(rng, who), i, float(i), f"sample{seed}_{i // 64:04d}",
                                      height, width, lay))
    return frames


def sweep_stream(seed: int) -> tuple[str, str, str]:
    """(orientation, path, probe) of sweep `seed`; any 16 consecutive seeds cover every
    (orientation, path) pair once, so their stream names are distinct, and hold exactly three
    longitudinal (``v``) sweeps, one per ``around*`` path (seeds 13, 14, 15 mod 16)."""
    orientation, k = seed % 4, (seed // 4 + seed) % len(PATHS)
    probe = "v" if k < 3 and orientation == k + 1 else "h"
    return ORIENTATIONS[orientation], list(PATHS)[k], probe


def sweep(seed: int = 0, frames: int | None = None, height: int = 389, width: int = 672,
          fps: float = 23.0, patient: Patient | None = None) -> Iterator[PhantomFrame]:
    """A probe moving smoothly (sums of slow sinusoids) over one patient (drawn from `seed` unless
    given). Every VISIT seconds or so (first within 1-3 s) the sonographer steers onto a diagnostic
    plane and holds it for about a second, so a transverse (``h``) sweep of 90 frames or more crosses
    one; between visits the planes come and go by chance. A ``v`` sweep (longitudinal cut) shows none."""
    orientation, path, probe = sweep_stream(seed)
    name = f"stream_{orientation}_{path}_{probe}"
    who = patient or draw_patient(seed)
    rng = np.random.default_rng([seed, 2324])
    freq = rng.uniform(0.02, 0.12, size=(7, 2))
    phase = rng.uniform(0, 2 * math.pi, size=(7, 2))
    centre, amp = PATHS[path], (0.42 if path == "longrec" else 0.085)
    if probe == "v":
        centre, amp = (0.5, 0.22) if path == "longrec" else (float(np.clip(centre, 0.3, 0.7)), 0.12)
    speckle0 = rng.random(2)
    t0, period, hold = rng.uniform(1.0, 3.0), rng.uniform(*VISIT), rng.uniform(0.55, 0.8)
    aim = rng.uniform(-0.35, 0.35, size=(64, 3))      # where within the plane's tolerance each visit lands
    i = 0
    while frames is None or i < frames:
        t = i / fps
        w = [0.7 * math.sin(2 * math.pi * f0 * t + p0) + 0.3 * math.sin(2 * math.pi * f1 * t + p1)
             for (f0, f1), (p0, p1) in zip(freq, phase)]
        s, tilt, dx = centre + amp * w[0], 16.0 * w[1], 55.0 * w[3]
        v = max(0, round((t - t0) / period))           # the nearest visit
        g = math.exp(-(((t - t0 - v * period) / hold) ** 4))
        if g > 1e-4:                                   # steer toward the plane (smoothly: g is smooth in t)
            a = aim[v % len(aim)]
            level = s if probe == "v" else min(_LEVEL.values(), key=lambda lv: abs(lv - s))
            s += g * (level + a[0] * TOL_S - s)
            tilt += g * (a[1] * TOL_TILT - tilt)
            dx += g * (40.0 * a[2] - dx)
        view = View(orientation, probe, s, tilt=tilt, roll=10.0 * w[2], dx=dx,
                    depth=205.0 + 22.0 * w[4] * (1.0 - g), patient=who)
        q = s * 40.0                            # speckle decorrelates as the cut moves out of plane
        k = math.floor(q)
        look = Look(gain=1.0 + 0.12 * w[5], slope=0.1 * w[5],
                    speckle=(*_cell(seed, k, speckle0, view), *_cell(seed, k + 1, speckle0, view)), blend=q - k,
                    patient=who, dropout=max(0.0, 1.6 * w[6] - 0.2))      # contact lost now and then
        yield frame_from_view(view, look, i, t, name, height, width)
        i += 1


def _cell(seed: int, k: int, base, view: View) -> tuple[float, float]:
    """Speckle crop for out-of-plane cell `k`, shifted with the probe's in-plane motion."""
    r = np.random.default_rng([seed, k & 0xFFFF, 77]).random(2)
    return ((base[0] + r[0] - view.depth / REF_H) % 1.0, (base[1] + r[1] - view.dx / REF_W) % 1.0)
