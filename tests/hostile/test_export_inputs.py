"""`edgekit export` against a full disk, a concurrent export of the same --out, and out-of-range
numbers (issue 10): one `error:` line (or typer's usage block), never a traceback, and never a
partial bundle at --out or a staging directory left beside it."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time

import pytest

from tests.conftest import (
    REPO,
    assert_one_error,
    assert_usage_error,
    edgekit_exe,
    run_edgekit,
)

# Fails writes, through the real write paths (onnx.save's open(), write_json_atomic's os.fdopen), into
# files whose path contains FAULT_UNDER, once FAULT_AFTER bytes have gone into such files.
_FAULT = '''
import builtins, errno, io, os
_UNDER = os.environ["FAULT_UNDER"]
_AFTER = int(os.environ["FAULT_AFTER"])
_ERRNO = getattr(errno, os.environ.get("FAULT_ERRNO", "ENOSPC"))
_done = [0]
_open = io.open

def _name(file):
    if isinstance(file, int):
        try:
            return os.readlink(f"/proc/self/fd/{file}")
        except OSError:
            return ""
    return os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else ""

class _Filling:
    def __init__(self, f):
        self._f = f
    def write(self, data):
        room = _AFTER - _done[0]
        if len(data) > room:
            if room > 0:
                self._f.write(data[:room])
                _done[0] += room
            raise OSError(_ERRNO, os.strerror(_ERRNO))
        _done[0] += len(data)
        return self._f.write(data)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._f.__exit__(*exc)
    def __iter__(self):
        return iter(self._f)
    def __getattr__(self, name):
        return getattr(self._f, name)

def _faulty_open(file, mode="r", *args, **kwargs):
    f = _open(file, mode, *args, **kwargs)
    if any(c in mode for c in "wax+") and _UNDER in _name(file):
        return _Filling(f)
    return f

builtins.open = io.open = _faulty_open
'''


@pytest.fixture(scope="module")
def plane_ckpt(tmp_path_factory):
    import torch

    from edge.ml.checkpoint import save_checkpoint
    from edge.ml.models import create_model

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ckpt")
    return save_checkpoint(d / "plane.pt", create_model("resnet8", task="plane", input_size=(32, 32)).eval())


def _fault_env(tmp_path, under: str, after: int, err: str = "ENOSPC") -> dict:
    site = tmp_path / "fault_site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_FAULT)
    env = dict(os.environ, FAULT_UNDER=under, FAULT_AFTER=str(after), FAULT_ERRNO=err)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    return env


def _export(ckpt, out, *extra, env=None):
    return run_edgekit("export", ckpt, "--target", "cpu", "--precision", "fp32", "--out", out,
                       "--parity-frames", "2", *extra, env=env)


def _leftovers(out) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.parametrize("under,after,err", [
    (".tmp-", 0, "ENOSPC"),                    # the first byte of the ONNX file
    (".tmp-", 300_000, "ENOSPC"),              # midway through the ONNX file (~4.9 MB)
    ("/.manifest.json.", 100, "EDQUOT"),      # the ONNX file is whole; manifest.json's temp file fails
    (".tmp-", 1000, "EIO"),
], ids=["enospc-first-byte", "enospc-mid-onnx", "edquot-manifest", "eio"])
def test_a_failing_disk_gives_one_line_and_leaves_nothing(plane_ckpt, tmp_path, under, after, err):
    out = tmp_path / "bundles" / "b"
    proc = _export(plane_ckpt, out, env=_fault_env(tmp_path, f".b{under}" if under == ".tmp-" else under,
                                                   after, err))
    line = assert_one_error(proc, str(out))
    assert {"ENOSPC": "disk is full", "EDQUOT": "quota", "EIO": "I/O error"}[err] in line, line
    assert "another disk" in line, line
    assert not out.exists(), "a partial bundle was left at --out"
    assert _leftovers(out) == [], "a staging directory or lock file was left beside --out"


def test_a_full_disk_keeps_the_old_bundle_under_force(plane_ckpt, tmp_path):
    out = tmp_path / "b"
    assert _export(plane_ckpt, out).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    proc = _export(plane_ckpt, out, "--force", env=_fault_env(tmp_path, ".b.tmp-", 1000))
    assert_one_error(proc, "disk is full")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert _leftovers(out) == []


def test_the_fault_injection_really_writes_through_the_patched_path(plane_ckpt, tmp_path):
    """The same export with the fault far beyond the bundle's size succeeds: the tests above fail
    because of the injected error, not because the sitecustomize broke the export."""
    out = tmp_path / "b"
    proc = _export(plane_ckpt, out, env=_fault_env(tmp_path, ".b.tmp-", 10**9))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["models"][0]["name"] == "plane"


def test_an_export_while_another_holds_the_destination_is_refused(plane_ckpt, tmp_path):
    out = tmp_path / "b"
    lock = tmp_path / ".b.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        for extra in ((), ("--force",)):
            proc = _export(plane_ckpt, out, *extra)
            assert_one_error(proc, "being written by another export (pid 4242)")
            assert not out.exists()
    finally:
        os.close(fd)
    assert lock.exists(), "the refused export removed a lock file it did not hold"


def test_two_concurrent_exports_to_one_new_out_one_wins_the_other_is_refused(plane_ckpt, tmp_path):
    out = tmp_path / "b"
    cmd = [edgekit_exe(), "export", str(plane_ckpt), "--target", "cpu", "--precision", "fp32",
           "--out", str(out), "--parity-frames", "2", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
             for _ in range(2)]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [(r.returncode, r.stderr[-2000:]) for r in results]
    winner = next(r for r in results if r.returncode == 0)
    loser = next(r for r in results if r.returncode == 1)
    line = assert_one_error(loser, str(out))
    assert "another export" in line or "exists and is not empty" in line, line
    created = json.loads(winner.stdout)["created"]
    assert json.loads((out / "manifest.json").read_text())["created"] == created, "the winner's bundle was replaced"
    assert _leftovers(out) == []


def test_publish_never_replaces_a_bundle_that_appeared_meanwhile(tmp_path):
    """The last line of defence, without the lock (another tool, another host on a shared disk):
    the no-replace rename refuses, the staging directory is removed, and the bundle there stays."""
    from edge.core.errors import BadInputError
    from export.atomic import staged_dir

    out = tmp_path / "b"
    with pytest.raises(BadInputError, match="meanwhile"), staged_dir(out) as tmp:
        (tmp / "manifest.json").write_text("{\"ours\": true}")
        out.mkdir()
        (out / "manifest.json").write_text("{\"theirs\": true}")
    assert json.loads((out / "manifest.json").read_text()) == {"theirs": True}
    assert _leftovers(out) == []
    with staged_dir(out, force=True) as tmp:        # --force still replaces, in one exchange
        (tmp / "manifest.json").write_text("{\"ours\": true}")
    assert json.loads((out / "manifest.json").read_text()) == {"ours": True}
    assert _leftovers(out) == []


@pytest.mark.parametrize("value", ["-3", "0", "1001"])
def test_parity_frames_out_of_range_is_a_usage_error(plane_ckpt, tmp_path, value):
    proc = _export(plane_ckpt, tmp_path / "b", "--parity-frames", value)
    assert_usage_error(proc, "--parity-frames")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args,needle", [
    (("--frames", "0"), "--frames"),
    (("--frames", "-5"), "--frames"),
    (("--frames", "100000000"), "--frames"),
    (("--streams", "-1"), "--streams"),
    (("--streams", "257"), "--streams"),
    (("--seed", "-1"), "--seed"),
])
def test_synth_numbers_out_of_range_are_usage_errors(tmp_path, args, needle):
    proc = run_edgekit("data", "synth", tmp_path / "d", *args)
    assert_usage_error(proc, needle)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("size", ["30000x30000", "2049x16", "8x8", "0x0", "-5x10", "99999999999999x1", "axb"])
def test_synth_size_out_of_range_is_one_line(tmp_path, size):
    proc = run_edgekit("data", "synth", tmp_path / "d", "--size", size)
    assert_one_error(proc, "--size")
    assert not (tmp_path / "d").exists()


def test_synth_frames_fewer_than_streams_is_one_line_and_one_frame_works(tmp_path):
    assert_one_error(run_edgekit("data", "synth", tmp_path / "d", "--frames", "3", "--streams", "5"),
                     "at least one frame per stream")
    t0 = time.monotonic()
    proc = run_edgekit("data", "synth", tmp_path / "one", "--frames", "1", "--size", "32x32")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 1 frames in 1 streams" in proc.stdout, (proc.stdout, proc.stderr)
    assert time.monotonic() - t0 < 60
