"""``resolve(handle)``: turn a handle into a local module directory.

* A local directory is returned as it is (the loader verifies it).
* ``publisher/name/version`` (or its URL) is looked up in the cache; versions
  are immutable, so a cached copy is used without asking the hub.
* Otherwise the version's manifest is fetched, every file is downloaded into
  the blob cache (resumable, verified), and the version directory is
  assembled and renamed into place (with ``modhub.sig`` when the version
  was published signed, verified by sha256 like every file).
* ``files=`` (what a load reads, decided from the manifest) downloads only
  those: the version directory is then partial (``modhub.client.cache``), and
  a later resolve that wants more adds them under the same version lock.
* ``publisher/name`` means the latest version: asked once, with a
  :class:`LatestVersionWarning` naming the concrete handle.
* With ``MODHUB_OFFLINE=1`` no request is made at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from modhub.client.cache import Files, ModuleCache, check_sizes, is_partial, wanted_files
from modhub.errors import IntegrityError, ManifestError, ModuleNotFound, OfflineError
from modhub.format.manifest import Manifest, parse_manifest, read_manifest
from modhub.handles import Handle, is_local, parse_handle, same_hub
from modhub.settings import Settings

if TYPE_CHECKING:
    import httpx
    from tqdm import tqdm

    from modhub.client.api import HubClient, VersionDetail

__all__ = ["LatestVersionWarning", "Resolver", "resolve"]

# Below this many bytes to download, no progress bar unless asked for (MODHUB_PROGRESS=1).
_PROGRESS_MIN_BYTES = 1 << 20


class LatestVersionWarning(UserWarning):
    """A handle without a version was resolved to the latest version; pin it."""


def resolve(handle: str | os.PathLike[str], *, settings: Settings | None = None) -> Path:
    """Return the local directory of the module ``handle`` names, downloading it if needed.

    ``handle`` is ``publisher/name/version``, its URL form, ``publisher/name``
    (latest, with a :class:`LatestVersionWarning`), or a local directory.
    ``settings`` defaults to ``Settings.from_env()`` (``MODHUB_*`` variables).
    """
    settings = settings if settings is not None else Settings.from_env()
    # resolve_hub called from here (not through Resolver.resolve): warnings' stacklevel names the caller.
    path = _local_dir(handle) if is_local(handle) else Resolver(settings).resolve_hub(str(handle))
    if settings.trusted_keys is not None:
        # MODHUB_TRUSTED_KEYS: only modules signed by one of those keys (modhub sign) resolve.
        # (hub.load checks the signature itself, once, when it verifies the module.)
        from modhub.format.signature import load_trusted_keys
        from modhub.format.verify import verify_directory

        verify_directory(path, load_trusted_keys(settings.trusted_keys))
    return path


class Resolver:
    """Resolves handles with fixed settings; ``transport`` replaces the network in tests.

    ``cache``: the caller's ``ModuleCache`` of ``settings.cache`` (a load passes
    the one it hands on to the runtime); None makes one.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        cache: ModuleCache | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.cache = cache if cache is not None else ModuleCache(settings.cache)

    def resolve(self, handle: str | os.PathLike[str]) -> Path:
        if is_local(handle):
            return _local_dir(handle)
        return self.resolve_hub(str(handle))

    def resolve_hub(self, text: str, *, check_cached: bool = True, files: Files = None) -> Path:
        """A hub handle (``publisher/name[/version]`` or its URL) → its cached directory.

        ``check_cached=False``: a cached version directory is returned as found,
        without reading its manifest to check that every file is there (a load
        checks that with the manifest it reads anyway, and calls again with
        ``check_cached=True`` to download a damaged copy again).
        ``files``: the module paths wanted (or a function of the manifest that
        returns them); None: every file. With fewer, only those are downloaded and
        the version directory may be partial (see ``modhub.client.cache``).
        """
        parsed = parse_handle(text)
        endpoint = (parsed.endpoint or self.settings.endpoint).rstrip("/")
        if self.settings.offline:
            return self._resolve_offline(parsed, endpoint, text, check_cached, files)
        if parsed.version is not None:
            cached = self._lookup(endpoint, parsed, check_cached, files)
            if cached is not None:
                return cached
        return self._resolve_online(parsed, endpoint, text, check_cached, files)

    def _lookup(self, endpoint: str, concrete: Handle, check: bool, files: Files) -> Path | None:
        if check:
            return self.cache.lookup(endpoint, concrete, files)
        path = self.cache.version_dir(endpoint, concrete)
        return path if path.is_dir() else None

    # --- offline ----------------------------------------------------------

    def _resolve_offline(
        self, parsed: Handle, endpoint: str, text: str, check_cached: bool, files: Files
    ) -> Path:
        """Only the cache: no httpx client is even created."""
        version = parsed.version
        if version is None:
            versions = self.cache.cached_versions(endpoint, parsed.publisher, parsed.name)
            if not versions:
                raise OfflineError(
                    f"{text} is not in the cache at {self.cache.root} and MODHUB_OFFLINE=1 forbids "
                    f"downloading it. Resolve it once online (e.g. `modhub download {text}/VERSION`), "
                    "or unset MODHUB_OFFLINE.",
                    handle=text,
                    path=self.cache.root,
                )
            version = versions[0]
            warnings.warn(
                f"{text} has no version; offline (MODHUB_OFFLINE=1), so using "
                f"{parsed.with_version(version)}, the newest version in the cache (the hub may have "
                "newer ones). Pin the version.",
                LatestVersionWarning,
                stacklevel=3,
            )
        concrete = parsed.with_version(version)
        path = self.cache.version_dir(endpoint, concrete)
        if not path.is_dir():
            raise OfflineError(
                f"{concrete} is not in the cache at {self.cache.root} and MODHUB_OFFLINE=1 forbids "
                f"downloading it. Run `modhub download {concrete}` while online, or unset MODHUB_OFFLINE.",
                handle=text,
                path=path,
            )
        try:
            if check_cached:
                manifest = read_manifest(path)
                if is_partial(path):
                    check_sizes(path, manifest, wanted_files(manifest, files))
                else:
                    check_sizes(path, manifest)
        except IntegrityError as exc:
            if is_partial(path):
                raise OfflineError(
                    f"the cached copy of {concrete} in {path} holds only the files earlier loads "
                    f"needed, not this one's ({exc}), and MODHUB_OFFLINE=1 forbids downloading "
                    f"more. Run `modhub download {concrete}` while online, or unset MODHUB_OFFLINE.",
                    handle=text,
                    path=path,
                ) from exc
            raise self._damaged_offline(concrete, path, text, exc) from exc
        except ManifestError as exc:
            raise self._damaged_offline(concrete, path, text, exc) from exc
        return path

    def _damaged_offline(self, concrete: Handle, path: Path, text: str, exc: Exception) -> OfflineError:
        return OfflineError(
            f"the cached copy of {concrete} in {path} is damaged ({exc}) and MODHUB_OFFLINE=1 "
            f"forbids downloading it again. Unset MODHUB_OFFLINE and resolve it again.",
            handle=text,
            path=path,
        )

    # --- online -----------------------------------------------------------

    def _resolve_online(
        self, parsed: Handle, endpoint: str, text: str, check_cached: bool, files: Files
    ) -> Path:
        # Imported here: a cached, pinned version needs no network, and httpx costs ~0.1 s to import.
        from modhub.client.api import HubClient, open_http_client

        token = self.settings.token if same_hub(endpoint, self.settings.endpoint) else None
        http = open_http_client(timeout=self.settings.timeout, token=token, transport=self.transport)
        with http:
            hub = HubClient(http, endpoint)
            detail = hub.version(parsed)
            concrete = parsed.with_version(detail.version)
            if parsed.version is None:
                shown = f"{endpoint}/{concrete}" if parsed.endpoint else str(concrete)
                warnings.warn(
                    f"{text} has no version; resolved to the latest, {shown}. "
                    f"Pin it to get the same module tomorrow: hub.load({shown!r})",
                    LatestVersionWarning,
                    stacklevel=4,
                )
                cached = self._lookup(endpoint, concrete, check_cached, files)
                if cached is not None:
                    return cached
            elif detail.version != parsed.version:
                raise ModuleNotFound(
                    f"the hub at {endpoint} answered version {detail.version} when asked for "
                    f"{parsed}; is MODHUB_ENDPOINT a modhub hub?",
                    handle=text,
                )
            self.cache.ensure()
            with self.cache.version_lock(endpoint, concrete):
                # Another process may have finished it while we waited for the lock.
                cached = self.cache.lookup(endpoint, concrete, files)
                if cached is not None:
                    return cached
                return self._download(hub, detail, endpoint, concrete, files)

    def _download(
        self, hub: HubClient, detail: VersionDetail, endpoint: str, concrete: Handle, files: Files = None
    ) -> Path:
        """Fetch the missing files wanted into the blob cache, then assemble the version directory.

        A partial copy of this very manifest gets the files ``files`` wants added in place
        (each in one rename: a reader never misses the directory); otherwise the directory is
        assembled anew with what ``files`` wants (None: every file). Callers hold the version lock.
        """
        from modhub.client.download import fetch_blob

        # The exact published modhub.json when the hub offers it, so that the cached
        # directory is byte for byte the published module.
        manifest_bytes = hub.manifest_bytes(detail)
        manifest = detail.manifest if manifest_bytes is None else parse_manifest(manifest_bytes)
        existing = self.cache.version_dir(endpoint, concrete)
        paths = wanted_files(manifest, files)
        adding = paths is not None and self._same_partial(existing, manifest)
        if paths is not None and not adding and {e.path for e in manifest.files} <= paths:
            paths = None  # every file: a whole directory
        entries = [e for e in manifest.files if paths is None or e.path in paths]
        # modhub.sig beside the files when the version was published signed (MODHUB_TRUSTED_KEYS).
        signature = hub.signature_bytes(detail)
        missing = [e for e in entries if not self.cache.blob_path(e.sha256).exists()]
        with contextlib.ExitStack() as locks:
            # Every blob lock of the version, in one order (no deadlock between two resolvers),
            # held from fetch to assembly: `modhub cache prune` or another process cannot
            # delete a verified blob before the version directory links it.
            for sha256 in sorted({e.sha256 for e in entries}):
                locks.enter_context(self.cache.blob_lock(sha256))
            try:
                with self._progress(sum(e.size for e in missing), str(concrete)) as bar:
                    for entry in entries:
                        url = hub.file_url(concrete, entry.path)
                        fetch_blob(
                            self.cache, hub, url, entry, handle=str(concrete), progress=bar, locked=True
                        )
            except IntegrityError:
                # The hub's copy of this version is bad: keep nothing of it. (After a network
                # failure, by contrast, what arrived is kept for the next attempt.)
                locks.close()
                self.cache.discard_blobs({e.sha256 for e in missing})
                raise
            if adding:
                final = self.cache.add_files(existing, manifest, [e.path for e in entries])
            else:
                final = self.cache.assemble(endpoint, concrete, manifest, manifest_bytes, signature, paths)
            # Every file was hashed as it arrived (or just now, if its blob was cached
            # already): record that, so loading it does not hash it again.
            self.cache.mark_verified(final, manifest)
            return final

    @staticmethod
    def _same_partial(existing: Path, manifest: Manifest) -> bool:
        """Whether ``existing`` is a partial copy of this very manifest (files can be added to it)."""
        if not is_partial(existing):
            return False
        try:
            return read_manifest(existing) == manifest
        except ManifestError:
            return False

    def _progress(self, total: int, desc: str) -> tqdm:  # type: ignore[type-arg]
        from tqdm import tqdm

        enabled = self.settings.show_progress(small=total < _PROGRESS_MIN_BYTES)
        return tqdm(
            total=total,
            desc=f"downloading {desc}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=not enabled,
            leave=False,
        )


def _local_dir(handle: str | os.PathLike[str]) -> Path:
    path = Path(handle).expanduser()
    if not path.is_dir():
        raise ModuleNotFound(
            f"{path} is not a directory. A local module is a directory holding modhub.json "
            "(make one with modhub.export); a hub handle looks like publisher/name/version.",
            handle=str(handle),
            path=path,
        )
    return path
