"""`export_bundle`: checkpoints -> one bundle directory the device needs and nothing else.

Order of work: the target check and the destination check run first (a refused request writes
nothing and loads nothing heavy), then each checkpoint is loaded, exported at the requested
precision, checked for parity on phantom frames, hashed, and described in manifest.json; the whole
directory is published atomically (export.atomic).

Jetson family + int8: each model carries its INT8 Q/DQ ONNX and an fp16 fallback (its float twin:
the QAT weights without quantizers) for the Jetsons without INT8 (Nano) and for TensorRT releases
that cannot build a Q/DQ graph. No fp32 copy: every Jetson runs fp16, and fp32 is only the parity
reference. A single device target gets only the precision asked for.

INT8 comes in the form the target runs (`targets.Target.int8_form`, `export.onnx`): TensorRT targets
get ModelOpt's Q/DQ graph untouched; the `cpu` target gets it rewritten for ONNX Runtime's integer
kernels (`export.int8_ort`). Either is checked for parity against the PyTorch QAT model, and the
entry's `int8` block says which form it is, what the rewrite did and which kernels ORT fused. The
ORT form adds a few quantisation points of its own (calibrated); should it miss the parity gate,
the bundle ships the TensorRT form instead (exact, slower on ORT), says so in a warning and records
why under `int8.refused`. A QAT checkpoint with layers kept float (`edgekit int8-debug --keep-float`)
names them there too.

    >>> manifest = export_bundle(["plane.pt", "det.pt"], "jetson-orin-nano", "fp16", "out/bundle")  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from edge import __version__
from edge.core.clock import utc_now
from edge.core.errors import BadInputError
from edge.core.tasks import DETECTION
from export.atomic import check_destination, claim, staged_dir
from export.manifest import MANIFEST, SCHEMA_VERSION, fallback_entry, model_entry, validate, write_manifest
from runtime.bundle import sha256_file

PARITY_FRAMES = {"classifier": 100, "detection": 32}


def _fallback_precision(target, precision: str) -> str | None:
    if precision == "int8" and target.kind == "family":
        return "fp16"
    return None


def _names(metas: list[dict]) -> list[str]:
    """Model names in the bundle: the task name, with the architecture when two share a task."""
    tasks = [m["task"]["name"] for m in metas]
    names = [t if tasks.count(t) == 1 else f"{t}-{m['model']['name']}" for t, m in zip(tasks, metas)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BadInputError(f"two checkpoints would both be bundled as {dup[0]!r}; bundle one model per "
                            f"task and architecture")
    return names


def _stats(model) -> dict:
    from edge.ml.report import model_report

    return model_report(model, tuple(model.edge_config.input_size))


def model_bytes(stats: dict, precision: str) -> int:
    """Weights plus the peak activation working set at `precision` (what the memory check weighs)."""
    from edge.ml.report import BYTES_PER

    return int(stats["weights_bytes"][precision] + stats["activation_bytes"] * BYTES_PER[precision] / 4)


def _parity_set(model, kind: str, n_frames: int | None) -> tuple:
    from export.parity import phantom_set

    n = n_frames or PARITY_FRAMES["detection" if kind == DETECTION else "classifier"]
    labels = model.edge_config.labels if kind == DETECTION else None
    return phantom_set(model.edge_config.preprocess, n, labels=labels)


def _ort_form(model, path: Path, kind: str, frames: tuple) -> tuple[dict, dict]:
    """Write the ONNX Runtime INT8 form at `path`: (its onnx info, its parity report, not raised)."""
    from export.onnx import export_onnx
    from export.parity import check_parity

    inputs, truth = frames
    info = export_onnx(model, path, "int8", int8_form="onnxruntime")
    return info, check_parity(model, path, "int8", inputs, kind, truth=truth, raise_on_fail=False)


def _missed(parity: dict) -> str:
    return f"{parity['metric']} = {parity[parity['metric']]:.6g}, required {parity['required']}"


def _export_one(model, name: str, precision: str, kind: str, tmp: Path, frames: tuple,
                int8_form: str = "tensorrt", log=lambda msg: None) -> tuple:
    """(onnx info, sha256, parity) of one ONNX file, checked on `frames` (`_parity_set`); the ONNX
    Runtime INT8 form falls back to the TensorRT form (exact, but run by ORT as fake quantisation)
    when it misses the parity gate."""
    from export.onnx import export_onnx
    from export.parity import check_parity

    path = tmp / f"{name}.{precision}.onnx"
    if precision == "int8" and int8_form != "tensorrt":
        info, parity = _ort_form(model, path, kind, frames)
        if parity["passed"]:
            return info, sha256_file(path), parity
        log(f"warning: {name}: the {int8_form} INT8 form missed parity ({_missed(parity)}); shipping the "
            f"tensorrt form, which ONNX Runtime runs slower (fake quantisation)")
        info = export_onnx(model, path, precision, int8_form="tensorrt")
        info["int8"]["refused"] = {"form": int8_form, "parity": _missed(parity)}
    else:
        info = export_onnx(model, path, precision, int8_form=int8_form)
    inputs, truth = frames
    parity = check_parity(model, path, precision, inputs, kind, truth=truth)
    return info, sha256_file(path), parity


def _ort_variant(model, name: str, kind: str, tmp: Path, frames: tuple, log) -> tuple | None:
    """Beside a TensorRT-form INT8 model, its ONNX Runtime form for the device's ORT CPU backend, which
    runs the TensorRT form as fake quantisation, slower than fp32 (`runtime.backends.ort`). None, with a
    warning, when it misses parity: that backend then runs the TensorRT form."""
    path = tmp / f"{name}.int8-ort.onnx"
    info, parity = _ort_form(model, path, kind, frames)
    if parity["passed"]:
        return info, sha256_file(path), parity
    path.unlink()
    log(f"warning: {name}: the onnxruntime INT8 form missed parity ({_missed(parity)}); on a device without "
        f"TensorRT, ONNX Runtime will run the tensorrt form, slower than fp32")
    return None


def export_bundle(checkpoints: list, target: str, precision: str, out, force: bool = False,
                  parity_frames: int | None = None, log=lambda msg: None, model: str | None = None) -> dict:
    """Export every checkpoint at `precision` for `target` into the bundle directory `out`; returns the manifest.

    `model` names the zoo model of any plain third-party state_dict among `checkpoints` (e.g.
    `model="sononet16"` for the released SonoNet16.pth); edgekit checkpoints name their own.
    """
    from targets import check_request, get_target

    t = get_target(target)
    check_request(t, precision, 0)                  # refusal first: nothing loaded, nothing written
    check_destination(out, force)
    if not checkpoints:
        raise BadInputError("no checkpoints given; pass one or more .pt files written by edgekit")
    with claim(out, force):         # from here a second export of the same --out is refused
        return _export(checkpoints, t, precision, out, force, parity_frames, log, model)


def _export(checkpoints, t, precision, out, force, parity_frames, log, model) -> dict:
    from export.checkpoints import load_for_export, require_int8_ready
    from targets import check_request

    loaded = []
    for path in checkpoints:
        net, meta = load_for_export(path, model=model)
        if precision == "int8":
            require_int8_ready(path, meta)
        float_twin = load_for_export(path, float_only=True)[0] if meta.get("quantization") else net
        loaded.append((path, net, meta, float_twin, _stats(float_twin)))
    names = _names([m for _, _, m, _, _ in loaded])
    check = check_request(t, precision, sum(model_bytes(s, precision) for *_, s in loaded))
    for w in check.warnings:
        log(f"warning: {w}")
    fallback = _fallback_precision(t, precision)
    entries = []
    from edge.ml.training.batches import torch_threads

    with torch_threads(), staged_dir(out, force) as tmp:
        for name, (path, net, meta, twin, stats) in zip(names, loaded):
            kind = meta["task"]["kind"]
            log(f"{name}: {Path(path).name} -> {name}.{precision}.onnx")
            frames = _parity_set(net, kind, parity_frames)      # one phantom set for every file of this model
            info, sha, parity = _export_one(net, name, precision, kind, tmp, frames, t.int8_form, log)
            if "int8" in info:
                keep = (meta.get("quantization") or {}).get("keep_float")
                info["int8"] = {**info["int8"], **({"keep_float": list(keep)} if keep else {})}
            entry = model_entry(name, meta, info, sha, stats, parity)
            entry["source"] = {"checkpoint": Path(path).name, "quantization": bool(meta.get("quantization"))}
            if fallback:
                log(f"{name}: fallback -> {name}.{fallback}.onnx")
                entry["fallbacks"] = [fallback_entry(*_export_one(twin, name, fallback, kind, tmp, frames))]
            if precision == "int8" and info["int8"]["form"] == "tensorrt":
                variant = _ort_variant(net, name, kind, tmp, frames, log)
                if variant is not None:
                    log(f"{name}: for ONNX Runtime on the CPU -> {name}.int8-ort.onnx")
                    entry["fallbacks"] = [*entry.get("fallbacks", []), fallback_entry(*variant)]
            entries.append(entry)
        manifest = {"schema_version": SCHEMA_VERSION, "edgekit_version": __version__, "created": utc_now(),
                    "target": t.name, "precision": precision, "warnings": check.warnings, "models": entries}
        validate(manifest)
        write_manifest(tmp / MANIFEST, manifest)
    return manifest
