"""`edgekit bench-archs`, on the device: time candidate architectures and write the latency table.

The NAS on the host cannot time a Jetson; the Jetson can. The host writes a folder of candidate ONNX
files with an index (`edgekit nas-archs OUT`: `archs.json` + `NNN.onnx`); the device times each with
whatever it has, TensorRT (an engine built in memory from the ONNX, `execute_async_v3`, synchronised)
or ONNX Runtime (CUDA execution provider where the build has it, else the CPU), and writes a JSON table
the search reads with `--latency-table`::

    >>> table = bench_archs("archs/", "table.json")                    # doctest: +SKIP
    >>> table["backend"], len(table["entries"])                        # doctest: +SKIP
    ('tensorrt', 40)

Torch-free (numpy, onnxruntime; tensorrt and pycuda only for the TensorRT backend), like all of
`runtime/`. Timing: batch 1, warm-up runs first, then interleaved rounds over all files so a burst of
other load hits every architecture alike; the figure is the median. On the CPU with one intra-op thread
it is the thread's CPU time (what the net takes on a core of its own: on a shared machine other
processes do not inflate it), as the host search measures; on a GPU it is wall-clock.

Formats (version 1):

- index `archs.json`: `{"format": "edgekit.nas-archs", "version": 1, "precision", "input_name",
  "archs": [{"file": "000.onnx", "arch": {stem, blocks, widths, input_size, key}, "reference": name|null}]}`
- table: `{"format": "edgekit.latency-table", "version": 1, "backend", "device": {...}, "precision",
  "created", "entries": [{"arch": {...}, "file", "median_ms", "p90_ms", "wall_ms", "runs"}]}`
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from edge.core.errors import BadInputError, FileFormatError, MissingFileError, UnsupportedError

INDEX, INDEX_FORMAT, TABLE_FORMAT, VERSION = "archs.json", "edgekit.nas-archs", "edgekit.latency-table", 1
BACKENDS = ("auto", "tensorrt", "onnxruntime-cuda", "onnxruntime")
MAX_ARCHS = 10_000


def _load_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise MissingFileError(f"{what} not found: {path}; check the path")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a readable JSON {what} ({type(exc).__name__}); re-copy it") from None
    if not isinstance(obj, dict):
        raise FileFormatError(f"{path}: holds a {type(obj).__name__}, expected a {what} object")
    return obj


def _check_arch(a, where: str) -> dict:
    ok = (isinstance(a, dict) and isinstance(a.get("stem"), str)
          and all(isinstance(a.get(k), list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                     for v in a[k]) for k in ("blocks", "widths", "input_size")))
    if not ok:
        raise FileFormatError(f"{where}: arch {str(a)[:80]} is not {{stem, blocks, widths, input_size}}")
    return a


def read_index(folder) -> dict:
    """The index of a `nas-archs` folder, every file checked to be a plain file inside the folder."""
    root = Path(folder)
    if not root.is_dir():
        raise MissingFileError(f"architecture folder not found: {root}; copy the `edgekit nas-archs` output here")
    idx = _load_json(root / INDEX, "architecture index (archs.json)")
    if idx.get("format") != INDEX_FORMAT or idx.get("version") != VERSION:
        raise FileFormatError(f"{root / INDEX}: format {str(idx.get('format'))[:40]!r} version "
                              f"{str(idx.get('version'))[:10]} is not {INDEX_FORMAT!r} version {VERSION}; "
                              f"re-write it with `edgekit nas-archs`")
    archs = idx.get("archs")
    if not isinstance(archs, list) or not 1 <= len(archs) <= MAX_ARCHS:
        raise FileFormatError(f"{root / INDEX}: archs is not a list of 1..{MAX_ARCHS} entries")
    base = root.resolve()
    for i, e in enumerate(archs):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise FileFormatError(f"{root / INDEX}: archs[{i}] has no file name")
        _check_arch(e.get("arch"), f"{root / INDEX} archs[{i}]")
        path = (root / e["file"]).resolve()
        if base not in path.parents:
            raise FileFormatError(f"{root / INDEX}: archs[{i}] file {e['file'][:60]!r} is outside the folder; refused")
        if not path.is_file():
            raise MissingFileError(f"{path} (archs[{i}]) is missing; copy the whole `edgekit nas-archs` folder")
    return idx


def read_table(path) -> dict:
    """A latency table written by `bench_archs`, every entry checked."""
    path = Path(path)
    table = _load_json(path, "latency table")
    if table.get("format") != TABLE_FORMAT or table.get("version") != VERSION:
        raise FileFormatError(f"{path}: format {str(table.get('format'))[:40]!r} is not {TABLE_FORMAT!r} "
                              f"version {VERSION}; write it with `edgekit bench-archs` on the device")
    entries = table.get("entries")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ARCHS:
        raise FileFormatError(f"{path}: entries is not a list of 1..{MAX_ARCHS} timed architectures")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise FileFormatError(f"{path}: entries[{i}] is not an object")
        _check_arch(e.get("arch"), f"{path} entries[{i}]")
        ms = e.get("median_ms")
        if not (isinstance(ms, (int, float)) and not isinstance(ms, bool) and 0 < ms < 1e6):
            raise FileFormatError(f"{path}: entries[{i}].median_ms {str(ms)[:20]} is not a positive time in ms")
    return table


# --- timers -------------------------------------------------------------------------------------------
class _OrtTimer:
    def __init__(self, path: Path, providers: list[str], threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        inp = self.session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        self.feed = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
        self.cpu_clock = providers == ["CPUExecutionProvider"] and threads == 1

    def run(self) -> None:
        self.session.run(None, self.feed)

    def close(self) -> None:
        self.session = None


class _TrtTimer:
    """An engine built in memory from the ONNX, run through `runtime.trt_compat` (TensorRT 8.2 to 11):
    strongly typed where the module can (the ONNX's own precision), else with the index's precision as
    builder flags; page-locked (or, on a Jetson, mapped) buffers."""

    cpu_clock = False

    def __init__(self, path: Path, trt, cuda, workspace_mb: int, precision: str = "fp32"):
        from runtime import trt_compat
        from runtime.engines import build_engine, build_settings

        settings = build_settings(trt_compat.builder_caps(trt), precision, workspace_mb)
        plan = build_engine(trt, path, settings, workspace_mb)
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
        if self.engine is None:
            raise UnsupportedError(f"TensorRT could not load the engine it built from {path.name}")
        self.context = trt_compat.ExecutionContext(self.engine, self.engine.create_execution_context())
        self.stream = cuda.Stream()
        zero_copy = trt_compat.zero_copy_capable(cuda, cuda.Device(0))
        tensors = trt_compat.io_tensors(trt, self.engine)
        for t in tensors:               # batch 1: a dynamic input dim becomes 1
            if t.is_input and any(d < 0 for d in t.shape):
                self.context.set_input_shape(t.name, tuple(max(1, d) for d in t.shape))
        self.buffers = []
        for t in tensors:
            buf = trt_compat.HostDeviceBuffer(cuda, self.context.shape(t.name), trt_compat.numpy_dtype(trt, t.dtype),
                                              zero_copy)
            self.buffers.append(buf)
            self.context.set_address(t.name, buf.address)

    def run(self) -> None:
        if not self.context.execute(self.stream.handle):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()

    def close(self) -> None:
        for b in self.buffers:
            b.free()
        self.buffers, self.context, self.engine = [], None, None


def pick_backend(name: str) -> str:
    """The backend to time with: `auto` is TensorRT if it and a GPU are here, else ONNX Runtime's CUDA
    provider if this build has it, else ONNX Runtime on the CPU."""
    from runtime.backends.ort import CUDA, available_providers

    if name not in BACKENDS:
        raise BadInputError(f"--backend {name!r} is not one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    try:
        from runtime.backends.tensorrt import import_tensorrt

        import_tensorrt()
        return "tensorrt"
    except UnsupportedError:
        pass
    return "onnxruntime-cuda" if CUDA in available_providers() else "onnxruntime"


def _device(backend: str, trt=None) -> dict:
    facts = {"host": platform.node(), "machine": platform.machine(), "processor": platform.processor() or None}
    if backend == "tensorrt":
        from runtime.engines import device_facts

        d = device_facts(trt)
        return {**facts, "name": d.gpu, "compute_capability": d.compute_capability, "tensorrt": d.tensorrt}
    import onnxruntime

    return {**facts, "name": "cuda" if backend == "onnxruntime-cuda" else (platform.processor() or platform.machine()),
            "onnxruntime": onnxruntime.__version__}


def bench_archs(folder, out, backend: str = "auto", rounds: int = 20, runs_per_round: int = 5, warmup: int = 10,
                threads: int = 1, workspace_mb: int = 1024, log=lambda msg: None) -> dict:
    """Time every architecture of a `nas-archs` folder with `backend`; write the table to `out` (atomically)."""
    from runtime.atomic import write_json_atomic
    from edge.core.clock import utc_now

    if rounds < 1 or runs_per_round < 1 or warmup < 0 or threads < 1:
        raise BadInputError(f"--rounds {rounds}, runs {runs_per_round}, warm-up {warmup} and --threads {threads} "
                            f"must be positive")
    idx = read_index(folder)
    backend = pick_backend(backend)
    trt = cuda = None
    if backend == "tensorrt":
        from runtime.backends.tensorrt import import_tensorrt

        trt, cuda = import_tensorrt()
        ctx = cuda.Device(0).retain_primary_context()
        ctx.push()
    else:
        from runtime.backends.ort import CPU, CUDA, available_providers

        if backend == "onnxruntime-cuda" and CUDA not in available_providers():
            raise UnsupportedError("this onnxruntime has no CUDAExecutionProvider; use --backend onnxruntime "
                                   "or tensorrt")
        providers = [CUDA, CPU] if backend == "onnxruntime-cuda" else [CPU]
    root, timers = Path(folder), {}
    try:
        for i, e in enumerate(idx["archs"]):
            log(f"[{i + 1}/{len(idx['archs'])}] loading {e['file']} ({e['arch'].get('key', '')})")
            path = root / e["file"]
            timers[i] = (_TrtTimer(path, trt, cuda, workspace_mb, idx.get("precision") or "fp32") if trt
                         else _OrtTimer(path, providers, threads))
            for _ in range(warmup):
                timers[i].run()
        cpu = {i: [] for i in timers}
        wall = {i: [] for i in timers}
        order = list(timers)
        for r in range(rounds):
            for i in (order if r % 2 == 0 else order[::-1]):
                t = timers[i]
                for _ in range(runs_per_round):
                    t0, c0 = time.perf_counter(), time.thread_time()
                    t.run()
                    cpu[i].append((time.thread_time() - c0) * 1e3)
                    wall[i].append((time.perf_counter() - t0) * 1e3)
            log(f"round {r + 1}/{rounds}")
        entries = []
        for i, e in enumerate(idx["archs"]):
            fig = cpu[i] if timers[i].cpu_clock else wall[i]
            entries.append({"arch": e["arch"], "file": e["file"], "reference": e.get("reference"),
                            "median_ms": round(float(np.median(fig)), 4), "p90_ms": round(float(np.percentile(fig, 90)), 4),
                            "wall_ms": round(float(np.median(wall[i])), 4), "runs": len(fig),
                            "clock": "thread CPU time" if timers[i].cpu_clock else "wall-clock"})
        table = {"format": TABLE_FORMAT, "version": VERSION, "backend": backend, "device": _device(backend, trt),
                 "precision": idx.get("precision"), "threads": threads, "rounds": rounds, "created": utc_now(),
                 "entries": entries}
    finally:
        for t in timers.values():
            t.close()
        if trt:
            ctx.pop()
            ctx.detach()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        write_json_atomic(out, table)
    except OSError as exc:
        raise FileFormatError(f"cannot write {out} ({exc.strerror or exc}); pick another --out") from None
    return table
