"""A real single-node Ray cluster (started once per run) and a real hub, for the cluster tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

from modhub.cluster import LocalCluster
from tests.retrain.conftest import write_photos, write_text_csv
from tests.server.conftest import LiveHub, _src_dir, admin_cli
from tests.tiny_models import TinyCNN


@pytest.fixture(scope="session")
def cluster_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODHUB_CACHE of the cluster's jobs (the cluster's own machine cache)."""
    return tmp_path_factory.mktemp("cluster-cache")


@pytest.fixture(scope="session")
def ray_cluster(cluster_cache: Path) -> Iterator[LocalCluster]:
    """``ray start --head --num-cpus 2`` on free loopback ports, its own temp dir; stopped at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODHUB_")}
    # The cluster's Python finds this worktree's modhub (jobs run in their own directory).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_src_dir(), os.environ.get("PYTHONPATH", "")) if p)
    env["MODHUB_CACHE"] = str(cluster_cache)
    env["MODHUB_CONFIG_DIR"] = str(cluster_cache / "config")
    cluster = LocalCluster(num_cpus=2, object_store_memory=400_000_000, env=env)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True)
class Hub:
    endpoint: str
    data_dir: Path
    token: str


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """``modhub serve`` on a free loopback port, with a token for publisher 'acme'."""
    data_dir = tmp_path_factory.mktemp("cluster-hub") / "data"
    token = admin_cli(data_dir, "--publisher", "acme")
    live = LiveHub(data_dir)
    live.start()
    try:
        yield Hub(live.url, data_dir, token)
    finally:
        live.stop()


@pytest.fixture(scope="session")
def features_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image-feature-vector module (8-d, 32x32)."""
    import modhub as hub

    torch.manual_seed(1)
    return hub.export(
        TinyCNN(classes=8).eval(),
        torch.rand(2, 3, 32, 32),
        tmp_path_factory.mktemp("cluster-modules") / "tiny-features",
        task="image-feature-vector",
        license="Apache-2.0",
        metadata={"title": "Tiny features", "tags": ["test"]},
    )


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photos(tmp_path_factory.mktemp("cluster-photos") / "photos", per_class=6)


@pytest.fixture(scope="session")
def topics_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_text_csv(tmp_path_factory.mktemp("cluster-texts") / "topics.csv", per_class=10)


@pytest.fixture(scope="session")
def hub_image_handle(hub: Hub, image_module: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny image classifier, published on the hub as acme/tiny-cnn/1."""
    from modhub.client.publish import publish
    from modhub.settings import Settings

    settings = Settings(endpoint=hub.endpoint, token=hub.token, cache=tmp_path_factory.mktemp("pub-cache"))
    return publish(image_module, "acme/tiny-cnn", settings=settings)
