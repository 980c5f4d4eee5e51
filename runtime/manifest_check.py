"""Check a parsed manifest before the runtime trusts it.

`jsonschema` is not a base dependency (a device install stays small), so the JSON Schema in
`manifest.schema.json` is used when it is importable, and the essential checks below always run:
they are what the runtime relies on, each failure a one-line `FileFormatError` naming the field.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from edge.core.errors import BadInputError, FileFormatError
from edge.core.preprocess import INTERPOLATIONS, validate_spec
from edge.core.tasks import DETECTION, KINDS, list_tasks

MODEL_KEYS = ("name", "task", "kind", "labels", "precision", "onnx", "sha256", "inputs", "outputs",
              "preprocess")
ROLES = ("logits", "boxes", "scores", "labels", "cam")
FIX = "re-export the bundle with this edgekit version"

# The bounds live in the schema (one place; export validates against it too) and are enforced here
# as well, because a device install may lack jsonschema and an unbounded value costs memory, not a line.
_DEFS = json.loads(Path(__file__).with_name("manifest.schema.json").read_text())["$defs"]
_PRE = _DEFS["preprocess"]["properties"]
RESIZE_MAX = int(_PRE["resize"]["items"]["maximum"])
ROI_MAX = int(next(o for o in _PRE["roi"]["oneOf"] if o.get("type") == "array")["items"]["maximum"])
DIM_MAX = int(next(o for o in _DEFS["dim"]["anyOf"] if o.get("type") == "integer")["maximum"])
RANK_MAX = int(_DEFS["tensor"]["properties"]["shape"]["maxItems"])
DTYPES = tuple(_DEFS["tensor"]["properties"]["dtype"]["enum"])
PRECISIONS = tuple(_DEFS["model"]["properties"]["precision"]["enum"])
ACTIVATIONS = tuple(_DEFS["model"]["properties"]["postprocess"]["properties"]["activation"]["enum"])
NAME_RE = re.compile(_DEFS["model"]["properties"]["name"]["pattern"])
NAME_MAX = int(_DEFS["model"]["properties"]["name"]["maxLength"])
SHA_RE = re.compile(_DEFS["model"]["properties"]["sha256"]["pattern"])
_HYST = _DEFS["model"]["properties"]["postprocess"]["properties"]["hysteresis"]
HYSTERESIS_KEYS = tuple(_HYST["properties"])
HYSTERESIS_REQUIRED = tuple(_HYST["required"])
MIN_FRAMES_MAX = int(_HYST["properties"]["min_frames"]["maximum"])


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


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_name(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _check_dim(where: str, dim) -> None:
    if dim is None or isinstance(dim, str):
        return  # dynamic
    if not _is_int(dim) or not 1 <= dim <= DIM_MAX:
        _fail(where, f"{dim!r} is not a size; expected an integer 1..{DIM_MAX} (or a name / null for a dynamic dim)")


def _check_tensors(where: str, tensors, outputs: bool) -> None:
    if not isinstance(tensors, list) or not tensors:
        _fail(where, "must be a non-empty list of {name, shape, dtype}")
    for i, t in enumerate(tensors):
        if not isinstance(t, dict) or not {"name", "shape", "dtype"} <= set(t):
            _fail(f"{where}[{i}]", f"needs name, shape and dtype, got {t!r}")
        if not _is_name(t["name"]):
            _fail(f"{where}[{i}].name", f"{t['name']!r} is not a tensor name")
        shape = t["shape"]
        if not isinstance(shape, list) or len(shape) > RANK_MAX:
            _fail(f"{where}[{i}].shape", f"{shape!r} is not a list of at most {RANK_MAX} dims")
        for j, dim in enumerate(shape):
            _check_dim(f"{where}[{i}].shape[{j}]", dim)
        if t["dtype"] not in DTYPES:
            _fail(f"{where}[{i}].dtype", f"{t['dtype']!r} is not one of {', '.join(DTYPES)}")
        if outputs and t.get("role") not in ROLES:
            _fail(f"{where}[{i}].role", f"{t.get('role')!r} is not one of {', '.join(ROLES)}")
    names = [t["name"] for t in tensors]
    if len(set(names)) != len(names):
        _fail(where, f"tensor names must be unique, got {names}")


FLOATS = ("float32", "float16")
# what the runtime's postprocessing reads from each role: (dtypes, ranks, required last dim)
ROLE_TENSORS = {"logits": (FLOATS, (1, 2), None), "cam": (FLOATS, (3, 4), None), "boxes": (FLOATS, (2, 3), 4),
                "scores": (FLOATS, (1, 2), None), "labels": (("int64", "int32"), (1, 2), None)}


def _check_roles(where: str, kind: str, outputs: list) -> None:
    roles = [o.get("role") for o in outputs]
    if len(set(roles)) != len(roles):
        _fail(where, f"each role may appear once, got {roles}")
    for i, o in enumerate(outputs):
        dtypes, ranks, last = ROLE_TENSORS[o["role"]]
        shape = o["shape"]
        if o["dtype"] not in dtypes or len(shape) not in ranks or (last is not None and shape[-1] != last):
            _fail(f"{where}[{i}]", f"a {o['role']} output is {'/'.join(dtypes)} of rank {' or '.join(map(str, ranks))}"
                                   + (f" with last dim {last}" if last else "")
                                   + f", got {o['dtype']} {shape}")
        if o["role"] == "logits" and len(shape) == 2 and _is_int(shape[0]) and shape[0] != 1:
            _fail(f"{where}[{i}]", f"logits {shape} are not batch-1 [1, classes]")
    roles = set(roles)
    if kind == DETECTION and not roles >= {"boxes", "scores", "labels"} and "cam" not in roles:
        _fail(where, f"a detection model needs outputs with roles boxes, scores, labels; got {sorted(roles)}")
    if kind != DETECTION and not roles & {"logits", "cam"}:
        _fail(where, f"a {kind} model needs a 'logits' or 'cam' output; got {sorted(roles)}")


def _check_classes(where: str, m: dict) -> None:
    """A classifier's labels name its classes: as many as the logits (last dim) or cam (dim -3) have."""
    if m["kind"] == DETECTION:
        return  # detector labels are 1-based ids; the graph does not say how many
    for o in m["outputs"]:
        axis = {"logits": -1, "cam": -3}.get(o["role"])
        if axis is None or len(o["shape"]) < -axis or not _is_int(o["shape"][axis]):
            continue
        if o["shape"][axis] != len(m["labels"]):
            _fail(f"{where}.labels", f"{len(m['labels'])} labels but output {o['name']!r} {o['shape']} has "
                                     f"{o['shape'][axis]} classes; expected one label per class")


def _check_numbers(where: str, values, positive: bool = False) -> None:
    if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
        _fail(where, f"{values!r} is not a non-empty list of finite numbers")
    if positive and min(values) <= 0:
        _fail(where, f"{values!r} must be > 0")


def _check_preprocess(where: str, spec, inputs: list) -> None:
    if not isinstance(spec, dict):
        _fail(where, "must be an object with resize and normalize")
    size = spec.get("resize")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and 1 <= v <= RESIZE_MAX for v in size)):
        _fail(f"{where}.resize", f"{size!r} is not [height, width]; expected two integers 1..{RESIZE_MAX}")
    roi = spec.get("roi")
    if roi is not None and not (isinstance(roi, list) and len(roi) == 4
                                and all(_is_int(v) and 0 <= v <= ROI_MAX for v in roi)
                                and roi[0] < roi[1] and roi[2] < roi[3]):
        _fail(f"{where}.roi", f"{roi!r} is not [y0, y1, x0, x1]; expected four integers 0..{ROI_MAX} "
                              f"(source-frame pixels) with y0 < y1 and x0 < x1, or null")
    if "grey" in spec and not isinstance(spec["grey"], bool):
        _fail(f"{where}.grey", f"{spec['grey']!r} is not true or false")
    if not isinstance(spec.get("interpolation", "linear"), str) or \
            spec.get("interpolation", "linear") not in INTERPOLATIONS:
        _fail(f"{where}.interpolation", f"{spec.get('interpolation')!r} is not one of {', '.join(INTERPOLATIONS)}")
    norm = spec.get("normalize")
    if not isinstance(norm, dict) or norm.get("mode") not in ("meanstd", "zscore"):
        _fail(f"{where}.normalize", f"{norm!r} is not {{mode: meanstd | zscore, ...}}")
    if "scale" in norm and not (_is_number(norm["scale"]) and norm["scale"] > 0):
        _fail(f"{where}.normalize.scale", f"{norm['scale']!r} is not a finite number > 0")
    dims = inputs[0]["shape"] if len(inputs) == 1 else []
    channels = dims[1] if len(dims) == 4 and _is_int(dims[1]) else (1 if spec.get("grey", True) else 3)
    if spec.get("grey", True) and channels != 1:
        _fail(f"{where}.grey", f"grey frames have 1 channel but input {dims} takes {channels}")
    for key in ("mean", "std"):
        if key in norm:
            _check_numbers(f"{where}.normalize.{key}", norm[key], positive=key == "std")
            if len(norm[key]) not in (1, channels):
                _fail(f"{where}.normalize.{key}", f"{len(norm[key])} values for a {channels}-channel input; "
                                                  f"expected {'1' if channels == 1 else f'1 or {channels}'}")


def _check_postprocess(where: str, post) -> None:
    if post is None:
        return
    if not isinstance(post, dict):
        _fail(where, f"{post!r} is not an object")
    if "activation" in post and post["activation"] not in ACTIVATIONS:
        _fail(f"{where}.activation", f"{post['activation']!r} is not one of {', '.join(ACTIVATIONS)}")
    for key in ("threshold", "cam_threshold"):
        if key in post and not (_is_number(post[key]) and 0 <= post[key] <= 1):
            _fail(f"{where}.{key}", f"{post[key]!r} is not a number in [0, 1]")
    if "hysteresis" in post:
        _check_hysteresis(f"{where}.hysteresis", post["hysteresis"])


def _check_hysteresis(where: str, h) -> None:
    """0 <= leave <= enter <= 1, min_frames 1..MIN_FRAMES_MAX, smooth in [0, 1), nothing else."""
    if not isinstance(h, dict):
        _fail(where, f"{h!r} is not an object {{enter, leave, min_frames}}")
    missing = [k for k in HYSTERESIS_REQUIRED if k not in h]
    unknown = sorted(set(h) - set(HYSTERESIS_KEYS))
    if missing or unknown:
        _fail(where, (f"missing {', '.join(missing)}" if missing else f"unknown key {', '.join(unknown)}")
              + f"; expected {', '.join(HYSTERESIS_KEYS)}")
    for key in ("enter", "leave"):
        if not (_is_number(h[key]) and 0 <= h[key] <= 1):
            _fail(f"{where}.{key}", f"{h[key]!r} is not a number in [0, 1]")
    if h["leave"] > h["enter"]:
        _fail(where, f"leave {h['leave']!r} is above enter {h['enter']!r}; need 0 <= leave <= enter <= 1")
    if not (_is_int(h["min_frames"]) and 1 <= h["min_frames"] <= MIN_FRAMES_MAX):
        _fail(f"{where}.min_frames", f"{h['min_frames']!r} is not an integer 1..{MIN_FRAMES_MAX}")
    if "smooth" in h and not (_is_number(h["smooth"]) and 0 <= h["smooth"] < 1):
        _fail(f"{where}.smooth", f"{h['smooth']!r} is not a number in [0, 1)")


def _check_file_entry(where: str, d, need: tuple[str, ...]) -> None:
    if not isinstance(d, dict) or not set(need) <= set(d):
        _fail(where, f"needs {', '.join(need)}")
    for key in need:
        if key == "compute_capability":
            ok = isinstance(d[key], (str, int, float)) and not isinstance(d[key], bool)
        elif key == "precision":
            ok = d[key] in PRECISIONS
        elif key == "sha256":
            ok = isinstance(d[key], str) and bool(SHA_RE.match(d[key]))
        else:
            ok = _is_name(d[key])
        if not ok:
            _fail(f"{where}.{key}", f"{d[key]!r} is not a valid {key}")


def check_model(i: int, m) -> None:
    """The fields the runtime reads from one model entry: types, bounds and their agreement."""
    where = f"models[{i}]"
    if not isinstance(m, dict):
        _fail(where, "must be an object")
    missing = [k for k in MODEL_KEYS if k not in m]
    if missing:
        _fail(where, f"missing {', '.join(missing)}")
    if not (isinstance(m["name"], str) and NAME_RE.match(m["name"]) and len(m["name"]) <= NAME_MAX):
        _fail(f"{where}.name", f"{m['name']!r} is not a model name; expected letters, digits, _ . - "
                               f"(at most {NAME_MAX})")
    if not isinstance(m["task"], str) or m["task"] not in list_tasks():
        _fail(f"{where}.task", f"{m['task']!r} is not a task this runtime knows; expected one of "
                               f"{', '.join(list_tasks())}")
    if not isinstance(m["kind"], str) or m["kind"] not in KINDS:
        _fail(f"{where}.kind", f"{m['kind']!r} is not one of {', '.join(KINDS)}")
    labels = m["labels"]
    if not isinstance(labels, list) or not labels or not all(_is_name(v) for v in labels):
        _fail(f"{where}.labels", "must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        _fail(f"{where}.labels", f"names must be unique, got {labels}")
    _check_file_entry(where, m, ("precision", "onnx", "sha256"))
    _check_tensors(f"{where}.inputs", m["inputs"], outputs=False)
    _check_tensors(f"{where}.outputs", m["outputs"], outputs=True)
    _check_roles(f"{where}.outputs", m["kind"], m["outputs"])
    _check_classes(where, m)
    _check_preprocess(f"{where}.preprocess", m["preprocess"], m["inputs"])
    try:
        validate_spec(m["preprocess"])
    except BadInputError as exc:
        _fail(f"{where}.preprocess", str(exc))
    _check_postprocess(f"{where}.postprocess", m.get("postprocess"))
    if m.get("architecture") is not None and not isinstance(m["architecture"], str):
        _fail(f"{where}.architecture", f"{m['architecture']!r} is not a name")
    for key in ("stats", "parity"):
        if m.get(key) is not None and not isinstance(m[key], dict):
            _fail(f"{where}.{key}", f"{type(m[key]).__name__} is not an object")
    for key in ("fallbacks", "engines"):
        if m.get(key) is not None and not isinstance(m[key], list):
            _fail(f"{where}.{key}", f"{type(m[key]).__name__} is not a list")
    for j, f in enumerate(m.get("fallbacks") or []):
        _check_file_entry(f"{where}.fallbacks[{j}]", f, ("precision", "onnx", "sha256"))
        for key in ("inputs", "outputs"):
            if key in f:
                _check_tensors(f"{where}.fallbacks[{j}].{key}", f[key], outputs=key == "outputs")
        if f.get("engines") is not None and not isinstance(f["engines"], list):
            _fail(f"{where}.fallbacks[{j}].engines", "is not a list")
        for k, e in enumerate(f.get("engines") or []):
            _check_file_entry(f"{where}.fallbacks[{j}].engines[{k}]", e, ("file", "sha256"))
    for j, e in enumerate(m.get("engines") or []):
        _check_file_entry(f"{where}.engines[{j}]", e, ("file", "gpu", "compute_capability", "tensorrt", "sha256"))


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
