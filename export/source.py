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

from edge.errors import UnsupportedError


def load_for_export(path, float_only: bool = False, model: str | None = None) -> tuple:
    """(model in eval mode, checkpoint metadata without the state_dict); QAT checkpoints get quantizers back.

    `float_only` builds a QAT checkpoint's float twin (same weights, no quantizers): the source of
    the fp16 fallback a Jetson bundle carries for devices without INT8. `model` names the zoo model
    a plain state_dict holds (ignored for edgekit checkpoints, which name their own).
    """
    from edge.checkpoint import is_edgekit, load_checkpoint, load_model, load_state, read_file, resize_to_shapes
    from edge.models import create_model
    from edge.tasks import Task

    if model is not None and not is_edgekit(read_file(path)):
        net, meta = load_model(path, model=model)
        return net.eval(), meta
    ckpt = load_checkpoint(path)
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    if not ckpt.get("quantization"):
        model, _ = load_model(path)
        return model.eval(), meta
    from export.quant import restore_quantized

    spec = ckpt["model"]
    net = create_model(spec["name"], Task.from_dict(ckpt["task"]), **spec["kwargs"])
    if spec.get("shapes"):
        # quantizer buffers are not layers: resize only the float structure, ModelOpt adds the rest
        resize_to_shapes(net, {k: v for k, v in spec["shapes"].items() if "_quantizer." not in k})
    state = ckpt["state_dict"]
    if float_only:
        state = {k: v for k, v in state.items() if "_quantizer." not in k}
    else:
        net = restore_quantized(net, ckpt["quantization"], source=str(path))
    load_state(net, state, path)
    return net.eval(), meta


def require_int8_ready(path, meta: dict) -> None:
    """INT8 export needs a QAT checkpoint; say how to make one."""
    if not meta.get("quantization"):
        raise UnsupportedError(f"{Path(path).name} has no INT8 quantization (not a QAT checkpoint); run "
                               f"`edgekit compress {path} --qat` first, or export with --precision fp16")
