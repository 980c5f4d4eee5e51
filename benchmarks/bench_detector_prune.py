"""Detector pruning that pays: where a Faster R-CNN ResNet10's ONNX Runtime time goes, and what
structured pruning of the whole detector (body, FPN, RPN head, ROI box head) buys.

Before, `compress.structured` pruned only the backbone body: at 50% the detector lost 18% of its
MACs and ran 1.09x faster in ONNX Runtime (1.17x here, `body-only-50`), because at 128x128 with bench_train's CPU sizes the ROI box
head (fc6 over 100 RoIs x FPN channels x 7 x 7, fc7) is over half the MACs, and the box head, RoIAlign
and its scatter, and the RPN head all scale with the FPN width the body pruning left alone. This
benchmark measures, on the graph export ships (`compress.latency.write_onnx`):

- `profile`: ONNX Runtime's own node profile of the baseline, structured 50% and body-only 50% at 128x128, one
  thread: the share of time per op type and per part of the model (body, FPN, RPN head, proposals,
  RoIAlign, box head, predictor, and the unnamed NMS/If nodes, which no channel pruning touches);
- `latency`: baseline vs structured 30/50/70% at 128x128 (and, fewer rounds, 224x224: the trained
  weights in a 224 model), one intra-op thread and ORT's default, interleaved rounds, medians;
- `map`: a baseline trained briefly on phantom frames, each ratio pruned from it and fine-tuned with
  the sweep's recipe (`compress.data.finetune`), mAP@[.5:.95] on held-out phantom frames of another
  seed; the baseline gets the same fine-tuning as a control (`baseline-ft`), so a delta is the
  pruning's and not the extra epochs' (a briefly trained baseline still improves with more);
- `body-only-50`: the old scope (backbone body only, FPN and heads dense) at 50%, pruned, fine-tuned,
  scored and timed beside the others: what the change buys at the same ratio;
- `report`: the rows `edgekit compress` writes for these variants (`compress.report.build_report`:
  params, MACs, latency, speed-up), also as `<out stem>/sweep.md`.

    nice -n 10 python benchmarks/bench_detector_prune.py --out runs/bench_detector_prune.json

(9-10.5 min on a shared 2-core machine at load average 5-7.)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# ORT node names carry the PyTorch module path; the parts of a Faster R-CNN in the order they run
PARTS = (("/transform", "transform"), ("/backbone/body", "backbone.body"), ("/backbone/fpn", "backbone.fpn"),
         ("/rpn/head", "rpn.head"), ("/rpn/", "rpn proposals (anchors, decode, top-k)"),
         ("/roi_heads/box_roi_pool", "roi_heads.box_roi_pool (RoIAlign, level scatter)"),
         ("/roi_heads/box_head", "roi_heads.box_head (fc6, fc7)"),
         ("/roi_heads/box_predictor", "roi_heads.box_predictor"),
         ("/roi_heads/", "roi_heads postprocess"))


def _part(node: str) -> str:
    return next((label for key, label in PARTS if key in node), "unnamed (NMS, If branches, glue)")


def ort_profile(path, runs: int = 20, threads: int = 1) -> dict:
    """Share of ONNX Runtime node time per op type and per model part (its own profiler), and the
    median wall time of the profiled runs."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(path).with_suffix(""))
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in inp.shape],
                                                      dtype=np.float32)}
    wall = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        wall.append((time.perf_counter() - t0) * 1e3)
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    by_op, by_part = Counter(), Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
            by_part[_part(e["name"])] += e["dur"]
    total = sum(by_op.values())

    def shares(c: Counter, n: int | None = None) -> dict:
        return {k: round(v / total, 4) for k, v in c.most_common(n)}

    return {"median_ms": round(float(np.median(wall)), 3), "node_ms_per_run": round(total / runs / 1e3, 3),
            "by_part": shares(by_part), "by_op": shares(by_op, 12)}


def _at_size(model, size: int, kwargs: dict):
    """The same weights (pruned structure included) in a detector built for `size` x `size` input."""
    from edge.ml.checkpoint import model_shapes, resize_to_shapes
    from edge.ml.models import create_model

    cfg = model.edge_config
    net = create_model(cfg.name, cfg.task, input_size=(size, size), **kwargs)
    resize_to_shapes(net, model_shapes(model))
    net.load_state_dict(model.state_dict())
    return net.eval()


def _latency(models: dict, work: Path, tag: str, rounds: int, threads: tuple) -> dict:
    from compress.latency import measure_latency, write_onnx

    files = {name: write_onnx(m, work / f"{tag}-{name}.onnx") for name, m in models.items()}
    out = {}
    for th in threads:
        lat = measure_latency(files, rounds=rounds, runs_per_round=5, threads=th)
        base = lat["baseline"]["median_ms"]
        out["default" if th == 0 else f"{th}-thread"] = {
            name: {"median_ms": round(v["median_ms"], 3), "p90_ms": round(v["p90_ms"], 3),
                   "speedup": round(base / v["median_ms"], 3)} for name, v in lat.items()}
    return {"files": files, "threads": out}


def prune_body_only(model, ratio: float, steps: int = 8):
    """What `compress.structured` did before the FPN and heads were in scope (the control): channels of
    the backbone body only, FPN outputs, RPN and ROI heads dense, `ratio` of the body's weights removed
    (the channel ratio found by bisection, as the old scope measured it)."""
    import torch_pruning as tp

    from compress.layers import count_weights, removed_fraction
    from compress.structured import make_importance
    from edge.ml.inputs import example_input

    before = count_weights(model.backbone.body)
    lo, hi, best = 0.0, 0.9, None
    for _ in range(steps):
        r = (lo + hi) / 2
        net = copy.deepcopy(model).eval()
        tp.pruner.MagnitudePruner(net.backbone, example_input(net), make_importance("l1"), pruning_ratio=r,
                                  ignored_layers=[net.backbone.fpn], round_to=8).step()
        got = removed_fraction(before, count_weights(net.backbone.body))
        if best is None or abs(got - ratio) < abs(best[1] - ratio):
            best = (net, got, r)
        lo, hi = (r, hi) if got < ratio else (lo, r)
    net, got, r = best
    return net, {"step": "prune", "method": "structured", "ratio": ratio, "achieved": round(got, 4),
                 "channel_ratio": round(r, 4), "scope": "backbone.body", "note": "the old scope (control)"}


def _costs(model) -> dict:
    from compress.layers import count_weights
    from edge.ml.report import model_report

    r = model_report(model)
    widths = {"fpn": model.backbone.fpn.layer_blocks[0][0].out_channels,
              "rpn_conv": model.rpn.head.conv[0][0].out_channels,
              "fc6": model.roi_heads.box_head.fc6.out_features, "fc7": model.roi_heads.box_head.fc7.out_features,
              "layer4": model.backbone.body.layer4[0].conv2.out_channels}
    return {"params": r["params"], "macs": r["macs"], "prunable_weights": count_weights(model), "widths": widths}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_detector_prune.json")
    ap.add_argument("--ratios", default="0.3,0.5,0.7", help="structured pruning ratios (fraction of weights)")
    ap.add_argument("--size", type=int, default=128, help="detector input (square), bench_train's CPU size")
    ap.add_argument("--sizes-quick", default="224", help="sizes timed quickly with the same weights ('' for none)")
    ap.add_argument("--frames", default="160,80", help="train,test phantom frames (different seeds)")
    ap.add_argument("--epochs", type=int, default=4, help="baseline training epochs (LR /10 for the last)")
    ap.add_argument("--finetune-epochs", type=int, default=2, help="after pruning (the last at a tenth)")
    ap.add_argument("--finetune-frames", type=int, default=80, help="training frames fine-tuning sees")
    ap.add_argument("--lr", type=float, default=5e-4, help="fine-tuning LR (the sweep's default)")
    ap.add_argument("--rounds", type=int, default=12, help="interleaved latency rounds at --size")
    ap.add_argument("--rounds-quick", type=int, default=6, help="interleaved latency rounds at --sizes-quick")
    ap.add_argument("--body-only", type=float, default=0.5,
                    help="also the old scope (backbone body only) at this ratio, as a control (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from bench_train import CPU_DETECTOR
    from compress.data import finetune, score
    from compress.report import build_report, to_markdown
    from compress.structured import prune_structured
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data.dataset import PhantomDataset
    from edge.ml.models import create_model
    from edge.ml.training.fit import fit

    out = Path(args.out)
    work = out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    kwargs = {"fpn_channels": 64, **CPU_DETECTOR}
    ratios = [float(r) for r in args.ratios.split(",") if r]
    n_train, n_test = (int(v) for v in args.frames.split(","))
    result = {"benchmark": "bench_detector_prune", "machine": {
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "cpus": len(os.sched_getaffinity(0)), "load_avg_start": os.getloadavg()},
        "settings": vars(args), "model": {"name": "fasterrcnn_resnet10", "kwargs": kwargs}}
    t_start = time.perf_counter()

    def save():
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    # 1. a baseline, trained briefly on phantom frames
    torch.manual_seed(args.seed)
    base = create_model("fasterrcnn_resnet10", task="detection", input_size=(args.size, args.size), **kwargs)
    spec = base.edge_config.preprocess
    size = (args.size, args.size)
    train = PhantomDataset("detection", spec, seed=args.seed, n=n_train, size=size, augment=True)
    test = PhantomDataset("detection", spec, seed=args.seed + 1000, n=n_test, size=size)
    t0 = time.perf_counter()
    fit(base, train, epochs=args.epochs, lr=1e-3, batch_size=8, progress=False, seed=args.seed,
        step_size=max(1, args.epochs - 1))
    base.eval()
    save_checkpoint(work / "baseline.pt", base, provenance={"data": f"phantom seed {args.seed} n={n_train}",
                                                            "epochs": args.epochs})
    result["train"] = {"frames": [n_train, n_test], "epochs": args.epochs, "s": round(time.perf_counter() - t0, 1)}
    print(f"baseline trained in {result['train']['s']} s", file=sys.stderr)

    # 2. prune every ratio, fine-tune each (and the baseline, as the control) with the sweep's recipe
    ft_set = PhantomDataset("detection", spec, seed=args.seed, n=min(args.finetune_frames, n_train), size=size,
                            augment=True)                 # the first frames of the training sweep
    variants = {"baseline": (base, None)}
    for r in ratios:
        t0 = time.perf_counter()
        pruned, info = prune_structured(base, r)
        info["prune_s"] = round(time.perf_counter() - t0, 1)
        variants[f"structured-{round(r * 100)}"] = (pruned, info)
    if args.body_only:
        t0 = time.perf_counter()
        pruned, info = prune_body_only(base, args.body_only)
        info["prune_s"] = round(time.perf_counter() - t0, 1)
        variants[f"body-only-{round(args.body_only * 100)}"] = (pruned, info)
    control = copy.deepcopy(base)
    scores, ft_s = {}, {}
    for name, model in [("baseline", base), ("baseline-ft", control)] + \
            [(n, m) for n, (m, _) in variants.items() if n != "baseline"]:
        if name != "baseline":
            t0 = time.perf_counter()
            finetune(model, ft_set, args.finetune_epochs, args.lr, 8, args.seed, progress=False)
            ft_s[name] = round(time.perf_counter() - t0, 1)
        scores[name] = score(model, test)
        print(f"{name}: mAP {scores[name]['value']}", file=sys.stderr)
    base_map, ctrl_map = scores["baseline"]["value"], scores["baseline-ft"]["value"]
    result["map"] = {name: {"mAP": s["value"], "mAR": s["value2"], "mAP50": s["metrics"].get("mAP50"),
                            "delta_vs_baseline_pts": round(100 * (s["value"] - base_map), 2),
                            "delta_vs_baseline_ft_pts": round(100 * (s["value"] - ctrl_map), 2),
                            "finetune_s": ft_s.get(name)} for name, s in scores.items()}
    result["prune"] = {n: info for n, (_, info) in variants.items() if info}
    result["costs"] = {n: _costs(m) for n, (m, _) in variants.items()}
    save()

    # 3. where the baseline's (and the 50% net's) ONNX Runtime time goes, then latency at every size
    models = {n: m for n, (m, _) in variants.items()}
    lat = _latency(models, work, str(args.size), args.rounds, (1, 0))
    result["latency"] = {str(args.size): lat["threads"]}
    result["profile"] = {n: ort_profile(lat["files"][n]) for n in ("baseline", "structured-50", "body-only-50")
                         if n in lat["files"]}
    save()
    for s in [int(v) for v in args.sizes_quick.split(",") if v]:
        at = {n: _at_size(m, s, kwargs) for n, m in models.items()}
        result["latency"][str(s)] = _latency(at, work, str(s), args.rounds_quick, (1, 0))["threads"]
        result["costs_" + str(s)] = {n: _costs(m) for n, m in at.items()}
        save()

    # 4. the rows `edgekit compress` writes for these variants
    one = result["latency"][str(args.size)]["1-thread"]
    rows = [{"name": n, "precision": "fp32", "method": "structured" if info else None,
             "ratio": info["ratio"] if info else 0.0, "achieved": info["achieved"] if info else 0.0,
             "checkpoint": "-", "model": m, "float": m, "score": scores[n], "prune": info}
            for n, (m, info) in variants.items()]
    report = build_report(rows, {n: {**v, "runs": args.rounds * 5, "threads": 1} for n, v in one.items()},
                          ckpt="bench_detector_prune (in memory)", method="structured")
    (work / "sweep.md").write_text(to_markdown(report))
    result["report"] = [{k: v[k] for k in ("name", "achieved", "params", "macs", "scope_macs", "macs_ratio",
                                           "speedup", "value", "delta_points")} for v in report["variants"]]
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["machine"]["load_avg_end"] = os.getloadavg()
    save()
    print(json.dumps({"map": result["map"], "latency": result["latency"], "report": result["report"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
