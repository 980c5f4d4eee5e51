"""`edgekit compress`: prune at several ratios, INT8 QAT, one checkpoint per variant and a sweep report;
`edgekit int8-debug`: when an INT8 variant loses accuracy, which layers are responsible, and a copy
of the checkpoint with them kept float."""
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
    epochs: int = typer.Option(4, "--finetune-epochs", help="Fine-tuning epochs after pruning and for QAT."),
    qat_epochs: Optional[int] = typer.Option(None, "--qat-epochs", help="INT8 fine-tuning epochs after "
                                             "calibration (default: --finetune-epochs; 0: calibration only)."),
    lr: float = typer.Option(5e-4, "--lr", help="Fine-tuning learning rate after pruning (QAT uses a tenth)."),
    batch_size: int = typer.Option(32, "--batch-size"),
    importance: str = typer.Option("l1", "--importance", help="Structured: l1 or l2 weight magnitude."),
    out: Path = typer.Option(..., "--out", help="Folder for the variant checkpoints and sweep.json/.md/.png."),
    latency_rounds: int = typer.Option(30, "--latency-rounds", help="Interleaved ONNX Runtime timing rounds."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    debug_int8: bool = typer.Option(False, "--debug-int8", help="For every INT8 variant that loses more than "
                                    "--debug-threshold points against its FP32 parent, compare the two layer by "
                                    "layer (as `edgekit int8-debug`) and write VARIANT.int8-debug.json/.md to --out."),
    debug_threshold: float = typer.Option(1.0, "--debug-threshold", min=0.0,
                                          help="Points of the primary metric an INT8 variant may lose before "
                                               "--debug-int8 looks into it."),
):
    """Prune (and INT8-QAT) a checkpoint at every ratio; write checkpoints and a sweep report to --out."""
    ratios = parse_floats(prune, "--prune", low=0.0, high=1.0) if prune else None
    from compress.sweep import SweepSettings, sweep
    from compress.report import to_markdown

    # SweepSettings refuses a bad request in one line before anything heavy loads
    settings = SweepSettings(ratios=ratios, method=method, int8=int8, finetune_epochs=epochs, qat_epochs=qat_epochs,
                             lr=lr, batch_size=batch_size, importance=importance, latency_rounds=latency_rounds)
    report = sweep(checkpoint, data, out, settings)
    debugged = _debug_losses(report, data, debug_threshold) if debug_int8 and int8 else []
    if json_out:
        print_json({**report, "int8_debug": debugged} if debug_int8 else report)
    else:
        print(to_markdown(report))
        for d in debugged:
            print(f"\n## {d['variant']}: {d['loss_points']:+.2f} points against {d['parent']}\n\n{d['markdown']}")


def _debug_losses(report: dict, data, threshold: float) -> list[dict]:
    """`int8-debug` on each INT8 variant of the sweep that lost more than `threshold` points to its FP32 parent."""
    from compress.int8_debug import run, to_markdown as debug_markdown

    rows = {v["name"]: v for v in report["variants"]}
    done = []
    for v in report["variants"]:
        if v["precision"] != "int8":
            continue
        parent = rows.get(v["name"][:-len("-int8")] if v["name"].endswith("-int8") else "baseline")
        if parent is None or parent["value"] is None or v["value"] is None:
            continue
        loss = round(100 * (v["value"] - parent["value"]), 3)
        if loss >= -threshold:
            continue
        rep = run(v["checkpoint"], data)
        md = debug_markdown(rep)
        stem = Path(v["checkpoint"]).with_suffix("")
        _write(stem.with_name(stem.name + ".int8-debug.json"), rep)
        stem.with_name(stem.name + ".int8-debug.md").write_text(md + "\n")
        done.append({"variant": v["name"], "parent": parent["name"], "loss_points": loss,
                     "suggest_keep_float": rep["suggest_keep_float"], "markdown": md,
                     "report": str(stem.with_name(stem.name + ".int8-debug.json"))})
    return done


def _write(path: Path, obj) -> None:
    from runtime.atomic import write_json_atomic

    write_json_atomic(path, obj)


@app.command("int8-debug")
def int8_debug_cmd(
    checkpoint: Path = typer.Argument(..., help="INT8 (QAT) checkpoint written by `edgekit compress`."),
    data: Optional[Path] = typer.Option(None, "--data", help="The dataset it was compressed on: calibration frames "
                                        "from its training split, accuracy on its test split (default: phantom "
                                        "frames, no accuracy)."),
    frames: int = typer.Option(64, "--frames", min=1, max=4096, help="Calibration frames to compare on."),
    keep_float: Optional[str] = typer.Option(None, "--keep-float", help="Layers to keep float, comma-separated "
                                             "(names from the table), or `auto` for the suggestion; needs --out."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the checkpoint with --keep-float layers float "
                                       "here (export it with `edgekit export ... --precision int8`)."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Also write the full report as JSON here."),
    target: float = typer.Option(0.99, "--target-agreement", min=0.0, max=1.0, help="Agreement with the float "
                                 "model the suggestion aims for."),
    max_keep: int = typer.Option(3, "--max-keep", min=1, max=64, help="At most this many layers suggested."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
):
    """Compare an INT8 checkpoint with its float self layer by layer; rank the layers to keep float."""
    keep = None
    if keep_float is not None:
        keep = [k.strip() for k in keep_float.split(",") if k.strip()]
        if not keep:
            from edge.core.errors import BadInputError

            raise BadInputError("--keep-float needs layer names (comma-separated) or `auto`")
    from compress.int8_debug import run, to_markdown as debug_markdown

    report = run(checkpoint, data, frames=frames, keep=keep, out=out, max_keep=max_keep, target_agreement=target)
    if report_path is not None:
        _write(report_path, report)
    if json_out:
        print_json(report)
        return
    print(debug_markdown(report))
    kept = report.get("kept_float")
    if kept:
        acc = kept.get("accuracy")
        extra = f"; accuracy {acc['int8']:.4f} ({acc['delta_points']:+.2f} points against float)" if acc else ""
        print(f"wrote {kept['checkpoint']} with {','.join(kept['keep_float'])} float{extra}")
