"""Field-level checks of the ``graph.pt2`` reader.

JSON parsing, typed primitives (bounded integers, names, strings), symbolic
sizes, tensor metadata and the weights/constants payload configs. Every
check raises :class:`Refused` with a reason that names the field.
"""

from __future__ import annotations

import gc
import json
import keyword
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from modhub.graph.exprs import ExprRefused, check_sympy_repr
from modhub.graph.tables import DTYPES, LAYOUTS

__all__ = ["Refused", "check_payload_config", "check_tensor_meta", "load_json"]


class Refused(Exception):
    """Internal: a field outside the allow-list. ``reason`` names the field and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


MAX_RANK = 16
MAX_DIM = 1 << 48
MAX_INT = 1 << 63
MAX_STRING = 1 << 20
# Value names become Python identifiers in the code torch.fx generates and execs,
# and dotted fqns become module attributes: identifiers only, no dunders, no keywords.
_VALUE_NAME = re.compile(r"(?!__)(?!(?:" + "|".join(keyword.kwlist) + r")$)[A-Za-z_][A-Za-z0-9_]{0,255}")
_FQN = re.compile(
    r"(?!__)(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?:\.(?!__)(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)){0,63}"
)
_FLOAT_WORDS = {"Infinity", "-Infinity", "NaN"}


# -- JSON and primitive helpers ---------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise Refused(f"duplicate JSON key {duplicate[:60]!r}")
    return out


def load_json(data: bytes) -> Any:
    """Parse JSON with :mod:`json`, refusing duplicate keys, bad UTF-8 and absurd nesting."""
    # Parsing allocates many small containers and nothing cyclic; a garbage collection
    # triggered midway would scan torch's whole heap (measured: 0.2 s of a 0.3 s check).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Refused(f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    finally:
        if gc_was_enabled:
            gc.enable()


def _keys(
    obj: Any, where: str, required: set[str], optional: frozenset[str] | set[str] = frozenset()
) -> dict:
    if not isinstance(obj, dict):
        raise Refused(f"{where} must be an object, got {type(obj).__name__}")
    missing = required - obj.keys()
    if missing:
        raise Refused(f"{where} lacks {sorted(missing)}")
    unknown = obj.keys() - required - optional
    if unknown:
        raise Refused(f"{where} has unknown field(s) {[k[:60] for k in sorted(unknown)][:5]}")
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
    meta = _keys(
        obj, where, {"dtype", "sizes", "requires_grad", "device", "strides", "storage_offset", "layout"}
    )
    dtype = meta["dtype"]
    if type(dtype) is not int or dtype not in DTYPES:
        raise Refused(f"{where} dtype {dtype!r:.40} is not one modhub loads ({sorted(DTYPES)})")
    if type(meta["layout"]) is not int or meta["layout"] not in LAYOUTS:
        raise Refused(
            f"{where} layout {meta['layout']!r:.40} is not strided (sparse/mkldnn tensors are refused)"
        )
    _bool(meta["requires_grad"], f"{where} requires_grad")
    _device(meta["device"], f"{where}")
    sizes = [_sym_int(s, f"{where} size", concrete=concrete) for s in _list(meta["sizes"], where, MAX_RANK)]
    strides = [
        _sym_int(s, f"{where} stride", concrete=concrete) for s in _list(meta["strides"], where, MAX_RANK)
    ]
    if len(sizes) != len(strides):
        raise Refused(f"{where} has {len(sizes)} sizes but {len(strides)} strides")
    offset = _sym_int(meta["storage_offset"], f"{where} storage_offset", concrete=concrete)
    return DTYPES[dtype][1], sizes, strides, offset


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
            raise Refused(
                f"{where} is pickled (use_pickle={meta['use_pickle']!r:.20}); "
                "only raw tensor bytes load without unpickling"
            )
        path_name = _str(meta["path_name"], f"{where} path_name", limit=256)
        if not re.fullmatch(re.escape(prefix) + r"[0-9]{1,9}", path_name):
            raise Refused(
                f"{where} path_name {path_name[:120]!r} is not a raw tensor file name ({prefix}N); "
                "custom/opaque objects are unpickled by torch and other paths are refused"
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
