"""What a candidate costs on the target: memory, and latency measured, looked up or estimated.

Memory (`memory_mb`) is `edgekit report`'s: FP32 weights (parameters and BN buffers) plus the peak
activation working set of one layer at batch 1, in MB of 10^6 bytes.

Latency comes from one of three sources (`LatencySource`), named in every report:

- `measured`: the `cpu` target is the host itself. Each candidate is written by export's own ONNX
  writer (`compress.latency.write_onnx`: the graph that ships) and timed with ONNX Runtime on the CPU,
  batch 1, one intra-op thread, median over rounds (`compress.latency.measure_latency`, the house
  timing). Parallel workers on one machine take turns (`TimingLock`): a candidate is timed while no
  other worker trains or times. Each candidate is timed beside an anchor net (ResNet8 at the search's
  input size) and scaled by the anchor's quiet latency at the study's start, so a busy host's stalls
  (which thread CPU time counts) cancel out (see "the anchor" below).
- `table`: a device's own measurements (`edgekit bench-archs` on the device, over the ONNX files
  `edgekit nas-archs` wrote): a candidate in the table gets its measured figure; any other gets the
  latency model fitted on the table, labelled `estimate (fitted on N device measurements)`.
- `estimate`: neither: the latency model with nominal figures for the target kind (`NOMINAL`), labelled
  `estimate (nominal <kind> figures, not measured)` everywhere; its error is unknown until a table is
  measured on the device.

The latency model (`LatencyModel`) is a per-layer cost summed over the net's layers, counted from the
spec alone (`arch_layers`): a fixed cost per call, a cost per operator (kernel launch, scheduling), and
costs per multiply-accumulate and per byte of activation and weight traffic, with separate MAC rates
for the stem, 3x3 and 1x1 convolutions. It is fitted by non-negative least squares on relative error
(`fit`), and its error is reported as the median absolute percentage error against measurements that
it was not fitted on (`cross_validate`: k-fold; `benchmarks/bench_nas.py`: 20 fresh random nets).
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np

from compress.nas.space import Arch
from edge.core.errors import BadInputError
from edge.ml.models.resnet_nas import STEMS

MB = 1e6

# --- default budgets ------------------------------------------------------------------------------
# Derived, since the target profiles carry no latency or memory budget of their own:
# latency: the real-time loop shows 30 frames/s and runs up to four models per frame (plane,
# orientation, anatomy, detection), so one model may take a quarter of 1000/30 ms;
# memory: a model may take 1/64 of the smallest device of the target (Jetson Nano 4 GB -> 64 MB),
# and 256 MB where the profile has no memory figure (cpu, x86-cuda).
LOOP_FPS, MODELS_PER_FRAME, MEMORY_SHARE, MEMORY_DEFAULT_MB = 30.0, 4, 1 / 64, 256.0


def default_budget(target) -> dict:
    """{"budget_ms", "max_mb", "how"} for a `targets.Target`, derived as the comment above says."""
    ms = round(1000.0 / LOOP_FPS / MODELS_PER_FRAME, 3)
    gb = target.memory_budget_gb
    mb = MEMORY_DEFAULT_MB if gb is None else round(gb * 1024 * MEMORY_SHARE, 1)
    ms_how = f"derived: {LOOP_FPS:g} frames/s shared by {MODELS_PER_FRAME} models"
    mb_how = (f"derived: 1/{round(1 / MEMORY_SHARE)} of {gb:g} GB" if gb is not None
              else "derived: the profile gives no memory")
    return {"budget_ms": ms, "max_mb": mb, "ms_how": ms_how, "mb_how": mb_how,
            "how": f"latency {ms_how}; memory {mb_how}"}


# --- memory ----------------------------------------------------------------------------------------
def model_costs(model) -> dict:
    """{"params", "macs", "weights_mb", "activations_mb", "memory_mb"} of a built model (batch 1, FP32)."""
    from edge.ml.report import model_report

    r = model_report(model)
    w, a = r["weights_bytes"]["fp32"], r["activation_bytes"]
    return {"params": r["params"], "macs": r["macs"], "weights_mb": round(w / MB, 4),
            "activations_mb": round(a / MB, 4), "memory_mb": round((w + a) / MB, 4)}


# --- the net's layers, counted from the spec -------------------------------------------------------
def arch_layers(arch: Arch, in_chans: int = 1, num_classes: int = 4) -> list[dict]:
    """Every operator of the exported graph (BatchNorm folded into its conv, ReLU fused): kind, MACs,
    activation bytes read and written, weight bytes (FP32)."""
    layers: list[dict] = []

    def conv(kind: str, cin: int, cout: int, k: int, s: int, h: int, w: int) -> tuple[int, int]:
        ho, wo = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
        layers.append({"kind": kind, "macs": k * k * cin * cout * ho * wo,
                       "act_bytes": 4 * (cin * h * w + cout * ho * wo), "weight_bytes": 4 * (k * k * cin * cout + cout)})
        return ho, wo

    def elementwise(kind: str, c: int, h_in: int, w_in: int, h: int, w: int, reads: int = 1) -> None:
        layers.append({"kind": kind, "macs": 0, "act_bytes": 4 * c * (reads * h_in * w_in + h * w), "weight_bytes": 0})

    k, pool = STEMS[arch.stem]
    c = arch.widths[0]
    h, w = conv("stem", in_chans, c, k, 2, *arch.input_size)
    if pool:
        ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        elementwise("pool", c, h, w, ho, wo)
        h, w = ho, wo
    cin = c
    for i, (n, c) in enumerate(zip(arch.blocks, arch.widths)):
        for j in range(n):
            s = 2 if i > 0 and j == 0 else 1
            h1, w1 = conv("conv3", cin, c, 3, s, h, w)
            conv("conv3", c, c, 3, 1, h1, w1)
            if s != 1 or cin != c:
                conv("conv1", cin, c, 1, s, h, w)
            elementwise("add", c, h1, w1, h1, w1, reads=2)
            h, w, cin = h1, w1, c
    elementwise("gap", cin, h, w, 1, 1)
    layers.append({"kind": "fc", "macs": cin * num_classes, "act_bytes": 4 * (cin + num_classes),
                   "weight_bytes": 4 * (cin + 1) * num_classes})
    return layers


FEATURES = ("call", "ops", "stem_macs", "conv3_macs", "conv1_macs", "act_bytes", "weight_bytes")


def features(arch: Arch, in_chans: int = 1, num_classes: int = 4) -> np.ndarray:
    """The latency model's inputs (`FEATURES`), in ms-friendly units (M ops, MB)."""
    layers = arch_layers(arch, in_chans, num_classes)

    def macs(kind):
        return sum(l["macs"] for l in layers if l["kind"] == kind) / 1e6

    return np.array([1.0, float(len(layers)), macs("stem"), macs("conv3"), macs("conv1") + macs("fc"),
                     sum(l["act_bytes"] for l in layers) / 1e6, sum(l["weight_bytes"] for l in layers) / 1e6])


# --- the latency model ---------------------------------------------------------------------------
# Nominal per-kind figures for a target nobody has measured yet (ms per call, ms per operator, then
# ms per M MACs of stem / 3x3 / 1x1, per MB of activations, per MB of weights): rough public figures
# of the weakest member at FP16 (Jetson Nano: ~0.25 effective TFLOPS on small convs, 25.6 GB/s;
# a Turing+ desktop GPU: ~5 effective TFLOPS, ~300 GB/s). They set the budget's scale only roughly; a
# device table (`edgekit bench-archs`) replaces them with measurements.
NOMINAL = {
    "jetson": (0.10, 0.030, 1 / 60, 1 / 120, 1 / 120, 1 / 15_000 * 1e3, 1 / 20_000 * 1e3),
    "family": (0.10, 0.030, 1 / 60, 1 / 120, 1 / 120, 1 / 15_000 * 1e3, 1 / 20_000 * 1e3),
    "gpu": (0.05, 0.010, 1 / 1_000, 1 / 2_500, 1 / 2_500, 1 / 250_000 * 1e3, 1 / 300_000 * 1e3),
    "cpu": (0.02, 0.010, 1 / 4, 1 / 8, 1 / 8, 1 / 5_000 * 1e3, 1 / 8_000 * 1e3),
}


@dataclass
class LatencyModel:
    """ms = sum(coef * features(arch)); `how` says where the coefficients came from."""

    coef: np.ndarray
    how: str
    points: int = 0           # measurements it was fitted on

    def predict(self, arch: Arch, in_chans: int = 1, num_classes: int = 4) -> float:
        return float(features(arch, in_chans, num_classes) @ self.coef)

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "coef": [float(c) for c in self.coef], "how": self.how,
                "points": self.points}

    @classmethod
    def nominal(cls, kind: str) -> "LatencyModel":
        return cls(np.array(NOMINAL.get(kind, NOMINAL["jetson"]), dtype=float),
                   f"nominal {kind} figures, not measured", 0)

    @classmethod
    def fit(cls, archs: list[Arch], ms, how: str, in_chans: int = 1, num_classes: int = 4) -> "LatencyModel":
        """Non-negative least squares on relative error (each row divided by its measurement), so a
        0.2 ms net counts as much as a 20 ms one."""
        from scipy.optimize import nnls

        ms = np.asarray(ms, dtype=float)
        if len(archs) < 3 or len(archs) != len(ms) or not np.all(ms > 0):
            raise BadInputError(f"a latency model needs at least 3 positive measurements, got {len(ms)}")
        x = np.stack([features(a, in_chans, num_classes) for a in archs])
        scale = x.max(axis=0)
        scale[scale == 0] = 1.0
        coef, _ = nnls((x / scale) / ms[:, None], np.ones(len(ms)))
        return cls(coef / scale, how, len(ms))


def percent_errors(predicted, measured) -> np.ndarray:
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    return 100.0 * np.abs(p - m) / m


def error_summary(predicted, measured) -> dict:
    e = percent_errors(predicted, measured)
    return {"n": int(len(e)), "median_abs_pct": round(float(np.median(e)), 2) if len(e) else None,
            "p90_abs_pct": round(float(np.percentile(e, 90)), 2) if len(e) else None,
            "max_abs_pct": round(float(e.max()), 2) if len(e) else None}


def cross_validate(archs: list[Arch], ms, folds: int = 5, seed: int = 0, in_chans: int = 1,
                   num_classes: int = 4) -> dict:
    """The model's error on measurements it was not fitted on: k-fold, each net predicted once."""
    ms = np.asarray(ms, dtype=float)
    n = len(archs)
    if n < 6:
        return {"n": n, "median_abs_pct": None, "note": "fewer than 6 measurements: not cross-validated"}
    order = np.random.default_rng(seed).permutation(n)
    folds = min(folds, n)
    pred = np.zeros(n)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        model = LatencyModel.fit([archs[i] for i in train], ms[train], "cv", in_chans, num_classes)
        for i in test:
            pred[i] = model.predict(archs[i], in_chans, num_classes)
    return {**error_summary(pred, ms), "method": f"{folds}-fold cross-validation"}


# --- measuring on the host -------------------------------------------------------------------------
# The figure is the CPU time of the thread that runs the net: ONNX Runtime with one intra-op thread
# computes on the calling thread, so its thread time is what the net takes on a core of its own, and
# other processes on a shared machine do not inflate it (on this 2-core host under a load of 7, a
# 20 ms net read 44 ms wall-clock and 18-22 ms CPU time; a 1 ms net read the same both ways). The
# wall-clock median is recorded beside it.
def time_onnx(files: dict, rounds: int = 20, runs_per_round: int = 5, warmup: int = 5) -> dict:
    """{name: {"median_ms", "wall_ms", "p90_ms", "runs"}} for ONNX files, in interleaved rounds (house
    timing: `compress.latency.measure_latency`, one intra-op thread, batch 1); median_ms is thread CPU time."""
    from compress.latency import measure_latency

    lat = measure_latency(files, rounds=rounds, runs_per_round=runs_per_round, warmup=warmup, threads=1)
    return {name: {"median_ms": round(v["cpu_median_ms"], 4), "p90_ms": round(v["cpu_p90_ms"], 4),
                   "wall_ms": round(v["median_ms"], 4), "runs": v["runs"], "clock": "thread CPU time"}
            for name, v in lat.items()}


def measure_models(models: dict, rounds: int = 20, lock=None) -> dict:
    """`time_onnx` of built models, each written by export's ONNX writer (the graph that ships).

    `lock` (a `TimingLock`, or its file's path) times them while no other worker of this machine
    trains or times."""
    import tempfile
    from pathlib import Path

    from compress.latency import write_onnx

    lock = TimingLock.of(lock)
    with tempfile.TemporaryDirectory(prefix="edgekit-nas-") as tmp:
        files = {name: write_onnx(m, Path(tmp) / f"{i}.onnx") for i, (name, m) in enumerate(models.items())}
        with (lock.timing() if lock is not None else contextlib.nullcontext()):
            return time_onnx(files, rounds=rounds)


class TimingLock:
    """Parallel workers of one machine time a candidate while no other of them computes.

    A worker that times raises a flag file (`<lock>.<pid>`) and takes the lock file exclusively; a
    worker that trains holds it shared and, between batches (`training()` gives the call to make
    there), lets go while any live worker's flag is up. Timings are serialised by the exclusive lock.
    Thread CPU time alone did not shield a timing from a neighbour's training: on this 2-core host,
    ResNet8 at 64x64 read 1.32 ms beside a training worker and 0.92 ms alone (shared caches and
    memory). fcntl locks: on a platform without them (Windows) timings and training may overlap.
    """

    POLL_S = 0.01

    def __init__(self, path):
        from pathlib import Path

        self.path = Path(path)

    @classmethod
    def of(cls, lock):
        """`lock` as a TimingLock: one already, its file's path, or None."""
        return lock if lock is None or isinstance(lock, cls) else cls(lock)

    def _flags(self) -> list:
        mine, up = os.getpid(), []
        for f in self.path.parent.glob(self.path.name + ".*"):
            try:
                pid = int(f.suffix[1:])
            except ValueError:
                continue
            if pid != mine and _alive(pid):
                up.append(f)
            elif pid != mine:
                f.unlink(missing_ok=True)       # left by a worker that died while timing
        return up

    @contextlib.contextmanager
    def timing(self):
        flag = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        flag.touch()
        try:
            with _flock(self.path, shared=False):
                yield
        finally:
            flag.unlink(missing_ok=True)

    @contextlib.contextmanager
    def training(self):
        """A context for a training run; it yields the call to make between batches."""
        with _flock(self.path, shared=True) as lk:
            def let_through():
                if not self._flags():
                    return
                lk.release()
                while self._flags():
                    time.sleep(self.POLL_S)
                lk.acquire()
            yield let_through


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # alive, another user's
        return True
    return True


class _flock:
    """fcntl's lock on a file, shared or exclusive; nothing where fcntl is missing."""

    def __init__(self, path, shared: bool):
        self.path, self.shared, self.fd = str(path), shared, None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:
            return
        if self.fd is None:
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            self.release()
            os.close(self.fd)
            self.fd = None


# --- the anchor: timings that hold still on a noisy host -------------------------------------------
# Thread CPU time does not shield a timing from a busy host (a VM's neighbours stall it, and the stall
# counts as run time): over one minute on this 2-core VM, a small net read 0.26-0.50 ms and ResNet8
# 0.83-1.50 ms, while the small net's ratio to ResNet8 timed in the same rounds stayed within
# 0.30-0.35. So each candidate is timed beside a fixed net, the anchor (ResNet8 at the search's input
# size), and reported as (candidate / anchor in the same rounds) x the anchor's quiet latency,
# measured once when the study starts (`quiet_ms`: the least of a few medians, since noise only adds).
ANCHOR = "resnet8"


def anchor_model(input_size, num_classes: int = 4, in_chans: int = 1):
    """The anchor net (ResNet8 as `resnet_nas` builds it) at `input_size`, seeded, in eval mode."""
    import torch

    from compress.nas.space import REFERENCES
    from edge.core.tasks import SINGLE_LABEL, Task
    from edge.ml.models import create_model

    arch = REFERENCES[ANCHOR].at(tuple(input_size))
    task = Task("anchor", SINGLE_LABEL, tuple(f"c{i}" for i in range(num_classes)))
    torch.manual_seed(0)
    return create_model("resnet_nas", task, input_size=arch.input_size, in_chans=in_chans,
                        **arch.model_kwargs()).eval()


def quiet_ms(model, repeats: int = 3, rounds: int = 20, lock=None) -> float:
    """A net's latency on a quiet host: the least of `repeats` medians (host noise only ever adds)."""
    return min(measure_models({"net": model}, rounds, lock)["net"]["median_ms"] for _ in range(repeats))


# --- where a candidate's latency comes from --------------------------------------------------------
MEASURED, TABLE, ESTIMATE = "measured", "table", "estimate"


class LatencySource:
    """A candidate's latency on the target: measured here (`cpu`), from a device table, or estimated.

    `ms(arch, model)` returns (milliseconds, how) where `how` is `measured`, `table` or `estimate`;
    `label` says it for reports.
    """

    def __init__(self, target, table: dict | None = None, rounds: int = 20, lock=None, in_chans: int = 1,
                 num_classes: int = 4, anchor: dict | None = None):
        self.target, self.rounds, self.anchor = target, rounds, anchor   # anchor: {"input_size", "ms"}
        self._anchor_net = None
        self.lock = TimingLock.of(lock)
        self.in_chans, self.num_classes = in_chans, num_classes
        self.table = table
        self.last: dict = {}      # the last measurement's details (wall-clock beside CPU time, runs)
        self.model: LatencyModel | None = None
        if table is not None:
            archs, ms = table_points(table)
            self.mode = TABLE
            self.model = LatencyModel.fit(archs, ms, f"fitted on {len(ms)} device measurements", in_chans, num_classes)
            self.label = (f"device table ({table.get('device', {}).get('name', '?')}, "
                          f"{table.get('backend', '?')}); nets not in it: estimate ({self.model.how})")
        elif target.kind == "cpu":
            self.mode = MEASURED
            self.label = "measured here: ONNX Runtime CPU, batch 1, 1 thread, median thread CPU time"
            if anchor is not None:
                h, w = anchor["input_size"]
                self.label += (f", relative to {ANCHOR} at {h}x{w} timed in the same rounds, times its quiet "
                               f"latency at the study's start ({anchor['ms']:g} ms)")
        else:
            self.mode = ESTIMATE
            self.model = LatencyModel.nominal(target.kind)
            self.label = (f"estimate ({self.model.how}); measure a table on the device: "
                          f"`edgekit nas-archs` then `edgekit bench-archs` there, and pass --latency-table")

    def ms(self, arch: Arch, model=None) -> tuple[float, str]:
        self.last = {}
        if self.mode == MEASURED:
            if model is None:
                raise ValueError("measuring needs the built model")
            if self.anchor is None:
                self.last = measure_models({arch.key(): model}, self.rounds, self.lock)[arch.key()]
                return self.last["median_ms"], MEASURED
            if self._anchor_net is None:
                self._anchor_net = anchor_model(self.anchor["input_size"], self.num_classes, self.in_chans)
            both = measure_models({"candidate": model, "anchor": self._anchor_net}, self.rounds, self.lock)
            raw, now = both["candidate"]["median_ms"], both["anchor"]["median_ms"]
            scale = self.anchor["ms"] / now
            self.last = {**both["candidate"], "raw_ms": raw, "anchor_ms": now,
                         "wall_ms": round(both["candidate"]["wall_ms"] * scale, 4)}
            return round(raw * scale, 4), MEASURED
        if self.mode == TABLE:
            hit = self.table["entries"].get(arch.key())
            if hit is not None:
                return float(hit["median_ms"]), TABLE
        return round(self.model.predict(arch, self.in_chans, self.num_classes), 4), ESTIMATE

    def to_dict(self) -> dict:
        out = {"mode": self.mode, "label": self.label, "target": self.target.name}
        if self.mode == MEASURED and self.anchor is not None:
            out["anchor"] = {"net": ANCHOR, **self.anchor}
        if self.model is not None:
            out["model"] = self.model.to_dict()
        if self.table is not None:
            archs, ms = table_points(self.table)
            out["table"] = {"path": self.table.get("path"), "entries": len(ms), "device": self.table.get("device"),
                            "backend": self.table.get("backend"),
                            "model_error": cross_validate(archs, ms, in_chans=self.in_chans, num_classes=self.num_classes)}
        return out


def load_table(path) -> dict:
    """A device's latency table (`runtime.archbench`'s format), entries keyed by `Arch.key()`."""
    from runtime.archbench import read_table

    table = read_table(path)
    entries = {}
    for e in table["entries"]:
        arch = Arch.from_dict(e["arch"])
        entries[arch.key()] = {**e, "arch_obj": arch}
    if len(entries) < 3:
        raise BadInputError(f"{path}: {len(entries)} timed architectures; a latency model needs at least 3 "
                            f"(write more with `edgekit nas-archs --count N`)")
    return {**table, "entries": entries, "path": str(path)}


def table_points(table: dict) -> tuple[list[Arch], list[float]]:
    rows = list(table["entries"].values())
    return [r["arch_obj"] for r in rows], [float(r["median_ms"]) for r in rows]
