"""FLOP, parameter and memory reports for any model: the figures at every step of the chain.

Conventions (the FPUS23 paper's): FLOPs are counted as multiply-accumulates (MACs) of convolutions
and matrix products, by torch's own `FlopCounterMode` (which counts 2 FLOPs per MAC; we halve it).
Weight memory is parameters (and BN buffers) x bytes per element at FP32/FP16/INT8. Activation memory
is at batch 1: `activation_bytes` is the peak working set of any one layer (its inputs plus its output,
the least an engine that reuses buffers perfectly needs); `activation_total_bytes` sums every layer
output (what an engine that never reuses buffers would hold).

    >>> from edge.ml.models import create_model
    >>> r = model_report(create_model("resnet34", task="plane"), (224, 224))
    >>> round(r["macs"] / 1e9, 2)
    3.6
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edge.ml.inputs import example_input, is_detector

BYTES_PER = {"fp32": 4, "fp16": 2, "int8": 1}   # bytes per weight element; export's memory check reads it too


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def _nbytes(*objs) -> int:
    """Bytes of the distinct tensors in `objs` (an in-place op's input and output count once)."""
    seen = {}
    for t in (t for o in objs for t in _tensors(o)):
        seen[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
    return sum(seen.values())


def _shape(obj):
    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], torch.Tensor):
        return [list(o.shape) for o in obj]
    return None


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of parameters and float buffers at each precision (integer buffers are not weights)."""
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return {prec: n * b for prec, b in BYTES_PER.items()}


def model_report(model: nn.Module, input_size=None) -> dict:
    """Params, MACs, weight and activation memory and a per-layer table for one batch-1 forward."""
    model = model.eval()
    x = example_input(model, input_size=input_size)
    x = [x[0]] if is_detector(model) else x          # a detector's forward takes a list of images
    layers, peak = [], 0
    leaves = {name: m for name, m in model.named_modules() if not list(m.children())}

    def hook(name):
        def fn(mod, inputs, output):
            nonlocal peak
            peak = max(peak, _nbytes(inputs, output))
            layers.append({"name": name, "type": type(mod).__name__, "output_shape": _shape(output),
                           "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                           "output_bytes": _nbytes(output)})
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves.items()]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    root = type(model).__name__
    per_module = counter.get_flop_counts()
    for row in layers:
        row["macs"] = sum(per_module.get(f"{root}.{row['name']}", {}).values()) // 2
    params = sum(p.numel() for p in model.parameters())
    size = x.shape[-2:] if isinstance(x, torch.Tensor) else x[0].shape[-2:]
    return {
        "model": getattr(getattr(model, "edge_config", None), "name", root),
        "input": [1, *(x.shape[1:] if isinstance(x, torch.Tensor) else x[0].shape)],
        "input_size": list(size),
        "params": params,
        "macs": counter.get_total_flops() // 2,
        "weights_bytes": weight_bytes(model),
        "activation_bytes": peak,
        "activation_total_bytes": sum(r["output_bytes"] for r in layers),
        "layers": layers,
    }


def format_report(report: dict, max_rows: int | None = None) -> str:
    """The report as text for people: a summary and the per-layer table."""
    mb = 1024 ** 2
    w = report["weights_bytes"]
    head = [
        f"model       {report['model']}  input {'x'.join(map(str, report['input']))}",
        f"params      {report['params'] / 1e6:.3f} M",
        f"MACs        {report['macs'] / 1e9:.3f} G (multiply-accumulates, batch 1)",
        f"weights     FP32 {w['fp32'] / mb:.2f} MB | FP16 {w['fp16'] / mb:.2f} MB | INT8 {w['int8'] / mb:.2f} MB",
        f"activations peak layer working set {report['activation_bytes'] / mb:.2f} MB, "
        f"all layer outputs {report['activation_total_bytes'] / mb:.2f} MB (FP32, batch 1)",
        "",
        f"{'layer':<36} {'type':<20} {'output':<22} {'params':>10} {'MACs':>14}",
    ]
    rows = report["layers"] if max_rows is None else report["layers"][:max_rows]
    for r in rows:
        shape = "x".join(map(str, r["output_shape"])) if r["output_shape"] and \
            isinstance(r["output_shape"][0], int) else "-"
        head.append(f"{r['name'][:36]:<36} {r['type'][:20]:<20} {shape[:22]:<22} {r['params']:>10,} {r['macs']:>14,}")
    if max_rows is not None and len(report["layers"]) > max_rows:
        head.append(f"... {len(report['layers']) - max_rows} more layers (--layers all shows them)")
    return "\n".join(head)


def report(model_or_checkpoint: str, task: str | None = None, input_size=None, model: str | None = None) -> dict:
    """The report for a zoo model name or a checkpoint file (plain state_dicts need `model`)."""
    from pathlib import Path

    from edge.core.errors import UnknownNameError
    from edge.ml.models import create_model, get_entry, list_models

    if Path(model_or_checkpoint).exists():
        from edge.ml.checkpoint import load_model

        net, _ = load_model(model_or_checkpoint, model=model, task=task)
    elif model_or_checkpoint in list_models():
        kwargs = {"input_size": input_size} if input_size else {}
        net = create_model(model_or_checkpoint, task or get_entry(model_or_checkpoint).default_task, **kwargs)
    elif any(c in model_or_checkpoint for c in "/\\") or Path(model_or_checkpoint).suffix in (".pt", ".pth"):
        from edge.core.errors import MissingFileError

        raise MissingFileError(f"checkpoint not found: {model_or_checkpoint}; check the path")
    else:
        from edge.core.errors import closest

        raise UnknownNameError(f"{model_or_checkpoint!r} is neither a file nor a zoo model"
                               f"{closest(model_or_checkpoint, list_models())}; see `edgekit models`")
    return model_report(net, input_size)

