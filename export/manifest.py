"""The bundle manifest: one entry per model (docs/ARCHITECTURE.md), and reading it back for `inspect`.

The manifest is validated against the runtime's schema (`runtime/manifest.schema.json`) before a
bundle is published, so export never writes a bundle the device would refuse. Beyond the schema's
fields an entry may carry `fallbacks`: the same model at another precision, for the devices of a
family that cannot run the primary one (a Jetson Nano has no INT8: it builds its engine from the
fp16 fallback). An INT8 model in the TensorRT form also gets its ONNX Runtime form as a fallback
(`<name>.int8-ort.onnx`), which the device's ONNX Runtime CPU backend runs instead (ORT runs the
TensorRT form as fake quantisation, slower than fp32). Each fallback has its own `onnx`, `sha256`,
tensors and `parity`. An int8 ONNX (primary or fallback) also carries `int8`: its form (`tensorrt` or
`onnxruntime`, `export.onnx`), for the ONNX Runtime form what the rewrite did and the kernels ORT
fused at export, and any layers the QAT checkpoint keeps float.
"""
from __future__ import annotations

import json
from pathlib import Path

from edge.core.errors import FileFormatError
from edge.core.tasks import SINGLE_LABEL, activation_for
from runtime.bundle import MANIFEST, SCHEMA_PATH, SCHEMA_VERSION  # the device's reader owns the contract
from runtime.temporal import DEFAULTS as HYSTERESIS_DEFAULTS, PLANE_TASKS

__all__ = ["MANIFEST", "SCHEMA_VERSION", "model_entry", "fallback_entry", "validate", "write_manifest",
           "verify_files", "summary_rows"]
STATS_KEYS = ("params", "macs", "weights_bytes", "activation_bytes", "activation_total_bytes")


def postprocess_for(kind: str, threshold: float = 0.5, task: str | None = None) -> dict:
    """How outputs become answers on the device: the task kind's activation (`edge.core.tasks`) and
    threshold; a single-label plane model also gets the runtime's hysteresis defaults (a stable plane
    state and "plane found" events, `runtime.temporal`)."""
    post = {"activation": activation_for(kind), "threshold": threshold}
    if kind == SINGLE_LABEL and task in PLANE_TASKS:
        post["hysteresis"] = dict(HYSTERESIS_DEFAULTS)
    return post


def model_entry(name: str, meta: dict, onnx_info: dict, sha256: str, stats: dict, parity: dict) -> dict:
    """A manifest model entry from checkpoint metadata, the ONNX export and its parity report."""
    task, config = meta["task"], meta["config"]
    entry = {
        "name": name, "task": task["name"], "kind": task["kind"], "labels": list(task["labels"]),
        "architecture": meta["model"]["name"], "precision": onnx_info["precision"],
        "onnx": onnx_info["file"], "sha256": sha256, "bytes": onnx_info["bytes"],
        "opset": onnx_info["opset"], "qdq_pairs": onnx_info["qdq_pairs"],
        "inputs": onnx_info["inputs"], "outputs": onnx_info["outputs"],
        "preprocess": config["preprocess"], "postprocess": postprocess_for(task["kind"], task=task["name"]),
        "stats": {k: stats[k] for k in STATS_KEYS if k in stats},
        "parity": parity, "compression": list(meta.get("compression") or []), "engines": [],
    }
    if onnx_info.get("int8"):
        entry["int8"] = onnx_info["int8"]
    return entry


def fallback_entry(onnx_info: dict, sha256: str, parity: dict) -> dict:
    entry = {"precision": onnx_info["precision"], "onnx": onnx_info["file"], "sha256": sha256,
             "bytes": onnx_info["bytes"], "inputs": onnx_info["inputs"], "outputs": onnx_info["outputs"],
             "parity": parity}
    if onnx_info.get("int8"):
        entry["int8"] = onnx_info["int8"]
    return entry


def validate(manifest: dict) -> None:
    """Check against the runtime's JSON Schema (the contract with the device)."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    try:
        jsonschema.validate(manifest, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise FileFormatError(f"manifest invalid at {where}: {exc.message}") from None


def summary_rows(manifest: dict) -> list[dict]:
    """One row per ONNX file (primary and fallbacks) for `edgekit inspect`."""
    rows = []
    for m in manifest["models"]:
        for variant in [m, *m.get("fallbacks", [])]:
            p = variant.get("parity") or {}
            metric = p.get("metric")
            ort = (variant.get("int8") or {}).get("form") == "onnxruntime"    # ORT's form: never an engine
            rows.append({"model": m["name"], "task": m["task"], "architecture": m.get("architecture"),
                         "precision": variant["precision"] + ("/onnxruntime" if ort else ""), "onnx": variant["onnx"],
                         "mb": round(variant.get("bytes", 0) / 1e6, 2),
                         "macs_g": round(m.get("stats", {}).get("macs", 0) / 1e9, 3),
                         "parity": f"{metric}={p[metric]:.4g}" if metric else "-",
                         "engines": 0 if ort else sum(e.get("precision", m["precision"]) == variant["precision"]
                                                      for e in m.get("engines", []))})
    return rows


def write_manifest(path, manifest: dict) -> None:
    """Write (or rewrite, after engines are built) manifest.json atomically."""
    from export.atomic import write_json_atomic

    write_json_atomic(path, manifest)


def verify_files(root, manifest: dict) -> None:
    """Refuse, by name, any ONNX or engine (primary or fallback) whose sha256 changed since export."""
    from edge.core.errors import MissingFileError
    from runtime.bundle import sha256_file

    root = Path(root)
    for m in manifest["models"]:
        for variant in [m, *m.get("fallbacks", [])]:
            for f, sha in [(variant["onnx"], variant["sha256"]),
                           *((e["file"], e["sha256"]) for e in variant.get("engines", []))]:
                if not (root / f).is_file():
                    raise MissingFileError(f"bundle file {f} of model {m['name']!r} is missing from {root}; "
                                           f"re-export the bundle")
                if sha256_file(root / f) != sha:
                    raise FileFormatError(f"bundle file {f} of model {m['name']!r} does not match its sha256 "
                                          f"in manifest.json (modified after export); re-export the bundle")
