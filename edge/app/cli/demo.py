"""`edgekit demo`: the main job on the phantom, from training to the runtime loop, in one command."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from edge.app.cli import app
from edge.app.cli._common import print_json
from edge.app.cli.run import SERVE_HELP, ServeCommand, check_serve


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet_libraries() -> None:
    """Library chatter that says nothing to a demo's user (CUDA absent on a CPU box, ModelOpt's optional
    extras, torch.jit's deprecation inside ModelOpt, FP16 rounding of tiny weights in the fallback ONNX);
    our own errors and warnings still show."""
    import logging
    import warnings

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    for module in ("modelopt", "torch.jit", "torch.onnx", "onnxconverter_common"):
        warnings.filterwarnings("ignore", module=module)


@app.command("demo", cls=ServeCommand)
def demo_cmd(
    out: Path = typer.Option(Path("edgekit-demo"), "--out", help="Folder for everything the demo writes "
                             "(new or empty)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny frames and few steps (about a minute): checks "
                               "the chain, the figures mean nothing."),
    frames: Optional[int] = typer.Option(None, "--frames", "-n", help="Frames the runtime loop processes "
                                         "(default 300; --quick 12)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out, replacing files."),
    seed: int = typer.Option(0, "--seed", help="Phantom seed: training frames; seed+1 held out; seed+2 the sweep."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of Markdown."),
    serve: Optional[str] = typer.Option(None, "--serve", metavar="[HOST:PORT]",
                                        help=SERVE_HELP + " (the runtime loop step)"),
    serve_token: Optional[str] = typer.Option(None, "--serve-token", metavar="T",
                                              help="the token --serve checks (see `edgekit run --help`)"),
):
    """Phantom data -> train the four FPUS23 models -> prune + INT8 -> bundles -> runtime loop, with reports."""
    from export.atomic import check_destination

    check_serve(serve, serve_token)
    if serve is not None:          # no aiohttp: say so now, not after minutes of training
        from runtime.serve import require_aiohttp

        require_aiohttp()
    check_destination(out, force)  # refuse before torch loads (without torch: edge.app.cli.main says what to install)
    _quiet_libraries()
    from edge.app.demo import demo
    from edge.app.demo.text import render

    report = demo(out, quick=quick, force=force, frames=frames, seed=seed, log=_progress, serve=serve,
                  serve_token=serve_token)
    if json_out:
        print_json(report)
    else:
        print(render(report))
