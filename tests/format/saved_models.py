"""Small SavedModels built from the protobuf messages alone (no TensorFlow), for checker tests.

``saved_model_bytes(inject=...)`` lays out what a TF2 export holds: a serving
function behind a signature wrapper, the saver's save and restore functions
named by ``saver_def``, and the main graph's placeholders, variable handle and
calls. ``inject`` adds one node with a given op to one of those places, which is
how the hostile SavedModels are made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVING_FN = "__inference_serving_11"
WRAPPER_FN = "__inference_signature_wrapper_21"
SAVE_FN = "__inference__traced_save_31"
RESTORE_FN = "__inference__traced_restore_41"
# Where an injected node can go.
PLACES = ("main", "serving", "wrapper", "save", "restore")


def _node(container: Any, name: str, op: str, *inputs: str, func: str | None = None) -> Any:
    node = container.add(name=name, op=op)
    node.input.extend(inputs)
    if func is not None:
        node.attr["f"].func.name = func
    return node


def meta_graph(inject: tuple[str, str] | None = None, *, features: int = 8, size: int = 32) -> Any:
    from tensorboard.compat.proto import meta_graph_pb2, types_pb2

    mg = meta_graph_pb2.MetaGraphDef()
    mg.meta_info_def.tags.append("serve")
    graph = mg.graph_def
    _node(graph.node, "serving_default_images", "Placeholder").attr["dtype"].type = types_pb2.DT_FLOAT
    _node(graph.node, "w", "VarHandleOp")
    _node(graph.node, "StatefulPartitionedCall", "StatefulPartitionedCall", "serving_default_images", "w",
          func=WRAPPER_FN)
    _node(graph.node, "saver_filename", "Placeholder").attr["dtype"].type = types_pb2.DT_STRING
    _node(graph.node, "StatefulPartitionedCall_1", "StatefulPartitionedCall", "saver_filename", "w",
          func=SAVE_FN)
    _node(graph.node, "StatefulPartitionedCall_2", "StatefulPartitionedCall", "saver_filename", "w",
          func=RESTORE_FN)
    functions = {}
    for name, ops in (
        (SERVING_FN, ("ReadVariableOp", "MatMul", "Mean", "Identity")),
        (WRAPPER_FN, (SERVING_FN, "Identity")),
        (SAVE_FN, ("StringJoin", "ShardedFilename", "SaveV2", "MergeV2Checkpoints", "Identity")),
        (RESTORE_FN, ("RestoreV2", "AssignVariableOp", "NoOp", "Identity")),
    ):
        function = graph.library.function.add()
        function.signature.name = name
        for i, op in enumerate(ops):
            _node(function.node_def, f"{op.lower()}_{i}", op)
        functions[name] = function
    if inject is not None:
        op, place = inject
        target = {
            "main": graph.node,
            "serving": functions[SERVING_FN].node_def,
            "wrapper": functions[WRAPPER_FN].node_def,
            "save": functions[SAVE_FN].node_def,
            "restore": functions[RESTORE_FN].node_def,
        }[place]
        _node(target, "injected", op)
    saver = mg.saver_def
    saver.filename_tensor_name = "saver_filename:0"
    saver.save_tensor_name = "StatefulPartitionedCall_1:0"
    saver.restore_op_name = "StatefulPartitionedCall_2"
    sig = mg.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    images = sig.inputs["images"]
    images.name, images.dtype = "serving_default_images:0", types_pb2.DT_FLOAT
    for dim in (-1, size, size, 3):
        images.tensor_shape.dim.add(size=dim)
    out = sig.outputs["features"]
    out.name, out.dtype = "StatefulPartitionedCall:0", types_pb2.DT_FLOAT
    for dim in (-1, features):
        out.tensor_shape.dim.add(size=dim)
    return mg


def saved_model_bytes(inject: tuple[str, str] | None = None, **kwargs: Any) -> bytes:
    from modhub.format.savedmodel import _saved_model_class

    model = _saved_model_class()()
    model.saved_model_schema_version = 1
    model.meta_graphs.append(meta_graph(inject, **kwargs))
    data: bytes = model.SerializeToString()
    return data


def write_saved_model(directory: Path, inject: tuple[str, str] | None = None, **kwargs: Any) -> Path:
    """A SavedModel directory: saved_model.pb + (dummy) variables, ready for the checker or a module."""
    (directory / "variables").mkdir(parents=True, exist_ok=True)
    (directory / "saved_model.pb").write_bytes(saved_model_bytes(inject, **kwargs))
    (directory / "variables" / "variables.index").write_bytes(b"index")
    (directory / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 64)
    return directory
