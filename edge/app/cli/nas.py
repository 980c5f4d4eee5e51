"""`edgekit nas`, `edgekit nas-archs` and `edgekit bench-archs`: find the net that fits a device's budget.

`nas` and `nas-archs` run on the host (torch, Optuna: the train extra); `bench-archs` runs on the device
(torch-free: `runtime.archbench`) and times the files `nas-archs` wrote, for `nas --latency-table`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import typer

from edge.app.cli import app
from edge.app.cli._common import parse_size, print_json
from edge.core.errors import BadInputError

STEMS_HELP = "Stems to search: imagenet (7x7/2 + max-pool), conv3pool (3x3/2 + max-pool), conv3 (3x3/2)."


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _span(text: str, what: str) -> tuple[int, int]:
    """'2-4' -> (2, 4); '3' -> (3, 3)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", text or "")
    if not m:
        raise BadInputError(f"{what} {text!r} is not a number or a range like 2-4")
    lo = int(m.group(1))
    return lo, int(m.group(2) or lo)


def _resolutions(text: Optional[str], base: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """'48,64,80' or '48x64,64x80' -> sizes; None -> 0.75x, 1x and 1.25x of `base` (multiples of 8)."""
    if text is None:
        return tuple(sorted({(max(16, round(base[0] * f / 8) * 8), max(16, round(base[1] * f / 8) * 8))
                             for f in (0.75, 1.0, 1.25)}))
    sizes = tuple(parse_size(part) for part in text.split(",") if part.strip())
    if not sizes:
        raise BadInputError(f"--resolutions {text!r} names no size; e.g. 48,64,80 or 48x64,64x80")
    return sizes


def _space(stages: str, blocks: str, widths: str, stems: str, resolutions):
    from compress.nas.space import SearchSpace

    return SearchSpace(stages=_span(stages, "--stages"), blocks=_span(blocks, "--blocks"),
                       widths=_span(widths, "--widths"),
                       stems=tuple(s.strip() for s in stems.split(",") if s.strip()), resolutions=resolutions)


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip() and s.strip() != "none")


def _factors(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in _names(text))
    except ValueError:
        raise BadInputError(f"--scales {text!r}: expected numbers like 0.75,0.5,0.25 (or none)") from None


@app.command("nas")
def nas_cmd(
    task: str = typer.Option(..., "--task", help="A classification task: plane, orientation, anatomy, ..."),
    data: str = typer.Option(..., "--data", help="Dataset folder (split by stream as `edgekit train` does)."),
    out: Path = typer.Option(..., "--out", help="Folder for nas.json/.md/.png, the found checkpoint and the "
                             "default study storage (study.journal: a rerun resumes it)."),
    target: str = typer.Option("cpu", "--target", help="Device profile (`edgekit targets`). cpu: latency "
                               "measured here; another: from --latency-table, else an estimate."),
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help="Latency budget per frame in ms "
                                              "(default: derived, 1000/30/4 = 8.333 ms)."),
    budget_ratio: Optional[float] = typer.Option(None, "--budget-ratio", help="Instead of --budget-ms: this "
                                                 "fraction of ResNet8's latency at --input on the target, got "
                                                 "as every candidate's is (0.5: half of ResNet8's)."),
    max_mb: Optional[float] = typer.Option(None, "--max-mb", help="Memory budget in MB, FP32 weights + peak "
                                           "activations (default: 1/64 of the target's memory, 256 MB without one)."),
    input: str = typer.Option("64x64", "--input", help="Reference input size HEIGHTxWIDTH (the references are "
                              "measured at it; the default --resolutions are 0.75x, 1x and 1.25x of it)."),
    resolutions: Optional[str] = typer.Option(None, "--resolutions", help="Input sizes to search, e.g. 48,64,80."),
    stages: str = typer.Option("2-4", "--stages", help="Stages, a range like 2-4."),
    blocks: str = typer.Option("1-2", "--blocks", help="Basic blocks per stage, a range like 1-2."),
    widths: str = typer.Option("8-256", "--widths", help="Stage widths, a range (multiples of 8 on a ladder)."),
    stems: str = typer.Option("imagenet,conv3pool,conv3", "--stems", help=STEMS_HELP),
    trials: int = typer.Option(40, "--trials", help="Trials in the whole study (all workers and machines)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes here (one torch thread each)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Shared study storage: sqlite:///study.db, a "
                                          "database URL, or journal:PATH; other machines join with the same one."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Study name (default nas-TASK-TARGET)."),
    population: Optional[int] = typer.Option(None, "--population", help="NSGA-II generation size "
                                             "(default: trials/5, 4..20)."),
    proxy_epochs: int = typer.Option(3, "--proxy-epochs", help="Proxy training epochs per candidate."),
    proxy_frames: Optional[int] = typer.Option(None, "--proxy-frames", help="Training frames per proxy epoch "
                                               "(an even subsample; default: all)."),
    epochs: int = typer.Option(8, "--epochs", help="Epochs of every training of a finalist: on each fold, "
                               "and the final one (0: none)."),
    finalists: int = typer.Option(5, "--finalists", help="The best nets under budget by proxy figure, compared "
                                  "by training each --epochs on every fold; the best mean is trained and kept."),
    folds: int = typer.Option(3, "--folds", help="Folds of the streams outside test that the finalists are "
                              "compared on (1: train's own val split)."),
    latency_table: Optional[Path] = typer.Option(None, "--latency-table", help="JSON table from "
                                                 "`edgekit bench-archs` on the device."),
    references: str = typer.Option("resnet8,resnet10,resnet34", "--references", help="Nets measured and "
                                   "proxy-trained the same way, marked in the report ('none': skip)."),
    scales: str = typer.Option("0.75,0.5,0.25", "--scales", help="The references in the space with their "
                               "widths scaled by these, at each of --resolutions, queued as the first "
                               "candidates ('none': random ones only)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the sampler and the weights."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Search ResNet8/10-like nets for the most accurate one within a latency and memory budget (Optuna
    NSGA-II); write the Pareto front and train the best net under budget into a checkpoint."""
    from compress.nas import check_request

    check_request(task, target, budget_ms, max_mb, trials, workers, budget_ratio)   # one line before torch loads
    size = parse_size(input)
    from compress.nas.objective import ProxySettings
    from compress.nas.study import NasSettings, search

    settings = NasSettings(
        task=task, data=data, out=str(out), target=target, budget_ms=budget_ms, budget_ratio=budget_ratio,
        max_mb=max_mb, input_size=size,
        space=_space(stages, blocks, widths, stems, _resolutions(resolutions, size)), trials=trials, workers=workers,
        storage=storage, study_name=study_name, population=population,
        proxy=ProxySettings(epochs=proxy_epochs, max_frames=proxy_frames, seed=seed),
        references=_names(references), scales=_factors(scales), latency_table=str(latency_table) if latency_table else None,
        final_epochs=epochs, finalists=finalists, folds=folds, seed=seed)
    report = search(settings)
    if json_out:
        print_json(report)
    else:
        from compress.nas.report import to_markdown

        print(to_markdown(report, every_trial=False))
        print(f"wrote {out}/nas.json, nas.md, nas.png" + (f" and {report['final']['checkpoint']}" if report["final"] else ""))


@app.command("nas-archs")
def nas_archs_cmd(
    out: Path = typer.Argument(..., help="New folder for the ONNX files and archs.json (copy it to the device)."),
    count: int = typer.Option(40, "--count", help="Random architectures of the search space to write."),
    task: str = typer.Option("plane", "--task", help="Task whose class count sizes the head."),
    input: str = typer.Option("64x64", "--input", help="Reference input size (the references are written at it)."),
    resolutions: Optional[str] = typer.Option(None, "--resolutions", help="Input sizes, e.g. 48,64,80 "
                                              "(default 0.75x, 1x, 1.25x of --input)."),
    stages: str = typer.Option("2-4", "--stages", help="Stages, a range like 2-4."),
    blocks: str = typer.Option("1-2", "--blocks", help="Basic blocks per stage, a range like 1-2."),
    widths: str = typer.Option("8-256", "--widths", help="Stage widths, a range."),
    stems: str = typer.Option("imagenet,conv3pool,conv3", "--stems", help=STEMS_HELP),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or fp16 for a GPU (TensorRT builds the "
                                  "graph's own precision)."),
    references: str = typer.Option("resnet8,resnet10,resnet34", "--references", help="Reference nets to add."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random architectures."),
):
    """On the host: write candidate architectures as ONNX files for `edgekit bench-archs` on the device."""
    from edge.core.tasks import get_task

    get_task(task)
    size = parse_size(input)
    from compress.nas.archs import export_archs

    names = _names(references)
    from compress.nas.space import REFERENCES

    bad = [n for n in names if n not in REFERENCES]
    if bad:
        raise BadInputError(f"--references {', '.join(bad)}: expected some of {', '.join(REFERENCES)}")
    idx = export_archs(out, count=count, space=_space(stages, blocks, widths, stems, _resolutions(resolutions, size)),
                       task=task, seed=seed, precision=precision, references=names, input_size=size, log=_log)
    print(f"wrote {len(idx['archs'])} architectures ({precision}) to {out}; on the device: "
          f"edgekit bench-archs {out} --out table.json")


@app.command("bench-archs")
def bench_archs_cmd(
    folder: Path = typer.Argument(..., help="A folder written by `edgekit nas-archs`."),
    out: Path = typer.Option(..., "--out", help="Latency table to write (JSON), for `edgekit nas --latency-table`."),
    backend: str = typer.Option("auto", "--backend", help="auto, tensorrt, onnxruntime-cuda or onnxruntime."),
    rounds: int = typer.Option(20, "--rounds", help="Interleaved timing rounds (5 runs each)."),
    threads: int = typer.Option(1, "--threads", help="ONNX Runtime intra-op threads."),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON."),
):
    """On the device (no torch): time each architecture with TensorRT or ONNX Runtime; write the table."""
    from runtime.archbench import bench_archs

    table = bench_archs(folder, out, backend=backend, rounds=rounds, threads=threads, log=_log)
    if json_out:
        print_json(table)
        return
    for e in table["entries"]:
        print(f"{e['arch'].get('key', e['file']):<48} {e['median_ms']:>10.4f} ms  {e.get('reference') or ''}")
    print(f"wrote {out}: {len(table['entries'])} architectures, {table['backend']} on {table['device'].get('name')}")
