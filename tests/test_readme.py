"""The README's commands are the ones CI runs: a missing install step fails CI first."""
import re

from tests.conftest import REPO


def _commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", text, re.S).group(1)
    return [l for l in block.splitlines() if l.strip() and not l.startswith("#")]


def test_readme_quickstart_is_two_commands_and_ci_runs_the_test_one():
    cmds = _commands()
    assert len(cmds) == 2
    ci = (REPO / ".ci" / "run").read_text()
    assert cmds[1] in ci, "the README's test command and .ci/run have drifted apart"
    assert "pytest" in cmds[1]
    assert "pip install" in cmds[0]


def test_ci_stops_when_the_readme_test_command_fails():
    """`set -e` ignores a failure inside an && list: a failing ruff would skip pytest and CI would go on."""
    test_cmd = _commands()[1]
    line = next(l for l in (REPO / ".ci" / "run").read_text().splitlines() if test_cmd in l)
    assert line.rstrip().endswith("|| exit 1"), line
