"""Formats agree: a module's torch graph and its ONNX graph compute the same thing.

A module may carry several formats of the same weights (``graph.pt2``, ``model.onnx``). Each
is checked on its own (operators, bounds, digests), but nothing in those checks says they
compute the *same* function: a ``model.onnx`` that multiplies by zero beside an honest
``graph.pt2`` passes them all, and ``hub.load`` runs the ONNX one by default. So the hub's
publish check and ``modhub cache verify --deep`` run every format this machine can run on the
same probe inputs and compare:

- **Probe inputs**: ``PROBE_BATCH`` items per signature, built from the graph's own input
  specs (``modhub.format.probes.probe_arrays``: values in each tensor's ``value_range``, seeded);
  a text module's token ids come from its own tokenizer on a few fixed sentences.
- **Tolerance**: per output, ``max |onnx - torch| <= ATOL + RTOL * max |torch|`` (floats; the
  torch graph, the one the module was exported from, is the reference); integer, bool and string
  outputs must be equal. Shapes and dtypes must match.
- **Cost**: the check runs in a child process (``python -I -m modhub.loading.agree``) killed
  after ``AGREE_SECONDS``; a module that cannot be probed in that time is *refused*
  (``unchecked``), never published unchecked: otherwise a slow graph would be a way around it.
  Formats this machine cannot run (no torch installed, a SavedModel) are not compared, and
  the report says so.

:func:`check_agreement` runs in-process (the child's work, and tests); :func:`check_formats_agree`
runs it in the child and returns its :class:`AgreementReport`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modhub.errors import HubError
from modhub.format.manifest import Manifest, read_manifest
from modhub.format.onnx_bounds import OnnxLimits
from modhub.format.probes import probe_arrays
from modhub.format.verify import VerifiedModule, verify_module
from modhub.runtimes import RUNTIMES, LoadedModule

__all__ = [
    "AGREE_SECONDS",
    "ATOL",
    "PROBE_BATCH",
    "RTOL",
    "AgreementReport",
    "SignatureAgreement",
    "check_agreement",
    "check_formats_agree",
]

# Items per probe batch (per signature).
PROBE_BATCH = 2
# Absolute and relative (to the torch output's largest magnitude) tolerance per output.
ATOL = 1e-4
RTOL = 1e-3
# Wall-clock limit of the whole check (child process: imports, building each format, probing).
# Under the client's 60 s read timeout (MODHUB_TIMEOUT), so a publish gets the hub's answer.
AGREE_SECONDS = 45.0
# The formats compared, the reference first.
_FORMATS = ("torch", "onnx")
# What a text module's tokenizer is probed with.
PROBE_TEXTS = ("a probe sentence for the formats", "modhub", "hello world, hello hub", "")


@dataclass
class SignatureAgreement:
    """How the formats of one signature compared."""

    signature: str
    # The formats run on the probe (reference first); one or none: nothing compared.
    formats: list[str] = field(default_factory=list)
    # Per format: one summary line per output (shape, dtype, mean, first values).
    summaries: dict[str, list[str]] = field(default_factory=dict)
    # Per format: seconds to build it and run the probe.
    seconds: dict[str, float] = field(default_factory=dict)
    # The largest |difference| over the outputs, and what was allowed there.
    max_abs_diff: float | None = None
    allowed: float | None = None
    # Why the formats do not agree (or one cannot run); None: they agree.
    problem: str | None = None
    # Why this signature was not compared (one runnable format here), if it was not.
    note: str | None = None


@dataclass
class AgreementReport:
    """The outcome of :func:`check_agreement` for a module directory."""

    signatures: list[SignatureAgreement] = field(default_factory=list)
    # Why the check could not finish (timed out, the child failed); None: it finished.
    unchecked: str | None = None
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        """One line per signature whose formats disagree, with both outputs summarised."""
        lines = []
        for sig in self.signatures:
            if sig.problem is None:
                continue
            shown = "; ".join(f"{fmt}: {' | '.join(sig.summaries.get(fmt, []))}" for fmt in sig.formats)
            lines.append(f"signature {sig.signature!r}: {sig.problem} ({shown})")
        return lines

    @property
    def agrees(self) -> bool:
        return self.unchecked is None and not self.problems

    def notes(self) -> list[str]:
        return [f"signature {s.signature!r}: {s.note}" for s in self.signatures if s.note]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AgreementReport:
        data = json.loads(text)
        sigs = [SignatureAgreement(**s) for s in data.pop("signatures")]
        return cls(signatures=sigs, **data)


def check_agreement(directory: str | Path, *, batch: int = PROBE_BATCH, seed: int = 0) -> AgreementReport:
    """Run every format of the module at ``directory`` that this machine can run on the same probe
    inputs and compare them (see the module doc). In this process: no time limit."""
    started = time.perf_counter()
    root = Path(directory)
    limits = OnnxLimits()

    def reopen(needed: Collection[str]) -> VerifiedModule:
        return verify_module(root, needed=needed, onnx_limits=limits)

    report = AgreementReport()
    manifest: Manifest = reopen(()).manifest
    runnable = _runnable(manifest, "default")
    modules: dict[str, LoadedModule] = {}
    built: dict[str, float] = {}  # seconds to verify and build each format (its default signature)
    for name in runnable:
        runtime = RUNTIMES[name]
        t0 = time.perf_counter()
        verified = reopen(runtime.needed_files(manifest))
        # No cache: nothing is derived for this machine from a module being checked.
        modules[name] = runtime.build(verified, "numpy", None, None, reopen)
        built[name] = time.perf_counter() - t0
    for sig_name in manifest.signatures:
        here = [name for name in _runnable(manifest, sig_name) if name in modules]
        result = SignatureAgreement(sig_name, formats=here)
        report.signatures.append(result)
        if len(here) < 2:
            result.note = _not_compared(manifest, sig_name)
            continue
        args = _probe(modules[here[0]], manifest, sig_name, batch, seed)
        outputs: dict[str, list[np.ndarray]] = {}
        for name in here:
            t0 = time.perf_counter()
            try:
                outputs[name] = _run(modules[name], sig_name, args)
            except (HubError, RuntimeError, ValueError, TypeError) as exc:  # engines raise their own types
                result.problem = f"{name} cannot run the probe inputs: {str(exc)[:300]}"
                break
            finally:
                build = built[name] if sig_name == "default" else 0.0
                result.seconds[name] = round(build + time.perf_counter() - t0, 3)
            result.summaries[name] = [_summary(value) for value in outputs[name]]
        if result.problem is None:
            _compare(result, outputs[here[0]], here[0], outputs[here[1]], here[1])
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def check_formats_agree(directory: str | Path, *, seconds: float = AGREE_SECONDS) -> AgreementReport:
    """:func:`check_agreement` in a child process killed after ``seconds``.

    The child (``python -I``: no user site, no PYTHONPATH) runs the module's graphs, so a graph
    that crashes its engine ends the child, not the hub. A timeout or a failed child gives a
    report whose ``unchecked`` says why.
    """
    started = time.perf_counter()
    manifest = read_manifest(Path(directory))
    if not any(len(_runnable(manifest, name)) >= 2 for name in manifest.signatures):
        # Nothing to compare here: no child process, and the report says why.
        notes = [SignatureAgreement(name, note=_not_compared(manifest, name)) for name in manifest.signatures]
        return AgreementReport(signatures=notes)
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-m", "modhub.loading.agree", str(Path(directory).absolute())],
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return AgreementReport(
            unchecked=f"running its formats side by side took longer than {seconds:.0f} s",
            seconds=round(time.perf_counter() - started, 3),
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return AgreementReport(
            unchecked=f"the check could not run its formats: {tail[:300]}",
            seconds=round(time.perf_counter() - started, 3),
        )
    report = AgreementReport.from_json(lines[-1])
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _runnable(manifest: Manifest, signature: str) -> list[str]:
    """The formats of ``signature`` this machine can run, the reference first."""
    return [
        name
        for name in _FORMATS
        if RUNTIMES[name].has_format(manifest, signature) and RUNTIMES[name].available()
    ]


def _not_compared(manifest: Manifest, signature: str) -> str:
    present = [name for name in _FORMATS if RUNTIMES[name].has_format(manifest, signature)]
    runnable = _runnable(manifest, signature)
    return (
        f"not compared: {len(present)} runnable format(s) in the module ({', '.join(present) or 'none'}), "
        f"{len(runnable)} of them runnable here"
    )


def _probe(module: LoadedModule, manifest: Manifest, name: str, batch: int, seed: int) -> list[Any]:
    """The graph inputs of signature ``name`` for the probe, in graph input order."""
    encoder = getattr(module, "_encoder", None)
    if name == "default" and encoder is not None:
        return list(encoder.encode(list(PROBE_TEXTS[:batch])))
    specs = manifest.graph_inputs_of(name)
    arrays = probe_arrays(specs, np.random.default_rng(seed), batch=batch)
    return [arrays[spec.name] for spec in specs]


def _run(module: LoadedModule, name: str, args: list[Any]) -> list[np.ndarray]:
    """The graph outputs of signature ``name`` on ``args``, as numpy arrays in graph output order."""
    call = module._signature_call(name)
    results = module._run(module._engine(name), call, [a.copy() for a in args])
    items = list(results) if isinstance(results, (list, tuple)) else [results]
    out = []
    for item in items:
        if hasattr(item, "detach"):  # a torch tensor
            item = item.detach().cpu().numpy()
        out.append(np.asarray(item))
    return out


def _summary(value: np.ndarray) -> str:
    first = value.reshape(-1)[:4].tolist()
    if value.dtype.kind in "fc" or value.dtype.kind in "iub":
        shown = ", ".join(f"{float(v):.4g}" for v in first)
        mean = f"{float(value.astype(np.float64).mean()):.4g}" if value.size else "-"
        return f"{value.dtype}{list(value.shape)} mean {mean} first [{shown}]"
    return f"{value.dtype}{list(value.shape)} first {first}"


def _compare(
    result: SignatureAgreement, ref: list[np.ndarray], ref_name: str, got: list[np.ndarray], got_name: str
) -> None:
    if len(ref) != len(got):
        result.problem = f"{ref_name} gives {len(ref)} output(s), {got_name} {len(got)}"
        return
    worst, allowed_at_worst = 0.0, 0.0
    for index, (want, have) in enumerate(zip(ref, got, strict=True)):
        where = f"output {index}"
        if want.shape != have.shape:
            result.problem = (
                f"{where}: {ref_name} gives shape {list(want.shape)}, {got_name} {list(have.shape)}"
            )
            return
        if want.dtype.kind in "fc" and have.dtype.kind in "fc":
            a, b = want.astype(np.float64), have.astype(np.float64)
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                result.problem = f"{where}: NaN in one format where the other has numbers"
                return
            finite = ~np.isnan(a)
            diff = float(np.abs(a[finite] - b[finite]).max()) if finite.any() else 0.0
            scale = float(np.abs(a[finite]).max()) if finite.any() else 0.0
            allowed = ATOL + RTOL * scale
            if diff / max(allowed, 1e-30) >= worst / max(allowed_at_worst, 1e-30):
                worst, allowed_at_worst = diff, allowed
            if not diff <= allowed:
                result.max_abs_diff, result.allowed = diff, allowed
                result.problem = (
                    f"{where}: max abs difference {diff:.3g} between {ref_name} and {got_name}, over the "
                    f"allowed {allowed:.3g} (ATOL {ATOL} + RTOL {RTOL} x max |{ref_name}| {scale:.3g})"
                )
                return
        elif want.dtype != have.dtype or not np.array_equal(want, have):
            result.problem = f"{where}: {ref_name} gives {want.dtype} values, {got_name} different ones"
            return
    result.max_abs_diff, result.allowed = worst, allowed_at_worst


def _main(argv: list[str]) -> int:
    """The child of :func:`check_formats_agree`: the report as one JSON line on stdout."""
    if len(argv) != 1:
        print("usage: python -m modhub.loading.agree MODULE_DIR", file=sys.stderr)
        return 2
    try:
        report = check_agreement(argv[0])
    except HubError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
