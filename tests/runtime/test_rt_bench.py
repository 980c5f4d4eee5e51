"""`edgekit bench`'s per-frame breakdown (capture, hand-off, preprocess, infer, postprocess, pipeline,
outputs, fixed), a video source at a capture card's resolution through it, and the pipeline's shared
preprocessing giving the inputs separate preprocessing gives."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

import runtime
from edge.app.cli import main
from edge.core.preprocess import preprocess
from runtime.bundle import load_bundle
from runtime.pipeline import Pipeline, Result
from runtime.stats import BREAKDOWN, RunStats

FAST_PHANTOM = "phantom:0?realtime=0&width=160&height=96"


def test_breakdown_splits_each_frame():
    stats = RunStats()
    result = Result(0, t=10.0, started=10.003, done=10.012, capture_ms=2.0, queued_ms=2.0, outputs_ms=0.5,
                    timings={"a": {"preprocess": 1.0, "infer": 4.0, "postprocess": 0.5},
                             "b": {"preprocess": 0.0, "infer": 1.0, "postprocess": 0.5}})
    stats.add(result)
    got = {k: v["p50"] for k, v in stats.summary()["breakdown_ms"].items()}
    assert list(got) == list(BREAKDOWN)
    assert got == {"capture": 2.0, "queued": 2.0, "handoff": 1.0, "preprocess": 1.0, "infer": 5.0,
                   "postprocess": 1.0, "pipeline": 2.0, "outputs": 0.5,
                   "fixed": 4.5}                                      # 12 ms = 2 + 1 + 1 + 5 + 1 + 2 (+0.5 after)


def test_bench_reports_where_each_frame_went(plane_bundle):
    report = runtime.bench(plane_bundle, backends=["onnxruntime"], frames=8, source=FAST_PHANTOM,
                           log=lambda m: None)
    entry = report["backends"]["onnxruntime"]
    breakdown = entry["loop"]["breakdown_ms"]
    assert set(breakdown) == set(BREAKDOWN)
    assert all({"p50", "p95"} <= set(v) for v in breakdown.values())
    assert breakdown["capture"]["p50"] > 0                             # the phantom renders in capture
    assert entry["frame_shape"] == [96, 160]
    assert entry["bare_infer_fps"] > 0


def test_bench_takes_a_1024x768_video(plane_bundle, tmp_path, capsys):
    video = tmp_path / "card.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (1024, 768))
    for i in range(3):
        writer.write(np.full((768, 1024, 3), 60 * i, np.uint8))
    writer.release()
    out = tmp_path / "bench.json"
    assert main(["bench", str(plane_bundle), "--backends", "onnxruntime", "--frames", "4",
                 "--source", f"{video}?realtime=0", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["backends"]["onnxruntime"]
    assert entry["frame_shape"] == [768, 1024, 3]
    assert entry["loop"]["frames"] == 4
    printed = capsys.readouterr().out
    assert "FPS on 1024x768 frames" in printed
    assert "per frame p50/p95 ms: capture" in printed
    assert "fixed (hand-off+post+pipeline+outputs)" in printed


def test_shared_preprocessing_gives_the_inputs_of_separate_preprocessing(fresh_bundle: Path):
    manifest = json.loads((fresh_bundle / "manifest.json").read_text())
    by_name = {m["name"]: m for m in manifest["models"]}
    by_name["anatomy"]["preprocess"]["normalize"]["mean"] = [0.3]         # plane and sononet stay identical
    by_name["detection"]["preprocess"]["interpolation"] = "cubic"
    (fresh_bundle / "manifest.json").write_text(json.dumps(manifest))
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), np.uint8)
    with Pipeline(load_bundle(fresh_bundle), backend="onnxruntime") as pipe:
        cache: dict = {}
        shared = {r.entry.name: r.feed(image, cache)["input"] for r in pipe.runners}
        for r in pipe.runners:
            alone = preprocess(image, r.entry.preprocess)[None]
            assert np.array_equal(shared[r.entry.name], alone), r.entry.name
            assert np.array_equal(r.feed(image)["input"], alone), r.entry.name
    assert shared["plane"] is shared["sononet"]                           # one conversion for identical specs
    assert len(cache) == 3
