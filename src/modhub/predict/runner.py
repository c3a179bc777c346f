"""Batch prediction: run a module over many inputs and write one Parquet row per input.

    from modhub.predict import predict
    result = predict("modhub/minilm-l6/1", "texts.txt", "embeddings.parquet")

Inputs: a folder of images (searched recursively), a text file (one text per
line), or a column of a CSV or Parquet file (texts, or image paths relative to
the file). Each output row has:

    key         the input's path inside the folder, its line number, or its row id
                (or the value of ``key_column``)
    output      the module's output vector (embeddings, features or class logits), float32
    top_labels  classifiers only: the ``top_k`` most likely labels, best first
    top_scores  classifiers only: their softmax probabilities

Memory stays bounded: inputs are read and written batch by batch (only a
folder's file list is held). The Parquet file is written next to ``out`` under
a temporary name and renamed when complete. ``modhub.cluster.submit_predict``
runs the same ``Predictor`` on Ray Data, with identical output.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modhub.errors import InputError
from modhub.format.manifest import is_hidden
from modhub.predict.named import named_outputs, named_table
from modhub.settings import Settings

__all__ = ["InputSource", "PredictResult", "Predictor", "images_to_batch", "open_inputs", "predict"]

log = logging.getLogger("modhub.predict")

# Skipped (unreadable) inputs listed in the result; more are only counted.
SKIPPED_LISTED = 100
TEXT_SUFFIXES = frozenset({".txt", ".text"})
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq"})


@dataclass
class PredictResult:
    """What a run wrote: ``rows`` rows to ``out``; inputs that could not be read are ``skipped``."""

    out: Path
    rows: int
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)


def load_for_inference(
    handle: str | os.PathLike[str], settings: Settings | None, precision: str | None = None
) -> Any:
    """The module, loaded to run frozen: on onnxruntime when it has ``model.onnx`` (and
    onnxruntime is installed), on torch otherwise (``hub.load``'s default); ``precision``
    ("int8"): its variant, on onnxruntime. Calls return numpy arrays either way."""
    from modhub.loading.loader import load

    return load(handle, output="numpy", precision=precision, settings=settings)


def images_to_batch(paths: list[str], manifest: Any) -> tuple[np.ndarray, list[int], list[str]]:
    """Image files → the module's float32 batch [B, 3, H, W] in [0, 1].

    Returns (batch, indices of the paths that decoded, reasons for the others).
    Photos go through ``modhub.runtimes.images.prepare_images`` with the module's own resize
    policy, as in retraining and ``hub.load(...)(photos)``.
    """
    from modhub.runtimes.images import prepare_images

    spec = manifest.preprocessing.image
    if spec is None:
        raise InputError("this module's modhub.json has no preprocessing.image (height, width)")
    arrays, good, bad = [], [], []
    for index, path in enumerate(paths):
        try:
            arrays.append(prepare_images(Path(path), spec)[0])
            good.append(index)
        except InputError as exc:  # broken, truncated, or over the photo size cap
            bad.append(f"{path}: {_reason(exc, f'the photo ({Path(path)})')}")
    if not arrays:
        return np.zeros((0, 3, spec.height, spec.width), np.float32), good, bad
    return np.stack(arrays), good, bad


def _reason(exc: InputError, named: str) -> str:
    """The error's message without the name of the input it starts with (the row names it)."""
    return str(exc).removeprefix(f"{named} is ").removeprefix(f"{named}: ").removeprefix(named).strip()


class Predictor:
    """Runs a module on (keys, items) batches and returns Arrow tables of the output rows.

    Ray Data's actor pool makes one per actor (the module is loaded once per actor).
    """

    def __init__(
        self,
        handle: str | os.PathLike[str],
        *,
        top_k: int = 5,
        settings: Settings | None = None,
        module: Any = None,
        extra_inputs: dict[str, str] | None = None,
        precision: str | None = None,
    ) -> None:
        self.module = module if module is not None else load_for_inference(handle, settings, precision)
        self.modality: str = self.module.modality
        task = str(self.module.task)
        labels = self.module.labels
        self.labels: list[str] | None = list(labels) if labels and task.endswith("classification") else None
        self.top_k = max(1, min(top_k, len(self.labels))) if self.labels else 0
        self.skipped: list[str] = []
        # Modules of any other signature: one column per output (modhub.predict.named).
        self._named = named_outputs(self.module, extra_inputs)
        if self._named is not None and self._named.modality is not None:
            self.modality = self._named.modality  # what the input fed from INPUT takes

    def run(self, keys: list[str], items: list[str]) -> Any:
        """One batch → a ``pyarrow.Table`` (rows of inputs that could not be read are left out)."""
        import pyarrow as pa

        if self._named is not None:
            kept, columns = self._named.run(keys, items, self._skip)
            return named_table(pa, kept, columns, self._named)
        if self.modality == "image":
            batch, good, bad = images_to_batch(items, self.module.manifest)
            self._skip(bad)
            keys = [keys[i] for i in good]
            outputs = self._call(batch) if keys else np.zeros((0, 0), np.float32)
        else:
            try:
                outputs = self._call(items) if keys else np.zeros((0, 0), np.float32)
            except InputError:
                # A text the module cannot take (too long, or one its tokenizer fails on) must
                # not end the run: the batch again one text at a time, the failing ones skipped.
                keys, outputs = self._one_by_one(keys, items)
        return _table(pa, keys, outputs, self.labels, self.top_k)

    def _one_by_one(self, keys: list[str], items: list[str]) -> tuple[list[str], np.ndarray]:
        kept, rows, bad = [], [], []
        for key, item in zip(keys, items, strict=True):
            try:
                rows.append(self._call([item])[0])
                kept.append(key)
            except InputError as exc:
                bad.append(f"{key}: {_reason(exc, 'text item 0')}")
        self._skip(bad)
        return kept, (np.stack(rows) if rows else np.zeros((0, 0), np.float32))

    def _skip(self, bad: list[str]) -> None:
        for line in bad:
            if len(self.skipped) < SKIPPED_LISTED:
                log.warning("skipping %s", line)
        self.skipped += bad

    def _call(self, inputs: Any) -> np.ndarray:
        out = self.module(inputs)
        out = out.numpy() if hasattr(out, "numpy") else out  # torch tensor or numpy array
        return np.asarray(out, dtype=np.float32)

    def __call__(self, batch: Any) -> Any:
        """Ray Data's entry: a pyarrow table with ``key`` and ``item`` columns."""
        return self.run(batch.column("key").to_pylist(), batch.column("item").to_pylist())


def _table(pa: Any, keys: list[str], outputs: np.ndarray, labels: list[str] | None, top_k: int) -> Any:
    width = outputs.shape[1] if outputs.ndim == 2 else 0
    flat = pa.array(outputs.reshape(-1), type=pa.float32())
    columns: dict[str, Any] = {
        "key": pa.array(keys, type=pa.string()),
        "output": pa.FixedSizeListArray.from_arrays(flat, width)
        if len(keys)
        else pa.array([], type=pa.list_(pa.float32())),
    }
    if labels is not None:
        shifted = outputs - outputs.max(axis=1, keepdims=True) if len(keys) else outputs
        probs = np.exp(shifted)
        probs = probs / probs.sum(axis=1, keepdims=True) if len(keys) else probs
        # Stable order: highest probability first, ties by label index.
        order = (
            np.argsort(-probs, axis=1, kind="stable")[:, :top_k] if len(keys) else np.zeros((0, top_k), int)
        )
        columns["top_labels"] = pa.array(
            [[labels[i] for i in row] for row in order], type=pa.list_(pa.string())
        )
        columns["top_scores"] = pa.array(
            [probs[r, row].astype(np.float32).tolist() for r, row in enumerate(order)],
            type=pa.list_(pa.float32()),
        )
    return pa.table(columns)


class InputSource:
    """Inputs as (keys, items) batches; items are texts or image file paths (absolute)."""

    def __init__(
        self,
        describe: str,
        total: int | None,
        batches: Callable[[int], Iterator[tuple[list[str], list[str]]]],
    ):
        self.describe = describe
        self.total = total
        self._batches = batches

    def batches(self, batch_size: int) -> Iterator[tuple[list[str], list[str]]]:
        return self._batches(batch_size)


def _chunked(pairs: Iterator[tuple[str, str]], size: int) -> Iterator[tuple[list[str], list[str]]]:
    keys: list[str] = []
    items: list[str] = []
    for key, item in pairs:
        keys.append(key)
        items.append(item)
        if len(keys) == size:
            yield keys, items
            keys, items = [], []
    if keys:
        yield keys, items


def open_inputs(
    path: str | os.PathLike[str],
    modality: str,
    *,
    column: str | None = None,
    key_column: str | None = None,
) -> InputSource:
    """Choose the reader for ``path``: a folder of images, a text file, or a CSV/Parquet column."""
    from modhub.runtimes.audio import AUDIO_SUFFIXES
    from modhub.runtimes.images import IMAGE_SUFFIXES

    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"{root} does not exist; pass a folder of images, a .txt file or a CSV/Parquet file")
    if root.is_dir():
        suffixes = AUDIO_SUFFIXES if modality == "audio" else IMAGE_SUFFIXES
        noun = "sound files" if modality == "audio" else "images"
        if modality not in ("image", "audio"):
            raise InputError(
                f"{root} is a folder, but this is a {modality} module: pass a .txt file (one text per "
                "line) or a CSV/Parquet file with --column"
            )
        files = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in suffixes and not is_hidden(p.relative_to(root))
        )
        if not files:
            raise InputError(f"{root} holds no {noun} ({', '.join(sorted(suffixes))})", path=root)
        return InputSource(
            f"{root} ({len(files)} {noun})",
            len(files),
            lambda size: _chunked(((rel, str((root / rel).absolute())) for rel in files), size),
        )
    suffix = root.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return _table_source(root, modality, column or ("text" if modality == "text" else "path"), key_column)
    if suffix in TEXT_SUFFIXES or modality == "text":
        if modality != "text":
            raise InputError(
                f"{root} is a text file, but this is an {modality} module: pass a folder of images, or a "
                "CSV/Parquet file with a column of image paths (--column)"
            )
        if column is not None:
            raise InputError("--column is for CSV/Parquet files; a .txt file holds one text per line")
        return InputSource(
            f"{root} (one text per line)", _count_lines(root), lambda size: _chunked(_lines(root), size)
        )
    raise InputError(
        f"cannot tell what {root.name} holds; pass a folder of images, a .txt file, or a .csv/.parquet file"
    )


def _lines(path: Path) -> Iterator[tuple[str, str]]:
    with open(path, encoding="utf-8-sig", errors="strict", newline="") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                if text.strip():
                    yield str(number), text
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8", path=path) from exc


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _table_source(path: Path, modality: str, column: str, key_column: str | None) -> InputSource:
    base = path.parent.absolute()

    def item(value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not text.strip():
            return None
        return str(base / text) if modality in ("image", "audio") else text

    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path)
        except Exception as exc:
            raise InputError(f"{path} is not a readable Parquet file ({exc})", path=path) from exc
        names = meta.schema_arrow.names
        _check_columns(path, names, column, key_column)

        def rows() -> Iterator[tuple[str, str]]:
            index = 0
            wanted = [column] + ([key_column] if key_column and key_column != column else [])
            for batch in pq.ParquetFile(path).iter_batches(columns=wanted, batch_size=4096):
                values = batch.column(column).to_pylist()
                keys = batch.column(key_column).to_pylist() if key_column else None
                for i, value in enumerate(values):
                    text = item(value)
                    if text is not None:
                        yield (str(keys[i]) if keys is not None else str(index)), text
                    index += 1

        return InputSource(
            f"{path} (column {column!r})", meta.metadata.num_rows, lambda size: _chunked(rows(), size)
        )

    raw_head = path.read_bytes()[:4096].decode("utf-8-sig", errors="replace")
    try:
        dialect: Any = csv.Sniffer().sniff(raw_head, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh, dialect), [])
    _check_columns(path, header, column, key_column)

    def csv_rows() -> Iterator[tuple[str, str]]:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for index, row in enumerate(csv.DictReader(fh, dialect=dialect)):
                text = item(row.get(column))
                if text is not None:
                    yield (str(row.get(key_column)) if key_column else str(index)), text

    return InputSource(f"{path} (column {column!r})", None, lambda size: _chunked(csv_rows(), size))


def _check_columns(path: Path, names: list[str], column: str, key_column: str | None) -> None:
    missing = [c for c in (column, key_column) if c is not None and c not in names]
    if missing:
        raise InputError(
            f"{path.name} has no column(s) {', '.join(repr(c) for c in missing)}; its columns are "
            f"{', '.join(repr(c) for c in names) or '(none)'}. Name the right one with --column "
            "(or --key-column)",
            path=path,
        )


class ParquetOutput:
    """Writes tables to ``out`` atomically: a temp file in the same folder, renamed when closed."""

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.out = Path(out).expanduser()
        if self.out.is_dir():
            raise InputError(f"{self.out} is a folder; --out names the Parquet file to write", path=self.out)
        if self.out.exists() and not overwrite:
            raise InputError(f"{self.out} exists; choose another --out or pass --overwrite", path=self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        self.rows = 0
        self._writer: Any = None

    def write(self, table: Any) -> None:
        import pyarrow.parquet as pq

        if table.num_rows == 0:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is None:
            self.abort()
            raise InputError("no input could be read, so nothing was written")
        self._writer.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def parquet_output(out: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[ParquetOutput]:
    writer = ParquetOutput(out, overwrite=overwrite)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.close()


def predict(
    handle: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    column: str | None = None,
    key_column: str | None = None,
    top_k: int = 5,
    overwrite: bool = False,
    settings: Settings | None = None,
    progress: bool | None = None,
    extra_inputs: dict[str, str] | None = None,
    precision: str | None = None,
) -> PredictResult:
    """Run ``handle`` over ``inputs`` on this machine and write ``out`` (Parquet); see the module doc.

    ``extra_inputs``: for a module of several inputs, a file (photo or sound) by input name for
    each input but the one ``inputs`` feeds, the same for every row (a style picture).
    ``precision``: run the module's variant of that precision ("int8"), as ``hub.load`` does.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    settings = settings or Settings.from_env()
    predictor = Predictor(
        handle, top_k=top_k, settings=settings, extra_inputs=extra_inputs, precision=precision
    )
    if predictor._named is not None:
        # Masks and images are written as PNG files beside the Parquet (modhub.predict.columns).
        predictor._named.columns.set_out(Path(out).expanduser())
    source = open_inputs(inputs, predictor.modality, column=column, key_column=key_column)
    show = settings.show_progress(progress)
    from tqdm.auto import tqdm

    with (
        parquet_output(out, overwrite=overwrite) as writer,
        tqdm(
            total=source.total,
            disable=not show,
            file=sys.stderr,
            unit="input",
            desc="predict",
            dynamic_ncols=True,
        ) as bar,
    ):
        for keys, items in source.batches(batch_size):
            writer.write(predictor.run(keys, items))
            bar.update(len(keys))
    return _result(writer, predictor.skipped)


def _result(writer: ParquetOutput, skipped: list[str]) -> PredictResult:
    if skipped:
        log.warning("skipped %d unreadable input(s), e.g. %s", len(skipped), skipped[0])
    return PredictResult(writer.out, writer.rows, len(skipped), skipped[:SKIPPED_LISTED])
