"""Read a bundle: `manifest.json` plus the model files it names, checked before anything runs.

The bundle is the only thing the device needs (docs/ARCHITECTURE.md). Reading it verifies every
file's sha256, so a model changed after export is refused by name instead of silently giving
different answers::

    >>> bundle = load_bundle("out/fpus23-bundle")            # doctest: +SKIP
    >>> [m.name for m in bundle.models]                      # doctest: +SKIP
    ['plane', 'orientation', 'anatomy', 'detection']

`sha256_file` and `SCHEMA_VERSION` are shared with `export/`, which writes bundles.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.errors import FileFormatError, MissingFileError
from runtime.manifest_check import check_manifest

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (engines can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the manifest records it; `role` only on outputs."""

    name: str
    shape: tuple
    dtype: str
    role: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d["dtype"], d.get("role"))


@dataclass(frozen=True)
class EngineEntry:
    """A TensorRT engine built on a device; valid only on the same GPU and TensorRT version."""

    file: Path
    gpu: str
    compute_capability: str
    tensorrt: str
    sha256: str
    trtexec: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One model of a bundle: what it predicts, its files, tensors and pre/postprocessing."""

    name: str
    task: str
    kind: str
    labels: tuple[str, ...]
    precision: str
    onnx: Path
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocess: dict
    postprocess: dict = field(default_factory=dict)
    engines: tuple[EngineEntry, ...] = ()
    architecture: str | None = None
    stats: dict = field(default_factory=dict)
    # the same model at another precision or INT8 form: {precision, onnx (Path), sha256, int8, ...}
    fallbacks: tuple[dict, ...] = ()
    int8_form: str | None = None      # an int8 primary's form (`tensorrt`, `onnxruntime`); None when unrecorded

    def ort_int8(self) -> Path | None:
        """The ONNX Runtime INT8 form of a TensorRT-form INT8 model, when the bundle carries one."""
        return next((f["onnx"] for f in self.fallbacks
                     if f["precision"] == "int8" and (f.get("int8") or {}).get("form") == "onnxruntime"), None)

    def output(self, role: str) -> TensorSpec | None:
        """The output with this role (`logits`, `boxes`, `scores`, `labels`, `cam`), or None."""
        return next((o for o in self.outputs if o.role == role), None)


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its directory, the raw manifest and one `ModelEntry` per model."""

    path: Path
    manifest: dict
    models: tuple[ModelEntry, ...]

    def model(self, name: str) -> ModelEntry:
        from edge.core.errors import UnknownNameError, closest

        names = [m.name for m in self.models]
        if name not in names:
            raise UnknownNameError(f"bundle {self.path} has no model {name!r}{closest(name, names)}; "
                                   f"it has {', '.join(names)}")
        return self.models[names.index(name)]


def inside_bundle(root: Path, rel, model: str, field: str) -> Path:
    """`root / rel`, refused unless it stays inside the bundle directory once symlinks are resolved.

    The runtime needs nothing but the bundle (docs/ARCHITECTURE.md), so a manifest path that is
    absolute, climbs out with `..`, or is a symlink to a file elsewhere is a broken bundle, even when
    that outside file's sha256 matches.
    """
    where = f"manifest.json: model {model!r} {field} {rel!r}"
    if not isinstance(rel, str) or not rel.strip() or "\x00" in rel:
        raise FileFormatError(f"{where} is not a file name; expected a path relative to the bundle "
                              f"directory; re-export the bundle")
    if Path(rel).is_absolute():
        raise FileFormatError(f"{where} is an absolute path; expected a file inside the bundle directory "
                              f"{root} (the device needs nothing but the bundle); re-export the bundle")
    try:
        base, target = Path(root).resolve(), (Path(root) / rel).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise FileFormatError(f"{where} cannot be resolved ({exc}); expected a file inside the bundle "
                              f"directory; re-export the bundle") from None
    if target != base and base not in target.parents:
        raise FileFormatError(f"{where} resolves to {target}, outside the bundle directory {base}; a bundle "
                              f"must contain its own files (the device needs nothing but the bundle); "
                              f"re-export the bundle")
    return Path(root) / rel


def _model_from_dict(root: Path, d: dict) -> ModelEntry:
    name = d["name"]
    engines = tuple(EngineEntry(inside_bundle(root, e["file"], name, "engine file"), e["gpu"],
                                str(e["compute_capability"]), str(e["tensorrt"]), e["sha256"], e.get("trtexec"))
                    for e in d.get("engines", []))
    fallbacks = []
    for f in d.get("fallbacks") or []:
        for e in f.get("engines") or []:  # engines sit on the model entry; refuse one here that escapes too
            inside_bundle(root, e.get("file") if isinstance(e, dict) else e, name, "fallback engine file")
        fallbacks.append({**f, "onnx": inside_bundle(root, f["onnx"], name, "fallback onnx")})
    return ModelEntry(
        name=name, task=d["task"], kind=d["kind"], labels=tuple(d["labels"]),
        precision=d["precision"], onnx=inside_bundle(root, d["onnx"], name, "onnx"), sha256=d["sha256"],
        inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
        outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
        preprocess=d["preprocess"], postprocess=dict(d.get("postprocess") or {}), engines=engines,
        architecture=d.get("architecture"), stats=dict(d.get("stats") or {}),
        fallbacks=tuple(fallbacks), int8_form=(d.get("int8") or {}).get("form"))


def _verify_file(path: Path, expected: str, model: str) -> None:
    if not path.is_file():
        raise MissingFileError(f"bundle file {path.name} of model {model!r} is missing from {path.parent}; "
                               f"re-export the bundle")
    if sha256_file(path) != expected:
        raise FileFormatError(f"bundle file {path.name} of model {model!r} does not match its sha256 in "
                              f"manifest.json (modified after export); re-export the bundle")


def read_manifest(path) -> tuple[Path, dict]:
    """(bundle dir, parsed manifest) for a bundle directory or its manifest.json path."""
    p = Path(path)
    root = p.parent if p.name == MANIFEST else p
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise MissingFileError(f"no bundle at {p}: {manifest_path} not found; pass the directory "
                               f"`edgekit export` wrote")
    try:
        return root, json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{manifest_path} is not valid JSON ({exc}); re-export the bundle") from None


def load_bundle(path, verify: bool = True) -> Bundle:
    """Read and check a bundle directory; with `verify`, refuse any file whose sha256 changed."""
    root, manifest = read_manifest(path)
    check_manifest(manifest, SCHEMA_PATH, SCHEMA_VERSION)
    models = tuple(_model_from_dict(root, d) for d in manifest["models"])
    for m in models:
        if verify:
            _verify_file(m.onnx, m.sha256, m.name)
            for f in m.fallbacks:
                _verify_file(f["onnx"], f["sha256"], m.name)
            for e in m.engines:
                if e.file.is_file():  # a missing engine is the TensorRT backend's concern, not ORT's
                    _verify_file(e.file, e.sha256, m.name)
        elif not m.onnx.is_file():
            raise MissingFileError(f"bundle file {m.onnx.name} of model {m.name!r} is missing from {root}; "
                                   f"re-export the bundle")
    return Bundle(root, manifest, models)
