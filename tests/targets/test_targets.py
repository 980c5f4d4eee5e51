"""Targets: a registry sweep for consistent facts, the request check, and `edgekit targets`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge.core.errors import BadInputError, UnknownNameError, UnsupportedError
from targets import (MEMORY_FRACTION, PRECISIONS, RUNTIME_PYTHON, RUNTIME_TENSORRT, check_request, get_target,
                     list_targets)
from tests.conftest import REPO, run_cli

ALL_NAMES = [t.name for t in list_targets()]
JETSONS = ["jetson-nano", "jetson-xavier-nx", "jetson-agx-xavier", "jetson-orin-nano", "jetson-orin-nx",
           "jetson-agx-orin"]


def test_registry_names_the_brief_devices():
    assert set(ALL_NAMES) == {"jetson", *JETSONS, "x86-cuda", "cpu"}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_target_has_consistent_facts(name):
    t = get_target(name)
    assert t.name == name
    assert t.description
    assert t.precisions
    assert set(t.precisions) <= set(PRECISIONS)
    assert "fp32" in t.precisions
    assert t.dla_cores[0] <= t.dla_cores[1]
    if t.memory_gb is not None:
        assert 0 < t.memory_gb[0] <= t.memory_gb[1]
        assert t.memory_budget_gb == t.memory_gb[0]
    if t.kind == "jetson":
        major, minor = (int(v) for v in t.compute_capability.split("."))
        assert (5, 3) <= (major, minor) <= (8, 7)
        assert t.jetpack
        assert t.tensorrt
        assert t.python
        assert t.workspace_mb > 0
        # INT8 exactly where the GPU has INT8 instructions (compute capability 6.1+)
        assert t.supports("int8") == ((major, minor) >= (6, 1))
    if t.has_tensorrt:
        lo, hi = (tuple(int(v) for v in s.replace(".x", "").split(".")) for s in t.tensorrt)
        assert t.workspace_mb > 0
        assert lo <= hi
    json.dumps(t.to_dict())  # plain data


def test_brief_figures():
    nano, agx = get_target("jetson-nano"), get_target("jetson-agx-orin")
    assert nano.compute_capability == "5.3"
    assert not nano.supports("int8")
    assert nano.tensorrt == ("8.2", "8.2")
    assert agx.memory_gb == (32, 64)
    assert agx.dla_cores == (2, 2)
    assert agx.tensorrt[1].startswith("11")
    assert get_target("jetson-orin-nx").dla_cores == (1, 2)
    assert get_target("jetson-agx-xavier").memory_budget_gb == 16


def test_family_is_union_of_precisions_and_weakest_limits():
    fam = get_target("jetson")
    members = [get_target(m) for m in fam.members]
    assert fam.members == tuple(JETSONS)
    assert set(fam.precisions) == {p for m in members for p in m.precisions}
    assert fam.memory_budget_gb == min(m.memory_budget_gb for m in members)
    assert fam.workspace_mb == min(m.workspace_mb for m in members)


def test_unknown_target_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'jetson-nano'"):
        get_target("jetson-nan")


def test_int8_on_nano_refused_with_reason_and_fix():
    with pytest.raises(UnsupportedError) as exc:
        check_request("jetson-nano", "int8", 1e6)
    msg = str(exc.value)
    assert "jetson-nano" in msg
    assert "int8" in msg
    assert "5.3" in msg
    assert "use --precision fp16" in msg
    assert "\n" not in msg


def test_bad_precision():
    with pytest.raises(BadInputError, match="fp8"):
        check_request("cpu", "fp8")


def test_memory_budget_flag_is_a_warning_past_the_fraction():
    budget = get_target("jetson-orin-nano").memory_budget_gb * 1e9
    assert check_request("jetson-orin-nano", "fp16", MEMORY_FRACTION * budget * 0.99).warnings == []
    warns = check_request("jetson-orin-nano", "fp16", MEMORY_FRACTION * budget * 1.01).warnings
    assert len(warns) == 1
    assert "jetson-orin-nano" in warns[0]
    assert "25%" in warns[0]
    assert check_request("x86-cuda", "fp32", 1e12).warnings == []  # no fixed memory, no flag


def test_family_int8_notes_the_members_that_fall_back():
    warns = check_request("jetson", "int8", 1e6).warnings
    assert any("jetson-nano" in w and "fp16 fallback" in w for w in warns)


def test_cli_table_and_json():
    r = run_cli("targets")
    assert r.returncode == 0, r.stderr
    assert all(n in r.stdout for n in ALL_NAMES)
    r = run_cli("targets", "--json")
    assert r.returncode == 0
    assert [d["name"] for d in json.loads(r.stdout)] == ALL_NAMES


def _version(text: str) -> tuple:
    return tuple(int(v) for v in text.replace(".x", "").lstrip(">=").split("."))


@pytest.mark.parametrize("name", JETSONS)
def test_a_profile_never_promises_what_the_runtime_cannot_do(name):
    """A Jetson whose JetPack ships an older Python or TensorRT than edgekit's runtime needs says so plainly."""
    t = get_target(name)
    short = _version(t.python) < _version(RUNTIME_PYTHON) or _version(t.tensorrt[0]) < _version(RUNTIME_TENSORRT)
    assert bool(t.runtime_note) == short
    if short:
        assert f"needs Python >= {RUNTIME_PYTHON}" in t.runtime_note
        assert "--backend onnxruntime" in t.runtime_note  # what does run there
        assert "\n" not in t.runtime_note
    assert t.to_dict()["runtime_note"] == t.runtime_note


def test_the_runtime_python_is_what_pyproject_requires():
    import re

    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=([0-9.]+)"', text, re.M).group(1) == RUNTIME_PYTHON


def test_the_nano_says_what_edgekit_does_there_wherever_it_is_offered():
    note = get_target("jetson-nano").runtime_note
    assert "Python 3.6" in note
    assert any(w == f"jetson-nano: {note}" for w in check_request("jetson-nano", "fp16", 1e6).warnings)
    assert any(w.startswith("jetson-nano: JetPack 4.6") for w in check_request("jetson", "fp16", 1e6).warnings)
    assert not any("JetPack 4.6" in w for w in check_request("jetson-orin-nano", "fp16", 1e6).warnings)
    r = run_cli("targets")
    assert r.returncode == 0, r.stderr
    assert f"* jetson-nano: {note}" in r.stdout
    assert f"Python >= {RUNTIME_PYTHON}" in r.stdout


def test_targets_is_torch_free(no_torch_env):
    code = "import targets, edge.app.cli.targets; print(len(targets.list_targets()))"
    r = subprocess.run([sys.executable, "-c", code], env=no_torch_env, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
