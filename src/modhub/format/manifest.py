"""The module manifest, ``modhub.json`` (format_version 1).

The manifest is the one file a loader reads first: it says what the module
does (task), how to call it (signatures), how inputs are prepared before the
graph sees them (preprocessing), and lists every other file with its size and
sha256 so that nothing can be swapped after publishing.

Everything here is a frozen pydantic model: read with :func:`read_manifest`,
write with :func:`write_manifest`.

Manifests evolve additively (docs/module-format.md, "How manifests evolve"):
a reader ignores optional fields it does not know, and still verifies every
listed file by its digest; a change that alters what a known field means
bumps ``format_version``, which a reader refuses with the version it needs.
Fields that newer modhub versions added are written only when they carry a
value, so a module that does not use them stays readable by older clients.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePath, PurePosixPath
from typing import Annotated, Any, Literal, get_args

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
# A TF.js graph model: tfjs/model.json names its weight shards, which lie beside it.
TFJS_DIR = "tfjs"
TFJS_MODEL = "tfjs/model.json"
# Each format a module can carry, and the file that proves it is there.
FORMAT_FILES: dict[str, str] = {
    "pt2": GRAPH_NAME,
    "onnx": ONNX_NAME,
    "savedmodel": SAVED_MODEL_PB,
    "tflite": TFLITE_NAME,
    "tfjs": TFJS_MODEL,
}
Format = Literal["pt2", "onnx", "savedmodel", "tflite", "tfjs"]
# The first release that reads each format added after 0.2 (releases before it refuse the
# manifest's "formats" list): modhub.json then says requires.modhub, so they say what to upgrade.
FORMAT_SINCE: dict[str, str] = {"tfjs": "0.3"}
# Formats whose graph files each signature carries in its own folder (Signature.path).
SIGNATURE_FORMATS: dict[str, tuple[str, ...]] = {"pt2": (GRAPH_NAME,), "onnx": (ONNX_NAME,)}

# Element types, by their numpy names; "string" is text (Python str).
DType = Literal[
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
    "string",
]
DTYPES: tuple[str, ...] = get_args(DType)
# A dimension is a fixed size or a symbolic name such as "batch" or "sequence".
DIM_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
Dim = Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=DIM_NAME_PATTERN)]
TENSOR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SIGNATURE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# What a tensor holds, beyond its dtype and shape. For inputs it says what a caller may pass
# besides arrays: "image" (photos), "audio" (sound files, waveforms with a rate), "text" (strings).
# For outputs it says how to read or draw them.
Kind = Literal[
    "image", "audio", "text", "mask", "boxes", "scores", "classes", "keypoints", "embedding", "count"
]
Layout = Literal["NCHW", "NHWC", "CHW", "HWC"]
BoxFormat = Literal["yxyx", "xyxy", "xywh", "cxcywh"]


class _Frozen(BaseModel):
    # extra="ignore": a field added by a newer modhub is skipped, never fatal (see the module doc).
    model_config = ConfigDict(frozen=True, extra="ignore")


class TensorSpec(_Frozen):
    """One named input or output of a signature: dtype, shape and, optionally, what it means."""

    name: str = Field(pattern=TENSOR_NAME_PATTERN)
    # Element type; "string" means text (a list of Python strings).
    dtype: DType
    # Sizes per dimension; symbolic names mark dynamic dimensions (no batch dimension required).
    # A name used twice in one signature means the sizes are equal.
    shape: tuple[Dim, ...]
    # What the values mean, e.g. "RGB image, channels first".
    description: str = ""
    # Memory layout for images ("NCHW", "NHWC", ...), None otherwise.
    layout: Layout | None = None
    # Value range, e.g. (0.0, 1.0) for float images, (0, 255) for uint8/int32 images.
    value_range: tuple[float, float] | None = None
    # What the tensor holds (see Kind); None for plain tensors. Images and texts of the four
    # original tasks leave it unset: their task says it (see modhub.format.tasks.tensor_kind).
    kind: Kind | None = None
    # Colour order of an image tensor; None means RGB.
    color: Literal["RGB", "BGR"] | None = None
    # Samples per second of an audio tensor.
    sample_rate: int | None = Field(default=None, gt=0)
    # Seconds between consecutive frames of a per-frame output (audio), and each frame's length.
    frame_hop: float | None = Field(default=None, gt=0)
    frame_length: float | None = Field(default=None, gt=0)
    # Audio inputs: the longest clip (seconds) the graph takes in one call; longer sound is cut
    # into segments of this length, run one after another, per-frame outputs concatenated.
    segment: float | None = Field(default=None, gt=0)
    # Path of a label file (one label per line, a listed file) naming this output's classes.
    labels: str | None = None
    # Coordinates of a box output: corner order, and whether they are fractions of the image.
    box_format: BoxFormat | None = None
    normalized: bool | None = None
    # Names of the points of a keypoints output, in order (e.g. the 17 COCO keypoints).
    keypoints: tuple[str, ...] | None = None


class Signature(_Frozen):
    """What a caller passes and gets back, and where the graph that computes it lives."""

    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    # Folder (relative, inside the module) holding this signature's graph files: graph.pt2,
    # model.onnx, model.onnx.data. None: the module root (the default signature's files).
    path: str | None = None
    # The graph's own inputs/outputs when they differ from the signature's (text: strings in,
    # token ids to the graph). None: the same. The default signature uses the manifest's
    # top-level graph_inputs/graph_outputs.
    graph_inputs: tuple[TensorSpec, ...] | None = None
    graph_outputs: tuple[TensorSpec, ...] | None = None

    @field_validator("path")
    @classmethod
    def _safe_folder(cls, value: str | None) -> str | None:
        if value is not None:
            check_relative_path(value)
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Signature:
        for what, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [spec.name for spec in specs]
            if len(set(names)) != len(names):
                raise ValueError(f"a signature's {what} must have distinct names, found {names}")
        return self

    def file(self, name: str) -> str:
        """The module path of this signature's graph file ``name`` (e.g. "model.onnx")."""
        return f"{self.path}/{name}" if self.path else name

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise ManifestError(f"the signature has no input {name!r}; its inputs: {self.input_names}")

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]


class Requires(_Frozen):
    """The oldest releases a module needs; a reader older than that says what to upgrade."""

    # Oldest modhub that reads this module, e.g. "0.2".
    modhub: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)*$")
    # Oldest onnxruntime that runs its model.onnx (its opset), e.g. "1.20".
    onnxruntime: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)*$")


# Reduced-precision variants a module may carry beside its exact graph (`modhub quantize`);
# `hub.load(h, precision="int8")` runs one. The exact graph stays the default.
Precision = Literal["int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


class Agreement(_Frozen):
    """How closely a variant's outputs follow the exact graph's, measured when it was made."""

    # "cosine": per-sample cosine of the outputs (embeddings, feature vectors);
    # "top1": share of samples whose highest-scoring class is the same (classifiers).
    metric: Literal["cosine", "top1"]
    # Mean cosine, or the top-1 agreement as a fraction (0.985 = 98.5 %).
    mean: float = Field(ge=-1.0, le=1.0)
    # Lowest per-sample cosine (cosine); None for top1.
    minimum: float | None = Field(default=None, ge=-1.0, le=1.0)
    # Largest absolute difference over every output value.
    max_abs_diff: float = Field(ge=0.0)
    # The floor ``mean`` had to reach for the variant to be written.
    floor: float = Field(ge=-1.0, le=1.0)
    # How many samples, and what they were ("200 photos from calib/", "64 probe inputs").
    samples: int = Field(gt=0)
    probe: str


class Variant(_Frozen):
    """A reduced-precision ONNX copy of the module's graphs, in a folder of its own.

    The default signature's graph is ``<path>/model.onnx``; another signature's is
    ``<path>/<signature path>/model.onnx``. Each may have its ``model.onnx.data`` beside it.
    """

    # Folder of the variant's files, e.g. "int8".
    path: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # "dynamic": weights quantized, activations at run time; "static": activations calibrated.
    method: Literal["dynamic", "static"]
    # How it was made, for the card and for whoever reproduces it (quant format, per-channel,
    # op types, nodes kept in float, calibration method and size, tool versions).
    recipe: dict[str, Any] = Field(default_factory=dict)
    agreement: Agreement
    # The signatures the variant has graphs for ("default" always).
    signatures: tuple[str, ...] = ("default",)

    def file(self, signature: Signature, name: str = ONNX_NAME) -> str:
        """The module path of ``signature``'s graph file ``name`` in this variant."""
        return f"{self.path}/{signature.file(name)}"


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
    # What made the reference graph: "pytorch" (graph.pt2), "onnx" (a module wrapped around a
    # plain model.onnx, no torch graph), "tensorflow" (a published SavedModel without either).
    framework: Literal["pytorch", "onnx", "tensorflow"] = "pytorch"
    # torch.__version__ at export time ("" for a module without a torch graph).
    torch_version: str = ""
    # Public call signatures, "default" first: what ``hub.load(h)(x)`` calls.
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
    # The oldest modhub / onnxruntime the module needs; None when any release reads it.
    requires: Requires | None = None
    # Reduced-precision variants by precision ("int8"); None when the module has none.
    variants: dict[Precision, Variant] | None = None

    @model_validator(mode="after")
    def _signatures_named(self) -> Manifest:
        if "default" not in self.signatures:
            raise ValueError("signatures must include 'default', the signature hub.load(h)(x) calls")
        for name in self.signatures:
            if not re.match(SIGNATURE_NAME_PATTERN, name):
                raise ValueError(f"signature name {name[:100]!r} must be an identifier (letters, digits, _)")
        if self.signatures["default"].path is not None:
            raise ValueError("the default signature's graph lives at the module root: drop its 'path'")
        return self

    @model_validator(mode="after")
    def _formats_present(self) -> Manifest:
        paths = {entry.path for entry in self.files}
        for fmt in self.formats:
            if FORMAT_FILES[fmt] not in paths:
                raise ValueError(f"formats lists {fmt!r} but files has no {FORMAT_FILES[fmt]}")
            for sig_name, sig in self.signatures.items():
                for name in SIGNATURE_FORMATS.get(fmt, ()):
                    if sig.file(name) not in paths:
                        raise ValueError(
                            f"formats lists {fmt!r} but signature {sig_name!r} has no {sig.file(name)}"
                        )
        return self

    @model_validator(mode="after")
    def _variants_present(self) -> Manifest:
        paths = {entry.path for entry in self.files}
        folders = set()
        for precision, variant in (self.variants or {}).items():
            if variant.path in folders or variant.path in paths:
                raise ValueError(f"variant {precision!r}: folder {variant.path!r} is not its own")
            folders.add(variant.path)
            if "default" not in variant.signatures:
                raise ValueError(f"variant {precision!r} must have a graph for the default signature")
            for sig_name in variant.signatures:
                if sig_name not in self.signatures:
                    raise ValueError(f"variant {precision!r} names no signature of the module: {sig_name!r}")
                graph = variant.file(self.signatures[sig_name])
                if graph not in paths:
                    raise ValueError(
                        f"variant {precision!r} lists signature {sig_name!r} but files has no {graph}"
                    )
            # Everything in the variant's folder is one of its graphs (or their external data).
            own = {
                variant.file(self.signatures[sig_name], name)
                for sig_name in variant.signatures
                for name in (ONNX_NAME, ONNX_DATA_NAME)
            }
            stray = sorted(p for p in paths if p.startswith(variant.path + "/") and p not in own)
            if stray:
                raise ValueError(
                    f"variant {precision!r}: {stray[0]!r} is in its folder but is none of its graphs"
                )
        return self

    def variant(self, precision: str) -> Variant:
        """The variant ``precision``; a ManifestError saying which the module has, and how to add one."""
        if precision not in PRECISIONS:
            raise ManifestError(
                f"precision must be one of {list(PRECISIONS)} (or None for the exact graph), "
                f"not {precision[:40]!r}"
            )
        variant = (self.variants or {}).get(precision)  # type: ignore[call-overload]
        if variant is None:
            have = sorted(self.variants or {})
            raise ManifestError(
                f"this module has no {precision} variant (variants: {have or 'none'}); load it without "
                f"precision=, or add one with `modhub quantize DIR` and publish a new version"
            )
        return variant

    def variant_files(self, precision: str) -> tuple[str, ...]:
        """The module paths of variant ``precision``'s files (graphs and their external data)."""
        folder = self.variant(precision).path + "/"
        return tuple(e.path for e in self.files if e.path.startswith(folder))

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
        for sig_name, sig in self.signatures.items():
            for spec in (*sig.inputs, *sig.outputs, *(sig.graph_outputs or ())):
                if spec.labels is not None:
                    references[f"signatures.{sig_name}.{spec.name}.labels"] = spec.labels
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

    def signature(self, name: str = "default") -> Signature:
        """The signature ``name``; a ManifestError listing the module's signatures if it has none."""
        try:
            return self.signatures[name]
        except KeyError:
            raise ManifestError(
                f"this module has no signature {name[:100]!r}; it has {list(self.signatures)}"
            ) from None

    def graph_inputs_of(self, name: str = "default") -> tuple[TensorSpec, ...]:
        """What signature ``name``'s graph itself takes (token ids for a text signature)."""
        sig = self.signature(name)
        if name == "default":
            return self.graph_inputs
        return sig.graph_inputs if sig.graph_inputs is not None else sig.inputs

    def graph_outputs_of(self, name: str = "default") -> tuple[TensorSpec, ...]:
        sig = self.signature(name)
        if name == "default":
            return self.graph_outputs
        return sig.graph_outputs if sig.graph_outputs is not None else sig.outputs

    def has_file(self, path: str) -> bool:
        return any(entry.path == path for entry in self.files)

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise ManifestError(f"modhub.json lists no file {path!r}", path=path)

    def to_json(self) -> str:
        # exclude_none: a field a newer modhub added is written only when it carries a value, so a
        # module that does not use it stays readable by older clients (which refuse unknown fields).
        data = self.model_dump(mode="json", exclude_none=True)
        # A format older releases cannot parse: they are told which release reads it instead.
        needed = max(
            (FORMAT_SINCE[f] for f in self.formats if f in FORMAT_SINCE), key=version_tuple, default=None
        )
        have = self.requires.modhub if self.requires is not None else None
        if needed is not None and (have is None or _older(have, needed)):
            data["requires"] = {**data.get("requires", {}), "modhub": needed}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


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
    needs = _required_modhub(raw)
    if version != FORMAT_VERSION or type(version) is not int:
        upgrade = f"this module needs modhub >= {needs}" if needs else "it needs a newer modhub"
        raise ManifestError(
            f"modhub.json has format_version {version!r} and this modhub ({modhub_version()}) reads "
            f"format_version {FORMAT_VERSION}: {upgrade}. Upgrade modhub (pip install -U modhub) "
            "or re-export the module.",
            path=path,
        )
    if needs and _older(modhub_version(), needs):
        raise ManifestError(
            f"this module needs modhub >= {needs} and this is modhub {modhub_version()}: "
            "pip install -U modhub",
            path=path,
        )
    try:
        return Manifest.model_validate_json(data, strict=True)
    except ValidationError as exc:
        raise ManifestError(f"modhub.json is malformed:\n{exc}", path=path) from None


def modhub_version() -> str:
    """The installed modhub's version ("0" when it runs from a source tree without metadata)."""
    try:
        return importlib.metadata.version("modhub")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _required_modhub(raw: dict[str, Any]) -> str | None:
    requires = raw.get("requires")
    needs = requires.get("modhub") if isinstance(requires, dict) else None
    return needs if isinstance(needs, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)*", needs) else None


def _older(have: str, need: str) -> bool:
    """Whether release ``have`` is older than ``need`` (numeric parts; a suffix such as "+cpu" ignored)."""
    return version_tuple(have) < version_tuple(need)


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.32.0+cpu"`` -> (1, 32, 0): the leading numeric parts of a release string."""
    parts = []
    for part in re.split(r"[.+-]", text):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def check_engine(manifest: Manifest, engine: str, installed: str, *, path: Path | None = None) -> None:
    """Refuse, saying what to upgrade, a module that needs a newer ``engine`` (e.g. onnxruntime)."""
    needs = getattr(manifest.requires, engine, None) if manifest.requires is not None else None
    if needs and _older(installed, needs):
        raise ManifestError(
            f"this module needs {engine} >= {needs} and {installed} is installed: pip install -U {engine}",
            path=path,
        )


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
