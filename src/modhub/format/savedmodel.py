"""Read and check a TensorFlow SavedModel without TensorFlow.

``saved_model.pb`` is parsed with the protobuf classes TensorBoard ships
(``tensorboard.compat.proto``: MetaGraphDef, GraphDef, FunctionDef, ...); the
``SavedModel`` message itself is not among them, so it is declared here (field
1: schema version, field 2: repeated MetaGraphDef). Nothing is executed.

``check_saved_model`` walks every node of every meta graph and of every
function in the library and refuses any op that is not on an allow-list of
pure computation, variable, lookup-table and control-flow ops. The refusal
names the op, the function and what the op could do (read or write files,
reach the network, run Python). The checkpoint ops every TF2 export carries
(SaveV2, RestoreV2, MergeV2Checkpoints, ShardedFilename) are allowed only
inside the saver functions that the MetaGraph's ``saver_def`` names.
``signature_defs`` and ``render_signature_defs`` give what
``saved_model_cli show --all`` prints about the signatures.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from modhub.errors import ManifestError, UnsafeModuleError
from modhub.format._files import MAX_SAVED_MODEL_PB_BYTES

__all__ = [
    "MAX_SAVED_MODEL_PB_BYTES",
    "SignatureInfo",
    "TensorInfo",
    "check_saved_model",
    "check_saved_model_bounds",
    "check_saved_model_files",
    "parse_saved_model",
    "read_saved_model",
    "render_signature_defs",
    "signature_defs",
    "verify_saved_model_dir",
    "why_refused",
]

SAVED_MODEL_PB = "saved_model.pb"

# What the checker lets through anywhere: math, arrays, nn, images, strings, variables,
# lookup tables built from tensors, function calls and control flow, random numbers.
ALLOWED_OPS = frozenset(
    """
    Abs Acos Acosh Add AddN AddV2 All Any ApproximateEqual ArgMax ArgMin Asin Asinh Assert Atan
    Atan2 Atanh AvgPool AvgPool3D AvgPoolGrad BatchMatMul BatchMatMulV2 BatchMatMulV3 BatchToSpaceND
    BiasAdd BiasAddGrad Bincount Bitcast BitwiseAnd BitwiseOr BitwiseXor BroadcastArgs
    BroadcastGradientArgs BroadcastTo Bucketize Cast Ceil CheckNumerics CheckNumericsV2 ClipByValue
    Complex ComplexAbs Concat ConcatOffset ConcatV2 Const Conv2D Conv2DBackpropFilter
    Conv2DBackpropInput Conv3D Cos Cosh CropAndResize Cumprod Cumsum DenseBincount DepthToSpace
    DepthwiseConv2dNative DepthwiseConv2dNativeBackpropFilter DepthwiseConv2dNativeBackpropInput
    Diag DiagPart DisableCopyOnRead Div DivNoNan DynamicPartition DynamicStitch Einsum Elu EluGrad
    EmptyTensorList EnsureShape Equal Erf Erfc Exp ExpandDims Expm1 ExtractImagePatches Fill Floor
    FloorDiv FloorMod FusedBatchNorm FusedBatchNormGrad FusedBatchNormGradV3 FusedBatchNormV2
    FusedBatchNormV3 Gather GatherNd GatherV2 Gelu Greater GreaterEqual HashTable HashTableV2
    Identity IdentityN If Imag InTopKV2 Inv InvertPermutation IsFinite IsInf IsNan
    IsVariableInitialized L2Loss LRN LeakyRelu LeakyReluGrad LeftShift Less LessEqual Lgamma
    LinSpace ListDiff Log Log1p LogSoftmax LogicalAnd LogicalNot LogicalOr LookupTableExportV2
    LookupTableFindV2 LookupTableImportV2 LookupTableInsertV2 LookupTableSizeV2 MatMul
    MatrixBandPart MatrixDiag MatrixDiagPartV3 MatrixDiagV3 MatrixSetDiagV3 Max MaxPool MaxPool3D
    MaxPoolGrad MaxPoolV2 MaxPoolWithArgmax Maximum Mean Min Minimum MirrorPad MirrorPadGrad Mod
    MulNoNan Mul MutableHashTable MutableHashTableV2 MutableDenseHashTableV2 Neg NextAfter NoOp
    NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5 NotEqual OneHot OnesLike
    OptionalFromValue OptionalGetValue OptionalHasValue OptionalNone Pack Pad PadV2 PartitionedCall
    Placeholder PlaceholderWithDefault Pow PreventGradient Prod RaggedGather RaggedRange
    RaggedTensorFromVariant RaggedTensorToSparse RaggedTensorToTensor RaggedTensorToVariant
    RandomGamma RandomShuffle RandomStandardNormal RandomUniform RandomUniformInt Range Rank
    ReadVariableOp Real RealDiv Reciprocal ReciprocalGrad Relu Relu6 Relu6Grad ReluGrad Reshape
    ResizeArea ResizeBicubic ResizeBilinear ResizeBilinearGrad ResizeNearestNeighbor
    ResizeNearestNeighborGrad ResourceGather ResourceGatherNd ResourceScatterAdd
    ResourceScatterUpdate ResourceStridedSliceAssign AssignAddVariableOp AssignSubVariableOp
    AssignVariableOp DestroyResourceOp Reverse ReverseSequence ReverseV2 RightShift Rint Round Rsqrt
    RsqrtGrad ScatterNd SegmentMax SegmentMean SegmentMin SegmentProd SegmentSum Select SelectV2
    Selu SeluGrad Shape ShapeN Sigmoid SigmoidGrad Sign Sin Sinh Size Slice Snapshot Softmax
    SoftmaxCrossEntropyWithLogits Softplus SoftplusGrad Softsign SpaceToBatchND SpaceToDepth
    SparseSegmentMean SparseSegmentSqrtN SparseSegmentSum SparseSoftmaxCrossEntropyWithLogits
    SparseToDense Split SplitV Sqrt SqrtGrad Square SquaredDifference Squeeze StackV2
    StatefulPartitionedCall StatelessIf StatelessRandomNormal StatelessRandomNormalV2
    StatelessRandomUniform StatelessRandomUniformInt StatelessRandomUniformV2
    StatelessRandomGetKeyCounter StatelessTruncatedNormalV2 StatelessWhile StaticRegexFullMatch
    StaticRegexReplace StopGradient StridedSlice StridedSliceGrad StringFormat StringJoin
    StringLength StringLower StringSplit StringSplitV2 StringStrip StringToHashBucket
    StringToHashBucketFast StringToHashBucketStrong StringToNumber StringUpper Sub Substr Sum Tan
    Tanh TanhGrad TensorListFromTensor TensorListGetItem TensorListLength TensorListReserve
    TensorListSetItem TensorListStack TensorScatterAdd TensorScatterUpdate Tile TopKV2 Transpose
    TruncateDiv TruncateMod TruncatedNormal Unique UniqueV2 Unpack UnsortedSegmentMax
    UnsortedSegmentMin UnsortedSegmentSum UnicodeDecode UnicodeDecodeWithOffsets UnicodeEncode
    UnicodeScript UnicodeTranscode VarHandleOp VarIsInitializedOp VariableShape Where While Xdivy
    Xlog1py Xlogy ZerosLike RegexFullMatch RegexReplace AsString EncodeBase64 DecodeBase64
    DecodeJpeg DecodePng DecodeImage EncodeJpeg EncodePng AdjustContrastv2 AdjustHue
    AdjustSaturation HSVToRGB RGBToHSV Case StatelessCase Enter Exit Merge NextIteration Switch
    LoopCond
    """.split()  # noqa: SIM905
)

# Checkpoint ops: only inside the functions saver_def names (TF calls them on save / on load).
SAVE_OPS = frozenset({"SaveV2", "MergeV2Checkpoints", "ShardedFilename"})
RESTORE_OPS = frozenset({"RestoreV2"})

_PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
_FILE_OPS = frozenset(
    """
    ReadFile WriteFile MatchingFiles ImmutableConst Save SaveSlices Restore RestoreSlice SaveV2
    RestoreV2 MergeV2Checkpoints ShardedFilename LoadAndRemapMatrix GenerateVocabRemapping
    InitializeTableFromTextFile InitializeTableFromTextFileV2 PrintV2 Print DecodeProtoV2
    EncodeProto DatasetToTFRecord ExperimentalDatasetToTFRecord DistributedSave
    CreateSummaryFileWriter CreateSummaryDbWriter SummaryWriter ImportEvent WriteSummary
    WriteScalarSummary WriteHistogramSummary WriteImageSummary WriteAudioSummary WriteGraphSummary
    WriteRawProtoSummary FlushSummaryWriter CloseSummaryWriter ParseExampleDataset
    """.split()  # noqa: SIM905
)
_FILE_PATTERN = re.compile(
    r"Reader|^(Experimental)?(TFRecord|TextLine|FixedLengthRecord|CSV|Sql|LMDB|MatchingFiles|Cache|Save"
    r"|Load|Snapshot)Dataset"
)
_NETWORK_PATTERN = re.compile(
    r"^(Debug|Rpc|DataService|RegisterDataset|Collective|Nccl|_Send|_Recv|Send|Recv)"
)


def why_refused(op: str) -> str:
    """A short reason for refusing ``op``, for the error message."""
    if op in _PYTHON_OPS:
        return "runs Python code"
    if op in _FILE_OPS or _FILE_PATTERN.search(op):
        return "reads or writes files"
    if _NETWORK_PATTERN.search(op):
        return "can reach the network"
    return "is not on modhub's allow-list of SavedModel ops"


@cache
def _saved_model_class() -> Any:
    """The ``tensorflow.SavedModel`` message, declared over TensorBoard's MetaGraphDef."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        from tensorboard.compat.proto import meta_graph_pb2
    except ImportError as exc:
        raise ManifestError(
            f"reading SavedModels needs the tensorboard package ({exc}): pip install 'modhub[server]'"
        ) from exc
    pool = descriptor_pool.Default()
    name = "modhub_saved_model.SavedModel"
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    except KeyError:
        pass
    fdp = descriptor_pb2.FileDescriptorProto(
        name="modhub/saved_model.proto",
        package="modhub_saved_model",
        syntax="proto3",
        dependency=[meta_graph_pb2.DESCRIPTOR.name],
    )
    msg = fdp.message_type.add(name="SavedModel")
    field = descriptor_pb2.FieldDescriptorProto
    msg.field.add(
        name="saved_model_schema_version", number=1, type=field.TYPE_INT64, label=field.LABEL_OPTIONAL
    )
    msg.field.add(
        name="meta_graphs",
        number=2,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name="." + meta_graph_pb2.MetaGraphDef.DESCRIPTOR.full_name,
    )
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def parse_saved_model(data: bytes, *, path: Path | None = None) -> Any:
    """Parse ``saved_model.pb`` bytes; ManifestError if they are not a SavedModel."""
    from google.protobuf.message import DecodeError

    cls = _saved_model_class()
    try:
        model = cls.FromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise ManifestError(
            f"{path or SAVED_MODEL_PB} is not a SavedModel protobuf: {exc}", path=path
        ) from None
    if not model.meta_graphs:
        raise ManifestError(f"{path or SAVED_MODEL_PB} holds no MetaGraphDef", path=path)
    return model


def read_saved_model(saved_model_dir: str | os.PathLike[str]) -> Any:
    path = Path(saved_model_dir) / SAVED_MODEL_PB
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ManifestError(
            f"{saved_model_dir} is not a SavedModel: it has no {SAVED_MODEL_PB}", path=path
        ) from None
    if size > MAX_SAVED_MODEL_PB_BYTES:
        raise UnsafeModuleError(
            f"{path} has {size} bytes, over the {MAX_SAVED_MODEL_PB_BYTES}-byte limit for a SavedModel "
            "graph; "
            "keep weights in variables/, not in constants",
            path=path,
        )
    with open(path, "rb") as fh:
        data = fh.read(MAX_SAVED_MODEL_PB_BYTES + 1)
    return parse_saved_model(data, path=path)


def _called_functions(attrs: Any) -> Iterator[str]:
    """Names of the functions a node's attributes refer to (``f``, ``then_branch``, lists, ...)."""
    for value in attrs.values():
        kind = value.WhichOneof("value")
        if kind == "func":
            yield value.func.name
        elif kind == "list":
            for func in value.list.func:
                yield func.name


def _closure(roots: Iterable[str], functions: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            todo.extend(_called_functions(node.attr))
            if node.op in functions:
                todo.append(node.op)
    return seen


def _saver_functions(meta_graph: Any, functions: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(save functions, restore functions): those the saver_def's nodes call, transitively."""
    by_name = {node.name: node for node in meta_graph.graph_def.node}

    def called(tensor_or_op: str) -> set[str]:
        node = by_name.get(tensor_or_op.split(":")[0])
        if node is None:
            return set()
        return _closure(_called_functions(node.attr), functions)

    saver = meta_graph.saver_def
    return called(saver.save_tensor_name), called(saver.restore_op_name)


def _refuse(op: str, where: str, node: str, path: Path | None) -> UnsafeModuleError:
    return UnsafeModuleError(
        f"SavedModel {where}, node {node!r}: op {op} {why_refused(op)}; the hub refuses SavedModels whose "
        "graph could touch files, the network or Python when loaded or called. Rebuild the model "
        "from plain TensorFlow math ops (no tf.io, tf.data file readers, tf.py_function or debug ops).",
        path=path,
    )


def check_saved_model(model: Any, *, path: Path | None = None) -> None:
    """Raise UnsafeModuleError naming the first op (and function) outside the allow-list."""
    for index, meta_graph in enumerate(model.meta_graphs):
        library = meta_graph.graph_def.library
        functions = {f.signature.name: f for f in library.function}
        save_fns, restore_fns = _saver_functions(meta_graph, functions)
        tags = ",".join(meta_graph.meta_info_def.tags) or str(index)
        for node in meta_graph.graph_def.node:
            if node.op not in ALLOWED_OPS and node.op not in functions:
                raise _refuse(node.op, f"meta graph [{tags}] main graph", node.name, path)
        for name, function in functions.items():
            if name in ALLOWED_OPS or why_refused(name) != why_refused(""):
                raise UnsafeModuleError(
                    f"SavedModel function {name!r} shadows a TensorFlow op of that name; rename it", path=path
                )
            for node in function.node_def:
                op = node.op
                if op in ALLOWED_OPS or op in functions:
                    continue
                if op in SAVE_OPS and name in save_fns:
                    continue
                if op in RESTORE_OPS and name in restore_fns:
                    continue
                raise _refuse(op, f"function {name!r}", node.name, path)
        for asset in meta_graph.asset_file_def:
            _check_asset_name(asset.filename, path)
    check_saved_model_bounds(model, path=path)


# ---------------------------------------------------------------------------------- bounds
# A Const holds fewer values than its shape when TensorFlow repeats the last one ("splat"):
# float_val=[0] with shape [40000, 40000] is 6.4 GB once loaded. Fill, BroadcastTo, Tile, Range
# and the random ops make tensors of a shape given by another tensor. Those sizes, where
# constants give them, are bounded (the same floor as model.onnx's, docs/security.md).
MAX_SAVED_MODEL_MATERIALISE_BYTES = 64 << 20
# Bytes per element by TensorFlow DataType (8 for anything else, strings and resources included).
_TF_ITEM = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 9: 8, 10: 1, 14: 2, 17: 2, 19: 2, 22: 4, 23: 8, 8: 8, 18: 16}
# Ops whose output shape is the value of one of their inputs (by index).
_SHAPE_INPUT = {
    "Fill": 0,
    "BroadcastTo": 1,
    "RandomUniform": 0,
    "RandomStandardNormal": 0,
    "RandomUniformInt": 0,
    "TruncatedNormal": 0,
    "StatelessRandomNormal": 0,
    "StatelessRandomNormalV2": 0,
    "StatelessRandomUniform": 0,
    "StatelessRandomUniformV2": 0,
    "StatelessRandomUniformInt": 0,
    "StatelessTruncatedNormalV2": 0,
    "TensorListReserve": 1,
}
_VALUE_FIELDS = (
    "int_val",
    "int64_val",
    "float_val",
    "double_val",
    "bool_val",
    "half_val",
    "uint32_val",
    "uint64_val",
    "string_val",
)


def _const_values(tensor: Any) -> list[int] | None:
    """The integer values of a small constant tensor (shapes, multiples), or None."""
    import numpy as np

    count = _elements(tensor)
    if count is None or count > 64:
        return None
    if tensor.tensor_content:
        dtype = {3: np.int32, 9: np.int64}.get(tensor.dtype)
        if dtype is None:
            return None
        values = [int(v) for v in np.frombuffer(tensor.tensor_content, dtype=dtype)]
    else:
        values = [int(v) for v in (list(tensor.int_val) or list(tensor.int64_val))]
        if not values:
            return None
        values += [values[-1]] * (count - len(values))  # TensorFlow's splat
    return values


def _elements(tensor: Any) -> int | None:
    if tensor.tensor_shape.unknown_rank:
        return None
    count = 1
    for dim in tensor.tensor_shape.dim:
        if dim.size < 0:
            return None
        count *= int(dim.size)
    return count


def _refuse_size(what: str, nbytes: int, bound: int, path: Path | None) -> UnsafeModuleError:
    return UnsafeModuleError(
        f"SavedModel {what} would make {nbytes} bytes when the graph is loaded or called with any input, "
        f"more than the {bound} bytes modhub allows a constant; the hub refuses SavedModels that could "
        "exhaust memory. Keep weights in variables/ and compute large tensors from the inputs.",
        path=path,
    )


def check_saved_model_bounds(
    model: Any, *, path: Path | None = None, bound: int = MAX_SAVED_MODEL_MATERIALISE_BYTES
) -> None:
    """Refuse Const tensors whose shape declares more than they store beyond ``bound`` bytes (a
    "splat"), negative or unknown Const shapes, stored data that is not what the shape says, and
    Fill/BroadcastTo/Tile/Range/random ops whose constant shape inputs ask for more than ``bound``."""
    for meta_graph in model.meta_graphs:
        bodies = [("main graph", meta_graph.graph_def.node)]
        bodies += [
            (f"function {f.signature.name!r}", f.node_def) for f in meta_graph.graph_def.library.function
        ]
        for where, nodes in bodies:
            consts: dict[str, Any] = {}
            for node in nodes:
                if node.op == "Const" and "value" in node.attr:
                    tensor = node.attr["value"].tensor
                    _check_const(tensor, f"{where}, Const {node.name!r}", bound, path)
                    consts[node.name] = tensor
            for node in nodes:
                _check_shaped(node, consts, f"{where}, node {node.name!r} ({node.op})", bound, path)


def _check_const(tensor: Any, what: str, bound: int, path: Path | None) -> None:
    count = _elements(tensor)
    if count is None:
        raise UnsafeModuleError(f"SavedModel {what} has an unknown or negative shape", path=path)
    item = _TF_ITEM.get(tensor.dtype, 8)
    if tensor.tensor_content:
        if len(tensor.tensor_content) != count * item:
            raise UnsafeModuleError(
                f"SavedModel {what} declares {count} elements but stores {len(tensor.tensor_content)} bytes",
                path=path,
            )
        return
    stored = sum(len(getattr(tensor, f)) for f in _VALUE_FIELDS)
    if stored > count:
        raise UnsafeModuleError(f"SavedModel {what} stores more values than its shape holds", path=path)
    if stored < count and count * item > bound:  # a splat: the rest repeats the last value
        raise _refuse_size(what, count * item, bound, path)


def _input_const(consts: dict[str, Any], name: str) -> Any:
    base = name.lstrip("^").split(":")[0]
    return consts.get(base)


def _check_shaped(node: Any, consts: dict[str, Any], what: str, bound: int, path: Path | None) -> None:
    dims: list[int] | None = None
    if node.op in _SHAPE_INPUT and len(node.input) > _SHAPE_INPUT[node.op]:
        tensor = _input_const(consts, node.input[_SHAPE_INPUT[node.op]])
        dims = None if tensor is None else _const_values(tensor)
    elif node.op == "Tile" and len(node.input) > 1:
        data, multiples = (_input_const(consts, x) for x in node.input[:2])
        values = None if multiples is None else _const_values(multiples)
        if values is not None:
            dims = [(_elements(data) or 1) if data is not None else 1, *values]
    elif node.op == "Range" and len(node.input) > 2:
        bounds = [_input_const(consts, x) for x in node.input[:3]]
        numbers = [None if t is None else _range_value(t) for t in bounds]
        if all(v is not None for v in numbers):
            start, limit, delta = (float(v) for v in numbers if v is not None)
            dims = [max(int((limit - start) / delta) if delta else 1 << 62, 0)]
    if dims is None:
        return
    count = 1
    for d in dims:
        count *= max(d, 0)
    if count * 4 > bound:
        raise _refuse_size(what, count * 4, bound, path)


def _range_value(tensor: Any) -> float | None:
    for field in ("int_val", "int64_val", "float_val", "double_val"):
        values = getattr(tensor, field)
        if len(values):
            return float(values[0])
    if tensor.tensor_content:
        import numpy as np

        dtype = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}.get(tensor.dtype)
        if dtype is not None and len(tensor.tensor_content) >= np.dtype(dtype).itemsize:
            return float(np.frombuffer(tensor.tensor_content, dtype=dtype)[0])
    return None


def _check_asset_name(name: str, path: Path | None) -> None:
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or "\\" in name or any(p in ("", ".", "..") for p in name.split("/")):
        raise UnsafeModuleError(
            f"SavedModel asset {name!r} points outside its assets/ directory; asset file names must be "
            "plain relative paths",
            path=path,
        )


# Files a SavedModel directory may hold; anything else (a .so, a script, ...) is refused.
_SAVED_MODEL_FILES = re.compile(
    r"^(saved_model\.pb|fingerprint\.pb|variables/variables\.index"
    r"|variables/variables\.data-\d{5}-of-\d{5}|assets/.+|assets\.extra/.+)$"
)


def check_saved_model_files(relative_paths: Iterable[str]) -> None:
    """Refuse files that are not part of a SavedModel (paths relative to the SavedModel directory)."""
    for rel in relative_paths:
        if not _SAVED_MODEL_FILES.match(rel):
            raise UnsafeModuleError(
                f"saved_model/{rel} is not part of a SavedModel (saved_model.pb, fingerprint.pb, variables/, "
                "assets/); remove it"
            )


def verify_saved_model_dir(saved_model_dir: Path, relative_paths: Iterable[str]) -> Any:
    """Every check on a module's ``saved_model/``: its files, its size, every op. Returns the parsed model."""
    check_saved_model_files(relative_paths)
    model = read_saved_model(saved_model_dir)
    check_saved_model(model, path=saved_model_dir / SAVED_MODEL_PB)
    return model


@dataclass(frozen=True)
class TensorInfo:
    key: str
    # TF's name, e.g. "DT_FLOAT".
    dtype: str
    # -1 for unknown sizes; None for unknown rank.
    shape: tuple[int, ...] | None
    name: str


@dataclass(frozen=True)
class SignatureInfo:
    key: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    method_name: str


def _tensor_info(key: str, info: Any) -> TensorInfo:
    from tensorboard.compat.proto import types_pb2

    shape = None if info.tensor_shape.unknown_rank else tuple(int(d.size) for d in info.tensor_shape.dim)
    return TensorInfo(key=key, dtype=types_pb2.DataType.Name(info.dtype), shape=shape, name=info.name)


def signature_defs(model: Any, tag: str = "serve") -> list[SignatureInfo]:
    """The SignatureDefs of the meta graph tagged ``tag`` (sorted by key)."""
    for meta_graph in model.meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return [
                SignatureInfo(
                    key=key,
                    inputs=tuple(_tensor_info(k, v) for k, v in sorted(sig.inputs.items())),
                    outputs=tuple(_tensor_info(k, v) for k, v in sorted(sig.outputs.items())),
                    method_name=sig.method_name,
                )
                for key, sig in sorted(meta_graph.signature_def.items())
            ]
    raise ManifestError(f"the SavedModel has no meta graph tagged {tag!r}")


def _shape_text(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "unknown_rank"
    if len(shape) == 1:
        return f"({shape[0]})"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def render_signature_defs(model: Any) -> str:
    """The signature part of ``saved_model_cli show --dir DIR --all``."""
    lines: list[str] = []
    for meta_graph in model.meta_graphs:
        tags = ", ".join(repr(t) for t in meta_graph.meta_info_def.tags)
        lines.append(f"MetaGraphDef with tag-set: {tags} contains the following SignatureDefs:")
        lines.append("")
        for sig in signature_defs(model, meta_graph.meta_info_def.tags[0]):
            lines.append(f"signature_def['{sig.key}']:")
            for what, infos in (("input", sig.inputs), ("output", sig.outputs)):
                lines.append(f"  The given SavedModel SignatureDef contains the following {what}(s):")
                for info in infos:
                    lines.append(f"    {what}s['{info.key}'] tensor_info:")
                    lines.append(f"        dtype: {info.dtype}")
                    lines.append(f"        shape: {_shape_text(info.shape)}")
                    lines.append(f"        name: {info.name}")
            lines.append(f"  Method name is: {sig.method_name}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# The tasks whose TF layout check_tf_contract states itself; the others use their general contract.
_ORIGINAL_TASKS = frozenset(
    {"image-feature-vector", "image-classification", "text-embedding", "text-classification"}
)


def check_tf_contract(manifest: Any) -> None:
    """The task contract for a "tensorflow" module: its default signature as TF Hub modules have it.

    The four original tasks: image tasks take float32 [batch, height, width, 3] (NHWC), text
    tasks a string [batch]; the single output is float32 [batch, size]. Any other task: its
    contract on general signatures (modhub.format.tasks), as for every module.
    """
    from modhub.errors import ContractError
    from modhub.format.tasks import check_contract, get_contract

    if manifest.task not in _ORIGINAL_TASKS:
        check_contract(manifest)
        return
    contract = get_contract(manifest.task)
    if "default" not in manifest.signatures:
        raise ContractError(f"task {manifest.task!r}: the manifest needs a 'default' signature")
    sig = manifest.default_signature
    if len(sig.inputs) != 1 or len(sig.outputs) != 1:
        raise ContractError(
            f"task {manifest.task!r}: the SavedModel's serving_default signature must have one input and "
            f"one output, found {len(sig.inputs)} and {len(sig.outputs)}"
        )
    (inp,), (out,) = sig.inputs, sig.outputs
    if contract.modality == "image":
        ok = inp.dtype == "float32" and len(inp.shape) == 4 and inp.shape[3] in (3, "channels")
        want = "float32 [batch, height, width, 3]"
    else:
        ok = inp.dtype == "string" and len(inp.shape) == 1
        want = "string [batch]"
    if not ok:
        raise ContractError(
            f"task {manifest.task!r}: the input {inp.name!r} must be {want}, "
            f"found {inp.dtype} {list(inp.shape)}"
        )
    if out.dtype != "float32" or len(out.shape) != 2:
        raise ContractError(
            f"task {manifest.task!r}: the output {out.name!r} must be float32 [batch, size], "
            f"found {out.dtype} {list(out.shape)}"
        )
