"""Loading modules: ``load`` (a callable), ``Layer`` (torch) and ``KerasLayer`` (Keras 3).

All three open a module the same way (:mod:`modhub.loading.opener`: handle → a
verified directory) and differ only in what they build from it. ``load`` imports
no torch; ``Layer`` and ``KerasLayer`` are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modhub.loading.loader import load

if TYPE_CHECKING:
    from modhub.loading.keras_layer import KerasLayer
    from modhub.loading.layer import Layer

__all__ = ["KerasLayer", "Layer", "load"]

_LAZY = {"Layer": "modhub.loading.layer", "KerasLayer": "modhub.loading.keras_layer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'modhub.loading' has no attribute {name!r}")
