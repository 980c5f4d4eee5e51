"""Checkpoints: round trip, pruned structure rebuilt from data, unsafe and broken files refused."""
import os
import pickle

import pytest
import torch

from edge.ml.checkpoint import load_checkpoint, load_model, resize_to_shapes, save_checkpoint
from edge.core.errors import FileFormatError, MissingFileError
from edge.ml.models import create_model


def _model():
    return create_model("resnet8", task="anatomy", input_size=(32, 32)).eval()


def test_round_trip_keeps_weights_task_and_config(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "a.pt", model, provenance={"epochs": 2})
    loaded, meta = load_model(path)
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert meta["task"]["name"] == "anatomy"
    assert meta["provenance"]["epochs"] == 2
    assert loaded.edge_config.input_size == (32, 32)
    assert meta["model"]["shapes"] is None
    assert not list(tmp_path.glob(".a.pt.*")), "no temp file left behind"


def test_pruned_structure_is_rebuilt_from_recorded_shapes(tmp_path):
    model = _model()
    # shrink layer1's inner width 64 -> 40 by hand, as a channel pruner would
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    for k in ("layer1.0.conv1.weight",):
        shapes[k][0] = 40
    for k in ("layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var"):
        shapes[k] = [40]
    shapes["layer1.0.conv2.weight"][1] = 40
    resize_to_shapes(model, shapes)
    torch.nn.init.normal_(model.layer1[0].conv1.weight)
    x = torch.rand(1, 1, 32, 32)
    ref = model(x)
    path = save_checkpoint(tmp_path / "p.pt", model)
    assert load_checkpoint(path)["model"]["shapes"]["layer1.0.conv1.weight"] == [40, 64, 3, 3]
    loaded, _ = load_model(path)
    assert loaded.layer1[0].conv1.out_channels == 40
    assert loaded.layer1[0].bn1.num_features == 40
    assert torch.allclose(loaded(x), ref)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_whose_unpickling_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Exploit(marker)}, path)
    with pytest.raises(FileFormatError, match="refused to load"):
        load_model(path, model="resnet8")
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(FileFormatError):
        load_model(raw, model="resnet8")
    assert not marker.exists()


def test_truncated_wrong_model_and_missing_files_give_one_line_errors(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", _model())
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FileFormatError, match="truncated or corrupt"):
        load_model(cut)
    plain = tmp_path / "plain.pt"
    torch.save(_model().state_dict(), plain)
    with pytest.raises(FileFormatError, match="do not fit model 'resnet10'") as err:
        load_model(plain, model="resnet10", task="anatomy")
    assert "\n" not in str(err.value)
    with pytest.raises(FileFormatError, match="--model NAME"):
        load_model(plain)
    with pytest.raises(MissingFileError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_third_party_plain_state_dict_loads_into_a_named_zoo_model(tmp_path):
    src = _model()
    plain = tmp_path / "plain.pth"
    torch.save(src.state_dict(), plain)
    model, meta = load_model(plain, model="resnet8", task="anatomy", input_size=(32, 32))
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(model(x), src(x))
    assert meta["format"] == "state_dict"
