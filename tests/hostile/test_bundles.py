"""Hostile bundles through the installed `edgekit` (issue 10): paths that reach outside the bundle,
manifests that disagree with their ONNX, unbounded manifest values. Each is refused by `run`,
`bench`, `inspect` and `build-engines` (where the check applies) with exit 1, one `error:` line and
no traceback. The bad bundles are copies of a real tiny bundle (tests/runtime/rt_models.py) with
manifest.json edited; the ONNX files' sha256s still match, so what is refused is the edit."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_one_error, run_edgekit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import rt_models

LOAD_VERBS = {
    "run": ("run", "{b}", "--frames", "2", "--headless", "--backend", "onnxruntime"),
    "bench": ("bench", "{b}", "--frames", "2", "--backends", "onnxruntime"),
    "inspect": ("inspect", "{b}"),
    "build-engines": ("build-engines", "{b}"),
}


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory) -> Path:
    """A classifier and a cam model (SonoNet-like): enough to reach every check."""
    return rt_models.write_bundle(tmp_path_factory.mktemp("base") / "bundle", names=["plane", "sononet"])


def make_bundle(base: Path, tmp_path: Path, change) -> Path:
    """A copy of `base` in tmp_path/x/bundle with `change(manifest, root)` applied to its manifest."""
    root = Path(shutil.copytree(base, tmp_path / "x" / "bundle"))
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest, root)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def verb(name: str, root: Path, *extra) -> list[str]:
    return [a.format(b=root) for a in LOAD_VERBS[name]] + list(extra)


def plane(m):
    return m["models"][0]


def sononet(m):
    return m["models"][1]


# ---- 1. bundles that reach outside their directory ------------------------------------------------

def _outside_copy(root: Path, name: str = "plane.fp32.onnx") -> Path:
    """A byte-identical copy of a bundle file beside the bundle (same sha256, outside the directory)."""
    outside = root.parent / "outside" / name
    outside.parent.mkdir(exist_ok=True)
    shutil.copy(root / name, outside)
    return outside


def _absolute(m, root):
    plane(m)["onnx"] = str(_outside_copy(root))


def _dotdot(m, root):
    _outside_copy(root)
    plane(m)["onnx"] = "../outside/plane.fp32.onnx"


def _symlink_out(m, root):
    outside = _outside_copy(root)
    (root / "plane.fp32.onnx").unlink()
    os.symlink(outside, root / "plane.fp32.onnx")  # the manifest is unchanged: the file itself escapes


def _fallback_out(m, root):
    _outside_copy(root)
    plane(m)["fallbacks"] = [{"precision": "fp16", "onnx": "../outside/plane.fp32.onnx",
                              "sha256": plane(m)["sha256"]}]


def _engine_out(m, root):
    _outside_copy(root)
    plane(m)["engines"] = [{"file": "../outside/plane.fp32.onnx", "gpu": "Orin", "compute_capability": "8.7",
                            "tensorrt": "10.3.0", "sha256": plane(m)["sha256"]}]


ESCAPES = {
    "absolute onnx": (_absolute, "absolute path"),
    "../ onnx": (_dotdot, "outside the bundle directory"),
    "symlink to outside": (_symlink_out, "outside the bundle directory"),
    "fallback outside": (_fallback_out, "fallback onnx"),
    "engine outside": (_engine_out, "engine file"),
}


@pytest.mark.parametrize("command", list(LOAD_VERBS))
@pytest.mark.parametrize("case", list(ESCAPES))
def test_a_path_outside_the_bundle_is_refused(base_bundle, tmp_path, case, command):
    change, needle = ESCAPES[case]
    root = make_bundle(base_bundle, tmp_path, change)
    line = assert_one_error(run_edgekit(*verb(command, root)), needle)
    assert "re-export the bundle" in line


def test_paths_that_stay_inside_the_bundle_still_run(base_bundle, tmp_path):
    """The control: a subfolder, a `..` that stays inside and a symlink to a file inside all load."""
    def inside(m, root):
        (root / "models").mkdir()
        shutil.move(root / "plane.fp32.onnx", root / "models" / "plane.fp32.onnx")
        plane(m)["onnx"] = "models/../models/plane.fp32.onnx"
        os.symlink("plane.fp32.onnx", root / "models" / "link.onnx")
        plane(m)["fallbacks"] = [{"precision": "fp16", "onnx": "models/link.onnx", "sha256": plane(m)["sha256"]}]

    root = make_bundle(base_bundle, tmp_path, inside)
    proc = run_edgekit(*verb("run", root))
    assert proc.returncode == 0, proc.stderr
    assert "#000001 plane" in proc.stdout


# ---- 2. a manifest that disagrees with its ONNX ---------------------------------------------------

def _input_64(m, root):
    plane(m)["inputs"][0]["shape"] = [1, 1, 64, 64]
    plane(m)["preprocess"]["resize"] = [64, 64]  # consistent manifest, wrong for the 32x32 graph


def _dynamic_input(m, root):
    plane(m)["inputs"][0]["shape"] = [1, 1, "height", "width"]
    plane(m)["preprocess"]["resize"] = [48, 48]  # the graph fixes 32x32: the feed would be refused


DISAGREE = {
    "input 64x64 vs 32x32": (_input_64, "'input' has shape [1, 1, 64, 64] in manifest.json but [1, 1, 32, 32]"),
    "dynamic input vs static graph": (_dynamic_input, "[1, 1, 32, 32] in plane.fp32.onnx"),
    "input name": (lambda m, r: plane(m)["inputs"][0].update(name="image"),
                   "has inputs ['input'] but manifest.json says ['image']"),
    "output name": (lambda m, r: plane(m)["outputs"][0].update(name="scores_out"),
                    "has outputs ['logits'] but manifest.json says ['scores_out']"),
    "output count": (lambda m, r: sononet(m)["outputs"].pop(0),
                     "has outputs ['cam', 'logits'] but manifest.json says ['logits']"),
    "input dtype": (lambda m, r: plane(m)["inputs"][0].update(dtype="float16"),
                    "'input' is float16 in manifest.json but float32"),
    "output rank": (lambda m, r: plane(m)["outputs"][0].update(shape=[4]),
                    "'logits' has shape [4] in manifest.json but [1, 4]"),
    "classes of a dynamic logits": (lambda m, r: (plane(m)["outputs"][0].update(shape=[1, "classes"]),
                                                  plane(m).update(labels=["AC", "BPD", "FL"])),
                                    "has 4 classes but manifest.json lists 3 labels"),
}


@pytest.mark.parametrize("case", list(DISAGREE))
def test_a_manifest_that_disagrees_with_its_onnx_is_refused_before_the_first_frame(base_bundle, tmp_path, case):
    change, needle = DISAGREE[case]
    root = make_bundle(base_bundle, tmp_path, change)
    line = assert_one_error(run_edgekit(*verb("run", root)), needle)
    assert "re-export the bundle" in line
    assert "model " in line
    assert "#000000" not in run_edgekit(*verb("run", root)).stdout  # refused before any frame
    assert_one_error(run_edgekit(*verb("bench", root)), needle)  # not "backend not run" with exit 0


# ---- 3. unbounded or inconsistent manifest values -------------------------------------------------

BOUNDS = {
    "roi of 888 PiB": (lambda m, r: plane(m)["preprocess"].update(roi=[-100, 10**9, -5, 10**9]), ".roi"),
    "roi as floats": (lambda m, r: plane(m)["preprocess"].update(roi=[-100, 1e9, -5, 1e9]), ".roi"),
    "roi upside down": (lambda m, r: plane(m)["preprocess"].update(roi=[50, 10, 0, 40]), "y0 < y1"),
    "roi of three": (lambda m, r: plane(m)["preprocess"].update(roi=[0, 10, 5]), ".roi"),
    "zero input dim": (lambda m, r: plane(m)["inputs"][0].update(shape=[1, 1, 0, 32]), "shape[2]"),
    "negative input dim": (lambda m, r: plane(m)["inputs"][0].update(shape=[1, -1, 32, 32]), "shape[1]"),
    "huge resize": (lambda m, r: plane(m)["preprocess"].update(resize=[100000, 100000]), "1..8192"),
    "zero resize": (lambda m, r: plane(m)["preprocess"].update(resize=[0, 32]), "resize"),
    "fewer labels than logits": (lambda m, r: plane(m).update(labels=["AC", "BPD", "FL"]),
                                 "3 labels but output 'logits' [1, 4] has 4 classes"),
    "more labels than logits": (lambda m, r: plane(m).update(labels=["AC", "BPD", "FL", "no plane", "extra"]),
                                "5 labels but output 'logits'"),
    "fewer labels than cam maps": (lambda m, r: sononet(m).update(labels=["Abdominal", "Brain"]),
                                   "2 labels but output 'cam'"),
    "unknown task": (lambda m, r: plane(m).update(task="planes"), "expected one of plane, orientation"),
    "threshold NaN": (lambda m, r: plane(m)["postprocess"].update(threshold=float("nan")), "threshold"),
    "threshold text": (lambda m, r: plane(m)["postprocess"].update(threshold="high"), "threshold"),
    "std zero": (lambda m, r: plane(m)["preprocess"]["normalize"].update(std=[0.0]), "std"),
    "scale zero": (lambda m, r: plane(m)["preprocess"]["normalize"].update(scale=0), "scale"),
    "three means for a grey input": (lambda m, r: plane(m)["preprocess"]["normalize"].update(mean=[0.1, 0.2, 0.3]),
                                     "3 values for a 1-channel input"),
    "model name with a slash": (lambda m, r: plane(m).update(name="../plane"), ".name"),
    "stats as text": (lambda m, r: plane(m).update(stats="many"), ".stats"),
    "boxes role on a 1-d tensor": (lambda m, r: sononet(m)["outputs"][1].update(role="boxes"), "boxes output"),
}


@pytest.mark.parametrize("command", list(LOAD_VERBS))
@pytest.mark.parametrize("case", list(BOUNDS))
def test_an_unbounded_or_inconsistent_value_is_refused_at_load(base_bundle, tmp_path, case, command):
    change, needle = BOUNDS[case]
    root = make_bundle(base_bundle, tmp_path, change)
    line = assert_one_error(run_edgekit(*verb(command, root)), needle)
    assert line.startswith("error: manifest.json: models[")
    assert "re-export the bundle" in line


def test_a_roi_outside_the_actual_frames_is_one_line_at_run_time(base_bundle, tmp_path):
    """Within bounds and well formed, but off the phantom's frames: refused on the first frame, naming
    the model, the ROI and the frame size."""
    root = make_bundle(base_bundle, tmp_path, lambda m, r: plane(m)["preprocess"].update(roi=[0, 40, 5000, 5040]))
    line = assert_one_error(run_edgekit(*verb("run", root)), "model 'plane': ROI [y0, y1, x0, x1] = [0, 40, 5000, 5040]")
    assert "lies outside the" in line
    assert "(width x height) frame" in line


def test_a_roi_partly_off_the_frame_is_clipped_and_runs(base_bundle, tmp_path):
    root = make_bundle(base_bundle, tmp_path, lambda m, r: plane(m)["preprocess"].update(roi=[0, 8000, 0, 8000]))
    proc = run_edgekit(*verb("run", root))
    assert proc.returncode == 0, proc.stderr
    assert "#000001 plane" in proc.stdout
