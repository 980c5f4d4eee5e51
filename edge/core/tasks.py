"""The FPUS23 tasks (and the other seed tasks) as data, not scattered constants.

A task says what a model predicts: its kind (single-label, multi-label, detection), the label names,
and how outputs turn into answers. Datasets may override label names (``task.with_labels([...])``)::

    >>> from edge.core.tasks import get_task
    >>> get_task("plane").labels
    ('AC', 'BPD', 'FL', 'no plane')

Torch-free: the runtime reads the same definitions from a bundle's manifest.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from edge.core.errors import lookup

SINGLE_LABEL = "single_label"
MULTI_LABEL = "multi_label"
DETECTION = "detection"
KINDS = (SINGLE_LABEL, MULTI_LABEL, DETECTION)
# How a kind's raw scores become confidences, in training, in the manifest and on the device.
ACTIVATIONS = {SINGLE_LABEL: "softmax", MULTI_LABEL: "sigmoid", DETECTION: "none"}


def activation_for(kind: str) -> str:
    """softmax (single label), sigmoid (multi label) or none (detectors emit scores)."""
    return ACTIVATIONS[kind]


@dataclass(frozen=True)
class Task:
    """What a model predicts. `kind` decides loss, activation and metrics."""

    name: str
    kind: str
    labels: tuple[str, ...]
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise ValueError(f"task {self.name!r}: labels must be unique and non-empty, got {self.labels}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def activation(self) -> str:
        """How logits become confidences: softmax, sigmoid, or none (detectors emit scores)."""
        return activation_for(self.kind)

    def with_labels(self, labels: Iterable[str]) -> "Task":
        """The same task with a dataset's own label names (e.g. FETAL_PLANES_DB's six planes)."""
        return replace(self, labels=tuple(labels))

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(name=d["name"], kind=d["kind"], labels=tuple(d["labels"]))


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


PLANE = register_task(Task("plane", SINGLE_LABEL, ("AC", "BPD", "FL", "no plane"),
                           "FPUS23 diagnostic plane: abdominal circumference, biparietal diameter, femur length"))
ORIENTATION = register_task(Task("orientation", SINGLE_LABEL, ("hdvb", "hdvf", "huvb", "huvf"),
                                 "FPUS23 fetus orientation: head down/up, view back/front"))
ANATOMY = register_task(Task("anatomy", MULTI_LABEL, ("head", "arms", "legs", "abdomen"),
                             "FPUS23 anatomy in view; several can be in view at once"))
DETECTION_TASK = register_task(Task("detection", DETECTION, ("head", "arms", "legs", "abdomen"),
                                    "FPUS23 anatomy boxes"))
STANDARD_PLANES = register_task(Task(
    "standard_plane", SINGLE_LABEL,
    ("3VV", "4CH", "Abdominal", "Background", "Brain (Cb.)", "Brain (Tv.)", "Femur", "Kidneys", "Lips",
     "LVOT", "Profile", "RVOT", "Spine (cor.)", "Spine (sag.)"),
    "SonoNet: 13 standard scan planes of the mid-pregnancy scan plus background"))
FETAL_PLANES = register_task(Task(
    "fetal_planes", SINGLE_LABEL,
    ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"),
    "FETAL_PLANES_DB: six common maternal-fetal planes"))
FPUS23_TASKS = ("plane", "orientation", "anatomy", "detection")


def get_task(name: str) -> Task:
    return lookup(_TASKS, name, "task", f"expected one of {', '.join(_TASKS)}")


def list_tasks() -> list[str]:
    return list(_TASKS)
