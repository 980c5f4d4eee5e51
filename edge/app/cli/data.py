"""`edgekit data ...`: make and inspect datasets."""
from __future__ import annotations

import re

import typer

from edge.app.cli import app
from edge.core.errors import BadInputError

data_app = typer.Typer(help="Make and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


MAX_SIDE = 2048            # a phantom frame side; FPUS23's own frames are 389x672
MAX_FRAMES = 100_000       # ~10 GB of PNGs at the default size
MAX_STREAMS = 256          # edge.ml.data.synth.MAX_STREAMS (not imported: the CLI entry stays light)


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", text)
    if not m or not all(16 <= int(v) <= MAX_SIDE for v in m.groups()):
        raise BadInputError(f"--size {text!r} is not HEIGHTxWIDTH with each side 16..{MAX_SIDE}; "
                            f"pass e.g. --size 389x672 (FPUS23's frame size)")
    return int(m.group(1)), int(m.group(2))


@data_app.command("synth")
def synth_cmd(
    out: str = typer.Argument(..., help="New (or empty) folder to write the dataset into."),
    frames: int = typer.Option(2000, "--frames", min=1, max=MAX_FRAMES,
                               help="Frames in all, shared between the streams."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="First sweep seed; stream k is sweep seed+k."),
    size: str = typer.Option("389x672", "--size", help=f"Frame size HEIGHTxWIDTH (each side 16..{MAX_SIDE})."),
    streams: int = typer.Option(0, "--streams", min=0, max=MAX_STREAMS,
                                help=f"Number of streams, one fetus each (0: one per ~100 frames, 4..{MAX_STREAMS})."),
) -> None:
    """Write phantom sweeps in the FPUS23 layout: frames, CVAT annotations and the plane folder."""
    from edge.ml.data.synth import synth

    summary = synth(out, frames=frames, seed=seed, size=_size(size), streams=streams or None)
    planes = ", ".join(f"{k} {v}" for k, v in summary["planes"].items())
    print(f"wrote {summary['frames']} frames in {len(summary['streams'])} streams to {summary['out']} ({planes})")
