"""Shared fixtures for the runtime tests: one tiny bundle per session, fresh copies when a test edits one."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # rt_models, whatever pytest's import mode

import rt_models


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    """All four kinds (single_label, multi_label, detection, cam) in one bundle; do not modify it."""
    return rt_models.write_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def fresh_bundle(bundle_dir, tmp_path) -> Path:
    """A private copy a test may tamper with."""
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


@pytest.fixture(scope="session")
def plane_bundle(tmp_path_factory) -> Path:
    """Only the single-label classifier: the cheapest bundle for loop tests."""
    return rt_models.write_bundle(tmp_path_factory.mktemp("plane"), names=["plane"])
