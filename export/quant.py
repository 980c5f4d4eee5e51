"""Rebuild an INT8 quantisation-aware (QAT) model from a checkpoint, so export can emit Q/DQ ONNX.

`edgekit compress` quantises with NVIDIA ModelOpt (`mtq.quantize(model, mtq.INT8_DEFAULT_CFG,
forward_loop)`, then fine-tunes). ModelOpt records what it changed as plain data
(`modelopt.torch.opt.modelopt_state(model)`: the mode history, quantizer configs and per-quantizer
metadata; only dicts, lists, str, int, float, bool, None and torch.dtype, so it loads with
`torch.load(weights_only=True)`). The calibrated ranges are buffers (`*_quantizer._amax`) in the
model's ordinary state_dict.

The checkpoint's `quantization` field must therefore hold (`quantization_meta` builds it)::

    {"method": "modelopt",            # who inserted the quantizers
     "format": "int8_qdq",            # what export emits: QuantizeLinear/DequantizeLinear pairs
     "config": "INT8_DEFAULT_CFG",    # the mtq config name used (informational)
     "modelopt_version": "0.47.0",
     "modelopt_state": mto.modelopt_state(model)}

and its `state_dict` must be the quantised model's own (with the `_amax` buffers). Export rebuilds::

    >>> net = create_model(name, task, **kwargs)            # + resize_to_shapes if pruned
    >>> net = restore_quantized(net, ckpt["quantization"])   # quantizers back in place
    >>> load_state(net, ckpt["state_dict"], path)            # weights and ranges
"""
from __future__ import annotations

from torch import nn

from edge.errors import FileFormatError

METHOD, FORMAT = "modelopt", "int8_qdq"


def quantization_meta(model: nn.Module, config: str = "INT8_DEFAULT_CFG") -> dict:
    """The `quantization` field for a checkpoint of a model quantised with `mtq.quantize`."""
    import modelopt
    import modelopt.torch.opt as mto

    return {"method": METHOD, "format": FORMAT, "config": config, "modelopt_version": modelopt.__version__,
            "modelopt_state": mto.modelopt_state(model)}


def restore_quantized(model: nn.Module, quant_meta: dict, source: str = "checkpoint") -> nn.Module:
    """Put ModelOpt's quantizers back into a freshly built `model`; load the state_dict afterwards."""
    if not isinstance(quant_meta, dict) or quant_meta.get("method") != METHOD:
        got = quant_meta.get("method") if isinstance(quant_meta, dict) else type(quant_meta).__name__
        raise FileFormatError(f"{source}: quantization method {got!r} is not {METHOD!r}; re-run "
                              f"`edgekit compress --qat` to write a ModelOpt QAT checkpoint")
    state = quant_meta.get("modelopt_state")
    if not isinstance(state, dict) or "modelopt_state_dict" not in state:
        raise FileFormatError(f"{source}: quantization.modelopt_state is missing or not ModelOpt's state "
                              f"dict; re-run `edgekit compress --qat`")
    import contextlib
    import io

    import modelopt.torch.opt as mto

    with contextlib.redirect_stdout(io.StringIO()):  # ModelOpt prints "Inserted N quantizers"
        return mto.restore_from_modelopt_state(model, state)


def is_quantized(model: nn.Module) -> bool:
    """True if ModelOpt quantizers are in the model (its ONNX will carry Q/DQ)."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    return any(isinstance(m, TensorQuantizer) for m in model.modules())


def count_qdq(onnx_model) -> int:
    """QuantizeLinear/DequantizeLinear pairs in an ONNX graph (0 means no INT8 in it)."""
    ops = [n.op_type for n in onnx_model.graph.node]
    return min(ops.count("QuantizeLinear"), ops.count("DequantizeLinear"))
