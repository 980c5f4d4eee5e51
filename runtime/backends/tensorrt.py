"""Native TensorRT backend: a bundle's engine on GPU 0, through pycuda.

TensorRT and pycuda come with the device (JetPack, `edgekit[jetson]`), never with a host install, so
both are imported only when this backend is built; without them (or without a GPU) it says what is
missing. The engine is chosen by `runtime.engines.select_engine` (the one owner of device facts and
engine matching), which refuses one built for another GPU or TensorRT release. Kept thin on purpose
(static output shapes): every TensorRT API difference (tensor names from 8.5, binding indices on 8.2)
and the host-buffer choice (zero-copy mapped memory on a Jetson, pinned staging on a discrete GPU)
live in `runtime.trt_compat`.
"""
from __future__ import annotations

import numpy as np

from edge.core.errors import UnsupportedError
from runtime import trt_compat
from runtime.backends.base import Backend, check_graph
from runtime.engines import DeviceFacts, device_facts, select_engine


def import_tensorrt():
    """(tensorrt, pycuda.driver) or UnsupportedError naming what is missing."""
    missing, trt, cuda = [], None, None
    try:
        import tensorrt as trt
    except ImportError:
        missing.append("tensorrt (comes with JetPack / the TensorRT wheels)")
    try:
        import pycuda.driver as cuda
    except ImportError:
        missing.append("pycuda (pip install 'edgekit[jetson]')")
    if missing:
        raise UnsupportedError(f"the tensorrt backend needs {' and '.join(missing)}; "
                               f"or use --backend onnxruntime")
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            raise UnsupportedError("the tensorrt backend needs an NVIDIA GPU; none was found")
    except cuda.Error as exc:
        raise UnsupportedError(f"the tensorrt backend cannot use CUDA here ({exc}); check the driver") from None
    return trt, cuda


class TensorRTBackend(Backend):
    """A model's TensorRT engine on GPU 0, fed through mapped (Jetson) or page-locked host buffers."""

    name = "tensorrt"

    def __init__(self, model, device: DeviceFacts | None = None, bundle_hint: str = "BUNDLE"):
        super().__init__(model)
        self._trt, self._cuda = import_tensorrt()
        self.engine_entry = select_engine(model, device or device_facts(self._trt), bundle_hint)

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import_tensorrt()
        except UnsupportedError as exc:
            return str(exc)
        return None

    def activate_impl(self) -> None:
        trt, cuda = self._trt, self._cuda
        device = cuda.Device(0)
        self._ctx = device.retain_primary_context()
        self._ctx.push()
        self.buffers, ready = {}, False
        try:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = runtime.deserialize_cuda_engine(self.engine_entry.file.read_bytes())
            if self.engine is None:
                raise UnsupportedError(f"TensorRT could not load {self.engine_entry.file.name}; run "
                                       f"`edgekit build-engines BUNDLE` on this device")
            self._check_io()
            self.context = trt_compat.ExecutionContext(self.engine, self.engine.create_execution_context())
            self.stream = cuda.Stream()
            self.zero_copy = trt_compat.zero_copy_capable(cuda, device)
            self._allocate()
            ready = True
        finally:
            if not ready:  # nothing allocated outlives a failed activation
                for buf in self.buffers.values():
                    buf.free()
                self.buffers = {}
            self._ctx.pop()
            if not ready:
                self._ctx.detach()

    def _check_io(self) -> None:
        """The engine's tensors must be the manifest's (names, dtypes, ranks, static dims): `check_graph`."""
        io = {True: [], False: []}
        for t in trt_compat.io_tensors(self._trt, self.engine):
            dtype = trt_compat.numpy_dtype(self._trt, t.dtype)
            # a type numpy lacks (bfloat16, fp8) keeps TensorRT's name: the manifest cannot name it either
            io[t.is_input].append((t.name, list(t.shape), dtype.name if dtype is not None else str(t.dtype)))
        check_graph(self.model, self.engine_entry.file.name, io[True], io[False])

    def _allocate(self) -> None:
        trt, cuda = self._trt, self._cuda
        self.inputs, self.outputs, self.buffers = [], [], {}
        tensors = trt_compat.io_tensors(trt, self.engine)
        specs = {spec.name: spec for spec in self.model.inputs}
        for t in tensors:  # fix dynamic input shapes first: outputs' shapes follow from them
            if t.is_input and any(d < 0 for d in t.shape):
                self.context.set_input_shape(t.name, specs[t.name].shape)
        for t in tensors:
            shape = self.context.shape(t.name)
            if any(d < 0 for d in shape):
                raise UnsupportedError(f"tensor {t.name!r} of {self.model.name!r} has a data-dependent shape "
                                       f"{shape}; use --backend onnxruntime-trt for this model")
            buffer = trt_compat.HostDeviceBuffer(cuda, shape, trt_compat.numpy_dtype(trt, t.dtype), self.zero_copy)
            self.buffers[t.name] = buffer
            self.context.set_address(t.name, buffer.address)
            (self.inputs if t.is_input else self.outputs).append(t.name)

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._ctx.push()
        try:
            for name in self.inputs:
                self.buffers[name].upload(feed[name], self.stream)
            if not self.context.execute(self.stream.handle):
                raise RuntimeError(f"TensorRT execution of {self.model.name!r} failed")
            for name in self.outputs:
                self.buffers[name].download(self.stream)
            self.stream.synchronize()
        finally:
            self._ctx.pop()
        return {name: self.buffers[name].host.copy() for name in self.outputs}

    def deactivate_impl(self) -> None:
        self._ctx.push()
        try:
            for buf in self.buffers.values():
                buf.free()
            self.buffers, self.context, self.engine = {}, None, None
        finally:
            self._ctx.pop()
            self._ctx.detach()

    def device_memory(self) -> dict | None:
        self._ctx.push()
        try:
            free, total = self._cuda.mem_get_info()
        finally:
            self._ctx.pop()
        return {"used_bytes": int(total - free), "total_bytes": int(total)}

    def describe(self) -> str:
        memory = "zero-copy" if getattr(self, "zero_copy", False) else "pinned"
        return f"tensorrt ({self.engine_entry.file.name}, {self.model.precision}, {memory} buffers)"
