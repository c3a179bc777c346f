"""Batch prediction for modules of any signature: one batched input, each output a named column.

The four original tasks keep their ``output`` column (``runner._table``). Any
other module with one input that takes photos, sound or texts writes one
column per output, named by the output: a scalar per row for a ``[batch]``
output, a list for ``[batch, D]``, nested lists for more dimensions (dtypes
kept: int64, bool and strings too). Inputs are converted one at a time (a bad
one is skipped and named), then run in batches of equal shape (photos of a
module with dynamic height and width, or sound files of different lengths,
are run one shape at a time); a module whose input has no batch dimension
runs once per input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modhub.errors import InputError
from modhub.format.manifest import TensorSpec
from modhub.predict.columns import ItemInfo, TaskColumns
from modhub.runtimes.calls import input_kind

__all__ = ["ORIGINAL_TASKS", "NamedOutputs", "named_outputs", "named_table"]

# Tasks whose Parquet keeps the one ``output`` column readers of earlier releases use.
ORIGINAL_TASKS = frozenset(
    {"image-feature-vector", "image-classification", "text-embedding", "text-classification"}
)


def named_outputs(module: Any, extra_inputs: Mapping[str, str] | None = None) -> NamedOutputs | None:
    """How ``module`` runs in ``modhub predict``, or None for the original tasks (one ``output`` column).

    ``extra_inputs``: a file by input name for every input but one (the same for each row).
    Raises InputError, saying what to use instead, for a module ``predict`` cannot feed.
    """
    manifest = module.manifest
    sig = manifest.default_signature
    extra = dict(extra_inputs or {})
    if manifest.task in ORIGINAL_TASKS and len(sig.outputs) == 1 and not extra:
        return None
    unknown = sorted(set(extra) - set(sig.input_names))
    if unknown:
        raise InputError(
            f"--input {unknown[0]}=...: the module has no input {unknown[0]!r}; its inputs are "
            f"{', '.join(sig.input_names)}"
        )
    left = [spec for spec in sig.inputs if spec.name not in extra]
    if len(left) != 1:
        names = ", ".join(spec.name for spec in sig.inputs)
        hint = " ".join(f"--input {spec.name}=FILE" for spec in left[1:])
        raise InputError(
            f"modhub predict feeds one input from INPUT; this module takes {len(sig.inputs)} ({names}): "
            f"give the others once with {hint or '--input NAME=FILE'}, or call it from Python, "
            f"hub.load(handle)({names})"
        )
    spec = left[0]
    if input_kind(spec, manifest) not in ("image", "audio", "text"):
        raise InputError(
            f"modhub predict reads photos, sound files or texts; this module takes {spec.name}: "
            f"{spec.dtype} {list(spec.shape)}: call it from Python with arrays, hub.load(handle)(array)"
        )
    fixed = {name: _read_extra(module, sig.input(name), path) for name, path in extra.items()}
    return NamedOutputs(module, spec, sig.outputs, fixed)


def _read_extra(module: Any, spec: TensorSpec, path: str) -> Any:
    """The file given for an extra input, read once: a photo or a sound file (converted by the call)."""
    kind = input_kind(spec, module.manifest)
    file = Path(path).expanduser()
    if kind == "image":
        from modhub.runtimes.images import read_photo_file

        return read_photo_file(file, f"--input {spec.name}={path}")
    if kind == "audio":
        if not file.is_file():
            raise InputError(f"--input {spec.name}={path}: no such file", path=file)
        return file
    raise InputError(
        f"--input {spec.name}=...: input {spec.name!r} takes {spec.dtype} {list(spec.shape)}, not a file; "
        "call the module from Python"
    )


class NamedOutputs:
    """Runs one batch of items (photo/sound paths or texts) and gives its rows by output name."""

    def __init__(
        self,
        module: Any,
        spec: TensorSpec,
        outputs: tuple[TensorSpec, ...],
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        self.module = module
        self.spec = spec
        self.outputs = outputs
        # Inputs given once (--input NAME=FILE): passed with every call, one item per call.
        self.fixed = dict(fixed or {})
        self.batched = bool(spec.shape) and isinstance(spec.shape[0], str) and not self.fixed
        self.modality = input_kind(spec, module.manifest)
        # A batch fixed to 1 ([1, H, W, 3]): one input per call, the 1 left out of each row.
        # So is a batched input fed with inputs given once (one item per call).
        self.single = len(spec.shape) > 1 and (
            spec.shape[0] == 1 or (bool(self.fixed) and isinstance(spec.shape[0], str))
        )
        self.columns = TaskColumns(module, spec, outputs, _output_labels(module, outputs))
        self._sizes: dict[int, tuple[int, int]] = {}

    def run(
        self, keys: list[str], items: list[str], skip: Callable[[list[str]], None]
    ) -> tuple[list[str], dict[str, list[Any]]]:
        """The kept keys, in input order, and per output one value per kept key; unreadable items
        go to ``skip``."""
        kept, raw = self._run_raw(keys, items, skip)
        infos = [ItemInfo(key, self._sizes.get(index)) for key, index in kept]
        return [key for key, _ in kept], self.columns.convert(infos, raw)

    def _run_raw(
        self, keys: list[str], items: list[str], skip: Callable[[list[str]], None]
    ) -> tuple[list[tuple[str, int]], dict[str, list[Any]]]:
        self._sizes = {}
        if self.modality == "text":
            prepared: list[tuple[int, Any]] = list(enumerate(items))
            groups = [prepared] if self.batched else [[p] for p in prepared]
            return self._in_order(keys, *self._run_groups(groups, keys, texts=True, skip=skip))
        ready: list[tuple[int, np.ndarray]] = []
        bad: list[str] = []
        for index, (key, item) in enumerate(zip(keys, items, strict=True)):
            try:
                ready.append((index, self._prepare(item, index)))
            except InputError as exc:
                bad.append(f"{key}: {exc}")
        skip(bad)
        groups_by_shape: dict[tuple[int, ...], list[tuple[int, Any]]] = {}
        for position, array in ready:
            groups_by_shape.setdefault(
                tuple(array.shape) if self.batched else (len(groups_by_shape),), []
            ).append((position, array))
        return self._in_order(
            keys, *self._run_groups(list(groups_by_shape.values()), keys, texts=False, skip=skip)
        )

    def _in_order(
        self, keys: list[str], kept: list[int], columns: dict[str, list[Any]]
    ) -> tuple[list[tuple[str, int]], dict[str, list[Any]]]:
        order = sorted(range(len(kept)), key=kept.__getitem__)
        return [(keys[kept[i]], kept[i]) for i in order], {
            name: [rows[i] for i in order] for name, rows in columns.items()
        }

    def _prepare(self, item: str, index: int) -> np.ndarray:
        """One photo or sound file as the input's tensor for a batch of one (or no batch)."""
        module = self.module
        if self.modality == "image":
            from modhub.runtimes.images import prepare_image_input, read_photo_file

            photo = read_photo_file(Path(item))
            self._sizes[index] = photo.size
            value = prepare_image_input(photo, self.spec, module.manifest.preprocessing.image)
        else:
            from modhub.runtimes.audio import prepare_audio

            value = prepare_audio(Path(item), self.spec)
        array = np.asarray(value)
        if (self.batched or self.single) and array.ndim == len(self.spec.shape) - 1:
            array = array[None]
        return array

    def _run_groups(
        self,
        groups: list[list[tuple[int, Any]]],
        keys: list[str],
        *,
        texts: bool,
        skip: Callable[[list[str]], None],
    ) -> tuple[list[int], dict[str, list[Any]]]:
        """Each group (of (index, value)) run as one batch: the indices kept and the rows."""
        kept: list[int] = []
        columns: dict[str, list[Any]] = {spec.name: [] for spec in self.outputs}
        for group in groups:
            indices = [index for index, _ in group]
            if texts and self.batched:
                batch: Any = [text for _, text in group]
            elif self.batched:
                batch = np.concatenate([value for _, value in group])
            else:
                batch = group[0][1]
            try:
                result = self._call(batch)
            except InputError as exc:
                if len(group) == 1:
                    skip([f"{keys[indices[0]]}: {exc}"])
                    continue
                # One item the module refuses must not end the run: the group one at a time.
                sub_kept, sub = self._run_groups([[g] for g in group], keys, texts=texts, skip=skip)
                kept += sub_kept
                for name, values in sub.items():
                    columns[name] += values
                continue
            for spec in self.outputs:
                value = result[spec.name]
                if self.single and value.ndim >= 1 and value.shape[0] == 1:
                    value = value[0]
                rows = list(value) if self.batched else [value]
                if len(rows) != len(group):
                    raise InputError(
                        f"output {spec.name!r} has {len(rows)} rows for {len(group)} inputs: modhub predict "
                        "needs outputs with the input's batch dimension first"
                    )
                columns[spec.name] += rows
            kept += indices
        return kept, columns

    def _call(self, batch: Any) -> dict[str, np.ndarray]:
        out = self.module(**{self.spec.name: batch}, **self.fixed) if self.fixed else self.module(batch)
        if not isinstance(out, dict):
            out = {self.outputs[0].name: out}
        return {
            name: np.asarray(value.numpy() if hasattr(value, "numpy") else value)
            for name, value in out.items()
        }


def named_table(pa: Any, keys: list[str], columns: dict[str, list[Any]], named: NamedOutputs) -> Any:
    """The Parquet rows: ``key``, then one column per output (scalars, lists or nested lists),
    and the per-task columns (:mod:`modhub.predict.columns`)."""
    table: dict[str, Any] = {"key": pa.array(keys, type=pa.string())}
    specs = {spec.name: spec for spec in named.outputs}
    for name in named.columns.column_names():
        values = columns[name]
        kind = named.columns.arrow_type(pa, name)
        if kind is None:
            kind = _arrow_type(pa, specs[name], values)
        table[name] = pa.array(
            [
                v.tolist() if isinstance(v, np.ndarray) else (v.item() if hasattr(v, "item") else v)
                for v in values
            ],
            type=kind,
        )
    return pa.table(table)


def _output_labels(module: Any, outputs: tuple[TensorSpec, ...]) -> dict[str, list[str]]:
    """The label names of each output with a ``labels`` file, by output name."""
    from modhub.format.tasks import parse_labels

    labels: dict[str, list[str]] = {}
    for spec in outputs:
        if spec.labels is not None and spec.kind != "scores":
            path = Path(module.path) / spec.labels
            labels[spec.name] = parse_labels(path.read_bytes(), spec.labels)
    return labels


def _arrow_type(pa: Any, spec: TensorSpec, values: list[Any]) -> Any:
    """The column's type from the output's dtype and the rank of one row."""
    scalar = {
        "float16": pa.float32(),
        "bfloat16": pa.float32(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint8": pa.uint8(),
        "bool": pa.bool_(),
        "string": pa.string(),
    }[spec.dtype]
    rank = np.ndim(values[0]) if values else max(0, len(spec.shape) - 1)
    for _ in range(int(rank)):
        scalar = pa.list_(scalar)
    return scalar
