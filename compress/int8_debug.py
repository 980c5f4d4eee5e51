"""When INT8 loses accuracy: which layers are responsible, and what keeping them float buys back.

`debug_int8(model, batches)` runs a ModelOpt QAT model on calibration frames with its quantizers
switched per layer (ModelOpt's `TensorQuantizer.disable()/enable()`; the weights are the same in
every run) and compares, through forward hooks, every quantised layer's output with the float run:

- `sqnr_db` / `cosine`: the layer's output with the whole model quantised against the float model's
  (signal-to-quantisation-noise ratio, 10 log10(sum ref^2 / sum (ref - q)^2); error accumulates
  with depth, so this alone blames the last layers);
- `alone_sqnr_db`: the layer's output with only that layer quantised (its own error on float inputs);
- `kept_float_output_sqnr_db` and `gain_db`: the model output's SQNR with every layer quantised but
  this one, and how much that beats all-quantised: what keeping this layer float buys. Layers are
  ranked by it (the responsible ones first), with `kept_float_agreement` (top-1 agreement of the
  model's answers with the float model's; per-label decisions for multi-label models).

It then suggests `keep_float`: layers that help (positive gain; the best agreement kept float first,
then the gain), added one at a time while the INT8 model's answers disagree with the float model's
on more than `1 - target_agreement` of the frames (at most `max_keep` layers), with the agreement
each step reaches. With labelled test frames the report also
gives the float and INT8 accuracy and the loss in points.

`run(ckpt, data, ...)` is `edgekit int8-debug`: the checkpoint's own calibration frames (its training
split, as the sweep calibrated on; phantom frames without `--data`), the ranking as JSON and
Markdown, and with `keep` a copy of the checkpoint whose named layers stay float, recorded in its
`quantization.keep_float` and compression history, that `edgekit export --precision int8` exports
with those layers in float (both INT8 forms)::

    >>> rep = debug_int8(qat_model, [x_batch])                       # doctest: +SKIP
    >>> [r["layer"] for r in rep["layers"]][:2], rep["suggest_keep_float"]   # doctest: +SKIP
    (['layer3.0.conv2', 'fc'], ['layer3.0.conv2'])

Detectors: the model output compared is the backbone's feature maps (the detections themselves
change in number between runs); head layers whose outputs change shape between runs get no figure.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
from torch import nn

from edge.core.tasks import DETECTION, MULTI_LABEL
from edge.ml.training.batches import torch_threads

MAX_KEEP = 3
TARGET_AGREEMENT = 0.99


class _Stats:
    """Running sums for SQNR and cosine between a reference tensor stream and a candidate one."""

    def __init__(self):
        self.ref2 = self.cand2 = self.err2 = self.dot = 0.0
        self.mismatch = False

    def add(self, ref: torch.Tensor, cand: torch.Tensor) -> None:
        if ref.shape != cand.shape:
            self.mismatch = True
            return
        ref, cand = ref.double(), cand.double()
        self.ref2 += float((ref * ref).sum())
        self.cand2 += float((cand * cand).sum())
        self.err2 += float(((ref - cand) ** 2).sum())
        self.dot += float((ref * cand).sum())

    def sqnr(self) -> float | None:
        if self.mismatch or self.ref2 == 0:
            return None
        return 99.0 if self.err2 == 0 else round(min(99.0, 10 * math.log10(self.ref2 / self.err2)), 3)

    def cosine(self) -> float | None:
        if self.mismatch or self.ref2 == 0 or self.cand2 == 0:
            return None
        return round(self.dot / math.sqrt(self.ref2 * self.cand2), 6)

    def rel_err(self) -> float | None:
        return None if self.mismatch or self.ref2 == 0 else round(math.sqrt(self.err2 / self.ref2), 6)


def _flat(out) -> torch.Tensor | None:
    """One float tensor from a module output (tensor, tuple/list or dict of tensors)."""
    if torch.is_tensor(out):
        return out.detach().float() if out.is_floating_point() else None
    parts = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    flat = [t.detach().float().reshape(-1) for t in parts if torch.is_tensor(t) and t.is_floating_point()]
    return torch.cat(flat) if flat else None


class _Switch:
    """Per-layer control of a QAT model's quantizers; puts their enabled state back on exit."""

    def __init__(self, model: nn.Module, layers: list[str]):
        from edge.ml.quantization import layer_quantizers

        modules = dict(model.named_modules())
        self.by_layer = {name: [q for q in layer_quantizers(modules[name]).values() if q.is_enabled]
                         for name in layers}

    def only(self, quantised: set[str]) -> None:
        for name, qs in self.by_layer.items():
            for q in qs:
                q.enable() if name in quantised else q.disable()

    def restore(self) -> None:
        self.only(set(self.by_layer))


def _model_output(model: nn.Module, x, detector: bool, captured: dict) -> torch.Tensor:
    out = model(x)
    return captured.pop("__output__") if detector else _flat(out)


def _answers(out: torch.Tensor, kind: str) -> torch.Tensor:
    return (out > 0) if kind == MULTI_LABEL else out.argmax(-1)


@torch_threads()
def debug_int8(model: nn.Module, batches, max_keep: int = MAX_KEEP, target_agreement: float = TARGET_AGREEMENT,
               log=lambda msg: None) -> dict:
    """The per-layer comparison of a QAT model with its float self on `batches` (module docstring)."""
    from edge.ml.quantization import quantized_layers

    model.eval()
    kind = model.edge_config.task.kind
    detector = kind == DETECTION
    layers = quantized_layers(model)
    if not layers:
        from edge.core.errors import UnsupportedError

        raise UnsupportedError("the model has no enabled INT8 quantizers: int8-debug needs a QAT checkpoint "
                               "(`edgekit compress` writes them)")
    modules = dict(model.named_modules())
    captured: dict = {}
    hooks = [modules[name].register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, _flat(o)))
             for name in layers]
    if detector:
        hooks.append(model.backbone.register_forward_hook(lambda m, i, o: captured.__setitem__("__output__", _flat(o))))
    switch = _Switch(model, layers)
    everything = set(layers)
    configs = {"float": set(), "int8": everything,
               **{f"alone:{n}": {n} for n in layers}, **{f"keep:{n}": everything - {n} for n in layers}}

    def run(quantised: set[str]) -> list[tuple[dict, torch.Tensor]]:
        switch.only(quantised)
        outs = []
        with torch.no_grad():
            for x in batches:
                captured.clear()
                out = _model_output(model, x, detector, captured)
                outs.append((dict(captured), out))
        return outs

    try:
        log(f"int8-debug: {len(layers)} quantised layers, {sum(_batch_len(b) for b in batches)} frames, "
            f"{len(configs)} passes")
        ref = run(set())
        full = run(everything)
        layer_stats = {n: _Stats() for n in layers}
        out_all, agree_all = _Stats(), _Agreement(kind, detector)
        for (rl, ro), (ql, qo) in zip(ref, full):
            for n in layers:
                if rl.get(n) is not None and ql.get(n) is not None:
                    layer_stats[n].add(rl[n], ql[n])
            out_all.add(ro, qo)
            agree_all.add(ro, qo)
        rows = []
        for n in layers:
            alone, kept, kept_agree = _Stats(), _Stats(), _Agreement(kind, detector)
            for (rl, _), (al, _) in zip(ref, run({n})):
                if rl.get(n) is not None and al.get(n) is not None:
                    alone.add(rl[n], al[n])
            for (_, ro), (_, ko) in zip(ref, run(everything - {n})):
                kept.add(ro, ko)
                kept_agree.add(ro, ko)
            s_all, s_kept = out_all.sqnr(), kept.sqnr()
            rows.append({"layer": n, "type": type(modules[n]).__name__,
                         "sqnr_db": layer_stats[n].sqnr(), "cosine": layer_stats[n].cosine(),
                         "rel_err": layer_stats[n].rel_err(), "alone_sqnr_db": alone.sqnr(),
                         "kept_float_output_sqnr_db": s_kept,
                         "gain_db": None if s_all is None or s_kept is None else round(s_kept - s_all, 3),
                         "kept_float_agreement": kept_agree.value()})
        rows.sort(key=lambda r: (-(r["gain_db"] if r["gain_db"] is not None else -1e9),
                                 r["alone_sqnr_db"] if r["alone_sqnr_db"] is not None else 1e9))
        for i, r in enumerate(rows, 1):
            r["rank"] = i
        suggestion, steps = [], []
        agreement = agree_all.value()
        helpful = sorted((r for r in rows if r["gain_db"] and r["gain_db"] > 0),   # agreement first, then SQNR
                         key=lambda r: (-(r["kept_float_agreement"] or 0), -r["gain_db"]))
        for r in helpful:
            if agreement is None or agreement >= target_agreement or len(suggestion) >= max_keep:
                break
            suggestion.append(r["layer"])
            a = _Agreement(kind, detector)
            for (_, ro), (_, ko) in zip(ref, run(everything - set(suggestion))):
                a.add(ro, ko)
            agreement = a.value()
            steps.append({"keep_float": list(suggestion), "agreement": agreement})
    finally:
        switch.restore()
        for h in hooks:
            h.remove()
    return {"layers": rows, "frames": sum(_batch_len(b) for b in batches), "quantised_layers": len(layers),
            "output": "backbone features" if detector else "model output",
            "output_sqnr_db": out_all.sqnr(), "agreement": agree_all.value(),
            "agreement_metric": _Agreement(kind, detector).name, "target_agreement": target_agreement,
            "suggest_keep_float": suggestion, "suggestion_steps": steps}


class _Agreement:
    """Share of frames (labels, for multi-label) on which INT8 answers as float; None for detectors."""

    def __init__(self, kind: str, detector: bool):
        self.kind, self.detector = kind, detector
        self.same = self.total = 0
        self.name = None if detector else ("label_agreement" if kind == MULTI_LABEL else "top1_agreement")

    def add(self, ref: torch.Tensor, cand: torch.Tensor) -> None:
        if self.detector or ref is None or cand is None or ref.shape != cand.shape:
            return
        a, b = _answers(ref, self.kind), _answers(cand, self.kind)
        self.same += int((a == b).sum())
        self.total += a.numel()

    def value(self) -> float | None:
        return round(self.same / self.total, 6) if self.total else None


def _batch_len(b) -> int:
    return len(b) if isinstance(b, (list, tuple)) else int(b.shape[0])


@contextlib.contextmanager
def _float_model(model: nn.Module):
    """The QAT model with every quantizer off (its float twin, same weights); back on afterwards."""
    from edge.ml.quantization import quantized_layers

    switch = _Switch(model, quantized_layers(model))
    switch.only(set())
    try:
        yield model
    finally:
        switch.restore()


def accuracy(model: nn.Module, dataset, batch_size: int = 64) -> float | None:
    """Top-1 accuracy (exact match for multi-label) on a labelled classifier dataset; None for detectors."""
    kind = model.edge_config.task.kind
    if kind == DETECTION or dataset is None or not len(dataset):
        return None
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    right = total = 0
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            ok = ((out > 0) == (y > 0.5)).all(1) if kind == MULTI_LABEL else out.argmax(1) == y
            right += int(ok.sum())
            total += len(y)
    return right / total if total else None


@torch_threads()
def accuracy_loss(model: nn.Module, dataset) -> dict | None:
    """{"float", "int8", "delta_points"} of a QAT model against its float self on labelled frames."""
    q = accuracy(model, dataset)
    if q is None:
        return None
    with _float_model(model):
        f = accuracy(model, dataset)
    return {"float": round(f, 6), "int8": round(q, 6), "delta_points": round((q - f) * 100, 3), "frames": len(dataset)}


def to_markdown(report: dict, top: int = 10) -> str:
    """The ranked layer table and the verdict."""
    metric = report.get("agreement_metric") or "agreement"
    lines = [f"INT8 vs float on {report['frames']} calibration frames: {report['output']} SQNR "
             f"{_fmt(report['output_sqnr_db'])} dB, {metric} {_fmt(report['agreement'])}"]
    acc = report.get("accuracy")
    if acc:
        lines.append(f"accuracy on {acc['frames']} test frames: float {acc['float']:.4f}, INT8 {acc['int8']:.4f} "
                     f"({acc['delta_points']:+.2f} points)")
    lines += ["", "| rank | layer | type | SQNR dB (all INT8) | alone dB | output dB kept float | gain dB | agreement kept float |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["layers"][:top]:
        lines.append(f"| {r['rank']} | {r['layer']} | {r['type']} | {_fmt(r['sqnr_db'])} | {_fmt(r['alone_sqnr_db'])} | "
                     f"{_fmt(r['kept_float_output_sqnr_db'])} | {_fmt(r['gain_db'])} | {_fmt(r['kept_float_agreement'])} |")
    if len(report["layers"]) > top:
        lines.append(f"| ... | {len(report['layers']) - top} more in the JSON | | | | | | |")
    lines.append("")
    if report["suggest_keep_float"]:
        last = report["suggestion_steps"][-1]
        lines.append(f"keep float: {','.join(report['suggest_keep_float'])} ({metric} {_fmt(last['agreement'])}); "
                     f"write it with --keep-float {','.join(report['suggest_keep_float'])} --out NEW.pt")
    else:
        lines.append(f"no layer to keep float: {metric} {_fmt(report['agreement'])} meets "
                     f"{report['target_agreement']:g}" if report["agreement"] is not None
                     and report["agreement"] >= report["target_agreement"] else
                     "no single layer's precision explains the loss (no layer gains SQNR when kept float)")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def debug_frames(model: nn.Module, meta: dict, data=None, n: int = 64, batch_size: int = 32) -> tuple[list, object]:
    """(calibration batches, labelled test set or None): the checkpoint's training split as the sweep
    calibrates on (`compress.data.calibration_batches`) and its test split, or phantom frames at the
    model's preprocessing without `data`."""
    from compress.data import calibration_batches, split_datasets

    if data is None:
        from export.parity import frames

        xs = [torch.from_numpy(f) for f in frames(model.edge_config.preprocess, n, seed=1)]
        if model.edge_config.task.kind == DETECTION:
            return [xs[i:i + 4] for i in range(0, len(xs), 4)], None
        return [torch.stack(xs[i:i + batch_size]) for i in range(0, len(xs), batch_size)], None
    train, test = split_datasets(data, model, meta, augment=False)
    return calibration_batches(model, train, n, batch_size), test


def run(ckpt, data=None, frames: int = 64, keep=None, out=None, max_keep: int = MAX_KEEP,
        target_agreement: float = TARGET_AGREEMENT, log=lambda msg: None) -> dict:
    """`edgekit int8-debug`: debug `ckpt` on its calibration frames; with `keep` ("auto" or layer names)
    and `out`, write the checkpoint with those layers kept float. Returns the report."""
    from edge.core.errors import BadInputError
    from edge.ml.quantization import is_quantized, load_quantized

    model, meta = load_quantized(ckpt)
    if not is_quantized(model):
        raise BadInputError(f"{Path(ckpt).name} is not an INT8 (QAT) checkpoint; run `edgekit compress` on it "
                            f"first and debug one of its -int8 checkpoints")
    if keep and out is None:
        raise BadInputError("--keep-float writes a new checkpoint: add --out NEW.pt")
    batches, test = debug_frames(model, meta, data, frames)
    report = debug_int8(model, batches, max_keep=max_keep, target_agreement=target_agreement, log=log)
    report["checkpoint"] = str(ckpt)
    report["accuracy"] = accuracy_loss(model, test)
    if keep:
        layers = report["suggest_keep_float"] if keep == ["auto"] else keep
        if not layers:
            raise BadInputError("--keep-float auto: no layer to keep float (see the table); the checkpoint is "
                                "written only when it changes something")
        report["kept_float"] = write_kept_float(ckpt, layers, out, report, test)
    return report


def write_kept_float(ckpt, layers: list[str], out, report: dict | None = None, test=None) -> dict:
    """Copy `ckpt` to `out` with `layers` float (quantizers disabled), recorded in its quantization field
    (`keep_float`) and compression history; returns what was written (and the accuracy, with `test`)."""
    from edge.ml.checkpoint import load_checkpoint, save_checkpoint
    from edge.ml.quantization import keep_float, load_quantized, quantization_meta

    model, meta = load_quantized(ckpt)
    raw = load_checkpoint(ckpt)
    old = raw.get("quantization") or {}
    kept = sorted(set(old.get("keep_float") or []) | set(keep_float(model, layers)))
    quant = quantization_meta(model, config=old.get("config", "INT8_DEFAULT_CFG"),
                              calib_samples=old.get("calib_samples"), keep_float=kept)
    step = {"step": "keep-float", "layers": list(layers), "by": "edgekit int8-debug"}
    if report:
        step["agreement_before"] = report.get("agreement")
        steps = report.get("suggestion_steps") or []
        step["agreement_after"] = next((s["agreement"] for s in steps if s["keep_float"] == list(layers)), None)
    history = list(meta.get("compression") or []) + [step]
    prov = {k: v for k, v in (meta.get("provenance") or {}).items() if k not in ("edgekit", "created")}
    path = save_checkpoint(out, model, provenance=prov, compression=history, quantization=quant)
    return {"checkpoint": str(path), "keep_float": kept, "accuracy": accuracy_loss(model, test)}
