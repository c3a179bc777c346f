"""Fixtures for client tests: settings on a fresh cache, and an in-process fake hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modhub.client.resolve import Resolver
from modhub.settings import Settings
from tests.client.fakehub import FakeHub, make_module

ENDPOINT = "http://hub.test"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(endpoint=ENDPOINT, cache=tmp_path / "cache", progress=False)


@pytest.fixture
def module_files() -> dict[str, bytes]:
    return {
        "graph.pt2": os.urandom(300_000),
        "README.md": b"# A test module\n",
        "assets/labels.txt": b"a\nb\n",
    }


@pytest.fixture
def fake_hub(tmp_path: Path, module_files: dict[str, bytes]) -> FakeHub:
    hub = FakeHub()
    hub.publish("acme", "tiny", 1, make_module(tmp_path / "v1", module_files))
    changed = dict(module_files, **{"README.md": b"# version 2\n"})
    hub.publish("acme", "tiny", 2, make_module(tmp_path / "v2", changed))
    return hub


@pytest.fixture
def resolver(settings: Settings, fake_hub: FakeHub) -> Resolver:
    return Resolver(settings, transport=fake_hub.transport())
