"""What every loaded module has, whatever runs it: manifest, task, labels, signatures, input preparation.

Torch-free: the onnx runtime builds on this in processes that never import torch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from modhub.errors import IntegrityError, ManifestError
from modhub.format.describe import describe_spec
from modhub.format.manifest import Manifest
from modhub.format.tasks import module_modality, parse_labels
from modhub.format.verify import FileRecords, VerifiedModule
from modhub.runtimes.calls import SignatureCall, input_kind
from modhub.runtimes.preprocessing import TextEncoder, check_images, is_torch_tensor

if TYPE_CHECKING:
    from modhub.client.cache import ModuleCache

# What a call returns: always numpy arrays, always torch tensors, or torch
# tensors when an input was a torch tensor and numpy arrays otherwise.
Output = Literal["numpy", "torch", "like-input"]
# Opens the module again through the one load path (open_module -> verify_module) for the
# files of a signature that is used after the load: the loader passes it to the runtime.
Reopen = Callable[[Collection[str]], VerifiedModule]


class ModuleInfo:
    """The manifest-derived half of a loaded module, shared by all runtimes and ``Layer``.

    Attributes: ``manifest``, ``task``, ``modality`` ("image", "text", "audio",
    or "tensor" for anything else), ``labels`` (classification modules, else
    None), ``path``.
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
        self.modality = _modality(manifest)
        tok = manifest.preprocessing.tokenizer
        self._encoder = TextEncoder(tok, verified.files[tok.file]) if tok is not None else None
        self.labels: list[str] | None = _labels(verified)
        self._calls: dict[str, SignatureCall] = {}

    def _signature_call(self, name: str = "default") -> SignatureCall:
        """How signature ``name`` is called (made once per signature)."""
        call = self._calls.get(name)
        if call is None:
            call = self._calls[name] = SignatureCall(name, self.manifest, self._encoder)
        return call


def _modality(manifest: Manifest) -> str:
    """The task's modality; a module whose one input is strings (no ``kind``) takes text too."""
    modality = module_modality(manifest)
    inputs = manifest.default_signature.inputs
    if modality == "tensor" and len(inputs) == 1 and input_kind(inputs[0], manifest) == "text":
        return "text"
    return modality


def _labels(verified: VerifiedModule) -> list[str] | None:
    """The class labels of the module (manifest.labels, or the default signature's output's labels)."""
    manifest = verified.manifest
    path = manifest.labels
    if path is None:
        path = next((s.labels for s in manifest.default_signature.outputs if s.labels), None)
    if path is None or path not in verified.files:
        return None
    return parse_labels(verified.files[path], path)


class SignatureFunction:
    """One signature of a loaded module, called like the module: ``fn(x)``, ``fn(a, b)``, ``fn(a=..)``.

    ``inputs`` and ``outputs`` are its TensorSpecs (name, dtype, shape, meaning).
    Its graph is built on the first call, from files verified as the module's were.
    """

    def __init__(self, module: LoadedModule, name: str) -> None:
        self._module = module
        self.name = name
        signature = module.manifest.signature(name)
        self.inputs = signature.inputs
        self.outputs = signature.outputs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._module.call_signature(self.name, args, kwargs)

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}: {describe_spec(s)}" for s in self.inputs)
        outs = ", ".join(f"{s.name}: {describe_spec(s)}" for s in self.outputs)
        return f"<signature {self.name!r}({ins}) -> ({outs})>"


class Signatures(Mapping[str, SignatureFunction]):
    """``module.signatures``: each signature of the module by name, "default" first (like TF Hub's)."""

    def __init__(self, module: LoadedModule) -> None:
        self._module = module
        self._names = list(module.manifest.signatures)

    def __getitem__(self, name: str) -> SignatureFunction:
        if name not in self._names:
            raise KeyError(f"this module has no signature {name!r}; it has {', '.join(self._names)}")
        return SignatureFunction(self._module, name)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Signatures({self._names})"


class LoadedModule(ModuleInfo):
    """A module ready to call: ``module(x)``, ``module(a, b)``, ``module(content=a, style=b)``.

    One output comes back as an array or tensor, several as a dict by output
    name; ``module.signatures["name"](...)`` calls another signature (see
    :mod:`modhub.runtimes.calls` for what inputs may be). Calls run without
    autograd; use ``hub.Layer`` to train through a module. ``runtime`` names
    what runs the graph ("torch" or "onnx").

    A runtime subclass builds an engine per signature (``_build_engine``) and
    runs it on the prepared graph inputs (``_run``); the default signature's is
    built at load, the others on first use.
    """

    runtime: ClassVar[str]
    output: Output
    # The reduced-precision variant that runs ("int8"), or None for the exact graphs.
    precision: str | None = None

    def __init__(
        self,
        verified: VerifiedModule,
        output: Output,
        records: FileRecords | None = None,
        cache: ModuleCache | None = None,
        reopen: Reopen | None = None,
    ) -> None:
        """``records``, ``cache``: for a runtime that verifies or derives files itself (see Runtime);
        ``reopen``: how the files of another signature are opened and verified on first use."""
        self._init_info(verified)
        self.output = output
        self._records = records
        self._reopen = reopen
        self._engines: dict[str, Any] = {}
        self.signatures: Signatures = Signatures(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call_signature("default", args, kwargs)

    def call_signature(self, name: str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        """Call signature ``name`` with positional ``args`` and keyword ``kwargs``."""
        call = self._signature_call(name)
        bound = call.bind(args, kwargs)
        torch_out = self.output == "torch" or (self.output == "like-input" and call.wants_torch(bound))
        engine = self._engine(name)
        named = call.run(lambda args: self._run(engine, call, args), call.prepare(bound))
        return call.result({key: self._convert_output(value, torch_out) for key, value in named.items()})

    def _engine(self, name: str) -> Any:
        engine = self._engines.get(name)
        if engine is None:
            engine = self._engines[name] = self._build_engine(self._open_signature(name), name)
        return engine

    def _open_signature(self, name: str) -> VerifiedModule:
        """The module opened again for signature ``name``'s files, through the load path."""
        files = self.signature_files(name)
        if self._reopen is None:
            raise ManifestError(f"signature {name!r} cannot be opened here; load the module with hub.load")
        verified = self._reopen(files)
        if verified.manifest != self.manifest:
            raise IntegrityError(
                f"modhub.json of {self.path} changed since the module was loaded; load it again",
                path=self.path,
            )
        return verified

    def signature_files(self, name: str) -> set[str]:
        """The module files this runtime reads (and verifies) for signature ``name``."""
        raise NotImplementedError

    def _build_engine(self, verified: VerifiedModule, name: str) -> Any:
        raise NotImplementedError

    def _run(self, engine: Any, call: SignatureCall, args: list[Any]) -> Any:
        """The graph's results (one value or a tuple, in graph output order) for ``args``."""
        raise NotImplementedError

    def _convert_output(self, value: Any, torch_out: bool) -> Any:
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
    (``graph_file``, in the module root for the default signature and in
    ``Signature.path`` for the others) and the class of the modules it loads
    (``module_class``, built as ``module_class(verified, output, records, cache, reopen)``).
    """

    name: ClassVar[str]
    engine: ClassVar[str]
    graph_file: ClassVar[str]
    module_class: ClassVar[type[LoadedModule]]

    def available(self) -> bool:
        """Whether this runtime's engine can be imported here."""
        return importlib.util.find_spec(self.engine) is not None

    def has_format(self, manifest: Manifest, signature: str = "default") -> bool:
        """Whether the module carries the file this runtime runs (for signature ``signature``)."""
        return manifest.has_file(manifest.signature(signature).file(self.graph_file))

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
        reopen: Reopen | None = None,
    ) -> LoadedModule:
        """The loaded module; ``records`` for any file the runtime verifies itself.

        ``cache``: the load's client cache (the one object the load opened the
        module with), where a runtime may keep what it derives from a module for
        this machine (None: it derives nothing). ``reopen``: opens and verifies
        the files of another signature when it is first called.
        """
        return self.module_class(verified, output, records, cache, reopen)
