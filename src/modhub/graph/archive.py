"""Read a ``graph.pt2`` from bytes in memory: the zip layout, the JSON, the raw weights.

modhub never calls ``torch.export.load``, which trusts its input (it unpickles
payloads marked ``use_pickle``, sample inputs and custom objects, passes shape
strings to ``sympy.sympify``, pastes guard code into ``exec``, resolves call
targets such as ``torch.os.system`` by name and loads AOTInductor native
libraries). :func:`read_archive` parses the archive with :mod:`zipfile` and
:mod:`json` only and accepts it only if every entry and field is on an
allow-list of what ``torch.export.save`` (torch 2.13) writes for a plain aten
graph; anything else raises :class:`~modhub.errors.UnsafeModuleError` naming
the entry and the reason. The result, a :class:`GraphProgram`, is what
:mod:`modhub.graph.build` builds from: one parse serves checking and building.

Archive layout accepted (``<root>`` is the single top-level folder)::

    <root>/archive_format                 "pt2"
    <root>/archive_version                "0"
    <root>/byteorder                      "little"
    <root>/.data/version, .data/serialization_id
    <root>/models/model.json              the program (checked by modhub.graph.program)
    <root>/data/weights/model_weights_config.json + weight_N   raw tensor bytes
    <root>/data/constants/model_constants_config.json + tensor_N
    <root>/data/sample_inputs/model.pt    optional, must be empty
"""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modhub.errors import UnsafeModuleError
from modhub.graph.fields import Refused, check_payload_config, load_json
from modhub.graph.limits import MAX_GRAPH_BYTES
from modhub.graph.program import check_program

__all__ = ["GraphProgram", "read_archive"]

MAX_ENTRIES = 100_000
MAX_JSON_BYTES = 64 << 20

_FIX = (
    "modhub loads only graphs written by torch.export.save for plain aten operators, "
    "with sample inputs stripped; re-export the model with modhub.export and do not edit graph.pt2."
)
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-/]+")
_MODEL_JSON = "models/model.json"
_WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
_CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
_SAMPLE_INPUTS = "data/sample_inputs/model.pt"
# Small marker files and the exact contents torch writes.
_MARKERS: dict[str, re.Pattern[bytes]] = {
    "archive_format": re.compile(rb"pt2"),
    "archive_version": re.compile(rb"0"),
    "byteorder": re.compile(rb"little"),
    ".data/version": re.compile(rb"[0-9]{1,3}\n?"),
    ".data/serialization_id": re.compile(rb"[0-9]{1,64}"),
}
_PAYLOAD = re.compile(r"data/(weights/weight_|constants/tensor_)[0-9]{1,9}")
# Entries torch knows but modhub refuses, with the reason.
_KNOWN_BAD: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"data/aotinductor/"), "AOTInductor native code (a shared library torch would load)"),
    (re.compile(r".*\.(so|dll|dylib|pyd|cpp|c|h|o|a|cubin|ptx|hsaco|py)$"), "native code or source"),
    (re.compile(r"data/executorch/|data/mtia|xl_model_weights/"), "a payload for another runtime"),
    (re.compile(r"extra/"), "an extra file (modhub keeps extras outside the graph)"),
    (re.compile(r"data/constants/(custom_obj_|opaque_obj_)"), "a custom/opaque object that torch unpickles"),
    (re.compile(r"data/(weights|constants)/[^/]*\.pt$"), "a legacy pickled state dict"),
    (re.compile(r"data/sample_inputs/"), "pickled sample inputs"),
    (re.compile(r"models/"), "a second exported program (only models/model.json is loaded)"),
]
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


class _EntryRefused(Exception):
    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(reason)
        self.entry = entry
        self.reason = reason


@dataclass(frozen=True)
class GraphProgram:
    """A ``graph.pt2`` that passed every check, parsed once; the builder's only input."""

    # models/model.json, checked.
    program: dict[str, Any] = field(repr=False)
    # fqn -> entry of the weights/constants configs, checked (raw bytes, shapes within the files).
    weights: dict[str, Any] = field(repr=False)
    constants: dict[str, Any] = field(repr=False)
    # "weights/weight_0", "constants/tensor_0", ... -> the entry's bytes (views of the archive).
    payloads: dict[str, memoryview] = field(repr=False)
    path: Path | None = None


def read_archive(data: bytes, *, path: Path | None = None, max_bytes: int | None = None) -> GraphProgram:
    """Check ``data`` (the bytes of a graph.pt2) and return its parsed program, or raise UnsafeModuleError.

    ``max_bytes`` bounds the total uncompressed size (default 8 GiB).
    """
    name = path.name if path is not None else "graph.pt2"
    limit = MAX_GRAPH_BYTES if max_bytes is None else max_bytes
    try:
        return _read(data, limit, path)
    except _EntryRefused as exc:
        raise UnsafeModuleError(
            f"{name}: entry {exc.entry!r} is refused: {exc.reason}. {_FIX}", path=path
        ) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, struct.error, ValueError) as exc:
        # ValueError includes UnicodeDecodeError from a name flagged UTF-8 that is not.
        raise UnsafeModuleError(
            f"{name} is refused: it is not a well-formed zip archive ({exc}). {_FIX}", path=path
        ) from None


def _read(data: bytes, limit: int, path: Path | None) -> GraphProgram:
    if data[:4] != b"PK\x03\x04":
        raise _EntryRefused("<archive>", "the file does not start with a zip entry")
    fh = _BufferFile(data)
    with zipfile.ZipFile(fh) as zf:
        if zf.comment:
            raise _EntryRefused("<archive>", "the zip carries a comment (torch writes none)")
        infos = zf.infolist()
        if not infos:
            raise _EntryRefused("<archive>", "the archive is empty")
        if len(infos) > MAX_ENTRIES:
            raise _EntryRefused("<archive>", f"{len(infos)} entries, more than {MAX_ENTRIES}")
        root = _check_entries(infos, limit)
        offsets = _check_layout(fh, infos, zf.start_dir)
        view = memoryview(data)
        contents = {
            info.filename[len(root) + 1 :]: view[
                offsets[info.filename] : offsets[info.filename] + info.file_size
            ]
            for info in infos
        }
        return _check_contents(contents, root, path)


class _BufferFile(io.RawIOBase):
    """A read-only, seekable file over a buffer, without copying it.

    ``io.BytesIO`` copies a bytearray (the writable buffer ``read_module_file``
    returns so that the weights can be views of it): for a 90 MB graph that
    copy alone would double the peak memory of a load.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._view[self._pos : self._pos + len(buffer)]
        count = len(chunk)
        memoryview(buffer).cast("B")[:count] = chunk
        self._pos += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _check_entries(infos: list[zipfile.ZipInfo], limit: int) -> str:
    """Names, flags and sizes of every entry; returns the single root folder."""
    seen: set[str] = set()
    total = 0
    root = infos[0].filename.split("/", 1)[0]
    for info in infos:
        name = info.filename
        if not _NAME_CHARS.fullmatch(name) or name != info.orig_filename:
            raise _EntryRefused(name, "the name has characters outside [A-Za-z0-9_.-/]")
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise _EntryRefused(name, "the path is absolute, empty or climbs out of the archive")
        if parts[0] != root or len(parts) < 2:
            raise _EntryRefused(name, f"it is outside the archive's single top-level folder {root!r}")
        if name in seen:
            raise _EntryRefused(name, "the name appears twice")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise _EntryRefused(name, "the entry is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise _EntryRefused(
                name, "the entry is compressed (torch.export.save stores entries uncompressed)"
            )
        # Unix file type bits, when present, must say "regular file" (no symlinks,
        # directories or devices); plain permission bits without a type are fine.
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type and file_type != stat.S_IFREG:
            raise _EntryRefused(name, "the entry is a symlink, directory or device, not a regular file")
        total += info.file_size
        if total > limit:
            raise _EntryRefused(name, f"the archive unpacks to more than {limit} bytes")
    return root


def _check_layout(fh: _BufferFile, infos: list[zipfile.ZipInfo], central_dir: int) -> dict[str, int]:
    """Every local header matches the central directory and no two entries overlap.

    Returns where each entry's data starts. Entries are stored uncompressed
    (checked before), so the data is a plain slice of the archive's bytes;
    refusing prepended data, overlapping entries and mismatched local names
    means every zip reader sees the same bytes for the same names.
    """
    offsets: dict[str, int] = {}
    ordered = sorted(infos, key=lambda i: i.header_offset)
    if ordered[0].header_offset != 0:
        raise _EntryRefused(ordered[0].filename, "data precedes the first zip entry")
    end = 0
    for info in ordered:
        if info.header_offset < end:
            raise _EntryRefused(info.filename, "the entry overlaps the previous one")
        fh.seek(info.header_offset)
        header = fh.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            raise _EntryRefused(info.filename, "the local header is truncated")
        sig, *_, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        if sig != b"PK\x03\x04" or fh.read(name_len) != info.filename.encode("ascii"):
            raise _EntryRefused(info.filename, "the local header does not match the central directory")
        offsets[info.filename] = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        end = offsets[info.filename] + info.compress_size
    if end > central_dir:
        raise _EntryRefused(ordered[-1].filename, "the entry runs into the central directory")
    return offsets


def _classify(rel: str) -> str | None:
    """The role of an entry relative to the root, or None if it is not on the allow-list."""
    if rel in _MARKERS:
        return "marker"
    if rel in (_MODEL_JSON, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG):
        return "json"
    if rel == _SAMPLE_INPUTS:
        return "sample_inputs"
    if _PAYLOAD.fullmatch(rel):
        return "payload"
    return None


def _check_contents(contents: dict[str, memoryview], root: str, path: Path | None) -> GraphProgram:
    sizes = {rel: len(data) for rel, data in contents.items()}
    for rel in sizes:
        role = _classify(rel)
        entry = f"{root}/{rel}"
        if role is None:
            reason = next((why for pattern, why in _KNOWN_BAD if pattern.match(rel)), "an unknown entry")
            raise _EntryRefused(entry, reason)
        if role == "marker" and (sizes[rel] > 64 or not _MARKERS[rel].fullmatch(bytes(contents[rel]))):
            raise _EntryRefused(entry, "its content is not what torch.export.save writes")
        if role == "sample_inputs" and sizes[rel] != 0:
            raise _EntryRefused(entry, "sample inputs are pickled by torch; a module must carry none")
    for required in ("archive_format", "archive_version", _MODEL_JSON, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG):
        if required not in sizes:
            raise _EntryRefused(f"{root}/{required}", "it is missing")

    def payload_files(prefix: str) -> dict[str, int]:
        return {
            rel[len(prefix) :]: size
            for rel, size in sizes.items()
            if _PAYLOAD.fullmatch(rel) and rel.startswith(prefix)
        }

    def read_json(rel: str) -> Any:
        if sizes[rel] > MAX_JSON_BYTES:
            raise _EntryRefused(f"{root}/{rel}", f"larger than {MAX_JSON_BYTES} bytes")
        try:
            return load_json(bytes(contents[rel]))
        except Refused as exc:
            raise _EntryRefused(f"{root}/{rel}", exc.reason) from None

    try:
        rel = _WEIGHTS_CONFIG
        weights_doc = read_json(rel)
        weights = check_payload_config(
            weights_doc, prefix="weight_", file_sizes=payload_files("data/weights/")
        )
        rel = _CONSTANTS_CONFIG
        constants_doc = read_json(rel)
        constants = check_payload_config(
            constants_doc, prefix="tensor_", file_sizes=payload_files("data/constants/")
        )
        rel = _MODEL_JSON
        program = read_json(rel)
        check_program(program, weights=weights, constants=constants)
    except Refused as exc:
        raise _EntryRefused(f"{root}/{rel}", exc.reason) from None
    payloads = {rel[len("data/") :]: data for rel, data in contents.items() if _PAYLOAD.fullmatch(rel)}
    return GraphProgram(
        program=program,
        weights=weights_doc["config"],
        constants=constants_doc["config"],
        payloads=payloads,
        path=path,
    )
