"""``hub.load``: open a module, then hand it to the runtime that runs it.

Nothing from the module reaches a runtime before ``verify_module`` has checked
the manifest, the task contract, the sha256 of every file the runtime reads
and, for the torch runtime, the graph's safety. The runtime is chosen from the
manifest ``verify_module`` read (:class:`RuntimeChoice` is its ``needed``), so
``modhub.json`` is read once per load. Only the files the chosen runtime reads
are read and hashed; a file hashed before and unchanged since (same inode,
size, mtime and ctime) is not hashed again: cached modules keep records on
disk (``<cache>/records``), local directories for the life of the process.

This module imports no torch: ``hub.load(h, runtime="onnx")`` runs without it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from modhub.format.manifest import Manifest
from modhub.format.verify import VerifiedModule
from modhub.loading.opener import Handle, OpenedModule, open_module
from modhub.runtimes import LoadedModule, Output, Runtime, check_precision, choose_runtime, fixed_output
from modhub.settings import Settings

__all__ = ["LoadedModule", "RuntimeChoice", "load", "reopener"]


def reopener(opened: OpenedModule) -> Callable[[Collection[str]], VerifiedModule]:
    """How a loaded module opens the files of another signature on first use: the same
    directory, through ``open_module`` and ``verify_module`` again (with the load's settings,
    so its trusted keys and cache records), reading exactly those files."""

    # From a hub: the concrete handle, so that a partial cached copy fetches what it lacks.
    source = opened.source if opened.source is not None else opened.path

    def reopen(needed: Collection[str]) -> VerifiedModule:
        precision = opened.precision
        return open_module(source, settings=opened.settings, needed=needed, precision=precision).verified

    return reopen


class RuntimeChoice:
    """What runs a module and what its calls return, decided from the manifest as it is verified.

    Pass it as ``needed`` to :func:`~modhub.loading.opener.open_module`: called
    with the parsed manifest, it chooses the runtime (``runtime``/``output`` as
    in :func:`load`) and returns the files that runtime reads. ``precision``: the variant
    that runs (pass the same to ``open_module``, which records it).
    """

    def __init__(
        self, runtime: str | None = None, output: str | None = None, precision: str | None = None
    ) -> None:
        fixed_output(output)  # an unknown output is refused before anything is resolved
        check_precision(runtime, precision)  # so are an unknown precision and runtime="torch"
        self.requested = runtime
        self.output = output
        self.precision = precision
        self._chosen: tuple[Runtime, Output] | None = None

    def __call__(self, manifest: Manifest) -> set[str]:
        self._chosen = choose_runtime(manifest, self.requested, self.output, self.precision)
        return self._chosen[0].needed_files(manifest)

    @property
    def runtime(self) -> Runtime:
        """The chosen runtime (once the manifest was read)."""
        return self._choice()[0]

    def build(self, opened: OpenedModule) -> LoadedModule:
        """The loaded module, from the module this choice opened."""
        runtime, output = self._choice()
        return runtime.build(opened.verified, output, opened.records, opened.cache, reopener(opened))

    def _choice(self) -> tuple[Runtime, Output]:
        if self._chosen is None:
            raise RuntimeError("RuntimeChoice is used before a module was opened with it")  # a modhub bug
        return self._chosen


def load(
    handle: Handle,
    *,
    runtime: str | None = None,
    output: str | None = None,
    precision: str | None = None,
    settings: Settings | None = None,
) -> LoadedModule:
    """Load a module by handle (``publisher/name/version``), URL, or local directory.

    ``runtime``: ``"onnx"`` runs ``model.onnx`` with onnxruntime (no torch
    imported; calls return numpy arrays), ``"torch"`` runs ``graph.pt2``
    (calls return torch tensors). ``None``: onnx when the module has a
    ``model.onnx`` (and onnxruntime is installed), torch otherwise; calls then
    return torch tensors for torch inputs and numpy arrays for anything else
    (numpy images, lists of strings).

    ``output``: ``"numpy"`` or ``"torch"`` makes every call return numpy arrays
    or torch tensors whatever the runtime (``output="torch"`` imports torch);
    ``None`` keeps the runtime's own, as above. ``hub.load(h, output="numpy")``
    is the fastest way to get arrays: the default runtime choice, arrays out.

    ``precision``: ``"int8"`` runs the module's int8 variant (smaller and faster;
    its measured agreement with the exact graph is in the manifest, ``modhub show``)
    on onnxruntime, and downloads only its files and the assets; ``runtime="torch"``
    cannot run it (InputError), and a module without that variant raises a
    ManifestError saying which it has. ``None`` (default): the exact graphs.

    ``settings``: defaults to ``Settings.from_env()`` (``MODHUB_*`` variables),
    read once for this load.

    The module runs without the code that defined it; the files the runtime
    reads are verified against the manifest (and the torch graph is checked for
    safety) before the runtime sees them.

    The result is called as its default signature reads: ``m(x)``, ``m(a, b)``
    or ``m(content=a, style=b)``; one output comes back as an array or tensor,
    several as a dict by name. ``m.signatures["name"](...)`` calls another
    signature (its files are verified when it is first called). Inputs are
    checked against the signature (``InputError`` names what is wrong); see
    :mod:`modhub.runtimes.calls` and docs/runtimes.md.
    """
    settings = settings if settings is not None else Settings.from_env()  # read once for this load
    choice = RuntimeChoice(runtime, output, precision)
    return choice.build(open_module(handle, settings=settings, needed=choice, precision=precision))
