"""`edgekit targets`: the deployment targets export can build for, and what each can do."""
from __future__ import annotations

import typer

from edge.app.cli import app


@app.command("targets")
def targets_command(as_json: bool = typer.Option(False, "--json", help="Print the profiles as JSON.")) -> None:
    """List device profiles: compute capability, memory, precisions, DLA, JetPack, TensorRT, and what
    edgekit's runtime can do where the device ships less than it needs (the Jetson Nano)."""
    from targets import RUNTIME_PYTHON, RUNTIME_TENSORRT, list_targets

    rows = [t.to_dict() for t in list_targets()]
    if as_json:
        from edge.app.cli._common import print_json

        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    def span(v, unit=""):
        if not v:
            return "-"
        return f"{v[0]:g}{unit}" if v[0] == v[1] else f"{v[0]:g}-{v[1]:g}{unit}"

    table = Table(title="edgekit targets (memory budget = smallest variant)")
    for col in ("target", "CC", "memory", "precisions", "DLA", "JetPack", "TensorRT", "Python", "workspace"):
        table.add_column(col)
    for r in rows:
        trt = "-" if not r["tensorrt"] else (r["tensorrt"][0] if r["tensorrt"][0] == r["tensorrt"][1]
                                             else "-".join(r["tensorrt"]))
        mark = " *" if r["runtime_note"] else ""
        table.add_row(r["name"] + mark, r["compute_capability"] or "-", span(r["memory_gb"], " GB"),
                      ",".join(r["precisions"]), span(r["dla_cores"]), r["jetpack"] or "-", trt,
                      (r["python"] or "-") + mark, f"{r['workspace_mb']} MB" if r["workspace_mb"] else "-")
    Console(width=140).print(table)
    print(f"edgekit's device runtime needs Python >= {RUNTIME_PYTHON}; its tensorrt backend speaks TensorRT "
          f">= {RUNTIME_TENSORRT} (Python and TensorRT columns: what the device's JetPack ships).")
    for r in rows:
        if r["runtime_note"]:
            print(f"* {r['name']}: {r['runtime_note']}")
