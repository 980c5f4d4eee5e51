"""Fakes of TensorRT's runtime API and of pycuda, each following the documented API of what it imitates.

`FakeTensorRT(api)` is a `tensorrt` module whose engines speak one I/O API:
- "8.2": binding indices only (num_bindings, get_binding_name/_shape/_dtype/_index, binding_is_input;
  context.set_binding_shape, get_binding_shape, execute_async_v2(bindings, stream_handle));
- "8.5": both APIs, the binding one deprecated (calling it fails the test: edgekit must prefer names);
- "10", "11": tensor names only (num_io_tensors, get_tensor_name/_mode/_shape/_dtype;
  context.set_input_shape, get_tensor_shape, set_tensor_address, execute_async_v3(stream_handle)).
Its engine is the tiny classifier of tests/runtime/rt_models.py (logits = W * mean(x), W = [1, -1, 0,
0.5]), computed from the bytes at the addresses the context was given, so a wrong address, a missing
copy or a stale buffer gives a wrong answer.

`FakeCuda(integrated)` is `pycuda.driver`: device memory is a dict of address -> bytearray; page-locked
host arrays are numpy arrays over a `HostAllocation` (their `.base`, as in pycuda), mapped ones
(`host_alloc_flags.DEVICEMAP`) registered under their device pointer, so a mapped buffer is one memory
that both sides see. Every copy is recorded in `calls`.
"""
from __future__ import annotations

import enum
import itertools
from types import SimpleNamespace

import numpy as np

W = np.array([1.0, -1.0, 0.0, 0.5], np.float32)
INPUT, OUTPUT = ("input", (1, 1, 32, 32)), ("logits", (1, 4))


class FakeCuda:
    """`pycuda.driver` as far as edgekit uses it."""

    device_attribute = SimpleNamespace(INTEGRATED="INTEGRATED", CAN_MAP_HOST_MEMORY="CAN_MAP_HOST_MEMORY")
    host_alloc_flags = SimpleNamespace(PORTABLE=1, DEVICEMAP=2, WRITECOMBINED=4)

    class Error(Exception):
        pass

    def __init__(self, integrated: bool = True, can_map: bool = True):
        self.memory: dict[int, bytearray] = {}
        self.calls: list = []
        self.freed: list = []
        self._addresses = itertools.count(0x7000_0000, 0x1000)
        fake = self

        class HostAllocation(bytearray):
            def __init__(self, nbytes, mapped):
                super().__init__(nbytes)
                self.mapped, self.pointer = mapped, None
                if mapped:
                    self.pointer = next(fake._addresses)
                    fake.memory[self.pointer] = self

            def get_device_pointer(self):
                if not self.mapped:
                    raise fake.Error("cuMemHostGetDevicePointer failed: not allocated with DEVICEMAP")
                return self.pointer

            def free(self):
                fake.freed.append("host")
                fake.memory.pop(self.pointer, None)

        class DeviceAllocation:
            def __init__(self, nbytes):
                self.address = next(fake._addresses)
                fake.memory[self.address] = bytearray(nbytes)

            def __int__(self):
                return self.address

            def free(self):
                fake.freed.append("device")
                del fake.memory[self.address]

        class Context:
            def push(self):
                fake.calls.append("push")

            def pop(self):
                fake.calls.append("pop")

            def detach(self):
                fake.calls.append("detach")

        class Device:
            def __init__(self, ordinal):
                self.ordinal = ordinal

            @staticmethod
            def count():
                return 1

            def get_attribute(self, attr):
                return {"INTEGRATED": int(integrated), "CAN_MAP_HOST_MEMORY": int(can_map)}[attr]

            def retain_primary_context(self):
                return Context()

            def name(self):
                return "Orin" if integrated else "NVIDIA H100"

            def compute_capability(self):
                return (8, 7) if integrated else (9, 0)

        class Stream:
            handle = 0xABC

            def synchronize(self):
                fake.calls.append("synchronize")

        self.HostAllocation, self.Device, self.Stream = HostAllocation, Device, Stream
        self._device_allocation = DeviceAllocation

    def init(self):
        pass

    def pagelocked_empty(self, shape, dtype, order="C", mem_flags=0):
        dtype = np.dtype(dtype)
        alloc = self.HostAllocation(int(np.prod(shape)) * dtype.itemsize, bool(mem_flags & self.host_alloc_flags.DEVICEMAP))
        self.calls.append(("pagelocked_empty", tuple(shape), "mapped" if alloc.mapped else "pinned"))
        return np.ndarray(shape, dtype, buffer=alloc, order=order)

    def mem_alloc(self, nbytes):
        self.calls.append(("mem_alloc", nbytes))
        return self._device_allocation(nbytes)

    def _pinned(self, array):
        assert isinstance(array.base, self.HostAllocation), "an async copy from pageable memory is synchronous"

    def memcpy_htod_async(self, dest, src, stream):
        self._pinned(src)
        self.calls.append("htod")
        self.memory[int(dest)][:] = src.tobytes()

    def memcpy_dtoh_async(self, dest, src, stream):
        self._pinned(dest)
        self.calls.append("dtoh")
        dest[...] = np.frombuffer(bytes(self.memory[int(src)]), dest.dtype).reshape(dest.shape)

    def mem_get_info(self):
        return 1 << 30, 4 << 30

    def view(self, address, dtype, shape):
        """What the GPU sees at `address`."""
        return np.frombuffer(self.memory[int(address)], dtype).reshape(shape)


class FakeTensorRT:
    """A `tensorrt` module whose engines speak the I/O API of release `api` ("8.2", "8.5", "10", "11")."""

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    TensorIOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")
    DataType = enum.Enum("DataType", "FLOAT HALF INT8 INT32 BF16")

    def __init__(self, api: str, cuda: FakeCuda):
        self.api, self.cuda = api, cuda
        self.__version__ = {"8.2": "8.2.1.8", "8.5": "8.5.2.2", "10": "10.3.0.30", "11": "11.0.0.1"}[api]
        tensor_api, binding_api = api != "8.2", api in ("8.2", "8.5")
        fake = self

        class Engine:
            def __init__(self):
                self.io = [(INPUT[0], INPUT[1], True), (OUTPUT[0], OUTPUT[1], False)]

            def create_execution_context(self):
                return Context(self)

            if tensor_api:
                @property
                def num_io_tensors(self):
                    return len(self.io)

                def get_tensor_name(self, i):
                    return self.io[i][0]

                def _named(self, name):
                    return next(t for t in self.io if t[0] == name)

                def get_tensor_mode(self, name):
                    return fake.TensorIOMode.INPUT if self._named(name)[2] else fake.TensorIOMode.OUTPUT

                def get_tensor_shape(self, name):
                    return list(self._named(name)[1])

                def get_tensor_dtype(self, name):
                    return fake.DataType.FLOAT

            if binding_api:
                def _deprecated(self):
                    assert api == "8.2", "the binding-index API is deprecated from TensorRT 8.5: use tensor names"

                @property
                def num_bindings(self):
                    self._deprecated()
                    return len(self.io)

                def get_binding_name(self, i):
                    self._deprecated()
                    return self.io[i][0]

                def binding_is_input(self, i):
                    self._deprecated()
                    return self.io[i][2]

                def get_binding_shape(self, i):
                    self._deprecated()
                    return list(self.io[i][1])

                def get_binding_dtype(self, i):
                    self._deprecated()
                    return fake.DataType.FLOAT

                def get_binding_index(self, name):
                    self._deprecated()
                    return next((i for i, t in enumerate(self.io) if t[0] == name), -1)

        class Context:
            def __init__(self, engine):
                self.engine, self.addresses = engine, {}

            def _run(self, addresses):
                x = fake.cuda.view(addresses[INPUT[0]], np.float32, INPUT[1])
                fake.cuda.view(addresses[OUTPUT[0]], np.float32, OUTPUT[1])[...] = W * x.mean()
                fake.cuda.calls.append("execute")
                return True

            if tensor_api:
                def set_input_shape(self, name, shape):
                    return tuple(shape) == INPUT[1]

                def get_tensor_shape(self, name):
                    return list(self.engine._named(name)[1])

                def set_tensor_address(self, name, address):
                    self.addresses[name] = address

                def execute_async_v3(self, stream_handle):
                    assert stream_handle == fake.cuda.Stream.handle
                    return self._run(self.addresses)

            if binding_api:
                def set_binding_shape(self, index, shape):
                    self.engine._deprecated()
                    return tuple(shape) == INPUT[1]

                def get_binding_shape(self, index):
                    self.engine._deprecated()
                    return list(self.engine.io[index][1])

                def execute_async_v2(self, bindings, stream_handle):
                    self.engine._deprecated()
                    assert stream_handle == fake.cuda.Stream.handle
                    return self._run({t[0]: bindings[i] for i, t in enumerate(self.engine.io)})

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                return Engine() if data == b"fake plan" else None

        self.Runtime = Runtime

    def nptype(self, dtype):
        table = {self.DataType.FLOAT: np.float32, self.DataType.HALF: np.float16, self.DataType.INT8: np.int8,
                 self.DataType.INT32: np.int32}
        if dtype not in table:
            raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype: {dtype}")
        return table[dtype]
