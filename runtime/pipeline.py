"""The multi-model pipeline: one frame in, one `Result` out with every bundled model's answer.

Each model gets the manifest's own preprocessing (`edge.core.preprocess.preprocess`, the implementation
training used: the uint8 frame resized as it is, grey and normalisation on the small image; models
with identical specs share one input per frame), batch-1 inference on the chosen backend and
postprocessing by kind, and every stage is timed so the summary can say where the milliseconds go::

    >>> with Pipeline(load_bundle("bundle"), backend="auto") as pipe:      # doctest: +SKIP
    ...     result = pipe.process(frame)
    ...     result.outputs["plane"].label, result.latency_ms
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from edge.core.errors import BadInputError, FileFormatError, UnsupportedError
from edge.core.preprocess import preprocess
from edge.core.tasks import DETECTION
from runtime.backends import create_backend, pick_backend
from runtime.bundle import Bundle, ModelEntry
from runtime.postprocess import (Geometry, ModelOutput, activate, class_scores, detections,
                                 fill_classification, localise)
from runtime.sources import Frame
from runtime.temporal import Hysteresis, settings_for


@dataclass
class Result:
    """One frame's answers, per-stage timings (ms, per model) and when it was captured and finished."""

    index: int
    t: float                      # capture time, time.monotonic()
    started: float                # when the pipeline took the frame
    done: float = 0.0
    outputs: dict[str, ModelOutput] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)   # crossings that ended at this frame (runtime.temporal)
    capture_ms: float = 0.0       # reading the frame from its source (capture thread; `Frame.capture_ms`)
    queued_ms: float = 0.0        # of `wait_ms`, the part inference was still busy with the frame before
    outputs_ms: float = 0.0       # writing it to the outputs, after `done`
    # (queued_ms and outputs_ms are set by `runtime.loop.run_loop`)

    @property
    def latency_ms(self) -> float:
        """End to end: capture timestamp to result."""
        return (self.done - self.t) * 1e3

    @property
    def wait_ms(self) -> float:
        """How old the frame was when inference took it (the staleness the mailbox bounds)."""
        return (self.started - self.t) * 1e3

    def to_dict(self) -> dict:
        return {"index": self.index, "t": round(self.t, 6), "latency_ms": round(self.latency_ms, 3),
                "wait_ms": round(self.wait_ms, 3),
                "models": {k: v.to_dict() for k, v in self.outputs.items()},
                "timings_ms": {k: {s: round(v, 3) for s, v in d.items()} for k, d in self.timings.items()}}


class ModelRunner:
    """One bundled model: preprocess -> infer -> postprocess, with optional confidence smoothing and,
    where the manifest's postprocess has a `hysteresis` block (or `hysteresis` overrides ask for it on
    a plane model), a stable state with "plane found" events (`runtime.temporal`)."""

    def __init__(self, entry: ModelEntry, backend, smooth: float = 0.0, hysteresis: dict | None = None):
        if len(entry.inputs) != 1:
            raise UnsupportedError(f"model {entry.name!r} has {len(entry.inputs)} inputs; the pipeline feeds "
                                   f"one image input")
        self.entry, self.backend, self.smooth = entry, backend, float(smooth)
        self.input = entry.inputs[0]
        self.input_hw = tuple(int(v) for v in entry.preprocess["resize"])
        static_hw = self.input.shape[-2:]
        if all(isinstance(d, int) and d > 0 for d in static_hw) and tuple(static_hw) != self.input_hw:
            raise FileFormatError(f"model {entry.name!r}: input {self.input.name} is {list(self.input.shape)} but "
                                  f"preprocess.resize is {list(self.input_hw)}; re-export the bundle")
        self.threshold = float(entry.postprocess.get("threshold", 0.5))
        self.cam_threshold = float(entry.postprocess.get("cam_threshold", 0.5))
        self._ema: np.ndarray | None = None
        settings = settings_for(entry, hysteresis)
        self.tracker = None if settings is None else Hysteresis(entry.labels, model=entry.name, **settings)
        self._spec_key = json.dumps(entry.preprocess, sort_keys=True)
        self._dtype = np.dtype(self.input.dtype)
        channels = self.input.shape[1] if len(self.input.shape) == 4 else None
        self._channels = channels if isinstance(channels, int) else None
        # what the hot path reads from the manifest, looked up once
        self._logits, self._cam = entry.output("logits"), entry.output("cam")
        self._boxes = entry.output("boxes") if entry.kind == DETECTION else None
        self._scores, self._labels = entry.output("scores"), entry.output("labels")
        self._activation = entry.postprocess.get("activation")
        self._geometry: tuple[tuple, Geometry] | None = None   # (frame shape, its mapping): sources keep theirs

    def _smoothed(self, probs: np.ndarray) -> np.ndarray:
        """Exponential moving average: weight `smooth` on the past, so labels don't flicker."""
        if self.smooth <= 0 or self._ema is None or self._ema.shape != probs.shape:
            self._ema = probs
        else:
            self._ema = self.smooth * self._ema + (1.0 - self.smooth) * probs
        return self._ema

    def probe_frame(self) -> np.ndarray:
        """A blank frame this model's preprocessing accepts (covers its ROI), to check the feed once."""
        roi = self.entry.preprocess.get("roi")
        h, w = (roi[1], roi[3]) if roi else self.input_hw
        return np.zeros((h, w) if self.entry.preprocess.get("grey", True) else (h, w, 3), np.uint8)

    def feed(self, image: np.ndarray, cache: dict | None = None) -> dict[str, np.ndarray]:
        """The model's input for `image`; models with the same preprocess spec share one `cache` entry."""
        x = None if cache is None else cache.get(self._spec_key)
        if x is None:
            try:
                x = preprocess(image, self.entry.preprocess)[None]
            except BadInputError as exc:  # a ROI off this source's frames: say which model's
                raise BadInputError(f"model {self.entry.name!r}: {exc}") from None
            if cache is not None:
                cache[self._spec_key] = x
        if self._channels is not None and x.shape[1] != self._channels:  # a grey source into a colour model
            raise BadInputError(f"model {self.entry.name!r} takes {self._channels}-channel frames but this source "
                                f"gives {x.shape[1]}-channel ones (frame {list(image.shape)}); use a "
                                f"{'colour' if self._channels == 3 else 'grey'} source")
        return {self.input.name: x if x.dtype == self._dtype else x.astype(self._dtype)}

    def geometry(self, image_shape) -> Geometry:
        """`Geometry.of` this frame shape, kept while the source's frames keep their shape."""
        shape = tuple(image_shape[:2])
        if self._geometry is None or self._geometry[0] != shape:
            self._geometry = (shape, Geometry.of(shape, self.entry.preprocess))
        return self._geometry[1]

    def answer(self, image_shape, outputs: dict) -> tuple[ModelOutput, np.ndarray | None]:
        """(the model's answer in frame pixels, the smoothed class confidences or None: a detector that
        found boxes has none)."""
        e = self.entry
        out = ModelOutput(e.name, e.kind)
        probs = None
        geometry = self.geometry(image_shape)
        logits, cam = self._logits, self._cam
        if self._boxes is not None:
            out.boxes = detections(outputs[self._boxes.name], outputs[self._scores.name],
                                   outputs[self._labels.name], e.labels, geometry, self.threshold)
            if out.boxes:
                out.label, out.confidence = out.boxes[0]["label"], out.boxes[0]["score"]
        if logits is not None or cam is not None:
            scores = class_scores(outputs, logits and logits.name, cam and cam.name)
            probs = self._smoothed(activate(scores, e.kind, self._activation))
            if e.kind != DETECTION or not out.boxes:
                fill_classification(out, probs, e.labels, self.threshold)
            if cam is not None:
                top = int(np.argmax(probs))
                out.heatmap, out.cam_box = localise(outputs[cam.name], top, geometry, self.input_hw,
                                                    self.cam_threshold)
                out.heatmap_region = geometry.region
        return out, probs

    def track(self, out: ModelOutput, frame: Frame | None, probs: np.ndarray | None) -> None:
        """Feed this frame's confidences (`answer`'s) to the hysteresis tracker: its state goes into
        `out`, and the events of a crossing that ended here into `out.events`."""
        if self.tracker is None or frame is None:
            return
        out.tracked = True
        if probs is None:                  # a detector that found boxes: no class confidences this frame
            out.state = self.tracker.state
            return
        out.state, out.state_confidence, out.events = self.tracker.update(probs, frame.index, frame.t, frame.info)

    def finish(self) -> list[dict]:
        """The events still open at the end of a run (see `Hysteresis.finish`)."""
        return self.tracker.finish() if self.tracker is not None else []

    def __call__(self, image: np.ndarray, timings: dict, cache: dict | None = None,
                 frame: Frame | None = None) -> ModelOutput:
        t0 = time.perf_counter()
        feed = self.feed(image, cache)
        t1 = time.perf_counter()
        outputs = self.backend.infer(feed, check=False)
        t2 = time.perf_counter()
        out, probs = self.answer(image.shape, outputs)
        self.track(out, frame, probs)
        t3 = time.perf_counter()
        timings[self.entry.name] = {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3,
                                    "postprocess": (t3 - t2) * 1e3}
        return out


class Pipeline:
    """Every model of a bundle on one backend (`auto` picks it and says why in `backend_reason`).

    `hysteresis` overrides the manifest's `postprocess.hysteresis` settings (enter, leave, min_frames,
    smooth; None keeps the manifest's) and switches tracking on for a plane model without them."""

    def __init__(self, bundle: Bundle, backend: str = "auto", smooth: float = 0.0, models=None,
                 hysteresis: dict | None = None):
        if not 0.0 <= float(smooth) < 1.0:
            raise BadInputError(f"smoothing must be in [0, 1) (weight of the past; 0 = off), got {smooth}")
        self.bundle = bundle
        self.backend_name, self.backend_reason = pick_backend(backend, bundle)
        entries = [bundle.model(n) for n in models] if models else list(bundle.models)
        self.runners = [ModelRunner(e, create_backend(self.backend_name, e), smooth, hysteresis) for e in entries]

    def activate(self) -> "Pipeline":
        for r in self.runners:
            r.backend.activate()
        for r in self.runners:  # check each feed once here, so the hot loop can skip the checks
            r.backend.check_feed(r.feed(r.probe_frame()))
        return self

    def deactivate(self) -> None:
        for r in self.runners:
            r.backend.deactivate()

    def __enter__(self) -> "Pipeline":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def process(self, frame: Frame) -> Result:
        result = Result(frame.index, frame.t, time.monotonic(), capture_ms=getattr(frame, "capture_ms", 0.0))
        cache: dict = {}  # this frame's shared preprocessing (FPUS23 models share their spec)
        image = frame.image
        for runner in self.runners:
            out = runner(image, result.timings, cache, frame)
            result.outputs[runner.entry.name] = out
            result.events.extend(out.events)
        result.done = time.monotonic()
        return result

    def finish(self) -> list[dict]:
        """End of a run: every tracked model's crossing still open, as events; the trackers start afresh."""
        return [e for r in self.runners for e in r.finish()]

    def device_memory(self) -> dict | None:
        return next((m for m in (r.backend.device_memory() for r in self.runners) if m), None)

    def describe(self) -> str:
        return f"{self.backend_name} ({self.backend_reason}): " + ", ".join(
            f"{r.entry.name} [{r.backend.describe()}]" for r in self.runners)
