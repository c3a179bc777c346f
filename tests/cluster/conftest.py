"""A real single-node Ray cluster (started once per run) and a real hub, for the cluster tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("ray")

from modhub.cluster import LocalCluster
from tests.harness import running_hub, serve_env, without_modhub_settings
from tests.retrain.conftest import write_photos, write_text_csv
from tests.tiny_models import make_module


@pytest.fixture(scope="session")
def cluster_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODHUB_CACHE of the cluster's jobs (the cluster's own machine cache)."""
    return tmp_path_factory.mktemp("cluster-cache")


@pytest.fixture(scope="session")
def ray_cluster(cluster_cache: Path) -> Iterator[LocalCluster]:
    """``ray start --head --num-cpus 2`` on free loopback ports, its own temp dir; stopped at the end."""
    # The cluster's Python finds this worktree's modhub (jobs run in their own directory).
    env = without_modhub_settings(serve_env())
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
    with running_hub(data_dir, token_for="acme") as live:
        yield Hub(live.url, data_dir, live.token)


@pytest.fixture(scope="session")
def features_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image-feature-vector module (8-d, 32x32)."""
    return make_module(
        "image-feature-vector",
        tmp_path_factory.mktemp("cluster-modules") / "tiny-features",
        seed=1,
        classes=8,
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
