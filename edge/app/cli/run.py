"""`edgekit run` and `edgekit bench`: the on-device loop and its benchmark.

Both import `runtime` inside the command body, and `runtime` never imports torch, so these commands
work on a Jetson with only the base install.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand

from edge.app.cli import app

SERVE_HELP = ("show the loop live in a browser: a read-only web page on [HOST:PORT] (alone: 127.0.0.1:8080, "
              "this machine only; PORT 0 picks a free one) with the overlaid frame, every model's answer, FPS, "
              "latency, power and the plane-found events; any other address needs the token it prints "
              "(or --serve-token); needs the serve extra: pip install \"edgekit[serve]\"")
_ADDRESS = re.compile(r"\d+|[^/\\]*:[^/\\]*|\[[^/\\]*")     # a port, or a colon and no path


def serve_value_optional(args: list[str]) -> list[str]:
    """`--serve` may stand alone: give it the empty value (the default address) unless the next word
    is an address (PORT, HOST:PORT, :PORT, [IPv6]:PORT). Typer has no option with an optional value."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--":
            out.extend(args[i + 1:])
            break
        if arg == "--serve" and (i + 1 == len(args) or not _ADDRESS.fullmatch(args[i + 1])):
            out.append("")
    return out


class ServeCommand(TyperCommand):
    """A command whose `--serve` option may be given without a value (see `serve_value_optional`)."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, serve_value_optional(list(args)))


def check_serve(serve: Optional[str], serve_token: Optional[str]) -> None:
    """A malformed --serve or --serve-token is a usage error (exit 2), before anything runs."""
    from edge.core.errors import BadInputError

    if serve_token is not None and serve is None:
        raise typer.BadParameter("--serve-token needs --serve", param_hint="'--serve-token'")
    if serve is None:
        return
    from runtime.serve import check_token, parse_address

    try:
        parse_address(serve)
        if serve_token is not None:
            check_token(serve_token)
    except BadInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--serve-token'" if "token" in str(exc) else "'--serve'") from None


@app.command("run", cls=ServeCommand)
def run_command(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="bundle directory (manifest.json + models)"),
    source: str = typer.Option("phantom", "--source", "-s",
                               help="phantom[:SEED], usb:N, /dev/videoN, a video file or an image folder; "
                                    "options as ?key=value&... (e.g. usb:0?width=1280&height=720)"),
    backend: str = typer.Option("auto", "--backend", "-b",
                                help="auto, onnxruntime, onnxruntime-cuda, onnxruntime-trt, tensorrt"),
    headless: bool = typer.Option(False, "--headless", help="no window even if a display exists"),
    frames: Optional[int] = typer.Option(None, "--frames", "-n", min=1, help="stop after N frames"),
    json_out: Optional[str] = typer.Option(
        None, "--json-out", metavar="F",
        help="write one strict-JSON line per frame to F ('-': stdout), then a summary line; NaN/inf are "
             "written as null; F's folder must exist; an existing F is replaced only by a run that "
             "produced frames (F is opened at the first frame); on a full disk F keeps its complete lines"),
    smooth: float = typer.Option(0.0, "--smooth", min=0.0, max=0.99,
                                 help="confidence smoothing: weight of the past in [0, 1); 0 = off"),
    record: Optional[Path] = typer.Option(None, "--record", metavar="DIR",
                                          help="save every processed frame as PNG in DIR (created if needed)"),
    enter: Optional[float] = typer.Option(None, "--enter", metavar="P",
                                          help="plane hysteresis: enter a plane when its smoothed confidence "
                                               "is >= P for min_frames frames (default: the bundle's, 0.6)"),
    leave: Optional[float] = typer.Option(None, "--leave", metavar="P",
                                          help="plane hysteresis: leave it when that confidence drops below P "
                                               "(<= --enter; default: the bundle's, 0.4)"),
    serve: Optional[str] = typer.Option(None, "--serve", metavar="[HOST:PORT]", help=SERVE_HELP),
    serve_token: Optional[str] = typer.Option(None, "--serve-token", metavar="T",
                                              help="the token --serve checks on every request (12+ characters of "
                                                   "A-Z a-z 0-9 . _ ~ -; default: $EDGEKIT_SERVE_TOKEN, or one made "
                                                   "and printed when the address is not 127.0.0.1)"),
) -> None:
    """Run every model of BUNDLE on a live source in real time; print a summary at the end.

    A plane model (its manifest's postprocess has a hysteresis block, or --enter/--leave is given)
    also reports a stable plane state per frame and a "plane_found" event per crossing, with its
    best frame: a JSONL row of its own, a console line, on the overlay and in the summary.

    Ctrl-C, SIGTERM (systemctl stop) and SIGHUP stop it after the current frame: the summary is
    still written (to --json-out and the console), then the exit status is 128 + the signal's
    number: 130 (Ctrl-C), 143 (SIGTERM), 129 (SIGHUP). 0: the source ended or --frames were done;
    1: an error, on one `error:` line.

    On a Jetson, board power (INA3221), energy per frame and the hottest thermal zone go into each
    JSONL row ("power"), the summary and the --serve page.
    """
    check_serve(serve, serve_token)
    import runtime
    from runtime.power import format_power
    from runtime.stats import format_summary

    summary = runtime.run(bundle, source=source, backend=backend, headless=headless, frames=frames,
                          json_out=json_out, smooth=smooth, record=record,
                          enter=enter, leave=leave, serve=serve, serve_token=serve_token)
    power = format_power(summary)
    typer.echo(format_summary(summary) + (f"\n{power}" if power else ""), err=json_out == "-")
    _exit_for_signal(summary.get("signal"))


def _exit_for_signal(name: Optional[str]) -> None:
    """Exit 128 + the number of the signal that stopped the loop, as a shell reports a killed job."""
    if name:
        import signal

        raise typer.Exit(128 + signal.Signals[name].value)


@app.command("bench")
def bench_command(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="bundle directory (manifest.json + models)"),
    backends: str = typer.Option("auto", "--backends", help="comma-separated backend names, e.g. onnxruntime,tensorrt"),
    frames: int = typer.Option(200, "--frames", "-n", min=1, help="frames per backend"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="F",
                                       help="write the JSON report to F (its folder must exist; written "
                                            "whole or not at all)"),
    source: str = typer.Option("phantom", "--source", "-s",
                               help="frame source, as for `edgekit run`: a video file at any resolution "
                                    "(scan.mp4, ?realtime=0 unpaced), phantom?width=1920&height=1080, ..."),
) -> None:
    """Run the same pipeline for N frames per backend, side by side; print and write JSON.

    Per backend, one line with the loop's FPS, end-to-end latency and bare inference, and one with
    where each frame's time went, p50/p95 in ms: capture (the source's read, on its own thread),
    queued (waiting for the frame before to finish), hand-off (the rest of capture to inference),
    preprocess, infer, postprocess, pipeline, outputs, and fixed (hand-off + postprocess + pipeline +
    outputs: the loop's cost beyond preprocessing and inference).

    Ctrl-C, SIGTERM and SIGHUP end it after the backend in progress, with the report so far written;
    the exit status is then 128 + the signal's number (130, 143, 129)."""
    import runtime
    from runtime.outputs import strict_json
    from runtime.stats import format_breakdown

    names = [n.strip() for n in backends.split(",") if n.strip()]
    report = runtime.bench(bundle, backends=names, frames=frames, out=out, source=source)
    for name, entry in report["backends"].items():
        if "error" in entry:
            typer.echo(f"{name}: not run: {entry['error']}")
            continue
        loop = entry["loop"]
        shape = "x".join(str(v) for v in entry.get("frame_shape", [])[1::-1])
        typer.echo(f"{name} -> {entry['backend']}: {loop['fps']:.1f} FPS on {shape} frames, end-to-end p50 "
                   f"{loop['latency_ms'].get('p50', float('nan')):.2f} ms, bare inference p50 sum "
                   f"{entry['bare_infer_sum_p50_ms']:.2f} ms ({entry.get('bare_infer_fps', float('nan')):.1f} FPS), "
                   f"ratio {entry.get('e2e_over_bare_p50', float('nan')):.2f}")
        if loop.get("breakdown_ms"):
            typer.echo(f"  per frame {format_breakdown(loop['breakdown_ms'])}")
    if out is None:
        typer.echo(strict_json(report, indent=2))
    _exit_for_signal(report.get("signal"))
