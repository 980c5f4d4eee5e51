"""Engine building around TensorRT: the trtexec line, variant choice, engine records and mismatch
detection in a real bundle's manifest, and the refusal where TensorRT is missing (no TensorRT faked)."""
from __future__ import annotations

import importlib.util
import json

import pytest

from edge.errors import UnsupportedError
from export.tensorrt import (Device, engine_mismatch, engine_name, pick_variant, record_engine,
                             trtexec_command)
from tests.conftest import run_cli

ORIN = Device("Orin", "8.7", "10.3.0")
NANO = Device("NVIDIA Tegra X1", "5.3", "8.2.1")
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_trtexec_command():
    assert trtexec_command("plane.int8.onnx", "plane.int8.sm87-trt10.3.0.engine", 1024) == (
        "trtexec --onnx=plane.int8.onnx --saveEngine=plane.int8.sm87-trt10.3.0.engine --stronglyTyped "
        "--memPoolSize=workspace:1024M")
    assert engine_name("plane", "fp16", NANO) == "plane.fp16.sm53-trt8.2.1.engine"


def test_pick_variant_falls_back_where_int8_is_missing():
    entry = {"name": "plane", "precision": "int8", "onnx": "plane.int8.onnx",
             "fallbacks": [{"precision": "fp16", "onnx": "plane.fp16.onnx"}]}
    assert pick_variant(entry, ORIN)["onnx"] == "plane.int8.onnx"
    assert pick_variant(entry, NANO)["onnx"] == "plane.fp16.onnx"
    with pytest.raises(UnsupportedError, match="cannot run int8 and the bundle has no fp16 fallback"):
        pick_variant({**entry, "fallbacks": []}, NANO)


def _engine_record(root, name, device, payload: bytes):
    from runtime.bundle import sha256_file

    (root / name).write_bytes(payload)
    return {"file": name, "gpu": device.gpu, "compute_capability": device.compute_capability,
            "tensorrt": device.tensorrt, "sha256": sha256_file(root / name), "precision": "fp32",
            "onnx": "plane.fp32.onnx", "trtexec": trtexec_command("plane.fp32.onnx", name, 1024)}


def test_engine_records_and_mismatch_in_a_manifest(ckpts, tmp_path):
    """Record engines for two devices in a real bundle, rewrite the manifest, read it back."""
    from edge.errors import FileFormatError
    from export.bundle import export_bundle
    from export.manifest import write_manifest
    from runtime.bundle import load_bundle

    out = tmp_path / "b"
    manifest = export_bundle([ckpts["plane"]], "jetson", "fp32", out, parity_frames=4)
    entry = manifest["models"][0]
    # the engine bytes here are a stand-in file: only the manifest bookkeeping is under test
    record_engine(entry, _engine_record(out, engine_name("plane", "fp32", ORIN), ORIN, b"orin-1"))
    record_engine(entry, _engine_record(out, engine_name("plane", "fp32", NANO), NANO, b"nano"))
    record_engine(entry, _engine_record(out, engine_name("plane", "fp32", ORIN), ORIN, b"orin-2"))  # rebuilt
    write_manifest(out / "manifest.json", manifest)
    assert not list(out.glob(".manifest.json.*"))  # the atomic rewrite left no temp file
    engines = json.loads((out / "manifest.json").read_text())["models"][0]["engines"]
    assert [e["gpu"] for e in engines] == ["NVIDIA Tegra X1", "Orin"]  # one per device, latest kept
    loaded = load_bundle(out)
    assert len(loaded.models[0].engines) == 2
    orin, nano = engines[1], engines[0]
    assert engine_mismatch(orin, ORIN) is None
    reason = engine_mismatch(orin, Device("Xavier", "7.2", "8.5.2"))
    assert "built for another device" in reason and "'8.7' != '7.2'" in reason and "'10.3.0' != '8.5.2'" in reason
    assert "tensorrt" in engine_mismatch(nano, Device("NVIDIA Tegra X1", "5.3", "8.2.0"))
    (out / orin["file"]).write_bytes(b"tampered")
    with pytest.raises(FileFormatError, match=orin["file"].replace(".", r"\.")):
        load_bundle(out)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_build_engines_without_tensorrt_exits_1(ckpts, tmp_path):
    from export.bundle import export_bundle

    out = tmp_path / "b"
    export_bundle([ckpts["plane"]], "jetson", "fp16", out, parity_frames=4)
    before = (out / "manifest.json").read_bytes()
    r = run_cli("build-engines", out)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "TensorRT is not installed" in lines[0] and "on the device" in lines[0]
    assert (out / "manifest.json").read_bytes() == before and not list(out.glob("*.engine"))


def test_build_engines_on_a_missing_bundle(tmp_path):
    r = run_cli("build-engines", tmp_path / "nope")
    assert r.returncode == 1 and "no bundle" in r.stderr


def test_device_side_verbs_are_torch_free(bundle_dir_for_device, no_torch_env):
    """`inspect` and `build-engines` run on a Jetson without torch."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "inspect", str(bundle_dir_for_device)], env=no_torch_env,
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    if not HAS_TRT:
        r = subprocess.run([sys.executable, "-c", code, "build-engines", str(bundle_dir_for_device)],
                           env=no_torch_env, capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 1 and "TensorRT is not installed" in r.stderr and "blocked" not in r.stderr


@pytest.fixture
def bundle_dir_for_device(ckpts, tmp_path):
    from export.bundle import export_bundle

    export_bundle([ckpts["plane"]], "jetson", "fp16", tmp_path / "b", parity_frames=4)
    return tmp_path / "b"
