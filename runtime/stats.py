"""Run statistics: latency percentiles per model and end to end, frame counts, and memory.

Memory comes from /proc/self/status (VmRSS, VmHWM) on Linux, `resource` elsewhere; no psutil,
which a Jetson image may not have.
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict

import numpy as np

PERCENTILES = (50, 95, 99)
EVENTS_LISTED = 1000  # the summary lists the last N events (a run of days stays bounded); "count" has them all


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
        self.event_count = 0
        self.events: list[dict] = []

    def add_events(self, events) -> None:
        """Count and keep (the last EVENTS_LISTED of) the run's events (`runtime.temporal`)."""
        for event in events:
            self.event_count += 1
            self.events.append(event)
        del self.events[:-EVENTS_LISTED]

    def add(self, result) -> None:
        self.frames += 1
        self.latency_ms.append(result.latency_ms)
        self.wait_ms.append(result.wait_ms)
        for model, timings in result.timings.items():
            for stage, ms in timings.items():
                self.stages[model][stage].append(ms)
            self.stages[model]["total"].append(sum(timings.values()))
        self.add_events(getattr(result, "events", ()))

    def summary(self, capture: dict | None = None, device_memory: dict | None = None) -> dict:
        seconds = time.monotonic() - self.started
        out = {"frames": self.frames, "seconds": round(seconds, 3),
               "fps": round(self.frames / seconds, 2) if seconds > 0 else 0.0}
        out.update(capture or {})
        out["latency_ms"] = percentiles(self.latency_ms)
        out["wait_ms"] = percentiles(self.wait_ms)
        out["models_ms"] = {m: {s: percentiles(v) for s, v in stages.items()} for m, stages in self.stages.items()}
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
