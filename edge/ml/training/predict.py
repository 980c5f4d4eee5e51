"""Run a model over a dataset once, in eval mode and without gradients, and collect what it said
next to what the data says, as numpy (the metric modules stay torch-free)."""
from __future__ import annotations

import torch

from edge.core.tasks import DETECTION, MULTI_LABEL
from edge.ml.training.batches import logits_of


def _device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.inference_mode()
def predict(model, loader, kind: str, bar=None) -> tuple[list, list]:
    """(predictions, targets): class indices or multi-hot rows (threshold 0.5 on the sigmoid) for the
    classifiers, and per-image {"boxes", "scores", "labels"} / {"boxes", "labels"} dicts for detectors."""
    was_training, device = model.training, _device(model)
    model.eval()
    preds, targets = [], []
    try:
        for x, y in loader:
            if kind == DETECTION:
                out = model([img.to(device) for img in x])
                preds += [{k: v.cpu().numpy() for k, v in o.items()} for o in out]
                targets += [{k: v.numpy() for k, v in t.items()} for t in y]
            else:
                logits = logits_of(model(x.to(device))).float().cpu()
                preds += list((torch.sigmoid(logits) > 0.5).numpy() if kind == MULTI_LABEL
                              else logits.argmax(1).numpy())
                targets += list(y.numpy())
            if bar is not None:
                bar.advance(len(x))
    finally:
        model.train(was_training)
    return preds, targets
