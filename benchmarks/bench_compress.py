"""Compression on the phantom, measured: does the FPUS23 recipe hold its accuracy, and is it faster?

For each classifier task (plane, orientation) a ResNet8 baseline is trained with `edge.train.fit` on
in-memory phantom frames, then `compress.sweep` prunes it structurally at 30/50/70% of its weights,
fine-tunes, quantises each (and the unpruned net) to INT8 with ModelOpt QAT, and times every variant
in one interleaved ONNX Runtime CPU run. Train and test frames come from different phantom sweeps
(different seeds). Optionally (--detector) a Faster R-CNN ResNet10 is trained and pruned 70%.

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
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train_baseline(model_name, task, size, frames, epochs, lr, batch, seed, out_dir, frame_size, **kw):
    import torch

    from edge.checkpoint import save_checkpoint
    from edge.data.dataset import PhantomDataset
    from edge.models import create_model
    from edge.train import fit

    torch.manual_seed(seed)
    model = create_model(model_name, task=task, input_size=(size, size), **kw)
    spec = model.edge_config.preprocess
    n_train, n_test = frames
    train = PhantomDataset(task, spec, seed=seed, n=n_train, size=frame_size, augment=True)
    test = PhantomDataset(task, spec, seed=seed + 1000, n=n_test, size=frame_size)
    t0 = time.perf_counter()
    hist = fit(model, train, epochs=epochs, lr=lr, batch_size=batch, progress=True, seed=seed,
               step_size=max(1, int(epochs * 0.7)))
    ckpt = save_checkpoint(Path(out_dir) / f"{task}_{model_name}.pt", model,
                           provenance={"data": f"phantom seed {seed} n={n_train}", "epochs": epochs})
    return ckpt, (train, test), {"train_s": round(time.perf_counter() - t0, 1), "final_loss": hist["loss"][-1]}


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
    ap.add_argument("--tasks", default="plane,orientation")
    ap.add_argument("--size", type=int, default=96, help="classifier input (square)")
    ap.add_argument("--frames", default="1200,400", help="train,test phantom frames per task")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--latency-rounds", type=int, default=40)
    ap.add_argument("--detector", action="store_true", help="also Faster R-CNN ResNet10 at 70%%")
    ap.add_argument("--det-size", type=int, default=128)
    ap.add_argument("--det-frames", default="600,150")
    ap.add_argument("--det-epochs", type=int, default=12)
    args = ap.parse_args(argv)

    import torch

    from compress import sweep

    out = Path(args.out)
    work = out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    frames = tuple(int(v) for v in args.frames.split(","))
    result = {"benchmark": "bench_compress", "machine": {"cpu": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads()}, "settings": vars(args), "tasks": {}}
    for task in args.tasks.split(","):
        ckpt, sets, train_info = train_baseline("resnet8", task, args.size, frames, args.epochs, 1e-3, 32, 0, work,
                                                (128, 128))
        report = sweep(ckpt, sets, ratios=(0.3, 0.5, 0.7), method="structured", int8=True,
                       finetune_epochs=args.finetune_epochs, out=work / task, lr=5e-4,
                       latency_rounds=args.latency_rounds)
        result["tasks"][task] = {"train": train_info, "checks": classifier_checks(report), "variants": summary(report)}
        out.write_text(json.dumps(result, indent=2) + "\n")
    if args.detector:
        dframes = tuple(int(v) for v in args.det_frames.split(","))
        ckpt, sets, train_info = train_baseline("fasterrcnn_resnet10", "detection", args.det_size, dframes,
                                                args.det_epochs, 1e-3, 8, 0, work, (160, 160))
        report = sweep(ckpt, sets, ratios=(0.7,), method="structured", int8=False,
                       finetune_epochs=args.finetune_epochs, out=work / "detection", lr=5e-4,
                       batch_size=8, latency_rounds=max(5, args.latency_rounds // 4))
        rows = {v["name"]: v for v in report["variants"]}
        delta = rows["structured-70"]["delta_points"]
        result["detector"] = {"train": train_info, "variants": summary(report),
                              "checks": {"map_within_3pts": delta, "map_within_3pts_ok": delta is not None and delta >= -3.0,
                                         "baseline_map": rows["baseline"]["value"], "baseline_mar": rows["baseline"]["value2"]}}
    result["all_ok"] = all(v for t in result["tasks"].values() for k, v in t["checks"].items() if k.endswith("_ok")) and \
        all(v for k, v in result.get("detector", {}).get("checks", {}).items() if k.endswith("_ok"))
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({t: r["checks"] for t, r in result["tasks"].items()} | {"detector": result.get("detector", {}).get("checks")},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
