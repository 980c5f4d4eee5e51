"""Checkpoints: weights plus the metadata every later stage needs, loaded without running pickled code.

An edgekit checkpoint is a `torch.save` of plain data (see docs/ARCHITECTURE.md); it is always read
with `torch.load(weights_only=True)`, so a crafted file whose unpickling would run code is refused
before any of it runs. A pruned model's structure is data (`model.shapes`), rebuilt on load.

    >>> model = create_model("resnet8", task="plane", input_size=(64, 64))
    >>> save_checkpoint("plane.pt", model, provenance={"epochs": 3})
    >>> model, meta = load_model("plane.pt")
    >>> model, meta = load_model("SonoNet16.pth", model="sononet16")   # a plain third-party state_dict
"""
from __future__ import annotations

import datetime as _dt
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from edge import __version__
from edge.errors import FileFormatError, require_file
from edge.models import create_model
from edge.tasks import Task

FORMAT, VERSION = "edgekit.checkpoint", 1


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_shapes(model: nn.Module) -> dict[str, list[int]]:
    """Every parameter and buffer shape: the structure of a (possibly pruned) model, as data."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def save_checkpoint(path, model: nn.Module, *, provenance: dict | None = None, compression=None,
                    quantization: dict | None = None, state_dict: dict | None = None) -> Path:
    """Write `model` with its config and history to `path`, atomically (temp file + rename)."""
    cfg = model.edge_config
    pruned = model_shapes(model) != model_shapes(create_model(cfg.name, cfg.task, **cfg.kwargs))
    ckpt = {
        "format": FORMAT, "version": VERSION,
        "model": {"name": cfg.name, "kwargs": cfg.kwargs, "shapes": model_shapes(model) if pruned else None},
        "task": cfg.task.to_dict(),
        "config": cfg.to_dict(),
        "provenance": {"edgekit": __version__, "created": _now(), **(provenance or {})},
        "compression": list(compression or []),
        "quantization": quantization,
        "state_dict": {k: v.detach().cpu() for k, v in (state_dict or model.state_dict()).items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_file(path) -> dict:
    """torch.load with weights_only=True, turning every way a file can be bad into one line."""
    path = require_file(path, "checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise FileFormatError(f"{path}: refused to load: it holds objects other than tensors and plain "
                              f"data ({first}); re-save it as a state_dict or an edgekit checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a readable PyTorch file (truncated or corrupt: "
                              f"{str(exc).splitlines()[0][:120]}); re-copy or re-save it") from None
    if not isinstance(obj, dict):
        raise FileFormatError(f"{path}: holds a {type(obj).__name__}, expected a checkpoint or state_dict")
    return obj


def is_edgekit(obj: dict) -> bool:
    return obj.get("format") == FORMAT


def resize_to_shapes(model: nn.Module, shapes: dict[str, list[int]]) -> nn.Module:
    """Rebuild a pruned structure: resize each layer whose recorded tensors differ from the model's."""
    own = model.state_dict()
    for name, shape in shapes.items():
        if name not in own or list(own[name].shape) == list(shape):
            continue
        mod_name, _, attr = name.rpartition(".")
        mod = model.get_submodule(mod_name)
        old = getattr(mod, attr)
        new = torch.zeros(shape, dtype=old.dtype)
        if isinstance(old, nn.Parameter):
            setattr(mod, attr, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            mod.register_buffer(attr, new)
        _fix_layer_attributes(mod)
    return model


def _fix_layer_attributes(mod: nn.Module) -> None:
    """Keep a resized layer's size attributes true to its tensors."""
    if isinstance(mod, nn.Conv2d):
        depthwise = mod.groups > 1 and mod.groups == mod.in_channels
        mod.out_channels = mod.weight.shape[0]
        mod.in_channels = mod.weight.shape[1] * (mod.weight.shape[0] if depthwise else mod.groups)
        if depthwise:
            mod.groups = mod.out_channels
    elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
        mod.num_features = (mod.weight if mod.weight is not None else mod.running_mean).shape[0]
    elif isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = mod.weight.shape


def load_state(model: nn.Module, state: dict, source) -> None:
    """load_state_dict(strict=True) with a one-line error naming what did not fit."""
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        name = getattr(getattr(model, "edge_config", None), "name", type(model).__name__)
        parts = [f"{len(l)} {what} (e.g. {l[0]})" for l, what in
                 ((missing, "missing"), (unexpected, "unexpected"), (wrong, "of another shape")) if l]
        raise FileFormatError(f"{source}: weights do not fit model {name!r}: {', '.join(parts)}; "
                              f"pick the model the weights were trained as (--model)")
    model.load_state_dict(state, strict=True)


def load_checkpoint(path) -> dict:
    """The raw edgekit checkpoint dict (metadata + state_dict); plain state_dicts are refused here."""
    obj = read_file(path)
    if not is_edgekit(obj):
        raise FileFormatError(f"{path}: a plain state_dict, not an edgekit checkpoint; load it with "
                              f"--model NAME (e.g. `edgekit report {path} --model sononet16`)")
    if obj.get("version", 0) > VERSION:
        raise FileFormatError(f"{path}: checkpoint version {obj['version']} is newer than this edgekit "
                              f"reads ({VERSION}); upgrade edgekit")
    return obj


def load_model(path, model: str | None = None, task: str | Task | None = None, **overrides):
    """Build the model a checkpoint describes and load its weights; returns (model, metadata).

    For a plain third-party state_dict, name the zoo model (`model=`) and optionally the task.
    """
    obj = read_file(path)
    if is_edgekit(obj):
        obj = load_checkpoint(path)
        spec = obj["model"]
        net = create_model(spec["name"], Task.from_dict(obj["task"]), **{**spec["kwargs"], **overrides})
        if spec.get("shapes"):
            resize_to_shapes(net, spec["shapes"])
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
        state = obj["state_dict"]
    else:
        if model is None:
            raise FileFormatError(f"{path}: a plain state_dict with no model name; say which zoo model "
                                  f"it is with --model NAME (see `edgekit models`)")
        net = create_model(model, task or _default_task(model), **overrides)
        state = obj.get("state_dict", obj) if isinstance(obj.get("state_dict"), dict) else obj
        meta = {"format": "state_dict", "model": {"name": model, "kwargs": net.edge_config.kwargs},
                "task": net.edge_config.task.to_dict(), "config": net.edge_config.to_dict(),
                "provenance": {"source": str(path)}, "compression": [], "quantization": None}
    load_state(net, state, path)
    return net.eval(), meta


def _default_task(model: str) -> str:
    from edge.models import get_entry
    from edge.tasks import DETECTION

    entry = get_entry(model)
    return getattr(entry.builder, "default_task", None) or ("detection" if DETECTION in entry.tasks else "plane")
