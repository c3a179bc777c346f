"""The local module cache (``MODHUB_CACHE``, default ``~/.cache/modhub``).

Layout::

    <cache>/
      blobs/<sha256>                  verified file contents, read-only, by content address
      blobs/<sha256>.incomplete       an interrupted download, resumed with HTTP Range
      modules/<host>/<publisher>/<name>/<version>/
                                      one resolved version: hard links to blobs + modhub.json;
                                      with a ``.partial`` marker when it holds only the files
                                      loads asked for so far (see below)
      locks/...                       lock files (kept apart from the data, see _lock)
      records/<dev>-<inode>.json      "this file was hashed and held sha256 X" (client/records.py)
      onnx/<key>/                     this machine's optimised copy of a model.onnx with 1 MiB or more
                                      of weights (runtimes/onnx_optimised.py): made once, verified
      tmp/                            version directories being assembled

A version directory appears only whole: it is assembled under ``tmp/`` and
renamed into place in one step, so a reader never sees half of one.

A load downloads only the files it reads (``hub.load(h, precision="int8")``
fetches the int8 graph and the assets, not the exact graphs): its version
directory is *partial*, marked by a ``.partial`` file (a hidden name, never a
module file), and holds a subset of the manifest's files, each complete and
verified. A later load that needs more adds the missing files in place under the
same version lock (:meth:`ModuleCache.add_files`: each linked to its blob under a
hidden name, then renamed over its path); ``modhub download`` makes it whole. A
directory without the marker must hold every listed file (else it is damaged).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from modhub.client.records import CacheRecords
from modhub.errors import IntegrityError, ManifestError
from modhub.format.atomic import replace_directory
from modhub.format.digests import is_sha256, sha256_file
from modhub.format.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    is_hidden,
    read_manifest,
    write_manifest,
)
from modhub.format.verify import verify_files
from modhub.handles import Handle, hub_key, is_version

__all__ = [
    "PARTIAL_NAME",
    "CachedVersion",
    "ModuleCache",
    "check_sizes",
    "host_key",
    "is_partial",
    "link_or_copy",
    "present_files",
]

# The marker of a version directory that holds only some of its files (a hidden name).
PARTIAL_NAME = ".partial"


def host_key(endpoint: str) -> str:
    """A directory name for a hub: ``http://127.0.0.1:8000/x`` → ``127.0.0.1_8000_x``."""
    raw = hub_key(endpoint).partition("://")[2]  # one hub, one directory, however its URL is spelled
    key = re.sub(r"[^A-Za-z0-9.-]+", "_", raw).strip("_")
    return key or "local"


@dataclass(frozen=True)
class CachedVersion:
    """A version directory found in the cache."""

    host: str
    publisher: str
    name: str
    version: int
    path: Path

    @property
    def handle(self) -> str:
        return f"{self.publisher}/{self.name}/{self.version}"

    @property
    def partial(self) -> bool:
        """Whether it holds only the files loads asked for so far (see the module doc)."""
        return is_partial(self.path)


class ModuleCache:
    """Paths, locks and atomic writes of one cache directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self.blobs = self.root / "blobs"
        self.modules = self.root / "modules"
        self.locks = self.root / "locks"
        self.tmp = self.root / "tmp"
        self.onnx = self.root / "onnx"
        # Which files were hashed already, so a load re-hashes only what changed.
        self.records = CacheRecords(self.root / "records")

    def ensure(self) -> None:
        """Create the cache directories; the root is private to the user (0700)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (self.blobs, self.modules, self.locks, self.tmp, self.onnx):
            path.mkdir(exist_ok=True, mode=0o700)

    # --- paths ----------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ManifestError(f"{sha256!r} is not a sha256 hex digest")
        return self.blobs / sha256

    def incomplete_path(self, sha256: str) -> Path:
        return self.blob_path(sha256).with_name(f"{sha256}.incomplete")

    def version_dir(self, endpoint: str, handle: Handle) -> Path:
        if handle.version is None:
            raise ValueError("version_dir needs a concrete version")
        return self.modules / host_key(endpoint) / handle.publisher / handle.name / str(handle.version)

    # --- locks ----------------------------------------------------------

    # Why lock: several processes (data-loader workers, parallel jobs, two
    # notebooks) may resolve the same module at once. Without a lock they
    # would append to the same ``.incomplete`` file or assemble the same
    # version directory concurrently. The lock files live under ``locks/``,
    # never next to the data: deleting a lock file while another process
    # holds it would let a third process lock a new inode of the same name.
    # filelock uses fcntl.flock, which the kernel releases when a process
    # dies (even by SIGKILL), so a crashed download never blocks the next
    # one. flock is not reliable on some network filesystems (old NFS); keep
    # MODHUB_CACHE on a local disk when several machines share it.

    def blob_lock(self, sha256: str) -> FileLock:
        self.blob_path(sha256)  # validates the digest
        return FileLock(str(self.locks / f"blob-{sha256}.lock"))

    def onnx_lock(self, key: str) -> FileLock:
        """Held while one process makes the optimised ONNX copy ``onnx/<key>``."""
        if not is_sha256(key):
            raise ManifestError(f"{key!r} is not a sha256 hex digest")
        return FileLock(str(self.locks / f"onnx-{key}.lock"))

    def version_lock(self, endpoint: str, handle: Handle) -> FileLock:
        return self._version_lock(host_key(endpoint), handle.publisher, handle.name, handle.version)

    def cached_version_lock(self, cached: CachedVersion) -> FileLock:
        return self._version_lock(cached.host, cached.publisher, cached.name, cached.version)

    def _version_lock(self, host: str, publisher: str, name: str, version: int | None) -> FileLock:
        return FileLock(str(self.locks / f"version-{_version_key(host, publisher, name, version)}.lock"))

    # --- version directories --------------------------------------------

    def lookup(self, endpoint: str, handle: Handle, files: Files = None) -> Path | None:
        """The cached directory of a concrete version, if present and holding ``files`` (cheap check).

        ``files``: the module paths wanted, or a function of the manifest that returns them;
        None: every listed file. A whole (not partial) directory must hold every file anyway.
        """
        path = self.version_dir(endpoint, handle)
        if not path.is_dir():
            return None
        try:
            manifest = read_manifest(path)
            paths = wanted_files(manifest, files)
            check_sizes(path, manifest, paths if is_partial(path) else None)
        except (IntegrityError, ManifestError):
            return None
        return path

    def cached_versions(self, endpoint: str | None, publisher: str, name: str) -> list[int]:
        """Versions of ``publisher/name`` present in the cache, newest first."""
        hosts = [host_key(endpoint)] if endpoint else [p.name for p in _subdirs(self.modules)]
        versions = {
            int(p.name)
            for host in hosts
            for p in _subdirs(self.modules / host / publisher / name)
            if is_version(p.name)
        }
        return sorted(versions, reverse=True)

    def assemble(
        self,
        endpoint: str,
        handle: Handle,
        manifest: Manifest,
        manifest_bytes: bytes | None = None,
        signature: bytes | None = None,
        paths: Collection[str] | None = None,
    ) -> Path:
        """Build the version directory from verified blobs and rename it into place.

        Callers hold ``version_lock`` and have put the blob of every file in ``paths``
        (None: every listed file) in ``blobs/``; with fewer than every file the directory
        is partial (marked). ``manifest_bytes``: the exact published modhub.json (else
        ``manifest`` is written); ``signature``: the version's verified modhub.sig, if it has one.
        """
        entries = [e for e in manifest.files if paths is None or e.path in paths]
        final = self.version_dir(endpoint, handle)
        # A process killed while assembling this version left its work directory behind (its
        # hard links would keep pruned blobs' bytes on disk for ever). The version lock we hold
        # is the one that process held, so nobody else is using a directory of this prefix.
        key = _version_key(host_key(endpoint), handle.publisher, handle.name, handle.version)
        prefix = f"assemble-{key}."
        stale = re.compile(re.escape(prefix) + r"[a-z0-9_]+")
        for leftover in _subdirs(self.tmp):
            if stale.fullmatch(leftover.name):
                shutil.rmtree(leftover, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp))
        try:
            for entry in entries:
                target = work / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(self.blob_path(entry.sha256), target)
            if manifest_bytes is None:
                write_manifest(work, manifest)
            else:
                (work / MANIFEST_NAME).write_bytes(manifest_bytes)
            if signature is not None:
                (work / SIGNATURE_NAME).write_bytes(signature)
            if len(entries) < len(manifest.files):
                (work / PARTIAL_NAME).write_bytes(b"")
            check_sizes(work, manifest, [e.path for e in entries])
            final.parent.mkdir(parents=True, exist_ok=True)
            # An existing copy is a damaged one (it failed the size check): replaced in one step.
            replace_directory(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return final

    def add_files(self, version_dir: Path, manifest: Manifest, paths: Collection[str]) -> Path:
        """Link the verified blobs of ``paths`` into a partial version directory, in place.

        Callers hold ``version_lock`` and have put each file's blob in ``blobs/``. Each file
        appears whole or not at all (linked under a hidden name beside it, then renamed over
        its path: a damaged copy of it is replaced), and the directory itself never
        disappears, so a load reading it meanwhile is not disturbed. Once it holds every
        listed file its partial marker goes.
        """
        for entry in manifest.files:
            if entry.path not in paths:
                continue
            blob = self.blob_path(entry.sha256)
            target = version_dir / entry.path
            with contextlib.suppress(OSError):
                if os.path.samefile(target, blob):
                    continue  # already this very blob
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".adding-{target.name}.{os.getpid()}")
            staged.unlink(missing_ok=True)
            link_or_copy(blob, staged)
            os.replace(staged, target)
        check_sizes(version_dir, manifest, paths)
        if present_files(version_dir, manifest) == {entry.path for entry in manifest.files}:
            check_sizes(version_dir, manifest)
            (version_dir / PARTIAL_NAME).unlink(missing_ok=True)
        return version_dir

    def discard(self, path: Path) -> None:
        """Remove a directory of the cache atomically (renamed out of the way, then deleted)."""
        trash = Path(tempfile.mkdtemp(prefix="discard-", dir=self.tmp))
        os.rename(path, trash / "old")
        shutil.rmtree(trash, ignore_errors=True)

    def remove_version(self, path: Path) -> None:
        """Remove a version directory atomically (it disappears in one rename)."""
        self.discard(path)
        parent = path.parent
        # Prune now-empty publisher/name/host directories.
        while parent != self.modules and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def iter_versions(self) -> Iterator[CachedVersion]:
        for host in _subdirs(self.modules):
            for publisher in _subdirs(host):
                for name in _subdirs(publisher):
                    for version in _subdirs(name):
                        if is_version(version.name):
                            yield CachedVersion(
                                host.name, publisher.name, name.name, int(version.name), version
                            )

    def referenced_blobs(self) -> set[str]:
        shas: set[str] = set()
        for cached in self.iter_versions():
            with contextlib.suppress(ManifestError):
                shas.update(entry.sha256 for entry in read_manifest(cached.path).files)
        return shas

    def discard_blobs(self, shas: set[str]) -> None:
        """Delete these blobs unless a version directory uses them."""
        for sha in shas - self.referenced_blobs():
            with self.blob_lock(sha):
                self.blob_path(sha).unlink(missing_ok=True)

    def prune_blobs(self) -> int:
        """Delete blobs (and leftover partial downloads) no version directory uses; returns bytes freed."""
        keep = self.referenced_blobs()
        candidates = [p for p in _files(self.blobs) if p.name.removesuffix(".incomplete") not in keep]
        freed = 0
        with contextlib.ExitStack() as locks:
            # Lock first, then look again: a resolver holds its blobs' locks from fetch to
            # assembly, so once we hold them its version directory (if any) references them.
            shas = sorted({p.name.removesuffix(".incomplete") for p in candidates})
            for sha in shas:
                if is_sha256(sha):
                    locks.enter_context(self.blob_lock(sha))
            keep = self.referenced_blobs() if candidates else keep
            for path in candidates:
                if path.name.removesuffix(".incomplete") in keep:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    freed += path.stat().st_size
                    path.unlink()
        return freed

    def matching(self, handle: Handle, endpoint: str | None) -> list[CachedVersion]:
        """Cached versions a handle names (all versions if it has none; any hub unless ``endpoint``)."""
        host = host_key(endpoint) if endpoint else None
        return [
            c
            for c in self.iter_versions()
            if (c.publisher, c.name) == (handle.publisher, handle.name)
            and (handle.version is None or c.version == handle.version)
            and (host is None or c.host == host)
        ]

    def verify(self) -> list[tuple[Path, str]]:
        """Hash everything: ``(path, problem)`` for each damaged version directory or blob.

        The verified-file records are ignored and rewritten: afterwards they vouch
        exactly for the files that were just hashed and found intact. The optimised
        ONNX copies are the runtime's (``modhub.runtimes.onnx_optimised.verify_optimised``).
        """
        problems: list[tuple[Path, str]] = []
        self.records.clear()
        for cached in self.iter_versions():
            try:
                manifest = read_manifest(cached.path)
                # A partial directory: the files it holds (each must be intact), none missing.
                only = present_files(cached.path, manifest) if cached.partial else None
                verify_files(cached.path, manifest, only=only)
            except (IntegrityError, ManifestError) as exc:
                problems.append((cached.path, str(exc)))
            else:
                self.mark_verified(cached.path, manifest)
        for path in _files(self.blobs):
            if not is_sha256(path.name):
                continue  # .incomplete files are checked when resumed
            digest = sha256_file(path)
            if digest != path.name:
                problems.append((path, f"blob {path.name} holds bytes with sha256 {digest}"))
        return problems

    def mark_verified(self, version_dir: Path, manifest: Manifest) -> None:
        """Record that every file of this version directory was just hashed and matched ``manifest``."""
        for entry in manifest.files:
            path = version_dir / entry.path
            with contextlib.suppress(OSError):
                self.records.mark_verified(path, entry, path.stat())

    def blob_bytes(self) -> int:
        return sum(p.stat().st_size for p in _files(self.blobs))


def _version_key(host: str, publisher: str, name: str, version: int | None) -> str:
    """One version of one hub's module, as a file-name part (its lock; its assembly directory)."""
    return f"{host}__{publisher}__{name}__{version}"


def check_sizes(
    module_dir: Path, manifest: Manifest | None = None, paths: Collection[str] | None = None
) -> Manifest:
    """Cheap completeness check: manifest readable, every listed file (or those of ``paths``)
    there with its size."""
    manifest = manifest or read_manifest(module_dir)
    for entry in manifest.files:
        if paths is not None and entry.path not in paths:
            continue
        path = module_dir / entry.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IntegrityError(
                f"{entry.path} is missing from the cached module {module_dir}. "
                f"Run `modhub cache rm` on it and resolve again.",
                path=path,
            ) from None
        if size != entry.size:
            raise IntegrityError(
                f"{entry.path} in the cached module {module_dir} has {size} bytes, modhub.json says "
                f"{entry.size}. Run `modhub cache rm` on it and resolve again.",
                path=path,
            )
    return manifest


# The files a resolve wants: module paths, or a function of the manifest that returns them;
# None: every listed file.
Files = Collection[str] | Callable[[Manifest], Collection[str]] | None


def wanted_files(manifest: Manifest, files: Files) -> set[str] | None:
    """``files`` decided for ``manifest`` (None: every listed file)."""
    if files is None:
        return None
    return set(files(manifest) if callable(files) else files)


def is_partial(module_dir: Path) -> bool:
    """Whether a cached version directory holds only some of its files (:data:`PARTIAL_NAME`)."""
    return (module_dir / PARTIAL_NAME).is_file()


def present_files(module_dir: Path, manifest: Manifest) -> set[str]:
    """The listed files a (partial) version directory holds (whatever their state: verify says)."""
    return {entry.path for entry in manifest.files if os.path.lexists(module_dir / entry.path)}


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no extra disk space); copy across filesystems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not is_hidden(p.name))
    except FileNotFoundError:
        return []


def _files(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_file())
    except FileNotFoundError:
        return []
