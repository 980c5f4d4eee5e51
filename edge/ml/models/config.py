"""The config that travels with every zoo model (timm's `pretrained_cfg` idea).

Data pipelines, reports and export ask the model, not CLI defaults: `model.edge_config.input_size`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edge.core.preprocess import default_spec
from edge.core.tasks import Task


@dataclass
class ModelConfig:
    """What a built model is: architecture, task, input, preprocessing and the overrides that built it."""

    name: str
    task: Task
    input_size: tuple[int, int]          # (height, width) the model expects
    in_chans: int = 1
    preprocess: dict = field(default_factory=dict)
    kwargs: dict = field(default_factory=dict)   # create_model overrides, to rebuild the same model
    outputs: tuple[str, ...] = ("logits",)       # output roles, in order (see docs/ARCHITECTURE.md)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.task.labels

    def to_dict(self) -> dict:
        return {"name": self.name, "task": self.task.to_dict(), "input_size": list(self.input_size),
                "in_chans": self.in_chans, "preprocess": self.preprocess, "kwargs": self.kwargs,
                "outputs": list(self.outputs)}


def make_preprocess(input_size, mean: float = 0.5, std: float = 0.25, **changes) -> dict:
    """A preprocess spec for `input_size` with the given normalisation and any field changed."""
    spec = default_spec(tuple(input_size), mean=mean, std=std)
    spec.update(changes)
    return spec
