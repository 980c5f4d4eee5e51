"""Batches in, loss out: one place that knows how each task kind is batched and scored.

The task kind decides the loss, as in the FPUS23 recipe: cross-entropy for one label per frame,
binary cross-entropy on logits for several labels (the multi-label soft-margin loss up to a constant),
and torchvision's own RPN + ROI-head losses for Faster R-CNN, which a detector returns itself when it
is called in train mode with targets.
"""
from __future__ import annotations

import contextlib
import os
from collections import Counter

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, WeightedRandomSampler

from edge.core.errors import BadInputError
from edge.core.tasks import DETECTION, MULTI_LABEL, SINGLE_LABEL


def logits_of(output) -> torch.Tensor:
    """Models with extra outputs (SonoNet/soft-proposal maps) return (logits, maps): keep the logits."""
    return output[0] if isinstance(output, (tuple, list)) else output


def batch_loss(model, batch, kind: str, device) -> tuple[torch.Tensor, int]:
    """(scalar loss, batch size) for one batch of a task of `kind`; the model must be in train mode."""
    x, y = batch
    if kind == DETECTION:
        images = [img.to(device) for img in x]
        targets = [{k: v.to(device) for k, v in t.items()} for t in y]
        losses = model(images, targets)
        return sum(losses.values()), len(images)
    logits = logits_of(model(x.to(device)))
    if kind == SINGLE_LABEL:
        return F.cross_entropy(logits, y.to(device)), len(x)
    if kind == MULTI_LABEL:
        return F.binary_cross_entropy_with_logits(logits, y.to(device).float()), len(x)
    raise ValueError(f"no loss for task kind {kind!r}")


def make_loader(dataset, kind: str, batch_size: int, *, shuffle: bool, seed: int = 0,
                num_workers: int = 0, balance: bool = False) -> DataLoader:
    """A DataLoader whose order (and workers' augmentation RNG) follows `seed`.

    A lone last sample would make BatchNorm fail in train mode, so it is dropped when shuffling.
    `balance` (single-label tasks) draws each epoch's samples with replacement, weighted by
    `count ** -BALANCE_POWER` of their class (`class_balanced_sampler`): a probe sweep crosses a
    diagnostic plane in under a tenth of its frames, and an unweighted plane model learns to answer
    "no plane".
    """
    from edge.ml.data.dataset import collate_detection

    gen = torch.Generator().manual_seed(seed)
    drop_last = shuffle and len(dataset) > batch_size and len(dataset) % batch_size == 1
    sampler = class_balanced_sampler(dataset, kind, gen) if balance else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      generator=None if sampler else gen, drop_last=drop_last, num_workers=num_workers,
                      persistent_workers=num_workers > 0, collate_fn=collate_detection if kind == DETECTION else None)


IMBALANCE = 1.5          # largest / smallest class count above which balancing is on by default
# Square-root balancing: a class of n frames is drawn in proportion to sqrt(n). Full inverse-frequency
# (power 1) draws every class equally, so the model's prior says a plane is shown 3 frames in 4 where
# a sweep shows one in 4 or fewer; on 16 unseen sweeps (bench_sweeps' data, 32 training fetuses) the
# plane model scored accuracy 0.895 / macro-F1 0.853 with power 1 and 0.943 / 0.912 with power 0.5.
BALANCE_POWER = 0.5


def wants_balance(dataset, kind: str) -> bool:
    """Whether a training set is imbalanced enough to balance by default: a single-label task dataset
    whose largest class has more than `IMBALANCE` times the frames of its smallest (classes present)."""
    if kind != SINGLE_LABEL or not hasattr(dataset, "samples"):
        return False
    counts = Counter(s.label for s in dataset.samples)
    return len(counts) > 1 and max(counts.values()) > IMBALANCE * min(counts.values())


def class_balanced_sampler(dataset, kind: str, generator) -> WeightedRandomSampler:
    """Sampling over a TaskDataset of a single-label task with each frame weighted by its class's
    count ** -BALANCE_POWER: with 90 "no plane" frames and 10 AC, AC is a quarter of the draws."""
    if kind != SINGLE_LABEL or not hasattr(dataset, "samples"):
        raise BadInputError(f"class balancing needs a single-label task dataset, not {kind}; drop --balance")
    labels = [s.label for s in dataset.samples]          # what TaskDataset trains on
    counts = Counter(labels)
    weights = torch.tensor([counts[lbl] ** -BALANCE_POWER for lbl in labels], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True, generator=generator)


def cpu_threads(requested: int | None = None) -> int:
    """Threads for intra-op work: what was asked, else the cores this process may use less those
    other processes keep busy (1-minute load average). torch's default counts every core of the
    machine; on a shared CPU more threads than free cores make each step slower, not faster (on 2
    busy cores a ResNet8 step took 2.5x longer with 2 threads than with 1)."""
    if requested:
        return int(requested)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        usable = os.cpu_count() or 1
    try:
        free = usable - os.getloadavg()[0]
    except OSError:
        free = usable
    return max(1, min(torch.get_num_threads(), usable, round(free)))


@contextlib.contextmanager
def torch_threads(requested: int | None = None):
    """torch's intra-op threads set to `cpu_threads(requested)` for the block, then restored.

    Every torch-heavy step runs inside one (fit, evaluate, compression, export): parity checks,
    calibration and ONNX tracing would otherwise run at torch's default of every core, and on two
    loaded cores a Faster R-CNN forward took 1.0 s with two threads against 0.06 s with one.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(requested))
    try:
        yield
    finally:
        torch.set_num_threads(old)
