"""The whole registry, swept: every model builds for every task kind it serves, runs, and reports."""
import pytest
import torch

from edge.core.errors import BadInputError, UnknownNameError
from edge.ml.models import create_model, get_entry, list_models
from edge.ml.report import model_report
from edge.core.tasks import DETECTION, list_tasks, get_task

CASES = [(name, task) for name in list_models() for task in list_tasks()
         if get_task(task).kind in get_entry(name).tasks]


def test_registry_is_not_empty_and_every_model_serves_a_task():
    names = list_models()
    assert {"resnet8", "resnet10", "resnet18", "resnet34", "fasterrcnn_resnet10", "fasterrcnn_resnet34"} <= set(names)
    assert all(any(n == c[0] for c in CASES) for n in names)


@pytest.mark.parametrize("name,task", CASES)
def test_every_model_builds_runs_and_reports(name, task):
    size = (64, 64)
    model = create_model(name, task=task, input_size=size).eval()
    cfg = model.edge_config
    assert cfg.input_size == size
    assert cfg.labels == get_task(task).labels
    with torch.no_grad():
        if cfg.task.kind == DETECTION:
            out = model([torch.rand(1, *size)])
            assert set(out[0]) == {"boxes", "scores", "labels"}
        else:
            out = model(torch.rand(2, 1, *size))
            assert out.shape == (2, cfg.task.num_classes)
    rep = model_report(model)
    assert rep["params"] == sum(p.numel() for p in model.parameters())
    assert rep["macs"] > 0
    assert rep["activation_bytes"] > 0
    assert rep["weights_bytes"]["int8"] * 4 == rep["weights_bytes"]["fp32"]


def test_label_override_and_errors():
    m = create_model("resnet8", task="plane", labels=["a", "b"], input_size=(32, 32))
    assert m.edge_config.labels == ("a", "b")
    assert m.fc.out_features == 2
    with pytest.raises(UnknownNameError, match="did you mean 'resnet8'"):
        create_model("resnet9")
    with pytest.raises(BadInputError, match="serves detection"):
        create_model("fasterrcnn_resnet10", task="plane")
    assert list_models("resnet1?") == ["resnet10", "resnet18"]
    assert list_models("resnet1*") == ["resnet10", "resnet18", "resnet18_sp"]


def test_resnet8_is_the_papers_three_stage_net():
    m = create_model("resnet8", task="plane")
    convs = [n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Conv2d) and "downsample" not in n]
    assert len(convs) == 7
    assert m.fc.in_features == 256
    assert m.fc.out_features == 4


def test_every_entry_names_a_default_task_it_serves():
    defaults = {name: get_entry(name).default_task for name in list_models()}
    assert all(get_task(t).kind in get_entry(n).tasks for n, t in defaults.items())
    assert defaults["sononet16"] == "standard_plane"
    assert defaults["resnet18_sp"] == "anatomy"
    assert defaults["densenet169"] == "fetal_planes"
    assert defaults["fasterrcnn_resnet10"] == "detection"
    assert defaults["resnet8"] == "plane"


def test_register_model_refuses_a_default_task_of_another_kind():
    from edge.ml.models.registry import register_model

    with pytest.raises(ValueError, match="default task 'detection' is a detection task"):
        @register_model(family="test", kinds=("single_label",), default_task="detection")
        def _never_registered(task, input_size, in_chans):
            raise AssertionError("not built")
    assert "_never_registered" not in list_models()
