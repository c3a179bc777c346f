"""Read what a ``model.onnx`` says about its weights, and refuse weights it may not name.

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

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from modhub.errors import UnsafeModuleError
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME

__all__ = ["ExternalTensor", "WeightsPlan", "plan_weights"]

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
_ITEM_SIZES = {
    "float32": 4, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "int32": 4, "int64": 8,
    "bool": 1, "float16": 2, "float64": 8, "uint32": 4, "uint64": 8,
}  # fmt: skip
# Keys an external tensor may carry (onnx.proto: location, offset, length, checksum).
_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum"})
# Ops whose weights onnxruntime's layout optimisation (level ALL) rewrites, reading them while it
# optimises: those graphs are given weights onnxruntime copies (see WeightsPlan.shared).
_REWRITTEN_WEIGHTS = frozenset({"Conv", "ConvTranspose"})

# (message, [(field, number, type, label, message type)]); types: 3 int64, 5 int32, 9 string,
# 11 message, 12 bytes, 14 enum read as int32 (5); labels: 1 optional, 3 repeated.
_SCHEMA: tuple[tuple[str, tuple[tuple[str, int, int, int, str], ...]], ...] = (
    ("StringStringEntryProto", (("key", 1, 9, 1, ""), ("value", 2, 9, 1, ""))),
    (
        "TensorProto",
        (
            ("dims", 1, 3, 3, ""),
            ("data_type", 2, 5, 1, ""),
            ("name", 8, 9, 1, ""),
            ("external_data", 13, 11, 3, "StringStringEntryProto"),
            ("data_location", 14, 5, 1, ""),
        ),
    ),
    ("SparseTensorProto", (("values", 1, 11, 1, "TensorProto"), ("indices", 2, 11, 1, "TensorProto"))),
    (
        "AttributeProto",
        (
            ("t", 5, 11, 1, "TensorProto"),
            ("g", 6, 11, 1, "GraphProto"),
            ("tensors", 10, 11, 3, "TensorProto"),
            ("graphs", 11, 11, 3, "GraphProto"),
            ("sparse_tensor", 22, 11, 1, "SparseTensorProto"),
            ("sparse_tensors", 23, 11, 3, "SparseTensorProto"),
        ),
    ),
    (
        "NodeProto",
        (("op_type", 4, 9, 1, ""), ("attribute", 5, 11, 3, "AttributeProto"), ("domain", 7, 9, 1, "")),
    ),
    (
        "GraphProto",
        (
            ("node", 1, 11, 3, "NodeProto"),
            ("initializer", 5, 11, 3, "TensorProto"),
            ("sparse_initializer", 15, 11, 3, "SparseTensorProto"),
        ),
    ),
    ("FunctionProto", (("node", 7, 11, 3, "NodeProto"),)),
    (
        "TrainingInfoProto",
        (("initialization", 1, 11, 1, "GraphProto"), ("algorithm", 2, 11, 1, "GraphProto")),
    ),
    (
        "ModelProto",
        (
            ("graph", 7, 11, 1, "GraphProto"),
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

    @property
    def shared(self) -> bool:
        """Whether onnxruntime, optimising as it loads, can use views of the verified buffer (no copy);
        else it copies the weights from the buffer."""
        return self.aligned and not self.rewritten


def plan_weights(graph: bytes, data_size: int | None, *, path: Path) -> WeightsPlan:
    """Check every tensor of ``graph`` (model.onnx) and list its external initializers.

    ``data_size``: the bytes of the module's model.onnx.data, or None if it has
    none (then no tensor may be external). Raises UnsafeModuleError for an
    external tensor anywhere but the main graph's initializers, naming any
    location but model.onnx.data, or reaching past its end.
    """
    from google.protobuf.message import DecodeError

    model = _model_class()()
    try:
        model.ParseFromString(graph)
    except DecodeError as exc:
        raise UnsafeModuleError(
            f"{ONNX_NAME} is not an ONNX model ({exc}); re-export the module with hub.export(..., onnx=True)",
            path=path,
        ) from None
    found, ops = _scan(model)
    tensors: list[ExternalTensor] = []
    for tensor, where in found:
        if tensor.data_location != _EXTERNAL:
            continue
        if where != "main":
            raise _refused(
                path, tensor.name, f"is external data in {where}; only the main graph's weights may be"
            )
        tensors.append(_external(tensor, data_size, path))
    conv = any(op in _REWRITTEN_WEIGHTS and domain in ("", "ai.onnx") for domain, op in ops)
    aligned = all(t.dtype is not None and t.offset % _ITEM_SIZES[t.dtype] == 0 for t in tensors)
    return WeightsPlan(tensors=tuple(tensors), aligned=aligned, rewritten=conv)


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


def _scan(model: Any) -> tuple[list[tuple[Any, str]], set[tuple[str, str]]]:
    """Every TensorProto of the model with where it is ("main" for the main graph's
    initializers), and the (domain, op_type) of every node. Protobuf's parse depth limit
    bounds the nesting, so recursion is safe."""
    tensors: list[tuple[Any, str]] = []
    ops: set[tuple[str, str]] = set()

    def sparse(values: Any, where: str) -> None:
        tensors.extend((t, where) for s in values for t in (s.values, s.indices))

    def graph(g: Any, where: str) -> None:
        tensors.extend((t, where) for t in g.initializer)
        sparse(g.sparse_initializer, "a sparse initializer")
        for n in g.node:
            node(n)

    def node(n: Any) -> None:
        ops.add((n.domain, n.op_type))
        for attr in n.attribute:
            if attr.HasField("t"):
                tensors.append((attr.t, "a node attribute"))
            tensors.extend((t, "a node attribute") for t in attr.tensors)
            sparse([attr.sparse_tensor] if attr.HasField("sparse_tensor") else [], "a node attribute")
            sparse(attr.sparse_tensors, "a node attribute")
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                graph(g, "a subgraph")

    graph(model.graph, "main")
    for info in model.training_info:
        graph(info.initialization, "a training graph")
        graph(info.algorithm, "a training graph")
    for function in model.functions:
        for n in function.node:
            node(n)
    return tensors, ops
