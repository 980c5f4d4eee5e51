"""ONNX Runtime backends: the CPU one runs anywhere; the CUDA and TensorRT execution providers run
where the installed onnxruntime build has them (`onnxruntime-gpu`, or NVIDIA's Jetson wheels).

INT8 on the CPU: ORT's integer kernels fuse only the ONNX Runtime form of an INT8 graph
(`export.int8_ort`); the TensorRT form runs there as fake quantisation, slower than fp32. So the CPU
backend runs a model's ONNX Runtime form when its bundle carries one (a TensorRT-target INT8 export
adds it as a fallback when it keeps parity), and says which form it runs in `describe()`. The CUDA
and TensorRT providers run the primary file.

`onnxruntime` is imported when a session is created, not at import time.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from edge.core.errors import FileFormatError, UnsupportedError
from runtime.backends.base import Backend, check_graph

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
_ORT_TYPES = {"float": "float32", "double": "float64"}


def ort_dtype(type_name) -> str | None:
    """ONNX Runtime's "tensor(float)" -> "float32" (numpy's names, as in the manifest); None if not a tensor."""
    text = str(type_name or "")
    if not (text.startswith("tensor(") and text.endswith(")")):
        return None
    inner = text[len("tensor("):-1]
    return _ORT_TYPES.get(inner, inner)


def available_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


class OnnxRuntimeBackend(Backend):
    """A model in an `onnxruntime.InferenceSession` with this class's execution providers."""

    name: ClassVar[str] = "onnxruntime"
    providers: ClassVar[tuple[str, ...]] = (CPU,)

    def __init__(self, model, threads: int | None = None):
        super().__init__(model)
        reason = self.unavailable()
        if reason:
            raise UnsupportedError(f"backend {self.name!r} cannot run here: {reason}")
        self.threads = threads
        self.session = None
        self.onnx, self.int8_form = self._graph()

    def _graph(self) -> tuple:
        """(the ONNX file this backend runs, its INT8 form or None)."""
        m = self.model
        if m.precision != "int8":
            return m.onnx, None
        ort_form = m.ort_int8() if self.providers == (CPU,) else None
        if ort_form is not None:
            return ort_form, "onnxruntime"
        return m.onnx, m.int8_form or "tensorrt"

    @classmethod
    def unavailable(cls) -> str | None:
        have = available_providers()
        if not have:
            return "onnxruntime is not installed (pip install onnxruntime)"
        missing = [p for p in cls.providers if p not in have]
        if missing:
            return (f"this onnxruntime has no {', '.join(missing)} (it has {', '.join(have)}); install "
                    f"onnxruntime-gpu or the Jetson wheel, or use --backend onnxruntime")
        return None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.onnx), options, providers=list(self.providers))
        except Exception as exc:  # ORT raises its own types for unreadable graphs
            raise FileFormatError(f"onnxruntime cannot load {self.onnx.name} of model "
                                  f"{self.model.name!r}: {str(exc).splitlines()[0]}; re-export the bundle") from None
        self._check_graph()
        self._output_names = [o.name for o in self.session.get_outputs()]

    def _check_graph(self) -> None:
        """The ONNX graph's tensors must be the manifest's, or every feed (or its answers) would be wrong."""
        def io(args):
            return [(a.name, a.shape, ort_dtype(a.type)) for a in args]

        check_graph(self.model, self.onnx.name, io(self.session.get_inputs()), io(self.session.get_outputs()))

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.session.run(self._output_names, feed)))

    def deactivate_impl(self) -> None:
        self.session = None

    def describe(self) -> str:
        used = self.session.get_providers()[0] if self.session is not None else self.providers[0]
        form = f" {self.int8_form} form" if self.int8_form else ""
        slow = (": fake quantisation on the CPU, slower than fp32; the bundle has no ONNX Runtime form"
                if used == CPU and self.int8_form == "tensorrt" else "")
        return f"{self.name} ({used}, {self.model.precision}{form}{slow})"


class OnnxRuntimeCudaBackend(OnnxRuntimeBackend):
    name = "onnxruntime-cuda"
    providers = (CUDA, CPU)


class OnnxRuntimeTensorRTBackend(OnnxRuntimeBackend):
    name = "onnxruntime-trt"
    providers = (TRT, CUDA, CPU)
