"""INT8 on ONNX Runtime, measured: FP32 against the TensorRT-form INT8 and the ORT-form INT8, one run.

The same QAT model is exported three ways (`export.onnx.build_graph`): its float twin at `fp32`
(what a cpu FP32 bundle ships), `int8` in the `tensorrt` form (ModelOpt's Q/DQ as TensorRT builds it:
what every INT8 bundle shipped before; ORT runs it as fake quantisation) and `int8` in the
`onnxruntime` form (`export.int8_ort`: uint8 activations at the QAT scales, BatchNorm folded, fused
by ORT into QLinearConv/QLinearAdd). For classifiers ORT's own static quantiser on the FP32 graph
(`onnxruntime.quantization.quantize_static`, QDQ, uint8 activations, int8 per-channel weights, MinMax
on the same calibration frames) runs beside them as the yardstick (`--no-ort-static` to skip).

Timing: `compress.latency.measure_latency` (ONNX Runtime CPU, batch 1, median of interleaved rounds
in which every variant runs in turn), at one intra-op thread and at ORT's default. Accuracy, on
phantom frames of another seed than any calibration: each variant's top-1 agreement with the FP32
graph and its accuracy against the phantom's truth (classifiers), or its box mAP@[.5:.95] against
the truth and its agreement mAP against the FP32 graph's boxes (the detector). Kernels: what ORT
fused each graph into (`export.int8_ort.ort_kernels`).

Models: ResNet8 64x64 plane (`--plane CKPT`, a QAT checkpoint such as `edgekit demo`'s
`compress/plane/plane.structured-50-int8.pt`; without it one is trained here: a small phantom
baseline, structured 50%, INT8 QAT), the same weights at 224x224 (float twin rebuilt at 224 and
calibrated there, PTQ: for the timing; weights trained at 64x64 do not classify 224x224 frames), and the Faster R-CNN ResNet10 at 128x128 with bench_train's CPU sizes
(`--detector CKPT`, e.g. the demo's `detection.structured-50-int8.pt`; without it one is trained
here, small).

    nice -n 10 python benchmarks/bench_int8.py --out runs/bench_int8.json \\
        [--plane demo/compress/plane/plane.structured-50-int8.pt] [--detector demo/compress/detection/...pt]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def log(msg: str) -> None:
    print(f"[bench_int8 {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- models ------------------------------------------------------------------------------------------

def train_plane_qat(work: Path, frames: int, epochs: int, size: int = 64):
    """A ResNet8 plane QAT checkpoint made here: phantom baseline, structured 50%, INT8 QAT (1 epoch each)."""
    import torch

    from compress.data import calibration_batches
    from compress.quant import quantize_int8
    from compress.structured import prune_structured
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data.dataset import PhantomDataset
    from edge.ml.models import create_model
    from edge.ml.quantization import quantization_meta
    from edge.ml.training.fit import fit

    torch.manual_seed(0)
    net = create_model("resnet8", task="plane", input_size=(size, size))
    train = PhantomDataset("plane", net.edge_config.preprocess, seed=0, n=frames, size=(128, 128), augment=True)
    fit(net, train, epochs=epochs, lr=1e-3, batch_size=32, progress=False, seed=0, step_size=max(1, epochs - 1))
    pruned, info = prune_structured(net.eval(), 0.5)
    fit(pruned, train, epochs=1, lr=5e-4, batch_size=32, progress=False, seed=0)
    q = quantize_int8(copy.deepcopy(pruned.eval()), calibration_batches(pruned, train, 256))
    fit(q, train, epochs=1, lr=5e-5, batch_size=32, progress=False, seed=0)
    return save_checkpoint(work / "plane.s50.int8.pt", q.eval(), compression=[info],
                           quantization=quantization_meta(q, calib_samples=256))


def train_detector_qat(work: Path, frames: int, epochs: int):
    """A Faster R-CNN ResNet10 128x128 (bench_train's CPU sizes) trained briefly, INT8 calibrated (PTQ)."""
    import torch

    from bench_train import CPU_DETECTOR
    from compress.data import calibration_batches
    from compress.quant import quantize_int8
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.data.dataset import PhantomDataset
    from edge.ml.models import create_model
    from edge.ml.quantization import quantization_meta
    from edge.ml.training.fit import fit

    torch.manual_seed(0)
    net = create_model("fasterrcnn_resnet10", task="detection", input_size=(128, 128), fpn_channels=64, **CPU_DETECTOR)
    train = PhantomDataset("detection", net.edge_config.preprocess, seed=0, n=frames, size=(128, 128), augment=True)
    fit(net, train, epochs=epochs, lr=1e-3, batch_size=8, progress=False, seed=0, step_size=max(1, epochs - 1))
    q = quantize_int8(copy.deepcopy(net.eval()), calibration_batches(net, train, 64, 8))
    return save_checkpoint(work / "detection.int8.pt", q.eval(), quantization=quantization_meta(q, calib_samples=64))


def at_size(twin, size: int, calib_n: int):
    """The float twin rebuilt at `size` x `size` (ResNet8 is fully convolutional) and INT8-calibrated there."""
    import torch

    from compress.quant import quantize_int8
    from edge.ml.checkpoint import model_shapes, resize_to_shapes
    from edge.ml.models import create_model
    from export.int8_ort import calibration_frames

    cfg = twin.edge_config
    net = create_model(cfg.name, cfg.task, **{**cfg.kwargs, "input_size": (size, size)})
    resize_to_shapes(net, model_shapes(twin))
    net.load_state_dict(twin.state_dict())
    net.eval()
    xs = torch.from_numpy(np.stack(calibration_frames(net, calib_n)))
    q = quantize_int8(copy.deepcopy(net), [xs[i:i + 16] for i in range(0, len(xs), 16)])
    return net, q.eval()


# ---- variants ----------------------------------------------------------------------------------------

def ort_static(fp32_path: Path, out: Path, calib: list[np.ndarray]) -> Path:
    """ORT's own static quantiser on the FP32 graph (QDQ, U8 activations, S8 per-channel weights, MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[None]} for x in calib])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(fp32_path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    return out


def write_variants(qat, twin, work: Path, name: str, static: bool) -> tuple[dict, dict]:
    import onnx

    from export.int8_ort import calibration_frames, kernel_summary, ort_kernels
    from export.onnx import build_graph, int8_form_of

    files, info = {}, {}
    t0 = time.perf_counter()
    files["fp32"] = work / f"{name}.fp32.onnx"
    onnx.save(build_graph(twin, "fp32"), str(files["fp32"]))
    files["int8-tensorrt"] = work / f"{name}.int8-tensorrt.onnx"
    onnx.save(build_graph(qat, "int8", "tensorrt"), str(files["int8-tensorrt"]))
    t1 = time.perf_counter()
    g = build_graph(qat, "int8", "onnxruntime")
    info["rewrite"] = int8_form_of(g)[1]
    info["rewrite_s"] = round(time.perf_counter() - t1, 2)
    files["int8-onnxruntime"] = work / f"{name}.int8-onnxruntime.onnx"
    onnx.save(g, str(files["int8-onnxruntime"]))
    if static:
        try:
            files["ort-static-u8s8"] = ort_static(files["fp32"], work / f"{name}.ort-static.onnx",
                                                  calibration_frames(qat))
        except Exception as exc:  # the yardstick only; report why it is missing
            info["ort_static_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    info["kernels"] = {k: kernel_summary(ort_kernels(p)) for k, p in files.items()}
    info["bytes"] = {k: p.stat().st_size for k, p in files.items()}
    info["export_s"] = round(time.perf_counter() - t0, 1)
    return files, info


# ---- measurements ------------------------------------------------------------------------------------

def _session(path):
    from compress.latency import ort_session

    return ort_session(path, threads=1)


def classifier_accuracy(files: dict, qat, n: int, seed: int = 2000) -> dict:
    """Top-1 agreement with the FP32 graph and accuracy against the phantom truth, per variant (and PyTorch QAT)."""
    import torch

    from edge.ml.data.dataset import PhantomDataset

    spec = qat.edge_config.preprocess
    size = tuple(int(v) for v in spec["resize"])
    ds = PhantomDataset(qat.edge_config.task.name, spec, seed=seed, n=n, size=(max(128, size[0]), max(128, size[1])))
    xs = np.stack([ds[i][0].numpy() for i in range(len(ds))])
    ys = np.array([int(ds[i][1]) for i in range(len(ds))])
    answers = {}
    for k, p in files.items():
        s = _session(p)
        answers[k] = np.array([s.run(None, {"input": x[None]})[0][0].argmax() for x in xs])
    with torch.no_grad():
        answers["pytorch-qat"] = qat(torch.from_numpy(xs)).argmax(1).numpy()
    ref = answers["fp32"]
    return {"frames": len(xs), "seed": seed,
            **{k: {"agreement_vs_fp32": round(float((a == ref).mean()), 4),
                   "accuracy": round(float((a == ys).mean()), 4)} for k, a in answers.items()}}


def detector_accuracy(files: dict, qat, n: int, seed: int = 2000) -> dict:
    """Box mAP against the phantom truth and agreement mAP against the FP32 graph's boxes, per variant."""
    from export.parity import box_map, phantom_set, truth_map

    inputs, truth = phantom_set(qat.edge_config.preprocess, n, seed=seed, labels=qat.edge_config.labels)
    dets = {}
    for k, p in files.items():
        s = _session(p)
        dets[k] = [s.run(None, {"input": x[None]}) for x in inputs]
    ref = dets["fp32"]
    return {"frames": n, "seed": seed,
            **{k: {"truth_map": truth_map(truth, d), "agreement_map_vs_fp32": box_map(ref, d)["map"]}
               for k, d in dets.items()}}


def latency(files: dict, rounds: int, runs: int) -> dict:
    from compress.latency import measure_latency

    out = {}
    for threads, label in ((1, "1_thread"), (0, "default_threads")):
        lat = measure_latency({k: str(p) for k, p in files.items()}, rounds=rounds, runs_per_round=runs, threads=threads)
        base = lat["fp32"]["median_ms"]
        out[label] = {k: {"median_ms": round(v["median_ms"], 4), "p90_ms": round(v["p90_ms"], 4),
                          "speedup_vs_fp32": round(base / v["median_ms"], 3), "runs": v["runs"]}
                      for k, v in lat.items()}
    return out


def bench_model(name: str, qat, twin, work: Path, args, detector: bool = False, note: str = "") -> dict:
    t0 = time.perf_counter()
    log(f"{name}: exporting fp32 / int8-tensorrt / int8-onnxruntime{'' if detector or args.no_ort_static else ' / ort-static'}")
    files, info = write_variants(qat, twin, work, name, static=not detector and not args.no_ort_static)
    log(f"{name}: accuracy on phantom frames")
    acc = (detector_accuracy(files, qat, args.det_frames) if detector
           else classifier_accuracy(files, qat, args.frames))
    log(f"{name}: timing ({'detector' if detector else 'classifier'} rounds)")
    rounds, runs = (args.det_rounds, 3) if detector else (args.rounds, 5)
    lat = latency(files, rounds, runs)
    one = lat["1_thread"]
    result = {"note": note, "input": list(qat.edge_config.input_size), "architecture": qat.edge_config.name,
              "latency": lat, "accuracy": acc, **info,
              "checks": {"ort_int8_faster_than_fp32_1_thread": one["int8-onnxruntime"]["speedup_vs_fp32"] > 1.0,
                         "ort_int8_faster_than_tensorrt_form_1_thread":
                             one["int8-onnxruntime"]["median_ms"] < one["int8-tensorrt"]["median_ms"]},
              "wall_s": round(time.perf_counter() - t0, 1)}
    log(f"{name}: 1 thread " + ", ".join(f"{k} {v['median_ms']:.3f} ms ({v['speedup_vs_fp32']:.2f}x)"
                                         for k, v in one.items()))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_int8.json")
    ap.add_argument("--plane", help="ResNet8 64x64 QAT checkpoint (default: trained here, small)")
    ap.add_argument("--detector", help="Faster R-CNN ResNet10 INT8 checkpoint (default: trained here, small)")
    ap.add_argument("--no-detector", action="store_true", help="skip the detector")
    ap.add_argument("--big", type=int, default=224, help="the second classifier size (0: skip)")
    ap.add_argument("--frames", type=int, default=300, help="phantom frames for classifier agreement")
    ap.add_argument("--det-frames", type=int, default=32, help="phantom frames for detector mAP")
    ap.add_argument("--rounds", type=int, default=40, help="interleaved timing rounds (classifiers, x5 runs)")
    ap.add_argument("--det-rounds", type=int, default=16, help="interleaved timing rounds (detector, x3 runs)")
    ap.add_argument("--train-frames", type=int, default=600, help="phantom frames when training the plane model here")
    ap.add_argument("--train-epochs", type=int, default=3)
    ap.add_argument("--det-train-frames", type=int, default=200)
    ap.add_argument("--det-train-epochs", type=int, default=3)
    ap.add_argument("--no-ort-static", action="store_true", help="skip ORT's own static quantiser (the yardstick)")
    args = ap.parse_args(argv)

    import onnxruntime
    import torch

    from edge.ml.quantization import load_quantized
    from edge.ml.training.batches import torch_threads

    out = Path(args.out)
    work = out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "bench_int8", "machine": {
        "cpu": platform.processor() or platform.machine(), "cpus": len(os.sched_getaffinity(0)),
        "onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "load_avg_start": os.getloadavg()},
        "settings": vars(args), "models": {}}
    t_start = time.perf_counter()
    with torch_threads():
        if args.plane:
            plane_ckpt, note = Path(args.plane), f"checkpoint {Path(args.plane).name}"
        else:
            log(f"training a ResNet8 plane model here ({args.train_frames} frames x {args.train_epochs} epochs, "
                f"structured 50%, QAT)")
            plane_ckpt, note = train_plane_qat(work, args.train_frames, args.train_epochs), "trained here (small)"
        qat, _ = load_quantized(plane_ckpt)
        twin, _ = load_quantized(plane_ckpt, float_only=True)
        result["models"]["resnet8-64"] = bench_model("resnet8-64", qat, twin, work, args, note=note)
        out.write_text(json.dumps(result, indent=2) + "\n")
        if args.big:
            log(f"resnet8-{args.big}: the same weights rebuilt at {args.big}x{args.big}, INT8 calibrated there (PTQ)")
            twin_big, qat_big = at_size(twin, args.big, 32)
            result["models"][f"resnet8-{args.big}"] = bench_model(
                f"resnet8-{args.big}", qat_big, twin_big, work, args,
                note=f"{note}: float weights at {args.big}x{args.big}, PTQ on 32 phantom frames; for timing: "
                     f"weights trained at 64x64 do not classify {args.big}x{args.big} frames (accuracy near "
                     f"chance), so agreement there says little")
            out.write_text(json.dumps(result, indent=2) + "\n")
        if not args.no_detector:
            if args.detector:
                det_ckpt, note = Path(args.detector), f"checkpoint {Path(args.detector).name}"
            else:
                log(f"training a Faster R-CNN ResNet10 here ({args.det_train_frames} frames x {args.det_train_epochs} epochs)")
                det_ckpt = train_detector_qat(work, args.det_train_frames, args.det_train_epochs)
                note = "trained here (small), PTQ"
            qat, _ = load_quantized(det_ckpt)
            twin, _ = load_quantized(det_ckpt, float_only=True)
            result["models"]["fasterrcnn_resnet10-128"] = bench_model("fasterrcnn_resnet10-128", qat, twin, work, args,
                                                                      detector=True, note=note)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["machine"]["load_avg_end"] = os.getloadavg()
    result["all_ok"] = all(v for m in result["models"].values() for v in m["checks"].values())
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {"1_thread": {v: r["speedup_vs_fp32"] for v, r in m["latency"]["1_thread"].items()},
                          "default_threads": {v: r["speedup_vs_fp32"] for v, r in m["latency"]["default_threads"].items()},
                          "checks": m["checks"]} for k, m in result["models"].items()}, indent=2))
    log(f"wrote {out} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
