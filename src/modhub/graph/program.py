"""Strict checks of ``models/model.json``, the exported program in a ``graph.pt2``.

The JSON is read with :mod:`json` only; torch never sees it before every
field has passed. A field is accepted only if it has a known key, a value of
the expected type and, for the fields torch interprets (operator targets,
symbolic sizes, guard code, pytree type names, argument kinds), a value from
the allow-lists (operators in :mod:`modhub.graph.operators`, codes in
:mod:`modhub.graph.tables`). Every value is defined once before it is used and
every operator argument is one its schema has, so what passes here is exactly
what :mod:`modhub.graph.build` builds. The layout follows
``torch/_export/serde/schema.py`` (schema version 8) as written by torch 2.13.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from modhub.graph.exprs import check_guard, check_symbol_key
from modhub.graph.fields import (
    _FQN,
    _VALUE_NAME,
    Refused,
    _bool,
    _device,
    _dict,
    _expr,
    _float,
    _int,
    _keys,
    _list,
    _str,
    _sym_value,
    check_tensor_meta,
    load_json,
)
from modhub.graph.operators import is_allowed, refusal
from modhub.graph.tables import DTYPES, LAYOUTS, MEMORY_FORMATS, SYM_OPERATORS

__all__ = ["aten_operator", "check_program"]


SCHEMA_MAJOR = 8
VERIFIERS = {"", "ATEN", "TRAINING"}
_ATEN_TARGET = re.compile(r"torch\.ops\.aten\.([A-Za-z_][A-Za-z0-9_]{0,127})\.([A-Za-z_][A-Za-z0-9_]{0,127})")

_TORCH_VERSION = re.compile(r"[0-9]+\.[0-9]+(\.[0-9]+)?[A-Za-z0-9.+_\-]{0,64}")
_META_KEYS = {"stack_trace", "nn_module_stack", "torch_fn"}
_PYTREE_TYPES = {"builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"}

_WHY = {
    "as_graph": "a subgraph argument (higher-order operator)",
    "as_custom_obj": "an opaque custom object (unpickled or TorchScript)",
    "as_operator": "an operator reference that torch would resolve by name",
    "as_string_to_argument": "a dictionary argument (higher-order operators only)",
    "as_nested_tensors": "a nested tensor list (Triton kernels only)",
    "as_int_lists": "an int-list list (Triton kernels only)",
    "as_float_lists": "a float-list list (Triton kernels only)",
}


# -- the exported program ----------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def aten_operator(name: str) -> Any:
    """The OpOverload of an allow-listed ``name.overload``, looked up by attribute (no import)."""
    import torch

    op, overload = name.split(".")
    return getattr(getattr(torch.ops.aten, op), overload)


@functools.lru_cache(maxsize=1024)
def _schema_arguments(name: str) -> frozenset[str]:
    return frozenset(arg.name for arg in aten_operator(name)._schema.arguments)


def _target(target: Any, where: str) -> str | None:
    """Check a call target; returns the aten ``name.overload`` (None for a shape builtin)."""
    _str(target, f"{where} target", limit=300)
    if target in SYM_OPERATORS:
        return None
    m = _ATEN_TARGET.fullmatch(target)
    if m is None:
        raise Refused(
            f"{where} calls {target[:120]!r}: only torch.ops.aten operators on the allow-list and the "
            f"shape builtins {sorted(SYM_OPERATORS)} may be called"
        )
    name = f"{m.group(1)}.{m.group(2)}"
    if not is_allowed(name):
        raise Refused(f"{where} {refusal(target)}")
    return name


_TENSOR_REF = {"name"}


def _tensor_ref(obj: Any, where: str) -> None:
    _str(_keys(obj, where, _TENSOR_REF)["name"], f"{where} name", _VALUE_NAME)


def _sym_arg(obj: Any, where: str, literal: str) -> None:
    if isinstance(obj, dict) and len(obj) == 1 and "as_name" in obj:
        _str(obj["as_name"], f"{where} name", _VALUE_NAME)
        return
    _scalar(_keys(obj, where, {literal})[literal], where, literal)


def _scalar(value: Any, where: str, kind: str) -> None:
    """A literal int, bool or float argument (``kind`` is as_int, as_bool or as_float)."""
    if kind == "as_int":
        _int(value, where)
    elif kind == "as_bool":
        _bool(value, where)
    else:
        _float(value, where)


def _optional_tensor(obj: Any, where: str) -> None:
    if isinstance(obj, dict) and "as_none" in obj:
        _keys(obj, where, {"as_none"})
        return
    _tensor_ref(_keys(obj, where, {"as_tensor"})["as_tensor"], where)


def _each(check: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    def run(value: Any, where: str) -> None:
        for item in _list(value, where):
            check(item, where)

    return run


def _printable(value: Any, where: str) -> None:
    text = _str(value, where, limit=4096)
    if not text.isprintable():
        raise Refused(f"{where} string contains control characters")


def _scalar_type(value: Any, where: str) -> None:
    if type(value) is not int or value not in DTYPES:
        raise Refused(f"{where} dtype {value!r:.20} is not one modhub loads ({sorted(DTYPES)})")


def _memory_format(value: Any, where: str) -> None:
    if type(value) is not int or value not in MEMORY_FORMATS:
        raise Refused(f"{where} memory format {value!r:.20} is unknown")


def _layout(value: Any, where: str) -> None:
    if type(value) is not int or value not in LAYOUTS:
        raise Refused(f"{where} layout {value!r:.20} is not strided")


def _scalars(kind: str) -> Callable[[Any, str], None]:
    return lambda value, where: _scalar(value, where, kind)


def _sym_args(kind: str) -> Callable[[Any, str], None]:
    return lambda value, where: _sym_arg(value, where, kind)


_ARG_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "as_none": _scalars("as_bool"),
    "as_tensor": _tensor_ref,
    "as_tensors": _each(_tensor_ref),
    "as_int": _scalars("as_int"),
    "as_ints": _each(_scalars("as_int")),
    "as_float": _float,
    "as_floats": _each(_float),
    "as_bool": _scalars("as_bool"),
    "as_bools": _each(_scalars("as_bool")),
    "as_string": _printable,
    "as_strings": _each(_printable),
    "as_sym_int": _sym_args("as_int"),
    "as_sym_ints": _each(_sym_args("as_int")),
    "as_sym_float": _sym_args("as_float"),
    "as_sym_floats": _each(_sym_args("as_float")),
    "as_sym_bool": _sym_args("as_bool"),
    "as_sym_bools": _each(_sym_args("as_bool")),
    "as_scalar_type": _scalar_type,
    "as_memory_format": _memory_format,
    "as_layout": _layout,
    "as_device": _device,
    "as_optional_tensors": _each(_optional_tensor),
    "as_optional_tensor": _optional_tensor,
}
# What may appear where: graph inputs/outputs and call signatures carry fewer kinds than node inputs.
NODE_INPUT_KINDS = frozenset(_ARG_CHECKS)
NODE_OUTPUT_KINDS = frozenset(
    {"as_none", "as_tensor", "as_tensors", "as_optional_tensors", "as_sym_int", "as_sym_float", "as_sym_bool"}
)
# What the module call graph's signatures may mention (not used to build).
GRAPH_IO_KINDS = frozenset(
    {"as_none", "as_tensor", "as_sym_int", "as_sym_float", "as_sym_bool", "as_int", "as_float", "as_bool"}
)
# A modhub graph takes tensors and returns tensors.
GRAPH_TENSOR_KINDS = frozenset({"as_tensor"})
_SINGLE_OUTPUT_KINDS = frozenset(
    {"as_none", "as_tensor", "as_tensors", "as_sym_int", "as_sym_float", "as_sym_bool"}
)
_MULTI_OUTPUT_KINDS = frozenset({"as_none", "as_tensor"})


def _refs(arg: dict[str, Any]) -> Iterator[str]:
    """The value names an (already checked) argument refers to."""
    ((kind, value),) = arg.items()
    if kind == "as_tensor":
        yield value["name"]
    elif kind == "as_tensors":
        yield from (v["name"] for v in value)
    elif kind == "as_optional_tensor":
        if "as_tensor" in value:
            yield value["as_tensor"]["name"]
    elif kind == "as_optional_tensors":
        yield from (v["as_tensor"]["name"] for v in value if "as_tensor" in v)
    elif kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
        if "as_name" in value:
            yield value["as_name"]
    elif kind in ("as_sym_ints", "as_sym_floats", "as_sym_bools"):
        yield from (v["as_name"] for v in value if "as_name" in v)


class _Scope:
    """Values defined so far: each once, before any use."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def define(self, name: str, where: str) -> None:
        if name in self.names:
            raise Refused(f"{where} defines {name!r} a second time")
        self.names.add(name)

    def use(self, arg: dict[str, Any], where: str) -> None:
        for name in _refs(arg):
            if name not in self.names:
                raise Refused(f"{where} uses {name!r} before it is defined")


def _argument(obj: Any, where: str, allowed: frozenset[str]) -> None:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise Refused(f"{where} must be an object with one argument kind")
    ((kind, value),) = obj.items()
    if kind not in allowed:
        why = _WHY.get(kind, "an argument kind plain aten graphs do not use here")
        raise Refused(f"{where} is {kind[:60]!r}, {why}")
    _ARG_CHECKS[kind](value, f"{where} ({kind})")


def _node(node: Any, where: str, scope: _Scope) -> None:
    n = _keys(
        node, where, {"target", "inputs", "outputs", "metadata"}, {"is_hop_single_tensor_return", "name"}
    )
    op = _target(n["target"], where)
    arg_names = _schema_arguments(op) if op is not None else None
    seen: set[str] = set()
    if n.get("name") is not None:
        _str(n["name"], f"{where} name", _VALUE_NAME)
    if n.get("is_hop_single_tensor_return") is not None:
        _bool(n["is_hop_single_tensor_return"], f"{where} is_hop_single_tensor_return")
    for i, named in enumerate(_list(n["inputs"], f"{where} inputs", 1024)):
        arg = _keys(named, f"{where} input {i}", {"name", "arg"}, {"kind"})
        _str(arg["name"], f"{where} input {i} name", _VALUE_NAME)
        if arg.get("kind") not in (None, 0, 1, 2):
            raise Refused(f"{where} input {i} kind {arg.get('kind')!r:.20} is unknown")
        _argument(arg["arg"], f"{where} input {i}", NODE_INPUT_KINDS)
        scope.use(arg["arg"], f"{where} input {i}")
        if arg_names is not None and arg["name"] not in arg_names:
            raise Refused(f"{where} passes {arg['name']!r}, which {n['target']} has no argument called")
        if arg["name"] in seen:
            raise Refused(f"{where} passes {arg['name']!r} twice")
        seen.add(arg["name"])
    outputs = _list(n["outputs"], f"{where} outputs", 1024)
    allowed = _SINGLE_OUTPUT_KINDS if len(outputs) == 1 else _MULTI_OUTPUT_KINDS
    for i, out in enumerate(outputs):
        _argument(out, f"{where} output {i}", allowed)
        for name in _refs(out):
            scope.define(name, f"{where} output {i}")
    meta = _dict(n["metadata"], f"{where} metadata", 16)
    for key, value in meta.items():
        if key not in _META_KEYS:
            raise Refused(
                f"{where} metadata field {key[:60]!r} is not one torch.export writes for aten graphs"
            )
        text = _str(value, f"{where} metadata {key}")
        # Only "\n" may break a line: "\r", "\x0c", "\u2028"... would end a comment in generated code.
        if not text.replace("\n", "").isprintable():
            raise Refused(f"{where} metadata {key} contains control characters")


def _graph(obj: Any, where: str) -> None:
    g = _keys(
        obj,
        where,
        {"inputs", "outputs", "nodes", "tensor_values", "sym_int_values", "sym_bool_values"},
        {"is_single_tensor_return", "custom_obj_values", "sym_float_values"},
    )
    if g.get("custom_obj_values"):
        raise Refused(f"{where} declares custom objects (ScriptObjects/opaque objects are unpickled)")
    if "is_single_tensor_return" in g:
        _bool(g["is_single_tensor_return"], f"{where} is_single_tensor_return")
    for name, meta in _dict(g["tensor_values"], f"{where} tensor_values").items():
        _str(name, "tensor value name", _VALUE_NAME)
        check_tensor_meta(meta, f"tensor value {name!r}")
    for name, value in _dict(g["sym_int_values"], f"{where} sym_int_values").items():
        _str(name, "symint name", _VALUE_NAME)
        _sym_value(value, f"symint {name!r}", "as_int", "as_int")
    for name, value in _dict(g.get("sym_float_values", {}), f"{where} sym_float_values").items():
        _str(name, "symfloat name", _VALUE_NAME)
        _sym_value(value, f"symfloat {name!r}", "as_float", "as_float")
    for name, value in _dict(g["sym_bool_values"], f"{where} sym_bool_values").items():
        _str(name, "symbool name", _VALUE_NAME)
        _sym_value(value, f"symbool {name!r}", "as_bool", "as_bool")
    scope = _Scope()
    for i, arg in enumerate(_list(g["inputs"], f"{where} inputs")):
        _argument(arg, f"graph input {i}", GRAPH_TENSOR_KINDS)
        scope.define(arg["as_tensor"]["name"], f"graph input {i}")
    for i, node in enumerate(_list(g["nodes"], f"{where} nodes")):
        _node(node, f"node {i}", scope)
    outputs = _list(g["outputs"], f"{where} outputs")
    if not outputs:
        raise Refused(f"{where} has no outputs")
    for i, arg in enumerate(outputs):
        _argument(arg, f"graph output {i}", GRAPH_TENSOR_KINDS)
        scope.use(arg, f"graph output {i}")


def _signature(
    obj: Any, graph: dict[str, Any], weights: Mapping[str, bool], constants: Mapping[str, bool]
) -> None:
    sig = _keys(obj, "signature", {"input_specs", "output_specs"})
    inputs = [arg["as_tensor"]["name"] for arg in graph["inputs"]]
    if len(_list(sig["input_specs"], "input_specs")) != len(inputs):
        raise Refused(f"input_specs has {len(sig['input_specs'])} entries for {len(inputs)} graph inputs")
    if len(_list(sig["output_specs"], "output_specs")) != len(graph["outputs"]):
        raise Refused(
            f"output_specs has {len(sig['output_specs'])} entries for {len(graph['outputs'])} graph outputs"
        )
    for i, spec in enumerate(sig["input_specs"]):
        where = f"input spec {i}"
        if not isinstance(spec, dict) or len(spec) != 1:
            raise Refused(f"{where} must be an object with one kind")
        ((kind, body),) = spec.items()
        if kind == "user_input":
            arg = _keys(body, where, {"arg"})["arg"]
            _argument(arg, where, GRAPH_TENSOR_KINDS)
            if arg["as_tensor"]["name"] != inputs[i]:
                raise Refused(
                    f"{where} names {arg['as_tensor']['name']!r} but graph input {i} is {inputs[i]!r}"
                )
            continue
        if kind == "parameter":
            b = _keys(body, where, {"arg", "parameter_name"})
            name, table = b["parameter_name"], weights
        elif kind == "buffer":
            b = _keys(body, where, {"arg", "buffer_name", "persistent"})
            name = b["buffer_name"]
            table = weights if _bool(b["persistent"], f"{where} persistent") else constants
        elif kind == "tensor_constant":
            b = _keys(body, where, {"arg", "tensor_constant_name"})
            name, table = b["tensor_constant_name"], constants
        else:
            raise Refused(
                f"{where} is {kind[:60]!r}; only user inputs, parameters, buffers and tensor constants load"
            )
        _tensor_ref(b["arg"], where)
        if b["arg"]["name"] != inputs[i]:
            raise Refused(f"{where} names {b['arg']['name']!r} but graph input {i} is {inputs[i]!r}")
        if _str(name, f"{where} name", _FQN) not in table:
            raise Refused(f"{where} names {name!r}, which the payload configs do not carry")
    for i, spec in enumerate(sig["output_specs"]):
        where = f"output spec {i}"
        if not isinstance(spec, dict) or len(spec) != 1:
            raise Refused(f"{where} must be an object with one kind")
        ((kind, body),) = spec.items()
        if kind != "user_output":
            # buffer_mutation included: an eval-mode export updates no buffers.
            raise Refused(f"{where} is {kind[:60]!r}; only user outputs are allowed (export in eval mode)")
        arg = _keys(body, where, {"arg"})["arg"]
        _argument(arg, where, GRAPH_TENSOR_KINDS)
        if arg != graph["outputs"][i]:
            raise Refused(f"{where} does not name graph output {i}")


def _treespec_node(node: Any, where: str, depth: int) -> None:
    if depth > 32:
        raise Refused(f"{where} is nested deeper than 32")
    n = _keys(node, where, {"type", "context", "children_spec"})
    children = _list(n["children_spec"], f"{where} children", 100_000)
    if n["type"] is None:
        if n["context"] is not None or children:
            raise Refused(f"{where} leaf carries a context or children")
        return
    if n["type"] not in _PYTREE_TYPES:
        raise Refused(
            f"{where} container type {str(n['type'])[:120]!r} is not one of {sorted(_PYTREE_TYPES)} "
            "(other types would be imported by name)"
        )
    context = load_json(_str(n["context"], f"{where} context").encode())
    if n["type"] in ("builtins.tuple", "builtins.list"):
        if context is not None:
            raise Refused(f"{where} {n['type']} context must be null")
    else:
        keys = _list(context, f"{where} context", 100_000)
        if any(type(k) not in (str, int) for k in keys) or len(keys) != len(children):
            raise Refused(f"{where} dict keys must be strings or integers, one per child")
    for child in children:
        _treespec_node(child, where, depth + 1)


def _treespec(text: Any, where: str) -> None:
    doc = load_json(_str(text, where).encode())
    if not isinstance(doc, list) or len(doc) != 2 or doc[0] != 1 or type(doc[0]) is not int:
        raise Refused(f"{where} must be [1, spec] (pytree protocol 1)")
    _treespec_node(doc[1], where, 0)


def _module_call_graph(obj: Any) -> None:
    for i, entry in enumerate(_list(obj, "module_call_graph")):
        e = _keys(entry, f"module call {i}", {"fqn"}, {"signature"})
        if e["fqn"] != "":
            _str(e["fqn"], f"module call {i} fqn", _FQN)
        if e.get("signature") is None:
            continue
        where = f"module call {i} signature"
        sig = _keys(
            e["signature"], where, {"inputs", "outputs", "in_spec", "out_spec"}, {"forward_arg_names"}
        )
        for arg in _list(sig["inputs"], where):
            _argument(arg, f"{where} input", GRAPH_IO_KINDS)
        for arg in _list(sig["outputs"], where):
            _argument(arg, f"{where} output", GRAPH_IO_KINDS)
        _treespec(sig["in_spec"], f"{where} in_spec")
        _treespec(sig["out_spec"], f"{where} out_spec")
        if sig.get("forward_arg_names") is not None:
            for name in _list(sig["forward_arg_names"], where, 1024):
                _str(name, f"{where} forward_arg_names", _VALUE_NAME)


def check_program(doc: Any, *, weights: Mapping[str, bool], constants: Mapping[str, bool]) -> None:
    """Check a parsed ``models/model.json`` against the allow-list."""
    prog = _keys(
        doc,
        "program",
        {"graph_module", "opset_version", "range_constraints", "schema_version"},
        {"verifiers", "torch_version", "guards_code"},
    )
    version = _keys(prog["schema_version"], "schema_version", {"major", "minor"})
    if version["major"] != SCHEMA_MAJOR:
        raise Refused(f"schema_version major {version['major']!r:.20} is not {SCHEMA_MAJOR} (torch 2.13)")
    _int(version["minor"], "schema_version minor", 0, 10_000)
    for name, value in _dict(prog["opset_version"], "opset_version", 4).items():
        if name != "aten":
            raise Refused(f"opset {name[:60]!r} is not aten")
        _int(value, "opset_version aten", 0, 10_000)
    for verifier in _list(prog.get("verifiers", []), "verifiers", 4):
        if verifier not in VERIFIERS:
            raise Refused(f"verifier {str(verifier)[:60]!r} is not one of {sorted(VERIFIERS)}")
    if "torch_version" in prog:
        _str(prog["torch_version"], "torch_version", _TORCH_VERSION)
    for line in _list(prog.get("guards_code", []), "guards_code", 100_000):
        _expr(line, "guard", check_guard)
    for key, bounds in _dict(prog["range_constraints"], "range_constraints", 100_000).items():
        _expr(key, "range constraint", check_symbol_key)
        rc = _keys(bounds, f"range constraint {key!r}", {"min_val", "max_val"})
        for side in ("min_val", "max_val"):
            if rc[side] is not None:
                _int(rc[side], f"range constraint {key!r} {side}")
    gm = _keys(
        prog["graph_module"],
        "graph_module",
        {"graph", "signature", "module_call_graph"},
        {"metadata", "treespec_namedtuple_fields"},
    )
    if gm.get("metadata"):
        raise Refused("graph_module metadata is not empty (custom metadata is not written for modhub graphs)")
    if gm.get("treespec_namedtuple_fields"):
        raise Refused("graph_module declares namedtuple types (torch would import them by name)")
    _graph(gm["graph"], "graph")
    _signature(gm["signature"], gm["graph"], weights, constants)
    _module_call_graph(gm["module_call_graph"])
