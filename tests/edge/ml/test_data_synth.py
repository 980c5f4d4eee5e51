"""`edgekit data synth`: the FPUS23 layout, round-tripped through the loaders, written atomically."""
from __future__ import annotations

import numpy as np
import pytest

from edge.ml.data import load_samples
from edge.ml.data.synth import synth
from edge.core.errors import BadInputError
from edge.core.phantom import sweep
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    return out, synth(out, frames=40, seed=1, size=(48, 64), streams=4)


def test_layout_and_summary(dataset):
    out, summary = dataset
    assert summary["frames"] == 40
    assert len(summary["streams"]) == 4
    for name, count in summary["streams"].items():
        assert name.startswith("stream_")
        assert name.split("_")[3] in ("h", "v")
        assert len(list((out / name).glob("frame_*.png"))) == count
        assert (out / "annotations" / name / "annotations.xml").is_file()
    assert sum(summary["planes"].values()) == 40
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]


def test_round_trip_equals_the_simulator(dataset):
    out, summary = dataset
    truth = {}
    for k, count in enumerate(summary["streams"].values()):
        for f in sweep(1 + k, count, 48, 64):
            truth[(f.stream, f"frame_{f.index:06d}.png")] = f
    assert len(truth) == 40
    for task in ("plane", "orientation", "anatomy", "detection"):
        samples, labels = load_samples(out, task)
        for s in samples:
            f = truth[(s.group, s.path.name)]
            if task in ("plane", "orientation"):
                assert s.label == getattr(f, task)
            elif task == "anatomy":
                assert s.anatomy == f.anatomy
            else:
                assert [b[0] for b in s.boxes] == [b[0] for b in f.boxes]
                assert np.allclose([b[1:] for b in s.boxes], [b[1:] for b in f.boxes], atol=0.006)
        assert len(samples) == 40 or task in ("anatomy", "detection")
    s = load_samples(out, "plane")[0][0]
    assert np.array_equal(s.load_image(), truth[(s.group, s.path.name)].image)


def test_plane_folder_matches_streams(dataset):
    out, _ = dataset
    by_file = {(s.group, s.path.name): s.label for s in load_samples(out, "plane")[0]}
    folder, labels = load_samples(out / "planes", "plane")
    assert len(folder) == 40
    assert labels == ("AC", "BPD", "FL", "no plane")
    for s in folder:
        group, name = s.path.name.split("__")
        assert s.group == group
        assert by_file[(group, name)] == s.label


def test_annotation_names_match_the_real_file(dataset, shared_data):
    from defusedxml import ElementTree as ET

    def vocabulary(path):
        root = ET.parse(str(path)).getroot()
        return {lab.findtext("name"): {(a.findtext("name"), a.findtext("values")) for a in lab.iter("attribute")}
                for lab in root.iter("label")}

    out, summary = dataset
    real = vocabulary(shared_data / "fpus23" / "stream_hdvb_aroundabd_h.annotations.xml")
    ours = vocabulary(out / "annotations" / next(iter(summary["streams"])) / "annotations.xml")
    assert ours == real


def test_refuses_non_empty_out_and_accepts_empty(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(BadInputError, match="not empty"):
        synth(tmp_path / "full", frames=4, size=(32, 32))
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"
    (tmp_path / "empty").mkdir()
    assert synth(tmp_path / "empty", frames=4, size=(32, 32))["frames"] == 4


def test_cli(tmp_path):
    out = tmp_path / "cli"
    ok = run_cli("data", "synth", out, "--frames", "8", "--size", "32x48", "--seed", "2")
    assert ok.returncode == 0, ok.stderr
    assert "wrote 8 frames in 4 streams" in ok.stdout, (ok.stdout, ok.stderr)
    again = run_cli("data", "synth", out, "--frames", "8")
    assert again.returncode == 1
    assert again.stderr.strip().startswith("error:")
    assert "not empty" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    bad = run_cli("data", "synth", tmp_path / "x", "--size", "tall")
    assert bad.returncode == 1
    assert "--size" in bad.stderr


def test_more_than_sixteen_streams_get_distinct_names(tmp_path):
    """Past 16 sweeps the (pose, path, probe) names repeat; each further fetus gets a round suffix."""
    summary = synth(tmp_path / "many", frames=18, seed=0, size=(24, 32), streams=18)
    names = list(summary["streams"])
    assert len(set(names)) == 18
    assert names[16] == names[0] + "_2"
    assert names[17] == names[1] + "_2"
    assert (tmp_path / "many" / "annotations" / names[16] / "annotations.xml").is_file()
