"""`edgekit compress`: prune at several ratios, INT8 QAT, one checkpoint per variant and a sweep report."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.app.cli import app
from edge.app.cli._common import parse_floats, print_json


@app.command("compress")
def compress_cmd(
    checkpoint: Path = typer.Argument(..., help="FP32 edgekit checkpoint to compress (e.g. from `edgekit train`)."),
    data: Path = typer.Option(..., "--data", help="Dataset folder for fine-tuning, calibration and scoring."),
    prune: Optional[str] = typer.Option(None, "--prune", help="Fractions of weights to remove, e.g. 0.3,0.5,0.7 "
                                        "(default: the paper's 0.3,0.5,0.7; 2:4 fixes 0.5)."),
    method: str = typer.Option("structured", "--method", help="structured (channels, torch-pruning), "
                               "unstructured (global L1) or 2:4 (Ampere/Orin sparse tensor cores)."),
    int8: bool = typer.Option(True, "--int8/--no-int8", "--qat", help="Also write INT8 QAT (ModelOpt) variants."),
    epochs: int = typer.Option(3, "--finetune-epochs", help="Fine-tuning epochs after pruning and for QAT."),
    qat_epochs: Optional[int] = typer.Option(None, "--qat-epochs", help="INT8 fine-tuning epochs after "
                                             "calibration (default: --finetune-epochs; 0: calibration only)."),
    lr: float = typer.Option(5e-4, "--lr", help="Fine-tuning learning rate after pruning (QAT uses a tenth)."),
    batch_size: int = typer.Option(32, "--batch-size"),
    importance: str = typer.Option("l1", "--importance", help="Structured: l1 or l2 weight magnitude."),
    out: Path = typer.Option(..., "--out", help="Folder for the variant checkpoints and sweep.json/.md/.png."),
    latency_rounds: int = typer.Option(30, "--latency-rounds", help="Interleaved ONNX Runtime timing rounds."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
):
    """Prune (and INT8-QAT) a checkpoint at every ratio; write checkpoints and a sweep report to --out."""
    ratios = parse_floats(prune, "--prune", low=0.0, high=1.0) if prune else None
    from compress.sweep import SweepSettings, sweep
    from compress.report import to_markdown

    # SweepSettings refuses a bad request in one line before anything heavy loads
    settings = SweepSettings(ratios=ratios, method=method, int8=int8, finetune_epochs=epochs, qat_epochs=qat_epochs,
                             lr=lr, batch_size=batch_size, importance=importance, latency_rounds=latency_rounds)
    report = sweep(checkpoint, data, out, settings)
    if json_out:
        print_json(report)
    else:
        print(to_markdown(report))
