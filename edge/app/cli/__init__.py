"""The `edgekit` command.

Each verb lives in its own module here and registers itself on `app`; a command parses its arguments,
calls one library function and prints. Heavy packages (torch, onnx, tensorrt) are imported inside the
command bodies, so `edgekit --help` and `edgekit run` work on a device without torch.

User errors (`EdgekitError`) print one line and exit 1; anything else is a bug and keeps its traceback.

The device verbs run on Python 3.8 (what JetPack 5 ships); the host side (training, compression,
export: `HOST_PACKAGES`, the `train` extra) needs Python >= `HOST_PYTHON`, as the extra's markers in
pyproject.toml say. On an older Python a verb that reaches the host side says so in one line.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import sys

import typer

from edge.core.errors import EdgekitError

app = typer.Typer(
    name="edgekit",
    help="Fetal-ultrasound AI from a PyTorch checkpoint to a real-time loop on an NVIDIA Jetson.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register_commands() -> None:
    """Import every command module in this package; each adds its verbs to `app`."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_register_commands()

HOST_PYTHON = (3, 10)  # the host side; every dependency of pyproject's `train` extra carries this marker
HOST_PACKAGES = ("edge.ml", "export", "compress")  # what the device side never imports (import-linter)


def _reached_host_side(exc: BaseException) -> bool:
    """Whether `exc` was raised in a host package's code, on a Python the host side does not support."""
    if sys.version_info[:2] >= HOST_PYTHON:
        return False
    tb = exc.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        if any(name == p or name.startswith(p + ".") for p in HOST_PACKAGES):
            return True
        tb = tb.tb_next
    return False


def _host_side_needs_newer_python(verb) -> str:
    """The one line a host verb prints on a Python older than HOST_PYTHON (a device install)."""
    need = ".".join(map(str, HOST_PYTHON))
    return (f"error: `edgekit {verb}` is host-side (training, compression, export: the train extra) and needs "
            f"Python >= {need}; this Python {sys.version.split()[0]} runs edgekit's device verbs only (run, bench, bench-archs, "
            f"inspect, build-engines, targets, doctor): run it on a host with Python >= {need} and "
            f"pip install -e \".[train]\"")


_EXTRA_MARKER = re.compile(r"""^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;.*\bextra\s*==\s*["']([^"']+)["']""")


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def extra_of() -> dict[str, str]:
    """{top-level module: the extra of pyproject.toml that installs it}, from the installed edgekit's metadata.

    A host verb run on a device install (no torch) is a missing install step, said in one line, not an
    ImportError traceback. Distribution names map to the modules they install where installed
    (`scikit-learn` -> `sklearn`); a distribution that is not installed (the very case this is for) maps
    to its own name as a module (`torch-pruning` -> `torch_pruning`). Without edgekit's metadata (run
    from a bare source tree) the table is empty and a missing module keeps its traceback.
    Read only when a module is missing: scanning every installed distribution takes a third of a second.
    """
    from importlib import metadata

    try:
        requires = metadata.requires("edgekit") or []
    except metadata.PackageNotFoundError:
        return {}
    modules: dict[str, list[str]] = {}
    for module, dists in _packages_distributions(metadata).items():
        for dist in dists:
            modules.setdefault(_canonical(dist), []).append(module)
    table: dict[str, str] = {}
    for req in requires:
        m = _EXTRA_MARKER.match(req)
        if m:
            dist, extra = _canonical(m.group(1)), m.group(2)
            for module in modules.get(dist) or [dist.replace("-", "_")]:
                table.setdefault(module, extra)
    return table


def _packages_distributions(metadata) -> dict:
    """{module: [distribution, ...]}: `importlib.metadata.packages_distributions` (Python 3.10+), or the same
    table from each distribution's top_level.txt or files on Python 3.8/3.9 (a device's Python)."""
    if hasattr(metadata, "packages_distributions"):
        return metadata.packages_distributions()
    table: dict = {}
    for dist in metadata.distributions():
        top = (dist.read_text("top_level.txt") or "").split() or {
            f.parts[0] if len(f.parts) > 1 else f.name[:-len(f.suffix)] for f in dist.files or () if f.suffix == ".py"}
        for module in top:
            table.setdefault(module, []).append(dist.metadata["Name"])
    return table


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgekit` script: run the app, turning user errors into one line and exit 1.

    Typer runs in standalone mode, so usage mistakes (an unknown verb or flag, a value out of range)
    print typer's own `Usage: ... Error: ...` block and exit 2 whichever click typer carries (0.26
    uses click's exceptions, 0.29 its vendored copy); only exceptions from the command bodies reach
    the handlers below.
    """
    verb = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), "VERB")
    try:
        app(args=argv, prog_name="edgekit", standalone_mode=True)
    except SystemExit as exc:  # standalone mode always ends here: 0, a usage error (2), Ctrl-C (130)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        extra = extra_of().get(module)
        if _reached_host_side(exc) or (extra == "train" and sys.version_info[:2] < HOST_PYTHON):
            print(_host_side_needs_newer_python(verb), file=sys.stderr)
            return 1
        if extra is None:
            raise
        print(f"error: this command needs {module}, which this install lacks; install the {extra} extra: "
              f"pip install -e \".[{extra}]\"", file=sys.stderr)
        return 1
    except Exception as exc:  # the host side's own code on a Python it does not support (3.10 syntax, APIs)
        if _reached_host_side(exc):
            print(_host_side_needs_newer_python(verb), file=sys.stderr)
            return 1
        raise
    return 0

if __name__ == "__main__":
    sys.exit(main())
