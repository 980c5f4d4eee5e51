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

import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from edge import __version__
from edge.core.clock import utc_now
from edge.core.errors import FileFormatError, require_file
from edge.ml.models import create_model
from edge.core.tasks import Task

FORMAT, VERSION = "edgekit.checkpoint", 1


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
        "provenance": {"edgekit": __version__, "created": utc_now(), **(provenance or {})},
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
    if path.is_dir():
        raise FileFormatError(f"{path}: a directory, expected a checkpoint file (.pt); pass the file")
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path}: empty file (0 bytes), expected a PyTorch checkpoint; re-copy or "
                              f"re-save it")
    if path.suffix.lower() == ".npz":   # weights as published (SonoNet's release): a plain state_dict
        from edge.ml.published import read_npz

        return read_npz(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickle_reason(exc)
        if "global" not in reason.lower():      # not a refused object: bytes that are no pickle at all
            raise FileFormatError(f"{path}: not a readable PyTorch file (truncated or corrupt: {reason}); "
                                  f"re-copy or re-save it") from None
        raise FileFormatError(f"{path}: refused to load: it holds objects other than tensors and plain "
                              f"data ({reason}); re-save it as a state_dict or an edgekit checkpoint") from None
    except OSError as exc:
        if isinstance(exc, (PermissionError, IsADirectoryError)):
            raise FileFormatError(f"{path}: cannot read it ({exc.strerror}); fix its permissions") from None
        raise _unreadable(path, exc) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, IndexError, TypeError,
            AttributeError, UnicodeDecodeError, OverflowError, MemoryError, struct.error) as exc:
        # torch.load meets arbitrary bytes with whatever its parsers raise: a text file gives
        # KeyError, an empty pickle EOFError, a zip of other files RuntimeError
        raise _unreadable(path, exc) from None
    if not isinstance(obj, dict):
        raise FileFormatError(f"{path}: holds a {type(obj).__name__}, expected a checkpoint or state_dict")
    return obj


def _first_line(exc: BaseException, limit: int = 120) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0][:limit] if lines else "") or type(exc).__name__


def _unpickle_reason(exc: BaseException) -> str:
    """The line of torch's weights-only refusal that says why (it wraps it in paragraphs of advice)."""
    skip = ("weights only load failed", "please file an issue", "check the documentation")
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    why = [ln for ln in lines if not ln.lower().startswith(skip)]
    return (why or lines or [type(exc).__name__])[0][:160]


def _unreadable(path, exc: BaseException) -> FileFormatError:
    return FileFormatError(f"{path}: not a readable PyTorch file (truncated or corrupt: "
                           f"{type(exc).__name__}: {_first_line(exc)}); re-copy or re-save it")


def is_edgekit(obj: dict) -> bool:
    return obj.get("format") == FORMAT


# What a checkpoint may ask for: a file is data from outside, so sizes are bounded before anything is
# allocated (a crafted `shapes` or `input_size` must not exhaust memory) and types are checked before use.
MAX_SIDE, MAX_CHANS, MAX_LABELS = 4096, 16, 1000
MAX_ELEMENTS = 1_000_000_000        # parameters + buffers (4 GB at fp32); the zoo's largest holds ~30M
_RESAVE = "re-save it with edgekit (`edgekit train`/`compress`), or load its state_dict alone with --model NAME"


def _bad(path, what: str) -> FileFormatError:
    return FileFormatError(f"{path}: {what}; {_RESAVE}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ints(v, n: int | None, low: int, high: int) -> bool:
    return (isinstance(v, (list, tuple)) and (n is None or len(v) == n)
            and all(_is_int(x) and low <= x <= high for x in v))


def _plain(v, depth: int = 0) -> bool:
    """Finite numbers, bools, strings, None, and short lists/dicts of those (what create_model takes)."""
    if v is None or isinstance(v, (bool, str)) or _is_num(v):
        return True
    if depth < 3 and isinstance(v, (list, tuple)) and len(v) <= 64:
        return all(_plain(x, depth + 1) for x in v)
    if depth < 3 and isinstance(v, dict) and len(v) <= 64:
        return all(isinstance(k, str) and _plain(x, depth + 1) for k, x in v.items())
    return False


def _kwarg_rules() -> dict:
    """The zoo's create_model overrides and what each must be (any other key must build the model)."""
    from edge.ml.models.detection import RCNN_OPTIONS

    def side(v) -> bool:
        return v is None or (_is_int(v) and 16 <= v <= MAX_SIDE)

    rules = {
        "input_size": (lambda v: _ints(v, 2, 16, MAX_SIDE), f"[height, width], each 16..{MAX_SIDE}"),
        "in_chans": (lambda v: _is_int(v) and 1 <= v <= MAX_CHANS, f"an integer 1..{MAX_CHANS}"),
        "labels": (lambda v: isinstance(v, (list, tuple)) and 1 <= len(v) <= MAX_LABELS
                   and all(isinstance(x, str) and x for x in v) and len(set(v)) == len(v),
                   f"1..{MAX_LABELS} distinct non-empty names"),
        "mean": (_is_num, "a finite number"),
        "std": (lambda v: _is_num(v) and v > 0, "a positive number"),
        "fpn_channels": (lambda v: _is_int(v) and 1 <= v <= 1024, "an integer 1..1024"),
        "anchors": (lambda v: isinstance(v, (list, tuple)) and 1 <= len(v) <= 8
                    and all(isinstance(a, (list, tuple)) and 1 <= len(a) <= 8
                            and all(_is_num(x) and 0 < x <= MAX_SIDE for x in a) for a in v),
                    "lists of anchor sizes in pixels"),
        "min_size": (side, f"null or an integer 16..{MAX_SIDE}"),
        "max_size": (side, f"null or an integer 16..{MAX_SIDE}"),
        "roi": (lambda v: v is None or (_ints(v, 4, 0, 100_000) and v[0] < v[1] and v[2] < v[3]),
                "null or [y0, y1, x0, x1] with y0 < y1 and x0 < x1"),
        "output_stride": (lambda v: v in (8, 16, 32) and _is_int(v), "8, 16 or 32"),
        "iterations": (lambda v: _is_int(v) and 0 <= v <= 1000, "an integer 0..1000"),
    }
    for key, default in RCNN_OPTIONS.items():
        if _is_int(default):
            rules[key] = (lambda v: _is_int(v) and 0 <= v <= 100_000, "an integer 0..100000")
        else:
            rules[key] = (lambda v: _is_num(v) and 0 <= v <= 1, "a number 0..1")
    return rules


def _check_kwargs(kwargs, path) -> dict:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise _bad(path, f"model.kwargs is a {type(kwargs).__name__}, expected a mapping of option names")
    rules = _kwarg_rules()
    for key, value in kwargs.items():
        ok, want = rules.get(key, (_plain, "plain data"))
        if not ok(value):
            raise _bad(path, f"model.kwargs[{key!r}] = {str(value)[:60]!r} is not {want}")
    return kwargs


def _check_task(task, path) -> Task:
    from edge.core.tasks import get_task, list_tasks

    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        raise _bad(path, f"task is {str(task)[:60]!r}, expected {{name, kind, labels}}")
    try:
        known = get_task(task["name"])
    except KeyError:
        raise _bad(path, f"unknown task {task['name'][:60]!r}; expected one of {', '.join(list_tasks())}") from None
    labels = task.get("labels", list(known.labels))
    if not (isinstance(labels, (list, tuple)) and 1 <= len(labels) <= MAX_LABELS
            and all(isinstance(x, str) and x for x in labels) and len(set(labels)) == len(labels)):
        raise _bad(path, f"task.labels {str(labels)[:60]!r} is not 1..{MAX_LABELS} distinct non-empty names")
    if task.get("kind", known.kind) != known.kind:
        raise _bad(path, f"task {known.name!r} has kind {task.get('kind')!r}, but {known.name!r} is a "
                         f"{known.kind} task")
    return known.with_labels(labels)


def _check_shapes(shapes, path) -> dict | None:
    if shapes is None:
        return None
    if not isinstance(shapes, dict) or not all(isinstance(k, str) for k in shapes):
        raise _bad(path, f"model.shapes is a {type(shapes).__name__}, expected {{tensor name: [dims]}}")
    for name, shape in shapes.items():
        if not _ints(shape, None, 0, MAX_ELEMENTS) or len(shape) > 8:
            raise _bad(path, f"model.shapes[{name[:60]!r}] = {str(shape)[:60]} is not a list of sizes 0..{MAX_ELEMENTS}")
    return shapes


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _check_resized(model: nn.Module, shapes: dict, source) -> None:
    """Refuse, before allocating anything, a recorded structure that does not fit `model` or is too big."""
    own = model.state_dict()
    total = sum(t.numel() for k, t in own.items() if k not in shapes)
    for name, shape in shapes.items():
        if name in own:
            if len(shape) != own[name].dim() or (own[name].numel() and 0 in shape):
                raise FileFormatError(f"{source}: model.shapes[{name!r}] = {list(shape)} does not fit the "
                                      f"model's {list(own[name].shape)}; {_RESAVE}")
            total += _numel(shape)
        if total > MAX_ELEMENTS:
            raise FileFormatError(f"{source}: model.shapes asks for more than {MAX_ELEMENTS:,} weights "
                                  f"(the zoo's largest model has ~30M); {_RESAVE}")


def _meta_model(name: str, task: Task, kwargs: dict, path):
    """Build the model on the meta device (no memory): proves the kwargs build it, and gives its config."""
    from edge.core.errors import EdgekitError
    from edge.ml.models import get_entry

    try:
        get_entry(name)
    except KeyError as exc:
        raise _bad(path, f"model.name: {exc}") from None
    try:
        with torch.device("meta"):
            net = create_model(name, task, **kwargs)
    except EdgekitError as exc:
        raise _bad(path, f"model.kwargs do not build {name!r}: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError, AssertionError,
            OverflowError, ZeroDivisionError) as exc:
        raise _bad(path, f"model.kwargs {sorted(kwargs)} do not build {name!r} ({type(exc).__name__}: "
                         f"{_first_line(exc)})") from None
    if sum(t.numel() for t in net.state_dict().values()) > MAX_ELEMENTS:
        raise _bad(path, f"model.kwargs make {name!r} larger than {MAX_ELEMENTS:,} weights")
    return net


def validate_checkpoint(obj: dict, path) -> dict:
    """Check every field an edgekit checkpoint's reader uses, in one line each, before building anything.

    Returns `obj` with `config` re-derived from the model it describes (what export writes into the
    manifest is then what the exported model was built with).
    """
    version = obj.get("version")
    if not _is_int(version) or version < 1:
        raise _bad(path, f"checkpoint version {str(version)[:40]!r} is not a positive integer")
    if version > VERSION:
        raise FileFormatError(f"{path}: checkpoint version {version} is newer than this edgekit reads "
                              f"({VERSION}); upgrade edgekit")
    spec = obj.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise _bad(path, "model.name is missing, expected a zoo model name (see `edgekit models`)")
    kwargs = _check_kwargs(spec.get("kwargs"), path)
    task = _check_task(obj.get("task"), path)
    shapes = _check_shapes(spec.get("shapes"), path)
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise _bad(path, "has no state_dict (the weights)")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise _bad(path, f"state_dict[{str(bad)[:60]!r}] is not a tensor")
    for key, kind in (("compression", list), ("quantization", dict), ("provenance", dict)):
        if obj.get(key) is not None and not isinstance(obj[key], kind):
            raise _bad(path, f"{key} is a {type(obj[key]).__name__}, expected a {kind.__name__} or null")
    net = _meta_model(spec["name"], task, kwargs, path)
    if shapes:
        _check_resized(net, {k: v for k, v in shapes.items() if "_quantizer." not in k}, path)
    return {**obj, "model": {**spec, "kwargs": kwargs, "shapes": shapes}, "task": task.to_dict(),
            "config": net.edge_config.to_dict()}


def resize_to_shapes(model: nn.Module, shapes: dict[str, list[int]], source="checkpoint") -> nn.Module:
    """Rebuild a pruned structure: resize each layer whose recorded tensors differ from the model's.

    The whole structure is checked first (ranks, sizes, a bounded total), so nothing is allocated for
    a structure that is refused."""
    _check_shapes(shapes, source)
    _check_resized(model, shapes, source)
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
    _fix_model_attributes(model)
    return model


def _fix_model_attributes(model: nn.Module) -> None:
    """Keep size attributes above the layers true: a detector's FPN width (`backbone.out_channels`,
    one count for every level, which structured pruning may shrink with the heads)."""
    backbone = getattr(model, "backbone", None)
    fpn = getattr(backbone, "fpn", None)
    blocks = getattr(fpn, "layer_blocks", None)
    if blocks is not None and hasattr(backbone, "out_channels"):
        backbone.out_channels = blocks[0][0].out_channels


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


def _wrong_format(obj: dict, path) -> FileFormatError | None:
    """A dict that says it is some other format (a `format` key that is not ours) is refused by name."""
    fmt = obj.get("format")
    if "format" in obj and fmt != FORMAT and not isinstance(fmt, torch.Tensor):
        return FileFormatError(f"{path}: format {str(fmt)[:60]!r} is not {FORMAT!r}; pass a checkpoint "
                               f"written by edgekit, or a plain state_dict with --model NAME")
    return None


def _edgekit_checkpoint(obj: dict, path) -> dict:
    err = _wrong_format(obj, path)
    if err:
        raise err
    if not is_edgekit(obj):
        raise FileFormatError(f"{path}: a plain state_dict, not an edgekit checkpoint; load it with "
                              f"--model NAME (e.g. `edgekit report {path} --model sononet16`)")
    return validate_checkpoint(obj, path)


def load_checkpoint(path) -> dict:
    """The edgekit checkpoint dict (metadata + state_dict), every field checked (`validate_checkpoint`);
    plain state_dicts are refused here."""
    return _edgekit_checkpoint(read_file(path), path)


def _plain_state(obj: dict, path) -> dict:
    """The tensors of a third-party file: a state_dict, or one under a `state_dict` key."""
    state = obj["state_dict"] if isinstance(obj.get("state_dict"), dict) else obj
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if not state or bad is not None:
        what = "is empty" if not state else f"holds {str(bad)[:60]!r}, which is not a tensor"
        raise FileFormatError(f"{path}: not a state_dict (it {what}); pass the model's weights "
                              f"(`torch.save(model.state_dict(), path)`) or an edgekit checkpoint")
    return state


def load_model(path, model: str | None = None, task: str | Task | None = None, **overrides):
    """Build the model a checkpoint describes and load its weights; returns (model, metadata).

    For a plain third-party state_dict, name the zoo model (`model=`) and optionally the task.
    """
    obj = read_file(path)
    if is_edgekit(obj) or _wrong_format(obj, path):
        obj = _edgekit_checkpoint(obj, path)
        spec = obj["model"]
        net = create_model(spec["name"], Task.from_dict(obj["task"]), **{**spec["kwargs"], **overrides})
        if spec.get("shapes"):
            resize_to_shapes(net, spec["shapes"], source=path)
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
        state = obj["state_dict"]
    else:
        if model is None:
            raise FileFormatError(f"{path}: a plain state_dict with no model name; say which zoo model "
                                  f"it is with --model NAME (see `edgekit models`)")
        state = _plain_state(obj, path)
        net = create_model(model, task or _default_task(model), **overrides)
        meta = {"format": "state_dict", "model": {"name": model, "kwargs": net.edge_config.kwargs},
                "task": net.edge_config.task.to_dict(), "config": net.edge_config.to_dict(),
                "provenance": {"source": str(path)}, "compression": [], "quantization": None}
    load_state(net, state, path)
    return net.eval(), meta


def _default_task(model: str) -> str:
    from edge.ml.models import get_entry

    return get_entry(model).default_task
