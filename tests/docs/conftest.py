"""A real hub for the docs: ``python -m modhub serve`` on a free loopback port, seeded
with the starter modules exactly as ``make serve`` does.

The docs talk to ``http://127.0.0.1:8000`` (what ``make serve`` starts). The test
hub runs on a free port instead, so the docs test never collides with a hub the
developer is running, and every block has ``http://127.0.0.1:8000`` (and
``localhost:8000``) rewritten to the test hub's URL before it runs;
``MODHUB_ENDPOINT`` points there as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from tests.harness import admin_cli, running_hub
from tests.zoo.conftest import zoo_cache_dir


@dataclass(frozen=True)
class DocsHub:
    url: str
    data_dir: Path
    zoo_dir: Path


@pytest.fixture(scope="session")
def docs_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsHub]:
    from modhub.zoo import build_zoo

    zoo = zoo_cache_dir()
    build_zoo(zoo, progress=False)
    data_dir = tmp_path_factory.mktemp("docs-hub") / "hub"
    admin_cli(data_dir, str(zoo), "--publisher", "modhub", command="seed", timeout=600)
    with running_hub(data_dir) as hub:
        yield DocsHub(url=hub.url, data_dir=data_dir, zoo_dir=zoo)
