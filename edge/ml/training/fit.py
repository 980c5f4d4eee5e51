"""Training: `fit`, any edgekit model on any task dataset (`edge.ml.training.train` builds on it: data folder -> checkpoint).

`fit` follows the FPUS23 recipe (Adam lr 1e-3, StepLR step 20 gamma 0.1) and lets the task decide the
loss (`edge.ml.training.batches`). Two things make it generalise across fetuses rather than frames:
class-balanced sampling whenever the training classes are imbalanced (`balance=None`, the default), and
the epoch kept is the one that scored best on the held-out streams of `val_set` (macro-F1, exact match
or mAP), restored at the end. Compression fine-tuning (pruned, QAT) calls the same `fit`, with its
own optimizer or learning rate, so its keyword signature is kept stable:

    fit(model, train_set, *, epochs, lr=1e-3, batch_size=32, step_size=20, gamma=0.1, val_set=None,
        progress=True, num_workers=0, seed=0, optimizer=None, max_steps=None, threads=None,
        balance=None, patience=None) -> history

    >>> from edge.ml.data.dataset import PhantomDataset
    >>> from edge.ml.models import create_model
    >>> model = create_model("resnet8", task="plane", input_size=(32, 32))
    >>> ds = PhantomDataset("plane", model.edge_config.preprocess, n=16, size=(48, 48))
    >>> history = fit(model, ds, epochs=1, batch_size=8, progress=False)
    >>> len(history["loss"]), history["steps"]
    (1, 2)
"""
from __future__ import annotations

import copy
import math
import time

import torch

from edge.core.errors import BadInputError, EdgekitError
from edge.core.tasks import DETECTION, MULTI_LABEL

# the validation figure the kept epoch is chosen by, per task kind
SELECT_BY = {"single_label": "macro_f1", MULTI_LABEL: "exact_match", DETECTION: "mAP"}


def fit(model, train_set, *, epochs: int, lr: float = 1e-3, batch_size: int = 32, step_size: int = 20,
        gamma: float = 0.1, val_set=None, progress: bool = True, num_workers: int = 0, seed: int = 0,
        optimizer: torch.optim.Optimizer | None = None, max_steps: int | None = None,
        threads: int | None = None, balance: bool | None = None, patience: int | None = None,
        between_batches=None) -> dict:
    """Train `model` in place on `train_set` (items (x, target) as `edge.ml.data.dataset.TaskDataset`
    gives them) and return its history.

    The task kind in `model.edge_config.task` decides the loss. `optimizer` replaces Adam(lr) (then
    `lr` is ignored); StepLR(step_size, gamma) steps once per epoch over whichever optimizer. Runs on
    the device the model's parameters are on. Deterministic for a `seed` (shuffling, augmentation,
    dropout). `max_steps` stops early (a fine-tuning budget). With `val_set` (whole held-out streams),
    the headline metrics are measured after every epoch and the weights of the epoch with the best
    `SELECT_BY` figure (the later one on a tie) are restored at the end; `patience` stops after that many
    epochs without a better one. `balance` samples single-label classes by the square root of their counts
    (`edge.ml.training.batches.make_loader`); None (the default) balances when the training set's
    largest class has more than 1.5 times the frames of its smallest (`wants_balance`). The model is
    left in eval mode. `between_batches()`, when given, is called before each batch (a parallel search's
    workers pause there while another times a net: `compress.nas.costs.TimingLock`).

    history: {"loss": [mean per epoch], "lr": [...], "val": [headline metrics per epoch],
              "epochs": n, "steps": n, "seconds": s, "balance": bool,
              "selected_by": metric | None, "best_epoch": 1-based epoch kept | None, "best": its figure}
    """
    if epochs < 1 or batch_size < 1:
        raise BadInputError(f"epochs {epochs} and batch size {batch_size} must be at least 1")
    if patience is not None and patience < 1:
        raise BadInputError(f"patience {patience} must be at least 1 epoch (or None: no early stop)")
    if len(train_set) == 0:
        raise BadInputError("the training set is empty; check the data folder and the task")
    from edge.ml.training.batches import make_loader, torch_threads, wants_balance
    from edge.ml.training.progress import Progress

    kind = model.edge_config.task.kind
    if balance is None:
        balance = wants_balance(train_set, kind)
    torch.manual_seed(seed)
    loader = make_loader(train_set, kind, batch_size, shuffle=True, seed=seed, num_workers=num_workers,
                         balance=balance)
    opt = optimizer or torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    validate = val_set is not None and len(val_set) > 0
    history = {"loss": [], "lr": [], "val": [], "epochs": 0, "steps": 0, "seconds": 0.0, "balance": bool(balance),
               "selected_by": SELECT_BY[kind] if validate else None, "best_epoch": None, "best": None}
    best_state, best_figure = None, -math.inf
    t0 = time.perf_counter()
    try:
        total = epochs * len(loader) if max_steps is None else min(max_steps, epochs * len(loader))
        with torch_threads(threads), Progress(total, "train", progress) as bar:
            for epoch in range(epochs):
                bar.describe(f"epoch {epoch + 1}/{epochs}")
                history["lr"].append(opt.param_groups[0]["lr"])
                history["loss"].append(_epoch(model, loader, opt, kind, history, max_steps, bar, between_batches))
                sched.step()
                history["epochs"] = epoch + 1
                if validate:
                    history["val"].append(_validate(model, val_set, batch_size))
                    figure = _figure(history["val"][-1], history["selected_by"])
                    if best_state is None or figure >= best_figure:
                        best_figure, best_state = figure, _snapshot(model)
                        history["best_epoch"], history["best"] = epoch + 1, history["val"][-1].get(history["selected_by"])
                    elif patience is not None and epoch + 1 - history["best_epoch"] >= patience:
                        break
                if max_steps is not None and history["steps"] >= max_steps:
                    break
            if best_state is not None and history["best_epoch"] != history["epochs"]:
                model.load_state_dict(best_state)
    finally:
        history["seconds"] = round(time.perf_counter() - t0, 3)
        model.eval()
    return history


def _figure(metrics: dict, key: str) -> float:
    """A validation figure to compare epochs by; a missing one (mAP with no boxes) ranks lowest."""
    v = metrics.get(key)
    return -math.inf if v is None or not math.isfinite(v) else float(v)


def _snapshot(model) -> dict:
    """A copy of the model's state (tensors cloned, any extra state deep-copied) to restore later."""
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
            for k, v in model.state_dict().items()}


def _epoch(model, loader, opt, kind, history, max_steps, bar, between_batches=None) -> float:
    """One pass over `loader`; the mean training loss per sample."""
    from edge.ml.training.batches import batch_loss

    device = next(model.parameters()).device
    model.train()
    total, seen = 0.0, 0
    for batch in loader:
        if between_batches is not None:
            between_batches()
        loss, n = batch_loss(model, batch, kind, device)
        if not math.isfinite(loss.item()):
            raise EdgekitError(f"the training loss became {loss.item()} at step {history['steps'] + 1}; "
                               f"lower the learning rate (--lr)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, seen = total + loss.item() * n, seen + n
        history["steps"] += 1
        bar.advance(loss=total / seen)
        if max_steps is not None and history["steps"] >= max_steps:
            break
    return total / max(seen, 1)


def _validate(model, val_set, batch_size) -> dict:
    from edge.ml.training.evaluate import evaluate_model, headline

    return headline(evaluate_model(model, val_set, batch_size=batch_size))

