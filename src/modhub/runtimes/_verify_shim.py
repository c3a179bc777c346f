"""Stand-in for ``modhub.format.verify.verify_module`` (issue 10's one-read interface) until it lands.

Same shape: read each needed file once, hash those bytes unless ``records``
vouch for the very file, hand the bytes on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modhub.errors import IntegrityError, ManifestError
from modhub.format.manifest import GRAPH_NAME, MANIFEST_NAME, FileEntry, Manifest, read_manifest
from modhub.format.tasks import check_contract


class FileRecords(Protocol):
    def is_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> bool: ...

    def mark_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> None: ...


@dataclass(frozen=True)
class VerifiedModule:
    root: Path
    manifest: Manifest
    files: Mapping[str, bytes]


def read_module_file(root: Path, entry: FileEntry, *, records: FileRecords | None = None) -> bytes:
    path = Path(root) / entry.path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise IntegrityError(
            f"{entry.path} is listed in modhub.json but missing from {root}", path=path
        ) from None
    try:
        st = os.fstat(fd)
        if st.st_size != entry.size:
            raise IntegrityError(
                f"{entry.path} has {st.st_size} bytes, modhub.json says {entry.size}", path=path
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read()
    finally:
        os.close(fd)
    if records is not None and records.is_verified(path, entry, st):
        return data
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise IntegrityError(
            f"{entry.path} has sha256 {digest}, modhub.json says {entry.sha256}: the file was changed "
            "after export. Do not use it; download the module again.",
            path=path,
        )
    if records is not None:
        records.mark_verified(path, entry, st)
    return data


def verify_module(
    root: str | os.PathLike[str],
    *,
    needed: Collection[str] | None = None,
    records: FileRecords | None = None,
) -> VerifiedModule:
    from modhub.format.safety import validate_graph_archive

    root = Path(root)
    manifest = read_manifest(root)
    listed = {entry.path: entry for entry in manifest.files}
    wanted = set(listed) if needed is None else set(needed)
    if manifest.labels:
        wanted.add(manifest.labels)
    if manifest.preprocessing.tokenizer is not None:
        wanted.add(manifest.preprocessing.tokenizer.file)
    for name in sorted(wanted - set(listed)):
        raise ManifestError(f"modhub.json lists no {name}", path=root)
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        hidden = any(part.startswith(".") for part in rel.split("/"))
        if path.is_file() and rel != MANIFEST_NAME and rel not in listed and not hidden:
            raise IntegrityError(f"{rel} is in {root} but not listed in modhub.json", path=path)
    files = {name: read_module_file(root, listed[name], records=records) for name in sorted(wanted)}
    check_contract(manifest, root)
    if GRAPH_NAME in wanted:
        validate_graph_archive(root / GRAPH_NAME)
    return VerifiedModule(root, manifest, files)
