"""Temporal logic over a classifier's per-frame confidences: a stable plane state and "plane found" events.

A probe sweeping through a plane gives confidences that flicker from frame to frame; the raw argmax
flips between neighbours. `Hysteresis` turns them into a state that changes only on evidence:

- confidences are first smoothed (exponential moving average, `smooth` = weight of the past);
- the state *enters* a class when that class's smoothed confidence is >= `enter` (and it is the top
  foreground class) for `min_frames` consecutive frames;
- it *leaves* when that class's smoothed confidence drops below `leave` (`leave` <= `enter`: the gap
  is the hysteresis), or when another class has met the entry rule meanwhile;
- each crossing (enter .. leave) ends in one event, {"event": "plane_found", ...}, carrying its first
  and last frame indices and its best frame (the highest smoothed confidence of the state's class:
  index, capture time, confidence and the frame's `info`); a crossing still open when the run ends
  is closed by `finish()` (`"closed_by": "end of run"`).

The settings come from the manifest's `postprocess.hysteresis` (written by export for plane models,
bounds in runtime/manifest.schema.json); a model without that block is not tracked (today's
behaviour) unless `edgekit run --enter/--leave` asks for it on a plane model. Pure numpy.

    >>> h = Hysteresis(["AC", "BPD", "FL", "no plane"], enter=0.6, leave=0.4, min_frames=2)
    >>> [h.update(np.array(p), i, float(i), {})[0] for i, p in enumerate(
    ...     [[.7, .1, .1, .1], [.8, .1, .0, .1], [.5, .2, .1, .2], [.1, .1, .1, .7]])]
    ['no plane', 'AC', 'AC', 'no plane']
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.core.errors import BadInputError
from edge.core.tasks import SINGLE_LABEL
from runtime.manifest_check import MIN_FRAMES_MAX  # the schema's bound: one place

EVENT = "plane_found"
DEFAULTS = {"enter": 0.6, "leave": 0.4, "min_frames": 2}
BACKGROUND = "no plane"      # the plane task's "not in a plane" class; never a state to enter
PLANE_TASKS = ("plane",)     # tasks `--enter/--leave` switch tracking on for, when a bundle has no block


def check_settings(enter, leave, min_frames, smooth=0.0, where: str = "hysteresis") -> None:
    """Refuse impossible settings in one line: 0 <= leave <= enter <= 1, min_frames 1..100, smooth in [0, 1)."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)

    if not (number(enter) and number(leave) and 0 <= leave <= enter <= 1):
        raise BadInputError(f"{where}: need 0 <= leave <= enter <= 1, got enter={enter!r} leave={leave!r}")
    if not (isinstance(min_frames, int) and not isinstance(min_frames, bool) and 1 <= min_frames <= MIN_FRAMES_MAX):
        raise BadInputError(f"{where}: min_frames must be an integer 1..{MIN_FRAMES_MAX}, got {min_frames!r}")
    if not (number(smooth) and 0 <= smooth < 1):
        raise BadInputError(f"{where}: smooth must be in [0, 1) (weight of the past; 0 = off), got {smooth!r}")


def settings_for(entry, overrides: dict | None = None) -> dict | None:
    """The hysteresis settings a model runs with, or None (not tracked): the manifest's block, with
    `overrides` (enter, leave, min_frames, smooth; None values ignored) on top. Overrides switch
    tracking on for a single-label plane model whose bundle has no block."""
    block = (entry.postprocess or {}).get("hysteresis")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if block is None and not (overrides and entry.kind == SINGLE_LABEL and entry.task in PLANE_TASKS):
        return None
    settings = {**DEFAULTS, "smooth": 0.0, **(block or {}), **overrides}
    check_settings(settings["enter"], settings["leave"], settings["min_frames"], settings["smooth"],
                   where=f"model {entry.name!r} hysteresis")
    return settings


@dataclass
class _Crossing:
    label: str
    cls: int
    start: int
    end: int
    best: dict
    best_conf: float        # unrounded, for the comparison (best["confidence"] is rounded for output)


class Hysteresis:
    """The state machine of one model; `update` per frame, `finish` at the end of a run."""

    def __init__(self, labels, enter: float, leave: float, min_frames: int, smooth: float = 0.0,
                 model: str = "", background: str | None = None):
        check_settings(enter, leave, min_frames, smooth)
        self.labels = list(labels)
        self.enter, self.leave, self.min_frames, self.smooth = float(enter), float(leave), int(min_frames), float(smooth)
        self.model = model
        bg = background if background is not None else (BACKGROUND if BACKGROUND in self.labels else None)
        self.background = bg
        self._fg = np.array([i for i, n in enumerate(self.labels) if n != bg], np.int64)
        self.reset()

    def reset(self) -> None:
        self._ema: np.ndarray | None = None
        self._current: _Crossing | None = None
        self._candidate: _Crossing | None = None   # the foreground class building its min_frames streak
        self._streak = 0

    @property
    def state(self) -> str | None:
        """The class the loop is in, or the background label (None for a model without one)."""
        return self._current.label if self._current else self.background

    def _smoothed(self, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, np.float64).reshape(-1)
        if self.smooth <= 0 or self._ema is None or self._ema.shape != probs.shape:
            self._ema = probs
        else:
            self._ema = self.smooth * self._ema + (1.0 - self.smooth) * probs
        return self._ema

    @staticmethod
    def _frame(index: int, t: float, conf: float, info) -> dict:
        return {"index": int(index), "t": round(float(t), 6), "confidence": round(conf, 5),
                "frame": dict(info) if info else {"index": int(index)}}

    def update(self, probs, index: int, t: float, info=None) -> tuple[str | None, float | None, list[dict]]:
        """One frame's confidences (in label order) -> (state, its smoothed confidence, events ended here)."""
        p = self._smoothed(probs)
        events: list[dict] = []
        if not len(self._fg) or len(p) != len(self.labels):
            return self.state, None, events
        finite = np.where(np.isfinite(p), p, -np.inf)
        top = int(self._fg[np.argmax(finite[self._fg])])
        top_conf = float(finite[top])
        # the entry rule: the top foreground class >= enter for min_frames consecutive frames
        if top_conf >= self.enter and not (self._current and self._current.cls == top):
            if self._candidate is None or self._candidate.cls != top:
                self._candidate, self._streak = _Crossing(self.labels[top], top, index, index,
                                                          self._frame(index, t, top_conf, info), top_conf), 0
            self._streak += 1
            c = self._candidate
            c.end = index
            if top_conf > c.best_conf:
                c.best, c.best_conf = self._frame(index, t, top_conf, info), top_conf
        else:
            self._candidate, self._streak = None, 0
        cur = self._current
        if cur is not None:
            conf = float(finite[cur.cls])
            if conf < self.leave or (self._candidate is not None and self._streak >= self.min_frames):
                events.append(self._event(cur, "left"))
                self._current = cur = None
            else:
                cur.end = index
                if conf > cur.best_conf:
                    cur.best, cur.best_conf = self._frame(index, t, conf, info), conf
        if cur is None and self._candidate is not None and self._streak >= self.min_frames:
            self._current, self._candidate, self._streak = self._candidate, None, 0
        state_conf = float(p[self._current.cls]) if self._current else (
            float(p[self.labels.index(self.background)]) if self.background is not None else None)
        return self.state, state_conf, events

    def finish(self) -> list[dict]:
        """Close a crossing still open (the run ended inside a plane); the tracker starts afresh."""
        events = [self._event(self._current, "end of run")] if self._current else []
        self.reset()
        return events

    def _event(self, c: _Crossing, closed_by: str) -> dict:
        return {"event": EVENT, "model": self.model, "label": c.label, "start": int(c.start), "end": int(c.end),
                "best": dict(c.best), "closed_by": closed_by}


def describe_event(e: dict) -> str:
    """`plane FL: frames 12-40, best #25 (0.93)`: one event for a console line or the overlay."""
    return (f"{e['model']} {e['label']}: frames {e['start']}-{e['end']}, best #{e['best']['index']} "
            f"({e['best']['confidence']:.2f})")
