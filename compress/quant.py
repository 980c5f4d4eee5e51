"""INT8 quantisation-aware training (QAT) with NVIDIA ModelOpt: the procedure.

`mtq.quantize(model, mtq.INT8_DEFAULT_CFG, forward_loop)` inserts TensorRT-style fake quantizers
(symmetric INT8, per-channel weights, per-tensor activations, Q/DQ before every conv/linear input) and
calibrates their ranges (max) on training batches; the model is then fine-tuned at a lower rate.
`torch.onnx.export(dynamo=False)` of the result emits QuantizeLinear/DequantizeLinear pairs that
TensorRT builds as INT8; for ONNX Runtime on a CPU export rewrites them into the form its integer
kernels fuse (`export.int8_ort`). When INT8 loses accuracy, `compress.int8_debug` compares the float
and quantised model layer by layer and names the layers to keep float (`keep_float`).

What the checkpoint records of it, and how every reader rebuilds it, is `edge.ml.quantization`
(`quantization_meta`, `load_quantized`): the field belongs below the stages, so that export and
eval read it without importing compress.
"""
from __future__ import annotations

import torch
from torch import nn

from edge.ml.quantization import CONFIG, quiet


def quantize_int8(model: nn.Module, calib_batches, config: str = CONFIG, keep_float=()) -> nn.Module:
    """Insert and calibrate INT8 quantizers in place; `calib_batches` are model inputs (tensors or image lists).

    `keep_float` names layers to leave in float (their quantizers disabled after calibration; record
    them with `quantization_meta(..., keep_float=...)`); `compress.int8_debug` says which.
    """
    import modelopt.torch.quantization as mtq

    from edge.ml.quantization import keep_float as disable

    def forward_loop(m):
        with torch.no_grad():
            for x in calib_batches:
                m(x)

    model.eval()
    with quiet():
        mtq.quantize(model, getattr(mtq, config), forward_loop)
    disable(model, keep_float)
    return model
