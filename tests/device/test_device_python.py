"""The device side runs on Python 3.8 (JetPack 5's), the host side says in one line that it needs 3.10.

Run here (Python 3.11) these are static checks plus the host-side message simulated; `.ci/run` runs them
again in a Python 3.8 venv, where every device module is really imported and every verb's --help is
really built by typer (which evaluates the commands' annotations at run time, `from __future__ import
annotations` or not)."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, no_torch_environ

DEVICE_DIRS = ["runtime", "targets", "edge/core", "edge/app/cli"]
DEVICE_FILES = sorted(p for d in DEVICE_DIRS for p in (REPO / d).rglob("*.py")) + [REPO / "edge" / "__init__.py",
                                                                                  REPO / "edge" / "app" / "__init__.py"]
# Runtime APIs newer than 3.8 (attribute or module name -> the Python that added it)
NEWER_ATTRS = {"removeprefix": "3.9", "removesuffix": "3.9", "is_relative_to": "3.9", "with_stem": "3.9",
               "randbytes": "3.9", "lcm": "3.9", "packages_distributions": "3.10", "bit_count": "3.10",
               "pairwise": "3.10", "aiter": "3.10", "anext": "3.10", "to_thread": "3.9"}
NEWER_MODULES = {"tomllib": "3.11", "zoneinfo": "3.9", "graphlib": "3.9"}
NEWER_NAMES = {("functools", "cache"): "3.9", ("typing", "TypeAlias"): "3.10", ("typing", "ParamSpec"): "3.10",
               ("typing", "TypeGuard"): "3.10", ("typing", "Concatenate"): "3.10", ("typing", "Self"): "3.11",
               ("datetime", "UTC"): "3.11", ("typing", "Annotated"): "3.9"}
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def _annotations(tree) -> list:
    """Every annotation node of the module (arguments, returns, annotated assignments)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    found.append((node, a.annotation))
            if node.returns is not None:
                found.append((node, node.returns))
        elif isinstance(node, ast.AnnAssign):
            found.append((None, node.annotation))
    return found


def _typer_command(func) -> bool:
    """A function typer turns into a command, whose annotations it evaluates at run time."""
    return func is not None and any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                                    and d.func.attr in ("command", "callback") for d in func.decorator_list)


def _newer_than_38(node) -> str | None:
    """Why evaluating `node` (an expression) at run time needs Python > 3.8, or None."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and sub.value.id in BUILTIN_GENERICS:
            return f"{sub.value.id}[...] (3.9)"
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.BitOr):
            return "X | Y between types (3.10)"
    return None


def _problems(path) -> list:
    source = path.read_text()
    tree = ast.parse(source, filename=str(path), feature_version=(3, 8))  # match, parenthesised with-items...
    lazy = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
               for n in tree.body)
    guarded = set(re.findall(r"hasattr\([^,]+,\s*[\"'](\w+)[\"']\)", source))  # feature-detected on purpose
    rel = path.relative_to(REPO) if REPO in path.parents else path.name
    where = lambda n: f"{rel}:{n.lineno}"
    problems, in_annotation = [], set()
    for func, ann in _annotations(tree):
        in_annotation.update(id(n) for n in ast.walk(ann))
        if not lazy or _typer_command(func):
            why = _newer_than_38(ann)
            if why:
                problems.append(f"{where(ann)}: annotation evaluated at run time uses {why}")
    for node in ast.walk(tree):
        if id(node) in in_annotation:
            continue
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in BUILTIN_GENERICS:
            problems.append(f"{where(node)}: {node.value.id}[...] at run time (3.9)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "zip" and any(k.arg == "strict" for k in node.keywords):
                problems.append(f"{where(node)}: zip(strict=) (3.10)")
            if node.func.id in ("isinstance", "issubclass") and len(node.args) == 2 and _newer_than_38(node.args[1]):
                problems.append(f"{where(node)}: {node.func.id} with X | Y (3.10)")
        if isinstance(node, ast.Call) and any(k.arg in ("slots", "kw_only") for k in node.keywords) \
                and "dataclass" in ast.dump(node.func):
            problems.append(f"{where(node)}: dataclass(slots/kw_only) (3.10)")
        if isinstance(node, ast.Attribute) and node.attr in NEWER_ATTRS and node.attr not in guarded:
            problems.append(f"{where(node)}: .{node.attr} ({NEWER_ATTRS[node.attr]})")
        if isinstance(node, ast.Import):
            problems += [f"{where(node)}: import {a.name} ({NEWER_MODULES[a.name]})" for a in node.names
                         if a.name in NEWER_MODULES]
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module in NEWER_MODULES:
                problems.append(f"{where(node)}: from {node.module} ({NEWER_MODULES[node.module]})")
            problems += [f"{where(node)}: from {node.module} import {a.name} ({NEWER_NAMES[(node.module, a.name)]})"
                         for a in node.names if (node.module, a.name) in NEWER_NAMES]
    return problems


def test_device_code_is_python_3_8():
    """Syntax (parsed as 3.8), annotations evaluated at run time (typer's commands, modules without the
    __future__ import), builtin generics, X | Y in isinstance, zip(strict=), dataclass(slots/kw_only),
    and APIs newer than 3.8 (str.removeprefix, functools.cache, importlib.metadata.packages_distributions...)."""
    problems = [p for path in DEVICE_FILES for p in _problems(path)]
    assert not problems, "\n".join(problems)


def test_the_scan_sees_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import typer\nfrom functools import cache\nAlias = tuple[int, str]\n"
                   "def f(x):\n    return isinstance(x, int | str) or 'a'.removeprefix('b') or zip([], strict=True)\n"
                   "@app.command('v')\ndef v(n: int | None = None):\n    pass\n")
    found = " ".join(_problems(bad))
    for needle in ("functools import cache", "tuple[...] at run time", "isinstance with X | Y", ".removeprefix",
                   "zip(strict=)", "annotation evaluated at run time"):
        assert needle in found, needle


def test_every_device_module_imports():
    """On the device's Python this is the real check: module-level code and annotations run on import."""
    for package in ("runtime", "targets", "edge.core", "edge.app.cli"):
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            importlib.import_module(info.name)


def test_every_verb_has_help_on_this_python(capsys):
    """typer evaluates every command's annotations when it builds the CLI: on 3.8 `str | None` would
    break every verb, `edgekit run` included."""
    from edge.app.cli import app, main

    verbs = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands] + \
        [g.name for g in app.registered_groups]
    assert {"run", "bench", "inspect", "build-engines", "targets", "doctor"} <= set(verbs)
    for verb in verbs:
        assert main([verb, "--help"]) == 0, verb
        assert "Usage: edgekit" in capsys.readouterr().out


HOST_CALLS = [("report", "resnet8"), ("export", "x.pt", "--target", "cpu", "--out", "o")]


@pytest.mark.parametrize("args", HOST_CALLS, ids=[a[0] for a in HOST_CALLS])
def test_a_host_verb_on_an_older_python_says_so_in_one_line(args, tmp_path):
    """On 3.8 for real; on a newer Python by raising the floor in a process without torch."""
    from edge.app.cli import HOST_PYTHON

    floor = HOST_PYTHON if sys.version_info[:2] < HOST_PYTHON else (sys.version_info[0], sys.version_info[1] + 1)
    code = (f"import sys, edge.app.cli as cli; cli.HOST_PYTHON = {floor!r}; "
            f"sys.exit(cli.main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=str(tmp_path),
                          env=no_torch_environ(), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    need = ".".join(map(str, floor))
    assert line.startswith(f"error: `edgekit {args[0]}` is host-side")
    assert f"needs Python >= {need}" in line
    assert "run, bench, bench-archs, inspect, build-engines, targets, doctor" in line
    assert not list(tmp_path.iterdir())  # nothing written


def test_pyproject_keeps_the_device_on_3_8_and_marks_the_host_side():
    """requires-python is the runtime's floor; every dependency of the train extra carries HOST_PYTHON's marker,
    so `pip install ".[train]"` on 3.8 installs nothing it cannot run and the host verbs say why."""
    from edge.app.cli import HOST_PYTHON
    from targets import RUNTIME_PYTHON

    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=([0-9.]+)"', text, re.M).group(1) == RUNTIME_PYTHON
    train = re.search(r"^train = \[\n(.*?)^\]", text, re.M | re.S).group(1)
    deps = [line.strip().rstrip(",") for line in train.splitlines() if line.strip().startswith('"')]
    assert deps
    marker = "python_version >= '{}.{}'".format(*HOST_PYTHON)
    unmarked = [d for d in deps if marker not in d]
    assert not unmarked, f"train extra entries without `; {marker}`: {unmarked}"


def test_extra_of_reads_the_metadata_without_packages_distributions(monkeypatch):
    """importlib.metadata.packages_distributions is 3.10+: on 3.8 the table is built from each distribution."""
    from importlib import metadata

    from edge.app.cli import extra_of

    try:
        metadata.requires("edgekit")
    except metadata.PackageNotFoundError:
        pytest.skip("edgekit is not installed here (a bare source tree)")
    full = extra_of()
    monkeypatch.delattr(metadata, "packages_distributions", raising=False)
    assert extra_of() == full
    assert full["torch"] == "train"
    assert full["pycuda"] == "jetson"
