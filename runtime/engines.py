"""TensorRT engines, on the device: the one owner of what an engine is valid for and how it is made.

An engine is compiled for one GPU and one TensorRT release; loading it elsewhere fails or, worse,
misbehaves. So engines are built where they run (`edgekit build-engines`) and recorded in
manifest.json with the device they were built on. Everything about them lives here:

- device facts (`DeviceFacts`, `device_facts`): GPU name, compute capability, TensorRT version,
  queried only when asked for (CUDA and TensorRT are imported then, never at import time);
- the one matching rule (`engine_mismatch`): GPU name (case-insensitive), compute capability and
  TensorRT major.minor.patch must agree (a TensorRT build-number update keeps its engines);
- naming (`engine_name`), recording (`record_engine`: a new record replaces every record that matches
  the same device, so a rebuild never leaves an old engine in front of the new one), selection
  (`select_engine`), and building (`build_engine`, `build_engines`).

Precision comes from the ONNX itself (FP16 tensors, Q/DQ pairs) wherever TensorRT can build a strongly
typed network (10; 11 builds nothing else and has no FP16/INT8 builder flags left). TensorRT 8 (JetPack
4.6/5) has no strong typing and gets the flags from the variant's precision instead. What the
installed TensorRT can do is read off the module (`runtime.trt_compat.builder_caps`, feature detection,
never its version string); `build_settings` is the one place that turns that into a build::

    >>> from runtime.trt_compat import BuilderCaps
    >>> TRT10 = BuilderCaps(strongly_typed=True, precision_flags=True, memory_pool=True, explicit_batch_flag=True)
    >>> TRT82 = BuilderCaps(strongly_typed=False, precision_flags=True, memory_pool=False, explicit_batch_flag=True)
    >>> build_settings(TRT10, "int8", 1024).trtexec_flags
    ('--stronglyTyped', '--memPoolSize=workspace:1024M')
    >>> build_settings(TRT82, "int8", 1024).builder_flags
    ('FP16', 'INT8')

The decisions are plain functions of data, tested on any machine; the calls into TensorRT are kept
thin (Builder, create_network, OnnxParser, build_serialized_network, which every TensorRT from 8.0 has;
`build_engine`, removed in 10, is never called).
"""
from __future__ import annotations

import copy
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from edge.core.clock import utc_now
from edge.core.errors import FileFormatError, MissingFileError, UnsupportedError
from runtime import trt_compat

REBUILD = "run `edgekit build-engines {bundle}` on this device"


@dataclass(frozen=True)
class DeviceFacts:
    """What an engine depends on: GPU name, compute capability ("8.7") and TensorRT version ("10.3.0.30")."""

    gpu: str
    compute_capability: str
    tensorrt: str

    @classmethod
    def of(cls, engine) -> "DeviceFacts":
        """The device an engine record (a manifest dict or a `runtime.bundle.EngineEntry`) was built on."""
        get = engine.get if isinstance(engine, dict) else lambda k: getattr(engine, k)
        return cls(str(get("gpu")), str(get("compute_capability")), str(get("tensorrt")))

    def describe(self) -> str:
        return f"{self.gpu} (compute {self.compute_capability}), TensorRT {self.tensorrt}"


# --- the one matching rule -------------------------------------------------------------------------

def _gpu_key(name: str) -> str:
    return " ".join(str(name).split()).lower()


def _version3(version: str) -> tuple[str, ...]:
    """Major.minor.patch: engines are portable across TensorRT builds of one release, no further."""
    parts = str(version).strip().split(".")[:3]
    return tuple(p.lstrip("0") or "0" for p in parts + ["0"] * (3 - len(parts)))


def _cc_key(cc: str) -> tuple[str, ...]:
    return tuple(p.strip().lstrip("0") or "0" for p in str(cc).split("."))


def engine_mismatch(engine, device: DeviceFacts) -> str | None:
    """Why `engine` (record dict or EngineEntry) cannot run on `device`, or None when it can."""
    built = DeviceFacts.of(engine)
    problems = []
    if _gpu_key(built.gpu) != _gpu_key(device.gpu):
        problems.append(f"GPU {built.gpu!r} != {device.gpu!r}")
    if _cc_key(built.compute_capability) != _cc_key(device.compute_capability):
        problems.append(f"compute capability {built.compute_capability} != {device.compute_capability}")
    if _version3(built.tensorrt) != _version3(device.tensorrt):
        problems.append(f"TensorRT {built.tensorrt} != {device.tensorrt}")
    return "; ".join(problems) or None


# --- naming, recording, selection ------------------------------------------------------------------

def engine_name(model: str, precision: str, device: DeviceFacts, sha256: str) -> str:
    """`plane.int8.sm87-trt10.3.0.30.<sha256[:12]>.engine`: a rebuild never overwrites a recorded file.

    The content hash in the name means a new engine is written beside the old one, the manifest is
    switched to it in one rename, and only then is the old file removed: a crash at any point leaves a
    bundle whose manifest and files agree.
    """
    return f"{model}.{precision}.sm{device.compute_capability.replace('.', '')}-trt{device.tensorrt}.{sha256[:12]}.engine"


def record_engine(entry: dict, record: dict) -> list[dict]:
    """Add `record` to a manifest model entry, dropping every record that matches the same device.

    "Matches" is `engine_mismatch`'s rule, so an engine from TensorRT 10.3.0.26 is replaced by its
    rebuild on 10.3.0.30 rather than kept in front of it. Engines always sit on the model entry (where
    the runtime looks), with the `precision` and `onnx` they were built from, even when the device
    built the fp16 fallback. Returns the dropped records (their files may be deleted).
    """
    device = DeviceFacts.of(record)
    old = entry.get("engines") or []
    dropped = [e for e in old if engine_mismatch(e, device) is None]
    entry["engines"] = [e for e in old if engine_mismatch(e, device) is not None] + [record]
    return dropped


def select_engine(model, device: DeviceFacts, bundle_hint: str = "BUNDLE"):
    """The `EngineEntry` of `model` built for `device`; UnsupportedError saying how to build one otherwise.

    Should a manifest hold more than one matching record (written before `record_engine` replaced
    them), the last one, the newest, wins.
    """
    fix = REBUILD.format(bundle=bundle_hint)
    if not model.engines:
        raise UnsupportedError(f"model {model.name!r} has no TensorRT engine in the bundle; {fix}, or use "
                               f"--backend onnxruntime")
    matches, reasons = [], []
    for engine in model.engines:
        why = engine_mismatch(engine, device)
        if why is None:
            matches.append(engine)
        else:
            reasons.append(f"{engine.file.name} ({why})")
    if not matches:
        raise UnsupportedError(f"model {model.name!r} has no engine for this device ({device.describe()}): "
                               f"{' | '.join(reasons)}; {fix}")
    engine = matches[-1]
    if not engine.file.is_file():
        raise MissingFileError(f"engine {engine.file.name} of model {model.name!r} is recorded in "
                               f"manifest.json but missing; {fix}")
    return engine


def pick_variant(entry: dict, device: DeviceFacts) -> dict:
    """The ONNX variant (primary or a fallback) this device should build: INT8 needs CC 6.1+."""
    from targets.check import INT8_MIN_CC

    cc = tuple(int(v) for v in device.compute_capability.split("."))
    for variant in [entry, *entry.get("fallbacks", [])]:
        if (variant.get("int8") or {}).get("form") == "onnxruntime":
            continue                        # ONNX Runtime's INT8 form (uint8 activations) is not for TensorRT
        if variant["precision"] != "int8" or cc >= INT8_MIN_CC:
            return variant
    raise UnsupportedError(f"model {entry['name']!r}: this GPU (compute capability {device.compute_capability}) "
                           f"cannot run int8 and the bundle has no fp16 fallback; re-export with "
                           f"--target jetson or --precision fp16")


# --- device facts (lazy: TensorRT and CUDA are imported when asked for) ----------------------------

def require_tensorrt():
    """The `tensorrt` module, or UnsupportedError saying engines are built on the device."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UnsupportedError("TensorRT is not installed here (no `tensorrt` Python module); engines must be "
                               "built on the device: copy the bundle there and run `edgekit build-engines`") from None
    return trt


@functools.lru_cache(maxsize=1)
def _gpu() -> tuple[str, str]:
    """(name, "major.minor") of CUDA device 0, via cuda-python (NVIDIA's samples since 10.14) or pycuda."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            cudart = None
    if cudart is not None:
        err, props = cudart.cudaGetDeviceProperties(0)
        if err != cudart.cudaError_t.cudaSuccess:
            raise RuntimeError(f"cudaGetDeviceProperties: {err}")
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00"), f"{props.major}.{props.minor}"
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise UnsupportedError("neither cuda-python nor pycuda is installed, so the GPU cannot be queried; "
                               "install one on the device (`pip install cuda-python`)") from None
    cuda.init()
    dev = cuda.Device(0)
    return dev.name(), "{}.{}".format(*dev.compute_capability())


def device_facts(trt=None) -> DeviceFacts:
    """This machine's GPU 0 and TensorRT version, as engine records name them."""
    trt = trt or require_tensorrt()
    try:
        name, cc = _gpu()
    except UnsupportedError:
        raise
    except Exception as exc:  # no driver, no device: the user is on the wrong machine
        raise UnsupportedError(f"no usable CUDA GPU here ({(str(exc).splitlines() or [''])[0][:120]}); engines "
                               f"must be built and run on the device") from None
    return DeviceFacts(name, cc, str(trt.__version__))


# --- building ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildSettings:
    """How one engine is built on this TensorRT, from its `trt_compat.BuilderCaps` and the variant's precision."""

    strongly_typed: bool              # precision comes from the graph's own types (TensorRT 10, 11)
    builder_flags: tuple[str, ...]    # `trt.BuilderFlag` names; only where the module still has them (8.x)
    memory_pool: bool                 # set_memory_pool_limit (8.4+) rather than max_workspace_size (8.2)
    trtexec_flags: tuple[str, ...]    # the same build as a trtexec command line


def build_settings(caps: trt_compat.BuilderCaps, precision: str, workspace_mb: int) -> BuildSettings:
    """The one place that decides how an engine is built (see the module docstring): strongly typed
    wherever the module can, else the variant's precision as builder flags."""
    mb = int(workspace_mb)
    if caps.strongly_typed:
        return BuildSettings(True, (), caps.memory_pool, ("--stronglyTyped", f"--memPoolSize=workspace:{mb}M"))
    flags = {"fp32": (), "fp16": ("FP16",), "int8": ("FP16", "INT8")}[precision]
    workspace = f"--memPoolSize=workspace:{mb}" if caps.memory_pool else f"--workspace={mb}"  # MiB either way
    return BuildSettings(False, flags, caps.memory_pool, (*(f"--{f.lower()}" for f in flags), workspace))


def trtexec_command(onnx_file: str, engine_file: str, settings: BuildSettings) -> str:
    """The trtexec line equivalent to `build_engine` (for devices without Python TensorRT)."""
    return " ".join(["trtexec", f"--onnx={onnx_file}", f"--saveEngine={engine_file}", *settings.trtexec_flags])


def build_engine(trt, onnx_path: Path, settings: BuildSettings, workspace_mb: int):
    """Parse the ONNX and return TensorRT's serialized engine (an IHostMemory, a buffer)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(trt_compat.network_flags(trt, settings.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise FileFormatError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {errors[:300]}; "
                              f"re-export the bundle with a supported opset")
    config = builder.create_builder_config()
    trt_compat.set_workspace(trt, config, workspace_mb)
    trt_compat.set_precision_flags(trt, config, settings.builder_flags)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UnsupportedError(f"TensorRT failed to build {onnx_path.name} (see its log above); try a larger "
                               f"--workspace or the fp16 variant")
    return plan


def build_engines(bundle, workspace_mb: int | None = None, log=lambda msg: None, trt=None,
                  device: DeviceFacts | None = None) -> dict:
    """Build one engine per model for this device, record it, and rewrite manifest.json atomically.

    The bundle is read by `runtime.bundle.load_bundle` (sha256s checked, paths outside the bundle
    refused), engines are written only inside it, and the manifest is switched in one rename after all
    engines are on disk; files of replaced records are removed last. `trt` and `device` default to this
    machine's TensorRT and GPU.
    """
    from runtime.atomic import write_bytes_atomic, write_json_atomic
    from runtime.bundle import MANIFEST, SCHEMA_PATH, SCHEMA_VERSION, inside_bundle, load_bundle
    from runtime.manifest_check import check_manifest
    from targets import get_target

    loaded = load_bundle(bundle)  # never build from a tampered file or one outside the bundle
    trt = trt or require_tensorrt()
    device = device or device_facts(trt)
    root, manifest = loaded.path, copy.deepcopy(loaded.manifest)
    workspace = int(workspace_mb or get_target(manifest.get("target") or "jetson").workspace_mb or 1024)
    caps = trt_compat.builder_caps(trt)
    written, dropped = [], []
    try:
        for entry in manifest["models"]:
            variant = pick_variant(entry, device)
            settings = build_settings(caps, variant["precision"], workspace)
            onnx_path = inside_bundle(root, variant["onnx"], entry["name"], "onnx")
            log(f"{entry['name']}: {variant['onnx']} ({variant['precision']}) on {device.describe()}")
            plan = memoryview(build_engine(trt, onnx_path, settings, workspace))
            sha = hashlib.sha256(plan).hexdigest()
            name = engine_name(entry["name"], variant["precision"], device, sha)
            path = inside_bundle(root, name, entry["name"], "engine file")
            write_bytes_atomic(path, plan)
            written.append(path)
            log(f"{entry['name']}: wrote {name}")
            dropped += record_engine(entry, {
                "file": name, "gpu": device.gpu, "compute_capability": device.compute_capability,
                "tensorrt": device.tensorrt, "sha256": sha, "precision": variant["precision"],
                "onnx": variant["onnx"], "workspace_mb": workspace, "built": utc_now(),
                "trtexec": trtexec_command(variant["onnx"], name, settings)})
        check_manifest(manifest, SCHEMA_PATH, SCHEMA_VERSION)  # never write what the runtime would refuse
        write_json_atomic(root / MANIFEST, manifest)
    except BaseException:
        for path in written:  # the manifest still names the old engines: leave nothing unrecorded
            path.unlink(missing_ok=True)
        raise
    _remove_replaced(root, manifest, dropped)
    return manifest


def _remove_replaced(root: Path, manifest: dict, dropped: list[dict]) -> None:
    """Delete the files of replaced records that no remaining record names (inside the bundle only)."""
    from runtime.bundle import inside_bundle

    kept = {e["file"] for m in manifest["models"] for e in m.get("engines") or []}
    for record in dropped:
        if record["file"] in kept:
            continue
        try:
            inside_bundle(root, record["file"], "?", "engine file").unlink(missing_ok=True)
        except (FileFormatError, OSError):
            continue  # never delete outside the bundle; a leftover file is harmless
