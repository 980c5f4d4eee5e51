"""Model outputs -> answers in the frame's own pixels: labels with confidences, boxes, heat maps.

Everything a model reports about position is in model-input pixels (after the ROI crop and resize);
`Geometry` maps it back so boxes land on the frame the user sees. Pure numpy + OpenCV.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.core.tasks import DETECTION, MULTI_LABEL, activation_for


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Geometry:
    """Model-input pixels -> frame pixels: undo the resize (scale) and the ROI crop (offset)."""

    x0: float
    y0: float
    sx: float
    sy: float
    width: float   # of the cropped region, in frame pixels
    height: float

    @classmethod
    def of(cls, frame_shape, spec: dict) -> "Geometry":
        """The mapping `edge.core.preprocess.preprocess` applied to a frame of `frame_shape` under `spec`."""
        h, w = frame_shape[:2]
        y0, y1, x0, x1 = spec.get("roi") or (0, h, 0, w)
        y0, y1, x0, x1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)  # crop_roi clips the same way
        in_h, in_w = spec["resize"]
        return cls(x0, y0, (x1 - x0) / in_w, (y1 - y0) / in_h, x1 - x0, y1 - y0)

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """N x 4 (x1, y1, x2, y2) in model input -> frame pixels, clipped to the ROI."""
        out = np.asarray(boxes, np.float64).reshape(-1, 4) * [self.sx, self.sy, self.sx, self.sy]
        out += [self.x0, self.y0, self.x0, self.y0]
        np.clip(out[:, 0::2], self.x0, self.x0 + self.width, out=out[:, 0::2])
        np.clip(out[:, 1::2], self.y0, self.y0 + self.height, out=out[:, 1::2])
        return out

    @property
    def region(self) -> list[float]:
        """The frame rectangle the model saw, x1 y1 x2 y2 (where a heat map is drawn)."""
        return [float(self.x0), float(self.y0), float(self.x0 + self.width), float(self.y0 + self.height)]


@dataclass
class ModelOutput:
    """One model's answer for one frame. `heatmap` (0..1, map resolution) covers `heatmap_region`."""

    name: str
    kind: str
    label: str | None = None
    confidence: float | None = None
    confidences: dict[str, float] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    boxes: list[dict] = field(default_factory=list)
    heatmap: np.ndarray | None = None
    heatmap_region: list[float] | None = None
    cam_box: list[float] | None = None
    tracked: bool = False                  # a hysteresis tracker follows this model (runtime.temporal)
    state: str | None = None               # its stable state: a class, or the background ("no plane")
    state_confidence: float | None = None  # the state class's smoothed confidence
    events: list[dict] = field(default_factory=list)  # crossings that ended at this frame

    def to_dict(self) -> dict:
        """JSON-ready; the heat map array stays out (its box and region go in); a tracked model adds
        its stable `state` and `state_confidence` (its events are rows of their own)."""
        d = {"kind": self.kind, "label": self.label, "confidence": self.confidence,
             "confidences": self.confidences}
        if self.kind == MULTI_LABEL:
            d["labels"] = self.labels
        if self.kind == DETECTION:
            d["boxes"] = self.boxes
        if self.heatmap is not None:
            d.update(cam_box=self.cam_box, heatmap_region=self.heatmap_region)
        if self.tracked:
            d.update(state=self.state, state_confidence=None if self.state_confidence is None
                     else round(self.state_confidence, 5))
        return d


def class_scores(outputs: dict, logits_name: str | None, cam_name: str | None) -> np.ndarray:
    """Batch-1 class scores: the logits output, or the spatial mean of the class-score maps (SonoNet)."""
    if logits_name is not None:
        return np.asarray(outputs[logits_name], np.float64).reshape(-1)
    return np.asarray(outputs[cam_name], np.float64).reshape(outputs[cam_name].shape[-3], -1).mean(axis=1)


def activate(scores: np.ndarray, kind: str, activation: str | None = None) -> np.ndarray:
    """Confidences from raw scores: softmax (single label), sigmoid (multi label) or as they are."""
    activation = activation or activation_for(kind)
    return {"softmax": softmax, "sigmoid": sigmoid}.get(activation, lambda x: x)(scores)


def fill_classification(out: ModelOutput, probs: np.ndarray, labels, threshold: float) -> None:
    """Top label and all confidences; for multi-label, every label over `threshold`."""
    names = [labels[i] if i < len(labels) else str(i) for i in range(len(probs))]
    out.confidences = {n: round(float(p), 5) for n, p in zip(names, probs)}
    top = int(np.argmax(probs))
    out.label, out.confidence = names[top], float(probs[top])
    if out.kind == MULTI_LABEL:
        out.labels = [n for n, p in zip(names, probs) if p >= threshold]


def _squeeze_to(x: np.ndarray, ndim: int) -> np.ndarray:
    x = np.asarray(x)
    while x.ndim > ndim and x.shape[0] == 1:
        x = x[0]
    return x


def detections(boxes, scores, labels, names, geometry: Geometry, threshold: float) -> list[dict]:
    """Boxes over `threshold` with a foreground label (1-based; 0 is background), in frame pixels."""
    boxes, scores = _squeeze_to(boxes, 2).reshape(-1, 4), _squeeze_to(scores, 1).reshape(-1)
    labels = _squeeze_to(labels, 1).reshape(-1).astype(np.int64)
    keep = np.flatnonzero((scores >= threshold) & (labels > 0))
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    frame_boxes = geometry.boxes_to_frame(boxes[keep])
    return [{"box": [round(float(v), 1) for v in b], "score": round(float(scores[i]), 5),
             "label": names[labels[i] - 1] if labels[i] <= len(names) else str(int(labels[i]))}
            for i, b in zip(keep, frame_boxes)]


def localise(cam: np.ndarray, cls: int, geometry: Geometry, input_hw, threshold: float):
    """(heat map 0..1, box in frame pixels or None) from class `cls`'s map: the largest connected
    component of the map above `threshold` (of its min-max range)."""
    maps = _squeeze_to(cam, 3)
    m = maps[min(cls, maps.shape[0] - 1)].astype(np.float32)
    lo, hi = float(m.min()), float(m.max())
    heat = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    n, _, stats, _ = cv2.connectedComponentsWithStats((heat >= threshold).astype(np.uint8), connectivity=8)
    if hi <= lo or n < 2:
        return heat, None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(stats[best, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH,
                                                 cv2.CC_STAT_HEIGHT))
    cell_w, cell_h = input_hw[1] / heat.shape[1], input_hw[0] / heat.shape[0]
    box = geometry.boxes_to_frame(np.array([[x * cell_w, y * cell_h, (x + w) * cell_w, (y + h) * cell_h]]))[0]
    return heat, [round(float(v), 1) for v in box]
