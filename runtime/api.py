"""The two things the `edgekit run` and `edgekit bench` commands do, as plain Python calls.

    >>> import runtime
    >>> summary = runtime.run("bundle/", source="phantom", headless=True, frames=100)   # doctest: +SKIP
    >>> report = runtime.bench("bundle/", backends=["onnxruntime"], frames=200)        # doctest: +SKIP
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edge.errors import EdgekitError
from runtime.bundle import load_bundle
from runtime.loop import run_loop
from runtime.outputs import JsonLines, make_outputs
from runtime.pipeline import Pipeline
from runtime.sources import open_source
from runtime.stats import percentiles


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(bundle, source: str = "phantom", backend: str = "auto", headless: bool = False,
        frames: int | None = None, json_out=None, smooth: float = 0.0, record=None, log=_stderr) -> dict:
    """Run every model of `bundle` on `source` in real time; returns the end-of-run summary."""
    b = load_bundle(bundle)
    src = open_source(source)
    outputs = make_outputs(headless=headless, json_out=json_out, record=record)
    try:
        with Pipeline(b, backend=backend, smooth=smooth) as pipe:
            log(f"backend: {pipe.describe()}")
            log(f"source: {src.describe()}")
            summary = run_loop(pipe, src, outputs, frames=frames, log=log)
        summary.update(backend=pipe.backend_name, backend_reason=pipe.backend_reason, source=src.describe(),
                       bundle=str(b.path))
        for out in outputs:
            if isinstance(out, JsonLines):
                out.write_summary(summary)
    finally:
        for out in outputs:
            out.close()
    return summary


def bare_inference_ms(pipe: Pipeline, image, runs: int, warmup: int = 5) -> dict[str, dict]:
    """Per model: percentiles of `backend.infer` alone on one preprocessed frame (no pre/post, no loop)."""
    out = {}
    for runner in pipe.runners:
        feed = runner.feed(image)
        for _ in range(warmup):
            runner.backend.infer(feed, check=False)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            runner.backend.infer(feed, check=False)
            times.append((time.perf_counter() - t0) * 1e3)
        out[runner.entry.name] = percentiles(times)
    return out


def _first_frame(make_source):
    with make_source() as src:
        frame = src.read()
    if frame is None:
        raise EdgekitError(f"source {src.describe()} gave no frame to benchmark on")
    return frame.image


def bench_backend(bundle, backend: str, frames: int, source, log=_stderr) -> dict:
    """One backend: bare inference, then the real loop on `source` (a spec, or a function returning a
    fresh Source); the ratio of their medians is what the loop adds to inference."""
    make_source = (lambda: open_source(source)) if isinstance(source, str) else source
    with Pipeline(bundle, backend=backend) as pipe:
        bare = bare_inference_ms(pipe, _first_frame(make_source), runs=frames)
        loop = run_loop(pipe, make_source(), frames=frames, log=log)
        entry = {"backend": pipe.backend_name, "reason": pipe.backend_reason, "describe": pipe.describe()}
    bare_sum = sum(v["p50"] for v in bare.values())
    entry.update(bare_infer_ms=bare, bare_infer_sum_p50_ms=round(bare_sum, 3), loop=loop)
    if loop["latency_ms"] and bare_sum > 0:
        entry["e2e_over_bare_p50"] = round(loop["latency_ms"]["p50"] / bare_sum, 3)
    return entry


def bench(bundle, backends=("auto",), frames: int = 200, out=None, source: str = "phantom",
          log=_stderr) -> dict:
    """The same pipeline for `frames` frames on each backend, side by side; written to `out` as JSON.
    A backend that cannot run here is reported with its reason instead of stopping the others."""
    b = load_bundle(bundle)
    report = {"bundle": str(b.path), "source": source, "frames": frames,
              "models": [m.name for m in b.models], "backends": {}}
    for name in backends:
        try:
            report["backends"][name] = bench_backend(b, name, frames, source, log)
        except EdgekitError as exc:
            report["backends"][name] = {"error": str(exc)}
            log(f"bench: {name}: {exc}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report
