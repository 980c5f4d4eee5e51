"""Issue 14's targets: `edgekit nas` on phantom sweeps, for the `cpu` target, against ResNet8.

    python benchmarks/bench_nas.py --out runs/bench_nas.json [--task plane] [--trials 40] [--workers 2]
                                   [--work DIR] [--reuse] [--quick]

Steps (each timed): `data synth` of the training set and of an unseen set, as bench_sweeps makes them
(4,800 frames of 48 fetuses, seed 0; 3,200 frames of 16 other fetuses, seed 1000); `edgekit nas` (the
CLI, as a user runs it) with `--budget-ratio 0.5`: half of ResNet8's latency at 64x64, taken from the
anchor the search times every candidate beside (ONNX Runtime CPU, one thread, thread CPU time: the
least of three medians; a separate measurement a minute earlier read 17% more on this host);
ResNet8 trained with the same final recipe; both scored on the unseen sweeps
(`edgekit eval --split all`); the found net and ResNet8 timed side by side in the same rounds after
the search (the target: at most half); the latency model fitted on 20 random architectures and
scored against 20 other random ones (median absolute % error); the found checkpoint through
`compress` (structured 50% + INT8 QAT), `export` (cpu fp32, jetson int8) and `edgekit run` on the
phantom. The JSON holds every figure, the wall times and a pass/fail per target.

`--quick` shrinks the data (800 training / 400 unseen frames, 8 and 4 sweeps), proxy training (2
epochs) and the final training (3 epochs), to prove the path end to end in minutes; its figures are
not the targets' (they say so).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweeps import TRAIN, UNSEEN, _figures, _timed  # the sweep-quality issue's data: 48 fetuses, 16 unseen

SIZE = (130, 224)
INPUT = (64, 64)
FULL = {"train": TRAIN, "unseen": UNSEEN,
        "proxy_epochs": 3, "epochs": 8, "finetune_epochs": 3}
QUICK = {"train": {"frames": 800, "streams": 8, "seed": 0}, "unseen": {"frames": 400, "streams": 4, "seed": 1000},
         "proxy_epochs": 2, "epochs": 3, "finetune_epochs": 1}
TARGETS = {"points_vs_resnet8": -1.0, "latency_model_error_pct": 10.0, "search_minutes": 30.0}


def _edgekit(*args, capture: bool = False) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("edgekit")
    proc = subprocess.run([str(exe), *map(str, args)], text=True, stdout=subprocess.PIPE if capture else None)
    if proc.returncode != 0:
        raise RuntimeError(f"edgekit {' '.join(map(str, args[:3]))} ... exited {proc.returncode}")
    return proc


def side_by_side(found: Path, resnet8: Path, rounds: int = 40) -> dict:
    """The found net and ResNet8 timed in the same interleaved rounds on a quiet machine (the search
    measured its candidates one at a time, beside the other worker's training)."""
    from compress.nas.costs import measure_models
    from edge.ml.checkpoint import load_model

    ms = measure_models({"found": load_model(found)[0].eval(), "resnet8": load_model(resnet8)[0].eval()}, rounds=rounds)
    return {"found_ms": ms["found"]["median_ms"], "resnet8_ms": ms["resnet8"]["median_ms"],
            "found_wall_ms": ms["found"]["wall_ms"], "resnet8_wall_ms": ms["resnet8"]["wall_ms"],
            "ratio": round(ms["found"]["median_ms"] / ms["resnet8"]["median_ms"], 3), "rounds": rounds}


def latency_model_error(n: int = 20, seed: int = 11) -> dict:
    """Fit the latency model on `n` random architectures, score it on `n` others (both measured here)."""
    import numpy as np

    from compress.nas.costs import LatencyModel, error_summary, measure_models
    from compress.nas.space import SearchSpace
    from edge.ml.models import create_model

    space = SearchSpace(resolutions=((48, 48), INPUT, (80, 80)))
    rng = np.random.default_rng(seed)
    archs, seen = [], set()
    while len(archs) < 2 * n:
        a = space.sample(rng)
        if a.key() not in seen:
            archs.append(a)
            seen.add(a.key())
    models = {a.key(): create_model("resnet_nas", "plane", input_size=a.input_size, **a.model_kwargs()).eval()
              for a in archs}
    ms = measure_models(models, rounds=20)
    fit, test = archs[:n], archs[n:]
    model = LatencyModel.fit(fit, [ms[a.key()]["median_ms"] for a in fit], f"fitted on {n} random nets")
    pred = [model.predict(a) for a in test]
    meas = [ms[a.key()]["median_ms"] for a in test]
    return {**error_summary(pred, meas), "fitted_on": n, "model": model.to_dict(),
            "nets": [{"key": a.key(), "measured_ms": m, "predicted_ms": round(p, 4)} for a, m, p in zip(test, meas, pred)]}


def run(work: Path, task: str, trials: int, workers: int, quick: bool, reuse: bool, archs: int,
        seeds: int = 3) -> dict:
    from edge.ml.data.synth import synth
    from edge.ml.training.evaluate import evaluate
    from edge.ml.training.train import train

    cfg = QUICK if quick else FULL
    res: dict = {"task": task, "quick": quick, "trials": trials, "workers": workers, "input": list(INPUT),
                 "train_data": {**cfg["train"], "size": list(SIZE)}, "unseen_data": {**cfg["unseen"], "size": list(SIZE)},
                 "proxy_epochs": cfg["proxy_epochs"], "epochs": cfg["epochs"]}
    train_dir, unseen_dir = work / "train", work / "unseen"
    for name, d, spec in (("synth-train", train_dir, cfg["train"]), ("synth-unseen", unseen_dir, cfg["unseen"])):
        if not (reuse and d.exists()):
            _timed(res, name, synth, d, frames=spec["frames"], seed=spec["seed"], size=SIZE, streams=spec["streams"])
    out = work / "nas"
    if reuse and (out / "nas.json").exists():          # a finished search: its own budget and timings
        rep = json.loads((out / "nas.json").read_text())
        res["reused_search"] = str(out / "nas.json")
        res.setdefault("seconds", {})["nas"] = round(rep["search_seconds"] + rep.get("finalists_seconds", 0), 1)
    else:
        if out.exists():
            shutil.rmtree(out)              # a fresh study: the budget is re-measured every run
        proc = _timed(res, "nas", _edgekit, "nas", "--task", task, "--data", train_dir, "--out", out, "--target",
                      "cpu", "--budget-ratio", 0.5, "--input", f"{INPUT[0]}x{INPUT[1]}", "--trials", trials,
                      "--workers", workers, "--proxy-epochs", cfg["proxy_epochs"], "--epochs", cfg["epochs"], "--json",
                      capture=True)
        rep = json.loads(proc.stdout)
    res["budget_ms"] = rep["budget"]["budget_ms"]
    r8_ms = res["resnet8_ms"] = rep["latency"]["anchor"]["ms"]
    res["nas"] = {k: rep.get(k) for k in ("budget", "latency", "study", "best", "final", "finalists", "selection", "search_seconds",
                                           "finalists_seconds", "space", "proxy")}
    res["nas"]["front"] = [r for r in rep["trials"] if r["number"] in rep["front"]]
    res["nas"]["references"] = rep["references"]
    res["nas"]["statuses"] = {s: sum(r["status"] == s for r in rep["trials"]) for s in ("trained", "stopped", "skipped")}
    found = Path(rep["final"]["checkpoint"])
    arch = rep["final"]["arch"]
    # one training run says little: on these 16 unseen sweeps ResNet8 read 0.933, 0.894 and 0.898
    # macro-F1 for seeds 0, 1, 2. Both nets are trained with `seeds` seeds (the split follows the
    # seed, as `edgekit train` does) and compared by their means.
    runs = {"found": [found], "resnet8": []}
    for seed in range(seeds):
        r8 = work / (f"{task}.resnet8.pt" if seed == 0 else f"{task}.resnet8.s{seed}.pt")
        if not (reuse and r8.exists()):
            _timed(res, f"train-resnet8-s{seed}", train, task, "resnet8", train_dir, epochs=cfg["epochs"], out=r8,
                   input_size=INPUT, progress=False, seed=seed)
        runs["resnet8"].append(r8)
        if seed:
            again = work / f"{task}.found.s{seed}.pt"
            if not (reuse and again.exists()):
                _timed(res, f"train-found-s{seed}", train, task, "resnet_nas", train_dir, epochs=cfg["epochs"],
                       out=again, input_size=tuple(arch["input_size"]), progress=False, seed=seed,
                       model_kwargs={k: arch[k] for k in ("blocks", "widths", "stem")})
            runs["found"].append(again)
    metric = "macro_f1"
    unseen = {name: [_figures(_timed(res, f"eval-{name}-s{i}", evaluate, ck, unseen_dir, split="all"))
                     for i, ck in enumerate(cks)] for name, cks in runs.items()}
    mean = {name: round(sum(f[metric] for f in figs) / len(figs), 4) for name, figs in unseen.items()}
    res["unseen"] = {**unseen, "metric": metric, "seeds": seeds, "mean": mean,
                     "per_seed": {name: [round(f[metric], 4) for f in figs] for name, figs in unseen.items()},
                     "points_vs_resnet8": round(100 * (mean["found"] - mean["resnet8"]), 2),
                     "found_ms": rep["best"]["latency_ms"], "speedup_vs_resnet8": round(r8_ms / rep["best"]["latency_ms"], 2)}
    res["side_by_side"] = _timed(res, "side-by-side", side_by_side, found, runs["resnet8"][0])
    if archs:
        res["latency_model"] = _timed(res, "latency-model", latency_model_error, archs)
    res["chain"] = _chain(res, work, found, train_dir, cfg)
    res["targets"] = _check(res)
    return res


def _chain(res: dict, work: Path, found: Path, data: Path, cfg: dict) -> dict:
    """The found checkpoint through compress, export and the runtime loop, as a user runs them."""
    steps = {}
    comp = work / "compressed"
    try:
        _timed(res, "compress", _edgekit, "compress", found, "--data", data, "--prune", "0.5",
               "--finetune-epochs", cfg["finetune_epochs"], "--latency-rounds", 5, "--out", comp)
        steps["compress"] = "ok"
        stem = found.stem
        for name, ckpt, target, precision in (("cpu-fp32", comp / f"{stem}.structured-50.pt", "cpu", "fp32"),
                                              ("jetson-int8", comp / f"{stem}.structured-50-int8.pt", "jetson", "int8")):
            bundle = work / f"bundle-{name}"
            try:
                _timed(res, f"export-{name}", _edgekit, "export", ckpt, "--target", target, "--precision", precision,
                       "--out", bundle, "--force")
                steps[f"export-{name}"] = "ok"
            except RuntimeError as exc:
                steps[f"export-{name}"] = str(exc)
        _timed(res, "run", _edgekit, "run", work / "bundle-cpu-fp32", "--source", "phantom", "--headless",
               "--frames", 20, "--json-out", work / "run.jsonl")
        rows = [json.loads(line) for line in (work / "run.jsonl").read_text().splitlines() if line.strip()]
        steps["run"] = {"frames": sum(1 for r in rows if "index" in r)}
    except RuntimeError as exc:
        steps["error"] = str(exc)
    steps["passed"] = steps.get("compress") == "ok" and steps.get("export-cpu-fp32") == "ok" and \
        isinstance(steps.get("run"), dict) and steps["run"]["frames"] > 0
    return steps


def _check(res: dict) -> list[dict]:
    q = " (quick run: not the target's size)" if res["quick"] else ""
    u = res["unseen"]
    sbs = res["side_by_side"]
    rows = [{"what": f"found net's {u['metric']} on unseen sweeps vs ResNet8's (means of {u['seeds']} training "
                     f"runs each: {u['per_seed']['found']} vs {u['per_seed']['resnet8']}), at <= half its latency{q}",
             "target": f">= {TARGETS['points_vs_resnet8']} points", "got": u["points_vs_resnet8"],
             "latency": f"in the search {u['found_ms']} ms (budget {res['budget_ms']}); side by side "
                        f"{sbs['found_ms']} vs ResNet8 {sbs['resnet8_ms']} ms ({sbs['ratio']}x)",
             "passed": u["points_vs_resnet8"] >= TARGETS["points_vs_resnet8"] and u["found_ms"] <= res["budget_ms"]
             and sbs["ratio"] <= 0.5}]
    if "latency_model" in res:
        e = res["latency_model"]["median_abs_pct"]
        rows.append({"what": f"latency model median abs error on {res['latency_model']['n']} random nets",
                     "target": f"<= {TARGETS['latency_model_error_pct']}%", "got": e,
                     "passed": e is not None and e <= TARGETS["latency_model_error_pct"]})
    minutes = round(res["seconds"]["nas"] / 60, 2)
    rows.append({"what": f"{res['trials']}-trial search with {res['workers']} workers, wall time{q}",
                 "target": f"<= {TARGETS['search_minutes']} min (40 trials, 2 workers)", "got": minutes,
                 "passed": minutes <= TARGETS["search_minutes"]})
    rows.append({"what": "found checkpoint through compress, export and edgekit run", "target": "all succeed",
                 "got": {k: v for k, v in res["chain"].items() if k != "passed"}, "passed": res["chain"]["passed"]})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench_nas.json")
    p.add_argument("--task", default="plane", choices=("plane", "orientation"))
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--latency-archs", type=int, default=20, help="random nets to fit and to score the latency model on (0: skip)")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--seeds", type=int, default=3, help="training runs of ResNet8 and of the found net, compared by mean")
    p.add_argument("--reuse", action="store_true",
                   help="reuse data, trained checkpoints and a finished search (nas/nas.json) in --work")
    p.add_argument("--quick", action="store_true", help="small data and epochs: the path end to end in minutes")
    a = p.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_nas_") as tmp:
        work = Path(a.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        res = run(work, a.task, a.trials, a.workers, a.quick, a.reuse, a.latency_archs, a.seeds)
    res["total_seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    for row in res["targets"]:
        print(f"{'PASS' if row['passed'] else 'FAIL'}  {row['what']}: {row['got']} (target {row['target']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
