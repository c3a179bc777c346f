"""Hostile ``model.onnx`` graphs, generated with the onnx package (the test side only).

Each case edits the ModelProto of a real exported module (in place); the
caller writes it back and re-hashes the manifest, as an attacker who controls
the whole module would. Families:

- operators outside the allow-list: sampled from onnx's schemas (every domain
  onnx knows, every opset), onnxruntime's contrib kernels (``com.microsoft``,
  ``ai.onnx.ml``, ``com.microsoft.nchwc``: allowed in this machine's optimised
  copies only) and custom domains; allowed operators at opsets outside the range;
- bombs: constants that folding would blow up (ConstantOfShape, Expand, Tile,
  Range, Resize, Pad, OneHot, Gather, MatMul, Einsum, broadcasting,
  ConvTranspose, Shape arithmetic), inside bodies and functions too, tensors
  whose dims lie about their data, sparse tensors, many medium bombs together,
  constants the check cannot read, ops it cannot bound;
- floods and nesting: too many nodes, If/Loop bodies nested too deep, functions
  calling functions, training graphs;
- external data that points elsewhere;
- graph inputs whose dtype is not what the manifest says.

``graph_builders`` are plain functions so other tests can reuse them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modhub.format.manifest import ONNX_DATA_NAME
from modhub.format.onnx_ops import allowed_op

# A case edits the model (and may use the marker path a payload would try to touch).
OnnxCase = Callable[[onnx.ModelProto, Path], None]

BIG = 40_000  # 40,000 x 40,000 float32: 6.4 GB, the bomb


def _int64(name: str, values: list[int]) -> TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _float(name: str, values: np.ndarray | list[float]) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def _output(model: onnx.ModelProto, name: str, elem: int = TensorProto.FLOAT) -> None:
    """Make ``name`` a graph output, so that nothing prunes the node that makes it."""
    model.graph.output.append(helper.make_tensor_value_info(name, elem, None))


def _add(model: onnx.ModelProto, nodes: list[onnx.NodeProto], inits: list[TensorProto], out: str) -> None:
    model.graph.initializer.extend(inits)
    model.graph.node.extend(nodes)
    _output(model, out)


def _input(model: onnx.ModelProto) -> str:
    return model.graph.input[0].name


# ------------------------------------------------------------------ operators outside the list


def _op_case(domain: str, op: str, opset: int | None = None) -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        if domain not in ("", "ai.onnx") and not any(o.domain == domain for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(domain, opset or 1))
        node = helper.make_node(op, [_input(model)], ["hostile_op_out"], domain=domain, name="hostile")
        model.graph.node.append(node)
        _output(model, "hostile_op_out")

    return run


def denied_onnx_ops(count: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """A deterministic sample of (domain, op, opset) that the allow-list refuses, over every
    schema onnx knows (all domains, all versions) and onnxruntime's contrib kernels."""
    candidates: set[tuple[str, str, int]] = set()
    for schema in onnx.defs.get_all_schemas_with_history():
        domain = schema.domain or "ai.onnx"
        if domain == "ai.onnx":
            # The case keeps the module's own opset (18 or 23): ops refused at both.
            if all(allowed_op(domain, schema.name, v) is None for v in (18, 23)):
                candidates.add((schema.domain, schema.name, 23))
        elif allowed_op(domain, schema.name, schema.since_version) is None:
            candidates.add((schema.domain, schema.name, schema.since_version))
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    for kernel in ort_state.get_all_opkernel_def():
        if kernel.domain and allowed_op(kernel.domain, kernel.op_name, 1) is None:
            candidates.add((kernel.domain, kernel.op_name, 1))
    ordered = sorted(candidates)
    by_domain: dict[str, list[tuple[str, str, int]]] = {}
    for item in ordered:
        by_domain.setdefault(item[0], []).append(item)
    rng = random.Random(seed)
    picked: list[tuple[str, str, int]] = []
    # Every domain gets its share, so the sample spans ai.onnx, ai.onnx.ml, training, contrib.
    share = max(count // max(len(by_domain), 1), 1)
    for items in by_domain.values():
        picked.extend(rng.sample(items, min(share, len(items))))
    rest = [c for c in ordered if c not in picked]
    picked.extend(rng.sample(rest, max(count - len(picked), 0)))
    return sorted(picked[:count])


def _opset_case(version: int) -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = version

    return run


# ---------------------------------------------------------------------------------- bombs


def _constant_of_shape(dims: list[int], name: str = "bomb") -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        shape = f"{name}_shape"
        node = helper.make_node("ConstantOfShape", [shape], [name], value=_float("v", [1.0]))
        _add(model, [node], [_int64(shape, dims)], name)

    return run


def _bomb(nodes: list[onnx.NodeProto], inits: list[TensorProto], out: str = "bomb") -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        _add(model, [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes], list(inits), out)

    return run


def _shape_arithmetic(model: onnx.ModelProto, marker: Path) -> None:
    # Shape of a weight, times 10,000, as the shape of a ConstantOfShape.
    weight = next(t for t in model.graph.initializer if len(t.dims) >= 2)
    nodes = [
        helper.make_node("Shape", [weight.name], ["w_shape"]),
        helper.make_node("Slice", ["w_shape", "zero", "two"], ["w_dims"]),
        helper.make_node("Mul", ["w_dims", "k"], ["big_dims"]),
        helper.make_node("ConstantOfShape", ["big_dims"], ["bomb"]),
    ]
    _add(model, nodes, [_int64("zero", [0]), _int64("two", [2]), _int64("k", [100_000])], "bomb")


def _static_input_shape(model: onnx.ModelProto, marker: Path) -> None:
    # A graph input declared with static dims: Shape folds to a constant, then ConstantOfShape.
    model.graph.input.append(helper.make_tensor_value_info("fixed", TensorProto.FLOAT, [BIG, BIG]))
    nodes = [
        helper.make_node("Shape", ["fixed"], ["s"]),
        helper.make_node("ConstantOfShape", ["s"], ["bomb"]),
    ]
    _add(model, nodes, [], "bomb")


def _in_if_body(model: onnx.ModelProto, marker: Path) -> None:
    body = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["outer_shape"], ["inner"])],
        "body",
        [],
        [helper.make_tensor_value_info("inner", TensorProto.FLOAT, None)],
    )
    node = helper.make_node("If", ["cond"], ["bomb"], then_branch=body, else_branch=body)
    cond = numpy_helper.from_array(np.array(True), "cond")
    _add(model, [node], [cond, _int64("outer_shape", [BIG, BIG])], "bomb")


def _in_function(model: onnx.ModelProto, marker: Path) -> None:
    shape = helper.make_node("Constant", [], ["s"], value=_int64("sv", [BIG, BIG]))
    fill = helper.make_node("ConstantOfShape", ["s"], ["y"])
    function = helper.make_function(
        "evil.local", "Fill", ["x"], ["y"], [shape, fill], [helper.make_opsetid("", 18)]
    )
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("evil.local", 1))
    node = helper.make_node("Fill", [_input(model)], ["bomb"], domain="evil.local")
    model.graph.node.append(node)
    _output(model, "bomb")


def _dims_lie(model: onnx.ModelProto, marker: Path) -> None:
    tensor = TensorProto(name="liar", data_type=TensorProto.FLOAT, dims=[BIG, BIG], raw_data=b"\0" * 16)
    _add(model, [helper.make_node("Identity", ["liar"], ["bomb"])], [tensor], "bomb")


def _dims_lie_typed(model: onnx.ModelProto, marker: Path) -> None:
    tensor = TensorProto(name="liar", data_type=TensorProto.INT64, dims=[1 << 40], int64_data=[1, 2])
    _add(model, [helper.make_node("Identity", ["liar"], ["bomb"])], [tensor], "bomb")


def _constant_dims_lie(model: onnx.ModelProto, marker: Path) -> None:
    value = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[BIG, BIG], float_data=[1.0])
    _add(model, [helper.make_node("Constant", [], ["bomb"], value=value)], [], "bomb")


def _negative_dims(model: onnx.ModelProto, marker: Path) -> None:
    tensor = TensorProto(name="neg", data_type=TensorProto.FLOAT, dims=[-1, 4], float_data=[1.0] * 4)
    _add(model, [helper.make_node("Identity", ["neg"], ["bomb"])], [tensor], "bomb")


def _sparse(dims: list[int], *, constant: bool) -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        values = _float("sparse_values", [1.0])
        indices = _int64("sparse_indices", [0])
        sparse = helper.make_sparse_tensor(values, indices, dims)
        if constant:
            _add(model, [helper.make_node("Constant", [], ["bomb"], sparse_value=sparse)], [], "bomb")
        else:
            model.graph.sparse_initializer.append(sparse)
            _add(model, [helper.make_node("Identity", ["sparse_values"], ["bomb"])], [], "bomb")

    return run


def _many_medium(model: onnx.ModelProto, marker: Path) -> None:
    # 40 bombs of 32 MiB each: every one under the floor, all of them far over it.
    for k in range(40):
        _constant_of_shape([8 << 20], name=f"medium{k}")(model, marker)


def _external_shape(model: onnx.ModelProto, marker: Path) -> None:
    # A shape constant kept in model.onnx.data: its value cannot be read when the graph is checked.
    shape = TensorProto(
        name="ext_shape", data_type=TensorProto.INT64, dims=[2], data_location=TensorProto.EXTERNAL
    )
    for key, value in (("location", ONNX_DATA_NAME), ("offset", "0"), ("length", "16")):
        shape.external_data.add(key=key, value=value)
    _add(model, [helper.make_node("ConstantOfShape", ["ext_shape"], ["bomb"])], [shape], "bomb")


def _unbounded_op(op: str, inputs: list[TensorProto], **attrs: object) -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        node = helper.make_node(op, [t.name for t in inputs], ["bomb"], **attrs)
        _add(model, [node], list(inputs), "bomb")

    return run


def bomb_cases() -> dict[str, OnnxCase]:
    one = _float("one", [1.0])
    cases: dict[str, OnnxCase] = {
        "bomb ConstantOfShape 40000x40000": _constant_of_shape([BIG, BIG]),
        "bomb ConstantOfShape 1e12 int64": _constant_of_shape([1 << 40]),
        "bomb ConstantOfShape 6-D": _constant_of_shape([100] * 6),
        "bomb Expand": _bomb(
            [helper.make_node("Expand", ["one", "s"], ["bomb"])], [one, _int64("s", [BIG, BIG])]
        ),
        "bomb Tile": _bomb(
            [helper.make_node("Tile", ["one", "r"], ["bomb"])], [one, _int64("r", [BIG * BIG])]
        ),
        "bomb Range": _bomb(
            [helper.make_node("Range", ["a", "b", "c"], ["bomb"])],
            [_float("a", np.float32(0)), _float("b", np.float32(1e10)), _float("c", np.float32(1))],
        ),
        "bomb Range int64": _bomb(
            [helper.make_node("Range", ["a", "b", "c"], ["bomb"])],
            [numpy_helper.from_array(np.int64(v), n) for n, v in (("a", 0), ("b", 1 << 40), ("c", 1))],
        ),
        "bomb Resize scales": _bomb(
            [helper.make_node("Resize", ["x", "", "scales"], ["bomb"])],
            [_float("x", np.ones((1, 1, 1, 1))), _float("scales", [1, 1, BIG, BIG])],
        ),
        "bomb Resize sizes": _bomb(
            [helper.make_node("Resize", ["x", "", "", "sizes"], ["bomb"])],
            [_float("x", np.ones((1, 1, 1, 1))), _int64("sizes", [1, 1, BIG, BIG])],
        ),
        "bomb Pad": _bomb(
            [helper.make_node("Pad", ["x", "pads"], ["bomb"])],
            [_float("x", np.ones((1, 1))), _int64("pads", [0, 0, BIG, BIG])],
        ),
        "bomb OneHot": _bomb(
            [helper.make_node("OneHot", ["idx", "depth", "vals"], ["bomb"])],
            [_int64("idx", list(range(BIG))), _int64("depth", [BIG]), _float("vals", [0, 1])],
        ),
        "bomb Gather": _bomb(
            [helper.make_node("Gather", ["row", "idx"], ["bomb"], axis=0)],
            [_float("row", np.ones((1, BIG))), _int64("idx", [0] * BIG)],
        ),
        "bomb MatMul outer product": _bomb(
            [helper.make_node("MatMul", ["col", "row"], ["bomb"])],
            [_float("col", np.ones((BIG, 1))), _float("row", np.ones((1, BIG)))],
        ),
        "bomb broadcasting Add": _bomb(
            [helper.make_node("Add", ["col", "row"], ["bomb"])],
            [_float("col", np.ones((BIG, 1))), _float("row", np.ones((1, BIG)))],
        ),
        "bomb Where broadcasting": _bomb(
            [helper.make_node("Where", ["c", "col", "row"], ["bomb"])],
            [
                numpy_helper.from_array(np.array([True]), "c"),
                _float("col", np.ones((BIG, 1))),
                _float("row", np.ones((1, BIG))),
            ],
        ),
        "bomb Einsum": _bomb(
            [helper.make_node("Einsum", ["u", "v"], ["bomb"], equation="i,j->ij")],
            [_float("u", np.ones(BIG)), _float("v", np.ones(BIG))],
        ),
        "bomb ConvTranspose stride": _bomb(
            [helper.make_node("ConvTranspose", ["x", "w"], ["bomb"], strides=[BIG, BIG])],
            [_float("x", np.ones((1, 1, 2, 2))), _float("w", np.ones((1, 1, 1, 1)))],
        ),
        "bomb Concat of expands": _bomb(
            [
                helper.make_node("Expand", ["one", "s"], ["e"]),
                helper.make_node("Concat", ["e", "e"], ["bomb"], axis=0),
            ],
            [one, _int64("s", [BIG, BIG // 2])],
        ),
        "bomb Shape arithmetic": _shape_arithmetic,
        "bomb Shape of a static input": _static_input_shape,
        "bomb in an If body": _in_if_body,
        "bomb in a local function": _in_function,
        "bomb many medium constants": _many_medium,
        "bomb dims lie (raw data)": _dims_lie,
        "bomb dims lie (typed data)": _dims_lie_typed,
        "bomb Constant dims lie": _constant_dims_lie,
        "bomb negative dims": _negative_dims,
        "bomb sparse initializer": _sparse([BIG, BIG], constant=False),
        "bomb sparse Constant": _sparse([BIG, BIG], constant=True),
        "bomb shape in external data": _external_shape,
        "bomb unboundable LSTM from constants": _unbounded_op(
            "LSTM",
            [
                _float("X", np.ones((BIG, 1, 1))),
                _float("W", np.ones((1, 4 * BIG, 1))),
                _float("R", np.ones((1, 4, 1))),
            ],
            hidden_size=BIG,
        ),
        "bomb unboundable HannWindow": _unbounded_op(
            "HannWindow", [numpy_helper.from_array(np.int64(1 << 40), "n")]
        ),
        "bomb unboundable STFT": _unbounded_op(
            "STFT",
            [
                _float("sig", np.ones((1, BIG, 1))),
                numpy_helper.from_array(np.int64(1), "step"),
                _float("win", np.ones(BIG)),
            ],
        ),
    }
    return cases


# ------------------------------------------------------------------ floods and nesting


def _flood(model: onnx.ModelProto, marker: Path) -> None:
    name = _input(model)
    for k in range(100_001):
        model.graph.node.append(helper.make_node("Identity", [name], [f"f{k}"]))
        name = f"f{k}"
    _output(model, name)


def _nested(op: str, depth: int) -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        out = helper.make_tensor_value_info("leaf", TensorProto.FLOAT, None)
        graph = helper.make_graph([helper.make_node("Identity", ["one"], ["leaf"])], "leaf", [], [out])
        leaf = graph
        for level in range(depth):
            name = f"level{level}"
            if op == "If":
                node = helper.make_node("If", ["cond"], [name], then_branch=graph, else_branch=leaf)
            else:
                body_in = [
                    helper.make_tensor_value_info(f"i{level}", TensorProto.INT64, []),
                    helper.make_tensor_value_info(f"c{level}", TensorProto.BOOL, []),
                ]
                body_out = [helper.make_tensor_value_info(f"c{level}_out", TensorProto.BOOL, []), out]
                ident = helper.make_node("Identity", [f"c{level}"], [f"c{level}_out"])
                body = helper.make_graph([ident, *graph.node], f"body{level}", body_in, body_out)
                node = helper.make_node("Loop", ["trip", "cond"], [name], body=body)
            graph = helper.make_graph(
                [node], f"g{level}", [], [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)]
            )
            out = graph.output[0]
        inits = [
            _float("one", [1.0]),
            numpy_helper.from_array(np.array(True), "cond"),
            numpy_helper.from_array(np.int64(2), "trip"),
        ]
        _add(model, list(graph.node), inits, graph.output[0].name)

    return run


def _function_calls_function(model: onnx.ModelProto, marker: Path) -> None:
    inner = helper.make_function(
        "evil.local",
        "Inner",
        ["x"],
        ["y"],
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_opsetid("", 18)],
    )
    outer = helper.make_function(
        "evil.local",
        "Outer",
        ["x"],
        ["y"],
        [helper.make_node("Inner", ["x"], ["y"], domain="evil.local")],
        [helper.make_opsetid("", 18), helper.make_opsetid("evil.local", 1)],
    )
    model.functions.extend([inner, outer])
    model.opset_import.append(helper.make_opsetid("evil.local", 1))
    model.graph.node.append(helper.make_node("Outer", [_input(model)], ["called"], domain="evil.local"))
    _output(model, "called")


def _function_with_denied_op(model: onnx.ModelProto, marker: Path) -> None:
    body = [helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="MAX")]
    function = helper.make_function(
        "evil.local",
        "Norm",
        ["x"],
        ["y"],
        body,
        [helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("evil.local", 1))
    model.graph.node.append(helper.make_node("Norm", [_input(model)], ["called"], domain="evil.local"))
    _output(model, "called")


def _training_info(model: onnx.ModelProto, marker: Path) -> None:
    algorithm = helper.make_graph([], "algorithm", [], [])
    model.training_info.append(onnx.TrainingInfoProto(algorithm=algorithm))


def _denied_op_in_body(model: onnx.ModelProto, marker: Path) -> None:
    out = helper.make_tensor_value_info("inner", TensorProto.FLOAT, None)
    body = helper.make_graph(
        [helper.make_node("Normalizer", ["one"], ["inner"], domain="ai.onnx.ml")], "b", [], [out]
    )
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    node = helper.make_node("If", ["cond"], ["branch_out"], then_branch=body, else_branch=body)
    _add(model, [node], [_float("one", [1.0]), numpy_helper.from_array(np.array(True), "cond")], "branch_out")


def structure_cases() -> dict[str, OnnxCase]:
    return {
        "flood of 100,001 nodes": _flood,
        "If nested 5 deep": _nested("If", 5),
        "If nested 30 deep": _nested("If", 30),
        "Loop nested 5 deep": _nested("Loop", 5),
        "function calls a function": _function_calls_function,
        "function body with an ai.onnx.ml op": _function_with_denied_op,
        "training graphs": _training_info,
        "ai.onnx.ml op in an If body": _denied_op_in_body,
        "opset 7": _opset_case(7),
        "opset 99": _opset_case(99),
    }


# ------------------------------------------------------------------ external data


def _external_edit(**values: str) -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        tensor = max(
            (t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL),
            key=lambda t: int({e.key: e.value for e in t.external_data}["length"]),
        )
        info = {e.key: e.value for e in tensor.external_data}
        info.update({k: v.replace("MARKER", str(marker)) for k, v in values.items()})
        del tensor.external_data[:]
        for key, value in info.items():
            tensor.external_data.add(key=key, value=value)

    return run


def _same_file_twice(model: onnx.ModelProto, marker: Path) -> None:
    tensor = next(t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value="../model.onnx.data")


def _external_in_body(model: onnx.ModelProto, marker: Path) -> None:
    inner = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", ONNX_DATA_NAME), ("offset", "0"), ("length", "16")):
        inner.external_data.add(key=key, value=value)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    branch = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "b", [], [out], [inner])
    node = helper.make_node("If", ["cond"], ["ext_if"], then_branch=branch, else_branch=branch)
    _add(model, [node], [numpy_helper.from_array(np.array(True), "cond")], "ext_if")


def external_cases() -> dict[str, OnnxCase]:
    return {
        "external ../": _external_edit(location="../model.onnx.data"),
        "external absolute marker": _external_edit(location="MARKER"),
        "external /proc/self/environ": _external_edit(location="/proc/self/environ"),
        "external /proc/self/fd/0": _external_edit(location="/proc/self/fd/0"),
        "external /etc/passwd": _external_edit(location="/etc/passwd"),
        "external offset beyond": _external_edit(offset=str(1 << 40)),
        "external length beyond": _external_edit(length=str(1 << 40)),
        "external negative offset": _external_edit(offset="-64"),
        "external basepath key": _external_edit(basepath="/"),
        "external same key twice": _same_file_twice,
        "external in an If body": _external_in_body,
    }


# ------------------------------------------------------------------ dtypes that lie


def _input_dtype(elem: int) -> OnnxCase:
    def run(model: onnx.ModelProto, marker: Path) -> None:
        graph_input = model.graph.input[0]
        graph_input.type.tensor_type.elem_type = elem
        # The graph still computes: the input is cast to what its first consumers expect.
        name = graph_input.name
        for node in model.graph.node:
            node.input[:] = [f"{name}_as_float" if x == name else x for x in node.input]
        model.graph.node.insert(
            0, helper.make_node("Cast", [name], [f"{name}_as_float"], to=TensorProto.FLOAT)
        )

    return run


def dtype_cases() -> dict[str, OnnxCase]:
    return {
        f"input dtype lies: {TensorProto.DataType.Name(elem)}": _input_dtype(elem)
        for elem in (
            TensorProto.INT64,
            TensorProto.UINT8,
            TensorProto.FLOAT16,
            TensorProto.DOUBLE,
            TensorProto.INT32,
        )
    }


def onnx_cases(denied: int = 100) -> dict[str, OnnxCase]:
    """Every hostile graph, by name."""
    cases = {f"op {d or 'ai.onnx'}/{op}@{v}": _op_case(d, op, v) for d, op, v in denied_onnx_ops(denied)}
    cases.update(bomb_cases())
    cases.update(structure_cases())
    cases.update(external_cases())
    cases.update(dtype_cases())
    return cases
