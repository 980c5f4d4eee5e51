"""`edgekit export`, `edgekit inspect` and `edgekit build-engines`: checkpoints -> bundle -> engines."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from edge.app.cli import app
from edge.app.cli._common import print_json


MAX_PARITY_FRAMES = 1000    # all frames are held in memory at once; 1000 at 224x224 is ~200 MB


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


@app.command("export")
def export_cmd(
    checkpoints: List[Path] = typer.Argument(..., help="edgekit checkpoints (.pt), one per model."),
    target: str = typer.Option(..., "--target", help="Device profile (see `edgekit targets`), e.g. jetson."),
    precision: str = typer.Option("fp16", "--precision", help="fp32, fp16 or int8 (int8 needs QAT checkpoints)."),
    out: Path = typer.Option(..., "--out", help="Bundle directory to write (atomically)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    frames: Optional[int] = typer.Option(None, "--parity-frames", min=1, max=MAX_PARITY_FRAMES,
                                         help="Phantom frames for the parity check (default: 100 for "
                                         "classifiers, 32 for detectors)."),
    arch: Optional[str] = typer.Option(None, "--model", help="Zoo model a plain state_dict file holds "
                                       "(e.g. sononet16 for SonoNet16.pth); edgekit checkpoints name their own."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
):
    """Export checkpoints to ONNX at one precision, check parity, write a bundle for the target."""
    from targets import check_request

    check_request(target, precision)  # refuse before importing torch or touching --out
    from export.bundle import export_bundle

    manifest = export_bundle([str(c) for c in checkpoints], target, precision, out, force=force,
                             parity_frames=frames, log=_log, model=arch)
    if json_out:
        print_json(manifest)
    else:
        _print_rows(manifest, out)


def _print_rows(manifest: dict, where) -> None:
    from rich.console import Console
    from rich.table import Table

    from export.manifest import summary_rows

    rows = summary_rows(manifest)
    table = Table(title=f"bundle {where}: target {manifest.get('target')}, schema {manifest['schema_version']}")
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console(width=160).print(table)
    for w in manifest.get("warnings", []):
        print(f"warning: {w}")


@app.command("inspect")
def inspect_cmd(
    bundle: Path = typer.Argument(..., help="A bundle directory written by `edgekit export`."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
):
    """Show a bundle's models, precisions, sizes, parity and engines (files checked against sha256)."""
    from export.manifest import verify_files
    from runtime.bundle import load_bundle

    loaded = load_bundle(bundle, verify=False)  # the runtime's checks: schema, bounds, paths inside the bundle
    root, manifest = loaded.path, loaded.manifest
    verify_files(root, manifest)
    if json_out:
        print_json(manifest)
    else:
        _print_rows(manifest, root)


@app.command("build-engines")
def build_engines_cmd(
    bundle: Path = typer.Argument(..., help="A bundle directory, on the device that will run it."),
    workspace: Optional[int] = typer.Option(None, "--workspace", help="Builder workspace in MiB "
                                            "(default: the bundle target's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the updated manifest as JSON."),
):
    """Build TensorRT engines from the bundle's ONNX on this device and record them in the manifest."""
    from runtime.engines import build_engines

    manifest = build_engines(bundle, workspace_mb=workspace, log=_log)
    if json_out:
        print_json(manifest)
    else:
        for m in manifest["models"]:
            for e in m.get("engines", []):
                print(f"{m['name']}: {e['file']} ({e['gpu']}, CC {e['compute_capability']}, TensorRT {e['tensorrt']})")
