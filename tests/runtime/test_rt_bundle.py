"""Bundle reading: the manifest is checked and every model file's sha256 verified."""
from __future__ import annotations

import json
import sys

import pytest

from edge.core.errors import FileFormatError, MissingFileError
from runtime.bundle import SCHEMA_PATH, SCHEMA_VERSION, load_bundle, sha256_file


def _edit_manifest(root, change):
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_load_bundle_reads_every_model(bundle_dir):
    b = load_bundle(bundle_dir)
    assert [m.name for m in b.models] == ["plane", "anatomy", "detection", "sononet"]
    plane = b.model("plane")
    assert plane.kind == "single_label"
    assert plane.labels == ("AC", "BPD", "FL", "no plane")
    assert plane.onnx.is_file()
    assert plane.sha256 == sha256_file(plane.onnx)
    assert plane.inputs[0].shape == (1, 1, 32, 32)
    assert plane.output("logits").name == "logits"
    assert b.model("detection").output("labels").dtype == "int64"
    assert load_bundle(bundle_dir / "manifest.json").path == bundle_dir


def test_tampered_model_is_refused_by_name(fresh_bundle):
    onnx_file = fresh_bundle / "anatomy.fp32.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(FileFormatError) as exc:
        load_bundle(fresh_bundle)
    message = str(exc.value)
    assert "anatomy.fp32.onnx" in message
    assert "'anatomy'" in message
    assert "re-export" in message
    assert "\n" not in message
    assert load_bundle(fresh_bundle, verify=False).model("anatomy")  # the check is what refused it


def test_missing_model_file_and_missing_bundle(fresh_bundle, tmp_path):
    (fresh_bundle / "plane.fp32.onnx").unlink()
    with pytest.raises(MissingFileError, match="plane.fp32.onnx"):
        load_bundle(fresh_bundle)
    with pytest.raises(MissingFileError, match="no bundle"):
        load_bundle(tmp_path / "nowhere")


def test_schema_version_and_bad_json(fresh_bundle):
    _edit_manifest(fresh_bundle, lambda m: m.update(schema_version=2))
    with pytest.raises(FileFormatError, match="schema_version 2.*reads 1"):
        load_bundle(fresh_bundle)
    (fresh_bundle / "manifest.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        load_bundle(fresh_bundle)


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["models"][0].pop("sha256"), r"models\[0\]: missing sha256"),
    (lambda m: m["models"][1].update(kind="regression"), r"models\[1\].kind"),
    (lambda m: m["models"][0]["outputs"][0].update(role="probabilities"), r"role"),
    (lambda m: m["models"][2]["outputs"].pop(0), r"boxes, scores, labels"),
    (lambda m: m["models"][0]["preprocess"].update(resize=[0, 32]), r"preprocess"),
    (lambda m: m["models"][1].update(name="plane"), r"unique"),
])
@pytest.mark.parametrize("with_jsonschema", [True, False])
def test_bad_manifest_is_named(fresh_bundle, monkeypatch, change, expected, with_jsonschema):
    if not with_jsonschema:
        monkeypatch.setitem(sys.modules, "jsonschema", None)  # a device install without it
    _edit_manifest(fresh_bundle, change)
    with pytest.raises(FileFormatError, match=expected):
        load_bundle(fresh_bundle, verify=False)


def test_schema_file_is_valid_and_matches_written_manifest(bundle_dir):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    jsonschema.validate(json.loads((bundle_dir / "manifest.json").read_text()), schema)


def test_jsonschema_catches_what_hand_checks_skip(fresh_bundle):
    pytest.importorskip("jsonschema")
    _edit_manifest(fresh_bundle, lambda m: m["models"][0].update(precision="fp64"))
    with pytest.raises(FileFormatError, match="precision"):
        load_bundle(fresh_bundle, verify=False)


def test_fallback_files_are_verified_too(fresh_bundle):
    import shutil

    shutil.copy(fresh_bundle / "plane.fp32.onnx", fresh_bundle / "plane.fp16.onnx")
    _edit_manifest(fresh_bundle, lambda m: m["models"][0].update(fallbacks=[
        {"precision": "fp16", "onnx": "plane.fp16.onnx", "sha256": sha256_file(fresh_bundle / "plane.fp16.onnx")}]))
    assert load_bundle(fresh_bundle).model("plane").fallbacks[0]["onnx"].name == "plane.fp16.onnx"
    (fresh_bundle / "plane.fp16.onnx").write_bytes(b"changed")
    with pytest.raises(FileFormatError, match="plane.fp16.onnx"):
        load_bundle(fresh_bundle)
