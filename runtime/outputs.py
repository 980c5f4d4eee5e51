"""Where results go: an overlay window when there is a display, else lines on stdout and/or JSONL.

Frames are written to disk only when asked (`--record DIR`): an ultrasound frame can identify a
patient. Each output's `write(result, frame)` returns False to stop the loop (`q` in the window).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cv2

from runtime.overlay import draw_overlay


def display_available() -> bool:
    """A window can open: a display server is named and this OpenCV build has a GUI."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("edgekit", cv2.WINDOW_NORMAL)
        return True
    except cv2.error:  # opencv-python-headless: no highgui
        return False


class Output:
    def write(self, result, frame) -> bool | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FpsMeter:
    """Frames per second over the last second or so, for the overlay and the console lines."""

    def __init__(self):
        self._times: list[float] = []

    def tick(self) -> float:
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < 1.0] + [now]
        return (len(self._times) - 1) / (now - self._times[0]) if len(self._times) > 1 else 0.0


def summarise_result(result) -> str:
    """`plane AC 0.97 | anatomy head,arms | detection 2 boxes`: what one frame's models said."""
    parts = []
    for name, out in result.outputs.items():
        if out.kind == "detection" and not out.confidences:
            parts.append(f"{name} {len(out.boxes)} box{'es' if len(out.boxes) != 1 else ''}")
        elif out.kind == "multi_label":
            parts.append(f"{name} {','.join(out.labels) or '-'}")
        else:
            parts.append(f"{name} {out.label} {out.confidence:.2f}")
    return " | ".join(parts)


class ConsoleLines(Output):
    """One line per frame on stdout: index, answers, end-to-end latency, FPS."""

    def __init__(self, stream=None):
        self.stream, self.fps = stream or sys.stdout, FpsMeter()

    def write(self, result, frame) -> None:
        print(f"#{result.index:06d} {summarise_result(result)} | {result.latency_ms:.1f} ms | "
              f"{self.fps.tick():.1f} FPS", file=self.stream, flush=True)


class JsonLines(Output):
    """One JSON object per frame (`Result.to_dict()`), then `{"summary": ...}` at the end."""

    def __init__(self, path):
        self.path = path
        self.file = sys.stdout if str(path) == "-" else open(path, "w", buffering=1)

    def write(self, result, frame) -> None:
        self.file.write(json.dumps(result.to_dict()) + "\n")

    def write_summary(self, summary: dict) -> None:
        self.file.write(json.dumps({"summary": summary}) + "\n")

    def close(self) -> None:
        if self.file is not sys.stdout:
            self.file.close()


class Recorder(Output):
    """Opt-in: every processed frame as DIR/frame_NNNNNN.png (replay it with `--source DIR`)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, result, frame) -> None:
        image = frame.image if frame.image.ndim == 2 else cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(self.dir / f"frame_{frame.index:06d}.png"), image)


class Window(Output):
    """The overlay window: labels, boxes, heat maps, FPS; `q` or Esc stops the loop."""

    def __init__(self, title: str = "edgekit"):
        self.title, self.fps = title, FpsMeter()

    def write(self, result, frame) -> bool:
        cv2.imshow(self.title, draw_overlay(frame.image, result, self.fps.tick()))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyAllWindows()


def make_outputs(headless: bool = False, json_out=None, record=None) -> list[Output]:
    """The window if a display exists and not `headless`, else console lines (unless JSONL goes to
    stdout); JSONL and recording when asked."""
    outputs: list[Output] = []
    if not headless and display_available():
        outputs.append(Window())
    elif str(json_out) != "-":
        outputs.append(ConsoleLines())
    if json_out:
        outputs.append(JsonLines(json_out))
    if record:
        outputs.append(Recorder(record))
    return outputs
