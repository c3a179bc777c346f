"""What every loaded module has, whatever runs it: manifest, task, labels, input preparation.

Torch-free: the onnx runtime builds on this in processes that never import torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from modhub.format.manifest import Manifest
from modhub.format.tasks import get_contract, parse_labels
from modhub.format.verify import FileRecords, VerifiedModule
from modhub.runtimes.preprocessing import TextEncoder, check_images, is_torch_tensor

if TYPE_CHECKING:
    from modhub.client.cache import ModuleCache

# What a call returns: always numpy arrays, always torch tensors, or torch
# tensors when the input was a torch tensor and numpy arrays otherwise.
Output = Literal["numpy", "torch", "like-input"]


class ModuleInfo:
    """The manifest-derived half of a loaded module, shared by all runtimes and ``Layer``.

    Attributes: ``manifest``, ``task``, ``modality`` ("image" or "text"),
    ``labels`` (classification modules, else None), ``path``.
    """

    manifest: Manifest
    path: Path

    def _init_info(self, verified: VerifiedModule) -> None:
        manifest = verified.manifest
        self.path = verified.root
        self.manifest = manifest
        self.task = manifest.task
        # Fingerprint of the trusted key that signed the module (None without MODHUB_TRUSTED_KEYS).
        self.signed_by = verified.signed_by
        self.modality = get_contract(manifest.task).modality
        tok = manifest.preprocessing.tokenizer
        self._encoder = TextEncoder(tok, verified.files[tok.file]) if tok is not None else None
        self.labels: list[str] | None = (
            parse_labels(verified.files[manifest.labels], manifest.labels) if manifest.labels else None
        )


class LoadedModule(ModuleInfo):
    """A module ready to call: ``module(images)`` or ``module(["some text"])``.

    Calls run without autograd; use ``hub.Layer`` to train through a module.
    ``runtime`` names what runs the graph ("torch" or "onnx").
    """

    runtime: ClassVar[str]
    output: Output

    def __init__(
        self,
        verified: VerifiedModule,
        output: Output,
        records: FileRecords | None = None,
        cache: ModuleCache | None = None,
    ) -> None:
        """``records``, ``cache``: for a runtime that verifies or derives files itself (see Runtime)."""
        self._init_info(verified)
        self.output = output

    def __call__(self, inputs: Any) -> Any:
        raise NotImplementedError

    def _wants_torch(self, inputs: Any) -> bool:
        if self.output == "like-input":
            return is_torch_tensor(inputs)
        return self.output == "torch"

    def _image_batch(self, inputs: Any) -> Any:
        return check_images(inputs, self.manifest)

    def __repr__(self) -> str:
        return f"LoadedModule(task={self.task!r}, runtime={self.runtime!r}, path={str(self.path)!r})"


class Runtime:
    """Runs a module's graph; one instance per runtime, registered by name in ``modhub.runtimes``.

    A runtime names its engine's package (``engine``), the module file it runs
    (``graph_file``) and the class of the modules it loads (``module_class``,
    built as ``module_class(verified, output, records, cache)``).
    """

    name: ClassVar[str]
    engine: ClassVar[str]
    graph_file: ClassVar[str]
    module_class: ClassVar[type[LoadedModule]]

    def available(self) -> bool:
        """Whether this runtime's engine can be imported here."""
        return importlib.util.find_spec(self.engine) is not None

    def has_format(self, manifest: Manifest) -> bool:
        """Whether the module carries the file this runtime runs."""
        return any(entry.path == self.graph_file for entry in manifest.files)

    def needed_files(self, manifest: Manifest) -> set[str]:
        """The module files ``verify_module`` reads into memory for this runtime.

        Labels and the tokenizer are always read; a runtime may open (and
        verify) its own large file itself in ``build``. Files no runtime
        reads are neither read nor hashed. By default: the graph file.
        """
        return {self.graph_file}

    def build(
        self,
        verified: VerifiedModule,
        output: Output,
        records: FileRecords | None,
        cache: ModuleCache | None = None,
    ) -> LoadedModule:
        """The loaded module; ``records`` for any file the runtime verifies itself.

        ``cache``: the load's client cache (the one object the load opened the
        module with), where a runtime may keep what it derives from a module for
        this machine (None: it derives nothing).
        """
        return self.module_class(verified, output, records, cache)
