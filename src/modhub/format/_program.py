"""Allow-list checks for the JSON inside a ``graph.pt2``: ``models/model.json``
and the weights/constants payload configs.

The JSON is read with :mod:`json` only; torch never sees it before every
field has passed. A field is accepted only if it has a known key, a value of
the expected type and, for the fields torch interprets (operator targets,
symbolic sizes, guard code, pytree type names, argument kinds), a value from
the allow-lists below. The layout follows ``torch/_export/serde/schema.py``
(schema version 8) as written by torch 2.13.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from modhub.format._exprs import ExprRefused, check_guard, check_symbol_key, check_sympy_repr

__all__ = ["DTYPE_SIZES", "Refused", "check_payload_config", "check_program", "load_json"]


class Refused(Exception):
    """Internal: a field outside the allow-list. ``reason`` names the field and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ScalarType enum value -> element size in bytes (schema.ScalarType; UNKNOWN=0 refused).
DTYPE_SIZES: dict[int, int] = {
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 9: 4, 10: 8, 11: 16, 12: 1, 13: 2,
    28: 2, 29: 1, 30: 1, 31: 1, 32: 1, 33: 1, 34: 4, 35: 8,
}  # fmt: skip
LAYOUT_STRIDED = 7
MEMORY_FORMATS = {0, 1, 2, 3, 4}
SCHEMA_MAJOR = 8
VERIFIERS = {"", "ATEN", "TRAINING"}
MAX_RANK = 16
MAX_DIM = 1 << 48
MAX_INT = 1 << 63
MAX_STRING = 1 << 20

# Non-aten call targets that exported graphs use for shape arithmetic on SymInts.
# Seen in real torch 2.13 exports: add, sub, mul, floordiv, mod and torch.sym_max;
# neg and sym_min are their direct counterparts (``-s``, ``min(s, n)``).
BUILTIN_TARGETS = frozenset(
    {
        "_operator.add",
        "_operator.sub",
        "_operator.mul",
        "_operator.floordiv",
        "_operator.mod",
        "_operator.neg",
        "torch.sym_max",
        "torch.sym_min",
    }
)
_ATEN_TARGET = re.compile(r"torch\.ops\.aten\.([A-Za-z_][A-Za-z0-9_]{0,127})\.([A-Za-z_][A-Za-z0-9_]{0,127})")
# aten operators that touch files, raw memory or devices: never needed by an inference graph.
_DENIED_ATEN = re.compile(
    r"from_file|save|load|unsafe|^set_|storage|record_stream|pin_memory|^_nested_|^_print$|_cufft|cuda|mps"
)

_VALUE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
_FQN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,511}")
_TORCH_VERSION = re.compile(r"[0-9]+\.[0-9]+(\.[0-9]+)?[A-Za-z0-9.+_\-]{0,64}")
_META_KEYS = {"stack_trace", "nn_module_stack", "torch_fn"}
_PYTREE_TYPES = {"builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"}
_FLOAT_WORDS = {"Infinity", "-Infinity", "NaN"}

_WHY = {
    "as_graph": "a subgraph argument (higher-order operator)",
    "as_custom_obj": "an opaque custom object (unpickled or TorchScript)",
    "as_operator": "an operator reference that torch would resolve by name",
    "as_string_to_argument": "a dictionary argument (higher-order operators only)",
    "as_nested_tensors": "a nested tensor list (Triton kernels only)",
    "as_int_lists": "an int-list list (Triton kernels only)",
    "as_float_lists": "a float-list list (Triton kernels only)",
}


# -- JSON and primitive helpers ---------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Refused(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def load_json(data: bytes) -> Any:
    """Parse JSON with :mod:`json`, refusing duplicate keys, bad UTF-8 and absurd nesting."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Refused(f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None


def _keys(obj: Any, where: str, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> dict:
    if not isinstance(obj, dict):
        raise Refused(f"{where} must be an object, got {type(obj).__name__}")
    missing = required - obj.keys()
    if missing:
        raise Refused(f"{where} lacks {sorted(missing)}")
    unknown = obj.keys() - required - optional
    if unknown:
        raise Refused(f"{where} has unknown field(s) {sorted(unknown)}")
    return obj


def _list(obj: Any, where: str, limit: int = 10_000_000) -> list:
    if not isinstance(obj, list):
        raise Refused(f"{where} must be a list, got {type(obj).__name__}")
    if len(obj) > limit:
        raise Refused(f"{where} has {len(obj)} items, more than {limit}")
    return obj


def _dict(obj: Any, where: str, limit: int = 10_000_000) -> dict:
    if not isinstance(obj, dict):
        raise Refused(f"{where} must be an object, got {type(obj).__name__}")
    if len(obj) > limit:
        raise Refused(f"{where} has {len(obj)} entries, more than {limit}")
    return obj


def _int(obj: Any, where: str, lo: int = -MAX_INT, hi: int = MAX_INT) -> int:
    if type(obj) is not int or not lo <= obj <= hi:
        raise Refused(f"{where} must be an integer in [{lo}, {hi}], got {obj!r:.80}")
    return obj


def _bool(obj: Any, where: str) -> bool:
    if type(obj) is not bool:
        raise Refused(f"{where} must be true or false, got {obj!r:.80}")
    return obj


def _float(obj: Any, where: str) -> None:
    # torch writes inf/nan as the strings "Infinity"/"NaN" (json allow_nan=False).
    if isinstance(obj, str) and obj in _FLOAT_WORDS:
        return
    if type(obj) not in (int, float) or (isinstance(obj, float) and not math.isfinite(obj)):
        raise Refused(f"{where} must be a number, got {obj!r:.80}")


def _str(obj: Any, where: str, pattern: re.Pattern[str] | None = None, limit: int = MAX_STRING) -> str:
    if not isinstance(obj, str) or len(obj) > limit:
        raise Refused(f"{where} must be a string of at most {limit} characters")
    if pattern is not None and not pattern.fullmatch(obj):
        raise Refused(f"{where} {obj[:120]!r} is not an allowed name")
    return obj


def _expr(text: Any, where: str, check: Callable[[object], None]) -> None:
    try:
        check(text)
    except ExprRefused as exc:
        raise Refused(f"{where} {str(text)[:120]!r} is not plain shape arithmetic ({exc})") from None


# -- tensors and symbolic values --------------------------------------------------


def _sym_int(obj: Any, where: str, *, concrete: bool = False) -> int | None:
    """A SymInt: ``{"as_int": n}`` or ``{"as_expr": {"expr_str": srepr, "hint": ...}}``."""
    if isinstance(obj, dict) and len(obj) == 1 and "as_int" in obj:
        return _int(obj["as_int"], where, -MAX_DIM, MAX_DIM)
    if concrete:
        raise Refused(f"{where} must be a concrete integer")
    _sym_expr(_keys(obj, where, {"as_expr"}).get("as_expr"), where, hint_kind="as_int")
    return None


def _sym_expr(obj: Any, where: str, *, hint_kind: str) -> None:
    expr = _keys(obj, where, {"expr_str"}, {"hint"})
    _expr(expr["expr_str"], f"{where} expression", check_sympy_repr)
    hint = expr.get("hint")
    if hint is not None:
        _keys(hint, f"{where} hint", {hint_kind})
        value = hint[hint_kind]
        if hint_kind == "as_int":
            _int(value, f"{where} hint")
        elif hint_kind == "as_bool":
            _bool(value, f"{where} hint")
        else:
            _float(value, f"{where} hint")


def _sym_value(obj: Any, where: str, literal: str, hint_kind: str) -> None:
    if isinstance(obj, dict) and len(obj) == 1 and literal in obj:
        if literal == "as_int":
            _int(obj[literal], where)
        elif literal == "as_bool":
            _bool(obj[literal], where)
        else:
            _float(obj[literal], where)
        return
    _sym_expr(_keys(obj, where, {"as_expr"})["as_expr"], where, hint_kind=hint_kind)


def _device(obj: Any, where: str) -> None:
    dev = _keys(obj, where, {"type"}, {"index"})
    if dev["type"] != "cpu" or dev.get("index") not in (None, 0):
        raise Refused(f"{where} device {dev!r:.80} is not the CPU; export on the CPU")


def check_tensor_meta(obj: Any, where: str, *, concrete: bool = False) -> tuple[int, list, list, int | None]:
    """A TensorMeta; returns (element size, sizes, strides, storage offset) (None where symbolic)."""
    meta = _keys(obj, where, {"dtype", "sizes", "requires_grad", "device", "strides", "storage_offset", "layout"})
    dtype = meta["dtype"]
    if type(dtype) is not int or dtype not in DTYPE_SIZES:
        raise Refused(f"{where} dtype {dtype!r:.40} is not a known tensor dtype")
    if meta["layout"] != LAYOUT_STRIDED:
        raise Refused(f"{where} layout {meta['layout']!r:.40} is not strided (sparse/mkldnn tensors are refused)")
    _bool(meta["requires_grad"], f"{where} requires_grad")
    _device(meta["device"], f"{where}")
    sizes = [_sym_int(s, f"{where} size", concrete=concrete) for s in _list(meta["sizes"], where, MAX_RANK)]
    strides = [_sym_int(s, f"{where} stride", concrete=concrete) for s in _list(meta["strides"], where, MAX_RANK)]
    if len(sizes) != len(strides):
        raise Refused(f"{where} has {len(sizes)} sizes but {len(strides)} strides")
    offset = _sym_int(meta["storage_offset"], f"{where} storage_offset", concrete=concrete)
    return DTYPE_SIZES[dtype], sizes, strides, offset


# -- payload configs (weights and constants) ----------------------------------------


def check_payload_config(doc: Any, *, prefix: str, file_sizes: Mapping[str, int]) -> dict[str, bool]:
    """Check a ``*_weights_config.json``/``*_constants_config.json``.

    ``prefix`` is ``weight_`` or ``tensor_``; ``file_sizes`` maps the payload file
    names present next to the config to their sizes. Returns fqn -> is_param.
    Every entry must be raw tensor bytes (``use_pickle: false``) whose file holds
    at least the bytes its sizes/strides/offset address, so torch neither
    unpickles nor allocates more than the archive carries.
    """
    config = _dict(_keys(doc, "payload config", {"config"})["config"], "payload config")
    dtype_of_file: dict[str, int] = {}
    result: dict[str, bool] = {}
    for fqn, entry in config.items():
        where = f"payload {fqn[:120]!r}"
        _str(fqn, where, _FQN)
        meta = _keys(entry, where, {"path_name", "is_param", "use_pickle", "tensor_meta"})
        if meta["use_pickle"] is not False:
            raise Refused(f"{where} is pickled (use_pickle={meta['use_pickle']!r:.20}); only raw tensor bytes load safely")
        path_name = _str(meta["path_name"], f"{where} path_name", limit=256)
        if not re.fullmatch(re.escape(prefix) + r"[0-9]{1,9}", path_name):
            raise Refused(
                f"{where} path_name {path_name!r} is not a raw tensor file ({prefix}N); "
                "custom/opaque objects are unpickled by torch"
            )
        if path_name not in file_sizes:
            raise Refused(f"{where} points at {path_name!r}, which is not in the archive")
        result[fqn] = _bool(meta["is_param"], f"{where} is_param")
        if meta["tensor_meta"] is None:
            raise Refused(f"{where} has no tensor_meta")
        item, sizes, strides, offset = check_tensor_meta(meta["tensor_meta"], where, concrete=True)
        dtype = meta["tensor_meta"]["dtype"]
        if dtype_of_file.setdefault(path_name, dtype) != dtype:
            raise Refused(f"{where} reads {path_name!r} with a different dtype than another entry")
        nbytes = file_sizes[path_name]
        if nbytes % item:
            raise Refused(f"{where}: {path_name!r} holds {nbytes} bytes, not a multiple of {item}")
        assert offset is not None  # concrete=True
        if any(s < 0 for s in (*sizes, *strides, offset)):  # type: ignore[operator]
            raise Refused(f"{where} has a negative size, stride or offset")
        if 0 in sizes:
            continue
        extent = offset + sum((s - 1) * st for s, st in zip(sizes, strides, strict=True)) + 1  # type: ignore[operator]
        if extent * item > nbytes:
            raise Refused(f"{where} addresses {extent * item} bytes but {path_name!r} holds {nbytes}")
    unused = set(file_sizes) - dtype_of_file.keys()
    if unused:
        raise Refused(f"payload file(s) {sorted(unused)[:5]} are not referenced by the config")
    return result


# -- the exported program ----------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _aten_op_exists(op: str, overload: str) -> bool:
    """Look the operator up in the C++ dispatcher registry: no Python attribute access, no import."""
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(f"aten::{op}", "" if overload == "default" else overload)
    except RuntimeError:
        return False
    return True


def _target(target: Any, where: str) -> None:
    _str(target, f"{where} target", limit=300)
    if target in BUILTIN_TARGETS:
        return
    m = _ATEN_TARGET.fullmatch(target)
    if m is None:
        raise Refused(
            f"{where} calls {target[:120]!r}: only torch.ops.aten operators and the shape builtins "
            f"{sorted(BUILTIN_TARGETS)} may be called"
        )
    op, overload = m.groups()
    if _DENIED_ATEN.search(op):
        raise Refused(f"{where} calls {target!r}, an aten operator that reaches files, raw memory or devices")
    if not _aten_op_exists(op, overload):
        raise Refused(f"{where} calls {target!r}, which is not a registered aten operator")


_TENSOR_REF = {"name"}


def _tensor_ref(obj: Any, where: str) -> None:
    _str(_keys(obj, where, _TENSOR_REF)["name"], f"{where} name", _VALUE_NAME)


def _sym_arg(obj: Any, where: str, literal: str) -> None:
    if isinstance(obj, dict) and len(obj) == 1 and "as_name" in obj:
        _str(obj["as_name"], f"{where} name", _VALUE_NAME)
        return
    arg = _keys(obj, where, {literal})
    {"as_int": _int, "as_bool": _bool, "as_float": _float}[literal](arg[literal], where)


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


_ARG_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "as_none": lambda v, w: None,
    "as_tensor": _tensor_ref,
    "as_tensors": _each(_tensor_ref),
    "as_int": lambda v, w: _int(v, w) and None,
    "as_ints": _each(lambda v, w: _int(v, w) and None),
    "as_float": _float,
    "as_floats": _each(_float),
    "as_bool": lambda v, w: _bool(v, w) and None,
    "as_bools": _each(lambda v, w: _bool(v, w) and None),
    "as_string": _printable,
    "as_strings": _each(_printable),
    "as_sym_int": lambda v, w: _sym_arg(v, w, "as_int"),
    "as_sym_ints": _each(lambda v, w: _sym_arg(v, w, "as_int")),
    "as_sym_float": lambda v, w: _sym_arg(v, w, "as_float"),
    "as_sym_floats": _each(lambda v, w: _sym_arg(v, w, "as_float")),
    "as_sym_bool": lambda v, w: _sym_arg(v, w, "as_bool"),
    "as_sym_bools": _each(lambda v, w: _sym_arg(v, w, "as_bool")),
    "as_scalar_type": lambda v, w: _int(v, w, 1, 35) in DTYPE_SIZES or _raise(f"{w} dtype {v} is unknown"),
    "as_memory_format": lambda v, w: _int(v, w, 0, 4) and None,
    "as_layout": lambda v, w: v == LAYOUT_STRIDED or _raise(f"{w} layout {v!r:.20} is not strided"),
    "as_device": _device,
    "as_optional_tensors": _each(_optional_tensor),
    "as_optional_tensor": _optional_tensor,
    "as_complex": lambda v, w: [_float(x, w) for x in _keys(v, w, {"real", "imag"}).values()] and None,
}
# What may appear where: graph inputs/outputs and call signatures carry fewer kinds than node inputs.
NODE_INPUT_KINDS = frozenset(_ARG_CHECKS)
NODE_OUTPUT_KINDS = frozenset(
    {"as_none", "as_tensor", "as_tensors", "as_optional_tensors", "as_sym_int", "as_sym_float", "as_sym_bool"}
)
GRAPH_IO_KINDS = frozenset(
    {"as_none", "as_tensor", "as_sym_int", "as_sym_float", "as_sym_bool", "as_int", "as_float", "as_bool"}
)


def _raise(reason: str) -> None:
    raise Refused(reason)


def _argument(obj: Any, where: str, allowed: frozenset[str]) -> None:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise Refused(f"{where} must be an object with one argument kind")
    ((kind, value),) = obj.items()
    if kind not in allowed:
        why = _WHY.get(kind, "an argument kind plain aten graphs do not use here")
        raise Refused(f"{where} is {kind[:60]!r}, {why}")
    _ARG_CHECKS[kind](value, f"{where} ({kind})")


def _node(node: Any, where: str) -> None:
    n = _keys(node, where, {"target", "inputs", "outputs", "metadata"}, {"is_hop_single_tensor_return", "name"})
    _target(n["target"], where)
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
    for i, out in enumerate(_list(n["outputs"], f"{where} outputs", 1024)):
        _argument(out, f"{where} output {i}", NODE_OUTPUT_KINDS)
    meta = _dict(n["metadata"], f"{where} metadata", 16)
    for key, value in meta.items():
        if key not in _META_KEYS:
            raise Refused(f"{where} metadata field {key[:60]!r} is not one torch.export writes for aten graphs")
        _str(value, f"{where} metadata {key}")


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
    for i, arg in enumerate(_list(g["inputs"], f"{where} inputs")):
        _argument(arg, f"graph input {i}", GRAPH_IO_KINDS)
    for i, arg in enumerate(_list(g["outputs"], f"{where} outputs")):
        _argument(arg, f"graph output {i}", GRAPH_IO_KINDS)
    for i, node in enumerate(_list(g["nodes"], f"{where} nodes")):
        _node(node, f"node {i}")


def _signature(obj: Any, weights: Mapping[str, bool], constants: Mapping[str, bool]) -> None:
    sig = _keys(obj, "signature", {"input_specs", "output_specs"})
    for i, spec in enumerate(_list(sig["input_specs"], "input_specs")):
        where = f"input spec {i}"
        if not isinstance(spec, dict) or len(spec) != 1:
            raise Refused(f"{where} must be an object with one kind")
        ((kind, body),) = spec.items()
        if kind == "user_input":
            _argument(_keys(body, where, {"arg"})["arg"], where, GRAPH_IO_KINDS)
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
            raise Refused(f"{where} is {kind[:60]!r}; only user inputs, parameters, buffers and tensor constants load")
        _tensor_ref(b["arg"], where)
        if _str(name, f"{where} name", _FQN) not in table:
            raise Refused(f"{where} names {name!r}, which the payload configs do not carry")
    for i, spec in enumerate(_list(sig["output_specs"], "output_specs")):
        where = f"output spec {i}"
        if not isinstance(spec, dict) or len(spec) != 1:
            raise Refused(f"{where} must be an object with one kind")
        ((kind, body),) = spec.items()
        if kind == "user_output":
            _argument(_keys(body, where, {"arg"})["arg"], where, GRAPH_IO_KINDS)
        elif kind == "buffer_mutation":
            b = _keys(body, where, {"arg", "buffer_name"})
            _tensor_ref(b["arg"], where)
            _str(b["buffer_name"], f"{where} buffer_name", _FQN)
        else:
            raise Refused(f"{where} is {kind[:60]!r}; only user outputs and buffer updates are allowed")


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
        sig = _keys(e["signature"], where, {"inputs", "outputs", "in_spec", "out_spec"}, {"forward_arg_names"})
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
    _signature(gm["signature"], weights, constants)
    _module_call_graph(gm["module_call_graph"])
