"""`edgekit build-engines BUNDLE`: TensorRT engines built on the device, from the bundle's ONNX.

Engines are not portable across GPUs or TensorRT versions, so they are built where they run and
recorded with the GPU, compute capability and TensorRT version; an engine whose record differs from
this device is stale (`engine_mismatch`) and the runtime falls back to ONNX Runtime or a rebuild.
Precision comes from the ONNX itself (FP16 tensors, Q/DQ pairs): the network is strongly typed and no
FP16/INT8 builder flag is set (TensorRT 11 removed them; in 11 strong typing is always on). TensorRT 8
(JetPack 4.6/5, no strong typing) gets the equivalent flags from the graph's precision instead.

    >>> trtexec_command("plane.int8.onnx", "plane.int8.sm87-trt10.3.0.engine", 1024)
    'trtexec --onnx=plane.int8.onnx --saveEngine=plane.int8.sm87-trt10.3.0.engine --stronglyTyped --memPoolSize=workspace:1024M'
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edge.errors import FileFormatError, UnsupportedError


@dataclass(frozen=True)
class Device:
    """Where engines are built: what an engine record must match to be used."""

    gpu: str
    compute_capability: str   # "8.7"
    tensorrt: str             # "10.3.0"


def trtexec_command(onnx_file: str, engine_file: str, workspace_mb: int) -> str:
    """The trtexec line equivalent to what build_engine does (for devices without Python TensorRT)."""
    return (f"trtexec --onnx={onnx_file} --saveEngine={engine_file} --stronglyTyped "
            f"--memPoolSize=workspace:{int(workspace_mb)}M")


def engine_name(model: str, precision: str, device: Device) -> str:
    return f"{model}.{precision}.sm{device.compute_capability.replace('.', '')}-trt{device.tensorrt}.engine"


def engine_mismatch(engine: dict, device: Device) -> str | None:
    """Why a recorded engine cannot run on `device` (None if it can)."""
    diffs = [f"{k} {engine.get(k)!r} != {getattr(device, k)!r}" for k in ("gpu", "compute_capability", "tensorrt")
             if str(engine.get(k)) != str(getattr(device, k))]
    return f"engine {engine.get('file')} was built for another device ({'; '.join(diffs)})" if diffs else None


def pick_variant(entry: dict, device: Device) -> dict:
    """The ONNX variant (primary or a fallback) this device should build: INT8 needs CC 6.1+."""
    from targets.check import INT8_MIN_CC

    cc = tuple(int(v) for v in device.compute_capability.split("."))
    for variant in [entry, *entry.get("fallbacks", [])]:
        if variant["precision"] != "int8" or cc >= INT8_MIN_CC:
            return variant
    raise UnsupportedError(f"model {entry['name']!r}: this GPU (compute capability {device.compute_capability}) "
                           f"cannot run int8 and the bundle has no fp16 fallback; re-export with "
                           f"--target jetson or --precision fp16")


def record_engine(entry: dict, record: dict) -> None:
    """Add an engine record to a model entry, replacing the one for the same device.

    Engines always sit on the model entry (where the runtime looks), with the `precision` and `onnx`
    they were built from, even when a device built the fp16 fallback.
    """
    same = ("gpu", "compute_capability", "tensorrt")
    entry["engines"] = [e for e in entry.get("engines", [])
                        if any(e.get(k) != record[k] for k in same)] + [record]


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise UnsupportedError("TensorRT is not installed here (no `tensorrt` Python module); engines must be "
                               "built on the device: copy the bundle there and run `edgekit build-engines`") from None
    return trt


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
        if int(err) != 0:
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


def query_device(trt) -> Device:
    """This machine's GPU, compute capability and TensorRT version: what an engine is valid for."""
    try:
        name, cc = _gpu()
    except UnsupportedError:
        raise
    except Exception as exc:  # no driver, no device: the user is on the wrong machine
        raise UnsupportedError(f"no usable CUDA GPU here ({str(exc).splitlines()[0][:120]}); engines must be "
                               f"built on the device") from None
    return Device(name, cc, trt.__version__)


def build_engine(trt, onnx_path: Path, engine_path: Path, precision: str, workspace_mb: int) -> None:
    """Parse the ONNX into a strongly typed network and serialize the engine (atomically) to engine_path."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flag = strongly if strongly is not None else trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    network = builder.create_network(1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise FileFormatError(f"TensorRT cannot parse {onnx_path.name}: {errors[:300]}")
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    else:  # TensorRT 8.2 (JetPack 4.6, the Nano's last)
        config.max_workspace_size = int(workspace_mb) << 20
    if strongly is None and precision != "fp32":  # TensorRT 8: no strong typing, precision by flag
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UnsupportedError(f"TensorRT failed to build {onnx_path.name} (see its log above); try a larger "
                               f"--workspace or the fp16 variant")
    tmp = engine_path.with_name(f".{engine_path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(plan))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, engine_path)


def build_engines(bundle, workspace_mb: int | None = None, log=lambda msg: None) -> dict:
    """Build one engine per model for this device, record it, and rewrite manifest.json atomically."""
    from export.manifest import MANIFEST, now, verify_files, write_manifest
    from runtime.bundle import read_manifest, sha256_file
    from targets import get_target

    root, manifest = read_manifest(bundle)
    trt = _import_tensorrt()
    device = query_device(trt)
    verify_files(root, manifest)  # never build from a tampered file
    workspace = workspace_mb or get_target(manifest.get("target") or "jetson").workspace_mb or 1024
    for entry in manifest["models"]:
        variant = pick_variant(entry, device)
        engine = engine_name(entry["name"], variant["precision"], device)
        log(f"{entry['name']}: {variant['onnx']} -> {engine} ({device.gpu}, TensorRT {device.tensorrt})")
        build_engine(trt, root / variant["onnx"], root / engine, variant["precision"], workspace)
        record_engine(entry, {"file": engine, "gpu": device.gpu, "compute_capability": device.compute_capability,
                              "tensorrt": device.tensorrt, "sha256": sha256_file(root / engine),
                              "precision": variant["precision"], "onnx": variant["onnx"],
                              "workspace_mb": workspace, "built": now(),
                              "trtexec": trtexec_command(variant["onnx"], engine, workspace)})
    write_manifest(root / MANIFEST, manifest)
    return manifest
