"""The `edgekit` command.

Each verb lives in its own module here and registers itself on `app`; a command parses its arguments,
calls one library function and prints. Heavy packages (torch, onnx, tensorrt) are imported inside the
command bodies, so `edgekit --help` and `edgekit run` work on a device without torch.

User errors (`EdgekitError`) print one line and exit 1; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from edge.errors import EdgekitError

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgekit` script: run the app, turning user errors into one line and exit 1."""
    try:
        app(args=argv, standalone_mode=False)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer/click's own exits (--help, usage errors)
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # click usage errors arrive as ClickException subclasses
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
