"""The search's last step: the best candidates under budget by proxy figure, compared by cross-validation,
and the one chosen trained by `edgekit train`'s recipe into the checkpoint the search hands on.

Why not the val streams alone: the split `edgekit train` makes holds 10% of the streams for val (5 of
48 phantom sweeps), too few to tell apart nets a point or two apart. In bench_nas run 5 three finalists
read 0.995, 0.973 and 0.965 macro-F1 on val and 0.800, 0.871 and 0.865 on their test streams: the val
figure chose the worst. Nor the proxy figure alone: 3 epochs rank 80x80 nets below 64x64 ones that
score lower on unseen sweeps once trained fully.

How: the streams `edgekit train` trains and validates on (never its test streams) are cut into `folds`
parts by stream (`ProxyData.folds`); each finalist is trained `final_epochs` epochs with `train`'s
recipe once per fold, on the other parts, and scored on that part (the figure `train` selects its epoch
by: macro-F1 for single-label tasks), with the seed + fold. Every stream outside test is then a val
stream once, and every figure averages `folds` trainings. The finalist with the best mean (ties: the
faster) is trained once more by `edgekit train` on its usual split into `out/finalists/` and copied to
`out/TASK.nas.pt`; its test figure is on streams no step of the search saw.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

_DATA: dict = {}          # per process: (data, task, seed, folds) -> (ProxyData, its folds), decoded once


def choose(settings, top: list[dict], say) -> tuple[list[dict], dict, dict]:
    """Cross-validate the candidates `top` (trial records, best proxy first) and train the best one.
    Returns (finalist rows, the final net's record, how the choice was made); `say(text)` reports."""
    from compress.nas.objective import ProxyData

    folds, warnings = ProxyData(settings.data, settings.task, seed=settings.seed, preload=False).folds(settings.folds)
    rows = [{"number": r["number"], "arch": r["arch"], "proxy": r["accuracy"], "latency_ms": r["latency_ms"]}
            for r in top]
    how = {"folds": len(folds), "asked": settings.folds, "epochs": settings.final_epochs, "warnings": warnings,
           "val_streams": [len({s.group for s in val}) for _, val in folds],
           "by": "the mean over the folds of the best epoch's val figure (ties: the faster)"}
    if len(rows) > 1:
        k = len(folds)
        say(f"cross-validating the {len(rows)} best nets under budget ({k} fold(s) of "
            f"{', '.join(map(str, how['val_streams']))} val streams, {settings.final_epochs} epochs each)")
        t0 = time.perf_counter()
        scores = _run_folds(settings, [(r["arch"], i) for r in rows for i in range(k)], say)
        for n, r in enumerate(rows):
            mine = scores[n * k:(n + 1) * k]            # the jobs are row by row, fold by fold
            figs = [s["figure"] for s in mine]
            r.update(folds=[round(f, 6) for f in figs], cv=round(statistics.fmean(figs), 6),
                     cv_sd=round(statistics.stdev(figs) if k > 1 else 0.0, 6),
                     seconds=round(sum(s["seconds"] for s in mine), 1))
            say(f"finalist {r['arch']['key']}: proxy {r['proxy']:.3f}, folds "
                f"{' '.join(f'{f:.3f}' for f in figs)} (mean {r['cv']:.3f})")
        how["seconds"] = round(time.perf_counter() - t0, 1)
        chosen = max(rows, key=lambda r: (r["cv"], -r["latency_ms"]))
    else:
        chosen = rows[0]
    say(f"training {chosen['arch']['key']} for {settings.final_epochs} epochs on `edgekit train`'s split")
    final = {**train_final(settings, chosen["arch"]), **{f: chosen[f] for f in ("number", "proxy", "latency_ms")}}
    if "cv" in chosen:
        final["cv"] = chosen["cv"]
    _keep(settings, final)
    _DATA.clear()
    return rows, final, how


def _run_folds(settings, jobs: list[tuple[dict, int]], say) -> list[dict]:
    """`fold_score` for every (arch, fold), here for one worker, else in `workers` spawned processes;
    each said as it finishes."""
    import concurrent.futures as cf
    from dataclasses import replace

    from compress.nas.workers import one_thread, spawn_pool

    def done(n: int, job: tuple[dict, int], score: dict) -> dict:
        say(f"[{n}/{len(jobs)}] {job[0]['key']} fold {job[1] + 1}: {score['figure']:.3f} ({score['seconds']:.0f} s)")
        return score

    if settings.workers == 1:
        return [done(n, job, fold_score(settings, *job)) for n, job in enumerate(jobs, 1)]
    one = replace(one_thread(settings), progress=False)
    scores: list = [None] * len(jobs)
    with spawn_pool(min(settings.workers, len(jobs))) as pool:
        futures = {pool.submit(fold_score, one, *job): k for k, job in enumerate(jobs)}
        for n, fut in enumerate(cf.as_completed(futures), 1):
            k = futures[fut]
            scores[k] = done(n, jobs[k], fut.result())
    return scores


def fold_score(settings, arch: dict, fold: int) -> dict:
    """Train `arch` by `edgekit train`'s recipe on fold `fold`'s training streams and return its best val
    figure there (the epoch `train` would keep)."""
    from compress.nas.objective import ProxyData
    from compress.nas.space import Arch
    from compress.nas.workers import pin_threads
    from edge.ml.training.train import fit_on

    pin_threads(settings)
    key = (str(settings.data), settings.task, settings.seed, settings.folds)
    if key not in _DATA:
        data = ProxyData(settings.data, settings.task, seed=settings.seed)
        _DATA.clear()
        _DATA[key] = (data, data.folds(settings.folds)[0])
    data, folds = _DATA[key]
    train_s, val_s = folds[fold]
    arch = Arch.from_dict(arch)
    t0 = time.perf_counter()
    _, _, history = fit_on("resnet_nas", data.task, train_s, val_s, epochs=settings.final_epochs,
                           input_size=arch.input_size, batch_size=settings.proxy.batch_size, lr=settings.proxy.lr,
                           seed=settings.seed + fold, progress=False, model_kwargs=arch.model_kwargs(),
                           threads=settings.proxy.threads)
    return {"figure": float(history["best"] or 0.0), "epoch": history["best_epoch"],
            "seconds": time.perf_counter() - t0}


def train_final(settings, arch: dict) -> dict:
    """`arch` trained by `edgekit train` (its recipe and split) into `out/finalists/`: a checkpoint
    compress and export take, with its val figure (the one the training selected its epoch by)."""
    from compress.nas.space import Arch
    from compress.nas.workers import pin_threads
    from edge.ml.checkpoint import load_checkpoint
    from edge.ml.training.evaluate import headline
    from edge.ml.training.train import train

    pin_threads(settings)
    arch = Arch.from_dict(arch)
    path = Path(settings.out) / "finalists" / f"{settings.task}.{arch.key()}.pt"
    t0 = time.perf_counter()
    ckpt, metrics = train(settings.task, "resnet_nas", settings.data, epochs=settings.final_epochs, out=path,
                          input_size=arch.input_size, batch_size=settings.proxy.batch_size, lr=settings.proxy.lr,
                          seed=settings.seed, progress=settings.progress, model_kwargs=arch.model_kwargs())
    selection = load_checkpoint(ckpt)["provenance"]["recipe"]["selection"]
    return {"checkpoint": str(ckpt), "epochs": settings.final_epochs, "arch": arch.to_dict(),
            "val": round(float(selection["value"] or 0.0), 6), "val_metric": selection["by"],
            "test": headline(metrics), "warnings": metrics.get("warnings", []),
            "seconds": round(time.perf_counter() - t0, 1)}


def _keep(settings, final: dict) -> None:
    """Copy the chosen net to `out/TASK.nas.pt` (whole or not at all); `final` names that copy."""
    from runtime.atomic import write_bytes_atomic

    path = Path(settings.out) / f"{settings.task}.nas.pt"
    write_bytes_atomic(path, Path(final["checkpoint"]).read_bytes())
    final["trained_as"], final["checkpoint"] = final["checkpoint"], str(path)

