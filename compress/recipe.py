"""`edgekit compress`: every pruning ratio at FP32 and after INT8 QAT, one checkpoint each, one report.

The FPUS23 recipe: prune the smallest 30/50/70% of weights, retrain, then quantisation-aware train
to INT8. For each ratio the sweep prunes a copy of the baseline (`method`: structured, unstructured or
2:4), fine-tunes it (masks kept), saves it, then calibrates ModelOpt INT8 quantizers on training
frames, fine-tunes again at a tenth of the rate (zeros kept) and saves that too; the unpruned INT8
model comes last. Every variant is scored on the same held-out frames, costed (params, MACs, weight
memory) and timed in one interleaved ONNX Runtime run, and the report says how each moved against
the baseline::

    >>> rep = sweep("plane.pt", "fpus23/", ratios=(0.3, 0.5, 0.7), out="compressed/")   # doctest: +SKIP
    >>> [v["name"] for v in rep["variants"]][:3]                                          # doctest: +SKIP
    ['baseline', 'structured-30', 'structured-30-int8']
"""
from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path

from compress.data import calibration_batches, finetune, score, split_datasets
from compress.layers import check_ratio
from edge.errors import BadInputError, UnsupportedError
from edge.training.batches import torch_threads

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


@torch_threads()
def sweep(ckpt, data, ratios=PAPER_RATIOS, method: str = "structured", int8: bool = True,
          finetune_epochs: int = 3, out="compressed", *, lr: float = 5e-4, qat_lr: float | None = None,
          batch_size: int = 32, importance: str = "l1", round_to: int | None = 8,
          calib_samples: int = 256, split_seed: int = 0, seed: int = 0, latency_rounds: int = 30,
          latency_threads: int = 1, progress: bool = True, qat_epochs: int | None = None,
          unpruned_int8: bool = True) -> dict:
    """Compress checkpoint `ckpt` at every ratio (and INT8), write the checkpoints and the report to `out`.

    `qat_epochs` (default: `finetune_epochs`) is the INT8 fine-tuning after calibration; 0 keeps the
    calibrated ranges as they are (post-training quantisation, recorded as such). `unpruned_int8`
    adds the INT8 variant of the unpruned model. Runs with torch's threads set to the free cores
    (`torch_threads`).
    """
    from compress.quant import is_quantized, load_quantized
    from compress.report import write_report

    ratios = check_request(method, ratios, importance)
    if finetune_epochs < 0:
        raise BadInputError(f"--finetune-epochs {finetune_epochs} must be 0 or more")
    qat_epochs = finetune_epochs if qat_epochs is None else qat_epochs
    if qat_epochs < 0:
        raise BadInputError(f"--qat-epochs {qat_epochs} must be 0 or more")
    base, meta = load_quantized(ckpt)
    if is_quantized(base):
        raise UnsupportedError(f"{ckpt} is already INT8 (QAT); compress its FP32 checkpoint instead")
    train_set, test_set = split_datasets(data, base, meta, seed=split_seed)
    out, stem = Path(out), Path(ckpt).stem
    out.mkdir(parents=True, exist_ok=True)
    qat_lr = lr / 10 if qat_lr is None else qat_lr
    ctx = dict(meta=meta, train=train_set, test=test_set, epochs=finetune_epochs, lr=lr, qat_lr=qat_lr,
               qat_epochs=qat_epochs,
               batch=batch_size, calib=calib_samples, seed=seed, progress=progress,
               provenance={"source": str(ckpt), "data": str(data) if isinstance(data, (str, Path)) else "in-memory",
                           "split_seed": split_seed})
    _say(progress, f"{Path(ckpt).name}: scoring the baseline on {len(test_set)} held-out frames")
    variants = [{"name": "baseline", "precision": "fp32", "method": None, "ratio": 0.0, "achieved": 0.0,
                 "model": base, "float": base, "checkpoint": str(ckpt), "score": score(base, test_set)}]
    for ratio in ratios:
        name = method if ratio is None else f"{method}-{round(ratio * 100)}"
        _say(progress, f"{name}: pruning, fine-tuning {finetune_epochs} epoch(s)")
        pruned, info = _pruned(base, method, ratio, importance, round_to, ctx)
        row = _save(variants, name, "fp32", pruned, pruned, [info], out / f"{stem}.{name}.pt", ctx)
        row.update(method=method, ratio=info["ratio"], achieved=info["achieved"], prune=info)
        if int8:
            _say(progress, f"{name}-int8: calibrating INT8 quantizers, QAT {qat_epochs} epoch(s)")
            q, qinfo = _qat(pruned, ctx, keep_zero=method != "structured")
            qrow = _save(variants, f"{name}-int8", "int8", q, pruned, [info, qinfo],
                         out / f"{stem}.{name}-int8.pt", ctx)
            qrow.update(method=method, ratio=info["ratio"], achieved=info["achieved"], prune=info)
    if int8 and unpruned_int8:
        _say(progress, f"int8: calibrating INT8 quantizers on the unpruned model, QAT {qat_epochs} epoch(s)")
        q, qinfo = _qat(base, ctx, keep_zero=False)
        _save(variants, "int8", "int8", q, base, [qinfo], out / f"{stem}.int8.pt", ctx)
    report = _report(variants, ckpt, method, ctx, latency_rounds, latency_threads)
    write_report(report, out)
    _say(progress, f"wrote {len(variants) - 1} checkpoints and sweep.json/.md/.png to {out}")
    return report


def _pruned(base, method, ratio, importance, round_to, ctx):
    from compress.unstructured import make_permanent

    pruned, info = prune(base, method, ratio, importance, round_to)
    finetune(pruned, ctx["train"], ctx["epochs"], ctx["lr"], ctx["batch"], ctx["seed"], ctx["progress"])
    make_permanent(pruned)             # masks folded in (no-op for structured)
    info["finetune"] = _finetune_record(ctx["epochs"], ctx["lr"])
    return pruned.eval(), info


def _qat(model, ctx, keep_zero: bool):
    from compress.quant import CONFIG, quantize_int8
    from compress.unstructured import keep_zeros

    q = copy.deepcopy(model)
    batches = calibration_batches(q, ctx["train"], ctx["calib"], ctx["batch"])
    quantize_int8(q, batches)
    epochs = ctx["qat_epochs"]
    if epochs:
        with keep_zeros(q) if keep_zero else contextlib.nullcontext():
            finetune(q, ctx["train"], epochs, ctx["qat_lr"], ctx["batch"], ctx["seed"], ctx["progress"])
    info = {"step": "qat" if epochs else "ptq", "library": "modelopt", "config": CONFIG,
            "calib_samples": sum(map(len, batches)), "finetune": _finetune_record(epochs, ctx["qat_lr"])}
    return q.eval(), info


def _finetune_record(epochs: int, lr: float) -> dict:
    return {"epochs": epochs, "lr": lr, "optimizer": "Adam (edge.train.fit)", "schedule": "last epoch at lr x0.1"}


def _save(variants, name, precision, model, float_model, steps, path, ctx) -> dict:
    from compress.quant import quantization_meta
    from edge.checkpoint import save_checkpoint

    s = score(model, ctx["test"])
    quant = quantization_meta(model, calib_samples=steps[-1]["calib_samples"]) if precision == "int8" else None
    history = list(ctx["meta"].get("compression") or []) + steps
    save_checkpoint(path, model, provenance={**ctx["provenance"], "metrics": s["metrics"], "epochs": ctx["epochs"]},
                    compression=history, quantization=quant)
    row = {"name": name, "precision": precision, "method": None, "ratio": 0.0, "achieved": 0.0,
           "model": model, "float": float_model, "checkpoint": str(path), "score": s}
    variants.append(row)
    return row


def _report(variants, ckpt, method, ctx, rounds, threads) -> dict:
    import onnx

    from compress.latency import export_onnx, measure_latency
    from compress.quant import count_qdq
    from compress.report import build_report

    _say(ctx["progress"], f"timing {len(variants)} variants in ONNX Runtime (CPU, batch 1, {rounds} interleaved rounds)")
    with tempfile.TemporaryDirectory(prefix="edgekit-compress-") as tmp:
        files = {v["name"]: export_onnx(v["model"], Path(tmp) / f"{i}.onnx") for i, v in enumerate(variants)}
        latency = measure_latency(files, rounds=rounds, threads=threads)
        for name, path in files.items():       # INT8 variants must carry Q/DQ pairs into ONNX
            latency[name]["qdq_pairs"] = count_qdq(onnx.load(str(path)))
    return build_report(variants, latency, ckpt=str(ckpt), method=method, settings={
        "finetune_epochs": ctx["epochs"], "lr": ctx["lr"], "qat_lr": ctx["qat_lr"], "batch_size": ctx["batch"],
        "calib_samples": ctx["calib"], "split_seed": ctx["provenance"]["split_seed"],
        "train_frames": len(ctx["train"]), "test_frames": len(ctx["test"])})
