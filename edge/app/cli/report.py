"""`edgekit report` and `edgekit models`: what a model costs, and what the zoo holds."""
from __future__ import annotations

from typing import Optional

import typer

from edge.app.cli import app
from edge.app.cli._common import parse_size, print_json


@app.command("report")
def report_cmd(
    model: str = typer.Argument(..., help="A zoo model name (see `edgekit models`) or a checkpoint file."),
    task: Optional[str] = typer.Option(None, help="Task for a zoo model: plane, orientation, anatomy, detection, ..."),
    input: Optional[str] = typer.Option(None, "--input", help="Input size HEIGHTxWIDTH, e.g. 224x224."),
    arch: Optional[str] = typer.Option(None, "--model", help="Zoo model a plain state_dict file holds."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    layers: str = typer.Option("20", help="Per-layer rows to show: a number or 'all'."),
):
    """Parameters, MACs, weight memory (FP32/FP16/INT8), peak activations and a per-layer table."""
    from edge.ml.report import format_report, report

    result = report(model, task=task, input_size=parse_size(input), model=arch)
    if json_out:
        print_json(result)
    else:
        print(format_report(result, None if layers == "all" else int(layers)))


@app.command("models")
def models_cmd(
    pattern: str = typer.Argument("*", help="Shell-style pattern, e.g. 'resnet*'."),
    task: Optional[str] = typer.Option(None, help="Only models serving this task."),
):
    """List the model zoo: name, family, task kinds, default input size."""
    from edge.ml.models import get_entry, list_models
    from edge.core.tasks import get_task

    kind = get_task(task).kind if task else None
    for name in list_models(pattern, kind=kind):
        e = get_entry(name)
        print(f"{name:<24} {e.family:<12} {','.join(e.tasks):<26} {e.default_size[0]}x{e.default_size[1]:<6} "
              f"{e.description}")
