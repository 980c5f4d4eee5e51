"""Run statistics: latency percentiles per model and end to end, where each frame's time went, frame
counts, and memory.

`breakdown_ms` splits every frame (percentiles of per-frame sums over the models):

- `capture`: reading the frame from its source (decode, render, colour conversion; the capture
  thread, so it overlaps inference and is not part of the latency);
- `queued`: how long the frame waited for inference to finish the frame before (a source faster
  than inference; newest-wins bounds it by one frame interval): the loop's pace, not its cost;
- `handoff`: the rest of the capture timestamp -> inference takes the frame: the mailbox and the
  thread switch (`wait_ms` = queued + handoff);
- `preprocess`, `infer`, `postprocess` (with the hysteresis tracker);
- `pipeline`: the rest of `Pipeline.process` (its bookkeeping);
- `outputs`: writing the result to the outputs (after the latency's end, before the next frame);
- `fixed`: handoff + postprocess + pipeline + outputs, the loop's own cost beyond preprocessing and
  inference (the figure to keep under 1 ms).

Memory comes from /proc/self/status (VmRSS, VmHWM) on Linux, `resource` elsewhere; no psutil,
which a Jetson image may not have.
"""
from __future__ import annotations

import sys
import time
from array import array
from collections import defaultdict

import numpy as np

PERCENTILES = (50, 95, 99)
EVENTS_LISTED = 1000  # the summary lists the last N events (a run of days stays bounded); "count" has them all
BREAKDOWN = ("capture", "queued", "handoff", "preprocess", "infer", "postprocess", "pipeline", "outputs", "fixed")


def percentiles(values) -> dict[str, float]:
    """{"p50", "p95", "p99", "mean", "max"} in the values' unit; empty input gives {}."""
    if len(values) == 0:
        return {}
    a = np.asarray(values, np.float64)
    out = {f"p{p}": round(float(np.percentile(a, p)), 3) for p in PERCENTILES}
    out.update(mean=round(float(a.mean()), 3), max=round(float(a.max()), 3))
    return out


def process_memory() -> dict[str, float]:
    """{"rss_mb", "peak_rss_mb"} of this process."""
    try:
        fields = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) / 1024.0  # kB -> MB
        return {"rss_mb": round(fields["VmRSS"], 1), "peak_rss_mb": round(fields.get("VmHWM", 0.0), 1)}
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
        return {"rss_mb": round(peak_mb, 1), "peak_rss_mb": round(peak_mb, 1)}


class RunStats:
    """Collects every result's timings; `summary()` turns them into the end-of-run report."""

    def __init__(self):
        self.started = time.monotonic()
        self.frames = 0
        self.latency_ms: list[float] = []
        self.wait_ms: list[float] = []
        self.stages: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.breakdown: dict[str, array] = {k: array("d") for k in BREAKDOWN}
        self.event_count = 0
        self.events: list[dict] = []

    def add_events(self, events) -> None:
        """Count and keep (the last EVENTS_LISTED of) the run's events (`runtime.temporal`)."""
        for event in events:
            self.event_count += 1
            self.events.append(event)
        del self.events[:-EVENTS_LISTED]

    def add(self, result) -> None:
        """One `runtime.pipeline.Result`, its outputs written (`outputs_ms` set)."""
        self.frames += 1
        latency, wait = result.latency_ms, result.wait_ms
        self.latency_ms.append(latency)
        self.wait_ms.append(wait)
        queued = min(wait, getattr(result, "queued_ms", 0.0))
        handoff = wait - queued
        pre = infer = post = 0.0
        for model, timings in result.timings.items():
            stages = self.stages[model]
            for stage, ms in timings.items():
                stages[stage].append(ms)
            stages["total"].append(sum(timings.values()))
            pre += timings.get("preprocess", 0.0)
            infer += timings.get("infer", 0.0)
            post += timings.get("postprocess", 0.0)
        pipeline = max(0.0, latency - wait - pre - infer - post)
        outputs = getattr(result, "outputs_ms", 0.0)
        b = self.breakdown
        for key, ms in (("capture", getattr(result, "capture_ms", 0.0)), ("queued", queued),
                        ("handoff", handoff), ("preprocess", pre), ("infer", infer), ("postprocess", post),
                        ("pipeline", pipeline), ("outputs", outputs), ("fixed", handoff + post + pipeline + outputs)):
            b[key].append(ms)
        events = getattr(result, "events", None)
        if events:
            self.add_events(events)

    def summary(self, capture: dict | None = None, device_memory: dict | None = None) -> dict:
        seconds = time.monotonic() - self.started
        out = {"frames": self.frames, "seconds": round(seconds, 3),
               "fps": round(self.frames / seconds, 2) if seconds > 0 else 0.0}
        out.update(capture or {})
        out["latency_ms"] = percentiles(self.latency_ms)
        out["wait_ms"] = percentiles(self.wait_ms)
        out["models_ms"] = {m: {s: percentiles(v) for s, v in stages.items()} for m, stages in self.stages.items()}
        out["breakdown_ms"] = {k: percentiles(v) for k, v in self.breakdown.items()}
        out["events"] = {"count": self.event_count, "listed": len(self.events), "list": list(self.events)}
        out["memory"] = process_memory()
        if device_memory:
            out["device_memory"] = device_memory
        return out


def format_summary(s: dict) -> str:
    """The summary as a few human lines (the JSON keeps everything)."""
    def pct(d):
        return "/".join(f"{d.get(k, float('nan')):.1f}" for k in ("p50", "p95", "p99")) + " ms"

    lines = [f"frames {s['frames']} in {s['seconds']:.1f} s ({s['fps']:.1f} FPS); "
             f"captured {s.get('captured', '?')}, dropped {s.get('dropped', '?')}, "
             f"reconnects {s.get('reconnects', 0)}, source failures {s.get('failures', 0)}",
             f"end-to-end latency p50/p95/p99 {pct(s['latency_ms'])}" if s["latency_ms"] else "no frames processed"]
    for model, stages in s["models_ms"].items():
        lines.append(f"  {model}: total {pct(stages['total'])} (infer {pct(stages['infer'])})")
    if s.get("breakdown_ms", {}).get("fixed"):
        lines.append("per frame " + format_breakdown(s["breakdown_ms"]))
    events = s.get("events") or {}
    if events.get("count"):
        from runtime.temporal import describe_event

        shown = events["list"][-5:]
        lines.append(f"events: {events['count']} plane found" + (f" (last {len(shown)})" if events["count"] > len(shown)
                                                                  else "") + ": " + "; ".join(map(describe_event, shown)))
    elif "events" in s:
        lines.append("events: none (no plane crossed, or no model tracks one)")
    mem = s["memory"]
    lines.append(f"memory: RSS {mem['rss_mb']:.0f} MB (peak {mem['peak_rss_mb']:.0f} MB)"
                 + (f"; device {s['device_memory']['used_bytes'] / 2**20:.0f} MB used"
                    if s.get("device_memory") else ""))
    return "\n".join(lines)


BREAKDOWN_NAMES = {"handoff": "hand-off", "fixed": "fixed (hand-off+post+pipeline+outputs)"}


def format_breakdown(breakdown: dict) -> str:
    """`p50/p95 ms: capture 0.41/0.52, hand-off 0.08/0.15, ...`: where a frame's time went, on one line."""
    parts = [f"{BREAKDOWN_NAMES.get(k, k)} {d.get('p50', float('nan')):.2f}/{d.get('p95', float('nan')):.2f}"
             for k, d in breakdown.items() if d]
    return "p50/p95 ms: " + ", ".join(parts)
