"""Where results go: an overlay window when there is a display, else lines on stdout and/or JSONL.

Frames are written to disk only when asked (`--record DIR`): an ultrasound frame can identify a
patient. Each output's `write(result, frame)` returns False to stop the loop (`q` in the window).

Files are opened at the first frame, not before: a run that fails before its source gives a frame
(a wrong device, an empty folder) leaves an existing `--json-out` file as it was. Every JSONL row is
strict JSON (`strict_json`: NaN and infinities become null) written with one complete write of
`line + "\n"`; a write that fails (a full disk) is cut back to the end of the last complete line and
raised as `OutputWriteError`, one line naming the path. `check_output_path` refuses impossible paths
(a directory, a missing parent folder) before anything runs.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import BadInputError, EdgekitError
from runtime.atomic import write_bytes_atomic
from runtime.overlay import draw_overlay


class OutputWriteError(EdgekitError):
    """Writing a result file failed midway (a full disk, an I/O error); what was complete is kept."""


def _finite(obj):
    """`obj` with every non-finite float (NaN, +-inf) as None, numpy scalars and arrays as Python ones."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def strict_json(obj, **kwargs) -> str:
    """`json.dumps` that any strict JSON parser reads back: NaN and infinities (a model's confidence
    can be NaN) are written as null, never as the bare `NaN` Python's json emits by default."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _fix_for(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free space on that disk (or pass a path on another one) and run again"
    return "check that disk (dmesg), or pass a path on another one, and run again"


def check_output_path(path, flag: str, kind: str = "file") -> None:
    """Refuse, in one line and before anything runs, an output path that cannot be written: for a
    `kind` "file", a directory or a file in a missing folder; for a "dir" (created if needed), an
    existing non-directory or a file in its way."""
    if path is None or (kind == "file" and str(path) == "-"):
        return
    p = Path(path)
    if kind == "file":
        if p.is_dir():
            raise BadInputError(f"{flag} {p} is a directory; expected a file path (e.g. {p / 'out.json'})")
        parent = p.parent
        if not parent.is_dir():
            what = "is not a folder" if parent.exists() else "does not exist"
            raise BadInputError(f"{flag} {p}: its folder {parent} {what}; create it (mkdir -p {parent}) "
                                f"or pass a path in an existing folder")
        if p.exists() and not os.access(p, os.W_OK):
            raise BadInputError(f"{flag} {p} exists and is not writable; fix its permissions or pass another path")
        if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise BadInputError(f"{flag} {p}: folder {parent} is not writable; pass a path in a writable folder")
        return
    if p.exists() and not p.is_dir():
        raise BadInputError(f"{flag} {p} is an existing file; expected a folder (new or existing) for the frames; "
                            f"pass another path")
    ancestor = p
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInputError(f"{flag} {p}: {ancestor} is a file, not a folder; pass another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInputError(f"{flag} {p}: folder {ancestor} is not writable; pass a path in a writable folder")


def write_json_atomic(path, obj, flag: str = "--out") -> None:
    """`obj` as strict JSON (indent 2) at `path`, written to a temporary file beside it and renamed
    into place: `path` is either its old self or the whole new report, never half of one."""
    p = Path(path)
    try:
        write_bytes_atomic(p, (strict_json(obj, indent=2) + "\n").encode())
    except OSError as exc:
        raise OutputWriteError(f"cannot write {flag} {p}: {_why(exc)}; nothing was changed there; "
                               f"{_fix_for(exc)}") from None


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

    def write_event(self, event: dict) -> None:
        """A "plane found" event (`runtime.temporal`): after the row of the frame that ended it, or at
        the end of the run for a crossing still open."""

    def close(self) -> None:
        pass


class Collect(Output):
    """Keeps every result in `results`, its frame's `info` in `infos` (the same order) and every event
    in `events`: the loop's answers as Python objects, for a caller of `runtime.loop.run_loop` or
    `runtime.run` (benchmarks, tests, the demo's correctness report, a notebook) rather than a file.
    Results keep their heat maps; the images themselves are not kept."""

    def __init__(self):
        self.results, self.infos, self.events = [], [], []

    def write(self, result, frame) -> None:
        self.results.append(result)
        self.infos.append(frame.info or {"index": frame.index})

    def write_event(self, event: dict) -> None:
        self.events.append(event)


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

    def write_event(self, event: dict) -> None:
        from runtime.temporal import describe_event

        print(f"{event['event']}: {describe_event(event)}", file=self.stream, flush=True)


class JsonLines(Output):
    """One JSON object per frame (`Result.to_dict()` plus `frame`: `Frame.info`, what names the image
    in its source), a row of its own per event (`{"event": "plane_found", "model", "label", "start",
    "end", "best": {"index", "t", "confidence", "frame"}, "closed_by"}`, after the row of the frame
    that closed it), then `{"summary": ...}` at the end; strict JSON (non-finite floats as null).

    The file is opened (created or truncated) at the first row, so an existing file is replaced only
    by a run that produced frames. Each row goes out as one `os.write` of the complete line (no
    buffering: a reader or a crash sees whole lines). A failed write (disk full, I/O error) or an
    interrupted one is cut back to the end of the last complete line and raises `OutputWriteError`."""

    def __init__(self, path, power=None):
        self.path = path
        self.power = power       # a runtime.power.PowerMonitor: each row gets its latest sample as "power"
        self._last_done: float | None = None
        self.to_stdout = str(path) == "-"
        self._fd: int | None = None
        self._complete = 0       # bytes of complete lines written to the file
        self._failed = False     # a write failed: the file was cut back and closed for good
        self.rows = 0

    def write(self, result, frame) -> None:
        row = result.to_dict()
        row["frame"] = frame.info or {"index": frame.index}
        if self.power is not None:   # the sampler's latest reading, and W x the time since the last frame
            last, self._last_done = self._last_done, result.done
            fields = self.power.frame_fields(None if last is None else result.done - last)
            if fields is not None:
                row["power"] = fields
        self._emit(row)
        self.rows += 1

    def write_event(self, event: dict) -> None:
        """An event row; skipped, like the summary, when no frame row was written."""
        if self.to_stdout or self._fd is not None:
            self._emit(event)

    def write_summary(self, summary: dict) -> None:
        """The last row; skipped when no frame row was written, so an existing file stays as it was."""
        if self.to_stdout or self._fd is not None:
            self._emit({"summary": summary})

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise OutputWriteError(f"cannot open --json-out {self.path}: {_why(exc)}; {_fix_for(exc)}") from None
        self._complete = 0

    def _emit(self, obj) -> None:
        line = strict_json(obj) + "\n"
        if self.to_stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            return
        if self._failed:
            return
        if self._fd is None:
            self._open()
        encoded = line.encode()
        data = memoryview(encoded)
        try:
            while data:                     # a short write (a filling disk) goes on until an error
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            kept = self._cut_back()
            state = {True: f"it keeps its {self.rows} complete rows", False: "its last row may be cut off",
                     None: f"{self.rows} rows were written"}[kept]
            raise OutputWriteError(f"cannot write --json-out {self.path}: {_why(exc)}; {state}; "
                                   f"{_fix_for(exc)}") from None
        except BaseException:               # interrupted between the parts of a short write: the
            self._cut_back(close=False)     # file stays open for the summary row
            raise
        self._complete += len(encoded)

    def _cut_back(self, close: bool = True) -> bool | None:
        """Truncate the file to its complete lines (and close it): True if done, False if a regular
        file could not be truncated, None for a device or a pipe (nothing to cut). A closed file is
        not opened again (that would truncate it): later rows and the summary are dropped."""
        fd = self._fd
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            os.ftruncate(fd, self._complete)  # O_APPEND: the next write starts at the new end
            return True
        except OSError:
            return False
        finally:
            if close:
                self._fd, self._failed = None, True
                os.close(fd)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class Recorder(Output):
    """Opt-in: every processed frame as DIR/frame_NNNNNN.png (replay it with `--source DIR`); DIR is
    created at the first frame."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self._made = False

    def write(self, result, frame) -> None:
        if not self._made:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputWriteError(f"cannot create --record folder {self.dir}: {_why(exc)}; "
                                       f"pass another folder") from None
            self._made = True
        image = frame.image if frame.image.ndim == 2 else cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        path = self.dir / f"frame_{frame.index:06d}.png"
        try:
            ok = cv2.imwrite(str(path), image)
        except cv2.error:
            ok = False
        if not ok:
            raise OutputWriteError(f"cannot write --record frame {path} (disk full or not writable); "
                                   f"free space on that disk or pass another --record folder")


class Window(Output):
    """The overlay window: labels, boxes, heat maps, FPS; `q` or Esc stops the loop."""

    def __init__(self, title: str = "edgekit"):
        self.title, self.fps = title, FpsMeter()
        self.last_event: dict | None = None

    def write(self, result, frame) -> bool:
        if result.events:
            self.last_event = result.events[-1]
        cv2.imshow(self.title, draw_overlay(frame.image, result, self.fps.tick(), self.last_event))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyAllWindows()


def make_outputs(headless: bool = False, json_out=None, record=None, power=None) -> list[Output]:
    """The window if a display exists and not `headless`, else console lines (unless JSONL goes to
    stdout); JSONL (with `power`'s samples per row, a `runtime.power.PowerMonitor`) and recording when asked."""
    outputs: list[Output] = []
    if not headless and display_available():
        outputs.append(Window())
    elif str(json_out) != "-":
        outputs.append(ConsoleLines())
    if json_out:
        outputs.append(JsonLines(json_out, power=power))
    if record:
        outputs.append(Recorder(record))
    return outputs
