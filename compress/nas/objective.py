"""One trial: a candidate's cost on the target, then short proxy training scored on held-out streams.

The data is split exactly as `edgekit train` splits it (`edge.ml.data.split_streams`, 8:1:1 by stream,
every class in val and test, the same seed), so the search scores every candidate on the **val**
streams and never sees the test streams; the final net's test figure (from `train`) is then honest.

Proxy training is `edge.ml.training.fit.fit`'s recipe (augmentation, class balancing, Adam) for a few
epochs, the last at a tenth of the rate; the trial's accuracy is its best val figure after any epoch:
macro-F1 for single-label tasks, exact match for multi-label ones (`fit.SELECT_BY`).

Poor trials stop early. Optuna's pruners do not work for multi-objective studies (`Trial.report` and
`should_prune` refuse them), so the rule is ours, and reads the shared study like a median pruner:
after epoch 1, a trial whose val figure is below `stop_ratio` x the median epoch-1 figure of the
trials already finished (once `stop_after` of them have) trains no further and reports that figure.
A candidate far over budget (latency or memory above `skip_over` x the budget) is not trained at all:
its accuracy could not make it a choice, and its cost is known before any training.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from edge.core.errors import UnsupportedError

PRELOAD_BYTES = 2 * 1024 ** 3          # keep decoded training frames in memory up to this much


@dataclass(frozen=True)
class ProxySettings:
    """How candidates are trained during the search."""

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 32
    max_frames: int | None = None     # training frames per epoch (an even subsample); None: all
    stop_ratio: float = 0.5
    stop_after: int = 4
    skip_over: float = 2.0
    seed: int = 0
    threads: int | None = None        # torch intra-op threads (None: the free cores; 1 per parallel worker)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, "max_frames": self.max_frames,
                "last_epoch_lr": self.lr / 10 if self.epochs > 1 else self.lr, "stop_ratio": self.stop_ratio,
                "stop_after": self.stop_after, "skip_over": self.skip_over, "seed": self.seed,
                "split": "split_streams (0.8, 0.1, 0.1), the same seed as `edgekit train`: trained on train, "
                         "scored on val; test is kept for the final net"}


class ProxyData:
    """The user's data, split by stream as `edgekit train` splits it; training frames decoded once."""

    def __init__(self, data, task: str, seed: int = 0, max_frames: int | None = None, preload: bool = True):
        from edge.core.tasks import DETECTION, get_task
        from edge.ml.data import load_samples, split_streams
        from edge.ml.training.train import CLASSIFIER_SPLIT

        if get_task(task).kind == DETECTION:
            raise UnsupportedError("edgekit nas searches classifiers (single- and multi-label tasks), not detectors")
        samples, labels = load_samples(data, task)
        self.task = get_task(task).with_labels(labels)
        self.split = split_streams(samples, self.task, CLASSIFIER_SPLIT, seed=seed)
        self.train, self.val, self.test = self.split.parts
        if not self.val:
            raise UnsupportedError(f"{data}: too few streams for a val split; add streams")
        if max_frames and len(self.train) > max_frames:
            step = len(self.train) / max_frames
            self.train = [self.train[int(i * step)] for i in range(max_frames)]
        if preload:
            self.train, self.val = _preload(self.train), _preload(self.val)

    def datasets(self, preprocess_spec: dict):
        from edge.ml.data.augment import Augment
        from edge.ml.data.dataset import TaskDataset

        return (TaskDataset(self.train, self.task, preprocess_spec, augment=Augment()),
                TaskDataset(self.val, self.task, preprocess_spec))

    def folds(self, k: int) -> tuple[list[tuple[list, list]], list[str]]:
        """(train, val) sample lists for choosing among finalists, and the split's warnings: the streams
        `edgekit train` trains and validates on (never its test streams) cut into `k` parts by stream
        (`split_streams`: every class in every part that the data allows), each part the val of one fold.
        `k` 1, or fewer streams than `k`: the one fold is the train and val split itself."""
        from edge.ml.data import split_streams

        pool = self.train + self.val
        if k > 1 and len({s.group for s in pool}) >= k:
            cut = split_streams(pool, self.task, (1 / k,) * k, seed=self.split.seed)
            lacks = [(i, cut.missing.get(name)) for i, name in enumerate(cut.names)]
            return [([s for j, p in enumerate(cut.parts) if j != i for s in p], cut.parts[i]) for i in range(k)], \
                [f"fold {i + 1}'s val streams hold no frame of {', '.join(map(repr, c))}" for i, c in lacks if c]
        return [(self.train, self.val)], list(self.split.warnings)

    def describe(self) -> dict:
        rec = self.split.record()
        return {"train_frames": len(self.train), "val_frames": len(self.val), "test_frames": len(self.test),
                "val_streams": rec["val"]["groups"], "test_streams": rec["test"]["groups"], "warnings": rec["warnings"]}


def _preload(samples: list) -> list:
    """Samples with their frames decoded in memory (`Sample.image`), if they fit PRELOAD_BYTES."""
    import dataclasses

    out, total = [], 0
    for s in samples:
        if s.image is not None:
            out.append(s)
            continue
        img = s.load_image()
        total += img.nbytes
        if total > PRELOAD_BYTES:
            return out + samples[len(out):]
        out.append(dataclasses.replace(s, image=img))
    return out


def proxy_train(model, data: ProxyData, settings: ProxySettings, should_stop=None, on_epoch=None,
                lock=None) -> dict:
    """Train `model` for `settings.epochs` (the last at lr/10) and score it on the val streams after each.

    `should_stop(figure)` is asked after epoch 1; `on_epoch(epoch, figure)` after every epoch; with
    `lock` (`compress.nas.costs.TimingLock`) training pauses while another worker times a net."""
    import contextlib

    with (lock.training() if lock is not None else contextlib.nullcontext()) as between_batches:
        return _proxy_train(model, data, settings, should_stop, on_epoch, between_batches)


def _proxy_train(model, data: ProxyData, settings: ProxySettings, should_stop, on_epoch, between_batches) -> dict:
    import torch

    from edge.ml.training.fit import SELECT_BY, fit

    t0 = time.perf_counter()
    train_set, val_set = data.datasets(model.edge_config.preprocess)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    figures, stopped = [], False
    for epoch in range(settings.epochs):
        last = settings.epochs > 1 and epoch == settings.epochs - 1
        for group in opt.param_groups:
            group["lr"] = settings.lr / 10 if last else settings.lr
        history = fit(model, train_set, epochs=1, optimizer=opt, val_set=val_set, progress=False,
                      seed=settings.seed + epoch, batch_size=settings.batch_size, threads=settings.threads,
                      step_size=10 ** 6, between_batches=between_batches)
        best = history["best"]
        figures.append(float(best) if best is not None and math.isfinite(best) else 0.0)
        if on_epoch:
            on_epoch(epoch, figures[-1])
        if epoch == 0 and settings.epochs > 1 and should_stop is not None and should_stop(figures[-1]):
            stopped = True
            break
    return {"accuracy": round(max(figures), 6), "metric": SELECT_BY[model.edge_config.task.kind],
            "val_figures": [round(f, 6) for f in figures], "epochs": len(figures), "stopped_early": stopped,
            "train_seconds": round(time.perf_counter() - t0, 2)}


def evaluate_arch(arch, data: ProxyData, latency, budget: tuple[float, float], settings: ProxySettings,
                  should_stop=None, on_step=None, always_train: bool = False) -> dict:
    """The trial's record: costs (params, MACs, memory, latency and where it came from), then proxy
    training unless far over budget (`always_train`: the references). `on_step(text)` after each step."""
    import torch

    from compress.nas.costs import model_costs
    from edge.ml.models import create_model

    t0 = time.perf_counter()
    torch.manual_seed(settings.seed)
    model = create_model("resnet_nas", data.task, input_size=arch.input_size, **arch.model_kwargs())
    costs = model_costs(model)
    ms, how = latency.ms(arch, model)
    budget_ms, max_mb = budget
    rec = {"arch": arch.to_dict(), **costs, "latency_ms": ms, "latency_how": how,
           "fits": bool(ms <= budget_ms and costs["memory_mb"] <= max_mb)}
    if getattr(latency, "last", None):
        rec["latency_wall_ms"] = latency.last.get("wall_ms")
        if "anchor_ms" in latency.last:          # timed beside the anchor: what the clock read, unscaled
            rec["latency_raw_ms"], rec["anchor_now_ms"] = latency.last["raw_ms"], latency.last["anchor_ms"]
    if on_step:
        on_step(f"{ms:.3g} ms, {costs['memory_mb']:.3g} MB")
    if not always_train and (ms > settings.skip_over * budget_ms or costs["memory_mb"] > settings.skip_over * max_mb):
        rec.update(status="skipped", accuracy=None, metric=None,
                   note=f"over {settings.skip_over:g}x the budget: not trained")
    else:
        res = proxy_train(model, data, settings, should_stop,
                          (lambda e, f: on_step(f"epoch {e + 1}: {f:.3f}")) if on_step else None,
                          lock=getattr(latency, "lock", None))
        rec.update(res, status="stopped" if res["stopped_early"] else "trained")
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    return rec
