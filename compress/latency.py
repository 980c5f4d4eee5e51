"""Measured CPU latency of every sweep variant: ONNX Runtime, batch 1, median, interleaved rounds.

The paper reports FLOPs and sizes only; a smaller MAC count is not a faster model until measured.
Every variant is written by export's own ONNX writer (`export.onnx.export_onnx`: FP32 variants
simplified by onnxslim as a bundle ships them, INT8 variants as a `cpu` bundle ships them: rewritten
so ONNX Runtime's integer kernels fuse them), so the graph timed is the graph that ships. Each is loaded in its own ONNX Runtime CPU
session and timed in *interleaved rounds* (round 1: A, B, C...; round 2: A, B, C...), so a burst of
load from another process on a shared machine hits every variant alike instead of whichever happened
to be running. The figure is the median of all single-frame runs; p90 is kept too::

    >>> lat = measure_latency({"base": "base.onnx", "s50": "s50.onnx"}, rounds=20, runs_per_round=10)  # doctest: +SKIP
    >>> lat["s50"]["median_ms"] < lat["base"]["median_ms"]                                             # doctest: +SKIP
    True
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

_UNSET = object()


def write_onnx(model, path) -> Path:
    """Write `model` as export writes it into a `cpu` bundle: int8 for a ModelOpt QAT model (in the
    form ONNX Runtime's integer kernels fuse, `export.int8_ort`, which is what this CPU timing runs),
    else fp32.

    Export switches a class-score-map model's `export_cam` on (the shipped graph has the `cam`
    output); the sweep keeps using the model afterwards (its MACs), so the switch is put back.
    """
    from edge.ml.quantization import is_quantized
    from export.onnx import export_onnx      # compress -> export, only here: docs/ARCHITECTURE.md

    own = vars(model).get("export_cam", _UNSET)
    try:
        if is_quantized(model):
            export_onnx(model, path, "int8", int8_form="onnxruntime")
        else:
            export_onnx(model, path, "fp32")
    finally:
        if own is _UNSET:
            vars(model).pop("export_cam", None)      # back to the class default
        else:
            model.export_cam = own
    return Path(path)


def ort_session(path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _feed(session) -> dict:
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    return {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}


def measure_latency(onnx_files: dict, rounds: int = 30, runs_per_round: int = 5, warmup: int = 5,
                    threads: int = 1, progress=None) -> dict:
    """{name: {median_ms, p90_ms, runs, threads}} for every ONNX file, timed in interleaved rounds.

    `threads` is ONNX Runtime's intra-op thread count (1: steadier on a shared machine and closest to
    a per-stream budget); `progress(done, total)` is called after each round. With one thread ORT
    computes on the calling thread, so its CPU time is also kept (`cpu_median_ms`, `cpu_p90_ms`):
    what the net takes on a core of its own, which other processes on a shared machine do not inflate
    (`compress.nas` budgets on it).
    """
    sessions = {name: ort_session(p, threads) for name, p in onnx_files.items()}
    feeds = {name: _feed(s) for name, s in sessions.items()}
    for name, s in sessions.items():
        for _ in range(warmup):
            s.run(None, feeds[name])
    times = {name: [] for name in sessions}
    cpu = {name: [] for name in sessions}
    order = list(sessions)
    for r in range(rounds):
        # alternate direction each round so no variant always runs right after the same neighbour
        for name in (order if r % 2 == 0 else order[::-1]):
            s, feed = sessions[name], feeds[name]
            for _ in range(runs_per_round):
                t0, c0 = time.perf_counter(), time.thread_time()
                s.run(None, feed)
                cpu[name].append((time.thread_time() - c0) * 1e3)
                times[name].append((time.perf_counter() - t0) * 1e3)
        if progress:
            progress(r + 1, rounds)
    out = {name: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "runs": len(t),
                  "threads": threads} for name, t in times.items()}
    if threads == 1:
        for name, c in cpu.items():
            out[name].update(cpu_median_ms=float(np.median(c)), cpu_p90_ms=float(np.percentile(c, 90)))
    return out
