"""The model zoo registry, in the spirit of timm.

Each family module registers its variants with `@register_model`; users call::

    >>> from edge.ml.models import create_model, list_models
    >>> model = create_model("resnet8", task="plane", input_size=(64, 64))
    >>> model.edge_config.labels
    ('AC', 'BPD', 'FL', 'no plane')
    >>> list_models("resnet1*")
    ['resnet10', 'resnet18']

A builder takes `(task, input_size, in_chans, **kwargs)` and returns an `nn.Module`; `create_model`
attaches the `ModelConfig` as `model.edge_config`. Each entry names its default task (what a model
built without one predicts: `edgekit report densenet169`, a plain state_dict loaded as `sononet16`).
"""
from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from typing import Callable

from edge.core.errors import BadInputError, lookup
from edge.ml.models.config import ModelConfig
from edge.core.tasks import DETECTION, Task, get_task


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Callable
    family: str
    tasks: tuple[str, ...]        # task kinds it serves: single_label, multi_label, detection
    default_size: tuple[int, int]
    description: str
    default_task: str             # the task a model built without one is for


_MODELS: dict[str, ZooEntry] = {}


def register_model(*, family: str, kinds: tuple[str, ...], default_size=(224, 224), description: str = "",
                   default_task: str | None = None):
    """Register a builder under its function name. Checked now, so a slip fails at import, not in use.

    `default_task` (default: `detection` for detectors, else `plane`) must be a task of one of `kinds`.
    """

    def wrap(fn: Callable) -> Callable:
        params = list(inspect.signature(fn).parameters)
        if params[:3] != ["task", "input_size", "in_chans"]:
            raise TypeError(f"model builder {fn.__name__} must take (task, input_size, in_chans, ...)")
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        task = default_task or ("detection" if DETECTION in kinds else "plane")
        if get_task(task).kind not in kinds:
            raise ValueError(f"model {fn.__name__!r}: default task {task!r} is a {get_task(task).kind} task, "
                             f"not one of its kinds {tuple(kinds)}")
        _MODELS[fn.__name__] = ZooEntry(fn.__name__, fn, family, tuple(kinds), tuple(default_size),
                                          description or (fn.__doc__ or "").strip().splitlines()[0], task)
        return fn

    return wrap


def get_entry(name: str) -> ZooEntry:
    return lookup(_MODELS, name, "model", f"see `edgekit models` for the {len(_MODELS)} in the zoo")


def list_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Model names matching a shell-style pattern (and serving a task kind), sorted."""
    return sorted(n for n, e in _MODELS.items()
                  if fnmatch.fnmatch(n, pattern) and (kind is None or kind in e.tasks))


def resolve_task(task: str | Task, labels=None) -> Task:
    t = task if isinstance(task, Task) else get_task(task)
    return t.with_labels(labels) if labels else t


def create_model(name: str, task: str | Task = "plane", *, input_size=None, in_chans: int = 1,
                 labels=None, **kwargs):
    """Build zoo model `name` for `task`; overrides: input_size (H, W), in_chans, labels, family kwargs."""
    entry = get_entry(name)
    task = resolve_task(task, labels)
    if task.kind not in entry.tasks:
        raise BadInputError(f"model {name!r} serves {', '.join(entry.tasks)} tasks, not {task.kind} "
                            f"task {task.name!r}; pick a model with `edgekit models --task {task.name}`")
    size = tuple(int(v) for v in (input_size or entry.default_size))
    if len(size) != 2 or min(size) < 16:
        raise BadInputError(f"input size {size} is too small; expected (height, width) of at least 16x16")
    model, preprocess, outputs = entry.builder(task, size, in_chans, **kwargs)
    overrides = {"input_size": list(size), "in_chans": in_chans, **kwargs}
    if labels:
        overrides["labels"] = list(labels)
    model.edge_config = ModelConfig(name, task, size, in_chans, preprocess, overrides, tuple(outputs))
    return model
