"""`runtime.engines`, the one owner of TensorRT engine facts: matching, naming, recording, selection and
building. The decisions are tested on data; the calls into TensorRT against `FakeTensorRT`, which
follows the documented Python API of the version it imitates (10: Builder, create_network(flags),
OnnxParser, BuilderConfig, build_serialized_network, NetworkDefinitionCreationFlag.STRONGLY_TYPED, no
build_engine; 11: strong typing always on, no FP16/INT8 flags; 8.5/8.6: EXPLICIT_BATCH, precision flags,
set_memory_pool_limit, build_engine deprecated; 8.2: max_workspace_size) and refuses anything that
version would refuse. What the module can do is read off it by `runtime.trt_compat.builder_caps`, so
these fakes are what the build sees. Real engines need real TensorRT and a GPU (last test)."""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import onnx
import pytest

from edge.core.errors import FileFormatError, MissingFileError, UnsupportedError
from runtime.bundle import EngineEntry, load_bundle
from runtime.engines import (DeviceFacts, build_engine, build_engines, build_settings, engine_mismatch, engine_name,
                             pick_variant, record_engine, select_engine, trtexec_command)
from runtime.trt_compat import builder_caps

ORIN_26 = DeviceFacts("Orin", "8.7", "10.3.0.26")
ORIN_30 = DeviceFacts("Orin", "8.7", "10.3.0.30")
NANO = DeviceFacts("NVIDIA Tegra X1", "5.3", "8.2.1.8")


class FakeTensorRT:
    """A `tensorrt` module of one version, as far as `build_engine` uses it; records every call."""

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    def __init__(self, version: str = "10.3.0.30", fail_on: str | None = None):
        self.__version__ = version
        self.calls: list = []
        self.fail_on = fail_on  # ONNX file name whose build returns None (TensorRT's failure signal)
        major, minor = (int(v) for v in version.split(".")[:2])
        if major >= 11:  # EXPLICIT_BATCH removed, STRONGLY_TYPED deprecated and ignored; no precision flags
            self.NetworkDefinitionCreationFlag = enum.IntEnum("NDCF", {"STRONGLY_TYPED": 0})
            self.BuilderFlag = enum.IntEnum("BuilderFlag", {"TF32": 0, "REFIT": 1})
        elif major >= 10:
            self.NetworkDefinitionCreationFlag = enum.IntEnum("NDCF", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
            self.BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "INT8": 1, "TF32": 2})
        else:
            self.NetworkDefinitionCreationFlag = enum.IntEnum("NDCF", {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1})
            self.BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "INT8": 1, "TF32": 2})
        self.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
        self.has_memory_pool = (major, minor) >= (8, 4)
        fake = self

        class Network:
            def __init__(self, flags):
                self.flags = flags
                self.strongly_typed = major >= 11 or (
                    "STRONGLY_TYPED" in fake.NetworkDefinitionCreationFlag.__members__
                    and flags & (1 << int(fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
                self.onnx = None

        class Config:
            __slots__ = ("flags", "workspace") + (() if fake.has_memory_pool else ("max_workspace_size",))

            def __init__(self):
                self.flags, self.workspace = [], None

            def set_flag(self, flag):
                fake.calls.append(("set_flag", flag.name))
                self.flags.append(flag)

            if fake.has_memory_pool:
                def set_memory_pool_limit(self, pool, size):
                    fake.calls.append(("set_memory_pool_limit", pool.name, size))
                    self.workspace = size

        class Builder:
            def __init__(self, logger):
                assert isinstance(logger, FakeTensorRT.Logger)

            def create_network(self, flags=0):
                fake.calls.append(("create_network", flags))
                return Network(flags)

            def create_builder_config(self):
                return Config()

            if major < 10:  # deprecated in 8.x, removed in 10: edgekit never calls it
                def build_engine(self, network, config):
                    raise AssertionError("build_engine is deprecated (removed in TensorRT 10)")

            def build_serialized_network(self, network, config):
                if network.strongly_typed and {f.name for f in config.flags} & {"FP16", "INT8"}:
                    raise TypeError("precision flags are not allowed for strongly typed networks")
                if not network.strongly_typed and not network.flags & 1:
                    raise TypeError("the ONNX parser needs an explicit-batch network")
                workspace = config.workspace if fake.has_memory_pool else getattr(config, "max_workspace_size", None)
                fake.calls.append(("build_serialized_network", Path(network.onnx).name, workspace))
                if Path(network.onnx).name == fake.fail_on:
                    return None
                digest = hashlib.sha256(Path(network.onnx).read_bytes()).hexdigest()
                return f"plan|{fake.__version__}|{digest}|{sorted(f.name for f in config.flags)}".encode()

        class OnnxParser:
            def __init__(self, network, logger):
                self.network, self.errors = network, []

            def parse_from_file(self, path):
                fake.calls.append(("parse_from_file", Path(path).name))
                try:
                    onnx.checker.check_model(onnx.load(path))
                except Exception as exc:
                    self.errors = [f"ModelImporter: {str(exc).splitlines()[0]}"]
                    return False
                self.network.onnx = path
                return True

            @property
            def num_errors(self):
                return len(self.errors)

            def get_error(self, i):
                return self.errors[i]

        self.Builder, self.OnnxParser, self.IBuilderConfig = Builder, OnnxParser, Config


@pytest.fixture
def plane_copy(plane_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(plane_bundle, tmp_path / "bundle"))


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _entry(tmp_path, **over) -> EngineEntry:
    fields = dict(file=tmp_path / "plane.fp32.sm87-trt10.3.0.26.engine", gpu="Orin", compute_capability="8.7",
                  tensorrt="10.3.0.26", sha256="0" * 64)
    fields.update(over)
    return EngineEntry(**fields)


# --- the one matching rule -------------------------------------------------------------------------

@pytest.mark.parametrize("built", [
    dict(gpu="ORIN"), dict(gpu="  orin "), dict(tensorrt="10.3.0.30"), dict(tensorrt="10.3.0"), dict(tensorrt="10.3"),
])
def test_engines_match_case_insensitive_gpu_and_any_build_of_a_release(tmp_path, built):
    assert engine_mismatch(_entry(tmp_path, **built), ORIN_30) is None
    assert engine_mismatch({"gpu": "orin", "compute_capability": "8.7", "tensorrt": "10.3.0.1"}, ORIN_30) is None


@pytest.mark.parametrize("built, reason", [
    (dict(gpu="Xavier"), "GPU 'Xavier' != 'Orin'"),
    (dict(compute_capability="7.2"), "compute capability 7.2 != 8.7"),
    (dict(tensorrt="10.4.0.12"), "TensorRT 10.4.0.12 != 10.3.0.30"),
    (dict(tensorrt="8.6.2"), "TensorRT 8.6.2 != 10.3.0.30"),
])
def test_engine_for_another_device_is_refused_in_one_line_naming_the_rebuild(tmp_path, built, reason):
    engine = _entry(tmp_path, **built)
    engine.file.write_bytes(b"plan")
    assert engine_mismatch(engine, ORIN_30) == reason
    model = dataclasses.replace(load_bundle(_plane(tmp_path)).model("plane"), engines=(engine,))
    with pytest.raises(UnsupportedError) as exc:
        select_engine(model, ORIN_30, "my-bundle/")
    message = str(exc.value)
    assert "\n" not in message
    assert reason in message
    assert engine.file.name in message
    assert message.endswith("run `edgekit build-engines my-bundle/` on this device")


def _plane(tmp_path) -> Path:
    import rt_models

    return rt_models.write_bundle(tmp_path / "b", names=["plane"])


def test_select_engine_takes_the_newest_of_duplicate_records(tmp_path):
    """A manifest written before records were replaced may hold the old build first: the newest wins."""
    old, new = _entry(tmp_path), _entry(tmp_path, file=tmp_path / "new.engine", tensorrt="10.3.0.30")
    for e in (old, new):
        e.file.write_bytes(b"plan")
    model = dataclasses.replace(load_bundle(_plane(tmp_path)).model("plane"), engines=(old, new))
    assert select_engine(model, ORIN_30) is new
    new.file.unlink()
    with pytest.raises(MissingFileError, match="new.engine .* recorded in manifest.json but missing"):
        select_engine(model, ORIN_30)


# --- recording ---------------------------------------------------------------------------------------

def _record(device: DeviceFacts, file: str) -> dict:
    return {"file": file, "gpu": device.gpu, "compute_capability": device.compute_capability,
            "tensorrt": device.tensorrt, "sha256": "0" * 64, "precision": "fp32", "onnx": "plane.fp32.onnx"}


def test_record_engine_replaces_every_record_for_the_same_device():
    entry = {"name": "plane", "engines": [_record(ORIN_26, "old.engine"), _record(NANO, "nano.engine"),
                                          _record(DeviceFacts("ORIN", "8.7", "10.3.0"), "older.engine")]}
    dropped = record_engine(entry, _record(ORIN_30, "new.engine"))
    assert [e["file"] for e in dropped] == ["old.engine", "older.engine"]
    assert [e["file"] for e in entry["engines"]] == ["nano.engine", "new.engine"]
    record_engine(entry, _record(DeviceFacts("Orin", "8.7", "10.4.0.1"), "next-release.engine"))
    assert [e["file"] for e in entry["engines"]] == ["nano.engine", "new.engine", "next-release.engine"]


# --- building ----------------------------------------------------------------------------------------

def test_rebuild_after_a_tensorrt_build_number_update_leaves_only_the_new_engine(plane_copy):
    """The issue-11 bug: 10.3.0.26 -> 10.3.0.30 on the same GPU used to add a second record behind the first."""
    build_engines(plane_copy, trt=FakeTensorRT("10.3.0.26"), device=ORIN_26)
    (old,) = _manifest(plane_copy)["models"][0]["engines"]
    assert old["tensorrt"] == "10.3.0.26"
    assert (plane_copy / old["file"]).is_file()

    build_engines(plane_copy, trt=FakeTensorRT("10.3.0.30"), device=ORIN_30)
    (new,) = _manifest(plane_copy)["models"][0]["engines"]
    assert new["tensorrt"] == "10.3.0.30"
    assert new["file"] != old["file"]
    assert not (plane_copy / old["file"]).exists()  # the replaced engine's file is gone too
    assert sorted(p.name for p in plane_copy.glob("*.engine")) == [new["file"]]
    assert not list(plane_copy.glob(".*"))  # no temp files left by the atomic writes
    bundle = load_bundle(plane_copy)  # sha256 of the new engine checked
    chosen = select_engine(bundle.model("plane"), ORIN_30)
    assert chosen.file.name == new["file"]
    assert chosen.tensorrt == "10.3.0.30"


def test_build_engines_records_what_it_built(plane_copy):
    trt = FakeTensorRT("10.3.0.30")
    logs = []
    manifest = build_engines(plane_copy, trt=trt, device=ORIN_30, log=logs.append)
    (rec,) = manifest["models"][0]["engines"]
    assert manifest == _manifest(plane_copy)
    data = (plane_copy / rec["file"]).read_bytes()
    onnx_sha = hashlib.sha256((plane_copy / "plane.fp32.onnx").read_bytes()).hexdigest()
    assert data == f"plan|10.3.0.30|{onnx_sha}|[]".encode()  # strongly typed: no precision flag
    sha = hashlib.sha256(data).hexdigest()
    assert rec["file"] == engine_name("plane", "fp32", ORIN_30, sha) == f"plane.fp32.sm87-trt10.3.0.30.{sha[:12]}.engine"
    assert (rec["sha256"], rec["precision"], rec["onnx"], rec["workspace_mb"]) == (sha, "fp32", "plane.fp32.onnx", 1024)
    assert rec["trtexec"] == (f"trtexec --onnx=plane.fp32.onnx --saveEngine={rec['file']} --stronglyTyped "
                              f"--memPoolSize=workspace:1024M")
    assert trt.calls == [("create_network", 1 << 1), ("parse_from_file", "plane.fp32.onnx"),
                         ("set_memory_pool_limit", "WORKSPACE", 1024 << 20),
                         ("build_serialized_network", "plane.fp32.onnx", 1024 << 20)]
    assert any("plane.fp32.onnx" in line and "Orin" in line for line in logs)
    (plane_copy / rec["file"]).write_bytes(data + b"tampered")
    with pytest.raises(FileFormatError, match=rf"{rec['file']} .* does not match its sha256"):
        load_bundle(plane_copy)


@pytest.mark.parametrize("version, precision, calls", [
    ("10.3.0.30", "int8", [("create_network", 1 << 1), ("parse_from_file", "m.onnx"),
                           ("set_memory_pool_limit", "WORKSPACE", 256 << 20),
                           ("build_serialized_network", "m.onnx", 256 << 20)]),
    ("11.0.0.1", "fp16", [("create_network", 1 << 0), ("parse_from_file", "m.onnx"),
                          ("set_memory_pool_limit", "WORKSPACE", 256 << 20),
                          ("build_serialized_network", "m.onnx", 256 << 20)]),
    ("8.6.2.3", "fp16", [("create_network", 1), ("parse_from_file", "m.onnx"),
                         ("set_memory_pool_limit", "WORKSPACE", 256 << 20), ("set_flag", "FP16"),
                         ("build_serialized_network", "m.onnx", 256 << 20)]),
    ("8.5.2.2", "int8", [("create_network", 1), ("parse_from_file", "m.onnx"),
                         ("set_memory_pool_limit", "WORKSPACE", 256 << 20), ("set_flag", "FP16"), ("set_flag", "INT8"),
                         ("build_serialized_network", "m.onnx", 256 << 20)]),
    ("8.2.1.8", "int8", [("create_network", 1), ("parse_from_file", "m.onnx"), ("set_flag", "FP16"),
                         ("set_flag", "INT8"), ("build_serialized_network", "m.onnx", 256 << 20)]),
])
def test_build_engine_per_tensorrt_version(tmp_path, version, precision, calls):
    import rt_models

    onnx.save(rt_models.classifier(), tmp_path / "m.onnx")
    trt = FakeTensorRT(version)
    settings = build_settings(builder_caps(trt), precision, 256)
    assert bytes(build_engine(trt, tmp_path / "m.onnx", settings, 256)).startswith(b"plan|")
    assert trt.calls == calls


def _caps(version):
    return builder_caps(FakeTensorRT(version))


def test_trtexec_line_follows_the_version():
    assert trtexec_command("p.int8.onnx", "p.engine", build_settings(_caps("10.3.0.30"), "int8", 1024)) == (
        "trtexec --onnx=p.int8.onnx --saveEngine=p.engine --stronglyTyped --memPoolSize=workspace:1024M")
    assert trtexec_command("p.fp16.onnx", "p.engine", build_settings(_caps("11.0.0.1"), "fp16", 1024)) == (
        "trtexec --onnx=p.fp16.onnx --saveEngine=p.engine --stronglyTyped --memPoolSize=workspace:1024M")
    assert trtexec_command("p.int8.onnx", "p.engine", build_settings(_caps("8.6.2"), "int8", 512)) == (
        "trtexec --onnx=p.int8.onnx --saveEngine=p.engine --fp16 --int8 --memPoolSize=workspace:512")
    assert trtexec_command("p.fp16.onnx", "p.engine", build_settings(_caps("8.2.1.8"), "fp16", 512)) == (
        "trtexec --onnx=p.fp16.onnx --saveEngine=p.engine --fp16 --workspace=512")


@pytest.mark.parametrize("version, caps", [
    ("8.2.1.8", (False, True, False, True)), ("8.5.2.2", (False, True, True, True)),
    ("8.6.2.3", (False, True, True, True)), ("10.3.0.30", (True, True, True, True)),
    ("11.0.0.1", (True, False, True, False)),
])
def test_builder_capabilities_are_read_off_the_module(version, caps):
    """strongly typed, precision flags, memory pool, EXPLICIT_BATCH: what each release's module has."""
    assert tuple(dataclasses.astuple(_caps(version))) == caps


def test_unparsable_onnx_and_failed_build_are_one_line_errors(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    settings = build_settings(_caps("10.3.0.30"), "fp32", 64)
    with pytest.raises(FileFormatError) as exc:
        build_engine(FakeTensorRT(), tmp_path / "bad.onnx", settings, 64)
    assert "cannot parse bad.onnx" in str(exc.value)
    assert "\n" not in str(exc.value)
    import rt_models

    onnx.save(rt_models.classifier(), tmp_path / "m.onnx")
    with pytest.raises(UnsupportedError, match="TensorRT failed to build m.onnx.*--workspace"):
        build_engine(FakeTensorRT(fail_on="m.onnx"), tmp_path / "m.onnx", settings, 64)


def test_a_failed_build_leaves_the_bundle_as_it_was(tmp_path):
    import rt_models

    root = rt_models.write_bundle(tmp_path / "b", names=["plane", "anatomy"])
    build_engines(root, trt=FakeTensorRT("10.3.0.26"), device=ORIN_26)
    before = (root / "manifest.json").read_bytes()
    files = sorted(p.name for p in root.iterdir())
    with pytest.raises(UnsupportedError, match="failed to build anatomy.fp32.onnx"):
        build_engines(root, trt=FakeTensorRT("10.3.0.30", fail_on="anatomy.fp32.onnx"), device=ORIN_30)
    assert (root / "manifest.json").read_bytes() == before  # plane's new engine was built, then removed
    assert sorted(p.name for p in root.iterdir()) == files


def test_build_engines_reads_the_bundle_through_load_bundle(plane_copy):
    """A modified ONNX or a manifest path outside the bundle is refused before TensorRT is touched."""
    trt = FakeTensorRT()
    onnx_file = plane_copy / "plane.fp32.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(FileFormatError, match="plane.fp32.onnx .* does not match its sha256"):
        build_engines(plane_copy, trt=trt, device=ORIN_30)
    manifest = _manifest(plane_copy)
    manifest["models"][0]["onnx"] = "../outside.onnx"
    (plane_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileFormatError, match="outside"):
        build_engines(plane_copy, trt=trt, device=ORIN_30)
    assert trt.calls == []
    assert not list(plane_copy.glob("*.engine"))


def test_pick_variant_falls_back_where_int8_is_missing():
    ort_form = {"precision": "int8", "onnx": "plane.int8-ort.onnx", "int8": {"form": "onnxruntime"}}
    entry = {"name": "plane", "precision": "int8", "onnx": "plane.int8.onnx",
             "fallbacks": [{"precision": "fp16", "onnx": "plane.fp16.onnx"}, ort_form]}
    assert pick_variant(entry, ORIN_30)["onnx"] == "plane.int8.onnx"
    assert pick_variant(entry, NANO)["onnx"] == "plane.fp16.onnx"
    with pytest.raises(UnsupportedError, match="cannot run int8 and the bundle has no fp16 fallback"):
        pick_variant({**entry, "fallbacks": []}, NANO)
    # ONNX Runtime's INT8 form is never handed to TensorRT, not even where it comes first
    assert pick_variant({**entry, "onnx": "x.fp16.onnx", "precision": "fp16", "fallbacks": [ort_form]},
                        ORIN_30)["onnx"] == "x.fp16.onnx"
    with pytest.raises(UnsupportedError):
        pick_variant({**entry, "fallbacks": [ort_form]}, NANO)


def test_build_engines_cli_prints_the_records(plane_copy, monkeypatch, capsys):
    """`edgekit build-engines` goes through runtime.engines; here TensorRT and the GPU query are replaced."""
    import sys

    import runtime.engines as engines
    from edge.app.cli import main

    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT("10.3.0.30"))
    monkeypatch.setattr(engines, "_gpu", lambda: ("Orin", "8.7"))
    assert main(["build-engines", str(plane_copy), "--workspace", "128"]) == 0
    (rec,) = _manifest(plane_copy)["models"][0]["engines"]
    assert rec["workspace_mb"] == 128
    assert capsys.readouterr().out.strip() == f"plane: {rec['file']} (Orin, CC 8.7, TensorRT 10.3.0.30)"


@pytest.mark.tensorrt
def test_build_engines_with_real_tensorrt(plane_copy):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine (engines are built on the "
                                           "device: run this test there)")
    if importlib.util.find_spec("cuda") is None and importlib.util.find_spec("pycuda") is None:
        pytest.skip("neither cuda-python nor pycuda is installed, so the GPU cannot be queried")
    manifest = build_engines(plane_copy)
    (rec,) = manifest["models"][0]["engines"]
    assert select_engine(load_bundle(plane_copy).model("plane"), DeviceFacts.of(rec)).file.name == rec["file"]
