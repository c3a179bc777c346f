"""Search, module/publisher detail and yanking."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.server.conftest import API, error_code, publish, with_description
from tests.tiny_models import make_module


def _handles(client: TestClient, **params: object) -> list[str]:
    response = client.get(f"{API}/modules", params=params)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return [item["handle"] for item in response.json()["items"]]


def test_search_filters_sort_and_pages(
    client: TestClient, admin_token: str, feature_module: Path, tmp_path: Path
) -> None:
    cats = with_description(feature_module, tmp_path / "cats", "Finds cats in photos")
    # The same tiny CNN with an ONNX graph beside its torch graph (the hub checks both formats).
    with_onnx = make_module(
        "image-feature-vector",
        tmp_path / "onnx",
        classes=6,
        license="MIT",
        onnx=True,
        metadata={"title": "Tiny features", "description": "A tiny CNN for tests", "tags": ["test", "cnn"]},
    )
    assert publish(client, admin_token, feature_module, repo="acme/alpha").status_code == 201
    assert publish(client, admin_token, cats, repo="zeta/cat-finder").status_code == 201
    assert publish(client, admin_token, with_onnx, repo="acme/portable").status_code == 201

    assert _handles(client, sort="name") == ["acme/alpha", "acme/portable", "zeta/cat-finder"]
    assert _handles(client, q="CATS photos") == ["zeta/cat-finder"]
    assert _handles(client, q="cat-finder") == ["zeta/cat-finder"]
    assert _handles(client, q="cnn", sort="name") == ["acme/alpha", "acme/portable", "zeta/cat-finder"]
    assert _handles(client, q="100%_") == []  # LIKE wildcards are literal
    assert _handles(client, publisher="acme", sort="name") == ["acme/alpha", "acme/portable"]
    assert _handles(client, format="onnx") == ["acme/portable"]
    assert _handles(client, license="mit") == ["acme/portable"]
    assert _handles(client, task="image-feature-vector", sort="name")[0] == "acme/alpha"
    assert _handles(client, task="text-embedding") == []
    assert _handles(client, sort="newest") == ["acme/portable", "zeta/cat-finder", "acme/alpha"]

    client.get(f"{API}/modules/zeta/cat-finder/versions/1", headers={"X-Modhub-Client": "1"})
    hub = client.app.state.hub  # type: ignore[attr-defined]
    hub.downloads.flush(hub.db)  # counts are written in batches
    assert _handles(client, sort="downloads")[0] == "zeta/cat-finder"

    page = client.get(f"{API}/modules", params={"sort": "name", "per_page": 2, "page": 2}).json()
    assert page["total"] == 3 and page["page"] == 2 and page["per_page"] == 2
    assert [i["handle"] for i in page["items"]] == ["zeta/cat-finder"]

    for bad in ({"sort": "random"}, {"page": 0}, {"per_page": 1000}):
        response = client.get(f"{API}/modules", params=bad)
        assert (response.status_code, error_code(response)) == (400, "invalid_request")


def test_yank_hides_from_latest_and_search_but_keeps_downloads(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    v2 = with_description(feature_module, tmp_path / "v2", "second")
    assert publish(client, token, feature_module).status_code == 201
    assert publish(client, token, v2).status_code == 201
    headers = {"Authorization": f"Bearer {token}"}

    response = client.post(
        f"{API}/modules/acme/tiny/versions/2/yank", json={"reason": "broken"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"handle": "acme/tiny/2", "version": 2, "yanked": True, "yank_reason": "broken"}
    assert client.get(f"{API}/modules/acme/tiny/versions/latest").json()["version"] == 1
    module = client.get(f"{API}/modules/acme/tiny").json()
    assert module["latest_version"] == 1
    assert [(v["version"], v["yanked"]) for v in module["versions"]] == [(1, False), (2, True)]
    detail = client.get(f"{API}/modules/acme/tiny/versions/2").json()
    assert detail["yanked"] is True and detail["yank_reason"] == "broken"
    assert client.get(f"{API}/modules/acme/tiny/versions/2/files/README.md").status_code == 200

    # Yanking the last visible version hides the module from search and its publisher page.
    assert client.post(f"{API}/modules/acme/tiny/versions/1/yank", headers=headers).status_code == 200
    assert _handles(client) == []
    assert client.get(f"{API}/publishers/acme").json()["modules"] == []
    latest = client.get(f"{API}/modules/acme/tiny/versions/latest")
    assert (latest.status_code, error_code(latest)) == (404, "version_not_found")
    assert "yanked" in latest.json()["error"]["message"]
    assert client.get(f"{API}/modules/acme/tiny/versions/1/files/graph.pt2").status_code == 200
    # A new version is visible again.
    assert publish(client, token, feature_module).json()["version"] == 3
    assert _handles(client) == ["acme/tiny"]


def test_yank_needs_the_publishers_token(client: TestClient, published: str, admin_token: str) -> None:
    from tests.server.conftest import new_token

    url = f"{API}/modules/acme/tiny/versions/1/yank"
    assert client.post(url).status_code == 401
    other = new_token(client, "other")
    response = client.post(url, headers={"Authorization": f"Bearer {other}"})
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    missing = client.post(
        f"{API}/modules/acme/tiny/versions/5/yank", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert (missing.status_code, error_code(missing)) == (404, "version_not_found")


def test_publisher_detail(client: TestClient, published: str) -> None:
    body = client.get(f"{API}/publishers/acme").json()
    assert body["name"] == "acme"
    assert [m["handle"] for m in body["modules"]] == ["acme/tiny"]
    response = client.get(f"{API}/publishers/nobody")
    assert (response.status_code, error_code(response)) == (404, "publisher_not_found")


def test_search_service_is_callable_directly(client: TestClient, published: str) -> None:
    """The website calls the services with a session; they return plain pydantic objects."""
    from modhub.server.services import SearchQuery, get_module, get_version, list_publisher, search_modules

    hub = client.app.state.hub  # type: ignore[attr-defined]
    with hub.db.session() as session:
        page = search_modules(session, SearchQuery(q="tiny"))
        assert [m.handle for m in page.items] == ["acme/tiny"]
        assert get_module(session, "acme", "tiny").versions[0].version == 1
        assert get_version(session, "acme", "tiny", "latest").handle == "acme/tiny/1"
        assert list_publisher(session, "acme").modules[0].name == "tiny"
