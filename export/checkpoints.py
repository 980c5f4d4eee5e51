"""Load what export needs from an edgekit checkpoint: the model (QAT rebuilt if quantised) and its metadata.

    >>> model, meta = load_for_export("plane.pt")     # doctest: +SKIP
    >>> meta["quantization"] is None                  # doctest: +SKIP
    True
    >>> model, meta = load_for_export("SonoNet16.pth", model="sononet16")   # doctest: +SKIP

A plain third-party state_dict (what a user brings: the released SonoNet16.pth) is exported as the
zoo model `model` names, with that model's default task and config (its preprocessing included).
"""
from __future__ import annotations

from pathlib import Path

from edge.core.errors import UnsupportedError


def load_for_export(path, float_only: bool = False, model: str | None = None) -> tuple:
    """(model in eval mode, checkpoint metadata without the state_dict); QAT checkpoints get quantizers back.

    `float_only` builds a QAT checkpoint's float twin (same weights, no quantizers): the source of
    the fp16 fallback a Jetson bundle carries for devices without INT8. `model` names the zoo model
    a plain state_dict holds (ignored for edgekit checkpoints, which name their own).
    """
    from edge.ml.quantization import load_quantized  # the owner of the checkpoint's quantization field
    from edge.ml.checkpoint import is_edgekit, load_model, read_file

    if model is not None and not is_edgekit(read_file(path)):
        net, meta = load_model(path, model=model)
        return net.eval(), meta
    return load_quantized(path, float_only=float_only)


def require_int8_ready(path, meta: dict) -> None:
    """INT8 export needs a QAT checkpoint; say how to make one."""
    if not meta.get("quantization"):
        raise UnsupportedError(f"{Path(path).name} has no INT8 quantization (not a QAT checkpoint); run "
                               f"`edgekit compress {path} --data DIR` first (INT8 QAT is on by default), or export "
                               f"with --precision fp16")
