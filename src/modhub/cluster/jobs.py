"""Submitting modhub work to a Ray cluster through the Ray Jobs API, and following it.

A job is one command of ``modhub.cluster._entry`` run by the cluster's Python,
with a small package uploaded as the job's ``working_dir``:

    spec.json        what to run (command, arguments, the client's modhub and Ray versions, hub URL)
    upload/<name>    small local folders or files the cluster cannot read otherwise (data, a module dir)
    secret/token     the hub token for ``--publish`` (only when publishing)

The token travels inside the package, not in the job's ``runtime_env``:
Ray stores a runtime_env in the job's record (shown by ``ray job list`` and
the dashboard) and its runtime-env agent writes it to its log, while the
package is only unpacked into the job's own directory, where the entrypoint
reads the token and deletes the file before doing anything else.

Errors the job raises on purpose are printed as one ``modhub-job-error: {json}``
line; :meth:`ClusterJob.wait` turns that back into the same modhub error class
the cluster raised (``ModuleNotFound``, ``InputError``, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

import modhub.errors as errors
from modhub.errors import ClusterError, HubError, JobFailed

__all__ = [
    "ERROR_MARKER",
    "RESULT_MARKER",
    "UPLOAD_LIMIT",
    "ClusterJob",
    "Upload",
    "check_cluster",
    "submit",
]

# The line prefixes the job prints before a JSON description of a modhub error / of its result.
ERROR_MARKER = "modhub-job-error: "
RESULT_MARKER = "modhub-job-result: "
# Largest local folder or file uploaded with a job; bigger data must be readable by the cluster.
UPLOAD_LIMIT = 100 * 1024 * 1024
# Lines of the job's log shown when it fails.
TAIL_LINES = 25
SPEC_NAME = "spec.json"
_MARKERS = (ERROR_MARKER, RESULT_MARKER)
TOKEN_FILE = "secret/token"
UPLOAD_DIR = "upload"
SPEC_FORMAT = 1

_RAY_HINT = "install Ray with the modhub extra: pip install 'modhub[cluster]'"


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the cluster extra is installed in tests
        raise ClusterError(f"running on a cluster needs Ray here too: {_RAY_HINT}") from exc
    return ray


def normalise_address(address: str) -> str:
    """``HOST:8265`` or ``http://HOST:8265/`` → ``http://HOST:8265`` (the Jobs API is the dashboard)."""
    address = address.strip().rstrip("/")
    if address.startswith("ray://"):
        raise ClusterError(
            f"{address} is a Ray Client address; modhub submits jobs to the Jobs API, which is the "
            "dashboard's HTTP address, e.g. http://HOST:8265"
        )
    if "://" not in address:
        address = f"http://{address}"
    return address


def check_cluster(address: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Reach the cluster's dashboard and check its Ray version equals this machine's.

    Returns the dashboard's ``/api/version`` answer. Raises ``ClusterError`` with what to do.
    """
    ray = _require_ray()
    url = normalise_address(address)
    try:
        response = httpx.get(f"{url}/api/version", timeout=timeout)
    except httpx.TransportError as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {url} ({type(exc).__name__}: {exc}). Is it running, "
            "and is this its dashboard address? Start one with `ray start --head --dashboard-host "
            "0.0.0.0`; for KubeRay forward the head service: `kubectl port-forward "
            "svc/<cluster>-head-svc 8265:8265` and use http://127.0.0.1:8265",
            url=url,
        ) from exc
    try:
        info = response.json() if response.status_code == 200 else {}
    except ValueError:
        info = {}
    if not isinstance(info, dict) or "ray_version" not in info:
        raise ClusterError(
            f"{url} answered HTTP {response.status_code} but is not a Ray dashboard (no /api/version); "
            "pass the dashboard's address, e.g. http://HOST:8265",
            url=url,
        )
    if info["ray_version"] != ray.__version__:
        raise ClusterError(
            f"Ray versions differ: this machine has Ray {ray.__version__}, the cluster at {url} runs "
            f"Ray {info['ray_version']}. Use the same on both, e.g. here: "
            f"pip install 'ray[default,data,train]=={info['ray_version']}'",
            url=url,
        )
    return info


@dataclass(frozen=True)
class Upload:
    """A local file or folder sent with the job (``name`` is its place under ``upload/``)."""

    name: str
    path: Path


def upload_or_cluster_path(path: str | os.PathLike[str], name: str, *, upload: bool) -> tuple[Any, Any]:
    """Decide how the cluster reads ``path``: (spec value, Upload or None).

    A URL (``s3://...``) or a path that does not exist here is passed as it is, for
    the cluster to read. An existing local path is uploaded when ``upload`` and
    small enough; otherwise its absolute path is passed (a shared filesystem).
    """
    text = os.fspath(path)
    if "://" in text:
        return {"where": "cluster", "path": text}, None
    local = Path(text).expanduser()
    if not local.exists() or not upload:
        absolute = str(local.absolute()) if local.exists() else text
        return {"where": "cluster", "path": absolute}, None
    size = _size(local)
    if size > UPLOAD_LIMIT:
        raise ClusterError(
            f"{local} is {size / 2**20:.0f} MiB, more than the {UPLOAD_LIMIT // 2**20} MiB modhub uploads "
            "with a job; put it where the cluster can read it (a shared filesystem) and pass "
            "--no-upload, or pass the cluster's path to it",
            path=local,
        )
    return {"where": "upload", "path": f"{UPLOAD_DIR}/{name}"}, Upload(name, local)


def locate_inputs(
    data: str | os.PathLike[str], data_name: str, module: str | os.PathLike[str], *, upload: bool
) -> tuple[Any, Any, list[Upload]]:
    """How the job reads its data and its module: (data spec, module spec, what to upload).

    A module directory is placed like the data (:func:`upload_or_cluster_path`); a handle
    or hub URL is passed as it is (``where: hub``), for the cluster to resolve.
    """
    from modhub.handles import is_local

    data_loc, data_item = upload_or_cluster_path(data, data_name, upload=upload)
    if is_local(module):
        module_loc, module_item = upload_or_cluster_path(module, "module", upload=upload)
    else:
        module_loc, module_item = {"where": "hub", "path": str(module)}, None
    return data_loc, module_loc, [item for item in (data_item, module_item) if item]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def default_python(address: str) -> str:
    """The Python the job runs with: this one for a cluster on this machine, else the cluster's
    ``python`` (a job's command runs with the cluster's PATH)."""
    host = urlsplit(normalise_address(address)).hostname or ""
    return sys.executable if host in {"127.0.0.1", "localhost", "::1"} else "python"


def _stage(spec: Mapping[str, Any], uploads: list[Upload], token: str | None, root: Path) -> None:
    (root / SPEC_NAME).write_text(json.dumps(spec, indent=1, sort_keys=True), encoding="utf-8")
    for item in uploads:
        target = root / UPLOAD_DIR / item.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.path.is_dir():
            shutil.copytree(item.path, target, symlinks=False)
        else:
            shutil.copy2(item.path, target)
    if token is not None:
        secret = root / TOKEN_FILE
        secret.parent.mkdir(mode=0o700)
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token)


def submit(
    address: str,
    command: str,
    args: Mapping[str, Any],
    *,
    uploads: list[Upload] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    description: str = "",
) -> ClusterJob:
    """Submit ``python -m modhub.cluster._entry spec.json`` running ``command`` with ``args``."""
    ray = _require_ray()
    from modhub import __version__

    url = normalise_address(address)
    check_cluster(url)
    from ray.job_submission import JobSubmissionClient

    spec = {
        "format": SPEC_FORMAT,
        "command": command,
        "args": dict(args),
        "endpoint": endpoint,
        "modhub_version": __version__,
        "ray_version": ray.__version__,
        "publish_token": token is not None,
    }
    python = python or default_python(url)
    entrypoint = f"{shlex.quote(python)} -m modhub.cluster._entry {SPEC_NAME}"
    runtime_env: dict[str, Any] = {"env_vars": {"PYTHONUNBUFFERED": "1", **(env or {})}}
    with tempfile.TemporaryDirectory(prefix="modhub-job-") as tmp:
        _stage(spec, uploads or [], token, Path(tmp))
        runtime_env["working_dir"] = tmp
        try:
            client = JobSubmissionClient(url)
            job_id = client.submit_job(
                entrypoint=entrypoint,
                runtime_env=runtime_env,
                metadata={"modhub": command, "description": description[:200]},
            )
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterError(f"the cluster at {url} refused the job: {exc}", url=url) from exc
    return ClusterJob(client, job_id, url)


@dataclass
class ClusterJob:
    """A submitted job. ``wait()`` follows it to the end; ``logs()`` is its log so far."""

    client: Any  # ray.job_submission.JobSubmissionClient
    job_id: str
    address: str
    _printed: int = field(default=0, repr=False)

    def status(self) -> str:
        """PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
        return str(self.client.get_job_status(self.job_id).value)

    def logs(self) -> str:
        return str(self.client.get_job_logs(self.job_id))

    def stop(self, timeout: float = 30.0) -> str:
        """Ask the cluster to stop the job and wait (up to ``timeout``) until it has; returns the status."""
        with contextlib.suppress(RuntimeError):
            self.client.stop_job(self.job_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status in {"STOPPED", "SUCCEEDED", "FAILED"}:
                return status
            time.sleep(0.3)
        return self.status()

    def wait(
        self,
        *,
        timeout: float | None = None,
        echo: Callable[[str], Any] | None = None,
        poll: float = 0.5,
    ) -> str:
        """Block until the job ends; ``echo(text)`` receives its log as it grows (streaming).

        Returns the job's final log. A failed or stopped job raises the modhub error it
        reported, or ``JobFailed`` with its last log lines. Ctrl-C stops the job first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                status = self.status()
                if echo is not None:
                    self._echo_new(echo)
                if status in {"SUCCEEDED", "FAILED", "STOPPED"}:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    self.stop()
                    raise JobFailed(
                        f"job {self.job_id} did not finish within {timeout:.0f} s and was stopped",
                        job_id=self.job_id,
                        last_lines=_tail(self.logs()),
                    )
                time.sleep(poll)
        except KeyboardInterrupt:
            self.stop()
            raise
        text = self.logs()
        if echo is not None:
            self._echo_new(echo, text)
        if status != "SUCCEEDED":
            raise job_error(self.job_id, status, text, self._message())
        return text

    def result(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the job, then return what it reported (e.g. ``rows``, ``report``, ``published``)."""
        text = self.wait(timeout=timeout)
        found = [line[len(RESULT_MARKER) :] for line in text.splitlines() if line.startswith(RESULT_MARKER)]
        if not found:
            raise JobFailed(
                f"job {self.job_id} succeeded but reported no result",
                job_id=self.job_id,
                last_lines=_tail(text),
            )
        value: dict[str, Any] = json.loads(found[-1])
        return value

    def _message(self) -> str:
        try:
            return str(self.client.get_job_info(self.job_id).message or "")
        except RuntimeError:
            return ""

    def _echo_new(self, echo: Callable[[str], Any], text: str | None = None) -> None:
        text = self.logs() if text is None else text
        if len(text) > self._printed:
            new = text[self._printed :]
            self._printed = len(text)
            new = "\n".join(line for line in new.split("\n") if not line.startswith(_MARKERS))
            if new:
                echo(new)


def _tail(text: str, count: int = TAIL_LINES) -> list[str]:
    lines = [line.split("\r")[-1] for line in text.splitlines()]
    return [line for line in lines if line.strip() and not line.startswith(_MARKERS)][-count:]


def job_error(job_id: str, status: str, logs: str, message: str = "") -> HubError:
    """The error for a job that did not succeed: the modhub error it reported, else ``JobFailed``."""
    reported = [line[len(ERROR_MARKER) :] for line in logs.splitlines() if line.startswith(ERROR_MARKER)]
    if reported:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            data = json.loads(reported[-1])
            cls = getattr(errors, data["type"], None)
            if isinstance(cls, type) and issubclass(cls, HubError) and cls is not JobFailed:
                text = f"on the cluster (job {job_id}): {data['message']}"
                try:
                    return cls(text)
                except TypeError:
                    return HubError(text)
    tail = _tail(logs)
    if status == "STOPPED":
        return JobFailed(f"job {job_id} was stopped", job_id=job_id, last_lines=tail)
    if any("No module named modhub" in line for line in tail):
        return ClusterError(
            f"job {job_id}: modhub is not installed in the cluster's Python. Install the same version "
            "there (pip install 'modhub[cluster]'), or name the Python that has it with --cluster-python"
        )
    shown = "\n".join(f"  | {line}" for line in tail) or "  (the job printed nothing)"
    detail = f" ({message.strip().splitlines()[-1]})" if message.strip() else ""
    return JobFailed(
        f"job {job_id} failed{detail}; the last lines of its log:\n{shown}", job_id=job_id, last_lines=tail
    )
