"""The suite's harness, in one place: a clean environment, a real hub on loopback, and the
PostgreSQL server the database tests run on.

Fixtures built on it live in ``tests/conftest.py``; tests that must start a hub by hand (a
restore, a setting under test, several workers) call :func:`running_hub` or
:class:`LiveHub` instead of starting ``modhub serve`` themselves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

API = "/api/v1"

# MODHUB_* variables that configure the test harness (where its PostgreSQL, TensorFlow venv and
# built zoo are), not the modhub under test: the clean environment keeps them.
HARNESS_VARS = frozenset({"MODHUB_TEST_POSTGRES", "MODHUB_TF_PYTHON", "MODHUB_ZOO_CACHE"})


def modhub_settings(environ: Mapping[str, str]) -> list[str]:
    """The names in ``environ`` that would change what modhub does (every MODHUB_* but the harness's)."""
    return [name for name in environ if name.startswith("MODHUB_") and name not in HARNESS_VARS]


def without_modhub_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without any MODHUB_* setting (for processes that must not see the developer's)."""
    dropped = set(modhub_settings(environ))
    return {key: value for key, value in environ.items() if key not in dropped}


def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every MODHUB_* setting removed; the cache and config dirs in fresh temp dirs."""
    for name in modhub_settings(os.environ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("MODHUB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("MODHUB_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


# --- a real hub ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def src_dir() -> str:
    import modhub

    return str(Path(modhub.__file__).resolve().parent.parent)


def serve_env() -> dict[str, str]:
    """This process's environment, with this worktree's modhub first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src_dir(), env.get("PYTHONPATH", "")) if p)
    return env


def hub_process_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a hub process (``modhub serve``/``admin``) runs with: no MODHUB_* of this process (a
    session fixture starts before the per-test clean environment), only ``extra``'s settings."""
    return {**without_modhub_settings(serve_env()), **(extra or {})}


class LiveHub:
    """``modhub serve`` in a subprocess on a free loopback port. ``env`` adds MODHUB_SERVER_*
    settings (database, blobs); ``admin`` runs admin commands with the same settings."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, *, workers: int = 1) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0
        self.token = ""  # set by running_hub(token_for=...)

    def start(self, timeout: float = 60.0) -> None:
        start = time.monotonic()
        cmd = [
            sys.executable,
            "-m",
            "modhub",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *(["--workers", str(self.workers)] if self.workers != 1 else []),
        ]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=hub_process_env(self.env)
            )
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"modhub serve exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}{API}/health", timeout=1.0).status_code == 200:
                    self.startup_s = time.monotonic() - start
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"modhub serve did not become healthy in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def admin(self, *args: str, command: str = "create-token") -> str:
        return admin_cli(self.data_dir, *args, command=command, env=self.env)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Terminate ``proc``; kill it if it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_hub(
    data_dir: Path, env: dict[str, str] | None = None, *, workers: int = 1, token_for: str | None = None
) -> Iterator[LiveHub]:
    """A started :class:`LiveHub`, stopped on exit. ``token_for``: a publisher whose token is
    created before the start (``hub.token``)."""
    hub = LiveHub(data_dir, env, workers=workers)
    if token_for:
        hub.token = hub.admin("--publisher", token_for)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def admin_run(
    data_dir: Path | None,
    *args: str,
    command: str = "create-token",
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run `modhub admin <command>` (``data_dir`` None: no ``--data-dir``, settings from ``env``)."""
    where = ["--data-dir", str(data_dir)] if data_dir is not None else []
    cmd = [sys.executable, "-m", "modhub", "admin", command, *where, *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=hub_process_env(env), timeout=timeout, check=False
    )


def admin_cli(
    data_dir: Path | None,
    *args: str,
    command: str = "create-token",
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> str:
    """Run `modhub admin <command>` and return what it printed on stdout (create-token: the token)."""
    result = admin_run(data_dir, *args, command=command, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def database_env(database_url: str | None) -> dict[str, str]:
    return {"MODHUB_SERVER_DATABASE_URL": database_url} if database_url else {}


# --- databases: a test that takes `database_url` runs on SQLite and on PostgreSQL ----------------

DATABASES = ["sqlite", "postgresql"]

PG_HOW = (
    "set MODHUB_TEST_POSTGRES=postgresql+psycopg://USER@HOST:PORT/DB to a server where USER may "
    "create databases (bash .ci/run starts a throwaway cluster and sets it)"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(ok: bool, what: str) -> None:
    """A tool the test needs: without it, skipped on a developer's machine, failed in CI (CI=true)."""
    if not ok:
        if in_ci():
            pytest.fail(f"CI=true but {what}")
        pytest.skip(what)


# Debian's chromium, driven by Playwright (which never downloads a browser here).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def postgres_admin_url() -> str:
    """The PostgreSQL server the tests create their databases on. Skipped without one on a
    developer's machine; in CI (CI=true) a missing or unreachable server fails the run."""
    url = os.environ.get("MODHUB_TEST_POSTGRES")
    if not url:
        if in_ci():
            pytest.fail(f"CI=true but no PostgreSQL for the tests: {PG_HOW}")
        pytest.skip(f"no PostgreSQL: {PG_HOW}")
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, ImportError) as exc:
        message = f"PostgreSQL at MODHUB_TEST_POSTGRES is not usable ({exc}); {PG_HOW}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"modhub_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


@contextlib.contextmanager
def database(kind: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded SQLite; else the URL of a fresh PostgreSQL database."""
    if kind == "sqlite":
        yield None
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url
