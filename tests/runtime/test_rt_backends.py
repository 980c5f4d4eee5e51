"""Backends: the runner protocol, input checks, the registry and `auto`, and the engine/device check."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge.core.errors import BadInputError, EdgekitError, MissingFileError, UnknownNameError, UnsupportedError
from runtime.backends import (AUTO, BACKENDS, DeviceFacts, backend_names, create_backend, engine_mismatch,
                              pick_backend, select_engine)
from runtime.backends.ort import available_providers
from runtime.bundle import EngineEntry, load_bundle

ORIN = DeviceFacts(gpu="Orin", compute_capability="8.7", tensorrt="10.3.0.30")


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    return load_bundle(bundle_dir)


def test_onnxruntime_runner_lifecycle(bundle):
    runner = create_backend("onnxruntime", bundle.model("plane"))
    with pytest.raises(EdgekitError, match="not active"):
        runner.infer({"input": np.zeros((1, 1, 32, 32), np.float32)})
    with runner:
        out = runner.infer({"input": np.full((1, 1, 32, 32), 2.0, np.float32)})
        assert list(out) == ["logits"]
        assert np.allclose(out["logits"], [[2.0, -2.0, 0.0, 1.0]], atol=1e-6)
        assert "CPUExecutionProvider" in runner.describe()
    assert not runner.is_active
    assert runner.session is None


@pytest.mark.parametrize("feed, text", [
    ({"input": np.zeros((1, 1, 32, 32), np.float64)}, "Input tensor: input | Received dtype float64; expected float32"),
    ({"input": np.zeros((1, 3, 32, 32), np.float32)}, r"Received shape \[1, 3, 32, 32\]; expected \[1, 1, 32, 32\]"),
    ({"input": np.zeros((1, 32, 32), np.float32)}, r"Received shape \[1, 32, 32\]"),
    ({"image": np.zeros((1, 1, 32, 32), np.float32)}, r"missing \['input'\].*unexpected \['image'\]"),
    ({"input": [[0.0]]}, "Received a list"),
])
def test_input_checks_name_tensor_received_and_expected(bundle, feed, text):
    with create_backend("onnxruntime", bundle.model("plane")) as runner, pytest.raises(BadInputError, match=text):
        runner.infer(feed)


def test_graph_inputs_must_match_manifest(bundle):
    model = bundle.model("plane")
    renamed = dataclasses.replace(model, inputs=(dataclasses.replace(model.inputs[0], name="x"),))
    with pytest.raises(EdgekitError, match=r"has inputs \['input'\] but manifest.json says \['x'\]"):
        create_backend("onnxruntime", renamed).activate()


def test_registry_sweep(bundle):
    assert set(BACKENDS) == {"onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "tensorrt"}
    assert backend_names()[-1] == AUTO
    for name, cls in BACKENDS.items():
        assert cls.name == name
        reason = cls.unavailable()
        if reason is None:
            with create_backend(name, bundle.model("plane")) as runner:
                assert runner.infer({"input": np.zeros((1, 1, 32, 32), np.float32)})["logits"].shape == (1, 4)
        else:  # cannot run here: the error says what is missing, in one line
            with pytest.raises(UnsupportedError) as exc:
                create_backend(name, bundle.model("plane"))
            assert name in str(exc.value)
            assert "\n" not in str(exc.value)


def test_unknown_backend_suggests_a_name(bundle):
    with pytest.raises(UnknownNameError, match="did you mean 'tensorrt'"):
        pick_backend("tensorrtt", bundle)


def test_auto_says_what_it_picked(bundle):
    name, why = pick_backend("auto", bundle)
    assert name in BACKENDS
    assert why.startswith("auto:")
    providers = available_providers()
    if "TensorrtExecutionProvider" not in providers and "CUDAExecutionProvider" not in providers:
        assert name == "onnxruntime"
        assert "no TensorRT engines" in why
        assert "CPU" in why
    assert pick_backend("onnxruntime", bundle) == ("onnxruntime", "requested")


def _engine(tmp_path, **over) -> EngineEntry:
    fields = dict(file=tmp_path / "plane.orin.engine", gpu="Orin", compute_capability="8.7",
                  tensorrt="10.3.0.26", sha256="0" * 64)
    fields.update(over)
    return EngineEntry(**fields)


def test_engine_mismatch_is_a_pure_function(tmp_path):
    assert engine_mismatch(_engine(tmp_path), ORIN) is None  # same release, another build number
    why = engine_mismatch(_engine(tmp_path, gpu="Xavier", compute_capability="7.2", tensorrt="8.5.2"), ORIN)
    assert "GPU 'Xavier' != 'Orin'" in why
    assert "7.2 != 8.7" in why
    assert "TensorRT 8.5.2 != 10.3.0.30" in why
    assert "TensorRT 10.4.0" in engine_mismatch(_engine(tmp_path, tensorrt="10.4.0"), ORIN)


def test_engine_for_another_device_is_refused_from_the_manifest(fresh_bundle):
    import json

    manifest = json.loads((fresh_bundle / "manifest.json").read_text())
    manifest["models"][0]["engines"] = [{"file": "plane.xavier.engine", "gpu": "Xavier", "compute_capability": "7.2",
                                         "tensorrt": "8.5.2", "sha256": "0" * 64, "trtexec": None}]
    (fresh_bundle / "manifest.json").write_text(json.dumps(manifest))
    b = load_bundle(fresh_bundle)
    with pytest.raises(UnsupportedError) as exc:
        select_engine(b.model("plane"), ORIN, str(fresh_bundle))
    message = str(exc.value)
    assert "plane.xavier.engine" in message
    assert "Xavier" in message
    assert "edgekit build-engines" in message
    with pytest.raises(UnsupportedError, match="no TensorRT engine"):
        select_engine(b.model("anatomy"), ORIN)
    orin = dataclasses.replace(b.model("plane").engines[0], gpu="Orin", compute_capability="8.7", tensorrt="10.3.0")
    with pytest.raises(MissingFileError, match="recorded in manifest.json but missing"):
        select_engine(dataclasses.replace(b.model("plane"), engines=(orin,)), ORIN)
    (fresh_bundle / "plane.xavier.engine").write_bytes(b"plan")
    assert select_engine(dataclasses.replace(b.model("plane"), engines=(orin,)), ORIN) is orin


def test_tensorrt_backend_without_tensorrt_says_what_is_missing(bundle):
    reason = BACKENDS["tensorrt"].unavailable()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present: covered by the tensorrt-marked test")
    assert "tensorrt" in reason or "GPU" in reason or "pycuda" in reason
    with pytest.raises(UnsupportedError, match="tensorrt backend needs"):
        BACKENDS["tensorrt"](bundle.model("plane"))


@pytest.mark.tensorrt
def test_tensorrt_backend_on_a_real_device(bundle):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine")
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed on this machine")
    from runtime.backends.tensorrt import device_facts

    facts = device_facts()  # with TensorRT present, the bundle without engines must be refused clearly
    with pytest.raises(UnsupportedError, match="build-engines"):
        create_backend("tensorrt", bundle.model("plane"), device=facts)
