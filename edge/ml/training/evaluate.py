"""Evaluate a model on a dataset, with the FPUS23 paper's metrics for each task kind.

- single_label: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix;
- multi_label: exact-match accuracy (all labels right, sigmoid > 0.5), per-label accuracy,
  per-class and macro-F1;
- detection: COCO mAP over IoU .50:.05:.95, mAP@.5, mAP@.75, mAR (AR@100), AP per class, computed
  by pycocotools.

    >>> from edge.ml.data import phantom_samples
    >>> from edge.ml.models import create_model
    >>> model = create_model("resnet8", task="plane", input_size=(32, 32))
    >>> samples, _ = phantom_samples("plane", n=8, size=(48, 48))
    >>> sorted(evaluate_model(model, samples))[:3]
    ['accuracy', 'confusion_matrix', 'kind']

`evaluate(checkpoint, data)` is the CLI's call: it reads any checkpoint `train` or `compress` writes
(QAT ones with their quantizers, through `edge.ml.quantization.load_quantized`), finds the test (or
val) split the checkpoint was trained with by its recorded groups, so a test figure is never measured
on training frames, and reports it per stream with 95% confidence intervals from a bootstrap over
streams (`evaluate_streams`): a split's frames are a few sweeps, and a figure is only as sure as the
number of fetuses behind it. A split that misses a class, or has one stream, is flagged in `warnings`.
"""
from __future__ import annotations

import numpy as np

from edge.core.errors import BadInputError
from edge.core.tasks import DETECTION, MULTI_LABEL, SINGLE_LABEL

HEADLINES = ("accuracy", "exact_match", "label_accuracy", "macro_f1", "mAP", "mAP50", "mAP75", "mAR")
SPLITS = ("test", "val", "all")


def as_dataset(model, data):
    """A TaskDataset for `model` (its task, labels and preprocessing) from a list of Samples;
    anything else (a Dataset, a list of (x, target) pairs) is taken to be a dataset already."""
    from edge.ml.data.dataset import TaskDataset
    from edge.ml.data.records import Sample

    if not (isinstance(data, (list, tuple)) and data and all(isinstance(s, Sample) for s in data)):
        return data
    task = model.edge_config.task
    if task.kind != MULTI_LABEL and task.kind != DETECTION:
        unknown = sorted({s.label for s in data} - set(task.labels))
        if unknown:
            raise BadInputError(f"labels {unknown} in the data are not among the model's labels "
                                f"({', '.join(task.labels)}); evaluate on data of the task it was trained for")
    return TaskDataset(list(data), task, model.edge_config.preprocess, augment=False)


def evaluate_model(model, data, *, batch_size: int = 32, progress: bool = False, threads: int | None = None) -> dict:
    """Metrics of `model` (with `edge_config`) on `data` (a TaskDataset or a list of Samples)."""
    task = model.edge_config.task
    preds, targets = _predictions(model, as_dataset(model, data), batch_size, progress, threads)
    return {"task": task.name, "kind": task.kind, **metrics_for(task, preds, targets)}


def _predictions(model, dataset, batch_size, progress, threads) -> tuple[list, list]:
    from edge.ml.training.batches import make_loader, torch_threads
    from edge.ml.training.progress import Progress
    from edge.ml.training.predict import predict

    kind = model.edge_config.task.kind
    loader = make_loader(dataset, kind, batch_size, shuffle=False)
    with torch_threads(threads), Progress(len(dataset), "eval", progress) as bar:
        return predict(model, loader, kind, bar)


def evaluate_streams(model, data, *, groups=None, split: str = "test", batch_size: int = 32,
                     progress: bool = False, threads: int | None = None, resamples: int | None = None,
                     seed: int = 0) -> dict:
    """`evaluate_model`'s metrics, plus per-stream figures, 95% CIs from a bootstrap over streams and
    `warnings` (a class the split never shows, a single stream). `groups` names each frame's stream;
    by default the samples' own `group` (a TaskDataset or a list of Samples)."""
    task = model.edge_config.task
    dataset = as_dataset(model, data)
    if groups is None and hasattr(dataset, "samples"):
        groups = [s.group for s in dataset.samples]
    preds, targets = _predictions(model, dataset, batch_size, progress, threads)
    out = {"task": task.name, "kind": task.kind, **metrics_for(task, preds, targets)}
    return {**out, **stream_report(task, preds, targets, groups, out, split=split, resamples=resamples, seed=seed)}


def stream_report(task, preds: list, targets: list, groups, pooled: dict, *, split: str = "test",
                  resamples: int | None = None, seed: int = 0) -> dict:
    """{"streams", "per_stream", "ci", "warnings"} for predictions whose frames belong to `groups`."""
    from edge.ml.training import metrics as M

    warnings = [f"{split} split holds no frame of {', '.join(map(repr, lacks))}: "
                f"{'its' if len(lacks) == 1 else 'their'} figures are not measured and macro-F1 averages "
                f"the other classes only; re-split with `edgekit train` (split_streams) or add streams"
                for lacks in [_missing_classes(task, targets, pooled)] if lacks]
    if groups is None or len(groups) != len(preds):
        return {"streams": None, "per_stream": [], "ci": None,
                "warnings": warnings + ["frames carry no stream/patient: no per-stream figures or CI"]}
    names = sorted(set(groups))
    rows = {g: [i for i, x in enumerate(groups) if x == g] for g in names}
    per_stream = [{"group": g, "n": len(idx), **_stream_metrics(task, [preds[i] for i in idx],
                                                                [targets[i] for i in idx])}
                  for g, idx in rows.items()]
    shown = [lbl for lbl in (task.labels if task.kind == SINGLE_LABEL else ())
             if sum(lbl in row["classes"] for row in per_stream) == 1]
    if shown and len(names) > 1:
        warnings.append(f"{split} split shows {', '.join(map(repr, shown))} in one stream only: "
                        f"{'its' if len(shown) == 1 else 'their'} recall CI is that one stream's figure, "
                        f"not a spread over fetuses")
    if len(names) < 2:
        warnings.append(f"{split} split is {len(names)} stream ({names[0] if names else '-'}): no confidence "
                        f"interval (one fetus says nothing about the next); hold out more streams")
        return {"streams": len(names), "per_stream": per_stream, "ci": None, "warnings": warnings}
    b = resamples or M.RESAMPLES
    ci = {"level": M.CI_LEVEL, "by": "stream", "resamples": b, "seed": seed, "streams": len(names)}
    if task.kind == DETECTION:
        ci.update(_detection_intervals(task, preds, targets, rows, b, seed))
    elif task.kind == MULTI_LABEL:
        stats = np.stack([M.multi_label_counts([targets[i] for i in idx], [preds[i] for i in idx])
                          for idx in rows.values()])
        ci.update(M.stream_intervals(M.bootstrap_counts(stats, M.multi_label_summary, b, seed), task.labels))
    else:
        c = task.num_classes
        cms = np.stack([M.confusion_matrix([targets[i] for i in idx], [preds[i] for i in idx], c)
                        for idx in rows.values()])
        ci.update(M.stream_intervals(M.bootstrap_counts(cms, M.single_label_summary, b, seed), task.labels))
    return {"streams": len(names), "per_stream": per_stream, "ci": ci, "warnings": warnings}


def _missing_classes(task, targets, pooled: dict) -> list[str]:
    if task.kind == DETECTION:
        shown = {int(v) for t in targets for v in np.asarray(t["labels"]).reshape(-1)}
        return [lbl for k, lbl in enumerate(task.labels) if k + 1 not in shown]
    return [lbl for lbl, r in pooled.get("per_class", {}).items() if r["support"] == 0]


def _stream_metrics(task, preds, targets) -> dict:
    from edge.ml.training import metrics as M

    if task.kind == DETECTION:
        from edge.ml.training.coco import detection_metrics

        m = detection_metrics(targets, preds, task.labels)
        return {"mAP": m["mAP"], "mAR": m["mAR"]}
    if task.kind == MULTI_LABEL:
        s = M.multi_label_summary(M.multi_label_counts(np.stack(targets), np.stack(preds)))
        return {"exact_match": float(s["exact_match"]), "macro_f1": _num(s["macro_f1"])}
    s = M.single_label_summary(M.confusion_matrix(targets, preds, task.num_classes))
    shown = sorted({task.labels[int(t)] for t in targets})
    return {"accuracy": float(s["accuracy"]), "macro_f1": _num(s["macro_f1"]), "classes": shown}


def _num(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _detection_intervals(task, preds, targets, rows: dict, resamples: int, seed: int) -> dict:
    """mAP/mAP50/mAR intervals over resamples of whole streams (pycocotools matches each frame once)."""
    from edge.ml.training import metrics as M
    from edge.ml.training.coco import resampled_metrics

    idx = list(rows.values())
    draws = ([i for g, k in enumerate(counts) for _ in range(k) for i in idx[g]]
             for counts in M.resample_counts(len(idx), resamples, seed))
    values = {"mAP": [], "mAP50": [], "mAR": []}
    for m in resampled_metrics(targets, preds, task.labels, draws):
        for key in values:
            values[key].append(np.nan if m[key] is None else m[key])
    return {key: M.interval(v) for key, v in values.items()}


def metrics_for(task, preds: list, targets: list) -> dict:
    """The metrics of a task kind from `edge.ml.training.predict.predict`'s output."""
    from edge.ml.training import metrics

    if task.kind == DETECTION:
        from edge.ml.training.coco import detection_metrics

        return detection_metrics(targets, preds, task.labels)
    if task.kind == MULTI_LABEL:
        shape = (0, task.num_classes)
        t, p = (np.stack(a) if a else np.zeros(shape) for a in (targets, preds))
        return metrics.multi_label_metrics(t, p, task.labels)
    return metrics.single_label_metrics(targets, preds, task.labels)


def headline(m: dict) -> dict:
    """The scalar figures of a metrics dict (what a history or a table row keeps)."""
    return {k: m[k] for k in HEADLINES if k in m}


def evaluate(checkpoint, data, split: str = "test", *, batch_size: int = 32, progress: bool = False,
             resamples: int | None = None, seed: int = 0) -> dict:
    """Load `checkpoint` (any `train` or `compress` writes, QAT included), pick `split` ("test" or
    "val": its recorded groups; "all") of `data`, evaluate per stream with bootstrap CIs.

        >>> m = evaluate("runs/plane.pt", "phantom_fpus23/")   # doctest: +SKIP
        >>> print(format_metrics(m))                           # doctest: +SKIP
    """
    from edge.ml.data import load_samples
    from edge.ml.quantization import load_quantized

    if split not in SPLITS:
        raise BadInputError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    model, meta = load_quantized(checkpoint)
    samples, _ = load_samples(data, model.edge_config.task.name)
    recorded = (meta.get("provenance") or {}).get("split") or {}
    if split != "all":
        samples = _recorded_split(samples, recorded, split, checkpoint, data)
    out = evaluate_streams(model, samples, split=split, batch_size=batch_size, progress=progress,
                           resamples=resamples, seed=seed)
    carried = [w for w in recorded.get("warnings", []) if split == "all" or w.startswith(f"{split} ")]
    return {"checkpoint": str(checkpoint), "data": str(data), "split": split, **out,
            "warnings": [*carried, *out["warnings"]]}


def _recorded_split(samples, recorded: dict, split: str, checkpoint, data) -> list:
    groups = (recorded.get(split) or {}).get("groups")
    if not groups:
        raise BadInputError(f"{checkpoint} records no {split} split (not written by `edgekit train` or "
                            f"`edgekit compress`); evaluate with --split all")
    kept = [s for s in samples if s.group in set(groups)]
    if not kept:
        raise BadInputError(f"none of the checkpoint's {len(groups)} {split} groups ({groups[0]}, ...) is in "
                            f"{data}; is this the data it was trained on? Use --split all for other data")
    return kept


def _ci(x) -> str:
    return "" if not x else f"  [{x[0]:.4f}, {x[1]:.4f}]"


def format_metrics(m: dict) -> str:
    """Metrics as a few lines for people: the headline figures (with their CIs over streams), the
    per-class table, one line per stream, the confusion matrix, then `warning:` lines."""
    ci = m.get("ci") or {}
    lines = [f"{m.get('task', '?')} ({m.get('kind', '?')}), {m.get('n', 0)} frames"
             + (f", {m['streams']} streams" if m.get("streams") else "")
             + (f", split {m['split']}" if "split" in m else "")]
    if ci:
        lines.append(f"  {round(100 * ci['level'])}% CI: bootstrap over {ci['streams']} streams "
                     f"({ci['resamples']} resamples, seed {ci['seed']})")
    lines += [f"  {k:<15} {'n/a' if v is None else f'{v:.4f}'}{_ci(ci.get(k))}" for k, v in headline(m).items()]
    if "per_class" in m:
        rci = ci.get("recall") or {}
        lines.append(f"  {'class':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"
                     + ("  recall 95% CI" if rci else ""))
        lines += [f"  {c:<12} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['f1']:>7.3f} {r['support']:>8}"
                  + (_ci(rci.get(c)) if rci else "") for c, r in m["per_class"].items()]
    for row in m.get("per_stream") or []:
        figures = "  ".join(f"{k} {'n/a' if row[k] is None else f'{row[k]:.4f}'}"
                            for k in ("accuracy", "exact_match", "macro_f1", "mAP", "mAR") if k in row)
        shows = f"  shows {', '.join(row['classes'])}" if row.get("classes") else ""
        lines.append(f"  stream {row['group']}  n={row['n']}  {figures}{shows}")
    if "per_class_AP" in m:
        lines += [f"  AP {c:<12} {'n/a' if v is None else f'{v:.4f}'}" for c, v in m["per_class_AP"].items()]
    if "confusion_matrix" in m:
        labels = m["labels"]
        w = max(8, *(len(x) for x in labels)) + 1
        lines.append("  confusion (rows true, columns predicted)")
        lines.append("  " + " " * w + "".join(f"{x:>{w}}" for x in labels))
        lines += ["  " + f"{lbl:<{w}}" + "".join(f"{v:>{w}}" for v in row)
                  for lbl, row in zip(labels, m["confusion_matrix"])]
    lines += [f"warning: {w}" for w in m.get("warnings") or []]
    return "\n".join(lines)
