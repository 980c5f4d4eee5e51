"""INT8 for ONNX Runtime: the QAT graph rewritten so ORT fuses integer kernels, parity kept, TensorRT's untouched."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.checkpoints import load_for_export
from export.int8_ort import kernel_summary, ort_kernels, to_onnxruntime


@pytest.fixture(scope="module")
def qat(ckpts):
    return load_for_export(ckpts["plane_qat"])


def _run(graph, x, optimise=True):
    opts = ort.SessionOptions()
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = graph.SerializeToString() if isinstance(graph, onnx.ModelProto) else str(graph)
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_ort_form_fuses_integer_kernels_and_keeps_parity(qat, tmp_path):
    from export.onnx import export_onnx
    from export.parity import check_parity, frames

    model, meta = qat
    info = export_onnx(model, tmp_path / "p.onnx", "int8", int8_form="onnxruntime")
    graph = onnx.load(tmp_path / "p.onnx")
    ops = [n.op_type for n in graph.graph.node]
    assert "BatchNormalization" not in ops                     # folded into the convs
    assert info["int8"]["form"] == "onnxruntime"
    assert info["int8"]["rewrite"]["batchnorm_folded"] == 9
    kernels = info["int8"]["kernels"]
    assert kernels["fused"]["QLinearConv"] == 9                 # every conv of ResNet8 runs in integers
    assert kernels["fused"]["QLinearAdd"] == 3
    assert kernels["float_conv"] == 0
    inits = {i.name: i.data_type for i in graph.graph.initializer}
    for n in graph.graph.node:
        if n.op_type == "QuantizeLinear":                        # activations: uint8
            assert inits[n.input[2]] == TensorProto.UINT8
        if n.op_type == "Conv":                                 # weights: int8 behind a DQ
            w = next(m for m in graph.graph.node if n.input[1] in m.output)
            assert (w.op_type, inits[w.input[0]]) == ("DequantizeLinear", TensorProto.INT8)
    report = check_parity(model, tmp_path / "p.onnx", "int8", frames(meta["config"]["preprocess"], 16),
                          "single_label")
    assert report["passed"]
    assert report["reference"] == "pytorch-qat"


def test_tensorrt_form_is_the_traced_graph_untouched(qat):
    from export.graph import output_names
    from export.onnx import _trace, build_graph, int8_form_of

    model, meta = qat
    trt = build_graph(model, "int8")
    assert int8_form_of(trt)[0] == "tensorrt"
    assert trt.graph.SerializeToString() == _trace(model, output_names(model)).graph.SerializeToString()
    before = trt.SerializeToString()
    ort_graph, _ = to_onnxruntime(trt, None)
    assert trt.SerializeToString() == before                   # the rewrite works on a copy
    assert kernel_summary(ort_kernels(trt))["fused"] == {}     # what ORT makes of TensorRT's form


def _bn_graph(gamma: np.ndarray) -> onnx.ModelProto:
    """input -> Q/DQ (int8) -> Conv (per-channel Q/DQ weights) -> BN -> Relu -> Q/DQ -> output."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    c = np.array
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("w", w), ("ws", (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)), ("wz", np.zeros(4, np.int8)),
        ("xs", c(0.02, np.float32)), ("z", c(0, np.int8)), ("ys", c(0.03, np.float32)),
        ("g", gamma.astype(np.float32)), ("b", c([0.1, -0.2, 0.3, 0.0], np.float32)),
        ("m", c([0.5, -0.1, 0.2, 0.0], np.float32)), ("v", c([1.5, 0.7, 2.0, 1.0], np.float32))]]
    nodes = [helper.make_node("QuantizeLinear", ["input", "xs", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "z"], ["xd"]),
             helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "ys", "z"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "ys", "z"], ["output"])]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_batchnorm_fold_keeps_the_int8_numbers_even_for_negative_gamma():
    src = _bn_graph(np.array([1.2, -0.8, 0.5, -2.0]))
    got, report = to_onnxruntime(src, None)
    assert report["batchnorm_folded"] == 1
    assert report["activations_uint8"] == {"zero_point_128": 1, "zero_point_0": 1}
    x = np.random.default_rng(1).uniform(-1.5, 1.5, (1, 2, 8, 8)).astype(np.float32)
    want, same = _run(src, x, optimise=False), _run(got, x, optimise=False)
    inside = want < 127 * 0.03 - 1e-6           # below the QAT clip: the same quantised numbers
    assert inside.mean() > 0.5
    assert np.abs(same - want)[inside].max() <= 1e-6
    assert (same[~inside] >= want[~inside]).all()              # uint8 from zero: no clip at 127 x scale
    fused = _run(got, x)                                       # ORT's QLinearConv: a rounding step at most
    assert np.abs(fused - same).max() <= 0.03 + 1e-6
    assert kernel_summary(ort_kernels(got))["fused"] == {"QLinearConv": 1}


def test_kept_float_layer_stays_float_in_the_ort_form(qat, tmp_path):
    import copy

    from edge.ml.quantization import keep_float
    from export.onnx import build_graph
    from export.parity import check_parity, frames

    model, meta = copy.deepcopy(qat[0]), qat[1]
    keep_float(model, ["layer2.0.conv1"])
    graph = build_graph(model, "int8", "onnxruntime")
    onnx.save(graph, tmp_path / "k.onnx")
    kernels = kernel_summary(ort_kernels(graph))
    assert kernels["float_conv"] == 1
    assert kernels["fused"]["QLinearConv"] == 8
    assert check_parity(model, tmp_path / "k.onnx", "int8", frames(meta["config"]["preprocess"], 8),
                        "single_label")["passed"]


def test_cpu_bundle_gets_the_ort_form(ckpts, tmp_path):
    from export.bundle import export_bundle
    from runtime.bundle import load_bundle
    from targets import get_target

    assert get_target("cpu").int8_form == "onnxruntime"
    assert get_target("jetson-orin-nano").int8_form == "tensorrt"
    m = export_bundle([ckpts["plane_qat"]], "cpu", "int8", tmp_path / "c", parity_frames=8)
    entry = m["models"][0]
    assert entry["int8"]["form"] == "onnxruntime"
    assert entry["int8"]["kernels"]["float_conv"] == 0
    assert entry["parity"]["passed"]
    (model,) = load_bundle(tmp_path / "c").models
    out = _run(model.onnx, np.zeros((1, 1, 32, 32), np.float32))
    assert out.shape == (1, 4)                  # (TensorRT targets: test_bundle's Jetson INT8 test)


def test_ort_form_that_misses_parity_ships_the_tensorrt_form(ckpts, tmp_path, monkeypatch):
    import export.int8_ort as int8_ort
    from export.bundle import export_bundle

    real = int8_ort.to_onnxruntime

    def negated(graph, *a, **kw):                      # a broken rewrite: every logit's sign flipped
        g, report = real(graph, *a, **kw)
        (out,) = g.graph.output
        for n in g.graph.node:
            n.output[:] = [o + "_pre" if o == out.name else o for o in n.output]
        g.graph.node.append(helper.make_node("Neg", [out.name + "_pre"], [out.name]))
        return g, report

    monkeypatch.setattr(int8_ort, "to_onnxruntime", negated)
    said = []
    m = export_bundle([ckpts["plane_qat"]], "cpu", "int8", tmp_path / "c", parity_frames=8, log=said.append)
    entry = m["models"][0]
    assert entry["int8"]["form"] == "tensorrt"
    assert entry["int8"]["refused"]["form"] == "onnxruntime"
    assert entry["parity"]["passed"]
    assert any("missed parity" in s for s in said)
