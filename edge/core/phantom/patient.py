"""What differs between two phantom fetuses scanned on two days: one `Patient` per stream.

Drawn from a seed (`draw_patient(seed)`: the same seed, the same patient), bounded by `BOUNDS`, which
docs/FIGURES.md tabulates and the tests check. `Patient()` is the reference fetus (23 weeks, 12 cm deep,
no pressure, no artefacts) that the geometry is drawn for::

    >>> p = draw_patient(3)
    >>> p == draw_patient(3), p == draw_patient(4)
    (True, False)
    >>> BOUNDS["ga_weeks"][0] <= p.ga_weeks <= BOUNDS["ga_weeks"][1]
    True

Anatomy (size and proportions) is applied by `edge.core.phantom.scene.layout`, so every label follows
it; imaging (depth setting, pressure, gain, TGC, speckle, artefacts) changes the picture only, or the
geometry the labels are derived from (depth, pressure), never a label by itself.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

REF_GA = 23.0                   # the FPUS23 phantom's gestational age
GRAINS = (0.8, 0.9, 1.0, 1.12, 1.25)

# parameter: (low, high) of the drawn value; every draw lies inside (tests/edge/core/test_phantom.py)
BOUNDS = {
    "ga_weeks": (20.5, 25.5),       # gestational age: overall size, head/trunk/limb proportions, bone
    "growth": (0.95, 1.05),         # individual growth (percentile), on top of the age's size
    "head": (0.95, 1.06),           # head size relative to the body (age trend included)
    "trunk": (0.93, 1.07),          # trunk (abdominal circumference) relative to the body
    "limbs": (0.93, 1.07),          # limbs (femur) relative to the body
    "cephalic": (0.94, 1.04),       # head width / front-back (cephalic index 0.80..0.89)
    "depth_cm": (10.0, 14.5),       # imaging depth setting (reference 12 cm): zooms the scene in the fan
    "offset": (-15.0, 25.0),        # fetus deeper (+) or shallower (-) than the reference, reference px
    "pressure": (0.0, 0.35),        # probe pressure: near-field compression fraction at the skin
    "gain": (0.9, 1.4),             # overall gain
    "tgc": (0.8, 1.2),              # each of 4 TGC sliders (skin .. bottom of the fan)
    "attenuation": (1.35, 2.1),     # depth attenuation (reference 1.7 per fan depth)
    "speckle": (0.65, 1.0),         # speckle contrast (1: fully developed)
    "grain": (GRAINS[0], GRAINS[-1]),   # speckle size (one of GRAINS)
    "tissue": (0.27, 0.40),         # maternal tissue echo (reference 0.33)
    "fluid": (0.03, 0.09),          # amniotic fluid echo (reference 0.06)
    "placenta": (0.45, 0.65),       # placenta echo (reference 0.55)
    "soft": (0.9, 1.1),             # fetal soft-tissue echo factor
    "bone": (0.8, 1.1),             # bone echo factor (older: brighter)
    "shadow": (0.7, 1.25),          # acoustic shadow depth behind bone (1: reference)
    "reverb": (0.0, 0.22),          # reverberation band strength near the probe (0: none)
    "reverb_gap": (0.035, 0.07),    # reverberation spacing, fraction of the fan depth
    "dropout": (0.0, 0.65),         # contact dropout depth at one fan edge (0: none)
    "dropout_deg": (5.0, 13.0),     # its angular width
}


@dataclass(frozen=True)
class Patient:
    """One fetus on one day; defaults are the reference fetus (no variation, no artefacts)."""

    ga_weeks: float = REF_GA
    growth: float = 1.0
    head: float = 1.0
    trunk: float = 1.0
    limbs: float = 1.0
    cephalic: float = 1.0
    depth_cm: float = 12.0
    offset: float = 0.0
    pressure: float = 0.0
    gain: float = 1.0
    tgc: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    attenuation: float = 1.7
    speckle: float = 1.0
    grain: float = 1.0
    tissue: float = 0.33
    fluid: float = 0.06
    placenta: float = 0.55
    soft: float = 1.0
    bone: float = 1.0
    shadow: float = 1.0
    reverb: float = 0.0
    reverb_gap: float = 0.05
    dropout: float = 0.0
    dropout_deg: float = 9.0
    dropout_side: int = 1           # -1: image left edge, 1: right

    @property
    def size(self) -> float:
        """Overall fetal size against the reference: biometry grows ~5.5% a week around 23 weeks."""
        return (1.0 + 0.055 * (self.ga_weeks - REF_GA)) * self.growth

    @property
    def zoom(self) -> float:
        """Scene scale from the depth setting: a deeper setting shows everything smaller."""
        return 12.0 / self.depth_cm

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def draw_patient(*key: int) -> Patient:
    """The patient of stream `key` (a sweep's seed; sample() uses (seed, 4004, block))."""
    rng = np.random.default_rng([*key, 0xFE7A])
    u = lambda name: float(rng.uniform(*BOUNDS[name]))
    ga = u("ga_weeks")
    age = (ga - REF_GA) / 2.5                                       # -1 .. 1
    jitter = lambda lo, hi, trend, spread: float(np.clip(1.0 + trend * age + rng.uniform(-spread, spread),
                                                         lo, hi))
    reverb = u("reverb") if rng.random() < 0.6 else 0.0             # most scans show some reverberation
    dropout = u("dropout") if rng.random() < 0.35 else 0.0          # occasional poor contact
    return Patient(
        ga_weeks=ga, growth=u("growth"),
        head=jitter(*BOUNDS["head"], -0.025, 0.03), trunk=jitter(*BOUNDS["trunk"], 0.02, 0.05),
        limbs=jitter(*BOUNDS["limbs"], 0.03, 0.04), cephalic=u("cephalic"),
        depth_cm=u("depth_cm"), offset=u("offset"), pressure=u("pressure"), gain=u("gain"),
        tgc=tuple(float(v) for v in rng.uniform(*BOUNDS["tgc"], size=4)), attenuation=u("attenuation"),
        speckle=round(u("speckle"), 2), grain=float(GRAINS[rng.integers(len(GRAINS))]),
        tissue=u("tissue"), fluid=u("fluid"), placenta=u("placenta"), soft=u("soft"),
        bone=float(np.clip(0.95 + 0.1 * age + rng.uniform(-0.05, 0.05), *BOUNDS["bone"])),
        shadow=u("shadow"), reverb=reverb, reverb_gap=u("reverb_gap"), dropout=dropout,
        dropout_deg=u("dropout_deg"), dropout_side=int(rng.choice([-1, 1])))
