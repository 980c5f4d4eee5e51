"""The checkpoint's `quantization` field: what a QAT checkpoint records so that anything can rebuild it.

`compress.quant.quantize_int8` inserts and calibrates ModelOpt's INT8 quantizers (the procedure);
this module owns the record it leaves in the checkpoint, for every reader: `export` (ONNX with Q/DQ),
`edgekit eval`, `edgekit report` and the compression sweep itself. The field (compress/README.md)::

    {"method": "modelopt", "format": "int8_qdq", "config": "INT8_DEFAULT_CFG",
     "modelopt_version": "0.47.0", "calib_samples": 256,
     "modelopt_state": mto.modelopt_state(model)}

`modelopt_state` holds dicts, lists, tuples, str, int, float, bool, None and `torch.dtype` only (the
last is on `torch.load(weights_only=True)`'s allowlist; `check_plain` proves it at save time). The
calibrated ranges are `*_quantizer._amax` buffers in the checkpoint's ordinary `state_dict`. Rebuild::

    >>> model, meta = load_quantized("plane.s50.int8.pt")          # doctest: +SKIP
    >>> # by hand: create_model -> resize_to_shapes (float keys) -> restore_quantized -> load_state
"""
from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from edge.core.errors import FileFormatError

METHOD, FORMAT, CONFIG = "modelopt", "int8_qdq", "INT8_DEFAULT_CFG"
_PLAIN = (str, int, float, bool, type(None), torch.dtype)


@contextlib.contextmanager
def quiet():
    """ModelOpt prints 'Inserted N quantizers' and similar; keep the CLI's output ours."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def is_quantized(model: nn.Module) -> bool:
    """True if ModelOpt quantizers are in the model."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    return any(isinstance(m, TensorQuantizer) for m in model.modules())


def check_plain(obj, path: str = "modelopt_state") -> None:
    """Raise if `obj` holds anything `torch.load(weights_only=True)` would refuse (bug, not user error)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            check_plain(k, path)
            check_plain(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{path}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{path} is a {type(obj).__name__}, not plain data; ModelOpt's state changed "
                        f"shape: convert it in edge.ml.quantization before saving")


def quantization_meta(model: nn.Module, config: str = CONFIG, calib_samples: int | None = None,
                      keep_float=None) -> dict:
    """The checkpoint `quantization` field for a model quantised by `quantize_int8`; `keep_float`
    names the layers whose quantizers were disabled (`keep_float`), recorded when given."""
    import modelopt
    import modelopt.torch.opt as mto

    state = mto.modelopt_state(model)
    check_plain(state)
    meta = {"method": METHOD, "format": FORMAT, "config": config, "modelopt_version": modelopt.__version__,
            "calib_samples": calib_samples, "modelopt_state": state}
    if keep_float:
        meta["keep_float"] = sorted(keep_float)
    return meta


QUANTIZER_NAMES = ("input_quantizer", "weight_quantizer", "output_quantizer")


def layer_quantizers(module: nn.Module) -> dict:
    """{"input_quantizer": q, ...}: the ModelOpt quantizers that belong to `module` itself."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    return {n: q for n in QUANTIZER_NAMES if isinstance(q := getattr(module, n, None), TensorQuantizer)}


def quantized_layers(model: nn.Module) -> list[str]:
    """Names of the layers (convs, linears, pools) with at least one enabled quantizer, in model order."""
    return [name for name, mod in model.named_modules()
            if name and any(q.is_enabled for q in layer_quantizers(mod).values())]


def keep_float(model: nn.Module, layers) -> list[str]:
    """Disable every quantizer of each named layer, in place, so it runs (and exports) in float.

    Returns the names; an unknown or unquantised name is refused in one line naming the candidates.
    """
    from edge.core.errors import BadInputError

    layers = [name.strip() for name in layers if name and name.strip()]
    candidates = quantized_layers(model)
    modules = dict(model.named_modules())
    for name in layers:
        if name not in modules or not layer_quantizers(modules[name]):
            shown = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "")
            raise BadInputError(f"--keep-float {name!r} is not a quantised layer of this model; expected one of "
                                f"{shown} (`edgekit int8-debug` ranks them)")
        for q in layer_quantizers(modules[name]).values():
            q.disable()
    return layers


def restore_quantized(model: nn.Module, quant_meta: dict, source: str = "checkpoint") -> nn.Module:
    """Put the quantizers recorded in `quant_meta` back into a freshly built float `model`.

    Load the checkpoint's state_dict afterwards: it brings the weights and the calibrated `_amax`.
    """
    if not isinstance(quant_meta, dict) or quant_meta.get("method") != METHOD:
        got = quant_meta.get("method") if isinstance(quant_meta, dict) else type(quant_meta).__name__
        raise FileFormatError(f"{source}: quantization method {got!r} is not {METHOD!r}; re-run "
                              f"`edgekit compress` with --int8 to write a ModelOpt QAT checkpoint")
    state = quant_meta.get("modelopt_state")
    if not isinstance(state, dict) or "modelopt_state_dict" not in state:
        raise FileFormatError(f"{source}: quantization.modelopt_state is missing or not ModelOpt's state; "
                              f"re-run `edgekit compress` with --int8")
    import modelopt.torch.opt as mto

    with quiet():
        return mto.restore_from_modelopt_state(model, state)


def load_quantized(path, float_only: bool = False) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) from any edgekit checkpoint; QAT ones come back with quantizers.

    `float_only` gives a QAT checkpoint's float twin: the same weights without quantizers.
    """
    from edge.ml.checkpoint import load_checkpoint, load_model, load_state, resize_to_shapes
    from edge.ml.models import create_model
    from edge.core.tasks import Task

    ckpt = load_checkpoint(path)
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    if not ckpt.get("quantization"):
        return load_model(path)[0], meta
    spec = ckpt["model"]
    net = create_model(spec["name"], Task.from_dict(ckpt["task"]), **spec["kwargs"])
    if spec.get("shapes"):       # quantizer buffers are not layers: resize the float structure only
        resize_to_shapes(net, {k: v for k, v in spec["shapes"].items() if "_quantizer." not in k})
    state = ckpt["state_dict"]
    if float_only:
        state = {k: v for k, v in state.items() if "_quantizer." not in k}
    else:
        net = restore_quantized(net, ckpt["quantization"], source=str(path))
    load_state(net, state, path)
    return net.eval(), meta


def count_qdq(onnx_model) -> int:
    """QuantizeLinear/DequantizeLinear pairs in an ONNX graph."""
    ops = [n.op_type for n in onnx_model.graph.node]
    return min(ops.count("QuantizeLinear"), ops.count("DequantizeLinear"))


def int8_weight_bytes(model: nn.Module) -> int:
    """Weight memory of a QAT model as an INT8 engine stores it, counted from its quantizers.

    Each quantised weight costs 1 byte per element plus 4 bytes per scale (per output channel);
    activation scales are 4 bytes each; every other parameter or float buffer (biases, BN) stays FP32.
    """
    from modelopt.torch.quantization.nn import TensorQuantizer

    total, int8_weights = 0, set()
    for mod in model.modules():
        wq = getattr(mod, "weight_quantizer", None)
        if isinstance(wq, TensorQuantizer) and wq.is_enabled and isinstance(getattr(mod, "weight", None), torch.Tensor):
            int8_weights.add(id(mod.weight))
            total += mod.weight.numel()
    for _name, t in [*model.named_parameters(), *model.named_buffers()]:
        if id(t) in int8_weights or not t.is_floating_point():
            continue
        total += t.numel() * 4        # _amax scales, biases, BN: FP32
    return total
