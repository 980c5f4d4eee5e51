"""Real time at scanner resolution and INT8 that is faster wherever it runs, measured in one run.

    python benchmarks/bench_speed.py --out runs/bench_speed.json [--quick]

Runs, one after the other in this process, and merges into one JSON (each part's own JSON is kept
beside it as runs/bench_speed.<part>.json):

- `realtime` (bench_realtime.py): preprocessing of 1920x1080, 1024x768 and phantom frames, old float
  path against the uint8 one, and `edgekit bench`'s per-frame breakdown (capture, hand-off,
  preprocess, infer, postprocess, outputs, fixed cost) beside bare inference, four models and ResNet8;
- `int8` (bench_int8.py): FP32, the TensorRT-form INT8 and the ONNX Runtime-form INT8 of ResNet8 at
  64x64 and 224x224 and of Faster R-CNN ResNet10, interleaved, with their agreement with FP32;
- `detector_prune` (bench_detector_prune.py): where the detector's ORT time goes, and structured
  30/50/70% with the FPN and heads in scope against the backbone-only scope, latency and mAP.

Each part times its variants in interleaved rounds, so ratios within a part are side by side; the
parts run one after another. `--quick` shortens every part (fewer rounds and frames).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_detector_prune
import bench_int8
import bench_realtime

PARTS = {
    "realtime": (bench_realtime.main, [], ["--frames4", "8", "--frames1", "48", "--rounds", "2"]),
    "int8": (bench_int8.main, [], ["--rounds", "10", "--frames", "100", "--det-frames", "16"]),
    "detector_prune": (bench_detector_prune.main, [],
                       ["--ratios", "0.5", "--sizes-quick", "", "--rounds", "6", "--epochs", "2"]),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_speed.json"))
    ap.add_argument("--quick", action="store_true", help="fewer rounds and frames in every part")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged: dict = {"parts": {}, "seconds": {}}
    for name in [p.strip() for p in args.parts.split(",") if p.strip()]:
        if name not in PARTS:
            ap.error(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
        run, full, quick = PARTS[name]
        part_out = args.out.with_name(f"{args.out.stem}.{name}.json")
        t0 = time.perf_counter()
        code = run(["--out", str(part_out), *(quick if args.quick else full)])
        merged["seconds"][name] = round(time.perf_counter() - t0, 1)
        merged["parts"][name] = json.loads(part_out.read_text()) if part_out.exists() else {"exit": code}
        print(f"[{name}] {merged['seconds'][name]} s -> {part_out}", file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(merged, indent=2, allow_nan=False))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
