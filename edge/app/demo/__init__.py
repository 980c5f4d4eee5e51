"""`demo`: the whole edgekit chain on the phantom in one call, the `edgekit demo` verb.

Phantom frames in; the four FPUS23 models trained briefly, pruned and INT8-quantised, exported as an
FP32 bundle for a CPU and an INT8 bundle for a Jetson, and the CPU bundle played through the runtime
loop on a phantom probe sweep, its answers scored against the phantom's truth of every frame
(`report["correctness"]`, `edge.app.demo.correctness`); the figures of every stage out, and
everything under `out`::

    >>> report = demo("edgekit-demo/", quick=True)                         # doctest: +SKIP
    >>> sorted(report["train"]), report["run"]["frames"] > 0               # doctest: +SKIP
    (['anatomy', 'detection', 'orientation', 'plane'], True)

It only composes what the packages already do (`edge.ml.training.fit.fit`, `compress.sweep`,
`export.bundle.export_bundle`, `runtime.run`) at sizes that fit about ten minutes on two CPU cores
(`FULL`), or about a minute (`QUICK`, what CI runs). It is the one module of `edge` that reaches up
into `compress`, `export` and `runtime`: like `edge.app.cli`, it is a composition root, so those imports
stay inside the step functions (`edge.app.demo.steps`) and `import edge` never loads them.
"""
from __future__ import annotations

import dataclasses
import json
import time

from edge.app.demo.plan import FULL, QUICK, DemoPlan
from edge.core.errors import BadInputError

__all__ = ["demo", "DemoPlan", "FULL", "QUICK"]


class _Clock:
    """Prefixes every progress line with the seconds since the demo started."""

    def __init__(self, log):
        self.t0, self._log = time.perf_counter(), log

    def __call__(self, msg: str) -> None:
        self._log(f"[{self.elapsed():6.1f}s] {msg}")

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def demo(out="edgekit-demo", quick: bool = False, force: bool = False, frames: int | None = None,
         seed: int = 0, plan: DemoPlan | None = None, log=print, serve: str | None = None,
         serve_token: str | None = None) -> dict:
    """Run the chain into `out`; returns the report (also written to out/demo.json and demo.md).

    `frames` overrides how many frames the runtime loop processes; `plan` replaces FULL/QUICK;
    `serve` ("[HOST:]PORT", "" for the default) shows the loop step live in a browser (`runtime.serve`).
    """
    plan = plan or (QUICK if quick else FULL)
    if frames is not None:
        if frames < 1:
            raise BadInputError(f"--frames {frames}: need at least 1")
        plan = dataclasses.replace(plan, run_frames=frames)
    from export.atomic import check_destination

    out = check_destination(out, force)       # a file, or a non-empty folder without force: refused
    from edge.app.demo import steps
    from edge.app.demo.text import render
    from edge.ml.training.batches import torch_threads       # torch: a missing install fails before any write

    out.mkdir(parents=True, exist_ok=True)

    say = _Clock(log)
    seconds = {}

    def timed(name, fn, *args):
        t = time.perf_counter()
        result = fn(*args)
        seconds[name] = round(time.perf_counter() - t, 1)
        return result

    with torch_threads():
        data = timed("data", steps.make_data, plan, seed, say)
        trained = timed("train", steps.train_models, plan, data, out / "checkpoints", seed, say)
        sweeps = timed("compress", steps.compress_models, plan, data, trained, out / "compress", say)
        bundles = timed("export", steps.export_bundles, plan, sweeps, out, say)
    summary, correctness = timed("run", steps.run_loop, plan, bundles["cpu-fp32"]["path"], seed,
                                 out / "run.jsonl", say, serve, serve_token)
    seconds["total"] = round(say.elapsed(), 1)
    report = {"format": "edgekit.demo", "version": 1, "out": str(out), "quick": plan is QUICK or quick,
              "plan": dataclasses.asdict(plan), "data": data["summary"], "train": trained,
              "compress": sweeps, "bundles": bundles,
              "run": summary, "correctness": correctness, "seconds": seconds}
    (out / "demo.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "demo.md").write_text(render(report) + "\n")
    say(f"done: wrote {out}/demo.json and demo.md")
    return report
