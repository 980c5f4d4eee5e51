"""The released SonoNet-16 (a checkpoint nobody here trained) through the whole chain, on the four real
frames in shared: `edgekit export` -> bundle -> `edgekit run --source FRAMES` names each frame's true
class with PyTorch's confidences, and an INT8 bundle (ModelOpt calibration on phantom + real frames)
keeps every top-1 answer. The pruned variant's answers are a benchmark: benchmarks/bench_sononet_chain.py.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli

TRUE_CLASS = {"ABDOMINAL": "Abdominal", "BRAIN-CB": "Brain (Cb.)", "FEMUR": "Femur", "LVOT": "LVOT"}
README_ROI = [115, 734, 81, 874]


@pytest.fixture(scope="module")
def sononet(shared_data):
    d = shared_data / "sononet16"
    if not (d / "SonoNet16.pth").is_file() or len(list((d / "frames").glob("*.tiff"))) != 4:
        pytest.skip(f"SonoNet16.pth or its four frames not found in {d}")
    return d


def _frame_results(jsonl) -> tuple[list[dict], dict]:
    """(per-frame results in index order, the summary) from `edgekit run --json-out`."""
    lines = [json.loads(l) for l in jsonl.read_text().splitlines()]
    frames = sorted((l for l in lines if "summary" not in l), key=lambda l: l["index"])
    return frames, next(l["summary"] for l in lines if "summary" in l)


def _torch_confidences(sononet) -> dict[str, np.ndarray]:
    """Softmax of the released model on each real frame, through the same `edge.core.preprocess` spec."""
    import torch

    from edge.ml.checkpoint import load_model
    from edge.core.preprocess import preprocess

    model, _ = load_model(sononet / "SonoNet16.pth", model="sononet16")
    spec = model.edge_config.preprocess
    out = {}
    for path in sorted((sononet / "frames").glob("*.tiff")):
        rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
        with torch.no_grad():
            out[path.stem] = torch.softmax(model(torch.from_numpy(preprocess(rgb, spec)[None])), 1)[0].numpy()
    return out


@pytest.fixture(scope="module")
def fp32_run(sononet, tmp_path_factory):
    """The released .pth exported through the CLI, then run through the CLI on the frames folder."""
    tmp = tmp_path_factory.mktemp("sononet_fp32")
    r = run_cli("export", sononet / "SonoNet16.pth", "--model", "sononet16", "--target", "cpu",
                "--precision", "fp32", "--parity-frames", "4", "--out", tmp / "bundle")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("run", tmp / "bundle", "--source", sononet / "frames", "--headless", "--frames", "4",
                "--json-out", tmp / "run.jsonl")
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp / "bundle" / "manifest.json").read_text())
    return manifest, *_frame_results(tmp / "run.jsonl")


def test_released_sononet16_fp32_bundle_names_each_real_frame_with_pytorch_confidences(sononet, fp32_run):
    manifest, frames, summary = fp32_run
    (entry,) = manifest["models"]
    assert entry["architecture"] == "sononet16"
    assert entry["source"]["checkpoint"] == "SonoNet16.pth"
    assert entry["preprocess"]["roi"] == README_ROI
    assert entry["preprocess"]["normalize"]["mode"] == "zscore"
    assert [o["role"] for o in entry["outputs"]] == ["logits", "cam"]
    assert entry["parity"]["passed"]
    assert summary["frames"] == 4
    assert summary["dropped"] == 0
    reference = _torch_confidences(sononet)
    labels = entry["labels"]
    for stem, result in zip(sorted(reference), frames):
        got = result["models"][entry["name"]]
        assert got["label"] == TRUE_CLASS[stem], (stem, got["label"])
        assert got["confidence"] > 0.98, (stem, got["label"], got["confidence"])
        conf = np.array([got["confidences"][l] for l in labels])        # rounded to 1e-5 in the JSON
        assert np.abs(conf - reference[stem]).max() < 1e-3, stem
        assert got["cam_box"] is not None                               # the class map gave a box


def test_the_published_npz_exports_and_runs_as_the_pth(sononet, fp32_run, tmp_path):
    """The file as users download it (baumgach/SonoNet-weights), no conversion step: `edgekit export
    SonoNet16.npz --model sononet16` and the loop name the four frames with the .pth's answers."""
    if not (sononet / "SonoNet16.npz").is_file():
        pytest.skip(f"SonoNet16.npz not found in {sononet}")
    _, pth_frames, _ = fp32_run
    r = run_cli("export", sononet / "SonoNet16.npz", "--model", "sononet16", "--target", "cpu",
                "--precision", "fp32", "--parity-frames", "4", "--out", tmp_path / "bundle")
    assert r.returncode == 0, r.stderr[-2000:]
    import runtime

    runtime.run(tmp_path / "bundle", source=str(sononet / "frames"), headless=True, frames=4,
                json_out=tmp_path / "run.jsonl", log=lambda msg: None)
    (entry,) = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["models"]
    assert entry["source"]["checkpoint"] == "SonoNet16.npz"
    assert entry["parity"]["passed"]
    npz_frames, summary = _frame_results(tmp_path / "run.jsonl")
    assert summary["frames"] == 4
    for stem, a, b in zip(sorted(TRUE_CLASS), pth_frames, npz_frames):
        pth, npz = a["models"][entry["name"]], b["models"][entry["name"]]
        assert npz["label"] == pth["label"] == TRUE_CLASS[stem], stem
        assert npz["confidences"] == pth["confidences"], stem          # the same weights, bit for bit


def _int8_checkpoint(sononet, path):
    """Released weights + ModelOpt INT8 quantizers calibrated (max) on 8 phantom and the 4 real frames:
    the compress quant path without QAT fine-tuning (no labelled standard-plane data here)."""
    import torch

    from edge.ml.quantization import quantization_meta
    from compress.quant import quantize_int8
    from edge.ml.checkpoint import load_model, save_checkpoint
    from edge.core.preprocess import preprocess
    from export.parity import frames

    model, _ = load_model(sononet / "SonoNet16.pth", model="sononet16")
    spec = model.edge_config.preprocess
    real = [preprocess(cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1], spec)
            for p in sorted((sononet / "frames").glob("*.tiff"))]
    calib = torch.from_numpy(np.stack(frames(spec, 8, seed=5) + real))
    quantize_int8(model, [calib[:6], calib[6:]])
    return save_checkpoint(path, model, quantization=quantization_meta(model, calib_samples=len(calib)),
                           compression=[{"step": "calibrate", "library": "modelopt", "calib_samples": len(calib)}])


def test_int8_sononet16_bundle_keeps_every_fp32_answer_on_the_real_frames(sononet, fp32_run, tmp_path):
    import runtime
    from export.bundle import export_bundle

    _, fp32_frames, _ = fp32_run
    ckpt = _int8_checkpoint(sononet, tmp_path / "sononet16.int8.pt")
    manifest = export_bundle([ckpt], "cpu", "int8", tmp_path / "bundle", parity_frames=4)
    (entry,) = manifest["models"]
    assert entry["precision"] == "int8"
    assert entry["qdq_pairs"] > 0
    assert entry["parity"]["passed"]
    summary = runtime.run(tmp_path / "bundle", source=str(sononet / "frames"), headless=True, frames=4,
                          json_out=tmp_path / "run.jsonl", log=lambda msg: None)
    assert summary["frames"] == 4
    int8_frames, _ = _frame_results(tmp_path / "run.jsonl")
    for stem, a, b in zip(sorted(TRUE_CLASS), fp32_frames, int8_frames):
        fp32, int8 = a["models"][entry["name"]], b["models"][entry["name"]]
        assert int8["label"] == fp32["label"] == TRUE_CLASS[stem], (stem, int8["label"], int8["confidence"])


def test_plain_state_dict_without_model_name_is_refused_in_one_line(sononet, tmp_path):
    from edge.core.errors import FileFormatError
    from export.bundle import export_bundle

    with pytest.raises(FileFormatError, match="plain state_dict.*--model NAME"):
        export_bundle([sononet / "SonoNet16.pth"], "cpu", "fp32", tmp_path / "b")
    assert not (tmp_path / "b").exists()
