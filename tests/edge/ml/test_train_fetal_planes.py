"""`edgekit train` on the FETAL_PLANES_DB format (seed 003): a torchvision classifier, a patient-wise split."""
from __future__ import annotations

import cv2
import numpy as np

from edge.ml.checkpoint import load_model
from tests.conftest import run_cli

# the real file's header, trailing space included; ';' separated
HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \n"
PLANES = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"]


def _fetal_planes_db(root, patients: int = 10, per_patient: int = 3):
    """A tiny dataset in the real layout: FETAL_PLANES_DB_data.csv + Images/<Image_name>.png."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(1, patients + 1):
        for k in range(per_patient):
            name, plane = f"Patient{p:05d}_Plane{k + 1}_1_of_{per_patient}", PLANES[(p + k) % 6]
            brain = "Trans-thalamic" if plane == "Fetal brain" else "Not A Brain"
            rows.append(f"{name};{p};{plane};{brain};Op. {'ABC'[p % 3]};Voluson E6;{p % 2}\n")
            img = rng.integers(0, 60, (40, 48), np.uint8)
            img[:, 8 * PLANES.index(plane):8 * PLANES.index(plane) + 8] = 220    # a class-dependent bar
            (root / "Images").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "Images" / f"{name}.png"), img)
    (root / "FETAL_PLANES_DB_data.csv").write_text(HEADER + "".join(rows))
    return root


def test_train_tv_resnet18_on_fetal_planes_db_splits_by_patient(tmp_path):
    data, ckpt = _fetal_planes_db(tmp_path / "FETAL_PLANES_DB"), tmp_path / "fp.pt"
    proc = run_cli("train", "--task", "fetal_planes", "--model", "tv_resnet18", "--data", data, "--epochs", "1",
                   "--input", "32x32", "--batch-size", "8", "--out", ckpt)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, meta = load_model(ckpt)
    assert meta["model"]["name"] == "tv_resnet18"
    assert model.edge_config.in_chans == 1
    assert tuple(meta["task"]["labels"]) == tuple(PLANES)
    assert model.fc.out_features == 6
    split = meta["provenance"]["split"]
    parts = {k: set(split[k]["groups"]) for k in ("train", "val", "test")}
    assert all(parts.values())
    assert sum(split[k]["frames"] for k in parts) == 30
    assert not (parts["train"] & parts["val"])
    assert not (parts["train"] & parts["test"])
    assert not (parts["val"] & parts["test"])
    assert parts["train"] | parts["val"] | parts["test"] == {f"patient{p}" for p in range(1, 11)}
    assert all(split[k]["frames"] == 3 * len(parts[k]) for k in parts)     # a patient's images stay together
