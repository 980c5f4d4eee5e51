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


@pytest.fixture
def no_torch_env(tmp_path) -> dict:
    """Environment for a subprocess in which `import torch` fails, like a plain `pip install edgekit`."""
    site = tmp_path / "no_torch_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCK_TORCH)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_cli(*args, env=None, timeout=300):
    """Run the installed `edgekit` entry point in a subprocess; returns CompletedProcess."""
    import subprocess

    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=str(REPO))
