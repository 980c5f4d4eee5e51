"""Fixtures shared by the whole suite."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"

_BLOCK_TORCH = '''
import sys
class _NoTorch:
    """Refuses torch, as on a device where it is not installed."""
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "torchvision")):
            raise ModuleNotFoundError(f"{name} is blocked in this test (device without torch)", name=name)
        return None
sys.meta_path.insert(0, _NoTorch())
'''


_NO_TORCH_SITE: list[Path] = []


def no_torch_environ() -> dict:
    """Environment for a subprocess in which `import torch` fails, like a plain `pip install edgekit`:
    the one way the suite blocks torch (a sitecustomize on PYTHONPATH, so the installed `edgekit`
    script is blocked too, not only `python -c`)."""
    import tempfile

    if not _NO_TORCH_SITE:
        site = Path(tempfile.mkdtemp(prefix="no_torch_site_"))
        (site / "sitecustomize.py").write_text(_BLOCK_TORCH)
        _NO_TORCH_SITE.append(site)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_NO_TORCH_SITE[0]), str(REPO), env.get("PYTHONPATH", "")])
    return env


def pytest_sessionfinish(session, exitstatus):
    """Leave no torch-blocking site folder behind in the temp dir."""
    import shutil

    for site in _NO_TORCH_SITE:
        shutil.rmtree(site, ignore_errors=True)
    _NO_TORCH_SITE.clear()


@pytest.fixture
def no_torch_env() -> dict:
    return no_torch_environ()


def run_without_torch(code: str, timeout: float = 120, env: dict | None = None):
    """`python -c code` where torch cannot be imported (see `no_torch_environ`); `sys` is imported for
    the code, and no display is set (a device runs headless)."""
    import subprocess

    environ = {k: v for k, v in {**no_torch_environ(), **(env or {})}.items()
               if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True,
                          timeout=timeout, env=environ, cwd=str(REPO))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_cli(*args, env=None, timeout=300):
    """Run the installed `edgekit` entry point in a subprocess; returns CompletedProcess."""
    import subprocess

    code = "import sys; from edge.app.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=str(REPO))


def edgekit_exe() -> str:
    """The `edgekit` script pip installed beside this interpreter (what a user types), not `python -c`."""
    import shutil

    exe = Path(sys.executable).with_name("edgekit")
    found = str(exe) if exe.exists() else shutil.which("edgekit")
    if not found:
        pytest.fail("the edgekit script is not installed; run pip install -e . first")
    return found


def run_edgekit(*args, env=None, timeout=300, cwd=None, input=None):
    """Run the installed `edgekit` script in a subprocess, as a user does; returns CompletedProcess."""
    import subprocess

    return subprocess.run([edgekit_exe(), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=str(cwd or REPO), input=input)


def assert_one_error(proc, needle: str = "", code: int = 1) -> str:
    """A refused command: exit `code`, no traceback, exactly one `error:` line (containing `needle`)."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{out}"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, f"expected one error: line, got {len(lines)}:\n{proc.stderr}"
    assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def assert_usage_error(proc, needle: str = "") -> None:
    """A command-line mistake: typer's `Usage: ... Error: ...` block, exit 2, no traceback."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2:\n{out}"
    assert proc.stderr.startswith("Usage: edgekit"), proc.stderr
    assert "Error:" in proc.stderr, proc.stderr
    assert needle in proc.stderr, f"{needle!r} not in {proc.stderr!r}"


def run_main(capsys, *args):
    """`edge.app.cli.main` in this process (for long case lists where a subprocess per case would cost a
    torch import each); the result looks like a CompletedProcess, so `assert_one_error` reads it.
    An exception other than the CLI's own handling propagates and fails the test, as a traceback would."""
    import subprocess

    from edge.app.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)
