"""`edgekit doctor`: what this machine has for edgekit's device side, and the one line that fixes each gap."""
from __future__ import annotations

from pathlib import Path

import typer

from edge.app.cli import app


@app.command("doctor")
def doctor_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (for scripts)."),
    root: Path = typer.Option(Path("/"), "--root", help="Read /etc, /proc, /sys, /dev and /usr under this folder "
                              "(a mounted device image); Python packages are always this interpreter's."),
):
    """Python, JetPack/L4T, GPU and compute capability, CUDA, TensorRT, ONNX Runtime and its providers,
    pycuda/cuda-python, OpenCV's video backends and cameras: what is here, and how to fix what is not.
    Exits 1 when something the device install needs is missing."""
    from runtime.doctor import diagnose, render

    report = diagnose(root)
    if as_json:
        from edge.app.cli._common import print_json

        print_json(report)
    else:
        print(render(report))
    if not report["ok"]:
        raise typer.Exit(1)
