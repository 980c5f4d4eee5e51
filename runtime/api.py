"""The two things the `edgekit run` and `edgekit bench` commands do, as plain Python calls.

    >>> import runtime
    >>> summary = runtime.run("bundle/", source="phantom", headless=True, frames=100)   # doctest: +SKIP
    >>> report = runtime.bench("bundle/", backends=["onnxruntime"], frames=200)        # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import sys
import time

from edge.core.errors import EdgekitError, UnknownNameError, UnsupportedError
from runtime.bundle import load_bundle
from runtime.loop import run_loop
from runtime.outputs import JsonLines, check_output_path, make_outputs, write_json_atomic
from runtime.pipeline import Pipeline
from runtime.sources import open_source
from runtime.stats import RunStats, percentiles


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(bundle, source: str = "phantom", backend: str = "auto", headless: bool = False,
        frames: int | None = None, json_out=None, smooth: float = 0.0, record=None, log=_stderr,
        enter: float | None = None, leave: float | None = None, outputs=(), serve: str | None = None,
        serve_token: str | None = None, power="auto") -> dict:
    """Run every model of `bundle` on `source` in real time; returns the end-of-run summary, with
    "signal" set when Ctrl-C, SIGTERM or SIGHUP stopped it (see `runtime.loop`) and the "plane found"
    events under "events" (`runtime.temporal`).

    `enter`/`leave` override the manifest's hysteresis thresholds (and switch tracking on for a plane
    model whose bundle has none); `outputs` are more `runtime.outputs.Output`s to feed (e.g. `Collect`).

    `serve` ("[HOST:]PORT"; "" for 127.0.0.1:8080) shows the loop live in a browser
    (`runtime.serve`), with `serve_token` (made up for a non-loopback address when not given).
    `power` ("auto": a Jetson's INA3221 rails and thermal zones when present, else nothing; None:
    off; or a sysfs root or a `runtime.power.PowerMonitor`) adds board power, energy per frame and
    the hottest thermal zone to each JSONL row, the summary ("power") and the page.

    Output paths are checked before anything runs; files are opened at the first frame, so a run
    that fails before one leaves an existing `json_out` untouched (see `runtime.outputs`)."""
    check_output_path(json_out, "--json-out")
    check_output_path(record, "--record", kind="dir")
    if enter is not None or leave is not None:     # before the bundle loads; the manifest's own
        from runtime.temporal import check_settings  # value of the other is checked with it there

        check_settings(1.0 if enter is None else enter, 0.0 if leave is None else leave, 1,
                       where="--enter/--leave")
    server = None
    if serve is not None:       # a malformed address or token, or no aiohttp: refused before anything loads
        from runtime.serve import ServeOutput

        server = ServeOutput(serve, token=serve_token, log=log)
    b = load_bundle(bundle)
    src = open_source(source)
    monitor = _power_monitor(power)
    if server is not None:      # binds now: a busy port is one error line before the source opens
        server.power, server.about = monitor, {"bundle": b.path.name, "source": src.describe()}
        try:
            server.start()
        except BaseException:
            if monitor is not None:
                monitor.close()
            raise
    outputs = [*make_outputs(headless=headless, json_out=json_out, record=record, power=monitor),
               *([server] if server is not None else []), *outputs]
    try:
        with Pipeline(b, backend=backend, smooth=smooth, hysteresis={"enter": enter, "leave": leave}) as pipe:
            log(f"backend: {pipe.describe()}")
            log(f"source: {src.describe()}")
            if monitor is not None:
                log(f"power: {monitor.source}, board = {monitor.rail}")
            with monitor if monitor is not None else contextlib.nullcontext():   # sampled while the loop runs
                summary = run_loop(pipe, src, outputs, frames=frames, log=log)
        summary.update(backend=pipe.backend_name, backend_reason=pipe.backend_reason, source=src.describe(),
                       bundle=str(b.path))
        if monitor is not None:
            summary["power"] = monitor.summary(summary["frames"])
        for out in outputs:
            if isinstance(out, JsonLines):
                out.write_summary(summary)
    finally:
        for out in outputs:
            out.close()
        if monitor is not None:
            monitor.close()
    return summary


def _power_monitor(power):
    """`run`'s `power` argument -> a PowerMonitor or None (see `run`)."""
    if power is None or power is False:
        return None
    from runtime.power import PowerMonitor, find_monitor

    if isinstance(power, PowerMonitor):
        return power
    return find_monitor() if power == "auto" else find_monitor(root=power)


def bare_inference_times(pipe: Pipeline, image, runs: int, warmup: int = 3) -> dict[str, list[float]]:
    """Per model, ms of `backend.infer` alone on one preprocessed frame (no pre/post, no loop); the
    models run back to back as in a frame, so key "frame" holds their per-frame sum."""
    feeds = [r.feed(image) for r in pipe.runners]
    for runner, feed in zip(pipe.runners, feeds):
        for _ in range(warmup):
            runner.backend.infer(feed, check=False)
    out: dict[str, list[float]] = {r.entry.name: [] for r in pipe.runners}
    out["frame"] = []
    for _ in range(runs):
        total = 0.0
        for runner, feed in zip(pipe.runners, feeds):
            t0 = time.perf_counter()
            runner.backend.infer(feed, check=False)
            ms = (time.perf_counter() - t0) * 1e3
            out[runner.entry.name].append(ms)
            total += ms
        out["frame"].append(total)
    return out


def bare_inference_ms(pipe: Pipeline, image, runs: int, warmup: int = 3) -> dict[str, dict]:
    """Percentiles of `bare_inference_times`, per model and per frame."""
    return {k: percentiles(v) for k, v in bare_inference_times(pipe, image, runs, warmup).items()}


def _first_frame(make_source):
    with make_source() as src:
        frame = src.read()
    if frame is None:
        raise EdgekitError(f"source {src.describe()} gave no frame to benchmark on")
    return frame.image


class _Collect:
    """An output that keeps a loop block's results, to be added to the bench's one RunStats once the
    block is done (when the loop has set each result's `outputs_ms`)."""

    def __init__(self):
        self.results: list = []

    def write(self, result, frame) -> None:
        self.results.append(result)

    def drain_into(self, stats: RunStats) -> None:
        for result in self.results:
            stats.add(result)
        self.results.clear()


def bench_backend(bundle, backend: str, frames: int, source, rounds: int = 4, log=_stderr) -> dict:
    """One backend: bare inference and the real loop on `source` (a spec, or a function returning a
    fresh Source), in alternating blocks so drifting machine load hits both alike; the ratio of their
    medians is what the loop adds to inference. `loop.breakdown_ms` says where each frame's time went
    (`runtime.stats`: capture, queued, hand-off, preprocess, infer, postprocess, pipeline, outputs,
    and `fixed`, the loop's own cost beyond preprocessing and inference). A stop signal during a loop
    block ends the rounds there; the entry then says so under "signal"."""
    make_source = (lambda: open_source(source)) if isinstance(source, str) else source
    per_round = max(1, frames // rounds)
    stats, bare = RunStats(), {}
    stopped_by = None
    with Pipeline(bundle, backend=backend) as pipe:
        image = _first_frame(make_source)
        counts, seconds = {"captured": 0, "dropped": 0, "failures": 0, "reconnects": 0}, 0.0
        for _ in range(rounds):
            for k, v in bare_inference_times(pipe, image, per_round).items():
                bare.setdefault(k, []).extend(v)
            sink = _Collect()
            summary = run_loop(pipe, make_source(), [sink], frames=per_round, log=log)
            sink.drain_into(stats)
            counts = {k: counts[k] + summary[k] for k in counts}
            seconds += summary["seconds"]
            stopped_by = summary.get("signal")
            if stopped_by:
                break
        loop = stats.summary(counts, pipe.device_memory())
        loop.update(seconds=round(seconds, 3), fps=round(stats.frames / seconds, 2) if seconds else 0.0)
        entry = {"backend": pipe.backend_name, "reason": pipe.backend_reason, "describe": pipe.describe(),
                 "rounds": rounds}
    bare_frame = percentiles(bare.pop("frame"))
    entry.update(bare_infer_ms={k: percentiles(v) for k, v in bare.items()},
                 bare_infer_sum_p50_ms=bare_frame.get("p50", 0.0), bare_frame_ms=bare_frame, loop=loop,
                 frame_shape=list(image.shape))
    if bare_frame.get("p50"):
        entry["bare_infer_fps"] = round(1e3 / bare_frame["p50"], 1)   # if frames cost only their inference
    if loop["latency_ms"] and entry["bare_infer_sum_p50_ms"] > 0:
        entry["e2e_over_bare_p50"] = round(loop["latency_ms"]["p50"] / entry["bare_infer_sum_p50_ms"], 3)
    if stopped_by:
        entry["signal"] = stopped_by
    return entry


def bench(bundle, backends=("auto",), frames: int = 200, out=None, source: str = "phantom",
          log=_stderr) -> dict:
    """The same pipeline for `frames` frames on each backend, side by side; written to `out` as
    strict JSON, atomically (a temporary file beside it, renamed into place). A backend that cannot
    run here is reported with its reason instead of stopping the others; a stop signal (Ctrl-C,
    SIGTERM, SIGHUP) ends the bench after the backend in progress, with "signal" in the report."""
    check_output_path(out, "--out")
    b = load_bundle(bundle)
    report = {"bundle": str(b.path), "source": source, "frames": frames,
              "models": [m.name for m in b.models], "backends": {}}
    for name in backends:
        try:
            report["backends"][name] = bench_backend(b, name, frames, source, log=log)
        except (UnsupportedError, UnknownNameError) as exc:  # this backend cannot run here; a bad bundle
            report["backends"][name] = {"error": str(exc)}   # or source stops the whole bench
            log(f"bench: {name}: {exc}")
            continue
        if report["backends"][name].get("signal"):
            report["signal"] = report["backends"][name]["signal"]
            break
    if out:
        write_json_atomic(out, report, "--out")
    return report
