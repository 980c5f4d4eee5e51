"""`edgekit data ...`: make and inspect datasets."""
from __future__ import annotations

import re

import typer

from edge.cli import app
from edge.errors import BadInputError

data_app = typer.Typer(help="Make and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or min(int(m.group(1)), int(m.group(2))) < 16:
        raise BadInputError(f"--size {text!r} is not HEIGHTxWIDTH (each at least 16), e.g. 389x672")
    return int(m.group(1)), int(m.group(2))


@data_app.command("synth")
def synth_cmd(
    out: str = typer.Argument(..., help="New (or empty) folder to write the dataset into."),
    frames: int = typer.Option(2000, "--frames", help="Frames in all, shared between the streams."),
    seed: int = typer.Option(0, "--seed", help="First sweep seed; stream k is sweep seed+k."),
    size: str = typer.Option("389x672", "--size", help="Frame size HEIGHTxWIDTH."),
    streams: int = typer.Option(0, "--streams", help="Number of streams (0: one per ~100 frames, 4..16)."),
) -> None:
    """Write phantom sweeps in the FPUS23 layout: frames, CVAT annotations and the plane folder."""
    from edge.data.synth import synth

    if frames < 1:
        raise BadInputError(f"--frames {frames}: need at least 1")
    summary = synth(out, frames=frames, seed=seed, size=_size(size), streams=streams or None)
    planes = ", ".join(f"{k} {v}" for k, v in summary["planes"].items())
    print(f"wrote {summary['frames']} frames in {len(summary['streams'])} streams to {summary['out']} ({planes})")
