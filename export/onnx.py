"""ONNX export per precision: what TensorRT 10/11 builds strongly typed, and ONNX Runtime runs anywhere.

Precision lives in the graph itself (TensorRT 11 removed the FP16/INT8 builder flags):

- `fp32`: `torch.onnx.export(dynamo=False)`, opset 17, simplified with onnxslim.
- `fp16`: FP16 weights and compute with FP32 graph inputs/outputs (so the device feeds float32 and
  reads float32). Classifiers: onnxconverter-common's `convert_float_to_float16(keep_io_types=True)`
  on the FP32 graph. Detectors: the backbone and heads are cast in PyTorch (`export.graph`), box
  maths and NMS stay FP32.
- `int8`: a ModelOpt QAT model exports QuantizeLinear/DequantizeLinear pairs, in one of two forms
  (`int8_form`, chosen per target by `targets.Target.int8_form`):
  `tensorrt` (the default): the traced graph exactly as ModelOpt placed the pairs, never simplified,
  which is what TensorRT builds; `onnxruntime`: that graph rewritten by `export.int8_ort` (uint8
  activations at the QAT scales, BatchNorm folded, int8 weights, biases int32) so that ONNX Runtime
  fuses it into QLinearConv/QLinearAdd kernels instead of running it as fake quantisation.
  The form is recorded in the file (metadata `edgekit.int8_form`) and in `export_onnx`'s answer.

    >>> info = export_onnx(model, "plane.fp16.onnx", "fp16")       # doctest: +SKIP
    >>> info["outputs"][0]                                          # doctest: +SKIP
    {'name': 'logits', 'shape': [1, 4], 'dtype': 'float32', 'role': 'logits'}

Every file passes `onnx.checker.check_model` before this returns.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from edge.core.errors import UnsupportedError
from edge.ml.inputs import example_input, is_detector
from export.graph import graph_module, output_names, with_fp16_islands
from export.int8_ort import FORMS, ONNXRUNTIME, TENSORRT
from edge.ml.quantization import count_qdq, is_quantized

OPSET = 17
_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
           onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32",
           onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.BOOL: "bool"}


def _trace(model: nn.Module, names: list[str]) -> onnx.ModelProto:
    """torch.onnx.export (TorchScript exporter: handles Faster R-CNN with NMS in-graph) to memory."""
    buf = io.BytesIO()
    dynamic = {n: {0: "detections"} for n in names} if len(names) == 3 and names[0] == "boxes" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow in torchvision
        x = example_input(model, zeros=True)    # zeros: tracing draws nothing from torch's generator
        torch.onnx.export(graph_module(model), (x,), buf, input_names=["input"],
                          output_names=names, opset_version=OPSET, dynamic_axes=dynamic, dynamo=False,
                          do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def _slim(graph: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(graph)


def _to_fp16(graph: onnx.ModelProto) -> onnx.ModelProto:
    from onnxconverter_common import float16

    return float16.convert_float_to_float16(graph, keep_io_types=True)


def _int8(model: nn.Module, names: list[str], form: str, calib) -> onnx.ModelProto:
    """The QAT model's Q/DQ graph in `form` (module docstring), tagged with the form."""
    from export.int8_ort import calibration_frames, to_onnxruntime

    graph = _trace(model, names)
    if count_qdq(graph) == 0:
        raise UnsupportedError("the QAT model exported no QuantizeLinear/DequantizeLinear nodes; check "
                               "that its quantizers are enabled and calibrated")
    meta = {"edgekit.int8_form": form}
    if form == ONNXRUNTIME:
        graph, report = to_onnxruntime(graph, calibration_frames(model) if calib is None else calib)
        meta["edgekit.int8_rewrite"] = json.dumps(report, sort_keys=True)
    onnx.helper.set_model_props(graph, meta)
    return graph


def int8_form_of(graph: onnx.ModelProto) -> tuple[str | None, dict | None]:
    """(form, rewrite report) recorded in an int8 graph by `build_graph`; (None, None) for other graphs."""
    props = {p.key: p.value for p in graph.metadata_props}
    report = props.get("edgekit.int8_rewrite")
    return props.get("edgekit.int8_form"), json.loads(report) if report else None


def build_graph(model: nn.Module, precision: str, int8_form: str = TENSORRT, calib=None) -> onnx.ModelProto:
    """The ONNX graph of `model` at `precision` (in memory, checked).

    `int8_form` (int8 only): `tensorrt` or `onnxruntime` (module docstring); `calib` are the frames
    (CxHxW float32, preprocessed) that calibrate the ORT form's new quantisation points (default:
    phantom frames, `export.int8_ort.calibration_frames`).
    """
    names = output_names(model)
    quantized = is_quantized(model)
    if precision == "int8":
        if not quantized:
            raise UnsupportedError("int8 export needs a QAT model (ModelOpt quantizers); run "
                                   "`edgekit compress --qat` first, or export with --precision fp16")
        if int8_form not in FORMS:
            raise UnsupportedError(f"int8 form {int8_form!r} is not one of {', '.join(FORMS)}")
        graph = _int8(model, names, int8_form, calib)
    elif quantized:
        raise UnsupportedError(f"{precision} export of a QAT model would bake in fake quantisation; "
                               f"export it as int8 (or its float twin, export.checkpoints.load_for_export)")
    elif precision == "fp32":
        graph = _slim(_trace(model, names))
    elif precision == "fp16":
        graph = (_slim(_trace(with_fp16_islands(model), names)) if is_detector(model)
                 else _to_fp16(_slim(_trace(model, names))))
    else:
        raise UnsupportedError(f"precision {precision!r} is not one of fp32, fp16, int8")
    onnx.checker.check_model(graph)
    return graph


def tensor_specs(graph: onnx.ModelProto, roles: bool = False) -> list[dict]:
    """[{name, shape, dtype(, role)}] of the graph's inputs (or outputs, with role = name)."""
    out = []
    for v in (graph.graph.output if roles else graph.graph.input):
        t = v.type.tensor_type
        spec = {"name": v.name, "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param
                                          for d in t.shape.dim],
                "dtype": _DTYPES.get(t.elem_type, str(t.elem_type))}
        if roles:
            spec["role"] = v.name
        out.append(spec)
    return out


def export_onnx(model: nn.Module, path, precision: str, int8_form: str = TENSORRT, calib=None) -> dict:
    """Write `model` to `path` at `precision`; returns inputs/outputs specs, Q/DQ pairs and file size.

    An int8 file's answer adds `int8`: its form, and for the ONNX Runtime form what the rewrite did
    and which integer kernels this machine's ONNX Runtime fused it into (`export.int8_ort.ort_kernels`).
    """
    graph = build_graph(model, precision, int8_form, calib)
    path = Path(path)
    onnx.save(graph, str(path))
    info = {"file": path.name, "precision": precision, "opset": OPSET, "inputs": tensor_specs(graph),
            "outputs": tensor_specs(graph, roles=True), "qdq_pairs": count_qdq(graph),
            "bytes": path.stat().st_size}
    if precision == "int8":
        form, report = int8_form_of(graph)
        info["int8"] = {"form": form}
        if form == ONNXRUNTIME:
            import onnxruntime

            from export.int8_ort import kernel_summary, ort_kernels

            info["int8"].update(rewrite=report, onnxruntime=onnxruntime.__version__,
                                kernels=kernel_summary(ort_kernels(path)))
    return info
