"""Tasks: TF Hub's vocabulary of task ids, and contracts ("common signatures") where they help.

A module's ``task`` is one of :data:`TASK_VOCABULARY` (TF Hub's 47 ids) or
``"other"``. Tasks with a common signature have a contract: a small class
registered under the task id with :func:`register_task`, so that modules of
one task are interchangeable. ``check_contract(manifest, files)`` runs the
task's checks (none for a task without a contract); both ``export`` and the
hub's publish call it. ``files`` holds the verified bytes of the module's
files (see :func:`modhub.format.verify.verify_module`); contracts never open
files. docs/module-format.md states every contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, NoReturn, Protocol

from modhub.errors import ContractError
from modhub.format.manifest import Manifest, Signature, TensorSpec

__all__ = [
    "TASK_VOCABULARY",
    "TaskContract",
    "check_contract",
    "get_contract",
    "module_modality",
    "parse_labels",
    "register_task",
    "task_names",
    "tensor_kind",
]

# TF Hub's task ids (its tags/task.yaml; ../shared/TASKS.md), by number of models there, then "other".
TASK_VOCABULARY: tuple[str, ...] = (
    "image-classification",
    "image-feature-vector",
    "text-embedding",
    "image-object-detection",
    "text-language-model",
    "image-segmentation",
    "image-pose-detection",
    "video-classification",
    "image-generator",
    "text-preprocessing",
    "audio-embedding",
    "audio-event-classification",
    "audio-command-detection",
    "text-classification",
    "audio-paralinguistics",
    "image-rnn-agent",
    "audio-stt",
    "text-generation",
    "video-feature-extraction",
    "image-style-transfer",
    "image-augmentation",
    "image-aesthetic-quality",
    "audio-speech-synthesis",
    "video-generation",
    "text-retrieval-question-answering",
    "text-question-answering",
    "image-depth-estimation",
    "image-deblurring",
    "image-classifier",
    "image-super-resolution",
    "video-audio-text",
    "text-sequence-alignment",
    "image-text-recognition",
    "image-extrapolation",
    "image-enhancement",
    "image-deraining",
    "image-dehazing",
    "video-text",
    "image-denoising",
    "audio-synthesis",
    "audio-pitch-extraction",
    "text-to-mel",
    "text-segmentation",
    "image-text-detection",
    "image-others",
    "image-frame-interpolation",
    "image-classification-logits",
    "other",
)

# The module's files by path, as read (and verified) by modhub.format.verify.
Files = Mapping[str, bytes]


class TaskContract(Protocol):
    name: ClassVar[str]
    # "image", "text" or "audio": the kind of input callers pass ("tensor" for tasks without a contract).
    modality: ClassVar[str]
    # Name of the main output of the default signature ("" when there is none to name).
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
    """The tasks that have a contract (a common signature checked at export and publish)."""
    return sorted(_REGISTRY)


def get_contract(task: str) -> TaskContract:
    """The task's contract; a task of the vocabulary without one gets :class:`NoContract`."""
    if task in _REGISTRY:
        return _REGISTRY[task]
    if task in TASK_VOCABULARY:
        return NoContract()
    raise ContractError(
        f"unknown task {task[:100]!r}: use one of TF Hub's task ids (docs/module-format.md#tasks), "
        f"e.g. {', '.join(task_names()[:4])}, ..., or 'other'"
    )


def check_contract(manifest: Manifest, files: Files | None = None) -> None:
    """Run the task's checks on the manifest and ``files``, the verified bytes read by the caller."""
    get_contract(manifest.task).check(manifest, files)


def tensor_kind(manifest: Manifest, spec: TensorSpec) -> str | None:
    """What ``spec`` holds: its ``kind``, or for the four original tasks' inputs, what the task says."""
    if spec.kind is not None:
        return spec.kind
    contract = _REGISTRY.get(manifest.task)
    if isinstance(contract, _Contract) and spec in manifest.default_signature.inputs:
        return contract.modality
    return None


def module_modality(manifest: Manifest) -> str:
    """What callers pass to the default signature: "image", "text", "audio", or "tensor" (arrays)."""
    kinds = {tensor_kind(manifest, spec) for spec in manifest.default_signature.inputs}
    if len(kinds) == 1 and (kind := kinds.pop()) in ("image", "text", "audio"):
        return kind
    return "tensor"


class NoContract:
    """A task of the vocabulary without a common signature: its signatures are shown as they are."""

    name: ClassVar[str] = ""
    modality: ClassVar[str] = "tensor"
    output_name: ClassVar[str] = ""

    def check(self, manifest: Manifest, files: Files | None) -> None:
        check_labels_files(manifest, files)


def _fail(manifest: Manifest, message: str) -> NoReturn:
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


def check_labels_files(manifest: Manifest, files: Files | None) -> None:
    """Each output that names a label file has one label per class (its last dimension, when fixed)."""
    for sig in manifest.signatures.values():
        for spec in sig.outputs:
            if spec.labels is None or files is None or spec.labels not in files:
                continue
            labels = parse_labels(files[spec.labels], spec.labels)
            classes = spec.shape[-1] if spec.shape and spec.kind != "classes" else None
            if isinstance(classes, int) and classes > 0 and len(labels) != classes:
                _fail(manifest, f"{spec.labels} has {len(labels)} labels; {spec.name} has {classes} classes")


# --- Contracts on general signatures (round 3). Each states TF Hub's convention where it had one.


def _inputs_of_kind(
    manifest: Manifest, sig: Signature, kind: str, count: int | None = None
) -> list[TensorSpec]:
    specs = [spec for spec in sig.inputs if spec.kind == kind]
    if not specs or (count is not None and len(specs) != count):
        wanted = f"{count}" if count is not None else "at least one"
        _fail(
            manifest,
            f"the default signature needs {wanted} input(s) with kind={kind!r}, found "
            f"{[(s.name, s.kind) for s in sig.inputs]}",
        )
    return specs


def _output(manifest: Manifest, sig: Signature, name: str) -> TensorSpec:
    for spec in sig.outputs:
        if spec.name == name:
            return spec
    _fail(manifest, f"the default signature needs an output {name!r}; it has {sig.output_names}")


def _check_image_input(manifest: Manifest, spec: TensorSpec) -> None:
    if spec.layout is None or spec.layout not in ("NHWC", "NCHW", "HWC", "CHW"):
        _fail(manifest, f"image input {spec.name} must declare its layout (NHWC, NCHW, HWC or CHW)")
    if len(spec.shape) != len(spec.layout):
        _fail(manifest, f"image input {spec.name} has layout {spec.layout} but shape {list(spec.shape)}")
    channels = spec.shape[spec.layout.index("C")]
    if channels not in (1, 3, 4):
        _fail(manifest, f"image input {spec.name} must have 1, 3 or 4 channels, found {channels!r}")
    if spec.dtype not in ("float16", "float32", "uint8", "int32"):
        _fail(manifest, f"image input {spec.name} must be float32/16, uint8 or int32, found {spec.dtype}")
    if spec.value_range is None:
        _fail(manifest, f"image input {spec.name} must declare its value_range, e.g. [0, 1] or [0, 255]")


def _check_audio_input(manifest: Manifest, spec: TensorSpec) -> None:
    if spec.dtype != "float32" or len(spec.shape) not in (1, 2):
        _fail(manifest, f"audio input {spec.name} must be a float32 waveform [samples] or [batch, samples]")
    if spec.sample_rate is None:
        _fail(manifest, f"audio input {spec.name} must declare its sample_rate")


def _labelled_output(manifest: Manifest, spec: TensorSpec, files: Files | None) -> None:
    if spec.labels is None:
        _fail(manifest, f"output {spec.name} must name its label file (labels: assets/labels.txt)")
    manifest.file(spec.labels)
    check_labels_files(manifest, files)


class _General:
    """A contract on general signatures: subclasses check the default signature."""

    name: ClassVar[str]
    modality: ClassVar[str]
    output_name: ClassVar[str]

    def check(self, manifest: Manifest, files: Files | None) -> None:
        self.check_default(manifest, manifest.default_signature, files)
        check_labels_files(manifest, files)

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        raise NotImplementedError


class _OneImage(_General):
    modality: ClassVar[str] = "image"

    def image(self, manifest: Manifest, sig: Signature) -> TensorSpec:
        (image,) = _inputs_of_kind(manifest, sig, "image", 1)
        _check_image_input(manifest, image)
        return image


@register_task
class ImageObjectDetection(_OneImage):
    """TF Hub's detection outputs: boxes [.., N, 4], scores [.., N], classes [.., N] (+ num_detections)."""

    name = "image-object-detection"
    output_name = "detection_boxes"

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        self.image(manifest, sig)
        boxes = _output(manifest, sig, "detection_boxes")
        scores = _output(manifest, sig, "detection_scores")
        classes = _output(manifest, sig, "detection_classes")
        if boxes.dtype != "float32" or not boxes.shape or boxes.shape[-1] != 4:
            _fail(manifest, "detection_boxes must be float32 [..., N, 4]")
        if boxes.box_format is None or boxes.normalized is None:
            _fail(manifest, "detection_boxes must declare box_format (e.g. yxyx) and normalized")
        if scores.dtype != "float32" or tuple(scores.shape) != tuple(boxes.shape[:-1]):
            _fail(manifest, "detection_scores must be float32, shaped as detection_boxes without its 4")
        if tuple(classes.shape) != tuple(boxes.shape[:-1]):
            _fail(manifest, "detection_classes must have the shape of detection_scores")
        if classes.dtype not in ("float32", "int32", "int64"):
            _fail(manifest, "detection_classes must be float32, int32 or int64 class indices")
        _labelled_output(manifest, classes, files)


@register_task
class ImageSegmentation(_OneImage):
    """A per-pixel mask or class map (kind "mask") at the input size or a stated stride."""

    name = "image-segmentation"
    output_name = ""

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        self.image(manifest, sig)
        masks = [spec for spec in sig.outputs if spec.kind == "mask"]
        if not masks:
            _fail(manifest, "the default signature needs an output with kind='mask' (per-pixel mask/classes)")
        for mask in masks:
            if len(mask.shape) not in (2, 3, 4):
                _fail(manifest, f"mask {mask.name} must be [H, W], or with batch and/or class dimensions")
            if mask.dtype.startswith(("int", "uint")) and mask.labels is None:
                _fail(manifest, f"class map {mask.name} must name its label file")


COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


@register_task
class ImagePoseDetection(_OneImage):
    """MoveNet's convention: keypoints [..., K, 3] as (y, x, score), y and x fractions of the frame."""

    name = "image-pose-detection"
    output_name = "keypoints"

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        self.image(manifest, sig)
        points = [spec for spec in sig.outputs if spec.kind == "keypoints"]
        if not points:
            _fail(manifest, "the default signature needs an output with kind='keypoints'")
        for spec in points:
            if spec.dtype != "float32" or len(spec.shape) < 2 or spec.shape[-1] != 3:
                _fail(manifest, f"keypoints {spec.name} must be float32 [..., K, 3]: y, x, score")
            if not spec.keypoints:
                _fail(manifest, f"keypoints {spec.name} must name its points (keypoints: [nose, ...])")
            if isinstance(spec.shape[-2], int) and spec.shape[-2] != len(spec.keypoints):
                _fail(manifest, f"{spec.name} has {spec.shape[-2]} points but names {len(spec.keypoints)}")


@register_task
class ImageStyleTransfer(_General):
    """Magenta's convention: ``module(content, style)``, float32 images in [0, 1]; output 0 is the image."""

    name = "image-style-transfer"
    modality: ClassVar[str] = "image"
    output_name = "stylized_image"

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        if len(sig.inputs) != 2 or any(spec.kind != "image" for spec in sig.inputs):
            _fail(manifest, "the default signature takes two images, content then style (kind='image')")
        for spec in sig.inputs:
            _check_image_input(manifest, spec)
            if spec.dtype != "float32" or spec.value_range != (0.0, 1.0):
                _fail(manifest, f"{spec.name} must be float32 in [0, 1]")
        out = sig.outputs[0]
        if out.kind != "image" or out.dtype != "float32" or out.layout != sig.inputs[0].layout:
            _fail(manifest, "output 0 must be the stylised image: kind='image', float32, content's layout")


class _Audio(_General):
    modality: ClassVar[str] = "audio"

    def audio(self, manifest: Manifest, sig: Signature) -> TensorSpec:
        (audio,) = _inputs_of_kind(manifest, sig, "audio", 1)
        _check_audio_input(manifest, audio)
        return audio


def _per_frame(manifest: Manifest, spec: TensorSpec, rank: int) -> None:
    if spec.dtype != "float32" or len(spec.shape) not in (rank, rank + 1):
        _fail(manifest, f"{spec.name} must be float32, one row per frame (optionally with a batch dimension)")
    if len(spec.shape) > 1 and spec.frame_hop is None:
        _fail(manifest, f"per-frame output {spec.name} must declare frame_hop (seconds between frames)")


@register_task
class AudioEmbedding(_Audio):
    """YAMNet/TRILL's convention: a waveform in, ``embeddings`` [frames, D] out, with the frame hop."""

    name = "audio-embedding"
    output_name = "embeddings"

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        self.audio(manifest, sig)
        embeddings = _output(manifest, sig, "embeddings")
        _per_frame(manifest, embeddings, 2)
        if not isinstance(embeddings.shape[-1], int):
            _fail(manifest, "embeddings must have a fixed size as its last dimension")


@register_task
class AudioEventClassification(_Audio):
    """YAMNet's convention: ``scores`` [frames, classes] with a label file."""

    name = "audio-event-classification"
    output_name = "scores"

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        self.audio(manifest, sig)
        scores = _output(manifest, sig, "scores")
        _per_frame(manifest, scores, 2)
        _labelled_output(manifest, scores, files)


@register_task
class AudioPitchExtraction(_Audio):
    """SPICE's convention: ``pitch`` (Hz here) and ``uncertainty`` or ``confidence`` per frame."""

    name = "audio-pitch-extraction"
    output_name = "pitch"

    def check_default(self, manifest: Manifest, sig: Signature, files: Files | None) -> None:
        self.audio(manifest, sig)
        pitch = _output(manifest, sig, "pitch")
        _per_frame(manifest, pitch, 1)
        others = [spec for spec in sig.outputs if spec.name in ("uncertainty", "confidence")]
        if not others or tuple(others[0].shape) != tuple(pitch.shape):
            _fail(manifest, "pitch needs an 'uncertainty' or 'confidence' output of the same shape")
