"""Native TensorRT backend: a bundle's engine, pycuda device buffers, `execute_async_v3`.

TensorRT and pycuda come with the device (JetPack, `edgekit[jetson]`), never with a host install, so
both are imported only when this backend is built; without them (or without a GPU) it says what is
missing. The engine is chosen by `runtime.engines.select_engine` (the one owner of device facts and
engine matching), which refuses one built for another GPU or TensorRT release. Kept thin on purpose
(TensorRT 10/11 named-tensor API, static output shapes).
"""
from __future__ import annotations

import numpy as np

from edge.core.errors import UnsupportedError
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
    """A model's TensorRT engine on GPU 0, fed through page-locked host and device buffers."""

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
        self._ctx = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = runtime.deserialize_cuda_engine(self.engine_entry.file.read_bytes())
            if self.engine is None:
                raise UnsupportedError(f"TensorRT could not load {self.engine_entry.file.name}; run "
                                       f"`edgekit build-engines BUNDLE` on this device")
            self._check_io()
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            self._allocate()
        finally:
            self._ctx.pop()

    def _check_io(self) -> None:
        """The engine's tensors must be the manifest's (names, dtypes, ranks, static dims): `check_graph`."""
        trt, engine = self._trt, self.engine
        io = {True: [], False: []}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            try:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
            except TypeError:  # a type numpy lacks (bfloat16, fp8): the manifest cannot name it either
                dtype = str(engine.get_tensor_dtype(name))
            io[engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT].append(
                (name, [int(d) for d in engine.get_tensor_shape(name)], dtype))
        check_graph(self.model, self.engine_entry.file.name, io[True], io[False])

    def _allocate(self) -> None:
        trt, cuda = self._trt, self._cuda
        self.inputs, self.outputs, self.device_buffers = [], {}, {}
        for spec in self.model.inputs:  # fix the input shapes first: outputs' shapes follow from them
            self.context.set_input_shape(spec.name, tuple(int(d) for d in spec.shape))
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise UnsupportedError(f"tensor {name!r} of {self.model.name!r} has a data-dependent shape "
                                       f"{shape}; use --backend onnxruntime-trt for this model")
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
            self.device_buffers[name] = cuda.mem_alloc(nbytes)
            self.context.set_tensor_address(name, int(self.device_buffers[name]))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
            else:
                self.outputs[name] = cuda.pagelocked_empty(shape, dtype)

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        self._ctx.push()
        try:
            for name in self.inputs:
                cuda.memcpy_htod_async(self.device_buffers[name], np.ascontiguousarray(feed[name]), self.stream)
            if not self.context.execute_async_v3(self.stream.handle):
                raise RuntimeError(f"TensorRT execution of {self.model.name!r} failed")
            for name, host in self.outputs.items():
                cuda.memcpy_dtoh_async(host, self.device_buffers[name], self.stream)
            self.stream.synchronize()
        finally:
            self._ctx.pop()
        return {name: host.copy() for name, host in self.outputs.items()}

    def deactivate_impl(self) -> None:
        self._ctx.push()
        try:
            for buf in self.device_buffers.values():
                buf.free()
            self.device_buffers, self.context, self.engine = {}, None, None
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
        return f"tensorrt ({self.engine_entry.file.name}, {self.model.precision})"
