"""`edgekit doctor` (runtime/doctor.py): on this machine (no GPU, no Jetson: reported cleanly), on recorded
Jetson device trees read through `root`, and as the CLI (text and --json), torch-free."""
from __future__ import annotations

import json
import sys

import pytest

from runtime import doctor
from tests.conftest import run_cli

NAMES = ["python", "platform", "jetson", "gpu", "cuda", "tensorrt", "onnxruntime", "pycuda", "opencv", "numpy",
         "cameras", "backends"]
XAVIER_NX = ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 "
             "19:57:35 UTC 2023\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")
NANO = ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 "
        "17:05:08 UTC 2022\n")


def _checks(report) -> dict:
    return {c["name"]: c for c in report["checks"]}


def _tree(tmp_path, tegra=None, model=None, apt=None, python="3.8"):
    """A recorded device tree: the files doctor reads, as a Jetson has them."""
    files = {"etc/nv_tegra_release": tegra, "proc/device-tree/model": model,
             "etc/apt/sources.list.d/nvidia-l4t-apt-source.list": apt,
             "etc/os-release": 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n',
             "usr/local/cuda/version.json": json.dumps({"cuda": {"name": "CUDA SDK", "version": "11.4.19"}}),
             "usr/src/tensorrt/bin/trtexec": "", "dev/video0": "", "dev/video10": "", "dev/video2": "",
             "sys/class/video4linux/video0/name": "USB Video: USB Video\n"}
    for rel, text in files.items():
        if text is not None:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text)
    (tmp_path / f"usr/lib/python{python}/dist-packages/tensorrt").mkdir(parents=True)
    return tmp_path


def test_on_this_machine_every_check_reports_and_each_gap_has_its_fix():
    report = doctor.diagnose()
    checks = _checks(report)
    assert list(checks)[:len(NAMES) - 1] == NAMES[:-1]
    assert checks["backends"]["status"] == "ok"
    assert "onnxruntime" in checks["backends"]["data"]["usable"]
    assert report["ok"] is True  # numpy, onnxruntime and OpenCV are here: the device install works
    for c in report["checks"]:
        assert c["status"] in ("ok", "missing", "warn", "info")
        if c["status"] in ("missing", "warn"):
            assert c["fix"], c
            assert "\n" not in c["fix"]
    if checks["gpu"]["status"] != "ok":  # a machine without a GPU says so and what edgekit does instead
        assert "--backend onnxruntime" in checks["gpu"]["value"]
    json.dumps(report)


def test_a_jetson_xavier_nx_on_jetpack_5(tmp_path):
    root = _tree(tmp_path, XAVIER_NX, "NVIDIA Jetson Xavier NX Developer Kit\x00")
    calls = []

    def run(args):
        calls.append(args[0])
        return (0, "5.1.2-b104") if args[0] == "dpkg-query" else None

    checks = _checks(doctor.diagnose(root, run=run))
    assert checks["jetson"]["status"] == "ok"
    assert checks["jetson"]["value"] == ("NVIDIA Jetson Xavier NX Developer Kit, L4T R35.4.1, JetPack 5.1.2 "
                                         "(nvidia-jetpack 5.1.2-b104)")
    assert checks["platform"]["value"].endswith("Ubuntu 20.04.6 LTS")
    assert checks["cuda"]["data"]["toolkit"] == "11.4.19"
    assert checks["cameras"]["value"] == ("/dev/video0 (USB Video: USB Video), /dev/video2, /dev/video10 "
                                          "(edgekit run --source usb:N)")
    assert "jetson-stats" in checks
    assert calls[0] == "dpkg-query"  # nvidia-smi too where neither pycuda nor cuda-python sees a GPU
    trt = checks["tensorrt"]
    if "tensorrt" not in sys.modules and trt["status"] != "ok":  # JetPack's bindings are for Python 3.8
        assert "/usr/src/tensorrt/bin/trtexec" in trt["value"]
        if sys.version_info[:2] == (3, 8):
            assert "--system-site-packages" in trt["fix"]
        else:
            assert "bindings are for Python 3.8" in trt["fix"]
    if checks["gpu"]["status"] != "ok":  # a Jetson whose GPU cannot be seen is a gap, with its fix
        assert checks["gpu"]["status"] == "warn"
        assert "video group" in checks["gpu"]["fix"]


def test_a_jetson_nano_on_jetpack_4_6_is_told_what_edgekit_can_do_there(tmp_path):
    root = _tree(tmp_path, NANO, "NVIDIA Jetson Nano Developer Kit", python="3.6")
    jetson = _checks(doctor.diagnose(root))["jetson"]
    assert jetson["status"] == "warn"
    assert "L4T R32.7.1, JetPack 4.6.1" in jetson["value"]
    assert "ships Python 3.6" in jetson["value"]
    assert "python3.8" in jetson["fix"]
    assert "--backend onnxruntime" in jetson["fix"]


@pytest.mark.parametrize("apt, jetpack", [
    ("deb https://repo.download.nvidia.com/jetson/common r36.4 main\n", "L4T R36.4, JetPack 6.x"),
    ("deb https://repo.download.nvidia.com/jetson/t194 r35.4 main\n", "L4T R35.4, JetPack 5.x"),
])
def test_the_release_from_the_apt_source_when_nv_tegra_release_is_gone(tmp_path, apt, jetpack):
    jetson = _checks(doctor.diagnose(_tree(tmp_path, apt=apt)))["jetson"]
    assert jetson["value"] == f"Jetson, {jetpack}"


def test_not_a_jetson_without_its_files(tmp_path):
    checks = _checks(doctor.diagnose(tmp_path))
    assert checks["jetson"]["status"] == "info"
    assert checks["jetson"]["value"] == "not a Jetson (no /etc/nv_tegra_release)"
    assert checks["cameras"]["value"] == "no /dev/video* device"
    assert "jetson-stats" not in checks


def test_opencv_video_backends_come_from_its_build_information():
    jetpack_opencv = ("  Video I/O:\n    DC1394:                      NO\n    FFMPEG:                      YES\n"
                      "      avcodec:                   YES (58.54.100)\n    GStreamer:                   YES (1.16.3)\n"
                      "    v4l/v4l2:                    YES (linux/videodev2.h)\n\n  Parallel framework:  TBB\n")
    assert doctor.opencv_video_io(jetpack_opencv) == {"V4L2": True, "FFMPEG": True, "GStreamer": True}
    assert doctor.opencv_video_io("Video I/O:\n    GStreamer: NO\n") == {"V4L2": False, "FFMPEG": False,
                                                                        "GStreamer": False}


def test_render_puts_each_fix_under_its_check():
    report = {"edgekit": "0.1.0", "python": "3.8.18", "root": "/", "ok": False, "checks": [
        {"name": "numpy", "status": "missing", "value": "not importable", "fix": "pip install numpy", "data": {}},
        {"name": "cameras", "status": "ok", "value": "/dev/video0", "fix": None, "data": {}}]}
    lines = doctor.render(report).splitlines()
    assert lines[1].split() == ["missing", "numpy", "not", "importable"]
    assert lines[2].split() == ["fix:", "pip", "install", "numpy"]
    assert lines[3].startswith("ok ")
    assert lines[-1] == "1 to fix (missing: the device install cannot run)"


def test_doctor_cli_text_and_json_without_torch(tmp_path, no_torch_env):
    r = run_cli("doctor", env=no_torch_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("edgekit doctor: edgekit ")
    for name in NAMES:
        assert any(line.split()[1:2] == [name] for line in r.stdout.splitlines()[1:]), name
    root = _tree(tmp_path, XAVIER_NX, "NVIDIA Jetson Xavier NX Developer Kit")
    r = run_cli("doctor", "--json", "--root", root, env=no_torch_env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["root"] == str(root)
    assert _checks(report)["jetson"]["value"].startswith("NVIDIA Jetson Xavier NX Developer Kit, L4T R35.4.1, "
                                                         "JetPack 5.1.2")
