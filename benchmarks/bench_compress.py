"""Compression on the phantom, measured: does the FPUS23 recipe hold its accuracy, and is it faster?

For each classifier task (plane, orientation) a ResNet8 baseline is trained with `edge.ml.training.fit.fit` on
in-memory phantom frames, then `compress.sweep` prunes it structurally at 30/50/70% of its weights,
fine-tunes, quantises each (and the unpruned net) to INT8 with ModelOpt QAT, and times every variant
in one interleaved ONNX Runtime CPU run. Train and test frames come from different phantom sweeps
(different seeds). Optionally (--detector) a Faster R-CNN ResNet10 is trained and pruned 70%.

Sizes follow benchmarks/bench_train.py: ResNet8 at 64x64 on 3000 frames x 10 epochs (LR /10 after 8),
scored on 1500 test frames (one frame = 0.07 points). An earlier run on 800 / 600 frames missed the
1-point target on orientation through noise, not the recipe: its baseline overfitted (0.969), and on
1500 test frames the same pruned starts moved between +0.3 and -2.2 points across fine-tuning
settings (3 or 6 epochs, lr 2e-4..5e-4; 1e-4 only underfitted) in no order. On 3000 frames the
default fine-tuning (3 epochs at lr 5e-4, the last at a tenth) keeps orientation within 0.2 point at
every ratio on two seeds, and plane within 0.6. The detector: 128x128, 500 frames, bench_train's CPU
RPN/ROI sizes as model kwargs, but 12 epochs (LR /10 after 9): after bench_train's 5 epochs (mAP 0.67)
the 70% pruned net beat its baseline by 5 points with 3 more epochs, so the baseline had not
converged and the comparison meant nothing.

Targets checked (and written to the JSON with the figures behind them):
- every structured variant (30/50/70% x FP32/INT8) within 1.0 accuracy point of the FP32 baseline;
- structured 50%: >= 1.5x lower median ORT CPU latency than the baseline, 70%: >= 2x (same run);
- INT8 weight memory (counted from the quantizers, scales included) within 5% of FP32 / 4;
- INT8 variants export Q/DQ ONNX that ONNX Runtime CPU runs (timed in the same run);
- Faster R-CNN ResNet10 at 70% structured: mAP@[.5:.95] within 3 points of its baseline.

    nice -n 10 python benchmarks/bench_compress.py --out runs/bench_compress.json [--detector]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train_baseline(model_name, task, size, frames, epochs, step, lr, batch, seed, out_dir, frame_size, **kw):
    import torch

    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data.dataset import PhantomDataset
    from edge.ml.models import create_model
    from edge.ml.training.fit import fit

    torch.manual_seed(seed)
    model = create_model(model_name, task=task, input_size=(size, size), **kw)
    spec = model.edge_config.preprocess
    n_train, n_test = frames
    train = PhantomDataset(task, spec, seed=seed, n=n_train, size=frame_size, augment=True)
    test = PhantomDataset(task, spec, seed=seed + 1000, n=n_test, size=frame_size)
    t0 = time.perf_counter()
    hist = fit(model, train, epochs=epochs, lr=lr, batch_size=batch, progress=True, seed=seed, step_size=step)
    ckpt = save_checkpoint(Path(out_dir) / f"{task}_{model_name}.pt", model,
                           provenance={"data": f"phantom seed {seed} n={n_train}", "epochs": epochs})
    return ckpt, (train, test), {"train_s": round(time.perf_counter() - t0, 1), "final_loss": hist["loss"][-1],
                                 "frames": [n_train, n_test], "epochs": epochs, "step": step,
                                 "model_kwargs": model.edge_config.kwargs}


def classifier_checks(report: dict) -> dict:
    rows = {v["name"]: v for v in report["variants"]}
    base = rows["baseline"]
    structured = [v for v in report["variants"] if v["method"] == "structured"]
    int8 = [v for v in report["variants"] if v["precision"] == "int8"]
    mem = {v["name"]: round(v["int8_bytes_with_scales"] / (v["weights_bytes"]["fp32"] / 4), 4) for v in int8}
    speed = {n: rows[n]["speedup"] for n in ("structured-50", "structured-70") if n in rows}
    return {
        "accuracy_within_1pt": {v["name"]: v["delta_points"] for v in structured},
        "accuracy_within_1pt_ok": all(v["delta_points"] >= -1.0 for v in structured),
        "speedup": speed,
        "speedup_ok": speed.get("structured-50", 0) >= 1.5 and speed.get("structured-70", 0) >= 2.0,
        "int8_memory_over_fp32_quarter": mem,
        "int8_memory_ok": all(abs(r - 1) <= 0.05 for r in mem.values()),
        "int8_runs_in_ort": {v["name"]: {"qdq_pairs": v["latency_ms"]["qdq_pairs"],
                                         "median_ms": round(v["latency_ms"]["median_ms"], 4)} for v in int8},
        "int8_runs_in_ort_ok": all(v["latency_ms"]["qdq_pairs"] > 0 and v["latency_ms"]["median_ms"] > 0 for v in int8),
        "baseline": {"accuracy": base["value"], "macro_f1": base["value2"],
                     "median_ms": round(base["latency_ms"]["median_ms"], 4)},
    }


def summary(report: dict) -> list[dict]:
    return [{"name": v["name"], "achieved": v["achieved"], "params": v["params"], "macs": v["macs"],
             "fp32_mb": round(v["weights_bytes"]["fp32"] / 2 ** 20, 3), "int8_mb": round(v["weights_bytes"]["int8"] / 2 ** 20, 3),
             "median_ms": round(v["latency_ms"]["median_ms"], 4), "speedup": v["speedup"],
             v["metric"]: v["value"], v["metric2"]: v["value2"], "delta_points": v["delta_points"]}
            for v in report["variants"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_compress.json")
    ap.add_argument("--tasks", default="plane,orientation", help="classifier tasks ('' for none)")
    ap.add_argument("--size", type=int, default=64, help="classifier input (square)")
    ap.add_argument("--frame", type=int, default=128, help="phantom frame size (resized to --size)")
    ap.add_argument("--frames", default="3000,1500", help="train,test phantom frames per task")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--step", type=int, default=8, help="baseline LR x0.1 after this many epochs")
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-4, help="fine-tuning LR after pruning (QAT: a tenth)")
    ap.add_argument("--latency-rounds", type=int, default=40)
    ap.add_argument("--detector", action="store_true", help="also Faster R-CNN ResNet10 at 70%%")
    ap.add_argument("--det-size", type=int, default=128)
    ap.add_argument("--det-frames", default="500,300")
    ap.add_argument("--det-epochs", type=int, default=12)
    ap.add_argument("--det-step", type=int, default=9)
    args = ap.parse_args(argv)

    import torch

    from bench_train import CPU_DETECTOR
    from compress.sweep import SweepSettings, sweep

    out = Path(args.out)
    work = out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    frames = tuple(int(v) for v in args.frames.split(","))
    result = {"benchmark": "bench_compress", "machine": {"cpu": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads(), "cpus": len(os.sched_getaffinity(0)),
              "load_avg_start": os.getloadavg()}, "settings": vars(args), "tasks": {}}
    t_start = time.perf_counter()
    for task in [t for t in args.tasks.split(",") if t]:
        t0 = time.perf_counter()
        ckpt, sets, train_info = train_baseline("resnet8", task, args.size, frames, args.epochs, args.step, 1e-3, 32,
                                                0, work, (args.frame, args.frame))
        report = sweep(ckpt, sets, work / task, SweepSettings(
            ratios=(0.3, 0.5, 0.7), method="structured", int8=True, finetune_epochs=args.finetune_epochs,
            lr=args.lr, latency_rounds=args.latency_rounds))
        result["tasks"][task] = {"train": train_info, "checks": classifier_checks(report), "variants": summary(report),
                                 "wall_s": round(time.perf_counter() - t0, 1)}
        out.write_text(json.dumps(result, indent=2) + "\n")
    if args.detector:
        t0 = time.perf_counter()
        dframes = tuple(int(v) for v in args.det_frames.split(","))
        ckpt, sets, train_info = train_baseline("fasterrcnn_resnet10", "detection", args.det_size, dframes,
                                                args.det_epochs, args.det_step, 1e-3, 8, 0, work,
                                                (args.det_size, args.det_size), fpn_channels=64, **CPU_DETECTOR)
        report = sweep(ckpt, sets, work / "detection", SweepSettings(
            ratios=(0.7,), method="structured", int8=False, finetune_epochs=args.finetune_epochs, lr=args.lr,
            batch_size=8, latency_rounds=max(5, args.latency_rounds // 4)))
        rows = {v["name"]: v for v in report["variants"]}
        delta = rows["structured-70"]["delta_points"]
        result["detector"] = {"train": train_info, "variants": summary(report),
                              "wall_s": round(time.perf_counter() - t0, 1),
                              "checks": {"map_within_3pts": delta, "map_within_3pts_ok": delta is not None and delta >= -3.0,
                                         "baseline_map": rows["baseline"]["value"], "baseline_mar": rows["baseline"]["value2"]}}
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["machine"]["load_avg_end"] = os.getloadavg()
    result["all_ok"] = all(v for t in result["tasks"].values() for k, v in t["checks"].items() if k.endswith("_ok")) and \
        all(v for k, v in result.get("detector", {}).get("checks", {}).items() if k.endswith("_ok"))
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({t: r["checks"] for t, r in result["tasks"].items()} | {"detector": result.get("detector", {}).get("checks")},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
