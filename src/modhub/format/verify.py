"""Check a module directory before anything in it is used, reading each file once.

Every file a loader uses goes through :func:`read_module_file`: one ``open``
(no symlinks anywhere below the module directory, no FIFOs or devices), one
``fstat`` of that descriptor, one read with a size cap, and the sha256 of the
very bytes that were read. The caller then uses those bytes, never the path
again, so a file swapped on disk after the check has no effect on what runs.

:func:`verify_module` does that for the files a load needs and adds the
checks of the module as a whole: the manifest (with its path rules), no
unlisted files, the task contract and, when the graph is among the files, the
graph's safety check on the same bytes (for ``model.onnx``: that its external data
lies within ``model.onnx.data``). The hub's publish check calls it too.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from modhub.errors import IntegrityError, ManifestError, UnsafeModuleError
from modhub.format._files import (
    MAX_FILE_BYTES,
    MAX_GRAPH_BYTES,
    MAX_LABELS_BYTES,
    MAX_SAVED_MODEL_PB_BYTES,
    MAX_SIGNATURE_BYTES,
    MAX_TFJS_MODEL_BYTES,
    MAX_TOKENIZER_BYTES,
    Changed,
    NotRegular,
    TooLarge,
    kind_of,
    open_regular,
    read_exactly,
    read_regular,
)
from modhub.format.digests import sha256_fd
from modhub.format.manifest import (
    GRAPH_NAME,
    MANIFEST_NAME,
    ONNX_DATA_NAME,
    ONNX_NAME,
    RESERVED_NAMES,
    SAVED_MODEL_DIR,
    SAVED_MODEL_PB,
    SIGNATURE_NAME,
    TFJS_MODEL,
    FileEntry,
    Manifest,
    is_hidden,
    parse_manifest,
    read_manifest_bytes,
)
from modhub.format.signature import SignatureInfo, check_signature
from modhub.format.tasks import check_contract

if TYPE_CHECKING:
    from modhub.format.onnx_bounds import OnnxLimits
    from modhub.graph import GraphProgram

__all__ = [
    "MAX_FILE_BYTES",
    "FileRecords",
    "VerifiedModule",
    "always_read",
    "check_module",
    "check_unlisted",
    "copy_module_file",
    "file_cap",
    "files_used",
    "open_module_file",
    "read_module_file",
    "verify_directory",
    "verify_files",
    "verify_module",
]

_REDOWNLOAD = "Download the module again (modhub cache rm, then load) or re-export it."


class FileRecords(Protocol):
    """Remembers which files were hashed already (the client cache implements it).

    ``st`` is the ``fstat`` of the descriptor the bytes are read from, so a
    record can only vouch for the very file that is being read.
    """

    def is_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> bool: ...

    def mark_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> None: ...


def file_cap(manifest: Manifest, path: str) -> int:
    """The size cap for one file of the module, by the role the manifest gives it.

    The one table of caps (:mod:`modhub.format._files`); every read of a listed
    file (load, verify, publish, ``modhub cache verify``) is capped by it.
    """
    if path == manifest.labels:
        return MAX_LABELS_BYTES
    tokenizer = manifest.preprocessing.tokenizer
    if tokenizer is not None and path == tokenizer.file:
        return MAX_TOKENIZER_BYTES
    if _is_graph(path):
        return MAX_GRAPH_BYTES
    if path == SAVED_MODEL_PB:
        return MAX_SAVED_MODEL_PB_BYTES
    if path == TFJS_MODEL:
        return MAX_TFJS_MODEL_BYTES
    return MAX_FILE_BYTES


def read_module_file(
    root: Path,
    entry: FileEntry,
    *,
    max_bytes: int | None = None,
    records: FileRecords | None = None,
) -> bytes:
    """Read one listed file of the module once and return its verified bytes.

    Opens it once (no symlinks, no FIFOs or devices), checks on that
    descriptor that it is a regular file of exactly ``entry.size`` bytes and at
    most ``max_bytes`` (default :data:`MAX_FILE_BYTES`), reads it all, and
    checks the sha256 of those bytes, unless ``records`` says this very file
    (same fstat) was verified before; after a successful hash the file is
    marked verified. Raises :class:`UnsafeModuleError` (not a regular file,
    over the cap), :class:`IntegrityError` (missing, other size or sha256).
    """
    fd, st, path = _open_entry(Path(root), entry, max_bytes)
    try:
        data = read_exactly(fd, entry.size)
    finally:
        os.close(fd)
    if data is None:
        raise IntegrityError(f"{entry.path} changed size while it was read. {_REDOWNLOAD}", path=path)
    if records is not None and records.is_verified(path, entry, st):
        return data
    _check_digest(entry, hashlib.sha256(data).hexdigest(), path)
    if records is not None:
        records.mark_verified(path, entry, st)
    return data


@contextlib.contextmanager
def open_module_file(
    root: Path,
    entry: FileEntry,
    *,
    max_bytes: int | None = None,
    records: FileRecords | None = None,
) -> Iterator[int]:
    """Open one listed file once, verify it, and lend its descriptor to an engine that reads it itself.

    For files too large to hold twice (``model.onnx`` handed to onnxruntime as
    ``/proc/self/fd/N``): the same checks as :func:`read_module_file` on one
    descriptor, but the sha256 is computed by streaming (no copy in memory).
    The engine then reads that same open file, so a file renamed over the
    path meanwhile has no effect; a write to the file itself changes its
    mtime, which is checked when the block ends (IntegrityError).
    """
    fd, st, path = _open_entry(Path(root), entry, max_bytes)
    try:
        if records is None or not records.is_verified(path, entry, st):
            _stream(fd, entry, path, None)
            if records is not None:
                records.mark_verified(path, entry, st)
        yield fd
        # Not ctime: a new hard link to the blob (another version assembled
        # meanwhile) or the rename of another file over the path changes it too.
        now = os.fstat(fd)
        if (now.st_mtime_ns, now.st_size) != (st.st_mtime_ns, st.st_size):
            raise IntegrityError(
                f"{entry.path} was modified while it was being loaded; nothing built from it is used. "
                + _REDOWNLOAD,
                path=path,
            )
    finally:
        os.close(fd)


def copy_module_file(root: Path, entry: FileEntry, dest: Path) -> None:
    """Copy one listed file to ``dest``, hashing the very bytes written (one read, never held whole).

    The same checks as :func:`read_module_file`; on a wrong size or sha256,
    ``dest`` is removed and IntegrityError raised.
    """
    fd, _, path = _open_entry(Path(root), entry, None)
    try:
        with open(dest, "wb") as out:
            _stream(fd, entry, path, out)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _stream(fd: int, entry: FileEntry, path: Path, sink: IO[bytes] | None) -> None:
    """Hash ``fd`` from its start through one small buffer (writing each chunk to ``sink``, if any)."""
    digest, size = sha256_fd(fd, sink=None if sink is None else sink.write)
    if size != entry.size:
        raise IntegrityError(f"{entry.path} changed size while it was read. {_REDOWNLOAD}", path=path)
    _check_digest(entry, digest, path)


def _open_entry(root: Path, entry: FileEntry, max_bytes: int | None) -> tuple[int, os.stat_result, Path]:
    """Open a listed file (no symlinks, regular, within its cap, of the listed size): fd, its fstat, path."""
    path = root / entry.path
    cap = MAX_FILE_BYTES if max_bytes is None else max_bytes
    if entry.size > cap:
        raise UnsafeModuleError(
            f"{entry.path} is refused: modhub.json says it has {entry.size} bytes, more than the "
            f"{cap} bytes modhub reads for this file. A module's labels, tokenizer and graph must "
            "stay within their limits; re-export the module.",
            path=path,
        )
    try:
        fd = open_regular(root, entry.path)
    except NotRegular as exc:
        raise UnsafeModuleError(
            f"{entry.path} is refused: it is {exc.kind}; a module holds regular files only. " + _REDOWNLOAD,
            path=path,
        ) from None
    except FileNotFoundError:
        raise IntegrityError(
            f"{entry.path} is listed in modhub.json but missing from {root}. {_REDOWNLOAD}", path=path
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise UnsafeModuleError(
                f"{entry.path} is refused: its path goes through a symbolic link or a non-directory; "
                f"a module holds regular files only. {_REDOWNLOAD}",
                path=path,
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeModuleError(
                f"{entry.path} is refused: it is {kind_of(st.st_mode)}; a module holds regular files only. "
                + _REDOWNLOAD,
                path=path,
            )
        if st.st_size != entry.size:
            raise IntegrityError(
                f"{entry.path} has {st.st_size} bytes, modhub.json says {entry.size}: the file was "
                f"changed or truncated. {_REDOWNLOAD}",
                path=path,
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, st, path


def _check_digest(entry: FileEntry, digest: str, path: Path) -> None:
    if digest != entry.sha256:
        raise IntegrityError(
            f"{entry.path} has sha256 {digest}, modhub.json says {entry.sha256}: the file was changed "
            f"after export. Do not use it; {_REDOWNLOAD[0].lower()}{_REDOWNLOAD[1:]}",
            path=path,
        )


@dataclass(frozen=True)
class VerifiedModule:
    """A module that passed every check, with the bytes of the files that were asked for.

    Use ``files[path]`` (and ``graph`` for the parsed, checked graph); never
    reopen the files on disk: these bytes are the ones that were verified.
    """

    root: Path
    manifest: Manifest
    # Exactly the files asked for (plus labels and tokenizer), read once, verified.
    files: Mapping[str, bytes]
    # The checked graph program, parsed from files["graph.pt2"], when the graph was asked for.
    graph: GraphProgram | None = field(default=None, repr=False)
    # Every checked graph program read for this load, by path (the root's and other signatures').
    graphs: Mapping[str, GraphProgram] = field(default_factory=dict, repr=False)
    # Fingerprint of the trusted key that signed the module, when trusted keys were given.
    signed_by: str | None = None
    # The bounds every model.onnx was checked against (None: the defaults); a runtime checks the
    # graphs it builds from (optimised copies) against the same.
    onnx_limits: OnnxLimits | None = None


def tensorflow_only_message(root: Path | str) -> str:
    """What to say when a TensorFlow-only module (a published SavedModel) is loaded with modhub."""
    return (
        f"{root} holds only a TensorFlow SavedModel (no {GRAPH_NAME}); load it with tensorflow_hub: "
        "hub.load(URL) (see docs/tensorflow.md)"
    )


def check_unlisted(root: Path, manifest: Manifest) -> None:
    """Raise IntegrityError if the directory holds a file the manifest does not list.

    Hidden names (``.stamp``, ``.git``) are the cache's and tools' own and are skipped.
    """
    listed = {entry.path for entry in manifest.files}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames if not is_hidden(d)]
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if is_hidden(name) or rel in RESERVED_NAMES or rel in listed:
                continue
            raise IntegrityError(
                f"{rel} is in {root} but not listed in modhub.json; a module holds only the files its "
                "manifest lists. Remove it or re-export the module.",
                path=root / rel,
            )


# The files a load needs: a collection, or decided from the manifest as it was read (a runtime
# chooser), so that modhub.json is read and parsed once per load; None: every listed file.
Needed = Collection[str] | Callable[[Manifest], Collection[str]] | None


def verify_module(
    root: str | os.PathLike[str],
    *,
    needed: Needed = None,
    records: FileRecords | None = None,
    trusted_keys: Sequence[Path] | None = None,
    onnx_limits: OnnxLimits | None = None,
) -> VerifiedModule:
    """Check a module and read the files a load needs, each once.

    ``needed``: the listed files to read and verify (None = every listed
    file), or a function of the parsed manifest that returns them: it is
    called once, before the signature or any file is checked, with the
    manifest every later check uses (the manifest is read once per call).
    The labels and tokenizer files are always read (a load uses them).
    Checks: the manifest and its path rules, no unlisted files, each needed
    file's size and sha256, the task contract and, if ``graph.pt2`` is
    needed, the graph's safety check on exactly those bytes. With
    ``trusted_keys`` (public key files), the module must carry a signature
    (``modhub.sig``) by one of them that covers exactly these files. Every
    ``model.onnx`` read (the root's and any signature's) is checked by
    :func:`modhub.format.onnx_graph.plan_weights` against ``onnx_limits``.
    Raises ManifestError, IntegrityError, ContractError or UnsafeModuleError.
    """
    return _verify(
        Path(root), needed, records, keep_all=True, trusted_keys=trusted_keys, onnx_limits=onnx_limits
    )


def check_module(
    root: str | os.PathLike[str], *, records: FileRecords | None = None, saved_model: bool = False
) -> Manifest:
    """Every check of :func:`verify_module` on every listed file, keeping no file in memory.

    For publishing and ``modhub cache verify``: files are hashed one at a time by
    streaming, except the ones the checks themselves use (graph.pt2, model.onnx,
    labels, tokenizer), which are read once. ``records`` may vouch for files hashed
    already (the hub's upload hashes each file while it receives it).
    ``saved_model=True`` (the hub on publish) also checks every op of
    ``saved_model/`` (needs the tensorboard package, not TensorFlow); a
    "tensorflow" module, which has no graph.pt2, is always checked that way.
    """
    return _verify(Path(root), None, records, keep_all=False, saved_model=saved_model).manifest


def _verify(
    root: Path,
    needed: Needed,
    records: FileRecords | None,
    *,
    keep_all: bool,
    saved_model: bool = False,
    trusted_keys: Sequence[Path] | None = None,
    onnx_limits: OnnxLimits | None = None,
) -> VerifiedModule:
    manifest_bytes = read_manifest_bytes(root)
    manifest = parse_manifest(manifest_bytes, path=root / MANIFEST_NAME)
    if callable(needed):
        needed = needed(manifest)
    signed_by = None
    if trusted_keys is not None:
        signature = read_signature(root)
        signed_by = check_signature(root, manifest, manifest_bytes, signature, list(trusted_keys)).fingerprint
    by_path = {entry.path: entry for entry in manifest.files}
    tensorflow = manifest.framework == "tensorflow"
    if tensorflow and SAVED_MODEL_PB not in by_path:
        raise ManifestError(f"modhub.json lists no {SAVED_MODEL_PB}; a tensorflow module needs it", path=root)
    if manifest.framework == "onnx" and ONNX_NAME not in by_path:
        raise ManifestError(f"modhub.json lists no {ONNX_NAME}; an onnx module needs it", path=root)
    if manifest.framework == "pytorch" and GRAPH_NAME not in by_path:
        raise ManifestError(f"modhub.json lists no {GRAPH_NAME}; a module needs its graph", path=root)
    check_saved = SAVED_MODEL_PB in by_path and (saved_model or tensorflow)
    check_unlisted(root, manifest)
    wanted = set(by_path) if needed is None else set(needed)
    unknown = sorted(wanted - by_path.keys())
    if unknown and tensorflow:
        raise ManifestError(tensorflow_only_message(root), path=root / MANIFEST_NAME)
    if unknown:
        raise ManifestError(f"modhub.json lists no file {unknown[0]!r}", path=root / MANIFEST_NAME)
    # Every graph.pt2 asked for (the root's, each signature folder's): read to be checked below.
    used = {rel for rel in wanted if _is_graph(rel)}
    # Every model.onnx (the root's, each signature folder's): read to be checked below.
    used |= {rel for rel in wanted if _is_onnx(rel)}
    if check_saved:
        wanted.add(SAVED_MODEL_PB)
        used.add(SAVED_MODEL_PB)
    if TFJS_MODEL in wanted:
        used.add(TFJS_MODEL)
    used |= always_read(manifest)
    wanted |= used
    files: dict[str, bytes] = {}
    for rel in sorted(wanted):
        cap = file_cap(manifest, rel)
        if keep_all or rel in used:
            files[rel] = read_module_file(root, by_path[rel], max_bytes=cap, records=records)
        else:
            # Checked, not kept: hashed by streaming through one small buffer, never held whole
            # (a 1 GB asset would otherwise be allocated and zero-filled with the GIL held).
            with open_module_file(root, by_path[rel], max_bytes=cap, records=records):
                pass
    if tensorflow:
        from modhub.format.savedmodel import check_tf_contract

        check_tf_contract(manifest)
    else:
        check_contract(manifest, files)
    tokenizer = manifest.preprocessing.tokenizer
    if tokenizer is not None and tokenizer.file in files:
        from modhub.format.tokenizer_regex import check_tokenizer_regexes

        check_tokenizer_regexes(files[tokenizer.file], tokenizer.file, root)
    if check_saved:
        _check_saved_model(root, by_path, files[SAVED_MODEL_PB])
    if TFJS_MODEL in files:
        _check_tfjs_model(root, by_path, files[TFJS_MODEL])
    for rel in sorted(r for r in files if _is_onnx(r)):
        _check_onnx(root, manifest, rel, files[rel], by_path, onnx_limits)
    graphs = {}
    for rel in sorted(r for r in files if _is_graph(r)):
        from modhub.graph import check_graph

        graphs[rel] = check_graph(files[rel], path=root / rel)
    return VerifiedModule(
        root=root,
        manifest=manifest,
        files=files,
        graph=graphs.get(GRAPH_NAME),
        graphs=graphs,
        signed_by=signed_by,
        onnx_limits=onnx_limits,
    )


def always_read(manifest: Manifest) -> set[str]:
    """The files every load reads whatever it asked for: the labels and the tokenizer."""
    paths = set()
    if manifest.labels is not None:
        paths.add(manifest.labels)
    if manifest.preprocessing.tokenizer is not None:
        paths.add(manifest.preprocessing.tokenizer.file)
    return paths


def files_used(manifest: Manifest, needed: Collection[str] | None) -> set[str]:
    """Every listed file a load of ``needed`` (None: every file) reads from the module directory.

    ``needed`` itself, what :func:`verify_module` always reads (:func:`always_read`), and the
    ``model.onnx.data`` beside each ``model.onnx`` asked for (the onnx runtime reads it when it
    builds its session). A partial copy in the client cache (``modhub.client.resolve``) holds
    at least these before the load verifies it.
    """
    listed = {entry.path for entry in manifest.files}
    if needed is None:
        return listed
    used = set(needed) | always_read(manifest)
    if manifest.framework == "tensorflow" and SAVED_MODEL_PB in listed:
        used.add(SAVED_MODEL_PB)
    data = {rel[: -len(ONNX_NAME)] + ONNX_DATA_NAME for rel in used if _is_onnx(rel)}
    return used | (data & listed)


def _is_onnx(rel: str) -> bool:
    return rel == ONNX_NAME or rel.endswith("/" + ONNX_NAME)


def _is_graph(rel: str) -> bool:
    return rel == GRAPH_NAME or rel.endswith("/" + GRAPH_NAME)


def _check_onnx(
    root: Path,
    manifest: Manifest,
    rel: str,
    graph: bytes,
    by_path: Mapping[str, FileEntry],
    limits: OnnxLimits | None,
) -> None:
    """A model.onnx's weights, operators and bounds; its inputs' dtypes as the manifest says."""
    from modhub.format.onnx_graph import plan_weights

    weights = by_path.get(rel[: -len(ONNX_NAME)] + ONNX_DATA_NAME)
    plan = plan_weights(graph, None if weights is None else weights.size, path=root / rel, limits=limits)
    for name, sig in manifest.signatures.items():
        # The signature's graph, or a reduced-precision variant's graph of it (same inputs).
        variants = [v for v in (manifest.variants or {}).values() if name in v.signatures]
        if rel != sig.file(ONNX_NAME) and all(rel != v.file(sig) for v in variants):
            continue
        for spec in manifest.graph_inputs_of(name):
            if spec.name not in plan.inputs:
                continue  # an input the export dropped (unused)
            dtype = plan.inputs[spec.name]
            if dtype != spec.dtype:
                raise UnsafeModuleError(
                    f"{rel} is refused: its input {spec.name!r} is {dtype}, the manifest's signature "
                    f"{name!r} says {spec.dtype}; re-export the module so that both agree.",
                    path=root / rel,
                )


def _check_tfjs_model(root: Path, by_path: Mapping[str, FileEntry], model_json: bytes) -> None:
    """``tfjs/model.json`` is a TF.js graph model whose weight shards are listed files beside it
    (modhub never runs it, but the hub serves every shard it names)."""
    import json

    path = root / TFJS_MODEL
    try:
        model = json.loads(model_json)
    except ValueError as exc:
        raise ManifestError(
            f"{TFJS_MODEL} is not JSON ({exc}); convert the SavedModel again", path=path
        ) from None
    groups = model.get("weightsManifest") if isinstance(model, dict) else None
    if not isinstance(model, dict) or model.get("format") != "graph-model" or not isinstance(groups, list):
        raise ManifestError(
            f"{TFJS_MODEL} is not a TF.js graph model (format 'graph-model' with a weightsManifest); "
            "convert the SavedModel with tensorflowjs_converter --input_format=tf_saved_model",
            path=path,
        )
    shards: list[object] = []
    for group in groups:
        paths = group.get("paths") if isinstance(group, dict) else None
        shards += paths if isinstance(paths, list) else [paths]
    prefix = TFJS_MODEL.rsplit("/", 1)[0] + "/"
    for shard in shards:
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or shard in ("", ".", ".."):
            raise ManifestError(f"{TFJS_MODEL} names a weight shard {shard!r} outside tfjs/", path=path)
        if prefix + shard not in by_path:
            raise ManifestError(
                f"{TFJS_MODEL} names {prefix + shard}, which modhub.json does not list", path=path
            )


def _check_saved_model(root: Path, by_path: Mapping[str, FileEntry], saved_model_pb: bytes) -> None:
    """Every op of ``saved_model/`` (parsed from the verified bytes), and its file names."""
    from modhub.format.savedmodel import check_saved_model, check_saved_model_files, parse_saved_model

    prefix = SAVED_MODEL_DIR + "/"
    check_saved_model_files(rel[len(prefix) :] for rel in by_path if rel.startswith(prefix))
    path = root / SAVED_MODEL_PB
    check_saved_model(parse_saved_model(saved_model_pb, path=path), path=path)


def read_signature(root: Path) -> bytes | None:
    """The bytes of ``modhub.sig`` (a regular file, at most 4 MiB), or None if the module has none."""
    path = root / SIGNATURE_NAME
    try:
        return read_regular(root, SIGNATURE_NAME, MAX_SIGNATURE_BYTES)
    except FileNotFoundError:
        return None
    except NotRegular as exc:
        raise UnsafeModuleError(f"{SIGNATURE_NAME} is refused: it is {exc.kind}", path=path) from None
    except TooLarge as exc:
        raise UnsafeModuleError(
            f"{SIGNATURE_NAME} has {exc.size} bytes, more than {MAX_SIGNATURE_BYTES >> 20} MiB", path=path
        ) from None
    except Changed:
        raise IntegrityError(f"{SIGNATURE_NAME} changed while it was read; try again", path=path) from None


def verify_files(
    module_dir: str | os.PathLike[str], manifest: Manifest, *, only: Collection[str] | None = None
) -> None:
    """Check that every listed file exists with its size and sha256, and nothing else is there.

    ``only``: check just these listed files (a partial copy in the client cache); None: every one.
    Raises IntegrityError naming the first file that differs (UnsafeModuleError
    for a symlink, FIFO or device).
    """
    root = Path(module_dir)
    check_unlisted(root, manifest)
    for entry in manifest.files:
        if only is None or entry.path in only:
            read_module_file(root, entry, max_bytes=file_cap(manifest, entry.path))


def verify_directory(root: Path, keys: list[Path]) -> SignatureInfo:
    """Check the signature of a module directory against ``keys`` (for ``hub.resolve``)."""
    root = Path(root)
    data = read_manifest_bytes(root)
    return check_signature(
        root, parse_manifest(data, path=root / MANIFEST_NAME), data, read_signature(root), keys
    )
