"""Samples -> tensors for training, through the same `edge.core.preprocess` the device runtime uses.

    >>> from edge.ml.data import phantom_samples
    >>> from edge.core.preprocess import default_spec
    >>> from edge.core.tasks import get_task
    >>> samples, labels = phantom_samples("plane", n=8, size=(64, 64))
    >>> x, y = TaskDataset(samples, get_task("plane").with_labels(labels), default_spec((32, 32)))[1]
    >>> tuple(x.shape), int(y)
    ((1, 32, 32), 1)

Targets: class index (single_label), float multi-hot (multi_label), or a torchvision detection dict
``{"boxes": float Nx4 in model-input pixels, "labels": int64 1-based}`` (detection).

Augmentation (`augment=True`: `edge.ml.data.augment.Augment()`, or an `Augment` of your own) changes
the frame before the shared preprocessing, so the device's preprocessing stays the training one: a
horizontal flip, zoom and rotation about the probe apex, gain and TGC, acoustic shadows and speckle.
In the phantom's geometry (`edge.core.phantom.scene`) a mirrored frame is exactly the frame of the
fetus with head up and head down swapped (transverse cuts mirror the fetal left; longitudinal cuts put
the head on the other side), so the flip swaps hd<->hu in the orientation label and keeps view
back/front, the plane and the anatomy; boxes follow the flip, zoom and rotation. The augmentation's
random numbers come from torch's RNG (one draw per frame), which a DataLoader seeds per worker.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edge.ml.data.augment import Augment
from edge.ml.data.records import Sample
from edge.core.phantom.scene import flip_orientation
from edge.core.preprocess import box_targets, preprocess, validate_spec
from edge.core.tasks import DETECTION, MULTI_LABEL, Task


class TaskDataset(Dataset):
    """(float32 CxHxW tensor, target) per sample, for one task."""

    def __init__(self, samples: list[Sample], task: Task, preprocess_spec: dict, augment: bool | Augment = False):
        self.samples, self.task, self.spec = list(samples), task, validate_spec(preprocess_spec)
        if augment is True:
            augment = Augment()
        self.augment = augment.for_kind(task.kind) if isinstance(augment, Augment) else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        img = s.load_image()
        label, boxes = s.label, list(s.boxes)
        if self.augment is not None:                         # torch's RNG: seeded per DataLoader worker
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            img, boxes, flipped = self.augment(img, boxes, rng)
            if flipped and self.task.name == "orientation" and label:
                label = flip_orientation(label)
        x = torch.from_numpy(preprocess(img, self.spec))
        if self.task.kind == MULTI_LABEL:
            y = torch.tensor([float(lbl in (s.anatomy or ())) for lbl in self.task.labels])
        elif self.task.kind == DETECTION:
            y = self._boxes(boxes, img.shape[:2])
        else:
            y = torch.tensor(self.task.labels.index(label), dtype=torch.int64)
        return x, y

    def _boxes(self, boxes, shape) -> dict:
        """Frame-pixel boxes -> model-input pixels (ROI crop, then resize); degenerate ones dropped."""
        rows, ids = box_targets(boxes, shape, self.spec, self.task.labels)
        return {"boxes": torch.from_numpy(rows), "labels": torch.from_numpy(ids)}


def collate_detection(batch):
    """Detection batches stay lists (torchvision detectors take a list of images and of targets)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


class PhantomDataset(TaskDataset):
    """A TaskDataset over in-memory phantom frames: no PNGs, deterministic per seed."""

    def __init__(self, task_name: str, preprocess_spec: dict, seed: int = 0, n: int = 256,
                 size: tuple[int, int] = (96, 96), augment: bool | Augment = False):
        from edge.ml.data import phantom_samples
        from edge.core.tasks import get_task

        samples, labels = phantom_samples(task_name, seed, n, size)
        super().__init__(samples, get_task(task_name).with_labels(labels), preprocess_spec, augment)
