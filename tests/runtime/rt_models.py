"""Tiny ONNX models with known answers, and a bundle writer following docs/ARCHITECTURE.md.

All models take a 1x1x32x32 float input normalised with mean 0.5, std 0.25 (so a white frame is +2,
a black one -2 everywhere):
- `classifier`: logits = W * mean(x) + b with W = [1, -1, 0, 0.5]: white -> class 0, black -> class 1.
- `detector`: fixed boxes/scores/labels (one kept, one background, one under threshold).
- `cam_model`: 3 class-score maps of 4x4 (8x8 average pools of x, then two constant low maps) and
  logits as their spatial mean: class 0 wins and its map peaks where the frame is bright.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.bundle import SCHEMA_VERSION, sha256_file

SIZE = 32
DET_BOXES = np.array([[4, 8, 12, 16], [0, 0, 32, 32], [10, 10, 20, 20]], np.float32)
DET_SCORES = np.array([0.9, 0.95, 0.3], np.float32)
DET_LABELS = np.array([1, 0, 3], np.int64)


def _input():
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, SIZE, SIZE])


def _model(nodes, outputs, inits, name) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [_input()], outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def classifier(num_classes: int = 4) -> onnx.ModelProto:
    w = np.array([[1.0], [-1.0], [0.0], [0.5]][:num_classes], np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "B"], ["logits"], transB=1)]
    out = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes])]
    return _model(nodes, out, [("W", w), ("B", np.zeros(num_classes, np.float32))], "classifier")


def detector() -> onnx.ModelProto:
    """Constant detections; the input still flows in (times zero), as in a real graph."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["boxes_c", "z"], ["boxes"]),
             helper.make_node("Add", ["scores_c", "z"], ["scores"]),
             helper.make_node("Identity", ["labels_c"], ["labels"])]
    out = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 4]),
           helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N"]),
           helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"])]
    inits = [("zero", np.zeros((), np.float32)), ("boxes_c", DET_BOXES), ("scores_c", DET_SCORES),
             ("labels_c", DET_LABELS)]
    return _model(nodes, out, inits, "detector")


def cam_model() -> onnx.ModelProto:
    nodes = [helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Mul", ["pooled", "zero"], ["z"]),
             helper.make_node("Add", ["z", "low1"], ["c1"]),
             helper.make_node("Add", ["z", "low2"], ["c2"]),
             helper.make_node("Concat", ["pooled", "c1", "c2"], ["cam"], axis=1),
             helper.make_node("GlobalAveragePool", ["cam"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["logits"])]
    out = [helper.make_tensor_value_info("cam", TensorProto.FLOAT, [1, 3, 4, 4]),
           helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])]
    inits = [("zero", np.zeros((), np.float32)), ("low1", np.full((), -5.0, np.float32)),
             ("low2", np.full((), -6.0, np.float32))]
    return _model(nodes, out, inits, "cam")


def preprocess_spec(roi=None) -> dict:
    return {"roi": roi, "grey": True, "resize": [SIZE, SIZE], "interpolation": "linear",
            "normalize": {"mode": "meanstd", "mean": [0.5], "std": [0.25], "scale": 255.0}}


TASK_OF = {"sononet": "standard_plane"}  # a manifest's task must be one edge.core.tasks knows


def entry(name: str, kind: str, labels, outputs, roi=None, **postprocess) -> dict:
    """A manifest model entry; `outputs` is [(name, shape, dtype, role), ...]."""
    return {"name": name, "task": TASK_OF.get(name, name), "kind": kind, "labels": list(labels), "architecture": "tiny",
            "precision": "fp32", "onnx": f"{name}.fp32.onnx", "sha256": "",
            "inputs": [{"name": "input", "shape": [1, 1, SIZE, SIZE], "dtype": "float32"}],
            "outputs": [{"name": n, "shape": s, "dtype": d, "role": r} for n, s, d, r in outputs],
            "preprocess": preprocess_spec(roi), "postprocess": postprocess,
            "stats": {"params": 0, "macs": 0, "weights_bytes": {"fp32": 0, "fp16": 0, "int8": 0},
                      "activation_bytes": 0},
            "parity": {}, "engines": []}


LOGITS4 = [("logits", [1, 4], "float32", "logits")]
DET_OUT = [("boxes", ["N", 4], "float32", "boxes"), ("scores", ["N"], "float32", "scores"),
           ("labels", ["N"], "int64", "labels")]
CAM_OUT = [("cam", [1, 3, 4, 4], "float32", "cam"), ("logits", [1, 3], "float32", "logits")]
ALL_KINDS = {
    "plane": (classifier, dict(kind="single_label", labels=["AC", "BPD", "FL", "no plane"], outputs=LOGITS4)),
    "anatomy": (classifier, dict(kind="multi_label", labels=["head", "arms", "legs", "abdomen"],
                                 outputs=LOGITS4, threshold=0.6)),
    "detection": (detector, dict(kind="detection", labels=["head", "arms", "legs", "abdomen"], outputs=DET_OUT,
                                 threshold=0.5)),
    "sononet": (cam_model, dict(kind="single_label", labels=["Abdominal", "Brain", "Femur"], outputs=CAM_OUT,
                                cam_threshold=0.5)),
}


def write_bundle(root, names=None, roi=None) -> Path:
    """A bundle directory with the named models of ALL_KINDS (default: all), sha256s filled in."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    models = []
    for name in names or ALL_KINDS:
        build, spec = ALL_KINDS[name]
        spec = dict(spec)
        m = entry(name, spec.pop("kind"), spec.pop("labels"), spec.pop("outputs"), roi=roi, **spec)
        onnx.save(build(), root / m["onnx"])
        m["sha256"] = sha256_file(root / m["onnx"])
        models.append(m)
    manifest = {"schema_version": SCHEMA_VERSION, "edgekit_version": "0.1.0", "created": "2026-11-22T10:00:00Z",
                "target": "cpu", "models": models}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
