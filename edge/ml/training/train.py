"""`train`: a data folder and a zoo model name in, a checkpoint with its provenance out.

Splits by group (stream, patient), never by frame, so near-identical neighbouring frames of one sweep
cannot sit on both sides: 8:1:1 (train/val/test) for the classifiers and 80/20 for boxes, as FPUS23.
Training frames are augmented as a scanner varies them (`edge.ml.data.augment`: flip, zoom and
rotation about the apex, gain/TGC, shadows, speckle); imbalanced single-label classes are sampled
by the square root of their counts (unless `balance=False`); the epoch kept is the one with the best validation figure on the
held-out val streams (`edge.ml.training.fit`). The checkpoint records where the data came from, which
groups went where, the recipe (augmentations, sampling, the epoch kept), the history and the test
metrics, so `edgekit eval` can find the same test split again.
"""
from __future__ import annotations

import time
from pathlib import Path

from edge.core.tasks import DETECTION

CLASSIFIER_SPLIT = (0.8, 0.1, 0.1)
DETECTION_SPLIT = (0.8, 0.2)


def train(task: str, model_name: str, data, *, epochs: int, out, input_size=None, batch_size: int = 32,
          lr: float = 1e-3, seed: int = 0, progress: bool = True, step_size: int | None = None, gamma: float = 0.1,
          num_workers: int = 0, balance: bool | None = None, augment=True,
          patience: int | None = None, model_kwargs: dict | None = None) -> tuple[Path, dict]:
    """Train zoo model `model_name` for `task` on the dataset at `data`; returns (checkpoint, test metrics).

        >>> path, metrics = train("plane", "resnet8", "phantom_fpus23/", epochs=15,
        ...                       out="runs/plane.pt", input_size=(96, 96))      # doctest: +SKIP
        >>> round(metrics["accuracy"], 3)                                        # doctest: +SKIP

    `balance` None balances single-label classes when the training split's largest class has more than
    1.5x the frames of its smallest; `augment` True is `Augment()`, False none, or an `Augment`;
    `patience` stops after that many epochs without a better validation figure. `model_kwargs` are
    `create_model` overrides (a detector's RPN/ROI sizes), recorded in the checkpoint. `step_size` None
    multiplies the learning rate by `gamma` for the last quarter of the epochs (at least the last one;
    runs over 20 epochs step at 20, as FPUS23): at a constant rate BatchNorm's running statistics trail
    weights that still move, and the held-out figures swing from epoch to epoch.
    """
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data import load_samples, split_streams
    from edge.ml.data.dataset import TaskDataset
    from edge.ml.training.evaluate import evaluate_model, headline
    from edge.core.tasks import get_task

    t0 = time.perf_counter()
    if step_size is None:
        step_size = default_step_size(epochs)
    samples, labels = load_samples(data, task)
    task_obj = get_task(task).with_labels(labels)
    fractions = DETECTION_SPLIT if task_obj.kind == DETECTION else CLASSIFIER_SPLIT
    split = split_streams(samples, task_obj, fractions, seed=seed)   # whole streams; every class held out
    parts = split.parts
    train_s, val_s, test_s = parts if len(parts) == 3 else (parts[0], [], parts[1])
    model, train_set, history = fit_on(model_name, task_obj, train_s, val_s, epochs=epochs, input_size=input_size,
                                       batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                                       step_size=step_size, gamma=gamma, num_workers=num_workers, balance=balance,
                                       augment=augment, patience=patience, model_kwargs=model_kwargs)
    metrics = evaluate_model(model, TaskDataset(test_s, task_obj, model.edge_config.preprocess),
                             batch_size=batch_size, progress=progress)
    metrics["warnings"] = list(split.warnings)          # a held-out split missing a class, said loudly
    provenance = {
        "data": str(Path(data).resolve()), "task": task, "seed": seed,
        "split": split.record(),
        "recipe": {"epochs": epochs, "batch_size": batch_size, "optimizer": "Adam", "lr": lr,
                   "scheduler": {"name": "StepLR", "step_size": step_size, "gamma": gamma},
                   "loss": _loss_name(task_obj.kind),
                   "augment": train_set.augment.to_dict() if train_set.augment is not None else None,
                   "sampling": "class-balanced" if history["balance"] else "uniform",
                   "balance": {"asked": "auto" if balance is None else bool(balance),
                               "used": history["balance"], "power": _balance_power(), "classes": _class_counts(train_s, task_obj.kind)},
                   "selection": {"split": "val", "by": history["selected_by"], "epoch": history["best_epoch"],
                                 "value": history["best"], "patience": patience},
                   "input_size": list(model.edge_config.input_size)},
        "epochs": epochs, "history": history, "metrics": metrics, "test": headline(metrics),
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    return save_checkpoint(out, model, provenance=provenance), metrics


def fit_on(model_name: str, task_obj, train_s: list, val_s: list, *, epochs: int, input_size=None,
           batch_size: int = 32, lr: float = 1e-3, seed: int = 0, progress: bool = True,
           step_size: int | None = None, gamma: float = 0.1, num_workers: int = 0, balance: bool | None = None,
           augment=True, patience: int | None = None, model_kwargs: dict | None = None,
           threads: int | None = None):
    """`train`'s recipe on samples already split: zoo model `model_name` made with the seed's initial
    weights and fitted on `train_s` (augmented), its epoch selected on `val_s` (none: the last).
    Returns (model, training set, `fit` history). `edgekit nas` compares its finalists with it on
    folds of the streams outside test (`compress.nas.finalists`)."""
    import torch

    from edge.ml.data.augment import Augment
    from edge.ml.data.dataset import TaskDataset
    from edge.ml.models import create_model
    from edge.ml.training.fit import fit

    torch.manual_seed(seed)                    # the initial weights follow the seed too
    model = create_model(model_name, task_obj, input_size=input_size, **(model_kwargs or {}))
    spec = model.edge_config.preprocess
    train_set = TaskDataset(train_s, task_obj, spec, augment=Augment() if augment is True else augment)
    history = fit(model, train_set, epochs=epochs, lr=lr, batch_size=batch_size,
                  step_size=default_step_size(epochs) if step_size is None else step_size, gamma=gamma,
                  val_set=TaskDataset(val_s, task_obj, spec) if val_s else None, progress=progress,
                  num_workers=num_workers, seed=seed, balance=balance, patience=patience, threads=threads)
    return model, train_set, history


def default_step_size(epochs: int) -> int:
    """The epoch at which `train` drops the learning rate by `gamma`: for the last quarter of the epochs
    (at least the last one), or at 20 for runs over 20 epochs, as FPUS23."""
    return 20 if epochs > 20 else max(1, epochs - max(1, epochs // 4))


def _balance_power() -> float:
    from edge.ml.training.batches import BALANCE_POWER

    return BALANCE_POWER


def _class_counts(samples, kind: str) -> dict | None:
    """Training frames per class (single-label tasks), as balancing saw them."""
    from collections import Counter

    return dict(sorted(Counter(s.label for s in samples).items())) if kind == "single_label" else None


def _loss_name(kind: str) -> str:
    return {"single_label": "cross_entropy", "multi_label": "bce_with_logits",
            "detection": "faster_rcnn (rpn + roi heads)"}[kind]
