"""The module manifest, ``modhub.json`` (format_version 1).

The manifest is the one file a loader reads first: it says what the module
does (task), how to call it (signatures), how inputs are prepared before the
graph sees them (preprocessing), and lists every other file with its size and
sha256 so that nothing can be swapped after publishing.

Everything here is a frozen pydantic model: read with :func:`read_manifest`,
write with :func:`write_manifest`. Unknown fields are refused so that a typo
in a hand-written manifest is an error, not a silently ignored setting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path, PurePath, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modhub.errors import ManifestError, UnsafeModuleError
from modhub.format._files import (
    MAX_MANIFEST_BYTES,
    Changed,
    NotRegular,
    TooLarge,
    read_regular,
)
from modhub.format.atomic import write_text
from modhub.format.digests import SHA256_PATTERN, sha256_file

FORMAT_VERSION: Literal[1] = 1
MANIFEST_NAME = "modhub.json"
CARD_NAME = "README.md"
GRAPH_NAME = "graph.pt2"
ONNX_NAME = "model.onnx"
# model.onnx's weights, as ONNX external data (modules exported before it have them inside model.onnx).
ONNX_DATA_NAME = "model.onnx.data"
ASSETS_DIR = "assets"
# The detached signature (OpenSSF model-signing bundle); not listed in files, it signs them.
SIGNATURE_NAME = "modhub.sig"
# Files the manifest may not list: they describe or sign the listed files.
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
# TensorFlow formats a module may carry beside graph.pt2 (same weights, checked at conversion).
SAVED_MODEL_DIR = "saved_model"
SAVED_MODEL_PB = "saved_model/saved_model.pb"
TFLITE_NAME = "model.tflite"
# Each format a module can carry, and the file that proves it is there.
FORMAT_FILES: dict[str, str] = {
    "pt2": GRAPH_NAME,
    "onnx": ONNX_NAME,
    "savedmodel": SAVED_MODEL_PB,
    "tflite": TFLITE_NAME,
}
Format = Literal["pt2", "onnx", "savedmodel", "tflite"]

DType = Literal["float32", "float16", "bfloat16", "int64", "int32", "bool", "string"]
# A dimension is a fixed size or a symbolic name such as "batch" or "sequence".
Dim = Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(_Frozen):
    """One named input or output of a signature."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Element type; "string" means a list of Python strings (text inputs).
    dtype: DType
    # Sizes per dimension; symbolic names mark dynamic dimensions.
    shape: tuple[Dim, ...]
    # What the values mean, e.g. "RGB image, channels first".
    description: str = ""
    # Memory layout for images ("NCHW"), None otherwise.
    layout: str | None = None
    # Expected value range of the input, e.g. (0.0, 1.0) for images.
    value_range: tuple[float, float] | None = None


class Signature(_Frozen):
    """What a caller passes and gets back."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class TokenizerSpec(_Frozen):
    """Tokenisation done inside the module call (``tokenizers`` library).

    The settings are stored here explicitly and applied on load, overriding
    whatever padding/truncation the tokenizer file itself carries.
    """

    # Path of the tokenizers JSON file, relative to the module directory.
    file: str = "assets/tokenizer.json"
    # Longest token sequence fed to the graph; longer texts are truncated.
    max_length: int = Field(gt=0)
    # "longest": pad to the longest text in the batch; "max_length": always pad to max_length.
    padding: Literal["longest", "max_length"] = "longest"
    truncation: bool = True
    # Token id used for padding.
    pad_id: int = 0
    # Which tokenizer field feeds which graph input, in graph input order.
    # Fields: "input_ids", "attention_mask", "token_type_ids".
    graph_inputs: tuple[Literal["input_ids", "attention_mask", "token_type_ids"], ...] = (
        "input_ids",
        "attention_mask",
    )


class ImagePreprocessing(_Frozen):
    """What an image module expects; normalisation itself happens inside the graph."""

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    # Normalisation applied inside the graph (informational, for the model card).
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    # How the module brings photos of any size to height x width (modhub.runtimes.images):
    # "squash" (whole photo, aspect not kept), "crop" (cover, centre crop) or "pad"
    # (fit, borders filled with the mean). Applied by the module to photo inputs.
    resize: Literal["squash", "crop", "pad"] = "crop"

    @field_validator("resize", mode="before")
    @classmethod
    def _legacy_resize(cls, value: Any) -> Any:
        # Manifests written before the policy was structured carried this sentence.
        return "crop" if value == "resize shorter side, centre crop" else value


class Preprocessing(_Frozen):
    """Exactly one of ``image`` or ``tokenizer`` is set for the built-in tasks."""

    image: ImagePreprocessing | None = None
    tokenizer: TokenizerSpec | None = None


class FileEntry(_Frozen):
    """A file of the module, other than the manifest itself."""

    # POSIX path relative to the module directory.
    path: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_PATTERN)

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        check_relative_path(value)
        return value


class Metadata(_Frozen):
    """Descriptive facts shown on the hub; not used to run the module."""

    # Human title, e.g. "EfficientNet-Lite0 image feature vector".
    title: str = ""
    description: str = ""
    architecture: str = ""
    # Data the weights were trained on, e.g. "ImageNet-1k".
    dataset: str = ""
    # Handle of the module this one was derived from (transfer learning).
    base_module: str | None = None
    tags: tuple[str, ...] = ()
    # Where the weights come from (package name and file), for provenance.
    source: str = ""
    # Free-form extras (training metrics, ...), JSON-serialisable.
    extra: dict[str, Any] = Field(default_factory=dict)


class Manifest(_Frozen):
    """``modhub.json``."""

    format_version: Literal[1] = FORMAT_VERSION
    # Task name from the contract registry, e.g. "image-feature-vector".
    task: str
    # "pytorch": graph.pt2 is the reference; "tensorflow": a published SavedModel without one.
    framework: Literal["pytorch", "tensorflow"] = "pytorch"
    # torch.__version__ at export time ("" for a tensorflow module).
    torch_version: str
    # Public call signatures; "default" is what ``hub.load(h)(x)`` calls.
    signatures: dict[str, Signature]
    # The graph's own inputs and outputs. Equal to the default signature for
    # image modules; for text modules the graph takes token tensors.
    graph_inputs: tuple[TensorSpec, ...]
    graph_outputs: tuple[TensorSpec, ...]
    preprocessing: Preprocessing = Preprocessing()
    # Path of the labels file (one label per line), if the task has labels.
    labels: str | None = None
    # SPDX licence identifier, e.g. "Apache-2.0".
    license: str
    # Whether training the weights further (``Layer(trainable=True)``) is meaningful.
    fine_tunable: bool = True
    metadata: Metadata = Metadata()
    # Every file except modhub.json, sorted by path.
    files: tuple[FileEntry, ...]
    # Formats the module carries (see FORMAT_FILES); () in manifests written before formats were listed.
    formats: tuple[Format, ...] = ()

    @model_validator(mode="after")
    def _formats_present(self) -> Manifest:
        paths = {entry.path for entry in self.files}
        for fmt in self.formats:
            if FORMAT_FILES[fmt] not in paths:
                raise ValueError(f"formats lists {fmt!r} but files has no {FORMAT_FILES[fmt]}")
        return self

    @model_validator(mode="after")
    def _paths_are_own_files(self) -> Manifest:
        """Every path the manifest names is one of its listed files, listed once.

        Checked here, when the manifest is parsed, so no task contract or
        loader can forget it: ``labels: "/proc/self/environ"`` or a tokenizer
        at ``../../x`` never reaches a reader.
        """
        check_listed_files(self.files)
        listed = {entry.path for entry in self.files}
        references = {"labels": self.labels}
        if self.preprocessing.tokenizer is not None:
            references["preprocessing.tokenizer.file"] = self.preprocessing.tokenizer.file
        for field_name, ref in references.items():
            if ref is not None and ref not in listed:
                raise ValueError(
                    f"{field_name} is {ref[:200]!r}, which is not one of the module's listed files; "
                    "every path in modhub.json must name a file listed in 'files' (relative, inside "
                    "the module). Re-export the module with modhub.export."
                )
        return self

    @property
    def default_signature(self) -> Signature:
        return self.signatures["default"]

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise ManifestError(f"modhub.json lists no file {path!r}", path=path)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def detect_formats(paths: Iterable[str]) -> tuple[Format, ...]:
    """The formats whose file is among ``paths``, in FORMAT_FILES order."""
    present = set(paths)
    return tuple(fmt for fmt, path in FORMAT_FILES.items() if path in present)  # type: ignore[misc]


def is_hidden(rel_path: str | PurePath) -> bool:
    """Whether a path inside a module (or a data folder) is hidden: a part of it starts with ".".

    Hidden names (``.git``, ``.DS_Store``, the cache's ``.stamp``, a temp file
    being written) belong to tools, never to a module: they are not listed,
    not checked as unlisted, not signed and not read as data.
    """
    parts = rel_path.parts if isinstance(rel_path, PurePath) else rel_path.split("/")
    return any(part.startswith(".") for part in parts)


def check_relative_path(value: str) -> None:
    """Refuse absolute paths, ``..``, backslashes and control characters in a file name."""
    bad = (
        not value
        or value.startswith("/")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
        or PurePosixPath(value).is_absolute()
        or any(part in ("", ".", "..") for part in value.split("/"))
        or ":" in value.split("/")[0]
    )
    if bad:
        raise ValueError(f"unsafe file path {value!r}: use a relative POSIX path without '..'")


def check_listed_files(entries: tuple[FileEntry, ...]) -> None:
    """No duplicates (also by case), no reserved names, no file that is another one's directory."""
    seen: dict[str, str] = {}
    paths = {entry.path for entry in entries}
    for entry in entries:
        folded = entry.path.casefold()
        if folded in seen:
            raise ValueError(
                f"files lists {entry.path!r} twice (or next to {seen[folded]!r}, equal ignoring case); "
                "list each file once"
            )
        seen[folded] = entry.path
        if entry.path in RESERVED_NAMES:
            raise ValueError(f"files may not list {entry.path!r}: it describes or signs the listed files")
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in paths:
                raise ValueError(f"files lists {'/'.join(parts[:depth])!r} both as a file and as a folder")


def parse_manifest(data: bytes | str, *, path: Path | None = None) -> Manifest:
    """Parse ``modhub.json`` strictly: JSON types must be the declared ones ("12" is not a size)."""
    try:
        raw = json.loads(data, object_pairs_hook=_no_duplicate_keys)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(f"modhub.json is not valid JSON: {exc}", path=path) from None
    except _DuplicateKey as exc:
        raise ManifestError(f"modhub.json has the key {exc.key!r} twice; keep one", path=path) from None
    if not isinstance(raw, dict):
        raise ManifestError("modhub.json must hold a JSON object", path=path)
    version = raw.get("format_version")
    if version != FORMAT_VERSION or type(version) is not int:
        raise ManifestError(
            f"modhub.json has format_version {version!r}; this modhub reads format_version "
            f"{FORMAT_VERSION}. Upgrade modhub (pip install -U modhub) or re-export the module.",
            path=path,
        )
    try:
        return Manifest.model_validate_json(data, strict=True)
    except ValidationError as exc:
        raise ManifestError(f"modhub.json is malformed:\n{exc}", path=path) from None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key[:100])
            seen.add(key)
    return out


def read_manifest(module_dir: str | os.PathLike[str]) -> Manifest:
    """Read and parse ``modhub.json`` once: a regular file (no symlink, FIFO or device), size-capped."""
    data = read_manifest_bytes(module_dir)
    return parse_manifest(data, path=Path(module_dir) / MANIFEST_NAME)


def read_manifest_bytes(module_dir: str | os.PathLike[str]) -> bytes:
    """The bytes of ``modhub.json``, read once with the same rules as :func:`read_manifest`."""
    root = Path(module_dir)
    path = root / MANIFEST_NAME
    try:
        return read_regular(root, MANIFEST_NAME, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise ManifestError(
            f"{module_dir} is not a modhub module: it has no {MANIFEST_NAME}. "
            "Create one with modhub.export(...).",
            path=path,
        ) from None
    except NotRegular as exc:
        raise UnsafeModuleError(
            f"{MANIFEST_NAME} is refused: it is {exc.kind}; a module holds regular files only", path=path
        ) from None
    except NotADirectoryError:
        raise ManifestError(f"{module_dir} is not a directory; a module is a directory", path=root) from None
    except TooLarge as exc:
        raise ManifestError(
            f"{MANIFEST_NAME} has {exc.size} bytes, more than the {MAX_MANIFEST_BYTES} modhub reads",
            path=path,
        ) from None
    except Changed:
        raise ManifestError(f"{MANIFEST_NAME} changed while it was read; try again", path=path) from None


def write_manifest(module_dir: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``modhub.json`` atomically (:func:`modhub.format.atomic.write_text`)."""
    return write_text(Path(module_dir) / MANIFEST_NAME, manifest.to_json())


def list_files(module_dir: Path) -> tuple[FileEntry, ...]:
    """Size and sha256 of every file in a module directory, manifest excluded."""
    entries = []
    for path in sorted(module_dir.rglob("*")):
        if path.is_symlink():
            raise ManifestError(f"{path} is a symbolic link; modules hold plain files only", path=path)
        if not path.is_file():
            continue
        rel = path.relative_to(module_dir).as_posix()
        if rel in RESERVED_NAMES or is_hidden(rel):
            continue
        entries.append(FileEntry(path=rel, size=path.stat().st_size, sha256=sha256_file(path)))
    return tuple(entries)
