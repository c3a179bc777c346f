"""``modhub quantize DIR``: add an int8 variant to a module directory, measured against its exact graph."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error

# Calibration items read from FOLDER_OR_CSV at most (the first ones, in the reader's order).
MAX_CALIBRATION = 1000


@app.command("quantize")
def quantize_command(
    module_dir: Annotated[
        Path, typer.Argument(metavar="DIR", help="the module directory (it has model.onnx)")
    ],
    calibration: Annotated[
        str | None,
        typer.Option(
            "--calibration",
            metavar="FOLDER_OR_CSV",
            help="the module's own inputs: a folder of photos, a .txt (one text per line) or a CSV/Parquet "
            f"column (the first {MAX_CALIBRATION}); part is held out to measure agreement",
        ),
    ] = None,
    column: Annotated[
        str | None,
        typer.Option(help="CSV/Parquet column with the texts (or photo paths) [default: text, or path]"),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="dynamic (transformers; no data needed) or static (CNNs; needs --calibration) "
            "[default: by the graph]"
        ),
    ] = None,
    floor: Annotated[
        float | None,
        typer.Option(help="mean agreement the variant must reach [default: cosine 0.99, top-1 0.98]"),
    ] = None,
    smooth: Annotated[
        float | None,
        typer.Option(
            metavar="ALPHA",
            help="SmoothQuant first, with this migration strength (0-1; e.g. 0.75): activation outliers "
            "moved into the weights (transformers with outlier channels; needs --calibration)",
        ),
    ] = None,
    reduce_range: Annotated[
        bool,
        typer.Option(
            "--reduce-range",
            help="7-bit weights: avoids the int16 saturation of CPUs without VNNI (AVX2 only)",
        ),
    ] = False,
    keep_float: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-float",
            metavar="PATTERN",
            help="nodes kept in float: a node name or its weight's name, fnmatch patterns "
            "('*layers.0.output.weight'); repeatable",
        ),
    ] = None,
    float16_kept: Annotated[
        bool,
        typer.Option(
            "--float16-kept",
            help="store the weights of what --keep-float keeps as float16 (half their bytes; "
            "computed in float32)",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Add an int8 ONNX variant to DIR (int8/), listed in modhub.json with its measured agreement."""
    from modhub.exporting.quantize import Recipe, quantize_module
    from modhub.settings import Settings

    if method not in (None, "dynamic", "static"):
        typer.secho(f"error: --method is dynamic or static, not {method!r}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    recipe = Recipe(
        method=method,  # type: ignore[arg-type]
        smooth=smooth,
        reduce_range=reduce_range,
        exclude=tuple(keep_float or ()),
        float_weights="float16" if float16_kept else "float32",
    )
    with fail_on_hub_error():
        data = _read_calibration(module_dir, calibration, column) if calibration else None
        show = Settings.from_env().show_progress(False if quiet else None)
        with _Bar(show) as bar:
            result = quantize_module(
                module_dir, calibration=data, floor=floor, recipe=recipe, progress=bar.update
            )
    a = result.variant.agreement
    if a.metric == "top1":
        measured = f"top-1 agreement {a.mean:.2%}"
    else:
        measured = f"mean cosine {a.mean:.5f}, minimum {a.minimum:.5f}"
    typer.echo(
        f"wrote {module_dir / result.variant.path}/ ({result.variant.method}): {measured}, "
        f"max abs diff {a.max_abs_diff:.3g}, on {a.probe} (floor {a.floor}); "
        f"{result.variant_bytes / 1e6:.1f} MB, {result.size_ratio:.2f}x the exact graph; "
        f"{result.seconds:.1f} s"
    )
    if result.signature_removed:
        typer.secho(
            "note: modhub.sig no longer covered the module's files and was removed; "
            f"sign it again: modhub sign {module_dir} --key KEY",
            err=True,
            fg=typer.colors.YELLOW,
        )


def _read_calibration(module_dir: Path, path: str, column: str | None) -> Any:
    """The items of FOLDER_OR_CSV, read by modhub.predict's readers for the module's modality."""
    from modhub.exporting.quantize import Calibration
    from modhub.format.manifest import read_manifest
    from modhub.format.tasks import module_modality
    from modhub.predict.runner import open_inputs

    modality = module_modality(read_manifest(module_dir))
    source = open_inputs(path, modality, column=column)
    items: list[str] = []
    for _keys, batch in source.batches(256):
        items.extend(batch)
        if len(items) >= MAX_CALIBRATION:
            break
    items = items[:MAX_CALIBRATION]
    return Calibration(items, f"{source.describe}, {len(items)} used")


class _Bar:
    """One tqdm bar per stage of the work (preparing, calibrating, measuring)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._stage = ""

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        if stage != self._stage:
            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(total=total, desc=stage, file=sys.stderr, dynamic_ncols=True, leave=False)
            self._stage = stage
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()
