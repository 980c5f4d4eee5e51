"""`edgekit demo --quick` through the real CLI: every stage leaves what the next one reads.

One quick run (about a minute on two cores) is shared by the assertions; its figures mean nothing
(a few frames, one epoch), so the tests check the artifacts and the plumbing, not accuracy.
"""
import json
import re

import pytest

from tests.conftest import run_cli

TASKS = {"plane", "orientation", "anatomy", "detection"}


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = run_cli("demo", "--quick", "--out", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc, json.loads((out / "demo.json").read_text())


@pytest.mark.slow
def test_quick_demo_bundles_hold_the_four_compressed_models(quick_demo):
    onnx = pytest.importorskip("onnx")
    from runtime.bundle import load_bundle

    out, _, report = quick_demo
    fp32, int8 = load_bundle(out / "bundle-cpu-fp32"), load_bundle(out / "bundle-jetson-int8")   # hashes checked
    assert fp32.manifest["target"] == "cpu"
    assert int8.manifest["target"] == "jetson"
    assert {m.task for m in fp32.models} == TASKS
    assert {m.precision for m in fp32.models} == {"fp32"}
    # all four at INT8 (the detector calibrated only: DemoPlan.detector_qat_epochs), and it is recorded
    assert {m.task for m in int8.models} == TASKS
    assert {m.precision for m in int8.models} == {"int8"}
    assert report["bundles"]["jetson-int8"]["left_out"] == []
    steps = {m["task"]: [c["step"] for c in m["compression"]] for m in int8.manifest["models"]}
    assert steps["detection"] == ["prune", "ptq"]
    assert steps["plane"] == ["prune", "qat"]
    for m in int8.models:                       # Q/DQ from the QAT checkpoints, an fp16 twin beside
        ops = {n.op_type for n in onnx.load(str(m.onnx)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, m.name
        assert [(f["precision"], (f.get("int8") or {}).get("form")) for f in m.fallbacks] == [
            ("fp16", None), ("int8", "onnxruntime")]        # and ORT's INT8 form for a CPU without TensorRT
    for m in fp32.models:                       # the pruned variant went in, not the baseline
        variants = {v["name"]: v for v in report["compress"][m.task]["variants"]}
        assert m.stats["params"] == variants["structured-50"]["params"] < variants["baseline"]["params"]
    parity = [m["parity"] for b in report["bundles"].values() for m in b["models"]]
    assert len(parity) == 4 + 4 * 3            # fp32; int8 with its fp16 twin and its ONNX Runtime form
    assert all(p["passed"] for p in parity)


@pytest.mark.slow
def test_quick_demo_runs_the_loop_and_reports_every_stage(quick_demo):
    out, proc, report = quick_demo
    assert set(report["train"]) == TASKS
    assert all((out / "checkpoints" / f"{t}.pt").is_file() for t in TASKS)
    assert all((out / "compress" / t / "sweep.json").is_file() for t in TASKS)
    run = report["run"]
    assert run["frames"] == report["plan"]["run_frames"] > 0
    assert set(run["models_ms"]) == TASKS
    assert run["backend"] == "onnxruntime"
    for needle in ("| structured-50-int8 | int8 |", "max_abs_diff", "end-to-end latency p50/p95/p99", "FPS"):
        assert needle in proc.stdout, needle
    assert (out / "demo.md").read_text().strip() == proc.stdout.strip()
    steps = {m.group(1) for m in re.finditer(r"^\[\s*\d+\.\ds\] (\d/5) ", proc.stderr, re.M)}
    assert steps == {"1/5", "2/5", "3/5", "4/5", "5/5"}, proc.stderr      # a timed line per step


@pytest.mark.slow
def test_quick_demo_reports_the_loops_correctness_against_the_phantoms_truth(quick_demo):
    out, proc, report = quick_demo
    c = report["correctness"]
    assert c["scored_frames"] == c["frames"] == report["run"]["frames"] > 0     # every frame had its truth
    assert set(c["models"]) == TASKS
    assert all(m["scored"] for m in c["models"].values())
    plane = c["models"]["plane"]
    expected = {"plane": ("accuracy", "macro_f1", "state_accuracy", "retrieval_recall", "retrieval_precision"),
                "orientation": ("accuracy", "macro_f1"), "anatomy": ("exact_match",),
                "detection": ("mAP50", "box_recall_iou50")}
    for name, keys in expected.items():
        for key in keys:
            value = c["models"][name][key]
            assert value is None or 0.0 <= value <= 1.0, (name, key, value)
    for key in ("accuracy", "state_accuracy", "exact_match"):   # a frame count is always there to divide by
        model = "anatomy" if key == "exact_match" else "plane"
        assert isinstance(c["models"][model][key], float)
    assert plane["crossings"] >= 0
    assert plane["found"] <= plane["crossings"]
    # the Markdown table, with the numbers of the JSON
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines()
            if line.startswith("| ") and line.count("|") == 7 and not line.startswith("| model")]
    measures = {(r[0].strip(), r[3].strip()): r[4].strip() for r in rows if r[3].strip() and r[2].strip().isdigit()}
    assert "### Correctness against the phantom's truth" in proc.stdout
    assert float(measures[("plane", "per-frame accuracy (argmax)")]) == pytest.approx(plane["accuracy"], abs=5e-4)
    assert float(measures[("plane", "per-frame accuracy (hysteresis state)")]) == pytest.approx(
        plane["state_accuracy"], abs=5e-4)
    values = [float(v) for v in measures.values() if v != "-"]
    assert values
    assert all(0.0 <= v <= 1.0 for v in values)
    # the loop's JSONL: every frame row has its truth and the plane's state; event rows are strict JSON
    rows = [json.loads(line, parse_constant=lambda x: pytest.fail(x)) for line in (out / "run.jsonl").read_text().splitlines()]
    frames = [r for r in rows if "models" in r]
    assert all(r["frame"]["truth"]["plane"] in ("AC", "BPD", "FL", "no plane") for r in frames)
    assert all(r["models"]["plane"]["state"] in ("AC", "BPD", "FL", "no plane") for r in frames)
    assert len([r for r in rows if r.get("event") == "plane_found"]) == report["run"]["events"]["count"] == c["events"]
    manifest = json.loads((out / "bundle-cpu-fp32" / "manifest.json").read_text())
    post = {m["task"]: m["postprocess"] for m in manifest["models"]}
    assert set(post["plane"]["hysteresis"]) >= {"enter", "leave", "min_frames"}
    assert "hysteresis" not in post["orientation"]


def test_demo_refuses_a_non_empty_out_in_one_line(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    proc = run_cli("demo", "--quick", "--out", tmp_path)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "--force" in errors[0], proc.stderr
    assert str(tmp_path) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_demo_without_torch_says_what_to_install(tmp_path, no_torch_env):
    proc = run_cli("demo", "--quick", "--out", tmp_path / "out", env=no_torch_env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert ".[train]" in errors[0]
    assert not (tmp_path / "out").exists()
