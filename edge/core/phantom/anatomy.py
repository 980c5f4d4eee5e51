"""The 23-week fetus phantom as 2-D sections: what one cut through the body shows.

A cut is described in *section coordinates* (reference pixels of a 672x389 frame, 12 cm deep):
transverse cuts use ``(u, v)`` = (toward the fetal left, toward the fetal back); longitudinal cuts use
``(a, v)`` = (along the body from the vertex toward the feet, toward the back). `edge.core.phantom.scene`
places the section in the probe's fan, so orientation (head up/down, spine toward/away) is applied once
there and every label follows from the same geometry.

Each diagnostic plane is a body level (``S_BPD``, ``S_AC``, ``S_FL``) with a tolerance in level and in
out-of-plane tilt: inside it the section shows the plane's landmarks (thalami + cavum septi at the BPD
level, stomach + umbilical vein at the AC level, a whole bright femur at the FL level); just outside it
shows their neighbours (ventricles, orbits/cerebellum, kidneys, a short dim femur): the hard negatives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

S_BPD, S_AC, S_FL = 0.15, 0.54, 0.80        # body levels of the three diagnostic planes (0 vertex, 1 feet)
TOL_S, TOL_TILT = 0.03, 12.0                # a cut within these of a plane shows its landmarks
BODY_LEN = 640.0                            # vertex to feet in reference pixels (longitudinal cuts)

_T = np.linspace(0.0, 2.0 * math.pi, 36, endpoint=False)
_UNIT = np.stack([np.cos(_T), np.sin(_T)], axis=1)


@dataclass
class Shape:
    """One drawable: a closed polygon (filled and/or outlined) or an open polyline (a tube/bone)."""

    pts: np.ndarray                 # Nx2 section coordinates
    fill: float = -1.0              # echo level inside (or of the line when open); < 0: not filled
    edge: float = 0.0               # specular outline brightness (bone, capsule); 0: none
    width: float = 0.0              # outline / line width in reference pixels
    shadow: float = 1.0             # attenuation of everything behind it (1: none, 0.2: bone)
    part: str | None = None         # "head:0", "arms:1", ...: which labelled instance it belongs to
    closed: bool = True


def ellipse(cu, cv, au, av, angle=0.0, **kw) -> Shape:
    if angle:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        pts = _UNIT @ np.array([[au * c, au * s], [-av * s, av * c]]) + np.array([cu, cv])
    else:
        pts = _UNIT * np.array([au, av]) + np.array([cu, cv])
    return Shape(pts, **kw)


def line(p, q, width, **kw) -> Shape:
    return Shape(np.array([p, q], dtype=np.float64), width=width, closed=False, **kw)


def level_error(s: float, tilt: float, s0: float) -> float:
    """Distance of a cut from a plane in tolerance units: < 1 means the landmarks are in the section."""
    return math.hypot((s - s0) / TOL_S, tilt / TOL_TILT)


def transverse(s: float, tilt: float) -> tuple[list[Shape], str | None, tuple[float, float]]:
    """Shapes of a transverse cut at body level `s`, the plane it is at (None: no plane), and the
    section's half-size (lateral, front-back) that the placenta wraps around."""
    if s < 0.31:
        z = (s - S_BPD) / 0.16
        f = math.sqrt(max(0.06, 1.0 - z * z))
        return (*_head(s, tilt, z, f), (88.0 * f, 103.0 * f))
    if s < 0.72:
        a = float(np.interp(s, [0.31, 0.36, 0.42, 0.62, 0.72], [38, 52, 78, 82, 64]))
        return (*_trunk(s, tilt, a), (a, 0.95 * a))
    return (*_legs(s, tilt), (70.0, 90.0))


def _head(s, tilt, z, f):
    a, b = 88.0 * f, 103.0 * f
    out = [ellipse(0, 0, a, b, fill=0.16, edge=0.95, width=7, shadow=0.72, part="head:0")]
    if level_error(s, tilt, S_BPD) < 1.0:
        out += [line((0, -0.9 * b), (0, 0.9 * b), 3, edge=0.75),
                ellipse(-0.21 * a, 0.12 * b, 0.13 * a, 0.2 * b, fill=0.04, edge=0.3, width=2),
                ellipse(0.21 * a, 0.12 * b, 0.13 * a, 0.2 * b, fill=0.04, edge=0.3, width=2),
                ellipse(0, -0.4 * b, 0.08 * a, 0.1 * b, fill=0.02, edge=0.6, width=2)]
        return out, "BPD"
    if s < S_BPD and abs(z) < 0.75:             # above the thalami: ventricles and choroid plexus
        out += [line((0, -0.9 * b), (0, 0.9 * b), 3, edge=0.75)]
        for side in (-1, 1):
            out += [line((side * 0.3 * a, -0.5 * b), (side * 0.3 * a, 0.35 * b), 2, edge=0.55),
                    ellipse(side * 0.3 * a, 0.2 * b, 0.09 * a, 0.14 * b, fill=0.75)]
    elif s >= S_BPD and z < 0.8:                # skull base: orbits in front, cerebellum behind
        for side in (-1, 1):
            out += [ellipse(side * 0.36 * a, -0.72 * b, 0.15 * a, 0.13 * a, fill=0.04, edge=0.7, width=3),
                    ellipse(side * 0.12 * a, 0.55 * b, 0.11 * a, 0.1 * b, fill=0.12, edge=0.45, width=2)]
    return out, None


def _trunk(s, tilt, a):
    b = 0.95 * a
    out = [ellipse(0, 0, a, b, fill=0.40, edge=0.55, width=3, part="abdomen:0"),
           ellipse(0, 0.72 * b, 9, 8, fill=0.95, shadow=0.3)]
    out += [ellipse(side * 10, 0.9 * b, 4, 4, fill=0.9, shadow=0.4) for side in (-1, 1)]
    plane = None
    if 0.36 <= s < 0.47:                        # thorax: heart on the fetal left, ribs
        out += [ellipse(0.2 * a, -0.15 * b, 0.34 * a, 0.28 * b, 30, fill=0.07, edge=0.45, width=2),
                line((0.2 * a, -0.42 * b), (0.2 * a, 0.12 * b), 2, edge=0.4)]
        for side in (-1, 1):
            arc = _UNIT[[1, 2, 3, 4]] * (a * 0.95, b * 0.95) * (side, 1)
            out.append(Shape(arc, edge=0.85, width=4, shadow=0.5, closed=False))
    elif s >= 0.47:
        out.append(ellipse(-0.2 * a, -0.1 * b, 0.6 * a, 0.6 * b, fill=0.48))     # liver, fetal right
        if level_error(s, tilt, S_AC) < 1.0:
            out += [ellipse(0.38 * a, -0.02 * b, 0.24 * a, 0.17 * b, 20, fill=0.03, edge=0.55, width=3),
                    line((-0.02 * a, -0.92 * b), (-0.18 * a, -0.28 * b), 9, fill=0.04)]
            plane = "AC"
        elif s < S_AC:                          # above the AC level: stomach fundus, no umbilical vein
            out.append(ellipse(0.4 * a, 0.08 * b, 0.14 * a, 0.11 * b, fill=0.04, edge=0.5, width=2))
        elif s < 0.64:                          # below it: kidneys beside the spine, no stomach
            out += [ellipse(side * 0.32 * a, 0.45 * b, 0.16 * a, 0.22 * b, fill=0.2, edge=0.5, width=2)
                    for side in (-1, 1)]
        else:                                   # pelvis: bladder in front, iliac wings behind
            out.append(ellipse(0, -0.35 * b, 0.28 * a, 0.26 * a, fill=0.03, edge=0.4, width=2))
            out += [line((side * 0.25 * a, 0.75 * b), (side * 0.75 * a, 0.3 * b), 5, edge=0.9, shadow=0.45)
                    for side in (-1, 1)]
    if 0.34 <= s <= 0.58:                       # upper arms beside the trunk
        for i, side in enumerate((-1, 1)):
            out += [ellipse(side * (a + 24), 0.05 * b, 21, 21, fill=0.42, edge=0.5, width=2, part=f"arms:{i}"),
                    ellipse(side * (a + 24), 0.05 * b, 5, 5, fill=0.95, shadow=0.45)]
    return out, plane


def _legs(s, tilt):
    out = []
    if s < 0.9:                                 # flexed thigh: the femur lies in the transverse cut
        out.append(ellipse(30, -10, 38, 82, 8, fill=0.42, edge=0.5, width=3, part="legs:0"))
        if level_error(s, tilt, S_FL) < 1.0:
            out.append(line((38, 55), (22, -75), 7, edge=0.98, shadow=0.22))
            return out, "FL"
        e = min(1.0, level_error(s, tilt, S_FL) - 1.0)
        half = 65.0 * (0.55 - 0.3 * e)
        out += [line((30 + 0.12 * half, -10 + half), (30 - 0.12 * half, -10 - half), 6, edge=0.6, shadow=0.5),
                ellipse(-52, 20, 30, 30, fill=0.42, edge=0.5, width=2, part="legs:1"),
                ellipse(-52, 20, 7, 7, fill=0.95, shadow=0.35)]
        return out, None
    for i, side in enumerate((-1, 1)):          # lower legs: tibia and fibula in cross-section
        cu = side * 42
        out += [ellipse(cu, 0, 22, 20, fill=0.42, edge=0.5, width=2, part=f"legs:{i}"),
                ellipse(cu - 6, 2, 4, 4, fill=0.95, shadow=0.4), ellipse(cu + 7, -3, 3, 3, fill=0.9, shadow=0.5)]
    return out, None


@lru_cache(maxsize=1)
def longitudinal() -> tuple[Shape, ...]:
    """A sagittal cut of the whole fetus in (a, v): head, trunk with spine, folded arm and leg."""
    spine = [line((a0, 62 + 10 * ((a0 - 330) / 140) ** 2), (a0 + 8, 62 + 10 * ((a0 + 8 - 330) / 140) ** 2),
                  6, edge=0.9) for a0 in range(190, 470, 14)]
    shadow = Shape(np.array([[190, 66], [470, 66], [470, 62], [190, 62]], float), shadow=0.45)
    return (ellipse(200, 20, 40, 45, fill=0.40),
            ellipse(330, 5, 150, 78, fill=0.40, edge=0.55, width=3, part="abdomen:0"),
            ellipse(255, -15, 35, 28, fill=0.07, edge=0.45, width=2),
            ellipse(345, -10, 30, 18, fill=0.03, edge=0.5, width=2),
            ellipse(100, 0, 100, 90, fill=0.16, edge=0.95, width=7, shadow=0.72, part="head:0"),
            ellipse(110, 15, 14, 20, fill=0.7),
            shadow, *spine,
            ellipse(250, -120, 65, 20, 20, fill=0.42, edge=0.5, width=2, part="arms:0"),
            line((205, -136), (295, -104), 4, edge=0.85, shadow=0.5),
            ellipse(430, -95, 70, 30, -60, fill=0.42, edge=0.5, width=3, part="legs:0"),
            line((463, -37), (397, -153), 6, edge=0.9, shadow=0.3),
            ellipse(470, -175, 75, 24, 10, fill=0.42, edge=0.5, width=2, part="legs:0"),
            line((410, -185), (530, -164), 4, edge=0.85, shadow=0.5))


@lru_cache(maxsize=128)
def uterus(longitudinal_cut: bool, a: int = 80, b: int = 76) -> tuple[Shape, ...]:
    """Amniotic fluid, and the placenta on the wall that hugs the fetal left-front of an `a` x `b`
    section (longitudinal: the front of the head). Fixed to the phantom, so it turns with the fetus:
    the cue to head up/down in a transverse cut."""
    if longitudinal_cut:
        return (ellipse(300, -20, 430, 270, fill=0.06),
                Shape(np.array([[-20, -165], [180, -160], [180, -128], [-20, -130]], float), fill=0.55))
    th = np.radians(np.linspace(20.0, 70.0, 11))          # from the fetal left (+u) toward the front (-v)
    r = a * b / np.hypot(b * np.cos(th), a * np.sin(th))   # the section's outline in that direction
    arc = np.concatenate([np.stack([(r + 12) * np.cos(th), -(r + 12) * np.sin(th)], 1),
                          np.stack([(r + 44) * np.cos(th[::-1]), -(r + 44) * np.sin(th[::-1])], 1)])
    return ellipse(0, -20, 300, 270, fill=0.06), Shape(arc, fill=0.55)
