"""Signatures and tasks through the hub: every signature of a version in the API, the task
vocabulary with counts, and the task filter of search."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import modhub as hub
from modhub.format.tasks import TASK_VOCABULARY
from tests.server.conftest import API, error_code, publish
from tests.tiny_models import ARCHITECTURES


@pytest.fixture(scope="session")
def style_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-input style-transfer module with a second signature (style_vector)."""
    arch = ARCHITECTURES["style-transfer"]()
    out = tmp_path_factory.mktemp("signatures") / "style"
    options = {**arch.options, "metadata": {"title": "Tiny style", "description": "two inputs"}}
    return hub.export(arch.model, arch.example_inputs, out, license="MIT", **options)


def test_a_version_answers_every_signature_and_its_task(
    client: TestClient, admin_token: str, style_module: Path, feature_module: Path
) -> None:
    assert publish(client, admin_token, style_module, repo="acme/style").status_code == 201
    assert publish(client, admin_token, feature_module, repo="acme/features").status_code == 201

    detail = client.get(f"{API}/modules/acme/style/versions/1").json()
    assert detail["task"] == "image-style-transfer"
    assert list(detail["signatures"]) == ["default", "style_vector"]
    default = detail["signatures"]["default"]
    content, style = default["inputs"]
    assert (content["name"], content["dtype"], content["shape"]) == (
        "content",
        "float32",
        ["batch", 3, "height", "width"],
    )
    assert (content["kind"], content["layout"], content["value_range"]) == ("image", "NCHW", [0.0, 1.0])
    assert (style["name"], style["shape"]) == ("style", ["batch", 3, 8, 8])
    assert [o["name"] for o in default["outputs"]] == ["stylized_image"]
    vector = detail["signatures"]["style_vector"]
    assert [i["name"] for i in vector["inputs"]] == ["style"]
    assert vector["outputs"][0]["shape"] == ["batch", 8]

    # A module of the original tasks: its input's kind comes from the task.
    old = client.get(f"{API}/modules/acme/features/versions/latest").json()
    assert old["task"] == "image-feature-vector"
    (images,) = old["signatures"]["default"]["inputs"]
    assert images["kind"] == "image" and images["dtype"] == "float32"
    # The same answer at the module page's URL for a JSON client.
    page = client.get("/acme/style/1", headers={"Accept": "application/json"}).json()
    assert page["signatures"] == detail["signatures"]


def test_tasks_come_from_the_vocabulary_with_counts(
    client: TestClient, admin_token: str, style_module: Path, feature_module: Path
) -> None:
    for repo in ("acme/style", "zeta/style"):
        assert publish(client, admin_token, style_module, repo=repo).status_code == 201
    assert publish(client, admin_token, feature_module, repo="acme/features").status_code == 201

    listed = client.get(f"{API}/tasks").json()["tasks"]
    assert [t["task"] for t in listed] == list(TASK_VOCABULARY)
    counts = {t["task"]: t["count"] for t in listed}
    assert counts["image-style-transfer"] == 2 and counts["image-feature-vector"] == 1
    assert sum(counts.values()) == 3
    contracts = {t["task"] for t in listed if t["contract"]}
    assert {"image-style-transfer", "image-feature-vector", "text-embedding"} <= contracts
    assert "video-classification" not in contracts

    page = client.get(f"{API}/modules").json()
    assert page["tasks"] == {"image-feature-vector": 1, "image-style-transfer": 2}
    # The task counts ignore the task filter (what the filter picks from) but follow the others.
    filtered = client.get(f"{API}/modules", params={"task": "image-style-transfer", "sort": "name"}).json()
    assert [i["handle"] for i in filtered["items"]] == ["acme/style", "zeta/style"]
    assert filtered["tasks"] == page["tasks"]
    acme = client.get(f"{API}/modules", params={"publisher": "acme"}).json()
    assert acme["tasks"] == {"image-feature-vector": 1, "image-style-transfer": 1}
    assert client.get(f"{API}/modules", params={"task": "other"}).json()["total"] == 0
    assert client.get(f"{API}/modules", params={"task": ""}).json()["total"] == 3

    response = client.get(f"{API}/modules", params={"task": "style-transfer"})
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    assert "/api/v1/tasks" in response.json()["error"]["message"]
