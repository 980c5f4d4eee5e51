"""Train the four FPUS23 models on phantom frames of one seed, test on frames of another; writes JSON.

    nice -n 10 python benchmarks/bench_train.py --out runs/bench_train.json
    python benchmarks/bench_train.py --tasks plane --quick          # a smoke run, about a minute

Targets (ResNet8 plane and orientation accuracy >= 0.95, anatomy exact match >= 0.90, Faster R-CNN
ResNet10 mAP@[.5:.95] >= 0.50) on a 2-core CPU within about 10 minutes per model. Beside each CNN, the
floor: logistic regression on 32x32 thumbnails (`edge.ml.baseline`; no box baseline).

The recipe is edgekit's `fit` (Adam lr 1e-3, StepLR gamma 0.1, flip augmentation) sized for a CPU:
frames are rendered at the model's input size, the LR drops once at ~75% of the epochs (the FPUS23
step of 20 never fires in a 15-epoch run either), and the detector samples fewer proposals and ROIs
per image than torchvision's defaults (the phantom has at most four boxes per frame), with a 64-wide
FPN. Wall times include rendering, training and testing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from edge.ml.data import label_for_task
from edge.ml.data.dataset import TaskDataset
from edge.ml.data.fpus23 import samples_from_frames
from edge.ml.training.evaluate import evaluate_model, headline
from edge.ml.models import create_model
from edge.core.phantom import sample
from edge.core.tasks import get_task
from edge.ml.training.fit import fit

# Fewer RPN proposals and sampled ROIs than torchvision's 2000/1000/512: the same losses at a CPU's pace
# (most of a detector's training step is otherwise the box head over 512 ROIs per image). Model kwargs,
# so the checkpoint records them and a reloaded detector proposes and samples the same.
CPU_DETECTOR = {"rpn_pre_nms_top_n_train": 600, "rpn_pre_nms_top_n_test": 600, "rpn_post_nms_top_n_train": 300,
                "rpn_post_nms_top_n_test": 100, "box_batch_size_per_image": 32}
CLASSIFIER = {"model": "resnet8", "kwargs": {}, "size": 64, "n_train": 3000, "n_test": 1000, "epochs": 10,
              "step": 8, "batch": 32, "lr": 1e-3}
RECIPES = {
    "plane": {**CLASSIFIER, "metric": "accuracy", "target": 0.95},
    "orientation": {**CLASSIFIER, "metric": "accuracy", "target": 0.95},
    "anatomy": {**CLASSIFIER, "metric": "exact_match", "target": 0.90},
    "detection": {"model": "fasterrcnn_resnet10", "kwargs": {"fpn_channels": 64, **CPU_DETECTOR}, "size": 128,
                  "n_train": 500, "n_test": 300, "epochs": 5, "step": 4, "batch": 8, "lr": 1e-3, "metric": "mAP",
                  "target": 0.50},
}
QUICK = {"n_train": 160, "n_test": 80, "epochs": 2, "step": 2}


def phantom(task: str, seed: int, n: int, size: int):
    frames = sample(seed, n, size, size)
    samples, labels = label_for_task(samples_from_frames(frames), task)
    return frames, samples, labels


def baseline(task: str, train_frames, test_frames) -> dict | None:
    try:
        from edge.ml.baseline import logistic_regression_baseline
    except ImportError:
        return None
    if task == "detection":
        return None
    return logistic_regression_baseline(train_frames, test_frames, task, size=32)


def run_task(task: str, r: dict, train_seed: int, test_seed: int, progress: bool) -> dict:
    t0 = time.perf_counter()
    train_frames, train_s, labels = phantom(task, train_seed, r["n_train"], r["size"])
    test_frames, test_s, _ = phantom(task, test_seed, r["n_test"], r["size"])
    task_obj = get_task(task).with_labels(labels)
    torch.manual_seed(train_seed)
    net = create_model(r["model"], task_obj, input_size=(r["size"], r["size"]), **r["kwargs"])
    spec = net.edge_config.preprocess
    t1 = time.perf_counter()
    history = fit(net, TaskDataset(train_s, task_obj, spec, augment=True), epochs=r["epochs"], lr=r["lr"],
                  batch_size=r["batch"], step_size=r["step"], seed=train_seed, progress=progress)
    t2 = time.perf_counter()
    metrics = evaluate_model(net, TaskDataset(test_s, task_obj, spec), batch_size=r["batch"], progress=progress)
    t3 = time.perf_counter()
    base = baseline(task, train_frames, test_frames)
    score = metrics[r["metric"]] or 0.0
    return {"task": task, "model": r["model"], "kwargs": r["kwargs"], "input": [r["size"], r["size"]],
            "train_seed": train_seed, "test_seed": test_seed, "n_train": len(train_s), "n_test": len(test_s),
            "recipe": {k: r[k] for k in ("epochs", "step", "batch", "lr")},
            "loss": history["loss"], "steps": history["steps"],
            "metric": r["metric"], "score": score, "target": r["target"], "met": score >= r["target"],
            "metrics": headline(metrics), "per_class": metrics.get("per_class") or metrics.get("per_class_AP"),
            "confusion_matrix": metrics.get("confusion_matrix"), "baseline_lr32": base,
            "seconds": {"data": round(t1 - t0, 1), "train": round(t2 - t1, 1), "test": round(t3 - t2, 1),
                        "wall": round(t3 - t0, 1)}}


def table(rows: list[dict]) -> str:
    head = f"{'task':<12} {'model':<20} {'input':>7} {'train/test':>10} {'ep':>3} {'metric':<12} {'CNN':>6} " \
           f"{'target':>6} {'met':>4} {'LR32':>6} {'wall s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        b = r["baseline_lr32"] or {}
        base = b.get("exact_match", b.get("accuracy"))
        lines.append(f"{r['task']:<12} {r['model']:<20} {r['input'][0]:>3}x{r['input'][1]:<3} "
                     f"{r['n_train']:>5}/{r['n_test']:<4} {r['recipe']['epochs']:>3} {r['metric']:<12} "
                     f"{r['score']:>6.3f} {r['target']:>6.2f} {'yes' if r['met'] else 'NO':>4} "
                     f"{'n/a' if base is None else f'{base:.3f}':>6} {r['seconds']['wall']:>7.0f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="plane,orientation,anatomy,detection")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_train.json"))
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--test-seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="Few frames and epochs: checks the plumbing, not the targets.")
    ap.add_argument("--progress", action="store_true", help="Show progress bars (on a terminal).")
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in RECIPES]
    if unknown:
        ap.error(f"--tasks {unknown}: choose from {', '.join(RECIPES)}")
    report = {"machine": {"cpus": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
                          "torch": torch.__version__, "python": platform.python_version(),
                          "load_avg_start": os.getloadavg()},
              "quick": args.quick, "results": []}
    for task in tasks:
        recipe = {**RECIPES[task], **(QUICK if args.quick else {})}
        report["results"].append(run_task(task, recipe, args.train_seed, args.test_seed, args.progress))
        report["machine"]["load_avg_end"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))           # after every task: a long run keeps what it has
        print(table(report["results"][-1:]).splitlines()[-1], flush=True)
    print(table(report["results"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
