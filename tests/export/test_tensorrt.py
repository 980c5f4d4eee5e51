"""`edgekit build-engines` on bundles written by `export/`: the refusal where TensorRT is missing (no
TensorRT faked here), a missing bundle, and the device verbs without torch. Engine facts, matching,
recording and building belong to `runtime.engines` and are tested in tests/runtime/test_engines.py."""
from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import run_cli

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_engine_facts_have_one_owner():
    """Engines are named, matched, recorded and built in runtime/engines.py only (issue 11)."""
    import re

    from tests.conftest import REPO

    owner = REPO / "runtime" / "engines.py"
    pattern = re.compile(r"^\s*(def (engine_mismatch|select_engine|record_engine|engine_name|build_engines?|"
                         r"pick_variant|device_facts|query_device)\b|class (DeviceFacts|Device)\b)", re.M)
    found = {str(p.relative_to(REPO)) for pkg in ("edge", "export", "compress", "runtime", "targets")
             for p in (REPO / pkg).rglob("*.py") if pattern.search(p.read_text())}
    assert found == {str(owner.relative_to(REPO))}


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_build_engines_without_tensorrt_exits_1(ckpts, tmp_path):
    from export.bundle import export_bundle

    out = tmp_path / "b"
    export_bundle([ckpts["plane"]], "jetson", "fp16", out, parity_frames=4)
    before = (out / "manifest.json").read_bytes()
    r = run_cli("build-engines", out)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TensorRT is not installed" in lines[0]
    assert "on the device" in lines[0]
    assert (out / "manifest.json").read_bytes() == before
    assert not list(out.glob("*.engine"))


def test_build_engines_on_a_missing_bundle(tmp_path):
    r = run_cli("build-engines", tmp_path / "nope")
    assert r.returncode == 1
    assert "no bundle" in r.stderr


def test_device_side_verbs_are_torch_free(bundle_dir_for_device, no_torch_env):
    """`inspect` and `build-engines` run on a Jetson without torch."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = "import sys; from edge.app.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "inspect", str(bundle_dir_for_device)], env=no_torch_env,
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    if not HAS_TRT:
        r = subprocess.run([sys.executable, "-c", code, "build-engines", str(bundle_dir_for_device)],
                           env=no_torch_env, capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 1
        assert "TensorRT is not installed" in r.stderr
        assert "blocked" not in r.stderr


@pytest.fixture
def bundle_dir_for_device(ckpts, tmp_path):
    from export.bundle import export_bundle

    export_bundle([ckpts["plane"]], "jetson", "fp16", tmp_path / "b", parity_frames=4)
    return tmp_path / "b"
