"""The real-time loop: capture in its own thread, the newest frame wins, a dropped probe is reopened.

Capture never queues behind inference: the capture thread drops each frame into a single-slot
mailbox (`LatestFrame`), overwriting (and counting) one inference has not taken yet, so inference
always works on the newest frame. A source that sets `every_frame` (an unpaced image folder: each
image is a question, not a moment of a scan) makes capture wait for the slot to empty instead. A source that fails while it should be live (read raises, or a
camera returns nothing: the probe was unplugged) is closed and reopened with capped exponential
back-off while the loop keeps running; every failure and reconnect is reported and counted.

Stopping: Ctrl-C (SIGINT), SIGTERM (how systemd stops a service) and SIGHUP (the terminal went away)
all end the loop the same way, after the frame in hand: its outputs are written, the summary is
returned with `"signal": "SIGTERM"` (etc.), and `edgekit run` exits 128 + the signal's number (130,
143, 129). The handlers are installed only while the loop runs, in the main thread, and the previous
ones are put back; a signal that was ignored (`nohup`) stays ignored. A second signal while the
loop is finishing stops it at once.

    >>> summary = run_loop(pipeline, open_source("phantom"), frames=100)    # doctest: +SKIP
"""
from __future__ import annotations

import signal
import sys
import threading
import time

from runtime.sources import Frame, Source
from runtime.stats import RunStats

BACKOFF = (0.1, 2.0)  # first and longest wait before reopening a failed source, seconds
GIL_SWITCH = 0.0005   # seconds; Python's default 0.005 would add up to 5 ms to every hand-off


class LatestFrame:
    """A single-slot mailbox: `put` replaces an untaken frame (counted in `dropped`) unless asked to wait
    for it to be taken; `take` waits for a frame."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.closed = False
        self.dropped = 0

    def put(self, frame: Frame, wait: bool = False) -> None:
        with self._cond:
            if wait:            # until inference takes the last frame, or the loop closes the box
                self._cond.wait_for(lambda: self._frame is None or self.closed)
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, or None on timeout or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self.closed, timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()         # a capture waiting to put (every_frame) may go on
            return frame

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self.closed and self._frame is None


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StopSignals:
    """While active (a context manager), SIGINT/SIGTERM/SIGHUP set `signum` instead of killing the
    process, so the loop can finish its frame and write its summary; outside the main thread (where
    Python cannot install handlers) it does nothing and Ctrl-C stays a KeyboardInterrupt."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:   # a second signal: stop now, wherever the loop is
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in STOP_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None or signal.getsignal(sig) is signal.SIG_IGN:  # no SIGHUP on Windows; nohup
                continue
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Capture(threading.Thread):
    """Reads an (opened) source into a mailbox until it ends or `stop()`; recovers from failures."""

    def __init__(self, source: Source, mailbox: LatestFrame, backoff=BACKOFF, log=_stderr):
        super().__init__(name="edgekit-capture", daemon=True)
        self.source, self.mailbox, self.backoff, self.log = source, mailbox, backoff, log
        self._stop_event = threading.Event()
        self._delay = backoff[0]
        self.captured = self.failures = self.reconnects = 0
        self.error: BaseException | None = None

    def stop(self) -> None:
        self._stop_event.set()

    def counts(self) -> dict:
        return {"captured": self.captured, "dropped": self.mailbox.dropped, "failures": self.failures,
                "reconnects": self.reconnects}

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                try:
                    frame = self.source.read()
                except Exception as exc:  # a failing device raises anything; recover, don't die
                    self._recover(f"read failed ({type(exc).__name__}: {exc})")
                    continue
                if frame is None:
                    if not self.source.live:
                        break  # end of a file, folder or finite sweep
                    self._recover("no frame (probe unplugged?)")
                    continue
                self._delay = self.backoff[0]
                self.captured += 1
                self.mailbox.put(frame, wait=self.source.every_frame)
        except BaseException as exc:  # handed to the loop, which re-raises it in the main thread
            self.error = exc
        finally:
            self.mailbox.close()

    def _recover(self, why: str) -> None:
        """Close the source and reopen it, waiting 0.1 s, 0.2 s, ... up to 2 s between attempts."""
        self.failures += 1
        self.log(f"source {self.source.describe()}: {why}; reopening")
        while not self._stop_event.is_set():
            try:
                self.source.close()
            except Exception:
                pass
            if self._stop_event.wait(self._delay):
                return
            self._delay = min(self._delay * 2, self.backoff[1])
            try:
                self.source.open()
            except Exception as exc:
                self.log(f"source {self.source.describe()}: reopen failed ({exc}); retrying in {self._delay:.2f} s")
                continue
            self.reconnects += 1
            self.log(f"source {self.source.describe()}: reconnected")
            return


def _write_events(outputs, events) -> None:
    """Each event (a crossing the hysteresis closed, `runtime.temporal`) to every output that takes them."""
    for event in events:
        for out in outputs:
            write_event = getattr(out, "write_event", None)
            if write_event is not None:
                write_event(event)


def run_loop(pipeline, source: Source, outputs=(), frames: int | None = None, backoff=BACKOFF,
             log=_stderr) -> dict:
    """Process the newest frames of `source` until it ends, `frames` are done, an output asks to stop
    or a stop signal comes (Ctrl-C, SIGTERM, SIGHUP: see the module's docstring); returns the summary
    (see `RunStats.summary`, with the run's "plane found" events under "events"), with "signal" naming the signal if one stopped the loop. The source is
    opened here if needed."""
    if not source.is_open:
        source.open()  # a wrong device fails here, loudly, before any thread starts
    mailbox, stats = LatestFrame(), RunStats()
    capture = Capture(source, mailbox, backoff, log)
    switch = sys.getswitchinterval()
    stop = StopSignals()
    interrupted = None
    with stop:
        sys.setswitchinterval(GIL_SWITCH)  # a new frame must not wait out the capture thread's 5 ms GIL slice
        capture.start()
        try:
            ready = time.monotonic()        # since when inference has been free for the next frame
            while (frames is None or stats.frames < frames) and stop.signum is None:
                frame = mailbox.take(timeout=0.1)
                if frame is None:
                    if mailbox.finished:
                        break
                    continue
                result = pipeline.process(frame)
                result.queued_ms = max(0.0, (ready - frame.t) * 1e3)   # captured while the last was in hand
                written = time.perf_counter()
                stop_now = False in [out.write(result, frame) for out in outputs]  # every output sees the frame
                if result.events:
                    _write_events(outputs, result.events)
                result.outputs_ms = (time.perf_counter() - written) * 1e3
                stats.add(result)
                ready = time.monotonic()
                if stop_now:
                    break
        except KeyboardInterrupt:
            interrupted = "SIGINT"
        finally:
            capture.stop()
            mailbox.close()                 # wakes a capture waiting to put (every_frame)
            capture.join(timeout=5.0)
            source.close()
            sys.setswitchinterval(switch)
    if stop.signum is not None:
        interrupted = stop.name
    if interrupted:
        log(f"stopped by {interrupted}")
    if capture.error is not None:
        raise capture.error
    closing = pipeline.finish() if hasattr(pipeline, "finish") else []  # crossings open at the end of the run
    stats.add_events(closing)
    _write_events(outputs, closing)
    summary = stats.summary(capture.counts(), pipeline.device_memory())
    if interrupted:
        summary["signal"] = interrupted
    return summary
