"""The loop: newest frame wins with a source faster than inference, a failing source is reopened while
the loop keeps going, and a 2,000-frame soak does not grow memory."""
from __future__ import annotations

import time

import numpy as np
import pytest

from runtime.bundle import load_bundle
from runtime.loop import LatestFrame, run_loop
from runtime.outputs import Collect
from runtime.pipeline import Pipeline
from runtime.sources import Frame, Pacer, Source, open_source
from runtime.stats import BREAKDOWN, process_memory


class TimedSource(Source):
    """Synthetic 32x32 frames every `interval` s; logs (index, t) of each frame it hands out.
    `fail_at` makes read() fail once at that frame (raise, or return None as a dead camera does)."""

    kind, forms, example = "timed", "(test)", "(test)"

    def __init__(self, interval: float, frames: int | None = None, live: bool = False,
                 fail_at: int | None = None, fail_mode: str = "raise", failed_opens: int = 0):
        super().__init__()
        self.interval, self.frames, self.live = interval, frames, live
        self.fail_at, self.fail_mode, self.failed_opens = fail_at, fail_mode, failed_opens
        self.log: list[tuple[int, float]] = []
        self.opens = 0

    def _open_impl(self):
        self.opens += 1
        if 1 < self.opens <= 1 + self.failed_opens:
            raise OSError("device not back yet")
        self._pacer = Pacer(1.0 / self.interval)

    def _read_impl(self):
        if self.frames is not None and self._index >= self.frames:
            return None
        if self.fail_at is not None and self._index == self.fail_at:
            self.fail_at = None
            if self.fail_mode == "raise":
                raise OSError("probe unplugged")
            return None
        self._pacer.wait()
        return np.full((32, 32), self._index % 256, np.uint8)

    def read(self):
        frame = super().read()
        if frame is not None:
            self.log.append((frame.index, frame.t))
        return frame


class SlowPipeline(Pipeline):
    """The real pipeline plus a fixed delay, standing in for a model slower than the source."""

    delay = 0.04

    def process(self, frame: Frame):
        result = super().process(frame)
        time.sleep(self.delay)
        result.done = time.monotonic()
        return result


def test_mailbox_keeps_only_the_newest():
    box = LatestFrame()
    for i in range(3):
        box.put(Frame(np.zeros((1, 1), np.uint8), float(i), i))
    assert box.dropped == 2
    assert box.take(0).index == 2
    assert box.take(0.01) is None
    box.close()
    assert box.finished
    assert box.take() is None


def test_newest_frame_wins_and_staleness_is_bounded(plane_bundle):
    # source every 10 ms, inference 40 ms; the tolerance absorbs OS scheduling on a busy shared CPU
    interval, tolerance = 0.010, 0.025
    source, sink = TimedSource(interval, frames=80), Collect()
    with SlowPipeline(load_bundle(plane_bundle), backend="onnxruntime") as pipe:
        summary = run_loop(pipe, source, [sink])
    results = sink.results
    assert summary["captured"] == 80
    assert summary["dropped"] > 30
    assert summary["frames"] == len(results)
    assert len(results) + summary["dropped"] <= 80
    indices = [r.index for r in results]
    assert indices == sorted(set(indices))
    period = max(r.done - r.started for r in results)  # one inference period, measured
    last = source.log[-1][0]
    for r in results:
        # a frame waits at most one frame interval before a newer one replaces it; only the source's
        # last frame has no successor, so it may wait out the whole inference in progress first
        most_wait = period if r.index == last else interval
        assert r.wait_ms / 1e3 <= most_wait + tolerance, r.to_dict()
        assert r.latency_ms / 1e3 <= period + most_wait + tolerance, r.to_dict()
        newer_waiting = [i for i, t in source.log if i > r.index and t < r.started - tolerance]
        assert not newer_waiting, f"frame {r.index} processed while {newer_waiting[:3]} were already captured"


@pytest.mark.parametrize("fail_mode", ["raise", "none"])
def test_failing_source_is_reopened_and_the_loop_continues(plane_bundle, fail_mode):
    messages = []
    source = TimedSource(0.002, live=True, fail_at=10, fail_mode=fail_mode, failed_opens=1)
    sink = Collect()
    with Pipeline(load_bundle(plane_bundle), backend="onnxruntime") as pipe:
        summary = run_loop(pipe, source, [sink], frames=40, backoff=(0.01, 0.04), log=messages.append)
    assert summary["frames"] == 40
    assert summary["failures"] == 1
    assert summary["reconnects"] == 1
    assert source.opens == 3  # the first open, a failed reopen, the one that worked
    assert any("reopen failed" in m for m in messages)
    assert any("reconnected" in m for m in messages)
    assert max(r.index for r in sink.results) > 10  # frames kept coming after the failure
    assert [r.index for r in sink.results] == sorted(r.index for r in sink.results)


def test_backoff_doubles_up_to_its_cap(plane_bundle):
    messages = []
    source = TimedSource(0.002, live=True, fail_at=3, failed_opens=4)
    with Pipeline(load_bundle(plane_bundle), backend="onnxruntime") as pipe:
        start = time.monotonic()
        summary = run_loop(pipe, source, frames=8, backoff=(0.01, 0.03), log=messages.append)
    waits = [float(m.split("retrying in ")[1].split(" s")[0]) for m in messages if "retrying in" in m]
    assert waits == [0.02, 0.03, 0.03, 0.03]  # 0.01 first, doubled, capped at 0.03
    assert summary["reconnects"] == 1
    assert summary["failures"] == 1
    assert time.monotonic() - start >= 0.01 + 0.02 + 0.03 * 3


def test_finite_source_ends_the_loop(plane_bundle):
    with Pipeline(load_bundle(plane_bundle), backend="onnxruntime") as pipe:
        summary = run_loop(pipe, TimedSource(0.001, frames=5))
    assert 1 <= summary["frames"] <= 5
    assert summary["captured"] == 5
    assert summary["reconnects"] == 0
    assert set(summary["latency_ms"]) >= {"p50", "p95", "p99"}
    assert summary["memory"]["rss_mb"] > 0
    assert set(summary["models_ms"]["plane"]) == {"preprocess", "infer", "postprocess", "total"}
    assert set(summary["breakdown_ms"]) == set(BREAKDOWN)


class FakeClock:
    """`time` for runtime.sources.base: sleeping and working only move the clock on."""

    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_capture_time_leaves_out_the_pacing(monkeypatch):
    """A paced source waits first, then makes the frame and stamps it; `capture_ms` is the making."""
    import runtime.sources.base as base

    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)

    class Working(Source):
        kind, forms, example = "working", "(test)", "(test)"

        def _open_impl(self):
            self._pacer = Pacer(10.0)                  # 100 ms apart

        def _read_impl(self):
            self._pacer.wait()
            clock.now += 0.003                         # 3 ms of decoding
            return np.zeros((2, 2), np.uint8)

    with Working() as src:
        frames = [src.read() for _ in range(4)]
    assert [round(f.capture_ms, 6) for f in frames] == [3.0] * 4
    assert [round(b.t - a.t, 6) for a, b in zip(frames, frames[1:])] == [0.1] * 3   # stamped after the making


def test_unpaced_folder_answers_every_image_even_with_slow_inference(plane_bundle, tmp_path):
    import cv2

    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((32, 32), 40 * i, np.uint8))
    sink = Collect()
    with SlowPipeline(load_bundle(plane_bundle), backend="onnxruntime") as pipe:
        summary = run_loop(pipe, open_source(str(tmp_path)), [sink])
        assert [r.index for r in sink.results] == list(range(6))
        assert summary["dropped"] == 0
        start = time.monotonic()
        summary = run_loop(pipe, open_source(str(tmp_path)), [Collect()], frames=2)
        assert summary["frames"] == 2
        assert time.monotonic() - start < 4
        paced = open_source(f"{tmp_path}?fps=500")          # paced: plays like a probe, newest wins
        assert not paced.every_frame
        assert run_loop(pipe, paced, [Collect()], frames=2)["frames"] == 2


@pytest.mark.slow
def test_soak_2000_frames_memory_stays_flat(plane_bundle):
    source = "phantom:1?realtime=0&width=336&height=195"
    with Pipeline(load_bundle(plane_bundle), backend="onnxruntime") as pipe:
        run_loop(pipe, open_source(source), frames=200)  # warm up allocators and caches
        before = process_memory()["rss_mb"]
        summary = run_loop(pipe, open_source(source), frames=2000)
        after = process_memory()["rss_mb"]
    assert summary["frames"] == 2000
    assert (after - before) / before < 0.05, (before, after)
