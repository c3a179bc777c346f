"""The text starters against the real thing: sentence-transformers, GloVe's own vectors, neighbours."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from modhub.zoo.text import MINILM_MAX_LENGTH

# Needs the real starter modules: built once (minutes), then reused from the zoo cache.
pytestmark = pytest.mark.slow

SENTENCES = [
    "A man is eating food.",
    "The cat sat on the mat.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    # Longer than 128 word pieces, with a second half about something else: the
    # tokens after 128 change the embedding, so the 256 limit matters.
    " ".join(["The orchestra rehearsed the symphony for weeks before the premiere."] * 9)
    + " "
    + " ".join(["Meanwhile the football team lost every single away match that season."] * 9),
]

# (query, corpus, index of the expected nearest neighbour)
CORPUS = [
    "A kitten is sleeping on the rug.",
    "Shares dropped as interest rates rose.",
    "He is having a meal at a restaurant.",
    "The violinist tuned her instrument before the concert.",
]
QUERIES = [
    ("The cat sat on the mat.", 0),
    ("Stock markets fell sharply after the central bank raised interest rates.", 1),
    ("A man is eating food.", 2),
    ("The orchestra played a symphony.", 3),
]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _nearest(module, queries: list[str], corpus: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    scores = _unit(module(queries)) @ _unit(module(corpus)).T
    return scores.argmax(dim=1).tolist()


@pytest.fixture(scope="module")
def sentence_transformer():  # type: ignore[no-untyped-def]
    from modhub.zoo._text import minilm_dir

    with warnings.catch_warnings():
        # transformers warns about its own deprecations on import; not ours to fix.
        warnings.simplefilter("ignore")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(minilm_dir()), device="cpu")
    assert model.max_seq_length == MINILM_MAX_LENGTH
    return model


def test_minilm_matches_sentence_transformers(load_starter, sentence_transformer) -> None:
    module = load_starter("minilm-l6")
    ours = module(SENTENCES)
    assert ours.shape == (len(SENTENCES), 384)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sentence_transformer.encode(SENTENCES, convert_to_tensor=True, batch_size=8)
    cosine = torch.nn.functional.cosine_similarity(ours, reference.cpu(), dim=1)
    assert cosine.min().item() >= 0.9999, cosine
    # The long sentence really is past 128 tokens, and cutting it there would change its vector.
    from modhub.runtimes.preprocessing import TextEncoder
    from modhub.zoo._bert import load_sentence_encoder
    from modhub.zoo._text import minilm_dir

    spec = module.manifest.preprocessing.tokenizer
    ids, mask = TextEncoder(spec, module.path / spec.file)([SENTENCES[-1]])
    assert 128 < ids.shape[1] <= MINILM_MAX_LENGTH
    with torch.no_grad():
        short = load_sentence_encoder(minilm_dir())(ids[:, :128], mask[:, :128])
    assert torch.dot(short[0], ours[-1]).item() < 0.99


def test_minilm_tokenizer_settings_are_explicit(load_starter) -> None:
    spec = load_starter("minilm-l6").manifest.preprocessing.tokenizer
    assert spec.max_length == 256 and spec.padding == "longest" and spec.truncation
    assert spec.graph_inputs == ("input_ids", "attention_mask")


def test_minilm_nearest_neighbours(load_starter) -> None:
    module = load_starter("minilm-l6")
    assert _nearest(module, [q for q, _ in QUERIES], CORPUS) == [i for _, i in QUERIES]


def test_minilm_vectors_are_unit_length(load_starter) -> None:
    norms = load_starter("minilm-l6")(SENTENCES).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(len(SENTENCES)))


def test_glove_nearest_neighbours(load_starter) -> None:
    module = load_starter("glove-6b-50")
    queries = [("my cat is sleeping", 0), ("share prices and interest rates", 1), ("we ate dinner", 2)]
    assert _nearest(module, [q for q, _ in queries], CORPUS[:3]) == [i for _, i in queries]


@pytest.fixture(scope="module")
def glove_vectors():  # type: ignore[no-untyped-def]
    from modhub.zoo._text import glove_files, glove_words

    index_file, vectors_file = glove_files()
    words = glove_words(index_file)
    return {w: i for i, w in enumerate(words)}, np.load(vectors_file, mmap_mode="r")


def test_glove_is_the_mean_of_known_word_vectors(load_starter, glove_vectors) -> None:
    index, vectors = glove_vectors
    module = load_starter("glove-6b-50")
    out = module(["Cat", "the cat", "the cat xqzzyqq", "xqzzyqq blorfle", "Don't"])
    cat, the = (torch.from_numpy(np.array(vectors[index[w]])) for w in ("cat", "the"))
    torch.testing.assert_close(out[0], cat)
    torch.testing.assert_close(out[1], (cat + the) / 2)
    # Out-of-vocabulary words are left out of the mean; none known -> zero vector.
    torch.testing.assert_close(out[2], out[1])
    assert out[3].abs().max().item() == 0.0
    do, nt = (torch.from_numpy(np.array(vectors[index[w]])) for w in ("do", "n't"))
    torch.testing.assert_close(out[4], (do + nt) / 2)


def test_glove_tokenises_like_glove() -> None:
    from modhub.zoo._text import glove_tokenizer

    tokenizer = glove_tokenizer(["do", "n't", "the", "u.s.", "economy", "'s", "1,000", "well-known", "?"])
    tokens = tokenizer.encode("Don't the U.S. economy's 1,000 well-known?").tokens
    assert tokens == ["do", "n't", "the", "u.s.", "economy", "'s", "1,000", "well-known", "?"]
    assert tokenizer.encode("zebra").tokens == ["[UNK]"]
