"""The one sha256 rule and the one streamed hasher (modhub.format.digests)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from modhub.format.digests import (
    HASH_CHUNK,
    check_sha256,
    is_sha256,
    read_chunks,
    sha256_fd,
    sha256_file,
    sha256_stream,
)

GOOD = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    "text",
    [GOOD.upper(), GOOD[:-1], GOOD + "0", GOOD + "\n", " " + GOOD[1:], "g" * 64, "", None, 64, b"0" * 64],
)
def test_only_64_lowercase_hex_characters_are_a_sha256(text: object) -> None:
    assert not is_sha256(text)


def test_a_sha256_is_a_sha256() -> None:
    assert is_sha256(GOOD)
    assert check_sha256(GOOD) == GOOD


def test_check_sha256_says_what_a_digest_looks_like() -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        check_sha256(GOOD.upper())


def test_the_hub_uses_the_same_rule() -> None:
    from modhub.server.storage import check_sha256 as server_check

    assert server_check is check_sha256


def _data(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@pytest.mark.parametrize("size", [0, 1, HASH_CHUNK - 1, HASH_CHUNK, 2 * HASH_CHUNK + 5])
def test_every_streamed_form_gives_hashlib_s_digest_and_size(tmp_path: Path, size: int) -> None:
    data = _data(size)
    expected = hashlib.sha256(data).hexdigest()
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(path) == expected
    seen = bytearray()
    assert sha256_stream(io.BytesIO(data), sink=seen.extend) == (expected, size)
    assert bytes(seen) == data
    copied = bytearray()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 3 if size > 3 else 0, os.SEEK_SET)
        assert sha256_fd(fd, sink=copied.extend) == (expected, size)  # from byte 0, by offset
        assert os.lseek(fd, 0, os.SEEK_CUR) == (3 if size > 3 else 0)  # position not moved
    finally:
        os.close(fd)
    assert bytes(copied) == data


def test_reads_go_through_one_buffer_of_hash_chunk_bytes() -> None:
    sizes: list[int] = []

    class Recording(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            sizes.append(-1 if size is None else size)
            return super().read(size)

    fh = Recording(_data(3 * HASH_CHUNK))
    assert [len(c) for c in read_chunks(fh)] == [HASH_CHUNK] * 3
    assert set(sizes) == {HASH_CHUNK}


def test_a_resumed_hash_continues_the_digest_it_is_given() -> None:
    head, tail = b"head" * 1000, b"tail" * 1000
    digest = hashlib.sha256(head)
    whole = hashlib.sha256(head + tail).hexdigest()
    assert sha256_stream(io.BytesIO(tail), digest=digest) == (whole, len(tail))

