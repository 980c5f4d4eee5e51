"""The FETAL_PLANES_DB torchvision classifiers: 1-channel stem, task-sized head, registry-clean."""
import pytest
import torch
from torch import nn

from edge.ml.models import create_model, get_entry, list_models
from edge.ml.models.torchvision_cls import LAYOUT, grey_stem
from edge.ml.report import model_report

NAMES = ["tv_resnet18", "tv_resnet50", "densenet121", "densenet169", "mobilenet_v2", "mobilenet_v3_small"]


def test_all_registered_with_224_default_and_the_fetal_planes_default_task():
    assert set(NAMES) <= set(list_models())
    for name in NAMES:
        entry = get_entry(name)
        assert entry.default_size == (224, 224)
        assert entry.family == "torchvision"
        assert entry.default_task == "fetal_planes"


@pytest.mark.parametrize("name", NAMES)
def test_builds_small_with_grey_stem_and_six_way_head(name):
    model = create_model(name, task="fetal_planes", input_size=(64, 64)).eval()
    arch = name.removeprefix("tv_")
    stem, head = (model.get_submodule(p) for p in LAYOUT[arch])
    assert stem.in_channels == 1
    assert head.out_features == 6
    assert model.edge_config.preprocess["normalize"]["std"] == [0.5]      # [0, 255] -> [-1, 1]
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 6)
    rep = model_report(model)
    assert rep["params"] == sum(p.numel() for p in model.parameters())
    assert rep["macs"] > 0


def test_grey_stem_averages_the_rgb_filters():
    rgb = nn.Conv2d(3, 4, 3, bias=False)
    grey = grey_stem(rgb, 1)
    x = torch.rand(1, 1, 5, 5)
    torch.testing.assert_close(grey(x), rgb(x.expand(1, 3, 5, 5)) / 3)     # mean filter on a grey image
