"""The CLI contract: every verb listed, user errors in one line with exit 1, light imports."""
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli


def test_help_lists_every_verb_with_one_line():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for verb in ("report", "models"):
        assert f"  {verb} " in proc.stdout


@pytest.mark.parametrize("args,needle", [
    (("report", "resnet9"), "did you mean 'resnet8'"),
    (("report", "resnet8", "--input", "12xz"), "--input '12xz'"),
    (("report", "missing/model.pt"), "checkpoint not found"),
    (("report", "resnet8", "--task", "nope"), "unknown task 'nope'"),
])
def test_user_errors_are_one_line_and_exit_1(args, needle):
    proc = run_cli(*args)
    assert proc.returncode == 1
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_and_device_packages_work_where_torch_cannot_be_imported(no_torch_env):
    check = subprocess.run([sys.executable, "-c", "import torch"], env=no_torch_env, capture_output=True)
    assert check.returncode != 0, "the torch block did not take effect"
    code = ("import edge, edge.app.cli, edge.core.tasks, edge.core.errors, edge.ml.inputs, edge.core.preprocess, runtime, targets; "
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], env=no_torch_env, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout, proc.stderr
    help_ = run_cli("--help", env=no_torch_env)
    assert help_.returncode == 0, help_.stderr
    assert "report" in help_.stdout, help_.stderr


def test_host_verbs_on_a_device_install_say_which_extra_to_install(no_torch_env, tmp_path):
    for args in (("report", "resnet8"), ("compress", tmp_path / "x.pt", "--data", tmp_path, "--out", tmp_path / "o")):
        proc = run_cli(*args, env=no_torch_env)
        lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1, proc.stderr
        assert "needs torch" in lines[0], proc.stderr
        assert '".[train]"' in lines[0], proc.stderr


def test_the_extra_per_module_comes_from_the_installed_metadata(monkeypatch):
    from importlib import metadata

    from edge.app.cli import extra_of

    table = extra_of()
    assert table["torch"] == "train"
    assert table["torchvision"] == "train"
    assert table["pycuda"] == "jetson"            # not installed here: its distribution name stands in
    assert table["sklearn"] == "train"            # installed: scikit-learn's module, from its metadata
    assert "numpy" not in table
    assert "typer" not in table

    def no_edgekit(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", no_edgekit)
    assert extra_of() == {}                       # a bare source tree: a missing module keeps its traceback


def test_models_lists_the_zoo():
    proc = run_cli("models", "resnet*")
    assert proc.returncode == 0
    names = [l.split()[0] for l in proc.stdout.splitlines()]
    assert names == ["resnet10", "resnet18", "resnet18_sp", "resnet34", "resnet8", "resnet_nas"]
