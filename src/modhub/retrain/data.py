"""Reading training data: a folder of class sub-folders of photos, or a CSV of labelled texts.

Everything here is plain data handling (no torch modules, no training), so the
errors a user hits first (an empty class, a single class, a CSV without the
named column) are raised before any module is loaded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modhub.errors import InputError
from modhub.format.digests import sha256_file
from modhub.format.manifest import is_hidden
from modhub.runtimes.images import IMAGE_SUFFIXES
from modhub.runtimes.tokenizer_guard import MAX_TEXT_CHARS

__all__ = [
    "IMAGE_SUFFIXES",
    "Example",
    "LabelledData",
    "decode_image",
    "drop_untokenisable",
    "read_class_folders",
    "read_image_folder",
    "read_text_csv",
    "stratified_split",
]

log = logging.getLogger("modhub.retrain")

# File name endings taken as photos; anything else in a class folder is ignored.
# A class needs one example to train on and one to validate with.
MIN_PER_CLASS = 2


@dataclass(frozen=True)
class Example:
    """One labelled example: an image file (``path``) or a text (``text``)."""

    label: int
    # Content digest (sha256 of the file bytes or of the UTF-8 text): the feature-cache key.
    key: str
    path: Path | None = None
    text: str | None = None
    # What the report shows for this example (path relative to the data folder, or CSV row).
    name: str = ""


@dataclass
class LabelledData:
    """Examples with integer labels indexing ``classes`` (sorted class names)."""

    classes: list[str]
    examples: list[Example]
    # Files that could not be read, as "relative/path: reason"; listed in the report.
    skipped: list[str] = field(default_factory=list)
    # Where the data came from, for the model card ("flowers/ (folder of images)").
    source: str = ""

    def counts(self) -> dict[str, int]:
        counter = Counter(ex.label for ex in self.examples)
        return {name: counter.get(i, 0) for i, name in enumerate(self.classes)}


def decode_image(data: bytes, height: int, width: int, resize: str = "crop") -> np.ndarray:
    """Photo bytes → float32 [3, height, width] RGB in [0, 1], by the resize policy ``resize``.

    The same conversion as a module's photo inputs (``modhub.runtimes.images``): RGBA on
    white, greyscale/palette to RGB, EXIF orientation applied.
    Raises ``InputError`` (a ``ValueError``) on bytes that are not an image or are over the size cap.
    """
    from modhub.runtimes.images import open_photo, photo_array

    pixels = photo_array(open_photo(data), height, width, resize)
    return pixels.transpose(2, 0, 1).astype(np.float32) / 255.0


def read_image_folder(data_dir: str | os.PathLike[str]) -> LabelledData:
    """One sub-folder per class, photos inside (any size; RGBA, greyscale and palette handled).

    Unreadable files are not a crash: they are skipped, listed in
    ``LabelledData.skipped`` and logged as warnings. Hidden files and folders are ignored.
    """
    return read_class_folders(
        data_dir, IMAGE_SUFFIXES, noun="photo", sample="photo.jpg", source="images", unreadable=_unreadable
    )


def read_class_folders(
    data_dir: str | os.PathLike[str],
    suffixes: Collection[str],
    *,
    noun: str,
    sample: str,
    source: str,
    unreadable: Callable[[Path, str], str | None] | None = None,
) -> LabelledData:
    """One sub-folder per class, files ending in one of ``suffixes`` inside (other files and
    hidden ones are ignored). ``noun``/``sample``/``source`` word the messages and the report
    ("photo", "photo.jpg", "images"); ``unreadable(path, shown)`` gives why a file is skipped
    (listed in ``LabelledData.skipped`` and logged), or None to keep it."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise InputError(
            f"{root} is not a folder; pass a folder with one sub-folder of {noun}s per class",
            path=root,
        )
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    stray = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if not class_dirs:
        hint = (
            f" (found {len(stray)} {noun}(s) directly in it: move them into class folders)" if stray else ""
        )
        raise InputError(
            f"{root} has no class sub-folders{hint}. Lay the data out as {root}/<class name>/{sample}",
            path=root,
        )
    _check_classes([p.name for p in class_dirs], root)
    examples: list[Example] = []
    skipped: list[str] = []
    empty: list[str] = []
    for label, class_dir in enumerate(class_dirs):
        found = 0
        for path in sorted(class_dir.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or is_hidden(path.relative_to(root)):
                continue
            if path.suffix.lower() not in suffixes:
                continue
            reason = unreadable(path, rel) if unreadable is not None else None
            if reason:
                skipped.append(f"{rel}: {reason}")
                log.warning("skipping %s: %s", rel, reason)
                continue
            digest = sha256_file(path)
            examples.append(Example(label=label, key=digest, path=path, name=rel))
            found += 1
        if found == 0:
            empty.append(class_dir.name)
    if empty:
        readable = "readable " if unreadable is not None else ""
        raise InputError(
            f"class folder(s) without {readable}{noun}s ({', '.join(sorted(suffixes))}): "
            f"{', '.join(sorted(empty))} in {root}. Add {noun}s or remove the folder(s)."
            + (f" Skipped as unreadable: {'; '.join(skipped[:5])}" if skipped else ""),
            path=root,
        )
    data = LabelledData([p.name for p in class_dirs], examples, skipped, f"{root.name}/ (folder of {source})")
    _check_counts(data)
    return data


def _unreadable(path: Path, shown: str) -> str | None:
    """Why ``path`` cannot be decoded (broken, truncated, an image bomb over the size cap), or None."""
    from modhub.runtimes.images import read_photo_file

    try:
        # A full decode (not just verify()) also catches truncated files; the size cap of
        # modhub.runtimes.images refuses an image bomb from its header, before decoding.
        read_photo_file(path, shown)
    except InputError as exc:
        # Pillow's messages hold the absolute path; the report shows paths inside the data folder.
        return str(exc).replace(str(path), shown).removeprefix(f"{shown} is ").removeprefix(f"{shown}: ")
    return None


def read_text_csv(
    csv_path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str = "label",
) -> LabelledData:
    """A CSV with a header row; ``text_column`` holds the texts, ``label_column`` the classes."""
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise InputError(f"{path} is not a file; pass a CSV file with a header row", path=path)
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc}); save the CSV as UTF-8", path=path) from exc
    try:
        dialect = csv.Sniffer().sniff(raw[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    reader = csv.DictReader(io.StringIO(raw, newline=""), dialect=dialect)
    columns = reader.fieldnames or []
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise InputError(
            f"{path.name} has no column(s) {', '.join(repr(c) for c in missing)}; its columns are "
            f"{', '.join(repr(c) for c in columns) or '(none: is the header row missing?)'}. "
            "Name the right ones with --text-column and --label-column.",
            path=path,
        )
    rows: list[tuple[str, str, int]] = []
    skipped: list[str] = []
    for line, row in enumerate(_rows(reader), start=2):
        if row is None:  # a field over the csv module's own limit (131,072 characters)
            skipped.append(f"row {line}: a field over 131,072 characters (the limit: {MAX_TEXT_CHARS:,})")
            continue
        text, label = (row.get(text_column) or "").strip(), (row.get(label_column) or "").strip()
        if not text or not label:
            skipped.append(f"row {line}: empty {'text' if not text else 'label'}")
            continue
        if len(text) > MAX_TEXT_CHARS:
            skipped.append(f"row {line}: a text of {len(text):,} characters (the limit: {MAX_TEXT_CHARS:,})")
            continue
        rows.append((text, label, line))
    if skipped:
        log.warning("skipped %d CSV row(s) (empty or too long), e.g. %s", len(skipped), skipped[0])
    classes = sorted({label for _, label, _ in rows})
    _check_classes(classes, path)
    index = {name: i for i, name in enumerate(classes)}
    examples = [
        Example(
            label=index[label],
            key=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            text=text,
            name=f"row {line}",
        )
        for text, label, line in rows
    ]
    data = LabelledData(classes, examples, skipped, f"{path.name} (CSV, column {text_column!r})")
    _check_counts(data)
    return data


def drop_untokenisable(data: LabelledData, tokenise: Callable[[list[str]], object]) -> LabelledData:
    """``data`` without the texts the module's tokenizer cannot take (a tokenizer error or panic).

    Each text is tokenised alone with ``tokenise`` (the backbone's own tokenisation); one it
    refuses with ``InputError`` is skipped, listed in ``skipped`` and logged, and the rest go on.
    """
    kept: list[Example] = []
    skipped = list(data.skipped)
    for example in data.examples:
        try:
            tokenise([example.text or ""])
        except InputError as exc:
            reason = str(exc).replace("text item 0", "the text")
            skipped.append(f"{example.name}: {reason}")
            log.warning("skipping %s: %s", example.name, reason)
            continue
        kept.append(example)
    if len(kept) == len(data.examples):
        return data
    pruned = LabelledData(data.classes, kept, skipped, data.source)
    _check_counts(pruned)
    return pruned


def _rows(reader: csv.DictReader[str]) -> Iterator[dict[str, str] | None]:
    """The reader's rows; None for a row it refuses (a field over its size limit), then on."""
    rows = iter(reader)
    while True:
        try:
            yield next(rows)
        except StopIteration:
            return
        except csv.Error:
            yield None


def _check_classes(classes: Sequence[str], where: Path) -> None:
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise InputError(
            f"a classifier needs at least 2 classes, {where} has {found}. "
            "Add examples of another class (for images: another sub-folder).",
            path=where,
        )
    bad = [c for c in classes if "\n" in c or "\r" in c]
    if bad:
        raise InputError(f"class names must be one line, got {bad[0]!r}", path=where)


def _check_counts(data: LabelledData) -> None:
    few = {name: n for name, n in data.counts().items() if n < MIN_PER_CLASS}
    if few:
        listed = ", ".join(f"{name!r} ({n})" for name, n in sorted(few.items()))
        raise InputError(
            f"every class needs at least {MIN_PER_CLASS} examples (one to train on, one to validate "
            f"with); too few: {listed}. Add examples or drop those classes."
        )


def stratified_split(labels: Sequence[int], validation: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, validation): per class, a seeded shuffle, ``validation`` of it held out.

    Every class keeps at least one example on each side, so validation metrics
    cover every class.
    """
    if not 0.0 < validation < 1.0:
        raise InputError(f"the validation fraction must be between 0 and 1, got {validation}")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(by_class):
        members = np.array(by_class[label])
        rng.shuffle(members)
        n_val = min(max(1, round(len(members) * validation)), len(members) - 1)
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)
