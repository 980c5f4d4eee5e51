"""`edgekit compress`: every pruning ratio at FP32 and after INT8 QAT, one checkpoint each, one report.

The FPUS23 recipe: prune the smallest 30/50/70% of weights, retrain, then quantisation-aware train
to INT8. For each ratio the sweep prunes a copy of the baseline (`method`: structured, unstructured or
2:4), fine-tunes it (masks kept), saves it, then calibrates ModelOpt INT8 quantizers on training
frames, fine-tunes again at a tenth of the rate (zeros kept) and saves that too; the unpruned INT8
model comes last. Every variant is scored on the same held-out frames, costed (params, MACs, weight
memory) and timed in one interleaved ONNX Runtime run, and the report says how each moved against
the baseline::

    >>> rep = sweep("plane.pt", "fpus23/", "compressed/", SweepSettings(ratios=(0.3, 0.5, 0.7)))  # doctest: +SKIP
    >>> [v["name"] for v in rep["variants"]][:3]                                          # doctest: +SKIP
    ['baseline', 'structured-30', 'structured-30-int8']
"""
from __future__ import annotations

import contextlib
import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compress.data import calibration_batches, finetune, score, split_datasets, split_record, val_dataset
from compress.layers import check_ratio
from edge.core.errors import BadInputError, UnsupportedError
from edge.ml.training.batches import torch_threads

METHODS = ("structured", "unstructured", "2:4")
PAPER_RATIOS = (0.3, 0.5, 0.7)


def _say(progress, text: str) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(f"[bold]compress[/bold] {text}")


def prune(model, method: str, ratio: float | None, importance: str = "l1", round_to: int | None = 8):
    """(pruned copy with masks kept where the method uses them, history entry)."""
    if method == "structured":
        from compress.structured import prune_structured

        return prune_structured(model, ratio, importance, round_to)
    if method == "unstructured":
        from compress.unstructured import prune_unstructured

        return prune_unstructured(model, ratio)
    from compress.semistructured import prune_2_4

    return prune_2_4(model)


def check_request(method: str, ratios, importance: str = "l1") -> tuple:
    """The ratios to run (None for 2:4), or a one-line BadInputError for a request that cannot work."""
    from compress.structured import IMPORTANCES

    if importance not in IMPORTANCES:
        raise BadInputError(f"--importance {importance!r} is not one of {', '.join(IMPORTANCES)}")
    if method not in METHODS:
        raise BadInputError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if method == "2:4":
        if ratios and tuple(ratios) != (0.5,):
            raise BadInputError("2:4 sparsity removes exactly half of every eligible layer; drop --prune "
                                "(or pass --prune 0.5) with --method 2:4")
        return (None,)
    return tuple(check_ratio(r) for r in (ratios or PAPER_RATIOS))


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep prunes, fine-tunes, quantises and times; checked when made, so a bad request fails
    in one line before anything loads. The report records the training part under `settings`.

    `ratios` None means the paper's 0.3/0.5/0.7 (2:4 fixes 0.5). `qat_epochs` None means
    `finetune_epochs` (0: calibration only, post-training quantisation); `qat_lr` None a tenth of `lr`.
    `unpruned_int8` adds the INT8 variant of the unpruned model.
    """

    ratios: tuple[float, ...] | None = None
    method: str = "structured"
    int8: bool = True
    unpruned_int8: bool = True
    finetune_epochs: int = 4
    qat_epochs: int | None = None
    lr: float = 5e-4
    qat_lr: float | None = None
    batch_size: int = 32
    importance: str = "l1"
    round_to: int | None = 8
    calib_samples: int = 256
    split_seed: int = 0
    seed: int = 0
    latency_rounds: int = 30
    latency_threads: int = 1
    progress: bool = True

    def __post_init__(self):
        if self.ratios is not None:
            object.__setattr__(self, "ratios", tuple(self.ratios))
        check_request(self.method, self.ratios, self.importance)
        if self.finetune_epochs < 0:
            raise BadInputError(f"--finetune-epochs {self.finetune_epochs} must be 0 or more")
        if self.qat_epochs is not None and self.qat_epochs < 0:
            raise BadInputError(f"--qat-epochs {self.qat_epochs} must be 0 or more")

    @property
    def runs(self) -> tuple:
        """The ratios to prune at, in order (None once for 2:4)."""
        return check_request(self.method, self.ratios, self.importance)

    @property
    def qat_epochs_or_default(self) -> int:
        return self.finetune_epochs if self.qat_epochs is None else self.qat_epochs

    @property
    def qat_lr_or_default(self) -> float:
        return self.lr / 10 if self.qat_lr is None else self.qat_lr


@dataclass(frozen=True)
class _Run:
    """One sweep's inputs after loading: its settings, the baseline's metadata and the two data sets."""

    settings: SweepSettings
    meta: dict
    train: object
    test: object
    provenance: dict
    val: object = None        # the baseline's val streams: fine-tuning keeps its best epoch on them


@torch_threads()
def sweep(ckpt, data, out="compressed", settings: SweepSettings | None = None) -> dict:
    """Compress checkpoint `ckpt` at every ratio (and INT8), write the checkpoints and the report to `out`.

    `settings` (default `SweepSettings()`) says how. Runs with torch's threads set to the free cores
    (`torch_threads`).
    """
    from edge.ml.quantization import is_quantized, load_quantized
    from compress.report import write_report

    s = settings or SweepSettings()
    base, meta = load_quantized(ckpt)
    if is_quantized(base):
        raise UnsupportedError(f"{ckpt} is already INT8 (QAT); compress its FP32 checkpoint instead")
    train_set, test_set = split_datasets(data, base, meta, seed=s.split_seed)
    out, stem = Path(out), Path(ckpt).stem
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(s, meta, train_set, test_set, provenance={
        "source": str(ckpt), "data": str(data) if isinstance(data, (str, Path)) else "in-memory",
        "split_seed": s.split_seed, "split": split_record(train_set, test_set)}, val=val_dataset(data, base, meta))
    _say(s.progress, f"{Path(ckpt).name}: scoring the baseline on {len(test_set)} held-out frames")
    variants = [{"name": "baseline", "precision": "fp32", "method": None, "ratio": 0.0, "achieved": 0.0,
                 "model": base, "float": base, "checkpoint": str(ckpt), "score": score(base, test_set)}]
    qat_epochs = s.qat_epochs_or_default
    for ratio in s.runs:
        name = s.method if ratio is None else f"{s.method}-{round(ratio * 100)}"
        _say(s.progress, f"{name}: pruning, fine-tuning {s.finetune_epochs} epoch(s)")
        pruned, info = _pruned(base, ratio, run)
        row = _save(variants, name, "fp32", pruned, pruned, [info], out / f"{stem}.{name}.pt", run)
        row.update(method=s.method, ratio=info["ratio"], achieved=info["achieved"], prune=info)
        if s.int8:
            _say(s.progress, f"{name}-int8: calibrating INT8 quantizers, QAT {qat_epochs} epoch(s)")
            q, qinfo = _qat(pruned, run, keep_zero=s.method != "structured")
            qrow = _save(variants, f"{name}-int8", "int8", q, pruned, [info, qinfo],
                         out / f"{stem}.{name}-int8.pt", run)
            qrow.update(method=s.method, ratio=info["ratio"], achieved=info["achieved"], prune=info)
    if s.int8 and s.unpruned_int8:
        _say(s.progress, f"int8: calibrating INT8 quantizers on the unpruned model, QAT {qat_epochs} epoch(s)")
        q, qinfo = _qat(base, run, keep_zero=False)
        _save(variants, "int8", "int8", q, base, [qinfo], out / f"{stem}.int8.pt", run)
    report = _report(variants, ckpt, run)
    write_report(report, out)
    _say(s.progress, f"wrote {len(variants) - 1} checkpoints and sweep.json/.md/.png to {out}")
    return report


def _pruned(base, ratio, run: _Run):
    from compress.unstructured import make_permanent

    s = run.settings
    pruned, info = prune(base, s.method, ratio, s.importance, s.round_to)
    history = finetune(pruned, run.train, s.finetune_epochs, s.lr, s.batch_size, s.seed, s.progress, run.val)
    make_permanent(pruned)             # masks folded in (no-op for structured)
    info["finetune"] = _finetune_record(s.finetune_epochs, s.lr, history)
    return pruned.eval(), info


def _qat(model, run: _Run, keep_zero: bool):
    from edge.ml.quantization import CONFIG
    from compress.quant import quantize_int8
    from compress.unstructured import keep_zeros

    s = run.settings
    q = copy.deepcopy(model)
    batches = calibration_batches(q, run.train, s.calib_samples, s.batch_size)
    quantize_int8(q, batches)
    epochs, lr = s.qat_epochs_or_default, s.qat_lr_or_default
    history = None
    if epochs:
        with keep_zeros(q) if keep_zero else contextlib.nullcontext():
            history = finetune(q, run.train, epochs, lr, s.batch_size, s.seed, s.progress, run.val)
    info = {"step": "qat" if epochs else "ptq", "library": "modelopt", "config": CONFIG,
            "calib_samples": sum(map(len, batches)), "finetune": _finetune_record(epochs, lr, history)}
    return q.eval(), info


def _finetune_record(epochs: int, lr: float, history: dict | None = None) -> dict:
    """The fine-tuning recipe as run: `fit`'s own (augmentation, balancing, best epoch on the val streams)."""
    h = history or {}
    return {"epochs": epochs, "lr": lr, "optimizer": "Adam (edge.ml.training.fit.fit)", "schedule": "last epoch at lr x0.1",
            "sampling": "class-balanced" if h.get("balance") else "uniform",
            "selected_by": h.get("selected_by"), "best_epoch": h.get("best_epoch"), "best": h.get("best")}


def _save(variants, name, precision, model, float_model, steps, path, run: _Run) -> dict:
    from edge.ml.quantization import quantization_meta
    from edge.ml.checkpoint import save_checkpoint

    sc = score(model, run.test)
    quant = quantization_meta(model, calib_samples=steps[-1]["calib_samples"]) if precision == "int8" else None
    history = list(run.meta.get("compression") or []) + steps
    save_checkpoint(path, model, provenance={**run.provenance, "metrics": sc["metrics"],
                                             "epochs": run.settings.finetune_epochs},
                    compression=history, quantization=quant)
    row = {"name": name, "precision": precision, "method": None, "ratio": 0.0, "achieved": 0.0,
           "model": model, "float": float_model, "checkpoint": str(path), "score": sc}
    variants.append(row)
    return row


def _report(variants, ckpt, run: _Run) -> dict:
    import onnx

    from compress.latency import measure_latency, write_onnx
    from edge.ml.quantization import count_qdq
    from compress.report import build_report

    s = run.settings
    _say(s.progress, f"timing {len(variants)} variants in ONNX Runtime (CPU, batch 1, {s.latency_rounds} "
                     f"interleaved rounds)")
    with tempfile.TemporaryDirectory(prefix="edgekit-compress-") as tmp:
        files = {v["name"]: write_onnx(v["model"], Path(tmp) / f"{i}.onnx") for i, v in enumerate(variants)}
        latency = measure_latency(files, rounds=s.latency_rounds, threads=s.latency_threads)
        for name, path in files.items():       # INT8 variants must carry Q/DQ pairs into ONNX
            latency[name]["qdq_pairs"] = count_qdq(onnx.load(str(path)))
    return build_report(variants, latency, ckpt=str(ckpt), method=s.method, settings={
        "finetune_epochs": s.finetune_epochs, "lr": s.lr, "qat_lr": s.qat_lr_or_default,
        "batch_size": s.batch_size, "calib_samples": s.calib_samples, "split_seed": s.split_seed,
        "train_frames": len(run.train), "test_frames": len(run.test)})
