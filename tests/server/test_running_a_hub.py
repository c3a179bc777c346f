"""docs/running-a-hub.md's production layout, run as written: its settings file and its commands,
against a real PostgreSQL and a real S3 store (SeaweedFS), two workers, behind "a proxy"."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from modhub.format.digests import sha256_file
from modhub.format.manifest import read_manifest
from tests.docs.markdown_blocks import REPO, blocks
from tests.harness import API, free_port, fresh_postgres_database, serve_env, stop_process
from tests.server.seaweed import ACCESS_KEY, BUCKET, SECRET_KEY

DOC = REPO / "docs" / "running-a-hub.md"


def _layout() -> tuple[dict[str, str], list[str]]:
    """The settings (ini block) and the commands (the sh block after it) of the production layout."""
    found = blocks(DOC)
    settings = next(b for b in found if b.lang == "ini" and "MODHUB_SERVER_BLOB_URL" in b.code)
    commands = next(b for b in found if b.line > settings.line and b.lang == "sh")
    env = dict(line.split("=", 1) for line in settings.code.splitlines() if line.strip())
    return env, [line for line in commands.code.splitlines() if line.strip()]


def test_the_documented_production_layout_runs(
    postgres_admin_url: str, seaweedfs: Any, tmp_path: Path, feature_module: Path
) -> None:
    documented, commands = _layout()
    assert documented["MODHUB_SERVER_WORKERS"] == "2"
    with fresh_postgres_database(postgres_admin_url) as database_url:
        # The documented values, with this machine's servers in place of the example hosts.
        real = {
            "MODHUB_SERVER_DATABASE_URL": database_url,
            "MODHUB_SERVER_BLOB_URL": f"s3://{BUCKET}/prod-{uuid.uuid4().hex[:8]}",
            "MODHUB_SERVER_S3_ENDPOINT": seaweedfs.endpoint,
            "MODHUB_SERVER_S3_PUBLIC_ENDPOINT": seaweedfs.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "MODHUB_SERVER_DATA_DIR": str(tmp_path / "srv" / "modhub"),
        }
        assert set(real) <= set(documented)
        env = {**serve_env(), **documented, **real}
        port = free_port()
        backups = tmp_path / "backups"
        server: subprocess.Popen[bytes] | None = None
        log = tmp_path / "serve.log"
        checked = False
        try:
            for line in commands:
                line = line.replace("--port 8000", f"--port {port}").replace("/srv/backups", str(backups))
                if server is not None and not checked:
                    # The hub runs: what users do with it, before the operator's next command.
                    _use_the_hub(f"http://127.0.0.1:{port}", tmp_path, feature_module)
                    checked = True
                if line.endswith("&"):
                    with open(log, "wb") as out:
                        argv = [sys.executable, "-m", *shlex.split(line[:-1])]
                        server = subprocess.Popen(
                            argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
                        )
                    _wait_healthy(f"http://127.0.0.1:{port}", server, log)
                    continue
                script = line.replace("modhub ", f"{shlex.quote(sys.executable)} -m modhub ", 1)
                done = subprocess.run(
                    ["bash", "-e", "-o", "pipefail", "-c", script],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                assert done.returncode == 0, (line, done.stderr)
            assert checked, "the documented commands never started the hub"
            # Two worker processes served.
            started = {line for line in log.read_text().splitlines() if "Started server process" in line}
            assert len(started) == 2, log.read_text()
            header = json.loads((backups / "modhub-1" / "backup.json").read_text())
            assert header["database"] == "postgresql" and header["blob_mode"] == "listed"
            assert header["rows"]["versions"] == 1
        finally:
            if server is not None:
                stop_process(server, timeout=30)


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}{API}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the hub did not start:\n{log.read_text()}")


def _use_the_hub(url: str, work: Path, module: Path) -> None:
    """Publish with the operator's token, download through the presigned redirect, and look at a
    page the way the TLS proxy forwards it."""
    from modhub.client.publish import publish
    from modhub.client.resolve import resolve
    from modhub.settings import Settings

    token = (work / "admin.token").read_text().strip()
    handle = publish(module, "acme/prod", settings=Settings(endpoint=url, token=token, progress=False))
    redirect = httpx.get(f"{url}{API}/modules/acme/prod/versions/1/files/graph.pt2")
    assert redirect.status_code == 307 and "X-Amz-Signature" in redirect.headers["location"]
    local = resolve(handle, settings=Settings(endpoint=url, cache=work / "cache", progress=False))
    for entry in read_manifest(module).files:
        assert sha256_file(local / entry.path) == entry.sha256
    proxied = httpx.get(
        f"{url}/{handle}", headers={"Host": "modhub.example.org", "X-Forwarded-Proto": "https"}
    )
    assert proxied.status_code == 200
    assert f"https://modhub.example.org/{handle}" in proxied.text
    assert "http://127.0.0.1" not in proxied.text
