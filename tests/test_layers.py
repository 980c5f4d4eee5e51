"""The layering is checked by a tool, not by prose: import-linter's contracts in pyproject.toml hold,
and docs/ARCHITECTURE.md states the same layers (this test fails when the two disagree)."""
import re
import subprocess
import sys
import tomllib

from tests.conftest import REPO


def _contracts() -> dict:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_import_linter_contracts_hold():
    lint = [str(REPO / ".venv" / "bin" / "lint-imports")] if (REPO / ".venv/bin/lint-imports").exists() else \
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                               "sys.exit(lint_imports_command())"]
    proc = subprocess.run(lint, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout, proc.stdout


def test_architecture_md_states_the_contracts_layers():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    block = re.search(r"<!-- layers:.*?-->\n```\n(.*?)```", text, re.S)
    assert block, "docs/ARCHITECTURE.md has no layers block"
    documented = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    assert documented == _contracts()["layers"]["layers"], "docs/ARCHITECTURE.md and pyproject.toml disagree"


def test_the_device_side_contract_forbids_torch_and_the_host_stages():
    device = _contracts()["device"]
    assert set(device["source_modules"]) == {"runtime", "targets", "edge.core"}
    for forbidden in ("torch", "export", "compress", "edge.ml"):
        assert forbidden in device["forbidden_modules"], forbidden
