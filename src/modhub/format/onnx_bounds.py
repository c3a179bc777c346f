"""Resource bounds of a ``model.onnx``, checked before onnxruntime sees it.

onnxruntime folds every node whose inputs are all constants while it builds a
session: a ``ConstantOfShape`` of a constant 40,000 x 40,000 shape allocates
6.4 GB at ``hub.load``. Here the constant part of the graph is evaluated
symbolically: shapes from initializers, ``Constant`` nodes and statically
shaped inputs; small integer values (shapes, axes, sizes) with numpy; each
foldable node's output size from its inputs (``ConstantOfShape``, ``Expand``,
``Tile``, ``Range``, ``Resize``, ``Pad``, ``OneHot``, ``Gather``, ``MatMul``,
``Einsum``, ``ConvTranspose``, broadcasting, ...). A graph whose foldable
nodes would materialise more than :meth:`OnnxLimits.bound` bytes (in total or
at once), or a foldable node whose size cannot be bounded (its shape input is
a constant modhub cannot read, or an op such as ``STFT`` fed only constants),
is refused with an :class:`~modhub.errors.UnsafeModuleError`. Every tensor must
also hold exactly the data its dims declare, and a sparse tensor counts at its
dense size (onnxruntime densifies it). A size that depends on a graph input is
not known before a call: the check bounds loading, not calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from modhub.errors import UnsafeModuleError

__all__ = ["DEFAULT_MATERIALISE_BYTES", "OnnxLimits", "check_bounds", "check_tensor_data", "tensor_bytes"]

# The floor of the bound (MODHUB_ONNX_MAX_MATERIALISE_BYTES).
DEFAULT_MATERIALISE_BYTES = 64 << 20
# Values of at most this many elements are evaluated (shapes, axes, sizes); larger constants keep a shape.
_SMALL = 4096
# Bytes per element by TensorProto.DataType (4-bit types are counted as one byte: an upper bound).
_ITEM = {
    1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16,
    16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1, 24: 1, 25: 1, 26: 1,
}  # fmt: skip
_NUMPY = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
    9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}  # fmt: skip


@dataclass(frozen=True)
class OnnxLimits:
    """What a graph may cost before it runs (docs/security.md; MODHUB_ONNX_MAX_MATERIALISE_BYTES)."""

    # Bytes foldable nodes may always materialise (the floor of the bound).
    materialise_bytes: int = DEFAULT_MATERIALISE_BYTES
    # ... and up to this many times the graph's weights,
    weight_factor: int = 2
    # ... but never more than this (unless materialise_bytes is higher).
    absolute_bytes: int = 4 << 30
    # Nodes in all graphs and subgraphs together.
    max_nodes: int = 100_000
    # If/Loop/Scan bodies inside bodies.
    max_depth: int = 4

    def bound(self, weight_bytes: int) -> int:
        return max(self.materialise_bytes, min(self.weight_factor * weight_bytes, self.absolute_bytes))


class _Unbounded(Exception):
    """A foldable node whose size cannot be known from what the check can read."""


@dataclass
class _Const:
    """A constant tensor: its shape (None: unknown), bytes per element, and its value when small."""

    shape: tuple[int, ...] | None
    item: int
    known: np.ndarray | None = None
    # The TensorProto it comes from, decoded only when a value is needed.
    source: Any = None

    @property
    def value(self) -> np.ndarray | None:
        if self.known is None and self.source is not None:
            self.known, self.source = _value(self.source), None
        return self.known

    @value.setter
    def value(self, value: np.ndarray | None) -> None:
        self.known, self.source = value, None

    @property
    def nbytes(self) -> int | None:
        return None if self.shape is None else math.prod(self.shape) * self.item


def tensor_bytes(data_type: int, dims: Sequence[int]) -> int:
    """Upper bound of the bytes a tensor of these dims takes."""
    return math.prod(dims) * _ITEM.get(data_type, 8)


def _stored(tensor: Any) -> int | None:
    """How many elements a TensorProto's inline data holds (None: no inline data)."""
    kind = tensor.data_type
    if tensor.raw_data:
        item = _ITEM.get(kind, 8)
        if kind in (21, 22, 23, 25, 26):  # 4- and 2-bit types: packed
            return len(tensor.raw_data) * (2 if kind in (21, 22, 23) else 4)
        return len(tensor.raw_data) // item if len(tensor.raw_data) % item == 0 else -1
    for field in ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data"):
        count = len(getattr(tensor, field))
        if count:
            return count // 2 if kind in (14, 15) else count
    return None


def check_tensor_data(tensor: Any, where: str, path: Path) -> None:
    """An inline tensor holds exactly what its dims declare (dims >= 0)."""
    dims = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in dims):
        raise _refused(path, f"tensor {tensor.name[:200]!r} in {where} has negative dims {list(dims)[:8]}")
    declared = math.prod(dims)
    stored = _stored(tensor) or 0
    packed = tensor.data_type in (21, 22, 23, 25, 26) and tensor.raw_data
    if (stored < declared or stored > declared + 3) if packed else stored != declared:
        raise _refused(
            path,
            f"tensor {tensor.name[:200]!r} in {where} declares {declared} elements "
            f"(dims {list(dims)[:8]}) but holds {max(stored, 0)}",
        )


def _value(tensor: Any) -> np.ndarray | None:
    dtype = _NUMPY.get(tensor.data_type)
    dims = tuple(int(d) for d in tensor.dims)
    if dtype is None or math.prod(dims) > _SMALL or tensor.data_location == 1:
        return None
    if tensor.raw_data:
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(dims)
    for field in ("int64_data", "int32_data", "float_data", "double_data", "uint64_data"):
        values = getattr(tensor, field)
        if len(values):
            array = np.array(values)
            if tensor.data_type == 10 and field == "int32_data":  # float16 stored as bits
                array = array.astype(np.uint16).view(np.float16)
            return array.astype(dtype).reshape(dims)
    return None


def _tensor_const(tensor: Any) -> _Const:
    return _Const(tuple(tensor.dims), _ITEM.get(tensor.data_type, 8), source=tensor)


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: a for a in node.attribute}


def _ints(attrs: dict[str, Any], name: str, default: Sequence[int] = ()) -> list[int]:
    a = attrs.get(name)
    return [int(v) for v in a.ints] if a is not None and len(a.ints) else list(default)


def _int(attrs: dict[str, Any], name: str, default: int) -> int:
    a = attrs.get(name)
    return int(a.i) if a is not None else default


def _need(c: _Const | None, what: str) -> np.ndarray:
    if c is None or c.value is None:
        raise _Unbounded(f"its {what} is a constant whose value modhub cannot read before loading")
    return c.value


def _shape(c: _Const | None, what: str = "input") -> tuple[int, ...]:
    if c is None or c.shape is None:
        raise _Unbounded(f"the shape of its {what} is unknown")
    return c.shape


def _broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        out.append(max(dims) if dims else 1)
    return tuple(out)


def _as_dims(value: np.ndarray) -> tuple[int, ...]:
    dims = tuple(int(v) for v in np.asarray(value).reshape(-1))
    if any(d < 0 for d in dims):
        raise _Unbounded(f"it asks for negative sizes {list(dims)[:8]}")
    return dims


# Output shape rules for ops that can make more than their inputs hold: (node attrs, inputs) -> shape.
ShapeRule = Callable[[dict[str, Any], list[_Const | None]], tuple[int, ...]]


def _constant_of_shape(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    return _as_dims(_need(i[0], "shape"))


def _expand(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    return _broadcast(_shape(i[0]), _as_dims(_need(i[1], "shape")))


def _tile(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    repeats = _as_dims(_need(i[1], "repeats"))
    return tuple(d * r for d, r in zip(_shape(i[0]), repeats, strict=False))


def _range(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    start, limit, delta = (float(_need(c, "bounds").reshape(-1)[0]) for c in i[:3])
    if delta == 0 or not all(map(math.isfinite, (start, limit, delta))):
        raise _Unbounded("its range is infinite")
    return (max(math.ceil((limit - start) / delta), 0),)


def _resize(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    x = _shape(i[0])
    sizes = i[3] if len(i) > 3 else None
    if sizes is not None and sizes.shape != (0,):
        out = _as_dims(_need(sizes, "sizes"))
        axes = _ints(a, "axes", range(len(x)))
        if len(out) == len(axes) and len(axes) != len(x):
            full = list(x)
            for ax, d in zip(axes, out, strict=True):
                full[ax] = d
            return tuple(full)
        return out
    scales = np.asarray(_need(i[2] if len(i) > 2 else None, "scales"), dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise _Unbounded("its scales are not finite")
    axes = _ints(a, "axes", range(len(x)))
    full = list(x)
    for ax, s in zip(axes, scales, strict=False):
        full[ax] = math.floor(full[ax] * float(s))
    return tuple(full)


def _pad(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    x = _shape(i[0])
    pads = [int(v) for v in (_need(i[1], "pads").reshape(-1) if len(i) > 1 else _ints(a, "pads"))]
    axes = list(range(len(x)))
    if len(i) > 3 and i[3] is not None:
        axes = [int(v) % max(len(x), 1) for v in _need(i[3], "axes").reshape(-1)]
    half = len(pads) // 2
    out = list(x)
    for k, ax in enumerate(axes[:half]):
        out[ax] = max(out[ax] + pads[k] + pads[k + half], 0)
    return tuple(out)


def _one_hot(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    depth = int(_need(i[1], "depth").reshape(-1)[0])
    if depth < 0:
        raise _Unbounded("its depth is negative")
    shape = list(_shape(i[0]))
    axis = _int(a, "axis", -1)
    shape.insert(axis % (len(shape) + 1), depth)
    return tuple(shape)


def _gather(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    data, idx = _shape(i[0]), _shape(i[1], "indices")
    axis = _int(a, "axis", 0) % max(len(data), 1)
    return data[:axis] + idx + data[axis + 1 :]


def _matmul(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    x, y = _shape(i[0]), _shape(i[1])
    if len(x) < 2 or len(y) < 2:
        return _broadcast(x, y)
    return (*_broadcast(x[:-2], y[:-2]), x[-2], y[-1])


def _gemm(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    x, y = _shape(i[0]), _shape(i[1])
    m = x[1] if _int(a, "transA", 0) else x[0]
    n = y[0] if _int(a, "transB", 0) else y[1]
    return (m, n)


def _concat(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    shapes = [_shape(c) for c in i if c is not None]
    out = list(shapes[0])
    axis = _int(a, "axis", 0) % max(len(out), 1)
    out[axis] = sum(s[axis] for s in shapes if len(s) > axis)
    return tuple(out)


def _einsum(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    equation = a["equation"].s.decode("ascii", "replace").replace(" ", "") if "equation" in a else ""
    if "..." in equation or "->" not in equation:
        raise _Unbounded("its equation is not explicit")
    lhs, rhs = equation.split("->")
    sizes: dict[str, int] = {}
    for term, c in zip(lhs.split(","), i, strict=False):
        for letter, dim in zip(term, _shape(c), strict=False):
            sizes[letter] = max(sizes.get(letter, 1), dim)
    return tuple(sizes.get(letter, 1) for letter in rhs)


def _conv_transpose(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    x, w = _shape(i[0]), _shape(i[1], "weight")
    spatial = len(x) - 2
    explicit = _ints(a, "output_shape")
    if explicit:
        return (x[0], w[1] * _int(a, "group", 1), *explicit[-spatial:])
    strides = _ints(a, "strides", [1] * spatial)
    dil = _ints(a, "dilations", [1] * spatial)
    outpad = _ints(a, "output_padding", [0] * spatial)
    pads = _ints(a, "pads", [0] * 2 * spatial)
    kernel = w[2:]
    out = [
        strides[k] * (x[2 + k] - 1) + outpad[k] + (kernel[k] - 1) * dil[k] + 1 - pads[k] - pads[k + spatial]
        for k in range(spatial)
    ]
    return (x[0], w[1] * _int(a, "group", 1), *(max(d, 0) for d in out))


def _conv(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    x, w = _shape(i[0]), _shape(i[1], "weight")
    pads = _ints(a, "pads", [0] * 2 * (len(x) - 2))
    spatial = [x[2 + k] + pads[k] + pads[k + len(x) - 2] for k in range(len(x) - 2)]
    return (x[0], w[0], *spatial)


def _elementwise(a: dict[str, Any], i: list[_Const | None]) -> tuple[int, ...]:
    return _broadcast(*(_shape(c) for c in i if c is not None))


_GROWING: dict[str, ShapeRule] = {
    "ConstantOfShape": _constant_of_shape,
    "Expand": _expand,
    "Tile": _tile,
    "Range": _range,
    "Resize": _resize,
    "Pad": _pad,
    "OneHot": _one_hot,
    "Gather": _gather,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "QLinearMatMul": _matmul,
    "Gemm": _gemm,
    "Concat": _concat,
    "Einsum": _einsum,
    "ConvTranspose": _conv_transpose,
    "Conv": _conv,
    "ConvInteger": _conv,
}
_BROADCASTING = """
    Add Sub Mul Div Pow Mod Min Max Sum Mean Where Equal Greater GreaterOrEqual Less LessOrEqual And
    Or Xor BitShift BitwiseAnd BitwiseOr BitwiseXor PRelu
"""
_GROWING.update(dict.fromkeys(_BROADCASTING.split(), _elementwise))

# Ops whose outputs hold no more elements than their largest input (up to a small factor: pads,
# NonZero's index rows): folding them costs at most what their inputs cost.
_NOT_GROWING = frozenset(
    """
    Identity Cast CastLike Neg Abs Sign Reciprocal Sqrt Exp Log Erf Floor Ceil Round Sin Cos Tan Asin
    Acos Atan Sinh Cosh Asinh Acosh Atanh IsNaN IsInf Not BitwiseNot Relu LeakyRelu Elu Selu Celu Gelu
    Sigmoid HardSigmoid HardSwish Mish Softplus Softsign Tanh Softmax LogSoftmax Clip ThresholdedRelu
    Shrink Hardmax Dropout Reshape Flatten Squeeze Unsqueeze Transpose Split Slice GatherElements
    GatherND ScatterElements ScatterND DepthToSpace SpaceToDepth Trilu EyeLike Compress
    ReverseSequence CumSum NonZero TopK ArgMax ArgMin ReduceSum ReduceMean ReduceMax ReduceMin
    ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceSumSquare QuantizeLinear
    DequantizeLinear DynamicQuantizeLinear BatchNormalization InstanceNormalization LayerNormalization
    GroupNormalization RMSNormalization LpNormalization LRN MeanVarianceNormalization AveragePool
    MaxPool GlobalAveragePool GlobalMaxPool NonMaxSuppression Shape Size
    """.split()  # noqa: SIM905
)
_NO_GROWTH_FACTOR = 4
# Nodes onnxruntime never folds (their bodies are graphs of their own; checked as such).
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})
# Ops that keep an input's shape, through which a static shape is known.
_SAME_SHAPE = frozenset(
    "Identity Cast Relu Sigmoid Tanh Neg Abs Exp Log Sqrt Floor Ceil Round Clip Softmax Dropout".split()  # noqa: SIM905
)


def _evaluate(op: str, a: dict[str, Any], values: list[np.ndarray | None]) -> np.ndarray | None:
    """The value of a small node (shape arithmetic), or None if modhub does not evaluate it."""
    v: list[Any] = values
    if any(x is None for x in v[:1]):
        return None
    with np.errstate(all="ignore"):
        if op in ("Identity", "Floor", "Ceil", "Neg", "Abs", "Sqrt"):
            unary: dict[str, Callable[..., Any]] = {
                "Identity": np.asarray, "Floor": np.floor, "Ceil": np.ceil, "Neg": np.negative,
                "Abs": np.abs, "Sqrt": np.sqrt,
            }  # fmt: skip
            fn = unary[op]
            return np.asarray(fn(v[0]))
        if op == "Cast":
            to = _NUMPY.get(_int(a, "to", 1))
            return None if to is None else np.asarray(v[0]).astype(to)
        if op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Equal", "Pow", "Mod") and len(v) >= 2:
            if v[1] is None:
                return None
            x, y = v[0], v[1]
            if op == "Div" and np.issubdtype(np.asarray(x).dtype, np.integer):
                return np.asarray(np.trunc(np.divide(x, np.where(y == 0, 1, y))).astype(np.asarray(x).dtype))
            fns: dict[str, Callable[..., Any]] = {
                "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                "Max": np.maximum, "Min": np.minimum, "Equal": np.equal, "Pow": np.power, "Mod": np.mod,
            }  # fmt: skip
            return np.asarray(fns[op](x, y))
        if op == "Concat" and all(x is not None for x in v):
            return np.concatenate([np.atleast_1d(x) for x in v if x is not None], axis=_int(a, "axis", 0))
        if op == "Gather" and len(v) >= 2 and v[1] is not None:
            return np.take(v[0], v[1].astype(np.int64), axis=_int(a, "axis", 0))
        if op == "Unsqueeze":
            axes = [int(x) for x in v[1].reshape(-1)] if len(v) > 1 and v[1] is not None else _ints(a, "axes")
            out = v[0]
            for ax in sorted(x % (out.ndim + len(axes)) for x in axes):
                out = np.expand_dims(out, ax)
            return np.asarray(out)
        if op == "Squeeze":
            return np.asarray(v[0]).squeeze()
        if op == "Reshape" and len(v) >= 2 and v[1] is not None:
            dims = [int(x) for x in v[1].reshape(-1)]
            dims = [v[0].shape[k] if d == 0 and k < v[0].ndim else d for k, d in enumerate(dims)]
            return np.asarray(v[0]).reshape(dims)
        if op == "Slice" and len(v) >= 3 and v[1] is not None and v[2] is not None:
            out = v[0]
            slice_axes = [int(x) for x in v[3].reshape(-1)] if len(v) > 3 and v[3] is not None else None
            steps = [int(x) for x in v[4].reshape(-1)] if len(v) > 4 and v[4] is not None else None
            index = [slice(None)] * out.ndim
            for k, (s, e) in enumerate(zip(v[1].reshape(-1), v[2].reshape(-1), strict=False)):
                ax = slice_axes[k] if slice_axes else k
                st = steps[k] if steps else 1
                clip = lambda x: int(max(min(int(x), 1 << 62), -(1 << 62)))  # noqa: E731
                index[ax] = slice(clip(s), clip(e), st)
            return np.asarray(out[tuple(index)])
        if op == "ReduceProd":
            return np.asarray(np.prod(v[0], keepdims=bool(_int(a, "keepdims", 1))))
        if op == "Where" and len(v) == 3 and all(x is not None for x in v):
            return np.asarray(np.where(*v))
    return None


def check_bounds(model: Any, weight_bytes: int, limits: OnnxLimits, *, path: Path) -> None:
    """Refuse ``model`` (a parsed ModelProto subset) if folding its constants could exceed the bound."""
    bound = limits.bound(weight_bytes)
    total = [0]

    def count(nbytes: int, what: str) -> None:
        total[0] += nbytes
        if nbytes > bound or total[0] > bound:
            raise _refused(
                path,
                f"{what} would make {nbytes} bytes from constants while loading "
                f"({total[0]} in all), more than the {bound} bytes this graph may "
                f"(max(2 x its {weight_bytes} bytes of weights, {limits.materialise_bytes}))",
                setting=True,
            )

    def graph(g: Any, outer: dict[str, _Const], where: str) -> None:
        env = dict(outer)
        static: dict[str, tuple[int, ...]] = {}
        for t in g.initializer:
            env[t.name] = _tensor_const(t)
        for s in g.sparse_initializer:
            dense = tuple(int(d) for d in s.dims)
            count(tensor_bytes(s.values.data_type, dense), f"sparse initializer {s.values.name[:100]!r}")
            env[s.values.name] = _Const(dense, _ITEM.get(s.values.data_type, 8))
        index: dict[str, Any] = {}

        def static_shape(name: str) -> tuple[int, ...] | None:
            """The static shape a graph input, output or value_info declares for ``name`` (or an
            op that keeps its input's shape passes on)."""
            if not index:
                index.update((i.name, i) for i in (*g.input, *g.value_info, *g.output))
                index[""] = None
            for _ in range(64):
                if name in static:
                    return static[name]
                info = index.get(name)
                if info is not None and info.type.tensor_type.HasField("shape"):
                    dims = info.type.tensor_type.shape.dim
                    if all(d.HasField("dim_value") for d in dims):
                        return tuple(int(d.dim_value) for d in dims)
                if name not in same:
                    return None
                name = same[name]
            return None

        same: dict[str, str] = {}
        # Nodes are in order in a graph as exporters write it; a second pass catches a node
        # whose constant inputs come later in the file.
        waiting: list[tuple[Any, list[str]]] = []
        for n in g.node:
            missing = node(n, env, (static_shape, same), where)
            if missing:
                waiting.append((n, missing))
        for n, missing in waiting:
            if all(x in env for x in missing):
                node(n, env, (static_shape, same), where)

    def node(n: Any, env: dict[str, _Const], shapes: Any, where: str) -> list[str]:
        """Fold ``n`` if it is constant; the inputs that are not constants (yet) if it is not."""
        op = n.op_type
        names = list(n.input)
        missing = [x for x in names if x and x not in env]
        if missing and op not in ("Shape", "Size") and op not in _SAME_SHAPE and op not in _CONTROL_FLOW:
            return missing
        a = _attrs(n)
        label = f"node {n.name[:100]!r} ({op}) in {where}"
        if op in _CONTROL_FLOW:
            for attr in n.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    graph(sub, env, f"a body of {label}")
            return []
        static_shape, same = shapes
        shape = None
        if op in ("Shape", "Size") and names:
            shape = static_shape(names[0]) if missing else env[names[0]].shape
        if shape is not None:
            known = np.array(shape if op == "Shape" else math.prod(shape), dtype=np.int64)
            if op == "Shape":
                start, end = _int(a, "start", 0), _int(a, "end", len(shape))
                known = known[start:end]
            _define(n, env, [_Const(known.shape, 8, known)])
            return []
        if op in _SAME_SHAPE and missing and names and n.output:
            same[n.output[0]] = names[0]
        if op == "Constant":
            _define(n, env, [_constant(n, a, label, count)])
            return []
        if not names or missing:
            return missing
        inputs = [env[x] if x else None for x in names]
        try:
            shape, item = _fold(op, a, inputs)
        except _Unbounded as exc:
            raise _refused(path, f"{label} is folded from constants while loading, but {exc}") from None
        out = _Const(shape, item)
        if out.nbytes is not None:
            count(out.nbytes, label)
            if math.prod(shape or (0,)) <= _SMALL:
                try:
                    out.value = _evaluate(op, a, [c.value if c is not None else None for c in inputs])
                except (ValueError, TypeError, IndexError, OverflowError, MemoryError):
                    out.value = None
                if out.value is not None and out.value.shape != shape:
                    out.shape = tuple(out.value.shape)
        _define(n, env, [out] * len(n.output))
        return []

    graph(model.graph, {}, "the main graph")
    for function in model.functions:
        # onnxruntime inlines local functions, then folds what became constant in them.
        body = SimpleNamespace(
            node=function.node, initializer=(), sparse_initializer=(), input=(), value_info=(), output=()
        )
        graph(body, {}, f"local function {function.name[:100]!r}")


def _define(n: Any, env: dict[str, _Const], values: list[_Const]) -> None:
    for name, value in zip(n.output, values, strict=False):
        if name:
            env[name] = value


def _fold(op: str, a: dict[str, Any], inputs: list[_Const | None]) -> tuple[tuple[int, ...] | None, int]:
    """Shape and bytes per element of what folding ``op`` on these constants makes."""
    first = next((c for c in inputs if c is not None), None)
    item = first.item if first is not None else 4
    if op == "ConstantOfShape":
        value = a.get("value")
        item = _ITEM.get(value.t.data_type, 8) if value is not None and value.HasField("t") else 4
    elif op == "Cast":
        item = _ITEM.get(_int(a, "to", 1), 8)
    elif op in ("Shape", "Size", "NonZero", "ArgMax", "ArgMin"):
        item = 8
    rule = _GROWING.get(op)
    if rule is not None:
        return rule(a, inputs), item
    if op in _NOT_GROWING:
        sizes = [c.nbytes for c in inputs if c is not None]
        if any(s is None for s in sizes):
            return None, item
        largest = max((s for s in sizes if s is not None), default=0)
        if op in ("Shape", "Size"):
            return (len(_shape(first)) if op == "Shape" else 1,), 8
        if first is not None and first.shape is not None and op in _SAME_SHAPE:
            return first.shape, item
        # Unknown exact shape: an upper bound in bytes, kept as a flat shape.
        return (largest * _NO_GROWTH_FACTOR // max(item, 1),), item
    raise _Unbounded(f"modhub cannot bound what {op} makes from constants; feed it a graph input instead")


def _constant(n: Any, a: dict[str, Any], label: str, count: Callable[[int, str], None]) -> _Const:
    if "value" in a and a["value"].HasField("t"):
        return _tensor_const(a["value"].t)
    if "sparse_value" in a and a["sparse_value"].HasField("sparse_tensor"):
        s = a["sparse_value"].sparse_tensor
        dense = tuple(int(d) for d in s.dims)
        count(tensor_bytes(s.values.data_type, dense), f"{label}'s sparse value")
        return _Const(dense, _ITEM.get(s.values.data_type, 8))
    for name, item, scalar in (
        ("value_int", 8, True), ("value_float", 4, True), ("value_ints", 8, False), ("value_floats", 4, False)
    ):  # fmt: skip
        if name in a:
            attr = a[name]
            values: Iterable[Any] = (
                [attr.i if item == 8 else attr.f] if scalar else (attr.ints if item == 8 else attr.floats)
            )
            array = np.array(list(values), dtype=np.int64 if item == 8 else np.float32)
            return _Const(() if scalar else array.shape, item, array.reshape(()) if scalar else array)
    if "value_strings" in a:
        return _Const((len(a["value_strings"].strings),), 8)
    return _Const((), 8)


def _refused(path: Path, why: str, *, setting: bool = False) -> UnsafeModuleError:
    more = (
        " If you trust this module and need more, set MODHUB_ONNX_MAX_MATERIALISE_BYTES"
        " (docs/configuration.md)."
        if setting
        else ""
    )
    return UnsafeModuleError(
        f"model.onnx is refused: {why}. modhub bounds what a graph may allocate before it runs "
        f"(docs/security.md, 'ONNX graphs'); re-export the module with hub.export(..., onnx=True).{more}",
        path=path,
    )
