"""The INT8 graph in the form ONNX Runtime's integer kernels take: QAT scales, uint8 activations, BN folded.

ModelOpt's QAT graph (`export.onnx`, form `tensorrt`) is what TensorRT wants: symmetric int8 Q/DQ on
the inputs of every conv and linear, FP32 weights behind their own Q/DQ, BatchNormalization after each
conv. ONNX Runtime on a CPU fuses none of it (its x86 kernels take uint8 activations and int8 weights,
U8S8, and need a Q on a conv's output to make a QLinearConv), so it runs the graph as fake
quantisation, slower than FP32. `to_onnxruntime` rewrites that graph (form `onnxruntime`) with the
onnx library, keeping every scale QAT learned:

1. Weights: Q/DQ of an FP32 initializer becomes a DQ of the int8 initializer it stands for (ONNX
   QuantizeLinear's rounding and saturation, per output channel).
2. BatchNormalization after a conv is folded into it: with per-channel weight scales this is exact
   (the int8 values stay, the scale becomes s x |gamma / sqrt(var + eps)|, a negative factor flips
   the sign of the int8 values), and the conv gets the BN's bias.
3. Activations: symmetric int8 with zero point 0 is uint8 with zero point 128 at the same scale
   (exactly the same numbers). A tensor that cannot be negative (after a Relu, or a MaxPool or
   pooling of one) gets zero point 0 at the same scale instead, so ORT drops the Relu into the Q
   (its ReluQuantFusion needs zero point 0): the same numbers up to the QAT clip at 127 x scale,
   which is no longer applied (uint8 reaches 255 x scale).
4. One quantised copy per tensor: duplicate Q/DQ of the same tensor with the same scale merge (two
   convs reading one tensor), and the float consumers of a tensor that is quantised anyway (the
   residual identity of a ResNet block, a MaxPool's input) read its DQ, so Add and MaxPool see
   quantised inputs. Convs and linears are never redirected: their quantizers say what is int8
   (a layer kept float by `--keep-float` stays float).
5. Data-movement ops (MaxPool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, nearest Resize)
   commute with quantisation: the Q after one is copied before it and after it, so ORT runs them on
   uint8 and fuses the neighbours (`GlobalAveragePool -> Flatten -> Q` becomes
   QLinearGlobalAveragePool).
6. New quantisation points, calibrated: a quantised conv's output that no Q follows (a ResNet
   block's conv before its residual Add, a downsample conv, an FPN lateral, a detector head) and an
   Add of quantised inputs get a uint8 Q/DQ whose range (min/max, asymmetric, as ONNX Runtime's own
   static quantiser calibrates) is measured by running the graph on calibration frames (phantom
   frames at the model's preprocessing unless given). These are the only numbers QAT did not fix.
7. Biases of quantised convs and linears become int32 at scale s_x x s_w (DQ), as ORT fuses them.

ORT then fuses DQ -> Conv -> Q into QLinearConv, DQ + DQ -> Add -> Q into QLinearAdd,
DQ -> GlobalAveragePool -> Q into QLinearGlobalAveragePool and drops the Q/DQ around MaxPool;
`ort_kernels` reads the graph ORT optimised (`SessionOptions.optimized_model_filepath`) to say what
it fused. Parity is checked against the PyTorch QAT model as for the TensorRT form (export.parity).

    >>> graph, report = to_onnxruntime(trt_graph, calib_inputs)        # doctest: +SKIP
    >>> ort_kernels(graph)["QLinearConv"]                               # doctest: +SKIP
    9
"""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TENSORRT, ONNXRUNTIME = "tensorrt", "onnxruntime"
FORMS = (TENSORRT, ONNXRUNTIME)
CALIB_FRAMES = {"classifier": 32, "detection": 8}
CALIB_SEED = 1                 # parity's phantom frames are seed 0: calibration never sees them

_Q, _DQ = "QuantizeLinear", "DequantizeLinear"
_MOVERS = {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Resize"}
_NONNEG_THROUGH = _MOVERS | {"GlobalAveragePool", "AveragePool", "Identity", "Cast", "Concat"}
_WEIGHTED = {"Conv", "Gemm", "MatMul", "ConvTranspose"}
_INT_RANGE = {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255), TensorProto.INT32: (-2**31, 2**31 - 1)}
_NP = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT32: np.int32}
_FUSED = ("QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool", "QLinearAveragePool", "QGemm",
          "QLinearMatMul", "MatMulIntegerToFloat", "ConvInteger", "QLinearConcat", "QLinearSigmoid")


class _Graph:
    """The main graph as a node list and numpy initializers, with the names it must keep."""

    def __init__(self, model: onnx.ModelProto):
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)          # the caller's graph is never changed
        model = self.model
        self.nodes = list(model.graph.node)
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.outputs = {o.name for o in model.graph.output}
        self.inputs = {i.name for i in model.graph.input}
        self.outer = set()                # names a subgraph (If/Loop body) reads from this scope
        for n in self.nodes:
            for a in n.attribute:
                for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    self.outer |= _subgraph_refs(sub)
        self.pinned = self.outputs | self.outer
        self._ids = itertools.count()
        self.index()

    def index(self) -> None:
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)

    def name(self, base: str) -> str:
        return f"ort_int8/{next(self._ids)}/{base.strip('/').replace('/', '.')[-60:]}"

    def const(self, name: str):
        return self.inits.get(name)

    def add_init(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.inits[name] = value
        return name

    def op(self, name: str) -> str | None:
        n = self.producer.get(name)
        return n.op_type if n is not None else None

    def redirect(self, old: str, new: str, only=None) -> None:
        """Consumers of `old` (all, or those `only` accepts) read `new`."""
        for n in list(self.consumers.get(old, [])):
            if only is not None and not only(n):
                continue
            for k, i in enumerate(n.input):
                if i == old:
                    n.input[k] = new

    def qdq_after(self, tensor: str, scale: str, zp: str) -> str:
        """Insert Q -> DQ on `tensor` (nodes appended; call `index` after); returns the DQ output."""
        q, dq = self.name(tensor + "_q"), self.name(tensor + "_dq")
        self.nodes.append(helper.make_node(_Q, [tensor, scale, zp], [q], name=q))
        self.nodes.append(helper.make_node(_DQ, [q, scale, zp], [dq], name=dq))
        return dq

    def finish(self) -> onnx.ModelProto:
        """The model with these nodes (topologically sorted) and only the initializers they use."""
        used = {i for n in self.nodes for i in n.input} | self.outer | self.outputs
        order = _toposort(self.nodes, set(self.inits) | self.inputs)
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        del m.graph.node[:]
        m.graph.node.extend(order)
        del m.graph.initializer[:]
        m.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in self.inits.items() if k in used)
        keep = {o for n in order for o in n.output}
        vi = [v for v in m.graph.value_info if v.name in keep]
        del m.graph.value_info[:]
        m.graph.value_info.extend(vi)
        return m


def _subgraph_refs(g: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads that it does not define (outer-scope tensors), recursively."""
    defined = {i.name for i in g.input} | {i.name for i in g.initializer} | {o for n in g.node for o in n.output}
    refs = set()
    for n in g.node:
        refs |= {i for i in n.input if i and i not in defined}
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                refs |= {r for r in _subgraph_refs(sub) if r not in defined}
    return refs


def _toposort(nodes: list, available: set[str]) -> list:
    ready, out, pending = set(available) | {""}, [], list(nodes)
    producers = {o for n in nodes for o in n.output}
    while pending:
        rest = []
        for n in pending:
            needs = [i for i in n.input if i in producers]
            if all(i in ready for i in needs):
                out.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError("graph has a cycle")  # pragma: no cover - a rewrite bug
        pending = rest
    return out


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int | None, dtype) -> np.ndarray:
    """ONNX QuantizeLinear: round half to even, add the zero point, saturate."""
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    if scale.ndim and axis is not None and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return np.clip(np.rint(x / scale) + zp.astype(np.int64), lo, hi).astype(dtype)


# ---- the passes -------------------------------------------------------------------------------------

def _fold_constants(g: _Graph) -> None:
    """Constant nodes -> initializers; Identity of a constant and float->float Cast -> aliases."""
    floats = _float_tensors(g.model)
    keep = []
    alias = {}
    for n in g.nodes:
        if n.op_type == "Constant" and _attr(n, "value") is not None and n.output[0] not in g.outer:
            g.inits[n.output[0]] = numpy_helper.to_array(_attr(n, "value"))
            continue
        src = alias.get(n.input[0], n.input[0]) if n.input else None
        if n.op_type == "Identity" and src in g.inits and n.output[0] not in g.pinned:
            alias[n.output[0]] = src
            continue
        if (n.op_type == "Cast" and _attr(n, "to") == TensorProto.FLOAT and src in floats
                and n.output[0] not in g.pinned):
            alias[n.output[0]] = src
            continue
        keep.append(n)
    for n in keep:
        for k, i in enumerate(n.input):
            while i in alias:
                i = alias[i]
            n.input[k] = i
    g.nodes = keep
    g.index()


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:          # inference is only a hint here
        inferred = model
    g = inferred.graph
    return {v.name for v in [*g.value_info, *g.input, *g.output]
            if v.type.tensor_type.elem_type == TensorProto.FLOAT}


def _weights(g: _Graph) -> int:
    """DQ(Q(float initializer)) -> DQ(int8 initializer). Returns how many."""
    done, drop = 0, set()
    for dq in [n for n in g.nodes if n.op_type == _DQ]:
        q = g.producer.get(dq.input[0])
        if q is None or q.op_type != _Q:
            continue
        w, scale, zp = (g.const(q.input[i]) if len(q.input) > i else None for i in range(3))
        if w is None or scale is None or zp is None or w.dtype != np.float32:
            continue
        axis = _attr(q, "axis", 1)
        name = g.add_init(q.input[0] + "_int8", _quantize(w, scale, zp, axis, zp.dtype.type))
        dq.input[0] = name
        drop.add(id(q))
        done += 1
    g.nodes = [n for n in g.nodes if id(n) not in drop or any(c.op_type != _DQ for c in g.consumers.get(n.output[0], []))]
    g.index()
    return done


def _weight_dq(g: _Graph, name: str):
    """(DQ node, int8 values, per-channel scale, axis) when `name` is a DQ of an int8 initializer, symmetric."""
    dq = g.producer.get(name)
    if dq is None or dq.op_type != _DQ:
        return None
    q, s = g.const(dq.input[0]), g.const(dq.input[1])
    zp = g.const(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else np.zeros((), np.int8)
    if q is None or s is None or q.dtype != np.int8 or np.any(zp != 0):
        return None
    return dq, q, s, _attr(dq, "axis", 1)


def _fold_bn(g: _Graph) -> int:
    """Conv -> BatchNormalization into one Conv (int8 weights: exact rescale per output channel)."""
    folded, drop = 0, set()
    for bn in [n for n in g.nodes if n.op_type == "BatchNormalization"]:
        conv = g.producer.get(bn.input[0])
        if (conv is None or conv.op_type != "Conv" or len(g.consumers.get(conv.output[0], [])) != 1
                or conv.output[0] in g.pinned or len(bn.output) > 1 and any(bn.output[1:])):
            continue
        params = [g.const(i) for i in bn.input[1:5]]
        if any(p is None for p in params):
            continue
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        k = gamma / np.sqrt(var + _attr(bn, "epsilon", 1e-5))
        bias = g.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros_like(k)
        if bias is None:
            continue
        wname = conv.input[1]
        w = g.const(wname)
        if w is not None:                                    # a float conv (kept float): fold into FP32
            conv.input[1] = g.add_init(wname + "_bn", (w * k.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32))
        else:
            wq = _weight_dq(g, wname)
            if wq is None or len(g.consumers.get(wname, [])) != 1:
                continue
            dq, q, s, axis = wq
            if s.size > 1 and axis % q.ndim != 0:
                continue
            s = np.broadcast_to(s.astype(np.float64), k.shape)
            sign = np.where(k < 0, -1, 1).reshape(-1, *[1] * (q.ndim - 1))
            q2 = np.clip(q.astype(np.int16) * sign, -128, 127).astype(np.int8)
            s2 = s * np.abs(k)
            s2 = np.where(s2 > 0, s2, s).astype(np.float32)     # a zero BN scale: weights zeroed below
            q2[k == 0] = 0
            dq.input[0] = g.add_init(wname + "_bn_int8", q2)
            dq.input[1] = g.add_init(wname + "_bn_scale", s2)
            dq.input[2] = g.add_init(wname + "_bn_zp", np.zeros(k.shape, np.int8))
            _set_attr(dq, "axis", 0)
        b = (beta + (bias.astype(np.float64) - mean) * k).astype(np.float32)
        del conv.input[2:]
        conv.input.append(g.add_init(wname + "_bn_bias", b))
        conv.output[0] = bn.output[0]
        drop.add(id(bn))
        folded += 1
    g.nodes = [n for n in g.nodes if id(n) not in drop]
    g.index()
    return folded


def _set_attr(node, name: str, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _nonneg(g: _Graph, name: str, seen=None) -> bool:
    """True when `name` cannot be negative: a Relu's output, or pooled/moved/quantised copies of one."""
    seen = seen if seen is not None else set()
    if name in seen:
        return False
    seen.add(name)
    n = g.producer.get(name)
    if n is None:
        return False
    if n.op_type == "Relu":
        return True
    if n.op_type in _NONNEG_THROUGH:
        ins = n.input if n.op_type == "Concat" else n.input[:1]
        return all(_nonneg(g, i, seen) for i in ins)
    if n.op_type == _DQ:
        zp = g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is not None and zp.dtype == np.uint8 and np.all(zp == 0):
            return True
        q = g.producer.get(n.input[0])
        return q is not None and q.op_type == _Q and _nonneg(g, q.input[0], seen)
    return False


def _activations_uint8(g: _Graph) -> Counter:
    """Symmetric int8 activation Q/DQ -> uint8 at the same scale: zero point 128, or 0 when non-negative."""
    made = Counter()
    for q in [n for n in g.nodes if n.op_type == _Q]:
        zp = g.const(q.input[2]) if len(q.input) > 2 and q.input[2] else None
        if q.input[0] in g.inits or zp is None or zp.dtype != np.int8 or zp.size != 1 or zp.item() != 0:
            continue
        pos = _nonneg(g, q.input[0])
        name = g.add_init(q.input[2] + ("_u8_0" if pos else "_u8_128"), np.array(0 if pos else 128, np.uint8))
        for n in [q, *(c for c in g.consumers.get(q.output[0], []) if c.op_type == _DQ)]:
            n.input[2] = name
        made["zero_point_0" if pos else "zero_point_128"] += 1
    g.index()
    return made


def _qparams(g: _Graph, q) -> tuple | None:
    s = g.const(q.input[1])
    zp = g.const(q.input[2]) if len(q.input) > 2 and q.input[2] else None
    if s is None or zp is None or s.size != 1:
        return None
    return float(s.reshape(())), int(zp.reshape(())), str(zp.dtype)


def _share_quantized(g: _Graph) -> int:
    """One Q/DQ per (tensor, scale, zero point); float consumers of a quantised tensor read its DQ."""
    merged, drop = 0, set()
    for tensor in list(g.consumers):
        qs = [n for n in g.consumers.get(tensor, []) if n.op_type == _Q and n.input[0] == tensor]
        if not qs or tensor in g.inits:
            continue
        first_dq = {}
        for q in qs:
            p = _qparams(g, q)
            dqs = [c for c in g.consumers.get(q.output[0], []) if c.op_type == _DQ]
            if p is None or not dqs or q.output[0] in g.pinned:
                continue
            keep = first_dq.setdefault(p, dqs[0])
            for dq in dqs:
                if dq is not keep and dq.output[0] not in g.pinned:
                    g.redirect(dq.output[0], keep.output[0])
                    drop.add(id(dq))
                    merged += 1
            if keep not in dqs:
                drop.add(id(q))
        if first_dq and tensor not in g.pinned:
            dq = next(iter(first_dq.values()))
            g.redirect(tensor, dq.output[0], only=lambda n: n.op_type not in _WEIGHTED | {_Q})
    g.nodes = [n for n in g.nodes if id(n) not in drop]
    g.index()
    return merged


def _is_mover(n) -> bool:
    return n.op_type in _MOVERS and (n.op_type != "Resize" or _attr(n, "mode", b"nearest") in (b"nearest", "nearest"))


def _commute(g: _Graph) -> int:
    """Q after a data-movement op: the same Q/DQ also before it (backwards), and after one fed by a DQ (forwards)."""
    moved = 0
    for q in [n for n in g.nodes if n.op_type == _Q]:
        mover = g.producer.get(q.input[0])
        if mover is None or not _is_mover(mover) or _qparams(g, q) is None:
            continue
        src = mover.input[0]
        if g.op(src) in (_DQ, None) or src in g.pinned or len(g.consumers.get(src, [])) != 1:
            continue
        mover.input[0] = g.qdq_after(src, q.input[1], q.input[2])
        moved += 1
    g.index()
    for mover in [n for n in g.nodes if _is_mover(n)]:
        dq = g.producer.get(mover.input[0])
        out = mover.output[0]
        if dq is None or dq.op_type != _DQ or out in g.pinned or _followed_by_q(g, out) or len(dq.input) < 3:
            continue
        if g.const(dq.input[1]) is None or g.const(dq.input[1]).size != 1:
            continue
        tail = g.qdq_after(out, dq.input[1], dq.input[2])
        g.index()
        g.redirect(out, tail, only=lambda n: n.op_type != _Q)
        moved += 1
    g.index()
    return moved


def _followed_by_q(g: _Graph, name: str) -> bool:
    """`name` feeds only Q nodes, or one Relu that feeds only Q nodes."""
    cons = g.consumers.get(name, [])
    if cons and all(c.op_type == _Q for c in cons):
        return True
    if len(cons) == 1 and cons[0].op_type == "Relu" and cons[0].output[0] not in g.pinned:
        after = g.consumers.get(cons[0].output[0], [])
        return bool(after) and all(c.op_type == _Q for c in after)
    return False


def _feeds_integer_op(g: _Graph, name: str, seen=None) -> bool:
    """True when `name` (through data-movement ops) reaches an Add or a Q: quantising it lets ORT keep
    the path in integers. A head's output (RPN logits and box deltas) reaches neither."""
    seen = seen if seen is not None else set()
    for c in g.consumers.get(name, []):
        if id(c) in seen:
            continue
        seen.add(id(c))
        if c.op_type in ("Add", _Q) or _is_mover(c) and _feeds_integer_op(g, c.output[0], seen):
            return True
    return False


def _pending_points(g: _Graph, heads: bool = False) -> list[str]:
    """Outputs of quantised convs and of Adds of quantised inputs that no Q follows yet, in graph
    order; a conv whose output leads to no integer op (a head) only with `heads`."""
    pending: list[str] = []
    quantised = {o for n in g.nodes if n.op_type == _DQ for o in n.output}
    for n in _toposort(g.nodes, set(g.inits) | g.inputs):
        out = n.output[0] if n.output else None
        if not out or _followed_by_q(g, out):
            continue
        conv = (n.op_type == "Conv" and n.input[0] in quantised and _weight_dq(g, n.input[1]) is not None
                and (heads or _feeds_integer_op(g, out)))
        add = n.op_type == "Add" and len(n.input) == 2 and all(i in quantised for i in n.input)
        if conv or add:
            pending.append(out)
            quantised.add(out)
    return pending


def _calibrate(g: _Graph, names: list[str], inputs: list[np.ndarray], input_name: str) -> dict:
    """{tensor: (min, max)} over `inputs`, by running the graph as it is with `names` as extra outputs."""
    import onnxruntime as ort

    m = g.finish()
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n not in have)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    for x in inputs:
        for n, v in zip(names, sess.run(names, {input_name: x[None] if x.ndim == 3 else x})):
            if v.size:
                lo[n], hi[n] = min(lo[n], float(v.min())), max(hi[n], float(v.max()))
    return {n: (lo[n], hi[n]) for n in names}


def _uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric uint8 (scale, zero point) covering [min(lo, 0), max(hi, 0)], as ORT's MinMax calibrator."""
    if not np.isfinite(lo) or not np.isfinite(hi):
        lo, hi = 0.0, 1.0
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    return float(scale), int(np.clip(np.rint(-lo / scale), 0, 255))


def _insert_points(g: _Graph, ranges: dict) -> None:
    for name, (lo, hi) in ranges.items():
        scale, zp = _uint8_params(lo, hi)
        s = g.add_init(name + "_scale", np.array(scale, np.float32))
        z = g.add_init(name + "_zp", np.array(zp, np.uint8))
        g.index()
        consumers = list(g.consumers.get(name, []))
        dq = g.qdq_after(name, s, z)
        for c in consumers:
            for k, i in enumerate(c.input):
                if i == name:
                    c.input[k] = dq
    g.index()


def _bias_int32(g: _Graph) -> int:
    """Float bias of a quantised conv / linear -> DQ(int32 at s_x x s_w), as ORT's QLinearConv takes it."""
    done = 0
    for n in [n for n in g.nodes if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2]]:
        b = g.const(n.input[2])
        x = g.producer.get(n.input[0])
        wq = _weight_dq(g, n.input[1])
        if b is None or x is None or x.op_type != _DQ or wq is None or g.const(x.input[1]) is None:
            continue
        _, q, sw, axis = wq
        out_axis = 0 if n.op_type == "Conv" or _attr(n, "transB", 0) else 1
        if sw.size > 1 and axis % q.ndim != out_axis:
            continue
        sx = float(g.const(x.input[1]).reshape(()))
        scale = (sx * np.broadcast_to(sw.astype(np.float64), b.shape)).astype(np.float32)
        if np.any(scale <= 0) or b.ndim != 1:
            continue
        qb = np.clip(np.rint(b / scale.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32)
        qname = g.add_init(n.input[2] + "_int32", qb)
        sname = g.add_init(n.input[2] + "_scale", scale)
        zname = g.add_init(n.input[2] + "_zp", np.zeros(b.shape, np.int32))
        out = g.name(n.input[2] + "_dq")
        g.nodes.append(helper.make_node(_DQ, [qname, sname, zname], [out], name=out, axis=0))
        n.input[2] = out
        done += 1
    g.index()
    return done


def calibration_frames(model, n: int | None = None) -> list[np.ndarray]:
    """Phantom frames at `model`'s preprocessing (seed `CALIB_SEED`) that calibrate the new points."""
    from edge.core.tasks import DETECTION
    from export.parity import phantom_set

    cfg = model.edge_config
    n = n or CALIB_FRAMES["detection" if cfg.task.kind == DETECTION else "classifier"]
    return phantom_set(cfg.preprocess, n, seed=CALIB_SEED)[0]


def to_onnxruntime(graph: onnx.ModelProto, calib_inputs: list[np.ndarray] | None = None,
                   input_name: str = "input", new_points: bool = True,
                   heads: bool = False) -> tuple[onnx.ModelProto, dict]:
    """The ORT form of a ModelOpt QAT graph (module docstring) and what the rewrite did.

    `calib_inputs` (CxHxW or NxCxHxW float32 arrays) calibrate the new quantisation points (step 6);
    without them, or with `new_points=False`, none are added (convs before a residual Add then run
    in float).
    """
    g = _Graph(graph)
    _fold_constants(g)
    report = {"form": ONNXRUNTIME, "weights_int8": _weights(g), "batchnorm_folded": _fold_bn(g)}
    report["activations_uint8"] = dict(_activations_uint8(g))
    report["merged_dq"] = _share_quantized(g)
    report["commuted"] = _commute(g)
    pending = _pending_points(g, heads) if new_points and calib_inputs else []
    if pending:
        _insert_points(g, _calibrate(g, pending, calib_inputs, input_name))
    report["calibrated_points"] = len(pending)
    report["calibration_frames"] = len(calib_inputs) if pending else 0
    report["bias_int32"] = _bias_int32(g)
    model = g.finish()
    onnx.checker.check_model(model)
    return model, report


def ort_kernels(model, threads: int = 1) -> dict:
    """Op counts of the graph ONNX Runtime (CPU, all optimisations) actually runs: QLinearConv and
    friends when it fused the Q/DQ, `Conv` for convs left in float."""
    import os
    import tempfile

    import onnxruntime as ort

    from pathlib import Path

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else Path(model).read_bytes()
    with tempfile.TemporaryDirectory(prefix="edgekit-ort-") as tmp:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        opts.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        ops = Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)
    return dict(sorted(ops.items()))


def kernel_summary(ops: dict) -> dict:
    """{fused: n integer kernels, float_conv: n convs left in float, qdq: Q/DQ left} from `ort_kernels`."""
    return {"fused": {k: ops[k] for k in _FUSED if ops.get(k)}, "float_conv": ops.get("Conv", 0) + ops.get("FusedConv", 0),
            "float_gemm": ops.get("Gemm", 0) + ops.get("MatMul", 0) + ops.get("FusedGemm", 0),
            "quantize": ops.get(_Q, 0), "dequantize": ops.get(_DQ, 0)}
