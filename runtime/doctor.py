"""`edgekit doctor`: what this machine has for edgekit's device side, and the one line that fixes each gap.

Python, the Jetson's L4T / JetPack release, the GPU and its compute capability, CUDA, TensorRT (and
which of its APIs `runtime.trt_compat` will use), ONNX Runtime and its providers, pycuda / cuda-python,
OpenCV and its video backends, cameras, jetson-stats, and which inference backends can run here::

    >>> report = diagnose()                      # doctest: +SKIP
    >>> print(render(report))                    # doctest: +SKIP

Torch-free and safe anywhere: every probe imports its package inside a try, reads device files under
`root` (`/`; a recorded device tree in the tests, or a mounted image), runs its few commands (`dpkg-query`,
`nvidia-smi`) through `run` (only when `root` is `/`, unless one is given) and never raises: what a
probe could not learn it reports, with the fix. Package probes always describe the running Python.
A check's status is `ok`, `missing` (the device install cannot work without it: exit 1), `warn`
(something edgekit would use here is absent or off) or `info` (not needed on this machine).
"""
from __future__ import annotations

import glob
import importlib
import json
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from targets import RUNTIME_PYTHON as TARGETS_RUNTIME_PYTHON

OK, MISSING, WARN, INFO = "ok", "missing", "warn", "info"

# L4T release -> JetPack (NVIDIA's Jetson Linux archive); an unlisted release falls back to its series.
JETPACK_OF_L4T = {
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3", "35.6.0": "5.1.4",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
}
# What each JetPack series ships: (series, its Python, its TensorRT)
SERIES_OF_L4T = {"32": ("4.x", "3.6", "8.2"), "34": ("5.0 DP", "3.8", "8.4"), "35": ("5.x", "3.8", "8.5"),
                 "36": ("6.x", "3.10", "10.3"), "38": ("7.x", "3.12", "10.13"), "39": ("7.x", "3.12", "11")}
RUNTIME_PYTHON = tuple(int(v) for v in TARGETS_RUNTIME_PYTHON.split("."))  # pyproject's requires-python

Runner = Callable[[list], Optional[tuple]]


@dataclass
class Check:
    """One line of the report; `fix` is the one command or step that closes a gap."""

    name: str
    status: str
    value: str
    fix: Optional[str] = None
    data: dict = field(default_factory=dict)


def _run(args: list) -> Optional[tuple]:
    """(returncode, stdout) of a short command, or None when it is not installed or hangs."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.returncode, proc.stdout


def _read(root: Path, path: str) -> Optional[str]:
    try:
        return (root / path.lstrip("/")).read_text(errors="replace")
    except OSError:
        return None


def _module(name: str):
    """The imported module, or the exception that stopped the import (never raised)."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # a broken install raises more than ImportError (OSError from a missing .so)
        return exc


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


# --- the probes ---------------------------------------------------------------------------------------


def check_python() -> Check:
    v = sys.version_info
    text = f"{platform.python_version()} ({sys.executable})"
    if v[:2] < RUNTIME_PYTHON:
        need = ".".join(map(str, RUNTIME_PYTHON))
        return Check("python", MISSING, text, f"edgekit's device side needs Python >= {need}: install python{need} "
                     "or newer and make the venv with it", {"version": platform.python_version()})
    return Check("python", OK, text, data={"version": platform.python_version()})


def check_platform(root: Path) -> Check:
    release = _read(root, "/etc/os-release") or ""
    pretty = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', release, re.M)
    os_name = pretty.group(1) if pretty else platform.system()
    return Check("platform", INFO, f"{platform.machine()}, {os_name}", data={"machine": platform.machine(),
                                                                            "os": os_name})


def jetson_release(root: Path, run: Optional[Runner]) -> dict:
    """{"model", "l4t", "jetpack", "source"} of a Jetson, or {} elsewhere."""
    facts: dict = {}
    model = _read(root, "/proc/device-tree/model")
    if model:
        facts["model"] = model.replace("\x00", "").strip()
    tegra = _read(root, "/etc/nv_tegra_release") or ""
    m = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", tegra)
    if m:
        revision = m.group(2).split(".") + ["0"]
        facts["l4t"], facts["source"] = f"{m.group(1)}.{revision[0]}.{revision[1]}", "/etc/nv_tegra_release"
    else:
        apt = _read(root, "/etc/apt/sources.list.d/nvidia-l4t-apt-source.list") or ""
        m = re.search(r"/jetson/\S+\s+r(\d+)\.(\d+)", apt)
        if m:
            facts["l4t"], facts["source"] = f"{m.group(1)}.{m.group(2)}", "nvidia-l4t-apt-source.list"
    if run is not None:
        out = run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
        if out and out[0] == 0 and out[1].strip():
            facts["jetpack"], facts["jetpack_package"] = out[1].strip().split("-")[0], out[1].strip()
    if "l4t" in facts and "jetpack" not in facts:  # the apt source names only major.minor: the series then
        series = SERIES_OF_L4T.get(facts["l4t"].split(".")[0])
        facts["jetpack"] = JETPACK_OF_L4T.get(facts["l4t"]) or (series[0] if series else None)
    return {k: v for k, v in facts.items() if v}


def check_jetson(facts: dict) -> Check:
    if not facts.get("l4t") and not facts.get("jetpack"):
        return Check("jetson", INFO, "not a Jetson (no /etc/nv_tegra_release)", data=facts)
    parts = [facts.get("model") or "Jetson", f"L4T R{facts['l4t']}" if facts.get("l4t") else None,
             f"JetPack {facts['jetpack']}" if facts.get("jetpack") else None]
    text = ", ".join(p for p in parts if p)
    if facts.get("jetpack_package"):
        text += f" (nvidia-jetpack {facts['jetpack_package']})"
    series = SERIES_OF_L4T.get(str(facts.get("l4t", "")).split(".")[0])
    if series and tuple(int(v) for v in series[1].split(".")) < RUNTIME_PYTHON:
        return Check("jetson", WARN, text + f"; JetPack {series[0]} ships Python {series[1]} and TensorRT "
                     f"{series[2]} bindings for it", "edgekit runs here under Python 3.8 (sudo apt install python3.8 "
                     "python3.8-venv) with --backend onnxruntime; the tensorrt backend needs TensorRT bindings built "
                     "for that Python (README: Device install, JetPack 4.6)", facts)
    return Check("jetson", OK, text, data=facts)


def check_gpu(is_jetson: bool, run: Optional[Runner]) -> Check:
    """GPU 0 via pycuda, else cuda-python, else nvidia-smi."""
    cuda = _module("pycuda.driver")
    if not isinstance(cuda, Exception):
        try:
            cuda.init()
            if cuda.Device.count() > 0:
                dev = cuda.Device(0)
                attr = cuda.device_attribute
                cc = "{}.{}".format(*dev.compute_capability())
                integrated = bool(dev.get_attribute(attr.INTEGRATED))
                return Check("gpu", OK, f"{dev.name()}, compute capability {cc}"
                             f"{', integrated (zero-copy buffers)' if integrated else ''} (pycuda)",
                             data={"name": dev.name(), "compute_capability": cc, "integrated": integrated,
                                   "memory_bytes": int(dev.total_memory()), "via": "pycuda"})
        except Exception as exc:
            seen = f"pycuda: {_first_line(exc)}"
        else:
            seen = "pycuda: no CUDA device"
    else:
        seen = "pycuda not installed"
    cudart = _cudart()
    if cudart is not None:
        try:
            err, count = cudart.cudaGetDeviceCount()
            if int(err) == 0 and count:
                err, props = cudart.cudaGetDeviceProperties(0)
                name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
                name, cc = name.rstrip("\x00"), f"{props.major}.{props.minor}"
                return Check("gpu", OK, f"{name}, compute capability {cc}"
                             f"{', integrated' if props.integrated else ''} (cuda-python)",
                             data={"name": name, "compute_capability": cc, "integrated": bool(props.integrated),
                                   "memory_bytes": int(props.totalGlobalMem), "via": "cuda-python"})
            seen += f"; cuda-python: {getattr(err, 'name', err)}"
        except Exception as exc:
            seen += f"; cuda-python: {_first_line(exc)}"
    out = run(["nvidia-smi", "--query-gpu=name,compute_cap,memory.total,driver_version",
               "--format=csv,noheader"]) if run else None
    if out and out[0] == 0 and out[1].strip():
        fields = [f.strip() for f in out[1].strip().splitlines()[0].split(",")]
        if len(fields) >= 2:
            return Check("gpu", OK, f"{fields[0]}, compute capability {fields[1]} (nvidia-smi)",
                         data={"name": fields[0], "compute_capability": fields[1], "via": "nvidia-smi",
                          "driver": fields[3] if len(fields) > 3 else None})
    if out is not None:
        seen += "; nvidia-smi: no GPU"
    if is_jetson:
        return Check("gpu", WARN, f"no CUDA GPU visible ({seen})", "check JetPack's driver (sudo apt install "
                     "nvidia-jetpack) and that this user is in the video group; pip install 'edgekit[jetson]' "
                     "(pycuda) to query it", {"seen": seen})
    return Check("gpu", INFO, f"no NVIDIA GPU found ({seen}): edgekit runs here on the CPU (--backend onnxruntime)",
                 data={"seen": seen})


def _cudart():
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        module = _module(name)
        if not isinstance(module, Exception):
            return module
    return None


def check_cuda(root: Path, is_jetson: bool) -> Check:
    data: dict = {}
    text = _read(root, "/usr/local/cuda/version.json")
    if text:
        try:
            data["toolkit"] = json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            pass
    if "toolkit" not in data:
        m = re.search(r"CUDA Version ([\d.]+)", _read(root, "/usr/local/cuda/version.txt") or "")
        if m:
            data["toolkit"] = m.group(1)
    cuda = _module("pycuda.driver")
    if not isinstance(cuda, Exception):
        try:
            data["pycuda_built_for"] = ".".join(map(str, cuda.get_version()))
            driver = int(cuda.get_driver_version())
            data["driver_api"] = f"{driver // 1000}.{driver % 1000 // 10}"
        except Exception:
            pass
    if "driver_api" not in data:
        cudart = _cudart()
        if cudart is not None:
            try:
                err, driver = cudart.cudaDriverGetVersion()
                if int(err) == 0 and driver:
                    data["driver_api"] = f"{driver // 1000}.{driver % 1000 // 10}"
            except Exception:
                pass
    parts = []
    if data.get("toolkit"):
        parts.append(f"toolkit {data['toolkit']} (/usr/local/cuda)")
    if data.get("driver_api"):
        parts.append(f"driver supports CUDA {data['driver_api']}")
    if data.get("pycuda_built_for"):
        parts.append(f"pycuda built for {data['pycuda_built_for']}")
    if parts:
        return Check("cuda", OK, ", ".join(parts), data=data)
    if is_jetson:
        return Check("cuda", WARN, "no CUDA toolkit in /usr/local/cuda", "sudo apt install nvidia-jetpack (CUDA, "
                     "cuDNN and TensorRT come with JetPack)", data)
    return Check("cuda", INFO, "no CUDA here (not needed on the CPU)", data=data)


def check_tensorrt(root: Path, is_jetson: bool, has_gpu: bool) -> Check:
    trt = _module("tensorrt")
    trtexec = next((p for p in ("/usr/src/tensorrt/bin/trtexec", "/usr/bin/trtexec") if (root / p.lstrip("/")).exists()),
                   None)
    if not isinstance(trt, Exception):
        from runtime import trt_compat

        version = str(getattr(trt, "__version__", "?"))
        engine_cls = getattr(trt, "ICudaEngine", None)
        api = "tensor names" if trt_compat.has_tensor_api(engine_cls) else "binding indices"
        try:
            caps = trt_compat.builder_caps(trt)
            build = "strongly typed networks" if caps.strongly_typed else "FP16/INT8 builder flags"
        except AttributeError:
            caps, build = None, "?"
        data = {"version": version, "api": api, "build": build, "trtexec": trtexec}
        return Check("tensorrt", OK, f"{version} (engine I/O by {api}; builds with {build})"
                     + (f", trtexec at {trtexec}" if trtexec else ""), data=data)
    data = {"error": _first_line(trt), "trtexec": trtexec}
    system = sorted(glob.glob(str(root / "usr/lib/python3*/dist-packages/tensorrt")))
    versions = [re.search(r"python(3\.\d+)", s).group(1) for s in system if re.search(r"python(3\.\d+)", s)]
    here = "{}.{}".format(*sys.version_info[:2])
    if here in versions:
        fix = (f"JetPack's TensorRT is installed for /usr/bin/python{here} but this environment hides it: make the "
               f"venv with `python{here} -m venv --system-site-packages`")
    elif versions:
        fix = (f"JetPack's TensorRT bindings are for Python {', '.join(versions)}, not {here}: use --backend "
               f"onnxruntime here, or TensorRT bindings built for Python {here}")
    elif is_jetson:
        fix = "sudo apt install python3-libnvinfer (TensorRT's Python bindings from JetPack), then a venv made with " \
              "--system-site-packages"
    else:
        fix = "pip install tensorrt (NVIDIA's wheels for a desktop GPU), or use --backend onnxruntime"
    status = WARN if (is_jetson or has_gpu) else INFO
    return Check("tensorrt", status, f"not importable ({data['error']})" + (f"; trtexec at {trtexec}" if trtexec else ""),
                 fix if status == WARN or versions else None, data)


def check_onnxruntime(is_jetson: bool, has_gpu: bool) -> Check:
    ort = _module("onnxruntime")
    if isinstance(ort, Exception):
        return Check("onnxruntime", MISSING, f"not importable ({_first_line(ort)})",
                     "pip install onnxruntime (the CPU build; on a Jetson a GPU build: see README, Device install)")
    providers = list(ort.get_available_providers())
    data = {"version": ort.__version__, "providers": providers}
    text = f"{ort.__version__}, providers {', '.join(providers)}"
    gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(providers)
    if (is_jetson or has_gpu) and not gpu:
        fix = ("for the GPU: pip uninstall onnxruntime, then the onnxruntime-gpu wheel for this JetPack and Python "
               "(elinux.org/Jetson_Zoo, or NVIDIA's index pypi.jetson-ai-lab.io for JetPack 6)" if is_jetson else
               "for the GPU: pip uninstall onnxruntime && pip install onnxruntime-gpu")
        return Check("onnxruntime", WARN, text + " (CPU only)", fix, data)
    return Check("onnxruntime", OK, text, data=data)


def check_cuda_python_packages(has_gpu: bool, is_jetson: bool) -> Check:
    found = {}
    pycuda = _module("pycuda")
    if not isinstance(pycuda, Exception):
        found["pycuda"] = str(getattr(pycuda, "VERSION_TEXT", getattr(pycuda, "__version__", "?")))
    cuda = _module("cuda")
    if not isinstance(cuda, Exception):
        bindings = _module("cuda.bindings")
        found["cuda-python"] = str(getattr(bindings if not isinstance(bindings, Exception) else cuda,
                                           "__version__", "?"))
    text = ", ".join(f"{k} {v}" for k, v in found.items()) or "neither pycuda nor cuda-python"
    if "pycuda" in found:
        return Check("pycuda", OK, text, data=found)
    if has_gpu or is_jetson:
        return Check("pycuda", WARN, text + " (the tensorrt backend's buffers need pycuda)",
                     "pip install 'edgekit[jetson]' (builds pycuda against CUDA: PATH=/usr/local/cuda/bin:$PATH)",
                     found)
    return Check("pycuda", INFO, text + " (only the tensorrt backend needs pycuda)", data=found)


def opencv_video_io(build_information: str) -> dict:
    """{"V4L2": bool, "FFMPEG": bool, "GStreamer": bool} from cv2.getBuildInformation()'s Video I/O section."""
    section = build_information.split("Video I/O:", 1)[-1].split("\n\n", 1)[0] if "Video I/O:" in build_information \
        else ""
    found = {}
    for key, label in (("V4L2", r"v4l/v4l2"), ("FFMPEG", r"FFMPEG"), ("GStreamer", r"GStreamer")):
        m = re.search(rf"^\s*{label}:\s*(\S+)", section, re.M | re.I)
        found[key] = bool(m and m.group(1).upper() == "YES")
    return found


def check_opencv(is_jetson: bool) -> Check:
    cv2 = _module("cv2")
    if isinstance(cv2, Exception):
        return Check("opencv", MISSING, f"not importable ({_first_line(cv2)})", "pip install opencv-python-headless")
    try:
        io = opencv_video_io(cv2.getBuildInformation())
    except Exception:
        io = {}
    data = {"version": cv2.__version__, "video_io": io}
    text = f"{cv2.__version__}, video I/O: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in io.items())
    if sys.platform.startswith("linux") and io and not io.get("V4L2"):
        return Check("opencv", WARN, text, "this OpenCV cannot open /dev/video* (no V4L2): pip install "
                     "opencv-python-headless", data)
    if is_jetson and io and not io.get("GStreamer"):
        return Check("opencv", OK, text + " (USB probes use V4L2; GStreamer, for CSI cameras, comes with JetPack's "
                     "own OpenCV)", data=data)
    return Check("opencv", OK, text, data=data)


def check_numpy() -> Check:
    np = _module("numpy")
    if isinstance(np, Exception):
        return Check("numpy", MISSING, f"not importable ({_first_line(np)})", "pip install numpy")
    return Check("numpy", OK, np.__version__, data={"version": np.__version__})


def check_cameras(root: Path, is_jetson: bool) -> Check:
    devices = sorted(glob.glob(str(root / "dev/video*")),
                     key=lambda p: int(re.sub(r"\D", "", Path(p).name) or 0))
    found = []
    for dev in devices:
        name = (_read(root, f"/sys/class/video4linux/{Path(dev).name}/name") or "").strip()
        found.append({"device": "/dev/" + Path(dev).name, "name": name})
    if found:
        text = ", ".join(f"{c['device']} ({c['name']})" if c["name"] else c["device"] for c in found)
        return Check("cameras", OK, text + " (edgekit run --source usb:N)", data={"cameras": found})
    fix = "plug in the probe's USB capture device (ls /dev/video*); or run --source phantom, a video file or a folder"
    return Check("cameras", WARN if is_jetson else INFO, "no /dev/video* device", fix if is_jetson else None,
                 {"cameras": []})


def check_jetson_stats(is_jetson: bool) -> Optional[Check]:
    if not is_jetson:
        return None
    jtop = _module("jtop")
    if isinstance(jtop, Exception):
        return Check("jetson-stats", INFO, "jtop not installed (power, clocks and temperatures while edgekit runs)",
                     "sudo pip3 install -U jetson-stats (then: jtop)")
    return Check("jetson-stats", OK, f"jtop {getattr(jtop, '__version__', '?')}")


def check_backends() -> Check:
    """Which inference backends can run here (each backend's own `unavailable()`)."""
    try:
        from runtime.backends import BACKENDS
    except Exception as exc:
        return Check("backends", MISSING, f"the runtime does not import ({_first_line(exc)})",
                     "pip install . (numpy, onnxruntime, opencv-python-headless)")
    usable, not_usable = [], {}
    for name, cls in BACKENDS.items():
        try:
            reason = cls.unavailable()
        except Exception as exc:
            reason = _first_line(exc)
        if reason:
            not_usable[name] = reason
        else:
            usable.append(name)
    text = f"usable: {', '.join(usable) or 'none'}"
    if not usable:
        return Check("backends", MISSING, text, "pip install onnxruntime", {"usable": usable, "unavailable": not_usable})
    return Check("backends", OK, text + (f"; not here: {', '.join(not_usable)}" if not_usable else ""),
                 data={"usable": usable, "unavailable": not_usable})


# --- the report -----------------------------------------------------------------------------------------


def diagnose(root="/", run: Optional[Runner] = None) -> dict:
    """Every check, as plain data: {"edgekit", "python", "ok", "checks": [Check as dict, ...]}.

    `root` is where /etc, /proc, /sys, /dev and /usr are read from; `run` runs `dpkg-query` and
    `nvidia-smi` (default: really, and only when `root` is `/`).
    """
    root = Path(root)
    if run is None and root.resolve() == Path("/").resolve():
        run = _run
    jetson = jetson_release(root, run)
    is_jetson = bool(jetson.get("l4t") or jetson.get("jetpack"))
    gpu = check_gpu(is_jetson, run)
    has_gpu = gpu.status == OK
    checks = [check_python(), check_platform(root), check_jetson(jetson), gpu, check_cuda(root, is_jetson),
              check_tensorrt(root, is_jetson, has_gpu), check_onnxruntime(is_jetson, has_gpu),
              check_cuda_python_packages(has_gpu, is_jetson), check_opencv(is_jetson), check_numpy(),
              check_cameras(root, is_jetson), check_jetson_stats(is_jetson), check_backends()]
    checks = [c for c in checks if c is not None]
    try:
        from importlib import metadata

        version = metadata.version("edgekit")
    except Exception:
        version = "unknown (not installed)"
    return {"edgekit": version, "python": platform.python_version(), "root": str(root),
            "ok": not any(c.status == MISSING for c in checks), "checks": [asdict(c) for c in checks]}


def render(report: dict) -> str:
    """The report as text: one line per check, and under each gap the line that fixes it."""
    lines = [f"edgekit doctor: edgekit {report['edgekit']}, Python {report['python']}"
             + (f", device files under {report['root']}" if report["root"] != "/" else "")]
    for c in report["checks"]:
        lines.append(f"{c['status']:<8} {c['name']:<13} {c['value']}")
        if c["fix"]:
            lines.append(f"{'':<8} {'':<13} fix: {c['fix']}")
    gaps = sum(1 for c in report["checks"] if c["status"] in (MISSING, WARN))
    lines.append("nothing to fix" if not gaps else f"{gaps} to fix" + ("" if report["ok"] else
                                                                       " (missing: the device install cannot run)"))
    return "\n".join(lines)
