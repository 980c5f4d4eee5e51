"""`runtime.trt_compat` and the native TensorRT backend across TensorRT 8.2, 8.5, 10 and 11, and both host
memory paths (zero-copy on an integrated GPU, pinned staging on a discrete one), against the fakes in
tests/device/fakes.py; the answers are checked against ONNX Runtime running the same model."""
from __future__ import annotations

import enum
import json

import numpy as np
import pytest

from edge.core.errors import UnsupportedError
from runtime import trt_compat
from tests.device.fakes import FakeCuda, FakeTensorRT

APIS = ["8.2", "8.5", "10", "11"]


@pytest.fixture
def engine_bundle(plane_bundle_copy):
    """The tiny plane bundle with a (fake) engine recorded for an Orin, as `build-engines` records it."""
    import hashlib

    engine = plane_bundle_copy / "plane.fp32.sm87-fake.engine"
    engine.write_bytes(b"fake plan")
    manifest = json.loads((plane_bundle_copy / "manifest.json").read_text())
    manifest["models"][0]["engines"] = [{"file": engine.name, "gpu": "Orin", "compute_capability": "8.7",
                                         "tensorrt": "TRT", "sha256": hashlib.sha256(b"fake plan").hexdigest(),
                                         "trtexec": None}]
    (plane_bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    return plane_bundle_copy


def _backend(monkeypatch, bundle_dir, api, cuda):
    import runtime.backends.tensorrt as backend_module
    from runtime.bundle import load_bundle
    from runtime.engines import DeviceFacts

    trt = FakeTensorRT(api, cuda)
    monkeypatch.setattr(backend_module, "import_tensorrt", lambda: (trt, cuda))
    model = load_bundle(bundle_dir).model("plane")
    return backend_module.TensorRTBackend(model, device=DeviceFacts("Orin", "8.7", "TRT"))


FRAMES = {"white": np.full((1, 1, 32, 32), 2.0 * 0.25 + 0.5, np.float32),
          "black": np.full((1, 1, 32, 32), 0.5 - 2.0 * 0.25, np.float32),
          "ramp": np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(1, 1, 32, 32)}


@pytest.mark.parametrize("integrated", [True, False], ids=["jetson-zero-copy", "discrete-pinned"])
@pytest.mark.parametrize("api", APIS)
def test_tensorrt_backend_answers_as_onnxruntime_on_every_api(monkeypatch, engine_bundle, api, integrated):
    from runtime.backends import create_backend
    from runtime.bundle import load_bundle

    cuda = FakeCuda(integrated=integrated)
    backend = _backend(monkeypatch, engine_bundle, api, cuda)
    with create_backend("onnxruntime", load_bundle(engine_bundle).model("plane")) as ort, backend:
        for frame in FRAMES.values():
            for _ in range(2):  # the second run must not see the first one's buffers
                got = backend.infer({"input": frame})["logits"]
                np.testing.assert_allclose(got, ort.infer({"input": frame})["logits"], rtol=1e-5, atol=1e-5)
        assert ("zero-copy" if integrated else "pinned") in backend.describe()
        assert backend.device_memory() == {"used_bytes": 3 << 30, "total_bytes": 4 << 30}
    copies = [c for c in cuda.calls if c in ("htod", "dtoh")]
    allocations = [c for c in cuda.calls if isinstance(c, tuple) and c[0] == "pagelocked_empty"]
    assert len(allocations) == 2  # one page-locked host array per tensor: no pageable copies anywhere
    if integrated:
        assert copies == []  # CPU and GPU share the mapped buffers: nothing crosses a bus
        assert {a[2] for a in allocations} == {"mapped"}
        assert cuda.freed == ["host", "host"]
    else:
        assert copies == ["htod", "dtoh"] * 6
        assert {a[2] for a in allocations} == {"pinned"}
        assert sorted(cuda.freed) == ["device", "device", "host", "host"]
    assert cuda.memory == {}  # everything allocated was released at deactivate
    assert cuda.calls[-1] == "detach"


def test_a_data_dependent_output_is_refused_and_nothing_stays_allocated(monkeypatch, engine_bundle):
    cuda = FakeCuda(integrated=False)
    backend = _backend(monkeypatch, engine_bundle, "10", cuda)
    engine_cls = type(backend._trt.Runtime(None).deserialize_cuda_engine(b"fake plan").create_execution_context())
    monkeypatch.setattr(engine_cls, "get_tensor_shape", lambda self, name: [-1, 4] if name == "logits" else [1, 1, 32, 32])
    with pytest.raises(UnsupportedError, match="'logits' of 'plane' has a data-dependent shape .*onnxruntime-trt"):
        backend.activate()
    assert ("mem_alloc", 4096) in cuda.calls  # the input's buffer was made before the output was refused...
    assert cuda.memory == {}                  # ...and released
    assert cuda.calls[-2:] == ["pop", "detach"]
    assert not backend.is_active


def test_zero_copy_needs_an_integrated_gpu_that_maps_host_memory():
    for integrated, can_map, expected in ((True, True, True), (True, False, False), (False, True, False)):
        cuda = FakeCuda(integrated=integrated, can_map=can_map)
        assert trt_compat.zero_copy_capable(cuda, cuda.Device(0)) is expected

    class Broken:
        def get_attribute(self, attr):
            raise FakeCuda.Error("unknown attribute")

    assert trt_compat.zero_copy_capable(FakeCuda(), Broken()) is False


@pytest.mark.parametrize("api", APIS)
def test_io_tensors_are_the_same_through_either_api(api):
    trt = FakeTensorRT(api, FakeCuda())
    engine = trt.Runtime(None).deserialize_cuda_engine(b"fake plan")
    tensors = trt_compat.io_tensors(trt, engine)
    assert [(t.name, t.is_input, t.shape) for t in tensors] == [("input", True, (1, 1, 32, 32)),
                                                                ("logits", False, (1, 4))]
    assert trt_compat.has_tensor_api(engine) is (api != "8.2")
    assert trt_compat.numpy_dtype(trt, tensors[0].dtype) == np.float32
    assert trt_compat.numpy_dtype(trt, trt.DataType.BF16) is None  # numpy has no bfloat16


def test_a_refused_input_shape_is_one_line():
    trt = FakeTensorRT("10", FakeCuda())
    engine = trt.Runtime(None).deserialize_cuda_engine(b"fake plan")
    ctx = trt_compat.ExecutionContext(engine, engine.create_execution_context())
    with pytest.raises(UnsupportedError, match=r"refuses shape \[1, 1, 64, 64\] for input 'input'"):
        ctx.set_input_shape("input", (1, 1, 64, 64))
    legacy = FakeTensorRT("8.2", FakeCuda())
    engine = legacy.Runtime(None).deserialize_cuda_engine(b"fake plan")
    with pytest.raises(UnsupportedError, match="no tensor 'nope'"):
        trt_compat.ExecutionContext(engine, engine.create_execution_context()).set_address("nope", 1)


class _Config:
    """IBuilderConfig of 8.2: max_workspace_size, set_flag."""

    def __init__(self):
        self.flags, self.pool = [], None

    def set_flag(self, flag):
        self.flags.append(flag.name)


class _PoolConfig(_Config):
    """IBuilderConfig from 8.4: set_memory_pool_limit."""

    def set_memory_pool_limit(self, kind, size):
        self.pool = (kind.name, size)


def _module(creation: dict, flags: dict, pool: bool):
    return type("trt", (), {"__version__": "x", "NetworkDefinitionCreationFlag": enum.IntEnum("NDCF", creation),
                            "BuilderFlag": enum.IntEnum("BuilderFlag", flags),
                            "MemoryPoolType": enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0}),
                            "IBuilderConfig": _PoolConfig if pool else _Config})


TRT82 = _module({"EXPLICIT_BATCH": 0}, {"FP16": 0, "INT8": 1}, pool=False)
TRT86 = _module({"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}, {"FP16": 0, "INT8": 1}, pool=True)
TRT10 = _module({"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}, {"FP16": 0, "INT8": 1, "TF32": 2}, pool=True)
TRT11 = _module({"STRONGLY_TYPED": 0}, {"TF32": 0}, pool=True)


def test_builder_choices_follow_what_the_module_has():
    assert trt_compat.builder_caps(TRT82) == trt_compat.BuilderCaps(False, True, False, True)
    assert trt_compat.builder_caps(TRT86) == trt_compat.BuilderCaps(False, True, True, True)
    assert trt_compat.builder_caps(TRT10) == trt_compat.BuilderCaps(True, True, True, True)
    assert trt_compat.builder_caps(TRT11) == trt_compat.BuilderCaps(True, False, True, False)
    assert trt_compat.network_flags(TRT82, strongly_typed=False) == 1 << 0   # EXPLICIT_BATCH
    assert trt_compat.network_flags(TRT10, strongly_typed=True) == 1 << 1    # STRONGLY_TYPED only
    assert trt_compat.network_flags(TRT11, strongly_typed=True) == 1 << 0
    no_flag = _module({}, {"TF32": 0}, pool=True)                            # a release without either flag
    assert trt_compat.network_flags(no_flag, strongly_typed=True) == 0
    assert trt_compat.network_flags(no_flag, strongly_typed=False) == 0


def test_workspace_and_precision_flags_use_what_the_config_has():
    old, new = _Config(), _PoolConfig()
    trt_compat.set_workspace(TRT82, old, 256)
    trt_compat.set_workspace(TRT10, new, 256)
    assert old.max_workspace_size == 256 << 20
    assert new.pool == ("WORKSPACE", 256 << 20)
    trt_compat.set_precision_flags(TRT86, old, ("FP16", "INT8"))
    assert old.flags == ["FP16", "INT8"]
    with pytest.raises(UnsupportedError, match="has no BuilderFlag.FP16: it builds strongly typed networks only"):
        trt_compat.set_precision_flags(TRT11, new, ("FP16",))
