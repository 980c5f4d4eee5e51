"""Loaders: format detection, task labels, group splits, and the torch dataset."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np
import pytest

from edge.ml.data import detect_format, load_samples, phantom_samples, split_by_group
from edge.core.errors import BadInputError, FileFormatError, MissingFileError, UnsupportedError

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \n"
PLANES6 = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"]


def _png(path, value=0, shape=(8, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))


@pytest.fixture
def fetal_db(tmp_path):
    rows = []
    for patient in range(1, 11):
        for k in range(3):
            name = f"Patient{patient:05d}_Plane{k}_1_of_1"
            rows.append(f"{name};{patient};{PLANES6[(patient + k) % 6]};Not A Brain;Op. A;Voluson E6;{patient % 2}\n")
            _png(tmp_path / "Images" / f"{name}.png", patient)
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(HEADER + "".join(rows))
    return tmp_path


def test_fetal_planes_csv_with_patient_groups(fetal_db):
    assert detect_format(fetal_db) == "fetal_planes"
    samples, labels = load_samples(fetal_db, "fetal_planes")
    assert len(samples) == 30
    assert labels == tuple(PLANES6)
    assert samples[0].group == "patient1"
    assert samples[0].extra["train"] is True
    assert samples[0].load_image().shape == (8, 12)
    _, own = load_samples(fetal_db, "plane")          # FPUS23's task on this data: the dataset's classes
    assert own == tuple(PLANES6)
    train, val, test = split_by_group(samples, (0.8, 0.1, 0.1), seed=1)
    groups = [{s.group for s in part} for part in (train, val, test)]
    assert all(groups)
    assert not (groups[0] & groups[1])
    assert not (groups[0] & groups[2])
    assert not (groups[1] & groups[2])
    assert len(train) + len(val) + len(test) == 30
    assert len(train) >= 18
    assert [s.path for s in split_by_group(samples, seed=1)[0]] == [s.path for s in train]
    assert [s.path for s in split_by_group(samples, seed=2)[0]] != [s.path for s in train]


def test_fetal_planes_errors(fetal_db):
    next((fetal_db / "Images").iterdir()).unlink()
    with pytest.raises(MissingFileError, match="missing"):
        load_samples(fetal_db, "fetal_planes")
    (fetal_db / "FETAL_PLANES_DB_data.csv").write_text("Image;Patient\nx;1\n")
    with pytest.raises(FileFormatError, match="Plane"):
        load_samples(fetal_db, "fetal_planes")


def test_plain_folder_and_plane_folder(tmp_path):
    for cls, n in (("cats", 3), ("dogs", 2)):
        for i in range(n):
            _png(tmp_path / "plain" / cls / f"s{i}__{i}.png")
    samples, labels = load_samples(tmp_path / "plain", "fetal_planes")
    assert labels == ("cats", "dogs")
    assert Counter(s.label for s in samples) == {"cats": 3, "dogs": 2}
    assert {s.group for s in samples} == {"s0", "s1", "s2"}
    with pytest.raises(UnsupportedError, match="multi_label"):
        load_samples(tmp_path / "plain", "anatomy")
    for d in ("AC_PLANE", "NO_PLANE"):
        _png(tmp_path / "planes" / d / "a.png")
    samples, labels = load_samples(tmp_path / "planes", "plane")
    assert labels == ("AC", "BPD", "FL", "no plane")
    assert sorted(s.label for s in samples) == ["AC", "no plane"]
    with pytest.raises(UnsupportedError, match="only train task 'plane'"):
        load_samples(tmp_path / "planes", "orientation")


def test_real_fpus23_layout(tmp_path, shared_data):
    stream = "stream_hdvb_aroundabd_h"
    ann = tmp_path / "annotations" / stream / "annotations.xml"
    ann.parent.mkdir(parents=True)
    shutil.copyfile(shared_data / "fpus23" / f"{stream}.annotations.xml", ann)
    for i in range(361):
        _png(tmp_path / stream / f"frame_{i:06d}.png", shape=(4, 4))
    assert detect_format(tmp_path) == "fpus23"
    samples, labels = load_samples(tmp_path, "plane")
    assert len(samples) == 361
    assert Counter(s.label for s in samples) == {"AC": 42, "no plane": 319}
    det, det_labels = load_samples(tmp_path, "detection")
    assert det_labels == ("head", "arms", "legs", "abdomen")
    assert sum(b[0] == "arms" for s in det for b in s.boxes) == 485


def test_missing_and_empty_datasets(tmp_path):
    with pytest.raises(MissingFileError, match="not found"):
        load_samples(tmp_path / "nope", "plane")
    with pytest.raises(MissingFileError, match="no dataset found"):
        load_samples(tmp_path, "plane")
    with pytest.raises(BadInputError, match="sum to 1"):
        split_by_group([], (0.5, 0.2))


def test_split_never_cuts_a_stream():
    samples, _ = phantom_samples("orientation", seed=0, n=640, size=(16, 16))   # 10 groups of 64
    parts = split_by_group(samples, (0.8, 0.1, 0.1), seed=0)
    seen = [{s.group for s in p} for p in parts]
    assert sum(len(g) for g in seen) == 10
    assert all(seen)
    assert [len(p) for p in parts] == [512, 64, 64]
    with pytest.raises(BadInputError, match="groups"):
        split_by_group(samples[:64], (0.8, 0.1, 0.1))


def test_task_dataset_targets_and_flip():
    torch = pytest.importorskip("torch")
    from edge.ml.data.dataset import PhantomDataset, TaskDataset, collate_detection
    from edge.core.preprocess import default_spec
    from edge.core.tasks import get_task

    spec = default_spec((32, 48))
    x, y = PhantomDataset("plane", spec, n=8, size=(64, 96))[2]
    assert x.shape == (1, 32, 48)
    assert x.dtype == torch.float32
    assert y.item() == 2
    x, y = PhantomDataset("anatomy", spec, n=8, size=(64, 96))[1]
    assert y.dtype == torch.float32
    assert y.tolist() == [1.0, 0.0, 0.0, 0.0]
    det = PhantomDataset("detection", spec, n=4, size=(64, 96))
    _img, target = det[0]
    assert target["labels"].dtype == torch.int64
    assert target["labels"].min() >= 1
    assert (target["boxes"][:, 2] <= 48).all()
    assert (target["boxes"][:, 3] <= 32).all()
    images, targets = collate_detection([det[0], det[1]])
    assert len(images) == 2
    assert isinstance(targets[1], dict)

    samples, labels = phantom_samples("orientation", n=4, size=(32, 32))
    task = get_task("orientation").with_labels(labels)
    from edge.ml.data.augment import Augment

    flip_only = Augment(zoom=0, rotate=0, gain=0, tgc=0, shadow=0, speckle=0)
    plain, aug = TaskDataset(samples, task, spec), TaskDataset(samples, task, spec, augment=flip_only)
    flips = 0
    for k in range(8):
        torch.manual_seed(k)
        xa, ya = aug[0]
        x0, y0 = plain[0]
        if torch.equal(xa, x0):
            assert ya == y0
        else:
            flips += 1
            assert torch.allclose(xa, torch.flip(x0, dims=[2]), atol=1e-5)
            assert labels[ya] == {"hdvb": "huvb", "huvb": "hdvb", "hdvf": "huvf", "huvf": "hdvf"}[labels[y0]]
    assert 0 < flips < 8


def test_loaders_import_without_torch(no_torch_env):
    code = ("from edge.ml.data import load_samples, split_by_group, phantom_samples; import edge.ml.data.synth; "
            "s, l = phantom_samples('plane', n=8, size=(16, 16)); print(len(split_by_group(s, (1.0,))[0]))")
    out = subprocess.run([sys.executable, "-c", code], env=no_torch_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "8", (out.stdout, out.stderr)
