"""Check a ``model.onnx`` before onnxruntime sees it: its weights, its operators, its bounds.

One parse, one pass (:func:`plan_weights`): every node's operator must be on
the allow-list of :mod:`modhub.format.onnx_ops` at the opset the model imports
(If/Loop/Scan bodies and local functions included, nesting and node count
bounded), every inline tensor must hold what its dims declare, and what the
graph's constants could materialise while onnxruntime folds them is bounded
(:mod:`modhub.format.onnx_bounds`).

A modhub ``model.onnx`` keeps its large tensors as ONNX "external data" in one
listed file, ``model.onnx.data``. Before onnxruntime sees the graph, every
tensor in it (initializers, node attributes, subgraphs, functions) is checked
here: an external tensor must be a dense initializer of the main graph whose
bytes lie within ``model.onnx.data``; any other location (another file, ``..``,
an absolute path, an open descriptor's number) is refused.

The graph is parsed with protobuf against the few ONNX message fields this
needs (field numbers from onnx.proto; unknown fields are skipped), in a
private descriptor pool: importing the ``onnx`` package would cost about half
a second of every cold start (tests check the numbers against ``onnx``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from modhub.errors import UnsafeModuleError
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME
from modhub.format.onnx_bounds import OnnxLimits, check_bounds, check_tensor_data, tensor_bytes
from modhub.format.onnx_ops import allowed_op, canonical_domain

__all__ = ["ExternalTensor", "OnnxLimits", "WeightsPlan", "plan_weights"]

# TensorProto.DataLocation.EXTERNAL
_EXTERNAL = 1
# ONNX element types with a fixed numpy layout, by TensorProto.DataType number.
NUMPY_TYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}
# The manifest's dtype names (TensorSpec.dtype) by TensorProto.DataType number.
_DTYPE_NAMES = {**NUMPY_TYPES, 8: "string", 16: "bfloat16"}
_ITEM_SIZES = {
    "float32": 4, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "int32": 4, "int64": 8,
    "bool": 1, "float16": 2, "float64": 8, "uint32": 4, "uint64": 8,
}  # fmt: skip
# Keys an external tensor may carry (onnx.proto: location, offset, length, checksum).
_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum"})
# Ops whose weights onnxruntime's layout optimisation (level ALL) rewrites, reading them while it
# optimises: those graphs are given weights onnxruntime copies (see WeightsPlan.shared).
_REWRITTEN_WEIGHTS = frozenset({"Conv", "ConvTranspose"})

# (message, [(field, number, type, label, message type)]); types: 1 double, 2 float, 3 int64,
# 4 uint64, 5 int32, 9 string, 11 message, 12 bytes, 14 enum read as int32 (5); labels: 1 optional,
# 3 repeated. Nested messages of onnx.proto are named Outer_Inner here (TypeProto_Tensor).
_SCHEMA: tuple[tuple[str, tuple[tuple[str, int, int, int, str], ...]], ...] = (
    ("StringStringEntryProto", (("key", 1, 9, 1, ""), ("value", 2, 9, 1, ""))),
    (
        "TensorProto",
        (
            ("dims", 1, 3, 3, ""),
            ("data_type", 2, 5, 1, ""),
            ("float_data", 4, 2, 3, ""),
            ("int32_data", 5, 5, 3, ""),
            ("string_data", 6, 12, 3, ""),
            ("int64_data", 7, 3, 3, ""),
            ("name", 8, 9, 1, ""),
            ("raw_data", 9, 12, 1, ""),
            ("double_data", 10, 1, 3, ""),
            ("uint64_data", 11, 4, 3, ""),
            ("external_data", 13, 11, 3, "StringStringEntryProto"),
            ("data_location", 14, 5, 1, ""),
        ),
    ),
    (
        "SparseTensorProto",
        (("values", 1, 11, 1, "TensorProto"), ("indices", 2, 11, 1, "TensorProto"), ("dims", 3, 3, 3, "")),
    ),
    (
        "AttributeProto",
        (
            ("name", 1, 9, 1, ""),
            ("f", 2, 2, 1, ""),
            ("i", 3, 3, 1, ""),
            ("s", 4, 12, 1, ""),
            ("t", 5, 11, 1, "TensorProto"),
            ("g", 6, 11, 1, "GraphProto"),
            ("floats", 7, 2, 3, ""),
            ("ints", 8, 3, 3, ""),
            ("strings", 9, 12, 3, ""),
            ("tensors", 10, 11, 3, "TensorProto"),
            ("graphs", 11, 11, 3, "GraphProto"),
            ("sparse_tensor", 22, 11, 1, "SparseTensorProto"),
            ("sparse_tensors", 23, 11, 3, "SparseTensorProto"),
        ),
    ),
    (
        "NodeProto",
        (
            ("input", 1, 9, 3, ""),
            ("output", 2, 9, 3, ""),
            ("name", 3, 9, 1, ""),
            ("op_type", 4, 9, 1, ""),
            ("attribute", 5, 11, 3, "AttributeProto"),
            ("domain", 7, 9, 1, ""),
        ),
    ),
    ("TensorShapeProto_Dimension", (("dim_value", 1, 3, 1, ""), ("dim_param", 2, 9, 1, ""))),
    ("TensorShapeProto", (("dim", 1, 11, 3, "TensorShapeProto_Dimension"),)),
    ("TypeProto_Tensor", (("elem_type", 1, 5, 1, ""), ("shape", 2, 11, 1, "TensorShapeProto"))),
    ("TypeProto", (("tensor_type", 1, 11, 1, "TypeProto_Tensor"),)),
    ("ValueInfoProto", (("name", 1, 9, 1, ""), ("type", 2, 11, 1, "TypeProto"))),
    (
        "GraphProto",
        (
            ("node", 1, 11, 3, "NodeProto"),
            ("initializer", 5, 11, 3, "TensorProto"),
            ("input", 11, 11, 3, "ValueInfoProto"),
            ("output", 12, 11, 3, "ValueInfoProto"),
            ("value_info", 13, 11, 3, "ValueInfoProto"),
            ("sparse_initializer", 15, 11, 3, "SparseTensorProto"),
        ),
    ),
    ("OperatorSetIdProto", (("domain", 1, 9, 1, ""), ("version", 2, 3, 1, ""))),
    (
        "FunctionProto",
        (
            ("name", 1, 9, 1, ""),
            ("node", 7, 11, 3, "NodeProto"),
            ("opset_import", 9, 11, 3, "OperatorSetIdProto"),
            ("domain", 10, 9, 1, ""),
        ),
    ),
    (
        "TrainingInfoProto",
        (("initialization", 1, 11, 1, "GraphProto"), ("algorithm", 2, 11, 1, "GraphProto")),
    ),
    (
        "ModelProto",
        (
            ("graph", 7, 11, 1, "GraphProto"),
            ("opset_import", 8, 11, 3, "OperatorSetIdProto"),
            ("training_info", 20, 11, 3, "TrainingInfoProto"),
            ("functions", 25, 11, 3, "FunctionProto"),
        ),
    ),
)


@cache
def _model_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    package = "modhub_onnx_subset"
    proto = descriptor_pb2.FileDescriptorProto(
        name="modhub_onnx_subset.proto", package=package, syntax="proto2"
    )
    for message, fields in _SCHEMA:
        msg = proto.message_type.add(name=message)
        for name, number, kind, label, type_name in fields:
            field = msg.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{package}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.ModelProto"))


@dataclass(frozen=True)
class ExternalTensor:
    """One initializer whose bytes are ``data[offset : offset + length]`` of model.onnx.data."""

    name: str
    # numpy dtype name, or None for an ONNX type numpy has no layout for (bfloat16, float8, ...).
    dtype: str | None
    dims: tuple[int, ...]
    offset: int
    length: int


@dataclass(frozen=True)
class WeightsPlan:
    """How the session gets the verified weights."""

    tensors: tuple[ExternalTensor, ...]
    # Every tensor has a numpy dtype and an offset aligned to it: views of the buffer are possible
    # (what an already-optimised graph, loaded with optimisation off, needs).
    aligned: bool
    # The graph has ops whose weights onnxruntime's optimisation rewrites while it loads (Conv).
    rewritten: bool
    # The main graph's inputs (not initializers) by name: the manifest's dtype name of each
    # (None: a type the manifest cannot name).
    inputs: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def shared(self) -> bool:
        """Whether onnxruntime, optimising as it loads, can use views of the verified buffer (no copy);
        else it copies the weights from the buffer."""
        return self.aligned and not self.rewritten


def plan_weights(
    graph: bytes,
    data_size: int | None,
    *,
    path: Path,
    limits: OnnxLimits | None = None,
    optimised: bool = False,
) -> WeightsPlan:
    """Check ``graph`` (a model.onnx) in one parse and list its external initializers.

    ``data_size``: the bytes of the module's model.onnx.data, or None if it has
    none (then no tensor may be external). Raises UnsafeModuleError for an
    external tensor anywhere but the main graph's initializers, naming any
    location but model.onnx.data, or reaching past its end; for an operator
    that is not on the allow-list (:mod:`modhub.format.onnx_ops`; with
    ``optimised``, onnxruntime's own ops of this machine's optimised copies too);
    for too many nodes, bodies nested too deep, local functions calling
    functions, training graphs; for a tensor whose data is not what its dims
    declare; and for constants that would materialise more than ``limits``
    allow (:mod:`modhub.format.onnx_bounds`).
    """
    limits = limits or OnnxLimits()
    # A load checks the graph when it verifies the module and asks again for the plan when it
    # builds the session: the same bytes get the same answer (a refusal is never remembered).
    key = (hashlib.sha256(graph).digest(), data_size, limits, optimised)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(graph, data_size, path, limits, optimised)
        _PLANS[key] = plan
        while len(_PLANS) > 16:
            del _PLANS[next(iter(_PLANS))]
    return plan


_PLANS: dict[tuple[bytes, int | None, OnnxLimits, bool], WeightsPlan] = {}


def _plan(
    graph: bytes, data_size: int | None, path: Path, limits: OnnxLimits, optimised: bool
) -> WeightsPlan:
    from google.protobuf.message import DecodeError

    model = _model_class()()
    try:
        model.ParseFromString(graph)
    except (DecodeError, RecursionError) as exc:
        raise UnsafeModuleError(
            f"{ONNX_NAME} is not an ONNX model ({exc}); re-export the module with hub.export(..., onnx=True)",
            path=path,
        ) from None
    found, ops = _scan(model, limits, optimised, path)
    tensors: list[ExternalTensor] = []
    inline = 0
    for tensor, where in found:
        if tensor.data_location != _EXTERNAL:
            check_tensor_data(tensor, where, path)
            inline += tensor_bytes(tensor.data_type, tensor.dims)
            continue
        if where != "main":
            raise _refused(
                path, tensor.name, f"is external data in {where}; only the main graph's weights may be"
            )
        tensors.append(_external(tensor, data_size, path))
    check_bounds(model, inline + (data_size or 0), limits, path=path)
    conv = any(op in _REWRITTEN_WEIGHTS and domain in ("", "ai.onnx") for domain, op in ops)
    aligned = all(t.dtype is not None and t.offset % _ITEM_SIZES[t.dtype] == 0 for t in tensors)
    weights = {t.name for t in model.graph.initializer}
    inputs = {
        i.name: _DTYPE_NAMES.get(i.type.tensor_type.elem_type)
        for i in model.graph.input
        if i.name not in weights and i.type.HasField("tensor_type")
    }
    return WeightsPlan(tensors=tuple(tensors), aligned=aligned, rewritten=conv, inputs=inputs)


def _external(tensor: Any, data_size: int | None, path: Path) -> ExternalTensor:
    name = tensor.name
    if data_size is None:
        raise _refused(
            path,
            name,
            f"refers to external data files, which this module does not have (it lists no {ONNX_DATA_NAME})",
        )
    info: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key not in _EXTERNAL_KEYS or entry.key in info:
            raise _refused(
                path,
                name,
                f"has external data key {entry.key[:40]!r} (allowed once each: location, offset, length)",
            )
        info[entry.key] = entry.value
    location = info.get("location")
    if location != ONNX_DATA_NAME:
        shown = "no location" if location is None else f"location {location[:200]!r}"
        raise _refused(
            path,
            name,
            f"names external data at {shown}; only {ONNX_DATA_NAME} (the module's own file) may hold weights",
        )
    offset, length = _number(info.get("offset", "0")), _number(info.get("length"))
    if offset is None or length is None or offset + length > data_size:
        raise _refused(
            path,
            name,
            f"has external data at offset {info.get('offset', '0')[:40]!r}, length "
            f"{str(info.get('length'))[:40]!r}: not within the {data_size} bytes of {ONNX_DATA_NAME}",
        )
    dtype = NUMPY_TYPES.get(tensor.data_type)
    dims = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in dims):
        raise _refused(path, name, f"has negative dimensions {dims}")
    if dtype is not None:
        count = 1
        for d in dims:
            count *= d
        if count * _ITEM_SIZES[dtype] != length:
            raise _refused(path, name, f"is {dtype}{list(dims)} but its external data has {length} bytes")
    return ExternalTensor(name=name, dtype=dtype, dims=dims, offset=offset, length=length)


def _number(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 20:
        return None
    return int(text)


def _refused(path: Path, name: str, why: str) -> UnsafeModuleError:
    return UnsafeModuleError(
        f"{ONNX_NAME} is refused: tensor {name[:200]!r} {why}. Nothing outside the module's listed files is "
        "read; re-export the module with hub.export(..., onnx=True).",
        path=path,
    )


def _refused_op(path: Path, why: str) -> UnsafeModuleError:
    return UnsafeModuleError(
        f"{ONNX_NAME} is refused: {why}. modhub runs only ONNX operators on its allow-list "
        "(docs/security.md, 'ONNX operators', says which and how to propose one); re-export the "
        "module with hub.export(..., onnx=True).",
        path=path,
    )


def _scan(
    model: Any, limits: OnnxLimits, optimised: bool, path: Path
) -> tuple[list[tuple[Any, str]], set[tuple[str, str]]]:
    """Every TensorProto of the model with where it is ("main" for the main graph's
    initializers), and the (domain, op_type) of every node; each node's operator checked
    against the allow-list at the model's opset, the nodes counted and the nesting bounded."""
    tensors: list[tuple[Any, str]] = []
    ops: set[tuple[str, str]] = set()
    opsets = {canonical_domain(o.domain): int(o.version) for o in model.opset_import}
    functions = {(canonical_domain(f.domain), f.name): f for f in model.functions}
    nodes = [0]
    if len(model.training_info):
        raise _refused_op(path, "it carries training graphs (training_info), which modhub never runs")

    def sparse(values: Any, where: str) -> None:
        tensors.extend((t, where) for s in values for t in (s.values, s.indices))

    def graph(g: Any, where: str, depth: int, versions: dict[str, int], in_function: bool) -> None:
        if depth > limits.max_depth:
            raise _refused_op(
                path, f"its If/Loop/Scan bodies nest {depth} deep, more than {limits.max_depth}"
            )
        tensors.extend((t, where) for t in g.initializer)
        sparse(g.sparse_initializer, "a sparse initializer")
        for n in g.node:
            node(n, depth, versions, in_function)

    def node(n: Any, depth: int, versions: dict[str, int], in_function: bool) -> None:
        nodes[0] += 1
        if nodes[0] > limits.max_nodes:
            raise _refused_op(path, f"it has more than {limits.max_nodes} nodes")
        domain = canonical_domain(n.domain)
        ops.add((n.domain, n.op_type))
        if (domain, n.op_type) in functions and not in_function:
            pass  # a local function, whose body is checked below
        elif allowed_op(domain, n.op_type, versions.get(domain), optimised=optimised) is None:
            raise _refused_op(
                path,
                f"node {n.name[:100]!r} uses operator {n.op_type[:100]!r} of domain {domain[:100]!r} at "
                f"opset {versions.get(domain)}, which is not on the allow-list"
                + (" (local functions may not call functions)" if (domain, n.op_type) in functions else ""),
            )
        for attr in n.attribute:
            for descriptor, value in attr.ListFields():  # only the fields that are set
                name = descriptor.name
                if name == "t":
                    tensors.append((value, "a node attribute"))
                elif name == "tensors":
                    tensors.extend((t, "a node attribute") for t in value)
                elif name == "sparse_tensor":
                    sparse([value], "a node attribute")
                elif name == "sparse_tensors":
                    sparse(value, "a node attribute")
                elif name in ("g", "graphs"):
                    for g in [value] if name == "g" else value:
                        graph(g, "a subgraph", depth + 1, versions, in_function)

    graph(model.graph, "main", 0, opsets, False)
    for function in model.functions:
        versions = {canonical_domain(o.domain): int(o.version) for o in function.opset_import} or opsets
        for n in function.node:
            node(n, 0, versions, True)
    return tensors, ops
