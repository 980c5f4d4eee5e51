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

`evaluate(checkpoint, data)` is the CLI's call: it finds the test split the checkpoint was trained
with (by its recorded groups), so a test figure is never measured on training frames.
"""
from __future__ import annotations

import numpy as np

from edge.core.errors import BadInputError
from edge.core.tasks import DETECTION, MULTI_LABEL

HEADLINES = ("accuracy", "exact_match", "label_accuracy", "macro_f1", "mAP", "mAP50", "mAP75", "mAR")


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
    from edge.ml.training.batches import make_loader, torch_threads
    from edge.ml.training.progress import Progress
    from edge.ml.training.predict import predict

    task = model.edge_config.task
    dataset = as_dataset(model, data)
    loader = make_loader(dataset, task.kind, batch_size, shuffle=False)
    with torch_threads(threads), Progress(len(dataset), "eval", progress) as bar:
        preds, targets = predict(model, loader, task.kind, bar)
    return {"task": task.name, "kind": task.kind, **metrics_for(task, preds, targets)}


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


def evaluate(checkpoint, data, split: str = "test", *, batch_size: int = 32, progress: bool = False) -> dict:
    """Load `checkpoint`, pick `split` ("test": its recorded test groups; "all") of `data`, evaluate.

        >>> m = evaluate("runs/plane.pt", "phantom_fpus23/")   # doctest: +SKIP
        >>> print(format_metrics(m))                           # doctest: +SKIP
    """
    from edge.ml.checkpoint import load_model
    from edge.ml.data import load_samples

    if split not in ("test", "all"):
        raise BadInputError(f"--split {split!r} is not 'test' or 'all'")
    model, meta = load_model(checkpoint)
    samples, _ = load_samples(data, model.edge_config.task.name)
    if split == "test":
        samples = _test_split(samples, meta, checkpoint, data)
    out = evaluate_model(model, samples, batch_size=batch_size, progress=progress)
    return {"checkpoint": str(checkpoint), "data": str(data), "split": split, **out}


def _test_split(samples, meta: dict, checkpoint, data) -> list:
    groups = (meta.get("provenance", {}).get("split") or {}).get("test", {}).get("groups")
    if not groups:
        raise BadInputError(f"{checkpoint} records no test split (not trained by `edgekit train`); "
                            f"evaluate with --split all")
    kept = [s for s in samples if s.group in set(groups)]
    if not kept:
        raise BadInputError(f"none of the checkpoint's {len(groups)} test groups ({groups[0]}, ...) is in "
                            f"{data}; is this the data it was trained on? Use --split all for other data")
    return kept


def format_metrics(m: dict) -> str:
    """Metrics as a few lines for people: the headline figures, then the per-class table."""
    lines = [f"{m.get('task', '?')} ({m.get('kind', '?')}), {m.get('n', 0)} frames"
             + (f", split {m['split']}" if "split" in m else "")]
    lines += [f"  {k:<15} {'n/a' if v is None else f'{v:.4f}'}" for k, v in headline(m).items()]
    if "per_class" in m:
        lines.append(f"  {'class':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
        lines += [f"  {c:<12} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['f1']:>7.3f} {r['support']:>8}"
                  for c, r in m["per_class"].items()]
    if "per_class_AP" in m:
        lines += [f"  AP {c:<12} {'n/a' if v is None else f'{v:.4f}'}" for c, v in m["per_class_AP"].items()]
    if "confusion_matrix" in m:
        labels = m["labels"]
        w = max(8, *(len(x) for x in labels)) + 1
        lines.append("  confusion (rows true, columns predicted)")
        lines.append("  " + " " * w + "".join(f"{x:>{w}}" for x in labels))
        lines += ["  " + f"{lbl:<{w}}" + "".join(f"{v:>{w}}" for v in row)
                  for lbl, row in zip(labels, m["confusion_matrix"])]
    return "\n".join(lines)
