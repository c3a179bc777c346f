"""The publish check reads what it checks once and never holds a big file whole.

A 1 GB asset used to be read into one zero-filled buffer by the check (with the
GIL held while it was allocated: every other request of the hub waited), after
the upload had already hashed it while it arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modhub.errors import IntegrityError
from modhub.format.verify import check_module
from modhub.server.config import ServerSettings
from modhub.server.errors import InvalidModule
from modhub.server.services.publishing import validate_upload
from modhub.server.uploads import StagedUpload, receive_upload
from tests.server.conftest import copy_module, multipart, relist

ASSET_BYTES = 32 << 20


@pytest.fixture
def big_module(tmp_path: Path, feature_module: Path) -> Path:
    module = copy_module(feature_module, tmp_path / "big")
    (module / "assets").mkdir(exist_ok=True)
    (module / "assets" / "extra.bin").write_bytes(bytes(range(256)) * (ASSET_BYTES // 256))
    return relist(module)


def test_check_module_streams_the_files_it_does_not_use(big_module: Path) -> None:
    tracemalloc.start()
    try:
        check_module(big_module)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < ASSET_BYTES // 4, f"the check held {peak} bytes at once for a {ASSET_BYTES}-byte asset"


def test_a_streamed_file_is_still_hashed(big_module: Path) -> None:
    asset = big_module / "assets" / "extra.bin"
    data = bytearray(asset.read_bytes())
    data[-1] ^= 1  # same size, other bytes
    asset.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        check_module(big_module)


class _CountingSha256:
    """hashlib.sha256 that counts the bytes it is given."""

    hashed = 0

    def __init__(self, data: bytes = b"") -> None:
        self._h = hashlib.sha256()
        self.update(data)

    def update(self, data: Any) -> None:
        _CountingSha256.hashed += memoryview(data).nbytes
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _stage(module: Path, tmp_path: Path) -> StagedUpload:
    request = httpx.Request("POST", "http://hub/", files=multipart(module))
    body = request.read()

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 16):
            yield body[start : start + (1 << 16)]

    settings = ServerSettings(data_dir=tmp_path / "data")
    return asyncio.run(
        receive_upload(request.headers["content-type"], stream(), settings, tmp_path / "staged")
    )


def test_the_hub_does_not_hash_again_what_the_upload_hashed(
    big_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = _stage(big_module, tmp_path)
    monkeypatch.setattr("modhub.format.verify.hashlib.sha256", _CountingSha256)
    _CountingSha256.hashed = 0
    validate_upload(upload)
    assert _CountingSha256.hashed < ASSET_BYTES // 4


def test_a_staged_file_changed_after_the_upload_is_hashed_again_and_refused(
    big_module: Path, tmp_path: Path
) -> None:
    upload = _stage(big_module, tmp_path)
    staged = upload.module_dir / "assets" / "extra.bin"
    data = bytearray(staged.read_bytes())
    data[0] ^= 1
    staged.write_bytes(bytes(data))  # new mtime: the upload's hash no longer vouches for it
    with pytest.raises(InvalidModule, match="sha256"):
        validate_upload(upload)
