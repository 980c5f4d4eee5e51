"""Measured CPU latency of every sweep variant: ONNX Runtime, batch 1, median, interleaved rounds.

The paper reports FLOPs and sizes only; a smaller MAC count is not a faster model until measured.
Every variant is exported to ONNX (`torch.onnx.export(dynamo=False)`, opset 17: INT8 variants carry
their Q/DQ pairs), loaded in its own ONNX Runtime CPU session, and timed in *interleaved rounds*
(round 1: A, B, C...; round 2: A, B, C...), so a burst of load from another process on a shared
machine hits every variant alike instead of whichever happened to be running. The figure is the
median of all single-frame runs; p90 is kept too::

    >>> lat = measure_latency({"base": "base.onnx", "s50": "s50.onnx"}, rounds=20, runs_per_round=10)  # doctest: +SKIP
    >>> lat["s50"]["median_ms"] < lat["base"]["median_ms"]                                             # doctest: +SKIP
    True
"""
from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compress.layers import example_batch, is_detector

OPSET = 17


class _DetectorGraph(nn.Module):
    """Tensor (1xCxHxW) in, (boxes, scores, labels) out: a torchvision detector as one ONNX graph."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x):
        out = self.detector([x[0]])[0]
        return out["boxes"], out["scores"], out["labels"]


def export_onnx(model: nn.Module, path) -> Path:
    """Write `model` (float or ModelOpt QAT) as ONNX at its own input size, batch 1."""
    model = model.eval()
    graph = _DetectorGraph(model) if is_detector(model) else model
    names = ["boxes", "scores", "labels"] if is_detector(model) else ["logits"]
    dynamic = {n: {0: "detections"} for n in names} if is_detector(model) else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")         # tracer warnings from torchvision's control flow
        torch.onnx.export(graph, (example_batch(model),), buf, input_names=["input"], output_names=names,
                          opset_version=OPSET, dynamic_axes=dynamic, dynamo=False, do_constant_folding=True)
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path


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
    """{name: {median_ms, p90_ms, runs}} for every ONNX file, timed in interleaved rounds.

    `threads` is ONNX Runtime's intra-op thread count (1: steadier on a shared machine and closest to
    a per-stream budget); `progress(done, total)` is called after each round.
    """
    sessions = {name: ort_session(p, threads) for name, p in onnx_files.items()}
    feeds = {name: _feed(s) for name, s in sessions.items()}
    for name, s in sessions.items():
        for _ in range(warmup):
            s.run(None, feeds[name])
    times = {name: [] for name in sessions}
    order = list(sessions)
    for r in range(rounds):
        # alternate direction each round so no variant always runs right after the same neighbour
        for name in (order if r % 2 == 0 else order[::-1]):
            s, feed = sessions[name], feeds[name]
            for _ in range(runs_per_round):
                t0 = time.perf_counter()
                s.run(None, feed)
                times[name].append((time.perf_counter() - t0) * 1e3)
        if progress:
            progress(r + 1, rounds)
    return {name: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "runs": len(t),
                   "threads": threads} for name, t in times.items()}
