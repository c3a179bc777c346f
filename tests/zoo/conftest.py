"""The real starter modules, built once and reused across test runs.

The zoo is built into ``MODHUB_ZOO_CACHE`` (default ``<repo>/.modhub/zoo``, the
directory ``make serve`` builds into; git-ignored). Each module's ``.build-key``
covers the code and package versions, so a second ``make test`` (or a
``make serve`` before it) reuses the modules and CI builds them once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
# The tasks of the first starters: photos ([B, 3, H, W] in [0, 1]) or texts in, one tensor out.
ORIGINAL_TASKS = frozenset(
    {"image-feature-vector", "image-classification", "text-embedding", "text-classification"}
)


def zoo_cache_dir() -> Path:
    configured = os.environ.get("MODHUB_ZOO_CACHE")
    return Path(configured) if configured else REPO / ".modhub" / "zoo"


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    from modhub.zoo import build_zoo

    root = zoo_cache_dir()
    # With MODHUB_TF_PYTHON (make test sets it) the modules carry SavedModel/TFLite too.
    build_zoo(root, progress=False)
    return root


@pytest.fixture(scope="session")
def load_starter(zoo_dir: Path):  # type: ignore[no-untyped-def]
    """load_starter(name) -> modhub.load(..., runtime="torch") of the built module, one per session."""
    import modhub as hub

    loaded: dict[str, object] = {}

    def load(name: str):  # type: ignore[no-untyped-def]
        if name not in loaded:
            # The torch graph: these tests compare it with the eager source models.
            loaded[name] = hub.load(zoo_dir / name, runtime="torch")
        return loaded[name]

    return load


def photo(name: str, size: int) -> torch.Tensor:
    """A scikit-image sample photo as the modules expect it: resize, centre crop, RGB in [0, 1]."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(getattr(data, name)())
    scale = round(size / 0.875) / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


@pytest.fixture(scope="session")
def photos() -> torch.Tensor:
    """chelsea (a cat) and coffee (an espresso cup), [2, 3, 224, 224]."""
    return torch.stack([photo("chelsea", 224), photo("coffee", 224)])
