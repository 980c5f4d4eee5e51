"""Command-line mistakes, through the installed `edgekit`: typer's usage block and exit 2, never a
traceback, for every verb (issue 10, item 1). The verbs come from the app itself, so a new verb is
covered with no extra work."""
import pytest
import typer.main

from edge.app.cli import app
from tests.conftest import assert_usage_error, run_edgekit

VERBS = sorted(typer.main.get_command(app).commands)


def test_the_verb_list_is_read_from_the_app():
    for verb in ("run", "export", "compress", "train", "demo", "bench", "inspect", "build-engines"):
        assert verb in VERBS


@pytest.mark.parametrize("verb", VERBS)
def test_an_unknown_flag_is_a_usage_error_for_every_verb(verb):
    proc = run_edgekit(*verb.split(), "--no-such-flag")
    assert_usage_error(proc, "--no-such-flag")


def test_an_unknown_verb_is_a_usage_error():
    assert_usage_error(run_edgekit("bogus"), "No such command 'bogus'")


@pytest.mark.parametrize("args,needle", [
    (("run", "B", "--frames", "0"), "--frames"),
    (("bench", "B", "--frames", "-1"), "--frames"),
    (("run", "B", "--smooth", "2"), "--smooth"),
    (("export", "X.pt", "--out", "D"), "Missing option '--target'"),
    (("run",), "Missing argument"),
    (("run", "B", "--frames", "ten"), "--frames"),
])
def test_bad_values_are_usage_errors(args, needle):
    assert_usage_error(run_edgekit(*args), needle)


def test_help_still_exits_0():
    proc = run_edgekit("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: edgekit" in proc.stdout


def _leaf_commands():
    """Every command a user can type, with the group's subcommands (`data synth`)."""
    leaves = []
    for name, cmd in sorted(typer.main.get_command(app).commands.items()):
        subs = getattr(cmd, "commands", None)
        leaves += [f"{name} {sub}" for sub in sorted(subs)] if subs else [name]
    return leaves


@pytest.mark.parametrize("command", _leaf_commands())
def test_every_command_has_help_that_names_its_usage(command):
    proc = run_edgekit(*command.split(), "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: edgekit {command}"), proc.stdout[:200]
    assert "Traceback" not in proc.stderr
