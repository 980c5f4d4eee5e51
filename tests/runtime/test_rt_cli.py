"""`edgekit run` / `edgekit bench` and the torch-free promise: `runtime` and the run path work in a
process where `import torch` fails."""
from __future__ import annotations

import json

import pytest

import runtime
from edge.app.cli import main
from tests.conftest import run_without_torch
from runtime.outputs import ConsoleLines, JsonLines, Recorder, Window, display_available, make_outputs

FAST_PHANTOM = "phantom:0?realtime=0&width=160&height=96"


def test_runtime_imports_without_torch():
    proc = run_without_torch(
        "import importlib, pkgutil, runtime\n"
        "for m in pkgutil.walk_packages(runtime.__path__, 'runtime.'): importlib.import_module(m.name)\n"
        "import edge.app.cli.run\n"
        "assert callable(runtime.run) and callable(runtime.bench)\n"
        "loaded = [m for m, v in sys.modules.items() if m.split('.')[0] in ('torch', 'torchvision') and v is not None]\n"
        "assert not loaded, loaded\n"
        "print('ok')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok", (proc.stdout, proc.stderr)


def test_run_help_without_torch():
    proc = run_without_torch("from edge.app.cli import main; sys.exit(main(['run', '--help']))")
    assert proc.returncode == 0, proc.stderr
    for option in ("--source", "--backend", "--headless", "--frames", "--json-out", "--smooth", "--record"):
        assert option in proc.stdout


def test_headless_run_without_torch(bundle_dir, tmp_path):
    out = tmp_path / "run.jsonl"
    proc = run_without_torch(
        "from edge.app.cli import main\n"
        f"sys.exit(main(['run', {str(bundle_dir)!r}, '--source', {FAST_PHANTOM!r}, '--frames', '5', "
        f"'--json-out', {str(out)!r}, '--smooth', '0.5']))")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6
    assert lines[-1]["summary"]["frames"] == 5
    assert set(lines[0]["models"]) == {"plane", "anatomy", "detection", "sononet"}
    assert proc.stdout.count("\n#") + proc.stdout.startswith("#") == 5  # one console line per frame
    assert "end-to-end latency p50/p95/p99" in proc.stdout
    assert "backend: onnxruntime" in proc.stderr


def test_user_errors_are_one_line(bundle_dir, capsys):
    assert main(["run", str(bundle_dir), "--source", "usb:x", "--headless"]) == 1
    assert main(["run", str(bundle_dir), "--backend", "tensorrtt", "--headless", "--frames", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: bad camera source 'usb:x'")
    assert "did you mean 'tensorrt'" in err[1]


def test_bench_side_by_side(bundle_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle_dir), "--backends", "onnxruntime,tensorrt", "--frames", "8",
                 "--source", FAST_PHANTOM, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    ort = report["backends"]["onnxruntime"]
    assert ort["loop"]["frames"] == 8
    assert set(ort["bare_infer_ms"]) == {"plane", "anatomy", "detection", "sononet"}
    assert ort["e2e_over_bare_p50"] > 0
    assert ort["bare_infer_sum_p50_ms"] > 0
    if "error" in report["backends"]["tensorrt"]:
        assert "tensorrt" in report["backends"]["tensorrt"]["error"]
    assert set(ort["loop"]["breakdown_ms"]) >= {"capture", "handoff", "preprocess", "infer", "postprocess", "outputs",
                                                "fixed"}
    printed = capsys.readouterr().out
    assert "onnxruntime -> onnxruntime" in printed
    assert "per frame p50/p95 ms: capture" in printed


def test_record_is_opt_in_and_replays(plane_bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runtime.run(plane_bundle, source=FAST_PHANTOM, headless=True, frames=3)
    assert list(tmp_path.iterdir()) == []  # nothing written unless asked
    summary = runtime.run(plane_bundle, source=FAST_PHANTOM, headless=True, frames=3, record=tmp_path / "rec")
    recorded = sorted((tmp_path / "rec").glob("frame_*.png"))
    assert len(recorded) == 3
    assert summary["frames"] == 3
    replay = runtime.run(plane_bundle, source=str(tmp_path / "rec"), headless=True)
    assert replay["frames"] >= 1
    assert replay["source"].startswith("folder")


def test_outputs_follow_display_and_flags(monkeypatch, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
    assert [type(o) for o in make_outputs()] == [ConsoleLines]
    outs = make_outputs(json_out="-", record=tmp_path / "r")
    assert [type(o) for o in outs] == [JsonLines, Recorder]
    monkeypatch.setenv("DISPLAY", ":0")
    kinds = [type(o) for o in make_outputs(json_out=tmp_path / "x.jsonl")]
    assert kinds[0] in (Window, ConsoleLines)
    assert kinds[1] is JsonLines
    assert [type(o) for o in make_outputs(headless=True)] == [ConsoleLines]


@pytest.mark.parametrize("argv", [["run", "--help"], ["bench", "--help"]])
def test_help_in_process(argv, capsys):
    assert main(argv) == 0
    assert "BUNDLE" in capsys.readouterr().out
