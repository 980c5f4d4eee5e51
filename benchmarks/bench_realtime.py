"""Issue 13: preprocessing at a capture card's resolution, and the loop's own cost per frame; JSON out.

    python benchmarks/bench_realtime.py [--out runs/bench_realtime.json] [--bundle4 DIR] [--bundle1 DIR]

1. Preprocessing, per spec, at 1920x1080 and 1024x768 (RGB frames decoded from MJPG videos of phantom
   frames upscaled, as a capture card delivers them) and at the phantom's native 672x389 (RGB from
   the same kind of video, and the grey frame the phantom source gives): the float implementation
   `edge.core.preprocess` had before issue 13 (copied here as the baseline) against today's, timed
   in interleaved rounds (old, new, old, new, ...) so drifting machine load hits both alike; the ratio
   of their medians, and their largest difference in 0..255 units and after normalisation.
2. The loop, as `edgekit bench` runs it (`runtime.api.bench_backend`: bare inference and the real loop
   in alternating blocks), on each video (paced at its 30 Hz, as a capture card) and on the phantom
   source itself (23 Hz, rendering in the capture thread): loop FPS against bare inference, and the
   per-frame breakdown (capture, queued, hand-off, preprocess, infer, postprocess, pipeline, outputs,
   fixed = hand-off + postprocess + pipeline + outputs, the loop's cost beyond preprocessing and
   inference; `runtime.stats`).
   At 1920x1080 the loop also runs once with the old float preprocessing patched in, side by side.

Bundles: a four-model CPU FP32 bundle at the full demo's sizes (three ResNet8 at 64x64 and Faster R-CNN
ResNet10 at 128x128 with the demo's CPU RPN/ROI settings; seeded untrained weights, whose inference
costs what trained ones do) and ResNet8 64x64 alone; built with torch into a temp dir (about a minute)
unless --bundle4 / --bundle1 name existing ones (e.g. an `edgekit demo` OUT/bundle-cpu-fp32).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.core import preprocess as pp  # noqa: E402
from tests.edge.core.preprocess_reference import old_preprocess, old_to_grey  # noqa: E402  (the float path before issue 13)

RESOLUTIONS = {"1920x1080": (1080, 1920), "1024x768": (768, 1024), "native 672x389": (389, 672)}
VIDEO_FPS = 30.0


# --- bundles and sources ---
def build_bundles(root: Path) -> tuple[Path, Path]:
    """(four-model bundle, ResNet8 64x64 bundle), exported for the CPU at FP32."""
    import torch

    from edge.app.demo.plan import DETECTOR_KWARGS, FULL
    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.models import create_model
    from export.bundle import export_bundle

    torch.manual_seed(0)
    ckpts = []
    for task in ("plane", "orientation", "anatomy"):
        model = create_model(FULL.classifier, task=task, input_size=(FULL.classifier_input,) * 2).eval()
        ckpts.append(save_checkpoint(root / f"{task}.pt", model))
    detector = create_model(FULL.detector, task="detection", input_size=(FULL.detector_input,) * 2,
                            fpn_channels=FULL.detector_fpn, **DETECTOR_KWARGS).eval()
    ckpts.append(save_checkpoint(root / "detection.pt", detector))
    export_bundle(ckpts, "cpu", "fp32", root / "four", parity_frames=4)
    export_bundle(ckpts[:1], "cpu", "fp32", root / "resnet8", parity_frames=4)
    return root / "four", root / "resnet8"


def write_videos(root: Path, n: int = 48) -> dict[str, Path]:
    """MJPG videos of phantom frames upscaled to each resolution (a capture card's RGB, through BGR)."""
    from edge.core.phantom import sample

    frames = [f.image for f in sample(0, n, *RESOLUTIONS["native 672x389"])]
    out = {}
    for name, (h, w) in RESOLUTIONS.items():
        path = root / f"probe_{w}x{h}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (w, h))
        for f in frames:
            writer.write(cv2.cvtColor(cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2BGR))
        writer.release()
        out[name] = path
    return out


def first_rgb(video: Path) -> np.ndarray:
    from runtime.sources import open_source

    with open_source(f"{video}?realtime=0") as src:
        for _ in range(5):                    # a frame into the sweep, not the first
            frame = src.read()
    return frame.image


# --- 1. preprocessing ---
def spec_set(bundles) -> dict[str, dict]:
    """The bundles' distinct specs, plus SonoNet's cubic ROI spec and an area one (the slow paths)."""
    from runtime.bundle import load_bundle

    specs = {}
    for b in bundles:
        for m in load_bundle(b).models:
            s = m.preprocess
            specs.setdefault(json.dumps(s, sort_keys=True), (f"{m.name} {s['resize'][0]}x{s['resize'][1]} "
                                                             f"{s['interpolation']}", s))
    out = {name: s for name, s in specs.values()}
    norm = {"mode": "meanstd", "mean": [0.5], "std": [0.25], "scale": 255.0}
    out["sononet-like 288x224 cubic, roi, zscore"] = {"roi": None, "grey": True, "resize": [288, 224],
                                                      "interpolation": "cubic",
                                                      "normalize": {"mode": "zscore", "scale": 255.0}}
    out["area 64x64"] = {"roi": None, "grey": True, "resize": [64, 64], "interpolation": "area", "normalize": norm}
    return out


def roi_for(spec: dict, shape) -> dict:
    """SonoNet's ROI is in its scanner's pixels; here the middle 85% of the frame stands in for it."""
    if spec["interpolation"] != "cubic":
        return spec
    h, w = shape[:2]
    return {**spec, "roi": [int(h * 0.075), int(h * 0.925), int(w * 0.075), int(w * 0.925)]}


def time_preprocessing(images: dict[str, np.ndarray], specs: dict[str, dict], rounds: int, reps: int) -> dict:
    cases = [(img_name, spec_name, roi_for(spec, img.shape)) for img_name, img in images.items()
             for spec_name, spec in specs.items()]
    times = {(i, s): {"old": [], "new": []} for i, s, _ in cases}
    for _ in range(rounds):                  # interleaved: old, new, old, new ... in every round
        for img_name, spec_name, spec in cases:
            img = images[img_name]
            for impl, fn in (("old", old_preprocess), ("new", pp.preprocess)):
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn(img, spec)
                    times[(img_name, spec_name)][impl].append((time.perf_counter() - t0) * 1e3)
    out: dict = {}
    for img_name, spec_name, spec in cases:
        img, t = images[img_name], times[(img_name, spec_name)]
        old_ms, new_ms = float(np.median(t["old"])), float(np.median(t["new"]))
        ref_pixels = pp.crop_roi(img, spec.get("roi"))
        ref = old_preprocess(img, spec)
        ref_grey = cv2.resize(old_to_grey(ref_pixels), tuple(spec["resize"][::-1]),
                              interpolation=pp.INTERPOLATIONS[spec["interpolation"]])
        out.setdefault(img_name, {})[spec_name] = {
            "old_ms_p50": round(old_ms, 3), "new_ms_p50": round(new_ms, 3), "speedup": round(old_ms / new_ms, 1),
            "max_abs_diff_0_255": round(float(np.abs(pp.pixels(img, spec)[0] - ref_grey).max()), 4),
            "max_abs_diff_input": round(float(np.abs(pp.preprocess(img, spec) - ref).max()), 5),
            "samples": len(t["new"])}
    return out


# --- 2. the loop ---
def loop_figures(entry: dict) -> dict:
    loop = entry["loop"]
    keep = {"fps": loop["fps"], "frames": loop["frames"], "dropped": loop["dropped"],
            "e2e_ms": {k: loop["latency_ms"].get(k) for k in ("p50", "p95")},
            "bare_infer_sum_ms": {k: entry["bare_frame_ms"].get(k) for k in ("p50", "p95")},
            "bare_infer_fps": entry.get("bare_infer_fps"), "e2e_over_bare_p50": entry.get("e2e_over_bare_p50"),
            "breakdown_ms": {k: {q: v.get(q) for q in ("p50", "p95")} for k, v in loop["breakdown_ms"].items()},
            "frame_shape": entry.get("frame_shape")}
    keep["beyond_preprocess_and_infer_p50_ms"] = keep["breakdown_ms"]["fixed"]["p50"]
    return keep


def run_loops(bundles: dict[str, Path], videos: dict[str, Path], frames: dict[str, int], backend: str) -> dict:
    from runtime.api import bench_backend
    from runtime.bundle import load_bundle

    out: dict = {}
    for bname, path in bundles.items():
        bundle = load_bundle(path)
        sources = {name: f"{video}?loop=1" for name, video in videos.items()}   # paced at the video's 30 Hz
        sources["phantom source (renders in capture, 23 Hz)"] = "phantom"
        for sname, spec in sources.items():
            t0 = time.perf_counter()
            entry = bench_backend(bundle, backend, frames[bname], spec, log=lambda m: None)
            out.setdefault(bname, {})[sname] = loop_figures(entry)
            print(f"  loop {bname} on {sname}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def run_old_loop(bundles: dict[str, Path], video: Path, frames: dict[str, int], backend: str) -> dict:
    """The loop at 1920x1080 with the old float preprocessing patched into the pipeline, then today's."""
    import runtime.pipeline as pipeline
    from runtime.api import bench_backend
    from runtime.bundle import load_bundle

    out: dict = {}
    for bname, path in bundles.items():
        bundle = load_bundle(path)
        for label, fn in (("old float preprocessing", old_preprocess), ("new", pp.preprocess)):
            pipeline.preprocess = fn
            try:
                entry = bench_backend(bundle, backend, frames[bname], f"{video}?loop=1", log=lambda m: None)
            finally:
                pipeline.preprocess = pp.preprocess
            out.setdefault(bname, {})[label] = loop_figures(entry)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "bench_realtime.json"))
    p.add_argument("--bundle4", help="a four-model bundle (default: built, untrained, at the demo's sizes)")
    p.add_argument("--bundle1", help="a ResNet8 64x64 bundle (default: built)")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--frames4", type=int, default=24, help="loop frames per source, four-model bundle")
    p.add_argument("--frames1", type=int, default=160, help="loop frames per source, ResNet8 bundle")
    p.add_argument("--rounds", type=int, default=5, help="interleaved preprocessing rounds")
    p.add_argument("--reps", type=int, default=3, help="calls per implementation per round")
    args = p.parse_args(argv)
    started, load_start = time.time(), os.getloadavg()
    report: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                                "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                                "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads()}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.bundle4 and args.bundle1:
            four, one = Path(args.bundle4), Path(args.bundle1)
        else:
            t0 = time.perf_counter()
            built = build_bundles(tmp)
            four, one = Path(args.bundle4 or built[0]), Path(args.bundle1 or built[1])
            print(f"bundles built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        bundles = {"four models": four, "resnet8 64x64": one}
        report["bundles"] = {"four models": args.bundle4 or "built: untrained, the full demo's sizes",
                             "resnet8 64x64": args.bundle1 or "built: untrained"}
        videos = write_videos(tmp)
        from runtime.sources import open_source

        with open_source("phantom:0?realtime=0&frames=6") as src:
            grey = [f.image for f in iter(src.read, None)][-1]
        images = {name: first_rgb(v) for name, v in videos.items()}
        images["native 672x389 grey (phantom source)"] = grey
        t0 = time.perf_counter()
        report["preprocess"] = time_preprocessing(images, spec_set(bundles.values()), args.rounds, args.reps)
        print(f"preprocessing timed in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        frames = {"four models": args.frames4, "resnet8 64x64": args.frames1}
        report["loop"] = run_loops(bundles, videos, frames, args.backend)
        report["loop_1920x1080_old_vs_new_preprocess"] = run_old_loop(bundles, videos["1920x1080"], frames,
                                                                       args.backend)
    report["video_fps"] = VIDEO_FPS
    report["loadavg"] = {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]}
    report["seconds"] = round(time.time() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"wrote {args.out}")
    return 0


def print_report(report: dict) -> None:
    print("preprocessing, p50 ms old float -> new (speed-up; max diff 0..255 / after normalisation):")
    for img_name, specs in report["preprocess"].items():
        print(f"  {img_name}:")
        for spec_name, r in specs.items():
            print(f"    {spec_name}: {r['old_ms_p50']:.2f} -> {r['new_ms_p50']:.3f} ({r['speedup']}x; "
                  f"{r['max_abs_diff_0_255']} / {r['max_abs_diff_input']})")
    print("loop (edgekit bench): FPS vs bare-inference FPS; per frame p50 ms")
    for bname, sources in report["loop"].items():
        for sname, r in sources.items():
            b = {k: v["p50"] for k, v in r["breakdown_ms"].items()}
            print(f"  {bname} on {sname}: {r['fps']} FPS (bare inference {r['bare_infer_fps']} FPS), e2e p50 "
                  f"{r['e2e_ms']['p50']} ms; capture {b['capture']}, queued {b['queued']}, hand-off {b['handoff']}, preprocess "
                  f"{b['preprocess']}, infer {b['infer']}, postprocess {b['postprocess']}, pipeline {b['pipeline']}, "
                  f"outputs {b['outputs']}; fixed {b['fixed']} (p95 {r['breakdown_ms']['fixed']['p95']})")
    print("loop at 1920x1080, old float preprocessing vs new:")
    for bname, runs in report["loop_1920x1080_old_vs_new_preprocess"].items():
        print("  " + bname + ": " + "; ".join(
            f"{label} {r['fps']} FPS, preprocess p50 {r['breakdown_ms']['preprocess']['p50']} ms, e2e p50 "
            f"{r['e2e_ms']['p50']} ms" for label, r in runs.items()))
    print(f"load average start {report['loadavg']['start']}, end {report['loadavg']['end']}; {report['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
