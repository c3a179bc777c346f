"""modhub: publish, find and reuse pretrained machine-learning modules.

    import modhub as hub
    module = hub.load("modhub/minilm-l6/1")
    embeddings = module(["hello world"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modhub.errors import (
    AuthenticationError,
    Conflict,
    ContractError,
    ExportError,
    HubError,
    HubHTTPError,
    InputError,
    IntegrityError,
    InvalidHandle,
    ManifestError,
    ModuleNotFound,
    OfflineError,
    PermissionDenied,
    UnsafeModuleError,
    ZooError,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "Conflict",
    "ContractError",
    "ExportError",
    "HubError",
    "HubHTTPError",
    "InputError",
    "IntegrityError",
    "InvalidHandle",
    "KerasLayer",
    "Layer",
    "ManifestError",
    "ModuleNotFound",
    "OfflineError",
    "PermissionDenied",
    "UnsafeModuleError",
    "ZooError",
    "__version__",
    "export",
    "load",
    "resolve",
]

if TYPE_CHECKING:
    from modhub.client.resolve import resolve
    from modhub.exporting.pytorch import export
    from modhub.loading.keras_layer import KerasLayer
    from modhub.loading.layer import Layer
    from modhub.loading.loader import load

# The public functions import torch (and keras); import them on first use so
# that `import modhub` and the CLI start fast.
_LAZY = {
    "export": "modhub.exporting.pytorch",
    "load": "modhub.loading.loader",
    "Layer": "modhub.loading.layer",
    "resolve": "modhub.client.resolve",
    "KerasLayer": "modhub.loading.keras_layer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modhub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
