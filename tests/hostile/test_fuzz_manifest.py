"""Property-based fuzzing of manifest.json (issue 10): whatever a manifest says, the runtime either
accepts it and runs frames, or refuses it with an `EdgekitError` (one line at the CLI); any other
exception is a bug. Each property mutates one family of fields of a real tiny bundle
(tests/runtime/rt_models.py: a classifier, a detector, a cam model) and loads it with
`load_bundle`, then runs the pipeline on a grey and a colour frame."""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.core.errors import EdgekitError
from runtime.bundle import load_bundle
from runtime.pipeline import Pipeline
from runtime.sources import Frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import rt_models

FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FRAMES = [np.random.default_rng(0).integers(0, 256, (120, 160), np.uint8),
          np.random.default_rng(1).integers(0, 256, (120, 160, 3), np.uint8)]
ABS = "<absolute path outside>"  # replaced by a real absolute path in `attempt`
MODELS = ("plane", "detection", "sononet")

_BASE: dict = {}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = rt_models.write_bundle(tmp_path_factory.mktemp("fuzz") / "bundle", names=list(MODELS))
    _BASE.update(root=root, manifest=json.loads((root / "manifest.json").read_text()))
    return _BASE


def attempt(base: dict, manifest: dict) -> bool:
    """True if the manifest is accepted and its bundle runs two frames; False if refused with an
    EdgekitError; anything else raises (the property fails)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = Path(shutil.copytree(base["root"], tmp / "bundle"))
        shutil.copy(root / "plane.fp32.onnx", tmp / "outside.onnx")  # same bytes, same sha256, outside
        os.symlink(tmp / "outside.onnx", root / "link_out.onnx")
        os.symlink("plane.fp32.onnx", root / "link_in.onnx")
        os.symlink("loop.onnx", root / "loop.onnx")
        text = json.dumps(manifest).replace(json.dumps(ABS)[1:-1], str(tmp / "outside.onnx"))
        (root / "manifest.json").write_text(text)
        try:
            bundle = load_bundle(root)
            with Pipeline(bundle, backend="onnxruntime") as pipe:
                for i, image in enumerate(FRAMES):
                    result = pipe.process(Frame(image, 0.0, i))
                    json.dumps(result.to_dict())
        except EdgekitError as exc:
            message = str(exc)
            assert message, f"empty error message from {type(exc).__name__}"
            assert "\n" not in message, repr(message)  # one line at the CLI
            return False
        return True


def edited(base: dict, model: int, changes) -> dict:
    """A deep copy of the base manifest with `changes` [(path, value)] applied to models[model];
    a value of DELETE removes the key."""
    manifest = json.loads(json.dumps(base["manifest"]))
    for path, value in changes:
        target = manifest["models"][model]
        try:
            for key in path[:-1]:
                target = target[key]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced the container: nothing left to edit here
        if not isinstance(target, (dict, list)) or (isinstance(target, list) and not isinstance(path[-1], int)):
            continue
        if value is DELETE:
            if isinstance(target, dict):
                target.pop(path[-1], None)
            elif isinstance(target, list) and path[-1] < len(target):
                del target[path[-1]]
        elif isinstance(target, list) and isinstance(path[-1], int) and path[-1] >= len(target):
            target.append(value)
        else:
            target[path[-1]] = value
    return manifest


DELETE = object()
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
any_json = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                        max_leaves=8)
maybe_delete = st.just(DELETE)
dims = st.one_of(st.integers(-3, 70), st.sampled_from([0, 1, 3, 4, 32, 2 ** 20, 2 ** 20 + 1, 2 ** 31]),
                 st.text(max_size=3), st.none(), st.floats(allow_nan=True, allow_infinity=True))
shapes = st.one_of(st.lists(dims, max_size=9), any_json)
tensor_names = st.one_of(st.sampled_from(["input", "logits", "cam", "boxes", "scores", "labels", "x", ""]),
                         st.text(max_size=6), any_json)
dtypes = st.one_of(st.sampled_from(["float32", "float16", "int64", "int32", "int8", "uint8", "bool", "float64"]),
                   any_json)
roles = st.one_of(st.sampled_from(["logits", "boxes", "scores", "labels", "cam", "probabilities"]), any_json)
model_index = st.integers(0, len(MODELS) - 1)


@FUZZ
@given(model=model_index, data=st.data())
def test_fuzz_tensors(base, model, data):
    """Input/output names, shapes, single dims, dtypes, roles, counts."""
    n_out = len(base["manifest"]["models"][model]["outputs"])
    out = data.draw(st.integers(0, n_out), label="output")  # n_out: appends a new one
    field = data.draw(st.sampled_from([
        (("inputs", 0, "shape"), shapes), (("inputs", 0, "shape", 2), dims), (("inputs", 0, "shape", 1), dims),
        (("inputs", 0, "name"), tensor_names), (("inputs", 0, "dtype"), dtypes), (("inputs", 1), any_json),
        (("outputs", out, "shape"), shapes), (("outputs", out, "shape", -1), dims),
        (("outputs", out, "name"), tensor_names), (("outputs", out, "dtype"), dtypes),
        (("outputs", out, "role"), roles), (("outputs", out), maybe_delete | any_json),
        (("inputs",), any_json), (("outputs",), any_json)]), label="field")
    changes = [(field[0], data.draw(field[1], label="value"))]
    if out >= n_out and changes[0][0][:2] == ("outputs", out) and len(changes[0][0]) == 3:
        changes.insert(0, (("outputs", out), {"name": "extra", "shape": [1], "dtype": "float32", "role": "scores"}))
    attempt(base, edited(base, model, changes))


rois = st.one_of(
    st.none(), any_json,
    st.lists(st.integers(-10 ** 12, 10 ** 12), min_size=0, max_size=6),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4),
    st.lists(st.integers(0, 400), min_size=4, max_size=4),  # well formed, sometimes off the 160x120 frames
    st.sampled_from([[-100, 10 ** 9, -5, 10 ** 9], [0, 8193, 0, 10], [10, 10, 0, 10], [0, 120, 0, 160]]))
resizes = st.one_of(st.lists(st.integers(-5, 9000), max_size=3), st.just([32, 32]), any_json,
                    st.lists(st.floats(allow_nan=True), min_size=2, max_size=2))
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 300), any_json)
number_lists = st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
                         st.lists(st.floats(0.01, 10), min_size=1, max_size=4), any_json)


@FUZZ
@given(model=model_index, data=st.data())
def test_fuzz_preprocess(base, model, data):
    """ROI, resize, grey, interpolation, normalisation: bounded, typed, consistent with the input."""
    fields = data.draw(st.lists(st.sampled_from([
        (("preprocess", "roi"), rois), (("preprocess", "resize"), resizes), (("preprocess", "resize", 0), numbers),
        (("preprocess", "grey"), st.booleans() | any_json),
        (("preprocess", "interpolation"), st.sampled_from(["linear", "cubic", "area", "nearest", "lanczos"]) | any_json),
        (("preprocess", "normalize", "mode"), st.sampled_from(["meanstd", "zscore", "minmax"]) | any_json),
        (("preprocess", "normalize", "mean"), number_lists), (("preprocess", "normalize", "std"), number_lists),
        (("preprocess", "normalize", "scale"), numbers), (("preprocess", "normalize"), any_json),
        (("preprocess",), any_json), (("preprocess", "resize"), maybe_delete), (("preprocess", "roi"), maybe_delete)]),
        min_size=1, max_size=3), label="fields")
    attempt(base, edited(base, model, [(path, data.draw(values, label=str(path))) for path, values in fields]))


labels = st.one_of(st.lists(st.text(max_size=5), max_size=6), st.lists(any_json, max_size=5), any_json,
                   st.sampled_from([["AC", "BPD", "FL"], ["AC", "BPD", "FL", "no plane", "x"], ["a", "a", "b", "c"],
                                    ["Abdominal", "Brain"], ["head", "arms", "legs", "abdomen"]]))
names = st.one_of(st.sampled_from(["plane", "detection", "../plane", "a/b", "", "ok_name", "x" * 200]),
                  st.text(max_size=8), any_json)
tasks = st.one_of(st.sampled_from(["plane", "standard_plane", "detection", "planes", "sononet", ""]), any_json)


@FUZZ
@given(model=model_index, data=st.data())
def test_fuzz_identity(base, model, data):
    """Labels (count, type, duplicates), model name, task, kind, precision, architecture."""
    fields = data.draw(st.lists(st.sampled_from([
        (("labels",), labels), (("labels", 0), any_json), (("name",), names), (("task",), tasks),
        (("kind",), st.sampled_from(["single_label", "multi_label", "detection", "regression"]) | any_json),
        (("precision",), st.sampled_from(["fp32", "fp16", "int8", "fp64"]) | any_json),
        (("architecture",), any_json), (("stats",), any_json), (("parity",), any_json),
        (("labels",), maybe_delete), (("task",), maybe_delete)]), min_size=1, max_size=3), label="fields")
    attempt(base, edited(base, model, [(path, data.draw(values, label=str(path))) for path, values in fields]))


paths = st.one_of(st.sampled_from(["plane.fp32.onnx", "../outside.onnx", ABS, "link_out.onnx", "link_in.onnx",
                                   "loop.onnx", "", ".", "sub/../plane.fp32.onnx", "./plane.fp32.onnx",
                                   "missing.onnx", "a\x00b", "/etc/passwd", "manifest.json"]),
                  st.text(max_size=10), any_json)
shas = st.one_of(st.just("<sha of plane>"), st.sampled_from(["0" * 64, "xyz", ""]), any_json)


@FUZZ
@given(data=st.data())
def test_fuzz_paths(base, data):
    """The model's ONNX, fallbacks and engines: inside the bundle (symlinks resolved) or refused."""
    sha = base["manifest"]["models"][0]["sha256"]

    def real(v):
        return sha if v == "<sha of plane>" else v

    field = data.draw(st.sampled_from(["onnx", "fallback", "engine", "engines"]), label="field")
    path, digest = data.draw(paths, label="path"), real(data.draw(shas, label="sha"))
    if field == "onnx":
        changes = [(("onnx",), path), (("sha256",), digest)]
    elif field == "fallback":
        changes = [(("fallbacks",), [{"precision": data.draw(st.sampled_from(["fp16", "int8", "fp64"])),
                                      "onnx": path, "sha256": digest}])]
    elif field == "engine":
        changes = [(("engines",), [{"file": path, "gpu": "Orin", "compute_capability": "8.7",
                                    "tensorrt": "10.3.0", "sha256": digest}])]
    else:
        changes = [(("engines",), data.draw(any_json, label="engines"))]
    attempt(base, edited(base, 0, changes))


@FUZZ
@given(model=model_index, data=st.data())
def test_fuzz_postprocess(base, model, data):
    """Thresholds (NaN, infinite, out of range, wrong type) and activations."""
    fields = data.draw(st.lists(st.sampled_from([
        (("postprocess", "threshold"), numbers), (("postprocess", "cam_threshold"), numbers),
        (("postprocess", "activation"), st.sampled_from(["softmax", "sigmoid", "none", "relu"]) | any_json),
        (("postprocess",), any_json)]), min_size=1, max_size=3), label="fields")
    attempt(base, edited(base, model, [(path, data.draw(values, label=str(path))) for path, values in fields]))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@FUZZ
@given(data=st.data())
def test_fuzz_any_field_of_the_manifest(base, data):
    """Any node of the manifest (top level included) replaced by any JSON value, or removed."""
    manifest = json.loads(json.dumps(base["manifest"]))
    all_paths = [p for p in _paths(manifest) if p]
    path = data.draw(st.sampled_from(all_paths), label="path")
    value = data.draw(any_json | maybe_delete, label="value")
    target = manifest
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    attempt(base, manifest)


def test_the_unmutated_bundle_is_accepted(base):
    """The control for every property: the base manifest runs, so refusals are the mutations'."""
    assert attempt(base, base["manifest"]) is True
    changed = edited(base, 0, [(("preprocess", "roi"), [0, 120, 0, 160]), (("postprocess", "threshold"), 0.25)])
    assert attempt(base, changed) is True
    assert attempt(base, edited(base, 0, [(("preprocess", "roi"), [0, 10, 300, 400])])) is False  # off the frame
    assert not math.isnan(base["manifest"]["models"][0]["postprocess"].get("threshold", 0.5))
