"""`train`: a data folder and a zoo model name in, a checkpoint with its provenance out.

Splits by group (stream, patient), never by frame, so near-identical neighbouring frames of one sweep
cannot sit on both sides: 8:1:1 (train/val/test) for the classifiers and 80/20 for boxes, as FPUS23.
Training frames are flipped left-right at random (an inverted probe). The checkpoint records where
the data came from, which groups went where, the recipe, the history and the test metrics, so
`edgekit eval` can find the same test split again.
"""
from __future__ import annotations

import time
from pathlib import Path

from edge.core.tasks import DETECTION

CLASSIFIER_SPLIT = (0.8, 0.1, 0.1)
DETECTION_SPLIT = (0.8, 0.2)


def train(task: str, model_name: str, data, *, epochs: int, out, input_size=None, batch_size: int = 32,
          lr: float = 1e-3, seed: int = 0, progress: bool = True, step_size: int = 20, gamma: float = 0.1,
          num_workers: int = 0, balance: bool = False) -> tuple[Path, dict]:
    """Train zoo model `model_name` for `task` on the dataset at `data`; returns (checkpoint, test metrics).

        >>> path, metrics = train("plane", "resnet8", "phantom_fpus23/", epochs=15,
        ...                       out="runs/plane.pt", input_size=(96, 96))      # doctest: +SKIP
        >>> round(metrics["accuracy"], 3)                                        # doctest: +SKIP
    """
    import torch

    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data import load_samples, split_by_group
    from edge.ml.data.dataset import TaskDataset
    from edge.ml.training.evaluate import evaluate_model, headline
    from edge.ml.models import create_model
    from edge.core.tasks import get_task
    from edge.ml.training.fit import fit

    t0 = time.perf_counter()
    samples, labels = load_samples(data, task)
    task_obj = get_task(task).with_labels(labels)
    fractions = DETECTION_SPLIT if task_obj.kind == DETECTION else CLASSIFIER_SPLIT
    parts = split_by_group(samples, fractions, seed=seed)
    train_s, val_s, test_s = parts if len(parts) == 3 else (parts[0], [], parts[1])
    torch.manual_seed(seed)                    # the initial weights follow the seed too
    model = create_model(model_name, task_obj, input_size=input_size)
    spec = model.edge_config.preprocess

    def dataset(s, augment=False):
        return TaskDataset(s, task_obj, spec, augment=augment)

    history = fit(model, dataset(train_s, augment=True), epochs=epochs, lr=lr, batch_size=batch_size,
                  step_size=step_size, gamma=gamma, val_set=dataset(val_s) if val_s else None,
                  progress=progress, num_workers=num_workers, seed=seed, balance=balance)
    metrics = evaluate_model(model, dataset(test_s), batch_size=batch_size, progress=progress)
    provenance = {
        "data": str(Path(data).resolve()), "task": task, "seed": seed,
        "split": _split_record(fractions, {"train": train_s, "val": val_s, "test": test_s}),
        "recipe": {"epochs": epochs, "batch_size": batch_size, "optimizer": "Adam", "lr": lr,
                   "scheduler": {"name": "StepLR", "step_size": step_size, "gamma": gamma},
                   "loss": _loss_name(task_obj.kind), "augment": "horizontal flip p=0.5",
                   "sampling": "class-balanced" if balance else "uniform",
                   "input_size": list(model.edge_config.input_size)},
        "epochs": epochs, "history": history, "metrics": metrics, "test": headline(metrics),
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    return save_checkpoint(out, model, provenance=provenance), metrics


def _split_record(fractions, parts: dict) -> dict:
    rec = {"fractions": list(fractions), "by": "group"}
    for name, samples in parts.items():
        rec[name] = {"frames": len(samples), "groups": sorted({s.group for s in samples})}
    return rec


def _loss_name(kind: str) -> str:
    return {"single_label": "cross_entropy", "multi_label": "bce_with_logits",
            "detection": "faster_rcnn (rpn + roi heads)"}[kind]
