"""`edgekit train` and `edgekit eval`: a data folder to a checkpoint, and a checkpoint's test figures."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from edge.app.cli import app
from edge.app.cli._common import parse_size, print_json
from edge.core.errors import BadInputError, require_file


@app.command("train")
def train_cmd(
    task: str = typer.Option(..., "--task", help="FPUS23: plane, orientation, anatomy, detection; also fetal_planes (FETAL_PLANES_DB), standard_plane (SonoNet); see edge.core.tasks."),
    model: str = typer.Option(..., "--model", help="Zoo model, e.g. resnet8 or fasterrcnn_resnet10 (`edgekit models`)."),
    data: str = typer.Option(..., "--data", help="Dataset folder: FPUS23 streams (`edgekit data synth`), plane folders, ..."),
    out: str = typer.Option(..., "--out", help="Checkpoint file to write, e.g. runs/plane.pt."),
    epochs: int = typer.Option(15, "--epochs", help="Epochs (FPUS23 recipe: 15)."),
    input: Optional[str] = typer.Option(None, "--input", help="Input size HEIGHTxWIDTH (default: the model's)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Frames per step."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (x0.1 for the last quarter of the epochs, or after 20)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the initial weights and the shuffling."),
    balance: Optional[bool] = typer.Option(None, "--balance/--no-balance", help="Single-label tasks: sample "
                                           "each class by the square root of its frame count (sweeps show a "
                                           "diagnostic plane in under a tenth of frames). Default: on when the largest training "
                                           "class has over 1.5x the frames of the smallest."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop after this many epochs without a "
                                           "better validation figure (the best epoch is kept either way)."),
    json_out: bool = typer.Option(False, "--json", help="Print the test metrics as one JSON object."),
):
    """Train a zoo model on a dataset (split by stream/patient), test it, save a checkpoint."""
    if epochs < 1 or batch_size < 1 or not lr > 0 or (patience is not None and patience < 1):
        raise BadInputError(f"--epochs {epochs}, --batch-size {batch_size}, --lr {lr} and --patience {patience} "
                            f"must be positive")
    from edge.core.tasks import SINGLE_LABEL, get_task

    kind = get_task(task).kind
    if balance and kind != SINGLE_LABEL:
        raise BadInputError(f"--balance is for single-label tasks; {task} is a {kind} task: drop --balance")
    from edge.ml.data import detect_format   # torch-free: a mistyped --data fails before torch loads

    detect_format(data)
    from edge.ml.training.evaluate import format_metrics
    from edge.ml.training.train import train

    path, metrics = train(task, model, data, epochs=epochs, out=out, input_size=parse_size(input),
                          batch_size=batch_size, lr=lr, seed=seed, balance=balance, patience=patience)
    if json_out:
        print_json({"checkpoint": str(path), **metrics})
    else:
        print(format_metrics({**metrics, "split": "test"}))
        print(f"saved {path}")


@app.command("eval")
def eval_cmd(
    checkpoint: str = typer.Argument(..., help="Checkpoint written by `edgekit train` or `edgekit compress` (INT8 QAT too)."),
    data: str = typer.Option(..., "--data", help="Dataset folder the checkpoint's task can read."),
    split: str = typer.Option("test", "--split", help="test / val: the checkpoint's recorded held-out streams; "
                              "all: every frame."),
    batch_size: int = typer.Option(32, "--batch-size", help="Frames per batch."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples of whole streams for the 95% CIs "
                                  "(detection: pycocotools per resample, so fewer is faster)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
):
    """Accuracy, macro-F1 and per-class recall (classifiers), exact match (multi-label) or COCO mAP/mAR
    (boxes) of a checkpoint on its held-out streams: overall and per stream, with 95% CIs from a
    bootstrap over streams; a split that misses a class is flagged with a `warning:` line."""
    if resamples < 1:
        raise BadInputError(f"--resamples {resamples} must be 1 or more")
    from edge.ml.data import detect_format

    require_file(checkpoint, "checkpoint")
    detect_format(data)
    from edge.ml.training.evaluate import evaluate, format_metrics

    metrics = evaluate(checkpoint, data, split=split, batch_size=batch_size, resamples=resamples, seed=seed)
    if json_out:
        print_json(metrics)
        for w in metrics["warnings"]:        # said on the console too; stdout stays one JSON object
            print(f"warning: {w}", file=sys.stderr)
    else:
        print(format_metrics(metrics))
