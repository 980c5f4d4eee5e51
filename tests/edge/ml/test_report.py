"""The MAC counter against known figures, and the memory arithmetic."""
import json

import torch
import torchvision

from edge.ml.models import create_model
from edge.ml.report import model_report
from tests.conftest import run_cli


def test_torchvision_resnet34_is_the_papers_3_67_gmacs():
    net = torchvision.models.resnet34().eval()
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.rand(1, 3, 224, 224))
    assert abs(fc.get_total_flops() / 2 / 1e9 - 3.67) < 0.01


def test_one_channel_resnet34_report_within_3_percent_of_3_6_g_via_cli():
    proc = run_cli("report", "resnet34", "--task", "plane", "--input", "224x224", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert abs(rep["macs"] / 3.6e9 - 1) < 0.03
    assert set(rep["weights_bytes"]) == {"fp32", "fp16", "int8"}
    assert rep["params"] == 21280452
    assert rep["activation_bytes"] > 0


def test_per_layer_macs_add_up_and_scale_with_input():
    model = create_model("resnet8", task="plane", input_size=(64, 64))
    small = model_report(model)
    assert sum(r["macs"] for r in small["layers"]) == small["macs"]
    big = model_report(model, (128, 128))
    assert 3.5 < big["macs"] / small["macs"] < 4.5
    # a conv's MACs are out_h*out_w*out_c*in_c*k*k
    conv1 = next(r for r in small["layers"] if r["name"] == "conv1")
    assert conv1["macs"] == 32 * 32 * 64 * 1 * 7 * 7


def test_peak_activation_counts_an_inplace_tensor_once():
    model = torch.nn.Sequential(torch.nn.ReLU(inplace=True))
    rep = model_report(model, (32, 32))
    assert rep["activation_bytes"] == 32 * 32 * 4


def test_report_of_a_zoo_name_builds_its_default_task_head():
    # densenet169's default task is fetal_planes (6 classes); the report once built a 4-class plane head
    from edge.ml.report import report

    rep = report("densenet169", input_size=(32, 32))
    head = [layer for layer in rep["layers"] if layer["type"] == "Linear"][-1]
    assert head["output_shape"] == [1, 6]
    sono = report("sononet16", input_size=(64, 64))
    assert sono["layers"][-1]["output_shape"][1] == 14          # standard_plane: 13 planes + background
