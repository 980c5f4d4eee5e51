"""The sweep and `edgekit compress`: a checkpoint per variant, a report that names every one."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_cli

FAST = dict(finetune_epochs=1, batch_size=8, calib_samples=16, latency_rounds=2, progress=False)


def _fast(**changes):
    from compress.sweep import SweepSettings

    return SweepSettings(**FAST, **changes)


def _check_outputs(out, report, names):
    from edge.ml.quantization import load_quantized

    assert [v["name"] for v in report["variants"]] == names
    on_disk = json.loads((out / "sweep.json").read_text())
    assert [v["name"] for v in on_disk["variants"]] == names
    md = (out / "sweep.md").read_text()
    assert all(f"| {n} |" in md for n in names)
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    for v in report["variants"][1:]:
        model, meta = load_quantized(v["checkpoint"])                    # every variant loads back
        assert (meta["quantization"] is not None) == (v["precision"] == "int8")
        assert v["latency_ms"]["median_ms"] > 0
        assert v["value"] is not None
        assert (v["latency_ms"]["qdq_pairs"] > 0) == (v["precision"] == "int8")


def test_structured_sweep_writes_every_variant(plane_ckpt, plane_sets, tmp_path, monkeypatch):
    import export.onnx
    from compress.sweep import sweep

    written, ship = [], export.onnx.export_onnx

    def shipped_writer(model, path, precision, **kw):    # the sweep must time what a cpu bundle ships
        written.append(precision + (f"/{kw['int8_form']}" if "int8_form" in kw else ""))
        return ship(model, path, precision, **kw)

    monkeypatch.setattr(export.onnx, "export_onnx", shipped_writer)
    report = sweep(plane_ckpt, plane_sets, tmp_path, _fast(ratios=(0.5,), method="structured", int8=True))
    assert written == ["fp32", "fp32", "int8/onnxruntime", "int8/onnxruntime"]
    _check_outputs(tmp_path, report, ["baseline", "structured-50", "structured-50-int8", "int8"])
    rows = {v["name"]: v for v in report["variants"]}
    assert rows["structured-50"]["macs"] < 0.7 * rows["baseline"]["macs"]
    assert rows["structured-50"]["delta_points"] is not None
    assert rows["baseline"]["speedup"] == 1.0
    hist = torch.load(rows["structured-50-int8"]["checkpoint"], weights_only=True)["compression"]
    assert [h["step"] for h in hist] == ["prune", "qat"]
    assert report["settings"] == {"finetune_epochs": 1, "lr": 5e-4, "qat_lr": 5e-4 / 10, "batch_size": 8,
                                  "calib_samples": 16, "split_seed": 0, "train_frames": len(plane_sets[0]),
                                  "test_frames": len(plane_sets[1])}


def test_unstructured_and_2_4_sweeps_report_sparse_sizes(plane_ckpt, plane_sets, tmp_path):
    from compress.sweep import sweep

    rep = sweep(plane_ckpt, plane_sets, tmp_path / "u", _fast(ratios=(0.7,), method="unstructured", int8=False))
    _check_outputs(tmp_path / "u", rep, ["baseline", "unstructured-70"])
    row = rep["variants"][1]
    assert row["nonzero_weights"] == pytest.approx(0.3 * row["prunable_weights"], abs=1)
    assert row["sparse_bytes"]["csr"]["fp32"] < row["weights_bytes"]["fp32"]          # 30% kept: CSR pays
    rep = sweep(plane_ckpt, plane_sets, tmp_path / "s", _fast(method="2:4", int8=False))
    _check_outputs(tmp_path / "s", rep, ["baseline", "2:4"])
    assert any("sparse tensor cores" in n for n in rep["notes"])
    assert rep["variants"][1]["sparse_bytes"]["2:4"]["fp32"] < rep["variants"][1]["weights_bytes"]["fp32"]


def test_cli_refuses_a_bad_ratio_in_one_line(plane_ckpt, tmp_path):
    r = run_cli("compress", plane_ckpt, "--data", tmp_path, "--prune", "0.3,1.2", "--out", tmp_path / "o")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error:")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "1.2" in r.stderr
    assert not (tmp_path / "o").exists()
    r = run_cli("compress", plane_ckpt, "--data", tmp_path, "--method", "2:4", "--prune", "0.7", "--out", tmp_path / "o")
    assert r.returncode == 1
    assert "2:4" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("compress", plane_ckpt, "--data", tmp_path, "--method", "magnitude", "--out", tmp_path / "o")
    assert r.returncode == 1
    assert "structured, unstructured, 2:4" in r.stderr


@pytest.mark.slow
def test_cli_compresses_a_resnet10_on_a_dataset_folder(tmp_path):
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data.synth import synth
    from edge.ml.models import create_model

    synth(tmp_path / "data", frames=48, seed=0, size=(48, 64), streams=8)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "o.pt", create_model("resnet10", task="orientation", input_size=(32, 32)))
    r = run_cli("compress", ckpt, "--data", tmp_path / "data", "--prune", "0.5", "--finetune-epochs", "1",
                "--batch-size", "8", "--latency-rounds", "2", "--no-int8", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    names = [v["name"] for v in json.loads((tmp_path / "out" / "sweep.json").read_text())["variants"]]
    assert names == ["baseline", "structured-50"]
    assert "| structured-50 |" in r.stdout
    assert [p.name for p in (tmp_path / "out").glob("*.pt")] == ["o.structured-50.pt"]
