"""Check a parsed manifest before the runtime trusts it.

`jsonschema` is not a base dependency (a device install stays small), so the JSON Schema in
`manifest.schema.json` is used when it is importable, and the essential checks below always run:
they are what the runtime relies on, each failure a one-line `FileFormatError` naming the field.
"""
from __future__ import annotations

import json
from pathlib import Path

from edge.errors import BadInputError, FileFormatError
from edge.preprocess import validate_spec
from edge.tasks import DETECTION, KINDS

MODEL_KEYS = ("name", "task", "kind", "labels", "precision", "onnx", "sha256", "inputs", "outputs",
              "preprocess")
ROLES = ("logits", "boxes", "scores", "labels", "cam")
FIX = "re-export the bundle with this edgekit version"


def _fail(where: str, what: str) -> None:
    raise FileFormatError(f"manifest.json: {where}: {what}; {FIX}")


def check_with_jsonschema(manifest: dict, schema_path: Path) -> None:
    """Validate against the JSON Schema when `jsonschema` is installed; silently skip otherwise."""
    try:
        import jsonschema
    except ImportError:
        return
    schema = json.loads(schema_path.read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(manifest))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        _fail(where, error.message)


def _check_tensors(where: str, tensors, outputs: bool) -> None:
    if not isinstance(tensors, list) or not tensors:
        _fail(where, "must be a non-empty list of {name, shape, dtype}")
    for i, t in enumerate(tensors):
        if not isinstance(t, dict) or not {"name", "shape", "dtype"} <= set(t):
            _fail(f"{where}[{i}]", f"needs name, shape and dtype, got {t!r}")
        if outputs and t.get("role") not in ROLES:
            _fail(f"{where}[{i}].role", f"{t.get('role')!r} is not one of {', '.join(ROLES)}")


def _check_roles(where: str, kind: str, outputs: list) -> None:
    roles = {o.get("role") for o in outputs}
    if kind == DETECTION and not roles >= {"boxes", "scores", "labels"} and "cam" not in roles:
        _fail(where, f"a detection model needs outputs with roles boxes, scores, labels; got {sorted(roles)}")
    if kind != DETECTION and not roles & {"logits", "cam"}:
        _fail(where, f"a {kind} model needs a 'logits' or 'cam' output; got {sorted(roles)}")


def check_model(i: int, m) -> None:
    """The fields the runtime reads from one model entry."""
    where = f"models[{i}]"
    if not isinstance(m, dict):
        _fail(where, "must be an object")
    missing = [k for k in MODEL_KEYS if k not in m]
    if missing:
        _fail(where, f"missing {', '.join(missing)}")
    if m["kind"] not in KINDS:
        _fail(f"{where}.kind", f"{m['kind']!r} is not one of {', '.join(KINDS)}")
    if not isinstance(m["labels"], list) or not m["labels"]:
        _fail(f"{where}.labels", "must be a non-empty list of names")
    _check_tensors(f"{where}.inputs", m["inputs"], outputs=False)
    _check_tensors(f"{where}.outputs", m["outputs"], outputs=True)
    _check_roles(f"{where}.outputs", m["kind"], m["outputs"])
    try:
        validate_spec(m["preprocess"])
    except BadInputError as exc:
        _fail(f"{where}.preprocess", str(exc))
    for j, f in enumerate(m.get("fallbacks") or []):
        if not isinstance(f, dict) or not {"precision", "onnx", "sha256"} <= set(f):
            _fail(f"{where}.fallbacks[{j}]", "needs precision, onnx and sha256")
    for j, e in enumerate(m.get("engines") or []):
        need = {"file", "gpu", "compute_capability", "tensorrt", "sha256"}
        if not isinstance(e, dict) or not need <= set(e):
            _fail(f"{where}.engines[{j}]", f"needs {', '.join(sorted(need))}")


def check_manifest(manifest, schema_path: Path, schema_version: int) -> None:
    """Raise FileFormatError on the first problem; the version check comes first, it explains most."""
    if not isinstance(manifest, dict):
        _fail("top level", "must be a JSON object")
    version = manifest.get("schema_version")
    if version != schema_version:
        raise FileFormatError(f"manifest.json has schema_version {version!r}, this runtime reads "
                              f"{schema_version}; re-export the bundle or update edgekit on the device")
    models = manifest.get("models")
    if not isinstance(models, list) or not models:
        _fail("models", "must be a non-empty list")
    for i, m in enumerate(models):
        check_model(i, m)
    names = [m["name"] for m in models]
    if len(set(names)) != len(names):
        _fail("models", f"model names must be unique, got {names}")
    check_with_jsonschema(manifest, schema_path)
