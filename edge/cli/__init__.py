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


# Top-level modules an extra of pyproject.toml brings: a host verb run on a device install (no torch)
# is a missing install step, said in one line, not an ImportError traceback.
EXTRA_OF = {**dict.fromkeys(("torch", "torchvision", "torch_pruning", "modelopt", "onnx", "onnxconverter_common",
                             "onnxslim", "pycocotools", "matplotlib", "sklearn", "tqdm"), "train"),
            "pycuda": "jetson"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgekit` script: run the app, turning user errors into one line and exit 1.

    Typer runs in standalone mode, so usage mistakes (an unknown verb or flag, a value out of range)
    print typer's own `Usage: ... Error: ...` block and exit 2 whichever click typer carries (0.26
    uses click's exceptions, 0.29 its vendored copy); only exceptions from the command bodies reach
    the handlers below.
    """
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
        if module not in EXTRA_OF:
            raise
        extra = EXTRA_OF[module]
        print(f"error: this command needs {module}, which this install lacks; install the {extra} extra: "
              f"pip install -e \".[{extra}]\"", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
