"""Bundles: manifest per docs/ARCHITECTURE.md, refusals before any work, atomic writes, tamper checks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edge.core.errors import BadInputError, FileFormatError, UnsupportedError
from export.bundle import export_bundle
from tests.conftest import REPO, run_cli

FAST = dict(parity_frames=8)


@pytest.fixture(scope="module")
def bundle(ckpts, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "bundle"
    manifest = export_bundle([ckpts["plane"], ckpts["anatomy"]], "jetson-orin-nano", "fp32", out, **FAST)
    return out, manifest


def test_manifest_matches_the_contract(bundle):
    from runtime.bundle import SCHEMA_VERSION, load_bundle, sha256_file

    out, manifest = bundle
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["target"] == "jetson-orin-nano"
    plane, anatomy = manifest["models"]
    assert (plane["name"], plane["kind"], plane["architecture"]) == ("plane", "single_label", "resnet8")
    assert anatomy["postprocess"]["activation"] == "sigmoid"
    assert plane["postprocess"]["activation"] == "softmax"
    assert plane["sha256"] == sha256_file(out / plane["onnx"])
    assert plane["engines"] == []
    assert plane["stats"]["params"] > 0
    assert plane["stats"]["weights_bytes"]["fp16"] * 2 == \
        plane["stats"]["weights_bytes"]["fp32"]
    assert plane["parity"]["passed"]
    assert plane["parity"]["max_abs_diff"] <= 1e-4
    assert plane["preprocess"]["resize"] == [32, 32]
    assert sorted(p.name for p in out.iterdir()) == ["anatomy.fp32.onnx", "manifest.json", "plane.fp32.onnx"]
    assert [m.name for m in load_bundle(out).models] == ["plane", "anatomy"]


def test_tampered_file_is_refused_by_name(bundle, tmp_path):
    import shutil

    from runtime.bundle import load_bundle

    copy = tmp_path / "copy"
    shutil.copytree(bundle[0], copy)
    with open(copy / "anatomy.fp32.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    with pytest.raises(FileFormatError, match="anatomy.fp32.onnx of model 'anatomy'"):
        load_bundle(copy)
    r = run_cli("inspect", copy)
    assert r.returncode == 1
    assert "anatomy.fp32.onnx" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_inspect_table_and_json(bundle):
    r = run_cli("inspect", bundle[0])
    assert r.returncode == 0
    assert "plane.fp32.onnx" in r.stdout
    assert "max_abs_diff" in r.stdout
    r = run_cli("inspect", bundle[0], "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout) == bundle[1]


def test_int8_on_nano_refused_before_any_work(ckpts, tmp_path):
    out = tmp_path / "nano"
    r = run_cli("export", ckpts["plane_qat"], "--target", "jetson-nano", "--precision", "int8", "--out", out)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "jetson-nano" in lines[0]
    assert "use --precision fp16" in lines[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_int8_needs_qat_checkpoint_and_writes_nothing(ckpts, tmp_path):
    with pytest.raises(UnsupportedError, match="not a QAT checkpoint"):
        export_bundle([ckpts["plane"]], "jetson-orin-nx", "int8", tmp_path / "o", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_refuses_non_empty_out_unless_force(ckpts, bundle, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BadInputError, match="--force"):
        export_bundle([ckpts["plane"]], "cpu", "fp32", out, **FAST)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    manifest = export_bundle([ckpts["plane"]], "cpu", "fp32", out, force=True, **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "plane.fp32.onnx"]
    assert manifest["target"] == "cpu"
    assert not list(tmp_path.glob(".o.*"))


def test_exception_midway_leaves_nothing(ckpts, tmp_path, monkeypatch):
    import export.bundle as b

    calls = []
    real = b._export_one

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure while exporting the second model")
        return real(*args, **kw)

    monkeypatch.setattr(b, "_export_one", flaky)
    with pytest.raises(RuntimeError, match="injected"):
        export_bundle([ckpts["plane"], ckpts["anatomy"]], "cpu", "fp32", tmp_path / "o", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_killed_export_leaves_nothing_at_destination(ckpts, tmp_path):
    out = tmp_path / "o"
    code = "import sys; from edge.app.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "export", str(ckpts["plane"]), str(ckpts["anatomy"]),
                             "--target", "cpu", "--precision", "fp32", "--out", str(out), "--parity-frames", "400"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".o.tmp-*/*.onnx")):
        time.sleep(0.1)
    assert list(tmp_path.glob(".o.tmp-*/*.onnx")), "export never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    # the next export removes the dead process's staging directory and publishes a whole bundle
    export_bundle([ckpts["plane"]], "cpu", "fp32", out, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_jetson_int8_bundle_carries_fp16_fallback(ckpts, tmp_path):
    from runtime.bundle import load_bundle

    m = export_bundle([ckpts["plane_qat"]], "jetson", "int8", tmp_path / "j", **FAST)
    entry = m["models"][0]
    assert entry["precision"] == "int8"
    assert entry["qdq_pairs"] > 0
    assert entry["parity"]["reference"] == "pytorch-qat"
    assert entry["int8"] == {"form": "tensorrt"}            # ModelOpt's Q/DQ as TensorRT builds it
    fb, ort_form = entry["fallbacks"]
    assert fb["precision"] == "fp16"
    assert fb["parity"]["passed"]
    assert (tmp_path / "j" / fb["onnx"]).is_file()
    # and its ONNX Runtime form, for a device that runs ORT on the CPU (no TensorRT there)
    assert (ort_form["precision"], ort_form["onnx"], ort_form["int8"]["form"]) == ("int8", "plane.int8-ort.onnx",
                                                                                   "onnxruntime")
    assert ort_form["parity"]["passed"]
    assert ort_form["int8"]["kernels"]["fused"]["QLinearConv"] > 0
    assert any("jetson-nano" in w for w in m["warnings"])
    (model,) = load_bundle(tmp_path / "j").models
    assert model.int8_form == "tensorrt"
    assert model.ort_int8() == tmp_path / "j" / "plane.int8-ort.onnx"
    # a single device with INT8 gets what it asked for, and the ORT form beside it
    m = export_bundle([ckpts["plane_qat"]], "jetson-orin-nano", "int8", tmp_path / "k", **FAST)
    assert [(f["precision"], f["int8"]["form"]) for f in m["models"][0]["fallbacks"]] == [("int8", "onnxruntime")]


def test_ort_cpu_backend_runs_the_ort_form_of_a_jetson_int8_bundle(ckpts, tmp_path):
    """ONNX Runtime on the CPU runs the TensorRT form as fake quantisation; it takes the ORT form."""
    import numpy as np

    from runtime.backends.ort import OnnxRuntimeBackend
    from runtime.bundle import load_bundle

    export_bundle([ckpts["plane_qat"]], "jetson-orin-nano", "int8", tmp_path / "k", **FAST)
    (model,) = load_bundle(tmp_path / "k").models
    with OnnxRuntimeBackend(model) as runner:
        assert runner.onnx.name == "plane.int8-ort.onnx"
        assert "int8 onnxruntime form)" in runner.describe()
        x = np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in model.inputs[0].shape], np.float32)
        assert runner.infer({model.inputs[0].name: x})[model.outputs[0].name].shape == (1, len(model.labels))
    # a bundle written before the ORT form existed: the TensorRT form runs, and the log line says it is slow
    import dataclasses

    old = dataclasses.replace(model, fallbacks=())
    with OnnxRuntimeBackend(old) as runner:
        assert runner.onnx.name == "plane.int8.onnx"
        assert "tensorrt form: fake quantisation on the CPU, slower than fp32" in runner.describe()


@pytest.mark.slow
def test_detector_int8_bundle(detector_ckpts, tmp_path):
    m = export_bundle([detector_ckpts["det_qat"]], "jetson", "int8", tmp_path / "d", parity_frames=4)
    entry = m["models"][0]
    assert entry["kind"] == "detection"
    assert entry["postprocess"]["activation"] == "none"
    assert [o["role"] for o in entry["outputs"]] == ["boxes", "scores", "labels"]
    assert entry["parity"]["passed"]
    assert entry["fallbacks"][0]["parity"]["passed"]
