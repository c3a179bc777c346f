"""modhub: publish, find and reuse pretrained machine-learning modules.

    import modhub as hub
    module = hub.load("modhub/minilm-l6/1")
    embeddings = module(["hello world"])
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
import warnings
from typing import TYPE_CHECKING, Any, cast

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
    InvalidModule,
    InvalidRequest,
    ManifestError,
    MissingExtra,
    ModuleNotFound,
    OfflineError,
    PermissionDenied,
    RateLimited,
    TooLarge,
    UnsafeModuleError,
    ZooError,
)
from modhub.errors import missing_extra as _missing_extra

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
    "InvalidModule",
    "InvalidRequest",
    "KerasLayer",
    "Layer",
    "ManifestError",
    "MissingExtra",
    "ModuleNotFound",
    "OfflineError",
    "PermissionDenied",
    "RateLimited",
    "TooLarge",
    "UnsafeModuleError",
    "ZooError",
    "__version__",
    "export",
    "load",
    "resolve",
    "wrap_onnx",
]

if TYPE_CHECKING:
    from importlib.abc import Loader

    from modhub.client.resolve import resolve
    from modhub.exporting.onnx_wrap import wrap_onnx
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
    "wrap_onnx": "modhub.exporting.onnx_wrap",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            home = importlib.import_module(_LAZY[name])
        except ImportError as exc:
            # hub.Layer without torch installed: say which extra brings it (MissingExtra).
            error = _missing_extra(exc, f"hub.{name}")
            if error is None:
                raise
            raise error from None
        value = getattr(home, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modhub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


# Modules that moved when the package took its layers (ARCHITECTURE.md), old name -> the modules
# that now hold its public names. `import modhub.publishing` keeps working, with a DeprecationWarning.
_MOVED: dict[str, tuple[str, ...]] = {
    "modhub.images": ("modhub.runtimes.images",),
    "modhub.keras_layer": ("modhub.loading.keras_layer",),
    "modhub.layer": ("modhub.loading.layer",),
    "modhub.onnx_export": ("modhub.exporting.onnx",),
    "modhub.preprocessing": ("modhub.runtimes.preprocessing",),
    "modhub.publishing": ("modhub.client.publish", "modhub.client.tokens"),
    "modhub.saved_model_module": ("modhub.exporting.savedmodel",),
    "modhub.server.storage_s3": ("modhub.server.storage.s3",),
    "modhub.signing": ("modhub.exporting.signing", "modhub.format.signature", "modhub.errors"),
}


class _MovedModules:
    """Imports an old module name as a module that forwards to where its names live now.

    A meta path finder and its own loader (the protocols of ``importlib.abc``, not
    subclassed: importing that module would cost every ``import modhub`` ~20 ms).
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, cast("Loader", self))

    def create_module(self, spec: Any) -> types.ModuleType:
        homes = _MOVED[spec.name]
        where = " and ".join(homes)
        warnings.warn(f"{spec.name} moved to {where}; import it from there", DeprecationWarning, stacklevel=2)
        module = types.ModuleType(spec.name, f"Moved to {', '.join(homes)}.")

        def forward(name: str) -> Any:
            for home in homes:
                target = importlib.import_module(home)
                if hasattr(target, name):
                    return getattr(target, name)
            raise AttributeError(f"module {spec.name!r} (moved to {where}) has no attribute {name!r}")

        module.__getattr__ = forward  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
