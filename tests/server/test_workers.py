"""`modhub serve --workers 2`: two processes on one database and blob store; concurrent
publishes of one version end with exactly one winner, and nothing answers 5xx."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from modhub.format.manifest import read_manifest
from tests.harness import API, LiveHub, database_env, running_hub
from tests.server.conftest import multipart


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Any:
    data_dir = tmp_path_factory.mktemp("workers") / "data"
    with running_hub(data_dir, database_env(module_database_url), workers=2) as hub:
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
