"""`modhub serve --workers 2`: two processes on one database and blob store; concurrent
publishes of one version end with exactly one winner, and nothing answers 5xx; the limit on
failed authentications and the download counts are shared by the workers (in the database)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from modhub.format.manifest import read_manifest
from tests.harness import API, LiveHub, database_env, running_hub
from tests.server.conftest import multipart

# Failed authentications one address may make per window (the hub's setting in these tests).
LIMIT = 5


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Any:
    data_dir = tmp_path_factory.mktemp("workers") / "data"
    env = {**database_env(module_database_url), "MODHUB_SERVER_AUTH_FAILURE_LIMIT": str(LIMIT)}
    with running_hub(data_dir, env, workers=2) as hub:
        yield hub


def test_two_workers_one_winner_per_version_and_no_5xx(two_workers: LiveHub, feature_module: Path) -> None:
    token = two_workers.admin("--publisher", "acme")
    headers = {"Authorization": f"Bearer {token}"}
    body = multipart(feature_module)
    url = f"{two_workers.url}{API}/modules/acme/race/versions"
    # Version 1 exists first, so downloads can run while version 2 is fought over.
    assert httpx.post(url, files=body, headers=headers, timeout=120).status_code == 201
    graph = next(e for e in read_manifest(feature_module).files if e.path == "graph.pt2")
    file_url = f"{two_workers.url}{API}/modules/acme/race/versions/1/files/graph.pt2"

    def race(_: int) -> int:
        with httpx.Client(timeout=120) as http:
            return http.post(url, files=body, data={"version": "2"}, headers=headers).status_code

    def download(_: int) -> tuple[int, int]:
        with httpx.Client(timeout=120) as http:
            response = http.get(file_url)
            return response.status_code, len(response.content)

    with ThreadPoolExecutor(max_workers=12) as pool:
        publishes = pool.map(race, range(4))
        downloads = pool.map(download, range(8))
        publish_codes, download_results = list(publishes), list(downloads)
    assert sorted(publish_codes) == [201, 409, 409, 409], publish_codes
    assert download_results == [(200, graph.size)] * 8
    versions = httpx.get(f"{two_workers.url}{API}/modules/acme/race").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    # Two server processes ran (uvicorn logs each one's pid as it starts).
    log = two_workers.log.read_text()
    assert (
        len(
            {
                line.split("[", 1)[1].split("]", 1)[0]
                for line in log.splitlines()
                if "Started server process [" in line
            }
        )
        == 2
    )


def test_the_failure_limit_holds_across_workers(two_workers: LiveHub) -> None:
    """Every request on a new connection (the kernel spreads them over both workers): an address
    gets exactly LIMIT 401s, then 429, whichever worker answers; another address is not blocked."""
    # The hub trusts X-Forwarded-For from loopback (a reverse proxy's): the guesser's address.
    guesser = {"Authorization": "Bearer mh_guess", "X-Forwarded-For": "203.0.113.7"}
    codes = [
        httpx.get(f"{two_workers.url}{API}/tokens/me", headers=guesser).status_code for _ in range(4 * LIMIT)
    ]
    assert codes == [401] * LIMIT + [429] * (3 * LIMIT), codes
    # Still refused with a valid token from that address; another address is served.
    token = two_workers.admin("--publisher", "limits")
    valid = {"Authorization": f"Bearer {token}"}
    blocked = httpx.get(
        f"{two_workers.url}{API}/tokens/me", headers={**valid, "X-Forwarded-For": "203.0.113.7"}
    )
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert httpx.get(f"{two_workers.url}{API}/tokens/me", headers=valid).status_code == 200


def test_downloads_on_every_worker_add_up_and_survive_shutdown(
    tmp_path: Path, module_database_url: str | None, feature_module: Path
) -> None:
    """Each worker batches its counts; stopping the hub writes what is pending, so the total
    after a restart is every download made, on whichever worker."""
    env = database_env(module_database_url)
    downloads = 40
    with running_hub(tmp_path / "data", env, workers=2, token_for="acme") as hub:
        body = multipart(feature_module)
        headers = {"Authorization": f"Bearer {hub.token}"}
        url = f"{hub.url}{API}/modules/acme/counted/versions"
        assert httpx.post(url, files=body, headers=headers, timeout=120).status_code == 201
        manifest = f"{hub.url}{API}/modules/acme/counted/versions/1"

        def fetch(_: int) -> int:
            with httpx.Client(timeout=60) as http:  # a new connection each: both workers serve
                return http.get(manifest, headers={"X-Modhub-Client": "test"}).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(fetch, range(downloads))) == [200] * downloads
        hub.stop()  # SIGTERM: each worker writes its pending counts as it stops
        hub.start()
        module = httpx.get(f"{hub.url}{API}/modules/acme/counted").json()
        assert module["downloads"] == downloads
