"""Every TensorRT and CUDA API difference edgekit meets, each behind one function or class here.

The Jetsons edgekit targets ship four TensorRT Python APIs (docs/BRIEF.md, `edgekit targets`):

| capability     | 8.2 (JetPack 4.6)            | 8.5 / 8.6 (JetPack 5)   | 10.x (JetPack 6)              | 11                 |
| -------------- | ---------------------------- | ----------------------- | ----------------------------- | ------------------ |
| engine I/O     | binding indices (`num_bindings`, `binding_is_input`, `set_binding_shape`, `execute_async_v2`) | both; bindings deprecated | tensor names only (`num_io_tensors`, `get_tensor_mode`, `set_input_shape`, `set_tensor_address`, `execute_async_v3`) | tensor names |
| precision      | `BuilderFlag.FP16` / `INT8`  | flags                   | strongly typed networks (flags kept) | strongly typed only: the flags are gone |
| workspace      | `max_workspace_size`         | `set_memory_pool_limit` | `set_memory_pool_limit`       | same               |
| explicit batch | `EXPLICIT_BATCH` flag needed | needed                  | always (flag ignored)         | always             |

Each choice is made by asking the installed module what it has (`hasattr`), never by parsing its version
string, so a release that adds or drops an API is served by what it really has. `build_engine` (in
`runtime.engines`) and the native backend (`runtime.backends.tensorrt`) call only these.

Host memory for the copies (pycuda): an ordinary numpy array is pageable, which makes a CUDA "async" copy
synchronous; so every tensor gets a page-locked host array (`pagelocked_empty`). On an integrated GPU
(every Jetson: CPU and GPU share one DRAM) the host array is mapped into the GPU's address space
(`host_alloc_flags.DEVICEMAP`, `get_device_pointer`) and TensorRT reads and writes it in place: no copy at
all. `HostDeviceBuffer` is that choice, made once per backend by `zero_copy_capable`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.core.errors import UnsupportedError

# --- building: what the module's builder can do ----------------------------------------------------


@dataclass(frozen=True)
class BuilderCaps:
    """What this TensorRT's builder offers, read off the module by `builder_caps`."""

    strongly_typed: bool     # NetworkDefinitionCreationFlag.STRONGLY_TYPED (10), or no precision flags left (11)
    precision_flags: bool    # BuilderFlag.FP16 / INT8 exist (8.x, 10; removed in 11)
    memory_pool: bool        # IBuilderConfig.set_memory_pool_limit (8.4+) rather than max_workspace_size (8.2)
    explicit_batch_flag: bool  # NetworkDefinitionCreationFlag.EXPLICIT_BATCH exists (needed by 8.x's ONNX parser)


def builder_caps(trt) -> BuilderCaps:
    """Read `BuilderCaps` off a `tensorrt` module (or anything that follows its API)."""
    creation, flags = trt.NetworkDefinitionCreationFlag, trt.BuilderFlag
    precision = hasattr(flags, "FP16") and hasattr(flags, "INT8")
    return BuilderCaps(strongly_typed=hasattr(creation, "STRONGLY_TYPED") or not precision,
                       precision_flags=precision,
                       memory_pool=hasattr(getattr(trt, "IBuilderConfig", None), "set_memory_pool_limit"),
                       explicit_batch_flag=hasattr(creation, "EXPLICIT_BATCH"))


def network_flags(trt, strongly_typed: bool) -> int:
    """The `create_network` flags: STRONGLY_TYPED where asked (and the flag exists), else EXPLICIT_BATCH
    where the module still has it (8.x's ONNX parser needs it; from 10 every network is explicit batch)."""
    creation = trt.NetworkDefinitionCreationFlag
    if strongly_typed:
        return 1 << int(creation.STRONGLY_TYPED) if hasattr(creation, "STRONGLY_TYPED") else 0
    return 1 << int(creation.EXPLICIT_BATCH) if hasattr(creation, "EXPLICIT_BATCH") else 0


def set_workspace(trt, config, workspace_mb: int) -> None:
    """The builder's scratch memory: a memory-pool limit (8.4+) or `max_workspace_size` (8.2)."""
    size = int(workspace_mb) << 20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, size)
    else:
        config.max_workspace_size = size


def set_precision_flags(trt, config, names) -> None:
    """Set `BuilderFlag`s by name; a flag this TensorRT lacks (FP16/INT8 on 11) is refused in one line."""
    for name in names:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise UnsupportedError(f"TensorRT {getattr(trt, '__version__', '?')} has no BuilderFlag.{name}: it "
                                   f"builds strongly typed networks only, where the ONNX graph carries precision")
        config.set_flag(flag)


# --- running: the engine's I/O through whichever API this TensorRT has -----------------------------


@dataclass(frozen=True)
class IOTensor:
    """One engine input or output: name, direction, shape (-1 for a dynamic dim) and TensorRT DataType."""

    name: str
    is_input: bool
    shape: tuple
    dtype: object


def has_tensor_api(engine) -> bool:
    """TensorRT 8.5+ names its I/O tensors; 8.2 only numbers its bindings (10 removed the numbers)."""
    return hasattr(engine, "num_io_tensors")


def io_tensors(trt, engine) -> list:
    """The engine's inputs and outputs, in the engine's order, as `IOTensor`s."""
    if has_tensor_api(engine):
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            tensors.append(IOTensor(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                                    tuple(int(d) for d in engine.get_tensor_shape(name)),
                                    engine.get_tensor_dtype(name)))
        return tensors
    return [IOTensor(engine.get_binding_name(i), bool(engine.binding_is_input(i)),
                     tuple(int(d) for d in engine.get_binding_shape(i)), engine.get_binding_dtype(i))
            for i in range(engine.num_bindings)]


def numpy_dtype(trt, dtype):
    """numpy's dtype for a TensorRT DataType, or None for one numpy lacks (bfloat16, fp8)."""
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError:
        return None


class ExecutionContext:
    """An `IExecutionContext` driven through the API its TensorRT has: tensor names (`set_input_shape`,
    `set_tensor_address`, `execute_async_v3`) or binding indices (`set_binding_shape`, a bindings list,
    `execute_async_v2`)."""

    def __init__(self, engine, context):
        self.engine, self.context = engine, context
        self.named = has_tensor_api(engine)
        self.bindings = None if self.named else [0] * int(engine.num_bindings)

    def _index(self, name: str) -> int:
        index = self.engine.get_binding_index(name)
        if index < 0:
            raise UnsupportedError(f"the TensorRT engine has no tensor {name!r}")
        return index

    def set_input_shape(self, name: str, shape) -> None:
        shape = tuple(int(d) for d in shape)
        if self.named:
            ok = self.context.set_input_shape(name, shape)
        else:
            ok = self.context.set_binding_shape(self._index(name), shape)
        if ok is False:
            raise UnsupportedError(f"the TensorRT engine refuses shape {list(shape)} for input {name!r}; rebuild it "
                                   f"with `edgekit build-engines`")

    def shape(self, name: str) -> tuple:
        """The tensor's shape in this context (inputs' shapes set first)."""
        dims = self.context.get_tensor_shape(name) if self.named else self.context.get_binding_shape(self._index(name))
        return tuple(int(d) for d in dims)

    def set_address(self, name: str, address: int) -> None:
        if self.named:
            self.context.set_tensor_address(name, int(address))
        else:
            self.bindings[self._index(name)] = int(address)

    def execute(self, stream_handle: int) -> bool:
        """Enqueue one inference on the stream; False when TensorRT says it failed."""
        if self.named:
            return bool(self.context.execute_async_v3(stream_handle))
        return bool(self.context.execute_async_v2(self.bindings, stream_handle))


# --- host memory (pycuda) ----------------------------------------------------------------------------


def zero_copy_capable(cuda, device) -> bool:
    """True on an integrated GPU that maps host memory (every Jetson): one buffer serves CPU and GPU."""
    attr = cuda.device_attribute
    try:
        return bool(device.get_attribute(attr.INTEGRATED)) and bool(device.get_attribute(attr.CAN_MAP_HOST_MEMORY))
    except Exception:  # an attribute this driver cannot report: take the copying path, which always works
        return False


class HostDeviceBuffer:
    """One tensor's memory: a page-locked host array and the device address TensorRT reads or writes.

    Mapped (`zero_copy`): the host array is allocated with DEVICEMAP and its device pointer is the
    address, so `upload`/`download` copy nothing over a bus. Otherwise the host array is pinned staging
    for `memcpy_*_async` to a `mem_alloc` device buffer, so the copies really are asynchronous.
    """

    def __init__(self, cuda, shape, dtype, zero_copy: bool):
        self.cuda, dtype, shape = cuda, np.dtype(dtype), tuple(int(d) for d in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.mapped = bool(zero_copy) and nbytes > 0
        self._device = None
        if self.mapped:
            self.host = cuda.pagelocked_empty(shape, dtype, mem_flags=cuda.host_alloc_flags.DEVICEMAP)
            self.address = int(self.host.base.get_device_pointer())
        else:
            self.host = cuda.pagelocked_empty(shape, dtype)
            self._device = cuda.mem_alloc(max(nbytes, 1))
            self.address = int(self._device)

    def upload(self, value, stream) -> None:
        """Put `value` where the GPU reads it (before the inference is enqueued)."""
        np.copyto(self.host, value, casting="same_kind")
        if not self.mapped:
            self.cuda.memcpy_htod_async(self._device, self.host, stream)

    def download(self, stream) -> None:
        """Bring the GPU's result into `host` (complete once the stream is synchronised)."""
        if not self.mapped:
            self.cuda.memcpy_dtoh_async(self.host, self._device, stream)

    def free(self) -> None:
        """Release the device buffer and the page-locked host memory (call with the CUDA context current)."""
        if self._device is not None:
            self._device.free()
            self._device = None
        base = getattr(self.host, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()
        self.host = None
