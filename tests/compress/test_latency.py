"""The sweep times the graph that ships: export's own ONNX writer, slimmed and wrapped as in a bundle."""
from __future__ import annotations

import onnx
import torch


def _ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_the_timed_graph_is_the_exported_one(tmp_path):
    from compress.latency import write_onnx
    from edge.ml.models import create_model
    from export.onnx import export_onnx

    torch.manual_seed(0)
    model = create_model("resnet8", task="plane", input_size=(32, 32)).eval()
    timed = write_onnx(model, tmp_path / "timed.onnx")
    export_onnx(model, tmp_path / "shipped.onnx", "fp32")
    assert _ops(timed) == _ops(tmp_path / "shipped.onnx")
    assert "Identity" not in _ops(timed)                      # onnxslim ran, as it does for a bundle


def test_a_class_map_model_is_timed_with_its_cam_output_and_left_as_it_was(tmp_path):
    from compress.latency import write_onnx
    from edge.ml.models import create_model

    model = create_model("resnet18_sp", task="anatomy", input_size=(64, 64)).eval()
    timed = onnx.load(str(write_onnx(model, tmp_path / "sp.onnx")))
    assert [o.name for o in timed.graph.output] == ["logits", "cam"]
    assert model.export_cam is False
    assert "export_cam" not in vars(model)
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 4)
