"""The one table of each kind that checking and building a graph share.

The checker accepts exactly the codes and names listed here, and the builder
turns exactly these into torch objects; there is no second copy to drift.
Codes follow ``torch/_export/serde/schema.py`` (schema version 8, torch 2.13).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

__all__ = ["DTYPES", "LAYOUTS", "MEMORY_FORMATS", "SYM_OPERATORS", "sym_operator"]

# ScalarType code -> (torch dtype attribute, element size in bytes). Complex, float8 and
# unsigned types beyond uint8 are not used by the modules modhub exports and are refused.
DTYPES: dict[int, tuple[str, int]] = {
    1: ("uint8", 1),
    2: ("int8", 1),
    3: ("int16", 2),
    4: ("int32", 4),
    5: ("int64", 8),
    6: ("float16", 2),
    7: ("float32", 4),
    8: ("float64", 8),
    12: ("bool", 1),
    13: ("bfloat16", 2),
}
# Layout code -> torch attribute: dense tensors only (sparse internals skip bounds checks).
LAYOUTS: dict[int, str] = {7: "strided"}
# MemoryFormat code -> torch attribute.
MEMORY_FORMATS: dict[int, str] = {
    1: "contiguous_format",
    2: "channels_last",
    3: "channels_last_3d",
    4: "preserve_format",
}


def _sym_max(a: Any, b: Any) -> Any:
    import torch

    return torch.sym_max(a, b)


def _sym_min(a: Any, b: Any) -> Any:
    import torch

    return torch.sym_min(a, b)


# Non-aten call targets an exported graph uses for SymInt arithmetic on sizes, as serialised
# (seen in torch 2.13 exports: add, sub, mul, floordiv, mod, sym_max; neg and sym_min are their
# direct counterparts).
SYM_OPERATORS: dict[str, Callable[..., Any]] = {
    "_operator.add": operator.add,
    "_operator.sub": operator.sub,
    "_operator.mul": operator.mul,
    "_operator.floordiv": operator.floordiv,
    "_operator.mod": operator.mod,
    "_operator.neg": operator.neg,
    "torch.sym_max": _sym_max,
    "torch.sym_min": _sym_min,
}


def sym_operator(target: str) -> Callable[..., Any]:
    """The callable for a shape builtin; torch.sym_max/min themselves when torch is loaded."""
    if target == "torch.sym_max":
        import torch

        return torch.sym_max
    if target == "torch.sym_min":
        import torch

        return torch.sym_min
    return SYM_OPERATORS[target]
