"""A small in-process stand-in for the hub's read API, served through httpx.MockTransport.

Used only by unit tests that need to misbehave on purpose (drop a connection
half-way, ignore Range, send altered bytes); the proof tests in test_e2e.py
run the real server.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modhub.format.manifest import (
    ImagePreprocessing,
    Manifest,
    Preprocessing,
    Signature,
    TensorSpec,
    list_files,
    write_manifest,
)

IMAGES = TensorSpec(name="images", dtype="float32", shape=("batch", 3, 8, 8), value_range=(0.0, 1.0))
FEATURES = TensorSpec(name="features", dtype="float32", shape=("batch", 4))


def make_module(root: Path, files: dict[str, bytes]) -> Path:
    """A module directory with the given files and a valid manifest (the graph need not be real here)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    sig = Signature(inputs=(IMAGES,), outputs=(FEATURES,))
    manifest = Manifest(
        task="image-feature-vector",
        torch_version="2.13.0",
        signatures={"default": sig},
        graph_inputs=sig.inputs,
        graph_outputs=sig.outputs,
        preprocessing=Preprocessing(image=ImagePreprocessing(height=8, width=8)),
        license="MIT",
        files=list_files(root),
    )
    write_manifest(root, manifest)
    return root


class _Dropping(httpx.SyncByteStream):
    """Yields ``data`` in chunks, then breaks the connection after ``cut`` bytes if set."""

    def __init__(self, data: bytes, cut: int | None, delay: float) -> None:
        self.data, self.cut, self.delay = data, cut, delay

    def __iter__(self) -> Iterator[bytes]:
        end = len(self.data) if self.cut is None else self.cut
        for start in range(0, end, 4096):
            if self.delay:
                time.sleep(self.delay)
            yield self.data[start : min(start + 4096, end)]
        if self.cut is not None:
            raise httpx.ReadError("connection reset by peer (test)")


@dataclass
class FakeHub:
    """Modules by (publisher, name, version); records every request it sees."""

    modules: dict[tuple[str, str, int], tuple[Manifest, dict[str, bytes]]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    # Knobs to misbehave with:
    ignore_range: bool = False  # answer 200 with the whole file to a Range request
    wrong_content_range: bool = False  # answer 206 with a Content-Range we did not ask for
    # path -> one entry per request of that file: cut the body after N bytes
    drop_after: dict[str, list[int]] = field(default_factory=dict)
    tamper: dict[str, bytes] = field(default_factory=dict)  # path -> bytes served instead
    delay: float = 0.0  # seconds per 4 KiB chunk (to make races likely)
    offer_manifest: bool = True  # announce manifest_sha256 (the real hub does)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, publisher: str, name: str, version: int, module_dir: Path) -> Manifest:
        from modhub.format.manifest import read_manifest

        manifest = read_manifest(module_dir)
        files = {e.path: (module_dir / e.path).read_bytes() for e in manifest.files}
        files["modhub.json"] = (module_dir / "modhub.json").read_bytes()
        self.modules[(publisher, name, version)] = (manifest, files)
        return manifest

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def file_requests(self) -> list[httpx.Request]:
        """Requests for the module's files (the manifest excluded)."""
        return [
            r for r in self.requests if "/files/" in r.url.path and not r.url.path.endswith("/modhub.json")
        ]

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        path = request.url.path
        if m := re.fullmatch(r"/api/v1/modules/([^/]+)/([^/]+)/versions/([^/]+)", path):
            return self._version(m.group(1), m.group(2), m.group(3))
        if m := re.fullmatch(r"/api/v1/modules/([^/]+)/([^/]+)/versions/(\d+)/files/(.+)", path):
            return self._file(request, m.group(1), m.group(2), int(m.group(3)), m.group(4))
        return _error(404, "not_found", f"no route {path}")

    def _version(self, publisher: str, name: str, version: str) -> httpx.Response:
        versions = sorted(v for (p, n, v) in self.modules if (p, n) == (publisher, name))
        if not versions:
            return _error(404, "module_not_found", f"no module {publisher}/{name}")
        number = versions[-1] if version == "latest" else int(version)
        if number not in versions:
            return _error(404, "version_not_found", f"{publisher}/{name} has no version {number}")
        manifest, files = self.modules[(publisher, name, number)]
        body: dict[str, object] = {
            "publisher": publisher,
            "name": name,
            "version": number,
            "yanked": False,
            "created_at": "2024-01-01T00:00:00Z",
            "manifest": json.loads(manifest.to_json()),
            "card": "# card",
        }
        if self.offer_manifest:
            body["manifest_sha256"] = hashlib.sha256(files["modhub.json"]).hexdigest()
        return httpx.Response(200, json=body)

    def _file(
        self, request: httpx.Request, publisher: str, name: str, version: int, rel: str
    ) -> httpx.Response:
        entry = self.modules.get((publisher, name, version))
        if entry is None or rel not in entry[1]:
            return _error(404, "file_not_found", f"no file {rel}")
        data = self.tamper.get(rel, entry[1][rel])
        with self._lock:
            cuts = self.drop_after.get(rel)
            cut = min(cuts.pop(0), len(data)) if cuts else None
        headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "Accept-Ranges": "bytes"}
        range_header = request.headers.get("range")
        status = 200
        if range_header and not self.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))  # type: ignore[union-attr]
            if start >= len(data):
                return _error(416, "range_not_satisfiable", "bad range")
            shown = start + 1 if self.wrong_content_range else start
            headers["Content-Range"] = f"bytes {shown}-{len(data) - 1}/{len(data)}"
            data = data[start:]
            status = 206
        headers["Content-Length"] = str(len(data))
        return httpx.Response(status, headers=headers, stream=_Dropping(data, cut, self.delay))


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})
