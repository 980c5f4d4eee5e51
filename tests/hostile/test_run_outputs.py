"""`edgekit run` / `edgekit bench` outputs under hostile conditions, through the installed script.

Bad output paths are one `error:` line before anything runs; a failed run never destroys an earlier
log; a full disk (/dev/full, an injected ENOSPC after N bytes, the kernel's file-size limit) leaves a
JSONL of complete strict-JSON lines and one error line; NaN is written as null; SIGTERM, SIGHUP and
Ctrl-C finish the frame, write the summary and exit 128 + the signal; every row names its frame.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, assert_one_error, edgekit_exe, run_edgekit

sys.path.insert(0, str(REPO / "tests" / "runtime"))
import rt_models

FAST = "phantom:0?realtime=0&width=160&height=96"
LIVE = "phantom:0?width=160&height=96"  # paced at 23 Hz, endless: only a signal stops it


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return rt_models.write_bundle(tmp_path_factory.mktemp("plane"), names=["plane"])


@pytest.fixture(scope="module")
def nan_bundle(tmp_path_factory) -> Path:
    """The plane classifier with NaN weights: every confidence it gives is NaN."""
    import onnx
    from onnx import TensorProto, helper

    from runtime.bundle import sha256_file

    root = rt_models.write_bundle(tmp_path_factory.mktemp("nan"), names=["plane"])
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "B"], ["logits"], transB=1)]
    out = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])]
    model = rt_models._model(nodes, out, [("W", np.full((4, 1), np.nan, np.float32)),
                                          ("B", np.zeros(4, np.float32))], "nan")
    onnx.save(model, root / "plane.fp32.onnx")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["models"][0]["sha256"] = sha256_file(root / "plane.fp32.onnx")
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _no_constants(name):
    raise AssertionError(f"non-strict JSON constant {name}")


def strict_rows(path: Path) -> list[dict]:
    """Every line of a JSONL file parsed strictly (no NaN/Infinity); the file ends on a newline."""
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"last line of {path} is cut off: {text[-80:]!r}"
    return [json.loads(line, parse_constant=_no_constants) for line in text.splitlines()]


def earlier_log(tmp_path) -> tuple[Path, bytes]:
    log = tmp_path / "earlier.jsonl"
    log.write_bytes(b'{"index": 0, "note": "yesterday\'s scan"}\n{"summary": {"frames": 1}}\n')
    return log, log.read_bytes()


# ---- output paths: one error line, checked before the source opens ----------------------------------

def test_json_out_directory_is_one_error(bundle, tmp_path):
    proc = run_edgekit("run", bundle, "--source", FAST, "--headless", "--frames", "2", "--json-out", tmp_path)
    line = assert_one_error(proc, "--json-out")
    assert "is a directory" in line
    assert str(tmp_path) in line
    assert "source:" not in proc.stderr  # refused before the source was opened
    assert list(tmp_path.iterdir()) == []


def test_json_out_in_missing_folder_is_one_error(bundle, tmp_path):
    target = tmp_path / "no" / "such" / "run.jsonl"
    proc = run_edgekit("run", bundle, "--source", FAST, "--headless", "--frames", "2", "--json-out", target)
    line = assert_one_error(proc, "does not exist")
    assert str(target.parent) in line
    assert "mkdir -p" in line
    assert not (tmp_path / "no").exists()


def test_record_onto_existing_file_is_one_error(bundle, tmp_path):
    log, before = earlier_log(tmp_path)
    proc = run_edgekit("run", bundle, "--source", FAST, "--headless", "--frames", "2", "--record", log)
    line = assert_one_error(proc, "--record")
    assert "existing file" in line
    assert str(log) in line
    assert log.read_bytes() == before


@pytest.mark.parametrize("where", ["directory", "missing parent"])
def test_bench_out_bad_path_is_one_error(bundle, tmp_path, where):
    out = tmp_path if where == "directory" else tmp_path / "missing" / "bench.json"
    proc = run_edgekit("bench", bundle, "--source", FAST, "--frames", "4", "--out", out)
    assert_one_error(proc, "--out")
    assert "bench:" not in proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


# ---- a failed run never destroys an earlier log ----------------------------------------------------

def test_failure_before_first_frame_keeps_earlier_log(bundle, tmp_path):
    log, before = earlier_log(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_edgekit("run", bundle, "--source", empty, "--headless", "--json-out", log)
    assert_one_error(proc, "no images")
    assert log.read_bytes() == before
    proc = run_edgekit("run", bundle, "--source", "usb:x", "--headless", "--json-out", log)
    assert_one_error(proc, "usb:x")
    assert log.read_bytes() == before


def test_run_without_frames_keeps_earlier_log(bundle, tmp_path):
    """A folder whose only image is unreadable: the run ends cleanly with no frame; F is untouched."""
    log, before = earlier_log(tmp_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "broken.png").write_bytes(b"not a png")
    proc = run_edgekit("run", bundle, "--source", frames, "--headless", "--json-out", log)
    assert proc.returncode == 0, proc.stderr
    assert "no frames processed" in proc.stdout
    assert log.read_bytes() == before


def test_successful_run_replaces_earlier_log(bundle, tmp_path):
    log, _ = earlier_log(tmp_path)
    proc = run_edgekit("run", bundle, "--source", FAST, "--headless", "--frames", "3", "--json-out", log)
    assert proc.returncode == 0, proc.stderr
    rows = strict_rows(log)
    assert len(rows) == 4
    assert rows[-1]["summary"]["frames"] == 3
    assert "note" not in rows[0]


# ---- a full disk -----------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_dev_full_is_one_error(bundle):
    proc = run_edgekit("run", bundle, "--source", FAST, "--headless", "--frames", "3", "--json-out", "/dev/full")
    line = assert_one_error(proc, "/dev/full")
    assert "free space" in line
    assert "No space left on device" in line


ENOSPC_SITE = '''
import errno, os
_target = os.path.realpath(os.environ["EDGEKIT_TEST_ENOSPC_PATH"])
_room = int(os.environ["EDGEKIT_TEST_ENOSPC_AFTER"])
_write = os.write

def write(fd, data):
    """The disk holds `_room` bytes of the target file: a write that crosses it is cut short (as the
    kernel does on a filling disk), the next one fails with ENOSPC."""
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return _write(fd, data)
    if path != _target:
        return _write(fd, data)
    left = _room - os.fstat(fd).st_size
    if left <= 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _write(fd, bytes(data)[:left])

os.write = write
'''

FSIZE_SITE = '''
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the kernel then fails the write with EFBIG
_limit = int(__import__("os").environ["EDGEKIT_TEST_FSIZE"])
resource.setrlimit(resource.RLIMIT_FSIZE, (_limit, _limit))
'''


def site_env(tmp_path, code: str, **env) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(code)
    out = dict(os.environ, **{k: str(v) for k, v in env.items()})
    out["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_enospc_midway_keeps_complete_lines(bundle, tmp_path):
    out = tmp_path / "run.jsonl"
    room = 2500  # a few ~600-byte rows, then a row cut short by the disk
    env = site_env(tmp_path, ENOSPC_SITE, EDGEKIT_TEST_ENOSPC_PATH=out, EDGEKIT_TEST_ENOSPC_AFTER=room)
    proc = run_edgekit("run", bundle, "--source", FAST, "--headless", "--frames", "50", "--json-out", out, env=env)
    line = assert_one_error(proc, str(out))
    assert "No space left on device" in line
    assert "free space" in line
    rows = strict_rows(out)
    assert 1 <= len(rows) < 50
    assert all("summary" not in r for r in rows)
    assert f"keeps its {len(rows)} complete rows" in line
    assert len(out.read_bytes()) <= room


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux's")
def test_file_size_limit_midway_keeps_complete_lines(bundle, tmp_path):
    out = tmp_path / "run.jsonl"
    env = site_env(tmp_path, FSIZE_SITE, EDGEKIT_TEST_FSIZE=3000)
    proc = run_edgekit("run", bundle, "--source", FAST, "--headless", "--frames", "50", "--json-out", out, env=env)
    line = assert_one_error(proc, str(out))
    assert "File too large" in line
    assert "free space" in line
    rows = strict_rows(out)
    assert 1 <= len(rows) < 50
    assert len(out.read_bytes()) <= 3000


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux's")
def test_bench_report_is_whole_or_untouched(bundle, tmp_path):
    report = tmp_path / "bench.json"
    report.write_text('{"earlier": true}\n')
    report.chmod(0o640)
    before = report.read_bytes()
    env = site_env(tmp_path, FSIZE_SITE, EDGEKIT_TEST_FSIZE=200)  # the report is ~2 kB
    proc = run_edgekit("bench", bundle, "--source", FAST, "--frames", "4", "--out", report, env=env)
    line = assert_one_error(proc, str(report))
    assert "nothing was changed" in line
    assert report.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "site"]  # no temporary left behind
    proc = run_edgekit("bench", bundle, "--source", FAST, "--frames", "4", "--out", report)
    assert proc.returncode == 0, proc.stderr
    written = json.loads(report.read_text(), parse_constant=_no_constants)
    assert written["backends"]["auto"]["loop"]["frames"] == 4
    assert report.stat().st_mode & 0o777 == 0o640  # the replaced file's permissions are kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "site"]


# ---- strict JSON -----------------------------------------------------------------------------------

def test_nan_confidences_are_null(nan_bundle, tmp_path):
    out = tmp_path / "run.jsonl"
    proc = run_edgekit("run", nan_bundle, "--source", FAST, "--headless", "--frames", "3", "--json-out", out)
    assert proc.returncode == 0, proc.stderr
    rows = strict_rows(out)
    assert len(rows) == 4
    assert "summary" in rows[-1]
    plane = rows[0]["models"]["plane"]
    assert plane["confidence"] is None
    assert set(plane["confidences"].values()) == {None}
    proc = run_edgekit("run", nan_bundle, "--source", FAST, "--headless", "--frames", "2", "--json-out", "-")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line, parse_constant=_no_constants) for line in proc.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["models"]["plane"]["confidence"] is None


def test_strict_json_maps_every_non_finite():
    from runtime.outputs import strict_json

    obj = {"a": float("nan"), "b": [float("inf"), -math.inf, 1.5], "c": np.float32("nan"), "d": np.arange(2)}
    assert json.loads(strict_json(obj)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": [0, 1]}


# ---- every row names its frame ---------------------------------------------------------------------

def test_folder_rows_name_their_file(bundle, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name, value in (("b.png", 0), ("a.png", 255), ("c.png", 128)):
        cv2.imwrite(str(frames / name), np.full((40, 40), value, np.uint8))
    out = tmp_path / "run.jsonl"
    proc = run_edgekit("run", bundle, "--source", frames, "--headless", "--json-out", out)
    assert proc.returncode == 0, proc.stderr
    rows = strict_rows(out)[:-1]
    assert [r["frame"]["file"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert all(r["frame"]["source"] == "folder" and Path(r["frame"]["path"]).parent == frames for r in rows)
    assert [r["index"] for r in rows] == [0, 1, 2]  # existing keys kept
    assert rows[0]["models"]["plane"]["label"] == "AC"
    assert rows[1]["models"]["plane"]["label"] == "BPD"


def test_video_rows_name_frame_number_and_time(bundle, tmp_path):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (48, 32))
    for i in range(4):
        writer.write(np.full((32, 48, 3), 60 * i, np.uint8))
    writer.release()
    out = tmp_path / "run.jsonl"
    proc = run_edgekit("run", bundle, "--source", f"{clip}?realtime=0", "--headless", "--json-out", out)
    assert proc.returncode == 0, proc.stderr
    frames = [r["frame"] for r in strict_rows(out)[:-1]]
    assert frames, proc.stderr
    for f in frames:  # the newest frame wins, so some may be dropped; each names its own place
        assert f["source"] == "video"
        assert f["file"] == "clip.avi"
        assert f["pos_ms"] == pytest.approx(40.0 * f["frame"], abs=0.5)
    numbers = [f["frame"] for f in frames]
    assert numbers == sorted(set(numbers))
    assert numbers[-1] == 3


def test_phantom_rows_name_seed_and_index(bundle, tmp_path):
    out = tmp_path / "run.jsonl"
    proc = run_edgekit("run", bundle, "--source", "phantom:7?realtime=0&width=160&height=96", "--headless",
                       "--frames", "3", "--json-out", out)
    assert proc.returncode == 0, proc.stderr
    rows = strict_rows(out)[:-1]
    assert len(rows) == 3
    assert all(r["frame"]["source"] == "phantom" and r["frame"]["seed"] == 7 for r in rows)
    assert [r["frame"]["index"] for r in rows] == [r["index"] for r in rows]  # the sweep's own frame number
    assert [r["index"] for r in rows] == sorted({r["index"] for r in rows})


def test_camera_frames_name_their_device():
    from runtime.sources import open_source

    assert open_source("usb:3")._frame_info() == {"device": "usb:3"}
    assert open_source("/dev/video2")._frame_info() == {"device": "/dev/video2"}


# ---- signals: finish the frame, write the summary, exit 128 + signal ------------------------------

def _stop_with(bundle, tmp_path, sig) -> tuple[int, list[dict], str, str]:
    out = tmp_path / "run.jsonl"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(stdout, "w") as so, open(stderr, "w") as se:
        proc = subprocess.Popen([edgekit_exe(), "run", str(bundle), "--source", LIVE, "--headless",
                                 "--json-out", str(out)], stdout=so, stderr=se, cwd=str(REPO))
        try:
            deadline = time.monotonic() + 120
            while not (out.exists() and out.stat().st_size > 0):
                assert proc.poll() is None, f"exited early ({proc.returncode}): {stderr.read_text()}"
                assert time.monotonic() < deadline, "no JSONL row within 120 s"
                time.sleep(0.05)
            proc.send_signal(sig)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, strict_rows(out), stdout.read_text(), stderr.read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signal_writes_summary_and_exits_128_plus_signal(bundle, tmp_path, sig, code):
    returncode, rows, stdout, stderr = _stop_with(bundle, tmp_path, sig)
    assert returncode == code, stderr
    assert "Traceback" not in stdout + stderr
    assert "error:" not in stderr
    assert "summary" in rows[-1]
    assert all("summary" not in r for r in rows[:-1])
    summary = rows[-1]["summary"]
    assert summary["signal"] == sig.name
    assert summary["frames"] == len(rows) - 1 >= 1
    assert f"frames {summary['frames']} in" in stdout
    assert "end-to-end latency" in stdout
    assert f"stopped by {sig.name}" in stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_loop_restores_signal_handlers(bundle):
    """The handlers are the loop's only while it runs; an ignored signal (nohup) stays ignored."""
    from runtime.bundle import load_bundle
    from runtime.loop import run_loop
    from runtime.pipeline import Pipeline
    from runtime.sources import open_source

    def marker(signum, frame):
        pass

    class Spy:
        def __init__(self):
            self.during = []

        def write(self, result, frame):
            self.during.append((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)))

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        signal.signal(signal.SIGTERM, marker)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        spy = Spy()
        with Pipeline(load_bundle(bundle)) as pipe:
            summary = run_loop(pipe, open_source(FAST), [spy], frames=2, log=lambda m: None)
        assert summary["frames"] == 2
        assert "signal" not in summary
        assert len(spy.during) == 2
        term, hup = spy.during[0]
        assert term is not marker
        assert callable(term)
        assert hup is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is marker
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is previous[signal.SIGINT]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
