"""Fixtures for the device tests: bundles made from tiny ONNX graphs (tests/runtime/rt_models.py, the
`onnx` package's helper, no torch), so this folder runs in a device install on the device's Python
(`.ci/run` runs it, with tests/runtime and tests/targets, in a Python 3.8 venv)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))  # rt_models, whatever the import mode

import rt_models


@pytest.fixture(scope="session")
def device_plane_bundle(tmp_path_factory) -> Path:
    """The single-label classifier alone; do not modify it (copy it with `plane_bundle_copy`)."""
    return rt_models.write_bundle(tmp_path_factory.mktemp("device-plane"), names=["plane"])


@pytest.fixture
def plane_bundle_copy(device_plane_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(device_plane_bundle, tmp_path / "bundle"))
