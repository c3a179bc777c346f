"""Tiny modules and small labelled data sets for the retrain tests (all made in the test)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import make_module

COLOURS = {"blue": (40, 60, 210), "green": (40, 190, 60), "red": (210, 40, 40)}


@pytest.fixture(scope="session")
def feature_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image-feature-vector module: TinyCNN's 8 outputs as features, 32x32 inputs."""
    return make_module(
        "image-feature-vector",
        tmp_path_factory.mktemp("modules") / "tiny-features",
        seed=1,
        classes=8,
        metadata={"title": "Tiny features", "tags": ["test"]},
    )


def write_photos(root: Path, per_class: int = 8, seed: int = 0) -> Path:
    """Noisy photos of three colours, in every mode and size a user's folder may hold."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    modes = ["RGB", "RGBA", "L", "P", "LA"]
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = 24 + 7 * (i % 4), 40 - 5 * (i % 3)
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels).convert(modes[i % len(modes)])
            image.save(folder / f"{i:02d}.{'jpg' if image.mode in ('RGB', 'L') else 'png'}")
    return root


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos"))


TEXT_CLASSES = {
    "animal": ["cat", "dog", "mat", "sat"],
    "vehicle": ["car", "red", "blue", "fast"],
}


def write_text_csv(path: Path, per_class: int = 15, seed: int = 0, delimiter: str = ",") -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["id", "sentence", "topic"])
        for i in range(per_class):
            for topic, words in TEXT_CLASSES.items():
                writer.writerow([i, " ".join(rng.choice(words, 5)), topic])
    return path


@pytest.fixture(scope="session")
def text_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_text_csv(tmp_path_factory.mktemp("texts") / "topics.csv")
