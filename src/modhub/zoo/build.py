"""Build the starter modules from installed packages, once per package version.

``build_zoo(out_dir)`` writes ``out_dir/<name>/`` for every starter (or those
named in ``only``). Next to each module's files it keeps a hidden stamp,
``.build-key``: the sha256 of everything the files depend on (the starter's
code and revision, the versions of the weight packages and of torch, onnx,
tokenizers, ...). A module whose stamp matches is reused, so test runs and
``make serve`` build the zoo once and then start in seconds. Hidden files are
not part of a module (the manifest ignores them), so the stamp never reaches
the hub.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from filelock import FileLock

from modhub.format.atomic import write_text
from modhub.format.manifest import MANIFEST_NAME
from modhub.settings import Settings
from modhub.zoo.packages import TOOLCHAIN
from modhub.zoo.registry import Starter, check_requirements, get_starter, starters

__all__ = ["STAMP_NAME", "build_key", "build_zoo", "is_current", "select"]

STAMP_NAME = ".build-key"
# Source files whose code shapes the bytes of the module files: the starters, the
# exporter and the manifest/card writers. (Validators such as format/safety.py only
# accept or refuse, so editing them does not invalidate built modules.)
_CODE = (
    "zoo/*.py",
    "exporting/pytorch.py",
    "exporting/onnx.py",
    "exporting/quantize.py",
    "exporting/tfjs.py",
    "exporting/_tfjs_converter.py",
    "runtimes/preprocessing.py",
    "format/manifest.py",
    "format/modelcard.py",
)


def select(only: Sequence[str] | None) -> list[Starter]:
    """The starters to build: those named (optional ones included), or every non-optional one."""
    if not only:
        return [s for s in starters() if not s.optional]
    names = list(dict.fromkeys(only))
    return [get_starter(name) for name in names]


def _code_digest() -> str:
    root = Path(__file__).resolve().parents[1]  # the modhub package
    digest = hashlib.sha256()
    for pattern in _CODE:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def build_key(starter: Starter, *, code: str | None = None, tensorflow: str | None = None) -> str:
    """sha256 of what the starter's files depend on; equal keys give byte-identical modules.

    ``tensorflow`` is the TF version that converts SavedModel/TFLite formats (None: not converted).
    """
    facts = {
        "starter": starter.name,
        "revision": starter.revision,
        "code": code or _code_digest(),
        "packages": {req.dist: req.version() for req in starter.requires},
        "toolchain": {dist: _version(dist) for dist in TOOLCHAIN},
    }
    if tensorflow is not None and hasattr(starter, "add_tensorflow"):
        facts["tensorflow"] = tensorflow
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def is_current(module_dir: Path, key: str) -> bool:
    stamp = module_dir / STAMP_NAME
    try:
        return stamp.read_text(encoding="utf-8").strip() == key and (module_dir / MANIFEST_NAME).is_file()
    except OSError:
        return False


def _write_stamp(module_dir: Path, key: str) -> None:
    write_text(module_dir / STAMP_NAME, key + "\n", mode=0o644)


def build_zoo(
    out_dir: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
    progress: bool | None = True,
    settings: Settings | None = None,
) -> list[Path]:
    """Build the starter modules into ``out_dir/<name>/`` and return their directories.

    Installs nothing: a missing package raises ``ZooError`` naming it and the pip
    command, before anything is built. Modules whose ``.build-key`` matches are
    reused unless ``force``. Each module appears atomically (``modhub.export``
    writes a temp directory and renames it), so an interrupted build leaves the
    previous module, or none, never half of one.

    With ``settings.tf_python`` (``MODHUB_TF_PYTHON``: the python of a venv with TensorFlow),
    starters that can be rebuilt in TensorFlow also get ``saved_model/`` and ``model.tflite``,
    checked against the torch module (see ``modhub.zoo.tf_formats``). ``settings`` None reads
    the environment, so every caller builds the same modules for the same setup. ``progress``
    (the display of the modules built: on by default, also in logs) None follows
    ``Settings.show_progress`` (``MODHUB_PROGRESS``, else only on a terminal).
    """
    selected = select(only)
    settings = settings if settings is not None else Settings.from_env()
    tf_python = settings.tf_python
    if tf_python is None and not only:
        # Starters converted in the TensorFlow venv are built with it only (or when named).
        selected = [s for s in selected if not getattr(s, "needs_tensorflow", False)]
    check_requirements(selected)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    code = _code_digest()
    tensorflow = None
    if tf_python is not None:
        from modhub.zoo.tf_formats import tf_version

        tensorflow = tf_version(tf_python)
        from modhub.zoo._tfjs_format import tfjs_toolchain

        tensorflow = f"{tensorflow} {tfjs_toolchain()}"  # the TF.js format is built with it
    built: list[Path] = []
    with _display(settings.show_progress(progress), len(selected)) as report:
        for starter in selected:
            target = root / starter.name
            key = build_key(starter, code=code, tensorflow=tensorflow)
            start = time.perf_counter()
            report.start(starter.name)
            # Another process (a parallel test worker) may be building the same module.
            with FileLock(str(root / f".{starter.name}.lock")):
                cached = not force and is_current(target, key)
                if not cached:
                    (target / STAMP_NAME).unlink(missing_ok=True)
                    if getattr(starter, "needs_tensorflow", False):
                        starter.build_with_tensorflow(target, tf_python)  # type: ignore[attr-defined]
                    else:
                        starter.build(target)
                    add_tensorflow = getattr(starter, "add_tensorflow", None)
                    if tf_python is not None and add_tensorflow is not None:
                        # Adds files after the export: no stamp until the module is whole again.
                        add_tensorflow(target, str(tf_python))
                    _write_stamp(target, key)
            report.done(starter.name, cached, time.perf_counter() - start)
            built.append(target)
    return built


class _Report:
    def start(self, name: str) -> None:
        del name

    def done(self, name: str, cached: bool, seconds: float) -> None:
        del name, cached, seconds


class _RichReport(_Report):
    def __init__(self, progress: object, task: object) -> None:
        self.progress = progress
        self.task = task

    def start(self, name: str) -> None:
        self.progress.update(self.task, description=f"building {name}")  # type: ignore[attr-defined]

    def done(self, name: str, cached: bool, seconds: float) -> None:
        how = "cached" if cached else f"built in {seconds:.1f} s"
        self.progress.console.print(f"[green]✓[/green] {name} ({how})")  # type: ignore[attr-defined]
        self.progress.advance(self.task)  # type: ignore[attr-defined]
        self.progress.update(self.task, description="starter modules")  # type: ignore[attr-defined]


@contextlib.contextmanager
def _display(enabled: bool, total: int) -> Iterator[_Report]:
    if not enabled:
        yield _Report()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        yield _RichReport(bar, bar.add_task("starter modules", total=total))
