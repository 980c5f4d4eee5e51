"""The demo's five steps, each a call into the package that owns it; each says one line per model.

compress, export and runtime are imported inside the functions: `edge` is their dependency, and only
the composition roots (`edge.app.cli`, `edge.app.demo`) may reach back up to them.
"""
from __future__ import annotations

import time
from pathlib import Path

TASKS = ("plane", "orientation", "anatomy", "detection")
BUNDLES = {"cpu-fp32": ("cpu", "fp32"), "jetson-int8": ("jetson", "int8")}


SWEEP_SEED = 100          # training sweeps are seeds S+100.. ; the loop runs on sweep S+2


def make_data(plan, seed: int, say) -> dict:
    """Step 1: phantom frames rendered once for all tasks: i.i.d. frames (balanced planes and
    orientations) and short probe sweeps of `plan.train_sweeps` other fetuses, interleaved in a seeded
    order so any first N frames hold both; held out: i.i.d. frames of seed S+1."""
    import numpy as np

    from edge.ml.data.fpus23 import samples_from_frames
    from edge.core.phantom import sample, sweep

    h, w = plan.frame
    iid = samples_from_frames(sample(seed, plan.train_frames, h, w))
    swept = [s for k in range(plan.train_sweeps)
             for s in samples_from_frames(list(sweep(seed + SWEEP_SEED + k, plan.sweep_frames, h, w)))]
    swept = [swept[i] for i in np.random.default_rng([seed, SWEEP_SEED]).permutation(len(swept))]
    train = [s for pair in zip(iid, swept) for s in pair] + iid[len(swept):] + swept[len(iid):]
    test = samples_from_frames(sample(seed + 1, plan.test_frames, h, w))
    summary = {"frame": [h, w], "train_frames": len(train), "iid_frames": len(iid), "sweep_frames": len(swept),
               "train_sweeps": plan.train_sweeps, "sweep_seeds": [seed + SWEEP_SEED, seed + SWEEP_SEED + plan.train_sweeps - 1],
               "test_frames": len(test), "train_seed": seed, "test_seed": seed + 1,
               "source": "edge.core.phantom.sample and .sweep (in memory)"}
    say(f"1/5 data: {len(iid)} i.i.d. training frames (seed {seed}) and {len(swept)} frames of "
        f"{plan.train_sweeps} sweeps of other fetuses (seeds {seed + SWEEP_SEED}..), {len(test)} held-out "
        f"frames (seed {seed + 1}) of the phantom at {h}x{w}")
    return {"train": train, "test": test, "summary": summary}


def _task_sets(task_name: str, spec: dict, train, test, augment: bool = True):
    """(task with the labels found, train TaskDataset, test TaskDataset) for one task."""
    from edge.ml.data import label_for_task
    from edge.ml.data.dataset import TaskDataset
    from edge.core.tasks import get_task

    train_s, labels = label_for_task(train, task_name)
    test_s, _ = label_for_task(test, task_name)
    task = get_task(task_name).with_labels(labels)
    return task, TaskDataset(train_s, task, spec, augment=augment), TaskDataset(test_s, task, spec)


def _recipe(plan, task_name: str) -> dict:
    if task_name == "detection":
        from edge.app.demo.plan import DETECTOR_KWARGS

        return {"model": plan.detector, "input": plan.detector_input, "frames": plan.detector_frames,
                "test": plan.detector_test, "epochs": plan.detector_epochs, "batch": plan.detector_batch,
                "kwargs": {"fpn_channels": plan.detector_fpn, **DETECTOR_KWARGS}}
    return {"model": plan.classifier, "input": plan.classifier_input,
            "frames": plan.train_frames + plan.train_sweeps * plan.sweep_frames,
            "test": plan.test_frames, "epochs": plan.epochs, "batch": plan.batch_size, "kwargs": {}}


def datasets_for(plan, task_name: str, spec: dict, data: dict, n_train: int | None = None):
    r = _recipe(plan, task_name)
    return _task_sets(task_name, spec, data["train"][:n_train or r["frames"]], data["test"][:r["test"]])


def train_models(plan, data: dict, ckpt_dir: Path, seed: int, say) -> dict:
    """Step 2: train each model with `edge.ml.training.fit.fit`, score it on the held-out frames, save a checkpoint."""
    import torch

    from compress.data import METRICS
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.training.evaluate import evaluate_model, headline
    from edge.ml.models import create_model
    from edge.core.tasks import SINGLE_LABEL, get_task
    from edge.ml.training.fit import fit

    results = {}
    for name in TASKS:
        t0, r = time.perf_counter(), _recipe(plan, name)
        torch.manual_seed(seed)
        model = create_model(r["model"], get_task(name), input_size=(r["input"], r["input"]), **r["kwargs"])
        task, train_set, test_set = datasets_for(plan, name, model.edge_config.preprocess, data)
        history = fit(model, train_set, epochs=r["epochs"], lr=1e-3, batch_size=r["batch"],
                      step_size=max(1, round(r["epochs"] * 0.75)), seed=seed)
        metrics = headline(evaluate_model(model, test_set, batch_size=r["batch"]))
        metric = METRICS[task.kind][0]
        path = save_checkpoint(ckpt_dir / f"{name}.pt", model, provenance={
            "data": f"phantom seed {seed}, {len(train_set)} frames {plan.frame[0]}x{plan.frame[1]} (edgekit demo)",
            "epochs": r["epochs"], "metrics": metrics, "history": history})
        results[name] = {"model": r["model"], "input": [r["input"]] * 2, "train_frames": len(train_set),
                         "test_frames": len(test_set), "epochs": r["epochs"], "metric": metric,
                         "score": metrics.get(metric), "metrics": metrics, "checkpoint": str(path),
                         "chance": 1 / len(task.labels) if task.kind == SINGLE_LABEL else None,
                         "preprocess": model.edge_config.preprocess,
                         "seconds": round(time.perf_counter() - t0, 1)}
        chance = f" (chance {results[name]['chance']:.2f})" if results[name]["chance"] else ""
        say(f"2/5 train {name}: {r['model']} {r['input']}x{r['input']}, {len(train_set)} frames x "
            f"{r['epochs']} epoch{'s' * (r['epochs'] != 1)} -> {metric} {_fmt(metrics.get(metric))} on "
            f"{len(test_set)} held-out frames{chance} [{results[name]['seconds']:.0f} s]")
    return results


def compress_models(plan, data: dict, trained: dict, out: Path, say) -> dict:
    """Step 3: `compress.sweep` at one structured ratio, with INT8 (QAT; the detector: calibration only); keeps the report's figures."""
    from compress.sweep import SweepSettings, sweep
    from compress.report import to_markdown

    results = {}
    for name, t in trained.items():
        t0 = time.perf_counter()
        int8 = name != "detection" or plan.detector_int8
        n = plan.compress_frames if name != "detection" else min(plan.compress_frames, plan.detector_frames)
        _, train_set, test_set = datasets_for(plan, name, t["preprocess"], data, n_train=n)
        batch = plan.detector_batch if name == "detection" else plan.batch_size
        report = sweep(t["checkpoint"], (train_set, test_set), out / name, SweepSettings(
            ratios=(plan.ratio,), method="structured", int8=int8, finetune_epochs=plan.finetune_epochs,
            batch_size=batch, calib_samples=min(256, len(train_set)), latency_rounds=plan.latency_rounds,
            progress=False, unpruned_int8=plan.unpruned_int8,
            qat_epochs=plan.detector_qat_epochs if name == "detection" else None))
        rows = {v["name"]: v for v in report["variants"]}
        pruned = f"structured-{round(plan.ratio * 100)}"
        results[name] = {
            "dir": str(out / name), "int8": int8, "markdown": to_markdown(report),
            "checkpoints": {"fp32": rows[pruned]["checkpoint"],
                            "int8": rows[f"{pruned}-int8"]["checkpoint"] if int8 else None},
            "variants": [_variant_row(v) for v in report["variants"]],
            "seconds": round(time.perf_counter() - t0, 1)}
        say(f"3/5 compress {name}: " + ", ".join(f"{v['name']} {v['metric']} {_fmt(v['value'])}"
                                                 for v in report["variants"])
            + f"; pruned MACs x{rows[pruned]['macs_ratio']}"
            + ("" if int8 else "; INT8 skipped for the detector (DemoPlan.detector_int8)")
            + ("; detector INT8 by calibration only (DemoPlan.detector_qat_epochs)"
               if name == "detection" and int8 and not plan.detector_qat_epochs else "")
            + f" [{results[name]['seconds']:.0f} s]")
    return results


def _variant_row(v: dict) -> dict:
    return {"name": v["name"], "precision": v["precision"], "achieved": v["achieved"], "params": v["params"],
            "macs": v["macs"], "weights_bytes": v["weights_bytes"], "metric": v["metric"], "value": v["value"],
            "delta_points": v.get("delta_points"), "median_ms": v["latency_ms"].get("median_ms"),
            "speedup": v.get("speedup"), "qdq_pairs": v["latency_ms"].get("qdq_pairs"),
            "checkpoint": v["checkpoint"]}


def export_bundles(plan, sweeps: dict, out: Path, say) -> dict:
    """Step 4: the pruned models as an FP32 bundle for a CPU, their QAT twins as an INT8 bundle for a Jetson."""
    from export.bundle import export_bundle

    bundles = {}
    for key, (target, precision) in BUNDLES.items():
        t0 = time.perf_counter()
        ckpts = [s["checkpoints"][precision] for s in sweeps.values() if s["checkpoints"][precision]]
        left_out = [t for t, s in sweeps.items() if not s["checkpoints"][precision]]
        path = out / f"bundle-{key}"
        warnings = []
        manifest = export_bundle(ckpts, target, precision, path, force=True, parity_frames=plan.parity_frames,
                                 log=lambda m, warnings=warnings: warnings.append(m) if m.startswith("warning") else None)
        models = [{"name": m["name"], "task": m["task"], "precision": v["precision"], "onnx": v["onnx"],
                   "parity": _parity(v.get("parity") or {})}
                  for m in manifest["models"] for v in [m, *m.get("fallbacks", [])]]
        bundles[key] = {"path": str(path), "target": target, "precision": precision, "models": models,
                        "left_out": left_out, "warnings": warnings,
                        "seconds": round(time.perf_counter() - t0, 1)}
        passed = sum(m["parity"].get("passed", False) for m in models)
        say(f"4/5 export {path.name}: {len(manifest['models'])} models, {len(models)} ONNX files "
            f"({', '.join(sorted({m['precision'] for m in models}))}), parity passed {passed}/{len(models)}"
            + (f"; left out: {', '.join(left_out)} (no INT8 checkpoint)" if left_out else "")
            + f" [{bundles[key]['seconds']:.0f} s]")
    return bundles


def _parity(p: dict) -> dict:
    keep = ("metric", "required", "passed", "frames", "reference")
    out = {k: p[k] for k in keep if k in p}
    if p.get("metric"):
        out["value"] = p.get(p["metric"])
    return out


def run_loop(plan, bundle, seed: int, out: Path, say, serve: str | None = None,
             serve_token: str | None = None) -> tuple[dict, dict]:
    """Step 5: `runtime.run` on the CPU bundle, headless, on a phantom probe sweep the models never saw;
    returns the run's summary and its correctness against the phantom's truth (`edge.app.demo.correctness`).

    Every frame's answers (and the sweep's truth, and the plane_found events) go to out/run.jsonl; the
    loop's console line per frame goes to stderr with the progress lines, so stdout keeps only the report."""
    import contextlib
    import sys

    import runtime
    from edge.app.demo.correctness import score_run
    from runtime.outputs import Collect

    h, w = plan.frame
    source = f"phantom:{seed + 2}?width={w}&height={h}&realtime={int(plan.realtime)}"
    say(f"5/5 run: {Path(bundle).name} on {source}, {plan.run_frames} frames, headless -> {out.name}")
    collect = Collect()
    with contextlib.redirect_stdout(sys.stderr):
        summary = runtime.run(bundle, source=source, backend="auto", headless=True, frames=plan.run_frames,
                              json_out=out, log=lambda m: say(f"5/5 run: {m}"), outputs=[collect],
                              serve=serve, serve_token=serve_token)
    correctness = score_run(bundle, collect.results, collect.infos, collect.events)
    say(f"5/5 run: {summary['frames']} frames at {summary['fps']:.1f} FPS, dropped {summary.get('dropped', 0)}, "
        f"{summary['events']['count']} plane_found events")
    for name, m in correctness["models"].items():
        shown = {k: v for k, v in m.items() if k in ("accuracy", "state_accuracy", "retrieval_recall",
                                                     "retrieval_precision", "exact_match", "mAP50",
                                                     "box_recall_iou50")}
        say(f"5/5 correct {name}: " + (", ".join(f"{k} {_fmt(v)}" for k, v in shown.items()) or "not scored")
            + f" on {m['frames']} frames")
    return summary, correctness


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
