"""Task contracts ("common signatures"): modules of one task are interchangeable.

A contract is a small class registered under its task name with
:func:`register_task`. ``check_contract(manifest, files)`` looks the task
up and runs its checks; both ``export`` and the hub's publish call it.
``files`` holds the verified bytes of the module's files (see
:func:`modhub.format.verify.verify_module`); contracts never open files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

from modhub.errors import ContractError
from modhub.format.manifest import Manifest, TensorSpec

__all__ = [
    "TaskContract",
    "check_contract",
    "get_contract",
    "parse_labels",
    "register_task",
    "task_names",
]

# The module's files by path, as read (and verified) by modhub.format.verify.
Files = Mapping[str, bytes]


class TaskContract(Protocol):
    name: ClassVar[str]
    # "image" or "text": the kind of input callers pass.
    modality: ClassVar[str]
    # Name of the single output of the default signature.
    output_name: ClassVar[str]

    def check(self, manifest: Manifest, files: Files | None) -> None:
        """Raise ContractError if the manifest (and files, when given) break the contract."""
        ...


_REGISTRY: dict[str, TaskContract] = {}


def register_task(cls: type[TaskContract]) -> type[TaskContract]:
    contract = cls()
    _REGISTRY[contract.name] = contract
    return cls


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_contract(task: str) -> TaskContract:
    try:
        return _REGISTRY[task]
    except KeyError:
        raise ContractError(f"unknown task {task!r}; modhub knows: {', '.join(task_names())}") from None


def check_contract(manifest: Manifest, files: Files | None = None) -> None:
    """Run the task's checks on the manifest and ``files``, the verified bytes read by the caller."""
    get_contract(manifest.task).check(manifest, files)


def _fail(manifest: Manifest, message: str) -> None:
    raise ContractError(f"task {manifest.task!r}: {message}")


def _single(manifest: Manifest, specs: tuple[TensorSpec, ...], what: str) -> TensorSpec:
    if len(specs) != 1:
        _fail(manifest, f"the default signature must have exactly one {what}, found {len(specs)}")
    return specs[0]


def _expect(manifest: Manifest, spec: TensorSpec, name: str, dtype: str, rank: int) -> None:
    if spec.name != name:
        _fail(manifest, f"expected {name!r}, found {spec.name!r}")
    if spec.dtype != dtype:
        _fail(manifest, f"{name} must be {dtype}, found {spec.dtype}")
    if len(spec.shape) != rank:
        _fail(manifest, f"{name} must have {rank} dimensions, found shape {list(spec.shape)}")
    if not isinstance(spec.shape[0], str):
        _fail(manifest, f"{name} must have a dynamic batch dimension (a name such as 'batch') first")


def _positive_dim(manifest: Manifest, spec: TensorSpec, axis: int) -> int:
    size = spec.shape[axis]
    if not isinstance(size, int) or size <= 0:
        _fail(manifest, f"{spec.name} dimension {axis} must be a fixed positive size, found {size!r}")
    return int(size)


class _Contract:
    """What every built-in contract checks: one input (``check_input``) and one float32 [B, D] output."""

    modality: ClassVar[str]
    output_name: ClassVar[str]
    name: ClassVar[str]

    def check(self, manifest: Manifest, files: Files | None) -> None:
        if "default" not in manifest.signatures:
            _fail(manifest, "the manifest needs a 'default' signature")
        sig = manifest.default_signature
        self.check_input(manifest, _single(manifest, sig.inputs, "input"))
        out = _single(manifest, sig.outputs, "output")
        _expect(manifest, out, self.output_name, "float32", 2)
        size = _positive_dim(manifest, out, 1)
        if manifest.graph_outputs != sig.outputs:
            _fail(manifest, "the graph's outputs must equal the default signature's outputs")
        self.check_outputs(manifest, files, size)

    def check_input(self, manifest: Manifest, spec: TensorSpec) -> None:
        raise NotImplementedError

    def check_outputs(self, manifest: Manifest, files: Files | None, size: int) -> None:
        del manifest, files, size


class _Labelled(_Contract):
    """A classifier: the labels file has one line per output class."""

    def check_outputs(self, manifest: Manifest, files: Files | None, size: int) -> None:
        _check_labels(manifest, files, size)


class _ImageContract(_Contract):
    modality: ClassVar[str] = "image"

    def check_input(self, manifest: Manifest, images: TensorSpec) -> None:
        _expect(manifest, images, "images", "float32", 4)
        if images.shape[1] != 3:
            _fail(manifest, f"images must have 3 channels (RGB, NCHW), found shape {list(images.shape)}")
        height, width = _positive_dim(manifest, images, 2), _positive_dim(manifest, images, 3)
        image = manifest.preprocessing.image
        if image is None:
            _fail(manifest, "preprocessing.image (height, width) is required")
        elif (image.height, image.width) != (height, width):
            _fail(
                manifest,
                f"preprocessing.image is {image.height}x{image.width} but images are {height}x{width}",
            )
        if images.value_range != (0.0, 1.0):
            _fail(manifest, "images must declare value_range [0, 1] (normalisation lives inside the module)")
        # Nothing (no tokenizer) stands between an image module's signature and its graph.
        sig = manifest.default_signature
        if manifest.graph_inputs != sig.inputs or manifest.graph_outputs != sig.outputs:
            _fail(manifest, "the graph's inputs/outputs must equal the default signature")


def _check_labels(manifest: Manifest, files: Files | None, classes: int) -> None:
    if manifest.labels is None:
        _fail(manifest, "a labels file is required (assets/labels.txt, one class name per line)")
        return
    manifest.file(manifest.labels)  # listed in files
    if files is not None and manifest.labels in files:
        lines = parse_labels(files[manifest.labels], manifest.labels)
        if len(lines) != classes:
            _fail(manifest, f"{manifest.labels} has {len(lines)} labels but the output has {classes} classes")


def parse_labels(data: bytes, name: str = "labels") -> list[str]:
    """The labels of a labels file's bytes: one per non-empty line, UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"labels file {name} is not UTF-8 text: {exc}", path=name) from None
    return [line for line in text.splitlines() if line.strip()]


@register_task
class ImageFeatureVector(_ImageContract):
    name = "image-feature-vector"
    output_name = "features"


@register_task
class ImageClassification(_Labelled, _ImageContract):
    name = "image-classification"
    output_name = "logits"


class _TextContract(_Contract):
    modality: ClassVar[str] = "text"

    def check_input(self, manifest: Manifest, texts: TensorSpec) -> None:
        if texts.name != "texts" or texts.dtype != "string" or len(texts.shape) != 1:
            _fail(manifest, "the input must be 'texts': string [batch] (a list of Python strings)")
        tok = manifest.preprocessing.tokenizer
        if tok is None:
            _fail(manifest, "preprocessing.tokenizer is required: text modules tokenise inside the call")
            return
        manifest.file(tok.file)
        if len(tok.graph_inputs) != len(manifest.graph_inputs):
            _fail(
                manifest, "preprocessing.tokenizer.graph_inputs must name one tokenizer field per graph input"
            )
        for spec in manifest.graph_inputs:
            if (
                spec.dtype != "int64"
                or len(spec.shape) != 2
                or not all(isinstance(d, str) for d in spec.shape)
            ):
                _fail(manifest, f"graph input {spec.name} must be int64 [batch, sequence]")


@register_task
class TextEmbedding(_TextContract):
    name = "text-embedding"
    output_name = "embeddings"


@register_task
class TextClassification(_Labelled, _TextContract):
    name = "text-classification"
    output_name = "logits"
