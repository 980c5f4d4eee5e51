"""Where the fetus lies in the probe's fan, and every label that follows from it.

One `View` (fetus orientation, probe direction, body level, tilt, position) is the whole truth of a
frame: `layout(view)` turns it into shapes in reference-frame pixels *and* the labels, so the plane,
orientation, anatomy in view and boxes can never disagree with the picture::

    >>> lay = layout(View(orientation="hdvb", probe="h", s=S_AC))
    >>> lay.plane, lay.anatomy
    ('AC', ('arms', 'abdomen'))

Orientation is visible: with the probe held transverse (``h``) the spine lies on the probe side for
"view back" and far from it for "view front", and head up/down mirrors the section (the stomach, heart
and placenta are on the fetal left); held longitudinal (``v``) the head is on the image left for head up.
A horizontal flip of the image is therefore the same scene with head up and down swapped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.core.phantom.anatomy import BODY_LEN, S_AC, Shape, longitudinal, transverse, uterus
from edge.core.phantom.patient import Patient

ORIENTATIONS = ("hdvb", "hdvf", "huvb", "huvf")
PARTS = ("head", "arms", "legs", "abdomen")
REF_W, REF_H = 672.0, 389.0                       # the FPUS23 frame the geometry is drawn in
APEX_X, APEX_Y, R0, R1, HALF_ANGLE = 336.0, -60.0, 75.0, 445.0, math.radians(37.0)
_PLANE_PART = {"BPD": "head:0", "AC": "abdomen:0", "FL": "legs:0"}


@dataclass(frozen=True)
class View:
    """The probe and the fetus for one frame; distances in reference pixels, angles in degrees."""

    orientation: str = "hdvb"     # hd|hu (head down/up) + vb|vf (view back/front)
    probe: str = "h"              # h: transverse cut, v: longitudinal cut
    s: float = S_AC               # body level cut (h) or centre of the view along the body (v), 0..1
    tilt: float = 0.0             # out-of-plane tilt of the probe
    roll: float = 0.0             # in-plane rotation of the section
    dx: float = 0.0               # body axis offset from the fan's centre line
    depth: float = 205.0          # body axis depth below the top of the frame
    scale: float = 1.0
    patient: Patient | None = None  # the fetus and the day (size, depth setting, pressure, echoes); None: reference


@dataclass
class Layout:
    shapes: list[Shape]                                   # reference-frame pixels, drawing order
    plane: str
    anatomy: tuple[str, ...]
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # reference px


def orientation_signs(orientation: str, probe: str) -> tuple[float, float]:
    """(side, post): image-x sign of the fetal left (h) or of the feet (v); image-y sign of the back."""
    head_up, back = orientation[1] == "u", orientation[3] == "b"
    post = -1.0 if back else 1.0                     # view back: the spine faces the probe (image top)
    up = 1.0 if head_up else -1.0
    return (up if probe == "v" else up * post), post


def flip_orientation(orientation: str) -> str:
    """The orientation label of a horizontally flipped frame: head up and head down swap."""
    return orientation[0] + {"u": "d", "d": "u"}[orientation[1]] + orientation[2:]


def in_sector(pts: np.ndarray) -> np.ndarray:
    """Which reference-pixel points lie inside the fan (and the frame)."""
    dx, dy = pts[:, 0] - APEX_X, pts[:, 1] - APEX_Y
    r = np.hypot(dx, dy)
    ok = (r >= R0) & (r <= R1) & (np.abs(np.arctan2(dx, dy)) <= HALF_ANGLE)
    return ok & (pts[:, 0] >= 0) & (pts[:, 0] <= REF_W) & (pts[:, 1] >= 0) & (pts[:, 1] <= REF_H)


def layout(view: View) -> Layout:
    """Place the section for `view` in the fan and derive plane, anatomy in view and boxes.

    The patient's anatomy (size, proportions), depth setting and probe pressure move the shapes
    before the boxes and the in-view test are taken from them, so the labels follow the picture."""
    pt = view.patient or _REFERENCE
    if view.probe == "h":
        body, plane, (a, b) = transverse(view.s, view.tilt)
        fx, fy = _proportions(pt, view.s)
        a, b = a * fx, b * fy
        wall = uterus(False, round(a), round(b))
        shift, stretch = 0.0, 1.0 + 1.5 * math.sin(math.radians(abs(view.tilt)))
    elif view.probe == "v":
        body, plane, wall = longitudinal(), None, uterus(True)
        fx, fy = 1.0, 1.0
        shift, stretch = view.s * BODY_LEN, 1.0 / math.cos(math.radians(min(abs(view.tilt), 60.0)))
    else:
        raise ValueError(f"probe must be 'h' or 'v', got {view.probe!r}")
    side, post = orientation_signs(view.orientation, view.probe)
    c, s = math.cos(math.radians(view.roll)), math.sin(math.radians(view.roll))
    scale = view.scale * pt.size
    m = np.array([[c, -s], [s, c]]) @ np.diag([side * stretch * scale, post * scale])
    origin = np.array([APEX_X + view.dx, view.depth + pt.offset])
    source = [*wall, *body]
    sizes = np.cumsum([len(sh.pts) for sh in source])[:-1]
    pts = np.concatenate([sh.pts for sh in source])
    if (fx, fy) != (1.0, 1.0):                        # the section's own proportions (head, trunk, limbs)
        pts[sum(len(sh.pts) for sh in wall):] *= (fx, fy)
    pts = (pts - (shift, 0.0)) @ m.T + origin
    if pt.zoom != 1.0:                                # depth setting: zoom about the skin under the probe
        pts = _SKIN + (pts - _SKIN) * pt.zoom
    if pt.pressure > 0.0:
        pts = compress_near_field(pts, pt.pressure)
    moved = np.split(pts, sizes)
    width = view.scale * pt.zoom
    shapes = []
    for k, (sh, p) in enumerate(zip(source, moved)):
        fill, edge, shadow = _echo(pt, sh, k < len(wall))
        shapes.append(Shape(p, fill, edge, sh.width * width, shadow, sh.part, sh.closed))
    visible, boxes = _visible_parts(shapes)
    if plane is not None and visible.get(_PLANE_PART[plane], 0.0) < 0.97:
        plane = None                                  # a partial view of the plane is no plane
    anatomy = tuple(p for p in PARTS if any(b[0] == p for b in boxes))
    return Layout(shapes, plane or "no plane", anatomy, boxes)


_REFERENCE = Patient()
_SKIN = np.array([APEX_X, APEX_Y + R0])
PRESSURE_DEPTH = 70.0                             # reference px over which probe pressure fades out


def compress_near_field(pts: np.ndarray, pressure: float) -> np.ndarray:
    """Probe pressure: tissue just under the skin is squeezed by `pressure` (a fraction), fading with
    depth, so everything deeper moves up by up to `pressure` x PRESSURE_DEPTH along the beam."""
    d = pts - (APEX_X, APEX_Y)
    r = np.hypot(d[:, 0], d[:, 1])
    under = np.maximum(r - R0, 0.0)
    shift = pressure * PRESSURE_DEPTH * (1.0 - np.exp(-under / PRESSURE_DEPTH))
    return pts - d * (shift / np.maximum(r, 1e-6))[:, None]


def _fan_edge(step: float = 3.0) -> np.ndarray:
    """Points every `step` reference pixels along the fan's outline, clipped to the frame."""
    arc = lambda r: np.stack([APEX_X + r * np.sin(th), APEX_Y + r * np.cos(th)], 1)
    th = np.linspace(-HALF_ANGLE, HALF_ANGLE, int(2 * HALF_ANGLE * R1 / step))
    rays = np.linspace(R0, R1, int((R1 - R0) / step))
    sides = [np.stack([APEX_X + rays * math.sin(a), APEX_Y + rays * math.cos(a)], 1) for a in (-HALF_ANGLE, HALF_ANGLE)]
    pts = np.concatenate([arc(R0), arc(R1), *sides])
    pts[:, 0] = np.clip(pts[:, 0], 0.0, REF_W)
    pts[:, 1] = np.clip(pts[:, 1], 0.0, REF_H)
    return pts


def _inside_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of points against a closed polygon."""
    x, y = pts[:, :1], pts[:, 1:]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    cross = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-9, y1 - y0))
    return cross.sum(axis=1) % 2 == 1


_FAN_EDGE = _fan_edge()


def _proportions(pt: Patient, s: float) -> tuple[float, float]:
    """Scale of a transverse section at level `s` against the whole body (head, trunk or limbs)."""
    if s < 0.31:
        return pt.head * pt.cephalic, pt.head
    return (pt.trunk, pt.trunk) if s < 0.72 else (pt.limbs, pt.limbs)


def _echo(pt: Patient, sh: Shape, wall: bool) -> tuple[float, float, float]:
    """(fill, edge, shadow) of a shape for this patient: fluid, placenta, soft tissue and bone echoes."""
    fill, edge, shadow = sh.fill, sh.edge, sh.shadow
    if pt is _REFERENCE:
        return fill, edge, shadow
    if wall:
        return (pt.fluid if fill < 0.2 else pt.placenta), edge, shadow
    if 0.3 <= fill <= 0.6:
        fill *= pt.soft
    elif fill >= 0.85:
        fill = min(1.0, fill * pt.bone)
    if edge >= 0.8:
        edge = min(1.0, edge * pt.bone)
    if shadow < 1.0:
        shadow = min(1.0, max(0.05, 1.0 - (1.0 - shadow) * pt.shadow))
    return fill, edge, shadow


def _visible_parts(shapes: list[Shape]):
    """Visible fraction per part instance, and boxes of the parts that are in view enough.

    A part's outline plus two shrunken copies of it stand in for its area (cheap and size-free)."""
    tagged = [sh for sh in shapes if sh.part and sh.closed]
    if not tagged:
        return {}, []
    pts = np.stack([sh.pts for sh in tagged])                       # all outlines have the same count
    c = pts.mean(axis=1, keepdims=True)
    rings = np.concatenate([pts, c + 0.6 * (pts - c), c + 0.25 * (pts - c)], axis=1)
    inside = in_sector(rings.reshape(-1, 2)).reshape(rings.shape[:2])
    visible, boxes = {}, []
    for part in dict.fromkeys(sh.part for sh in tagged):
        idx = [i for i, sh in enumerate(tagged) if sh.part == part]
        ok = inside[idx].ravel()
        visible[part] = float(ok.mean())
        if visible[part] < 0.3:
            continue
        sel = rings[idx].reshape(-1, 2)[ok]
        if visible[part] < 1.0:                   # cut by the fan's edge: the edge bounds it there
            edge = _FAN_EDGE[np.logical_or.reduce([_inside_polygon(_FAN_EDGE, pts[i]) for i in idx])]
            sel = np.concatenate([sel, edge])
        (x0, y0), (x1, y1) = sel.min(axis=0), sel.max(axis=0)
        if x1 - x0 >= 8 and y1 - y0 >= 8:
            boxes.append((part.split(":")[0], float(x0), float(y0), float(x1), float(y1)))
    boxes.sort(key=lambda b: (PARTS.index(b[0]), b[1]))
    return visible, boxes
