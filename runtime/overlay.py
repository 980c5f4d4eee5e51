"""Draw one result on its frame: heat maps, boxes, labels with confidences, FPS and latency, and for
a model tracked with hysteresis (`runtime.temporal`) its stable state and the last "plane found" event.

Returns a BGR image for `cv2.imshow`; the frame itself is never modified.
"""
from __future__ import annotations

import cv2
import numpy as np

COLOURS = [(0, 200, 255), (255, 160, 0), (0, 220, 0), (220, 0, 220), (255, 255, 0), (0, 0, 255)]


def _to_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _blend_heatmap(canvas: np.ndarray, heat: np.ndarray, region) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in region)
    if x2 <= x1 or y2 <= y1:
        return
    coloured = cv2.applyColorMap((cv2.resize(heat, (x2 - x1, y2 - y1)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    roi = canvas[y1:y2, x1:x2]
    cv2.addWeighted(coloured[: roi.shape[0], : roi.shape[1]], 0.35, roi, 0.65, 0, dst=roi)


def _box(canvas, box, colour, text: str) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
    cv2.putText(canvas, text, (x1 + 2, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def _text_lines(result, fps: float) -> list[str]:
    lines = [f"{fps:.1f} FPS  {result.latency_ms:.0f} ms"]
    for name, out in result.outputs.items():
        if out.kind == "multi_label":
            lines.append(f"{name}: " + ", ".join(f"{k} {out.confidences[k]:.2f}" for k in out.labels))
        elif out.label is not None:
            lines.append(f"{name}: {out.label} {out.confidence:.2f}")
        if out.tracked:
            conf = "" if out.state_confidence is None else f" {out.state_confidence:.2f}"
            lines.append(f"{name} state: {out.state if out.state is not None else '-'}{conf}")
    return lines


def draw_overlay(image: np.ndarray, result, fps: float = 0.0, last_event: dict | None = None,
                 text: bool = True) -> np.ndarray:
    """The frame as BGR with every model's answer drawn on it (and `last_event`, a "plane found" event);
    `text=False` keeps the heat maps and boxes but not the lines of text (a thumbnail)."""
    canvas = _to_bgr(image)
    for i, (name, out) in enumerate(result.outputs.items()):
        colour = COLOURS[i % len(COLOURS)]
        if out.heatmap is not None and out.heatmap_region is not None:
            _blend_heatmap(canvas, out.heatmap, out.heatmap_region)
        if out.cam_box is not None:
            _box(canvas, out.cam_box, colour, f"{name}: {out.label}")
        for det in out.boxes:
            _box(canvas, det["box"], colour, f"{det['label']} {det['score']:.2f}")
    if not text:
        return canvas
    lines = _text_lines(result, fps)
    if last_event is not None:
        from runtime.temporal import describe_event

        lines.append(f"found {describe_event(last_event)}")
    for row, text in enumerate(lines):
        y = 20 + 18 * row
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
