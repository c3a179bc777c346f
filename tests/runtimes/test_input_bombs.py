"""A module cannot crash its caller: hostile tokenizers, huge texts, image bombs, broken photos.

Each ends as an ``InputError`` (or, for a tokenizer that could hang every call, an
``UnsafeModuleError`` at load) naming the input, and ``modhub predict`` skips and names it.
The decoding bombs run in a child process with an address-space limit, so a regression
shows as a failed test, not as a machine out of memory.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import modhub as hub
from modhub.errors import InputError, UnsafeModuleError
from modhub.format.manifest import ImagePreprocessing, TokenizerSpec
from modhub.format.tokenizer_regex import backtracking_risk
from modhub.predict import predict
from modhub.runtimes.images import MAX_PHOTO_PIXELS, prepare_images
from modhub.runtimes.preprocessing import TextEncoder
from modhub.runtimes.tokenizer_guard import MAX_TEXT_CHARS
from tests.format.corpus import rehash
from tests.tiny_models import make_tokenizer

SPEC = ImagePreprocessing(height=32, width=32, resize="squash")
TOKENS = TokenizerSpec(max_length=32)
# Passes the static check (no repeated group) but needs more than Oniguruma's retry limit on
# a long run of word characters without a digit: the library panics (pyo3 PanicException).
PANICS = r"\w*\w*\w*\w*\w*\w*\w*\d"


def _tokenizer_json(tmp_path: Path, pattern: str | None) -> bytes:
    """The tiny word-level tokenizer, its pre-tokenizer a ``Split`` on ``pattern`` if given."""
    from tokenizers import Regex, pre_tokenizers

    tok = make_tokenizer(tmp_path / "tokenizer.json")
    if pattern is not None:
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), "isolated")
    return tok.to_str().encode()  # type: ignore[no-any-return]


def _with_file(module: Path, dest: Path, rel: str, data: bytes) -> Path:
    """A copy of ``module`` whose ``rel`` holds ``data``, its digest in modhub.json made to match."""
    shutil.copytree(module, dest)
    (dest / rel).write_bytes(data)
    rehash(dest)
    return dest


# --- tokenizers --------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|aa)*c", r"(\w+\s?)*$", r"(?:x*){12}", r"(a)\1"])
def test_a_catastrophic_regex_is_refused_at_load(text_module: Path, tmp_path: Path, pattern: str) -> None:
    hostile = _with_file(
        text_module, tmp_path / "m", "assets/tokenizer.json", _tokenizer_json(tmp_path, pattern)
    )
    with pytest.raises(UnsafeModuleError, match=r"tokenizer\.json: the regex .* could take exponential time"):
        hub.load(hostile, runtime="onnx" if (hostile / "model.onnx").exists() else "torch")


@pytest.mark.parametrize(
    "pattern",
    [
        # The zoo's GloVe tokenizer: a repeated group that starts with a separator.
        r"\.\.\.|--|(?:\p{L}\.){2,}|\p{L}+(?=n't\b)|n't\b|'(?:s|re|ve|m|ll|d)\b"
        r"|[\p{L}\p{N}]+(?:[.,\-][\p{L}\p{N}]+)*|\S",
        # GPT-2 and cl100k (tiktoken, Llama 3).
        r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+",
        r"(?>a+)+",  # atomic: never gives back
        r"(?:a++)+",  # possessive
    ],
)
def test_the_regexes_of_real_tokenizers_pass(pattern: str) -> None:
    assert backtracking_risk(pattern) is None


def test_a_tokenizer_panic_is_an_input_error_naming_the_text(tmp_path: Path) -> None:
    encoder = TextEncoder(TOKENS, _tokenizer_json(tmp_path, PANICS))
    assert encoder.encode(["the cat 1"])[0].shape[0] == 1  # an ordinary text works
    with pytest.raises(InputError, match=r"cannot tokenise text item 1 \(3,000 characters.*retry-limit"):
        encoder.encode(["the cat 1", "a" * 3000, "red car"])


def test_a_tokenizer_panic_through_hub_load(text_module: Path, tmp_path: Path) -> None:
    module = _with_file(
        text_module, tmp_path / "m", "assets/tokenizer.json", _tokenizer_json(tmp_path, PANICS)
    )
    encode = hub.load(module, runtime="torch")
    assert encode(["cat 1"]).shape[0] == 1
    with pytest.raises(InputError, match="cannot tokenise text item 0"):
        encode(["a" * 3000])


def test_a_10mb_string_is_refused_before_tokenising(tmp_path: Path) -> None:
    encoder = TextEncoder(TOKENS, _tokenizer_json(tmp_path, None))
    huge = "cat " * (10 * 2**20 // 4)
    with pytest.raises(InputError, match=rf"text item 1 has 10,485,760 characters.*{MAX_TEXT_CHARS:,}"):
        encoder.encode(["cat", huge])
    assert encoder.encode(["cat " * (MAX_TEXT_CHARS // 4)])[0].shape == (1, 32)  # at the cap: fine


# --- photos ------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR says width x height (8-bit greyscale) with a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


def _jpeg(tmp_path: Path) -> bytes:
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / "ok.jpg", quality=90)
    return (tmp_path / "ok.jpg").read_bytes()


def test_a_400_megapixel_png_is_refused_from_its_header() -> None:
    bomb = _png_header_only(20_000, 20_000)
    assert len(bomb) < 200
    with pytest.raises(InputError, match=r"item 1 of 2 \(bytes\) is over the limit of 80 megapixels"):
        prepare_images([_png(8, 8), bomb], SPEC)


def test_just_over_the_cap_is_refused_and_pillows_own_bomb_error_never_leaks() -> None:
    side = int(MAX_PHOTO_PIXELS**0.5) + 1  # under Pillow's limits: modhub's check of the header
    with pytest.raises(InputError, match=rf"is {side} x {side} pixels.*over the limit of 80 megapixels"):
        prepare_images(_png_header_only(side, side), SPEC)
    assert prepare_images(_png(2000, 1500), SPEC).shape == (1, 3, 32, 32)  # an ordinary size decodes


def test_truncated_and_garbage_photos_name_the_item(tmp_path: Path) -> None:
    data = _jpeg(tmp_path)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"item 1 of 2 \(.*cut\.jpg\) is not a readable image") as info:
        prepare_images([data, tmp_path / "cut.jpg"], SPEC)
    assert info.value.path == tmp_path / "cut.jpg"
    with pytest.raises(InputError, match=r"the photo \(bytes\) is not a readable image"):
        prepare_images(b"\xff\xd8\xff garbage", SPEC)


BOMB_CHILD = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from modhub.errors import InputError
    from modhub.format.manifest import ImagePreprocessing
    from modhub.runtimes.images import prepare_images
    from modhub.runtimes.preprocessing import TextEncoder
    from modhub.format.manifest import TokenizerSpec
    encoder = TextEncoder(TokenizerSpec(max_length=32), Path(sys.argv[1]).read_bytes())
    limit = 1536 * 2**20  # address space: far under what decoding a bomb would take
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    refused = 0
    for path in sys.argv[2:]:
        try:
            prepare_images(Path(path), ImagePreprocessing(height=32, width=32))
        except InputError:
            refused += 1
    try:
        encoder.encode(["cat " * (50 * 2**20 // 4)])
    except InputError:
        refused += 1
    print("refused", refused, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """
)


def test_bombs_are_refused_within_bounded_memory(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_bytes(_tokenizer_json(tmp_path, None))
    bombs = []
    for name, (w, h) in {"400mp.png": (20_000, 20_000), "4gp.png": (65_535, 65_535)}.items():
        (tmp_path / name).write_bytes(_png_header_only(w, h))
        bombs.append(str(tmp_path / name))
    run = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD, str(tmp_path / "tokenizer.json"), *bombs],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[:2] == ["refused", "3"]


# --- modhub predict ------------------------------------------------------------------------


def test_predict_skips_and_names_bombs_and_broken_photos(
    image_module: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "good.png")
    (folder / "bomb.png").write_bytes(_png_header_only(20_000, 20_000))
    data = _jpeg(tmp_path)
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    result = predict(image_module, folder, tmp_path / "out.parquet")
    assert result.rows == 1 and result.skipped == 2
    skipped = " ".join(result.skipped_examples)
    assert (
        "bomb.png: over the limit of 80 megapixels" in skipped and "cut.jpg: not a readable image" in skipped
    )
    assert pq.read_table(result.out).column("key").to_pylist() == ["good.png"]
    assert "skipping" in caplog.text and "bomb.png" in caplog.text


def test_predict_skips_and_names_texts_it_cannot_take(text_module: Path, tmp_path: Path) -> None:
    module = _with_file(
        text_module, tmp_path / "m", "assets/tokenizer.json", _tokenizer_json(tmp_path, PANICS)
    )
    texts = tmp_path / "texts.txt"
    texts.write_text(f"the cat 1\n{'a' * 3000}\nred car 2\n{'cat ' * (MAX_TEXT_CHARS // 2)}\n")
    result = predict(module, texts, tmp_path / "out.parquet", batch_size=8)
    assert result.rows == 2 and result.skipped == 2
    assert result.skipped_examples[0].startswith("2: ") and "cannot tokenise" in result.skipped_examples[0]
    assert result.skipped_examples[1].startswith("4: ") and "characters" in result.skipped_examples[1]
    assert pq.read_table(result.out).column("key").to_pylist() == ["1", "3"]


# --- modhub retrain --------------------------------------------------------------------------


def test_retrain_skips_and_names_texts_the_tokenizer_cannot_take(tmp_path: Path) -> None:
    from modhub.retrain.data import drop_untokenisable, read_text_csv

    rows = ["the cat,pets", "a dog,pets", "red car,things", "blue car,things"]
    rows += [f"{'a' * 3000},pets", f"{'cat ' * (MAX_TEXT_CHARS // 2)},things", f"{'cat ' * 30_000},pets"]
    (tmp_path / "data.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    data = read_text_csv(tmp_path / "data.csv")  # the long texts: skipped when read
    assert data.skipped == [
        "row 7: a field over 131,072 characters (the limit: 100,000)",
        "row 8: a text of 119,999 characters (the limit: 100,000)",
    ]
    encoder = TextEncoder(TOKENS, _tokenizer_json(tmp_path, PANICS))
    pruned = drop_untokenisable(data, encoder.encode)
    assert [ex.name for ex in pruned.examples] == ["row 2", "row 3", "row 4", "row 5"]
    assert pruned.skipped[2].startswith("row 6: the module's tokenizer")
    assert "cannot tokenise the text (3,000 characters" in pruned.skipped[2]
