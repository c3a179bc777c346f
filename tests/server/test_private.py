"""Private modules: 404 on every route for anyone without a read token for the publisher, never
listed, and visibility changed by the publisher through the API and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.harness import API, LiveHub, serve_env
from tests.server.conftest import auth, new_token_scoped, publish, with_description

SECRET = "secretco/hidden"


@pytest.fixture
def private_module(tmp_path: Path, feature_module: Path) -> Path:
    # Its own description: its manifest and card are blobs no public module shares.
    return with_description(feature_module, tmp_path / "secret", "classified weights, do not share")


@pytest.fixture
def hub_with_secret(client: TestClient, private_module: Path, feature_module: Path) -> TestClient:
    """secretco/hidden/1 (private) and acme/tiny/1 (public)."""
    owner = new_token_scoped(client, "secretco", scope="publish")
    response = publish(client, owner, private_module, SECRET, data={"private": "true"})
    assert response.status_code == 201, response.text
    public = new_token_scoped(client, "acme", scope="publish")
    assert publish(client, public, feature_module, "acme/tiny").status_code == 201
    return client


def _routes(client: TestClient) -> dict[str, str]:
    detail = client.get(f"{API}/modules/{SECRET}/versions/1", headers=auth(_admin(client))).json()
    return {
        "module": f"{API}/modules/{SECRET}",
        "version": f"{API}/modules/{SECRET}/versions/1",
        "latest": f"{API}/modules/{SECRET}/versions/latest",
        "file": f"{API}/modules/{SECRET}/versions/1/files/graph.pt2",
        "manifest file": f"{API}/modules/{SECRET}/versions/1/files/modhub.json",
        "blob": f"{API}/blobs/{detail['manifest_sha256']}",
        "publisher": f"{API}/publishers/secretco",
        "site publisher": "/secretco",
        "site module": f"/{SECRET}",
        "site version": f"/{SECRET}/1",
        # The Hugging Face protocol (huggingface_hub sends a token as Authorization too).
        "hf model info": f"/api/models/{SECRET}",
        "hf revision": f"/api/models/{SECRET}/revision/1",
        "hf tree": f"/api/models/{SECRET}/tree/1",
        "hf resolve": f"/{SECRET}/resolve/1/modhub.json",
    }


def _admin(client: TestClient) -> str:
    return new_token_scoped(client, scope="admin")


def _listed(client: TestClient, headers: dict[str, str]) -> dict[str, bool]:
    """Where the private module's name shows up in listings."""
    search = client.get(f"{API}/modules", params={"q": "hidden"}, headers=headers).json()
    everything = client.get(f"{API}/modules", params={"per_page": 100}, headers=headers).json()
    home = client.get("/", headers=headers).text
    typo = client.get("/secretco/hiddn", headers=headers).text
    return {
        "search": any(item["handle"] == SECRET for item in search["items"]),
        "all": any(item["handle"] == SECRET for item in everything["items"]),
        "home": "secretco" in home,  # a result, or a publisher filter
        "404 suggestions": SECRET in typo,
    }


def test_private_module_is_404_everywhere_without_a_read_token(hub_with_secret: TestClient) -> None:
    client = hub_with_secret
    routes = _routes(client)
    strangers = {
        "anonymous": {},
        "other publisher (publish)": auth(new_token_scoped(client, "acme", scope="publish")),
        "other publisher (read)": auth(new_token_scoped(client, "acme", scope="read")),
    }
    for who, headers in strangers.items():
        for route, url in routes.items():
            # HEAD where the route answers it (files, blobs, the site).
            for method in (
                ("GET", "HEAD")
                if "file" in route or route in ("blob", "hf resolve") or "site" in route
                else ("GET",)
            ):
                response = client.request(method, url, headers=headers, follow_redirects=False)
                assert response.status_code == 404, (who, route, method, response.status_code)
        assert not any(_listed(client, headers).values()), who
        # The same answer as for a module that does not exist: nothing tells them it is there.
        hidden = client.get(f"{API}/modules/{SECRET}", headers=headers).json()["error"]
        missing = client.get(f"{API}/modules/secretco/nothing", headers=headers).json()["error"]
        assert hidden["code"] == missing["code"] == "module_not_found"
    # The public module next to it is unaffected.
    assert client.get(f"{API}/modules/acme/tiny").status_code == 200


@pytest.mark.parametrize("scope", ["read", "publish", "admin"])
def test_a_read_token_for_the_publisher_sees_it_on_every_route(
    hub_with_secret: TestClient, scope: str
) -> None:
    client = hub_with_secret
    token = new_token_scoped(client, *(["secretco"] if scope != "admin" else []), scope=scope)
    headers = auth(token)
    for route, url in _routes(client).items():
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (route, response.status_code, response.text[:200])
    listed = _listed(client, headers)
    assert all(listed.values()), listed
    assert client.get(f"{API}/modules/{SECRET}", headers=headers).json()["private"] is True


def test_tensorflow_hub_protocol_never_shows_a_private_module(hub_with_secret: TestClient) -> None:
    """tensorflow_hub sends no token: over its protocol a private module is as missing as an unknown one."""
    client = hub_with_secret
    query = {"tf-hub-format": "compressed"}
    for url in (f"/{SECRET}/1", f"/{SECRET}"):
        hidden = client.get(url, params=query, follow_redirects=False)
        missing = client.get(f"/secretco/nothing{url[len(SECRET) + 1 :]}", params=query)
        assert hidden.status_code == missing.status_code == 404, url
        assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "module_not_found"
    # The public module beside it answers (it has no SavedModel: a 404 that says so).
    public = client.get("/acme/tiny/1", params=query)
    assert public.json()["error"]["code"] == "format_not_available"


def test_hugging_face_protocol_treats_a_foreign_token_as_anonymous(hub_with_secret: TestClient) -> None:
    """huggingface_hub sends the user's stored HF token to any endpoint: public modules still answer,
    private ones stay hidden; a modhub token that is not valid is refused as everywhere."""
    client = hub_with_secret
    foreign = auth("hf_" + "x" * 34)
    assert client.get("/api/models/acme/tiny", headers=foreign).status_code == 200
    hidden = client.get(f"/api/models/{SECRET}", headers=foreign)
    assert hidden.status_code == 404 and hidden.headers["x-error-code"] == "RepoNotFound"
    assert client.get("/api/models/acme/tiny", headers=auth("mh_not-a-token")).status_code == 401


def test_invalid_token_on_a_read_is_401_not_anonymous(hub_with_secret: TestClient) -> None:
    response = hub_with_secret.get(f"{API}/modules/acme/tiny", headers=auth("mh_not-a-token"))
    assert response.status_code == 401


def test_visibility_changes_through_the_api(hub_with_secret: TestClient) -> None:
    client = hub_with_secret
    url = f"{API}/modules/{SECRET}/visibility"
    reader = new_token_scoped(client, "secretco", scope="read")
    stranger = new_token_scoped(client, "acme", scope="publish")
    owner = new_token_scoped(client, "secretco", scope="publish")
    assert client.put(url, json={"private": False}).status_code == 401
    # A token that cannot even see it gets 404 (no name leak); a reader may not change it (403).
    assert client.put(url, json={"private": False}, headers=auth(stranger)).status_code == 404
    assert client.put(url, json={"private": False}, headers=auth(reader)).status_code == 403
    assert client.put(url, json={"private": "maybe"}, headers=auth(owner)).status_code in (400, 422)
    made_public = client.put(url, json={"private": False}, headers=auth(owner))
    assert made_public.status_code == 200 and made_public.json() == {"handle": SECRET, "private": False}
    assert client.get(f"{API}/modules/{SECRET}/versions/1/files/graph.pt2").status_code == 200
    assert any(
        i["handle"] == SECRET for i in client.get(f"{API}/modules", params={"q": "hidden"}).json()["items"]
    )
    assert client.put(url, json={"private": True}, headers=auth(owner)).json()["private"] is True
    assert client.get(f"{API}/modules/{SECRET}").status_code == 404


def test_publishing_keeps_or_sets_visibility(
    hub_with_secret: TestClient, private_module: Path, tmp_path: Path
) -> None:
    client = hub_with_secret
    owner = new_token_scoped(client, "secretco", scope="publish")
    # A new version without the field keeps the module private.
    v2 = with_description(private_module, tmp_path / "v2", "second secret")
    assert publish(client, owner, v2, SECRET).status_code == 201
    assert client.get(f"{API}/modules/{SECRET}").status_code == 404
    assert client.get(f"{API}/modules/{SECRET}", headers=auth(owner)).json()["latest_version"] == 2
    # The owner can yank a version of its private module.
    yank = client.post(f"{API}/modules/{SECRET}/versions/2/yank", headers=auth(owner))
    assert yank.status_code == 200
    bad = publish(client, owner, v2, "secretco/other", data={"private": "perhaps"})
    assert bad.status_code == 400 and "private" in bad.json()["error"]["message"]
    public = publish(client, owner, v2, "secretco/open", data={"private": "false"})
    assert public.status_code == 201
    assert client.get(f"{API}/modules/secretco/open").json()["private"] is False


def test_lookalike_refusal_does_not_name_a_private_module(
    hub_with_secret: TestClient, private_module: Path
) -> None:
    client = hub_with_secret
    other = new_token_scoped(client, "secretc0", scope="publish")
    response = publish(client, other, private_module, "secretc0/hidden")
    assert response.status_code == 409
    assert "secretco" not in response.json()["error"]["message"]


# --- the CLI, against a real server ---------------------------------------------------------


def _modhub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modhub", *args],
        capture_output=True,
        text=True,
        env={**serve_env(), **env},
        timeout=300,
        check=False,
    )


def test_cli_publish_private_visibility_and_read_tokens(
    live_hub: LiveHub, private_module: Path, tmp_path: Path
) -> None:
    owner = live_hub.admin("--publisher", "cliteam", "--scope", "publish")
    reader = live_hub.admin("--publisher", "cliteam", "--scope", "read")
    base = {"MODHUB_ENDPOINT": live_hub.url, "MODHUB_CONFIG_DIR": str(tmp_path / "config")}
    published = _modhub(
        "publish", str(private_module), "cliteam/secret", "--private", env={**base, "MODHUB_TOKEN": owner}
    )
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == "cliteam/secret/1"
    assert httpx.get(f"{live_hub.url}{API}/modules/cliteam/secret").status_code == 404

    anonymous = _modhub("download", "cliteam/secret/1", env={**base, "MODHUB_CACHE": str(tmp_path / "c1")})
    assert anonymous.returncode == 1 and "no module cliteam/secret" in anonymous.stderr
    download = _modhub(
        "download",
        "cliteam/secret/1",
        env={**base, "MODHUB_CACHE": str(tmp_path / "c2"), "MODHUB_TOKEN": reader},
    )
    assert download.returncode == 0, download.stderr
    assert (Path(download.stdout.strip()) / "graph.pt2").is_file()

    refused = _modhub("visibility", "cliteam/secret", "public", env={**base, "MODHUB_TOKEN": reader})
    assert refused.returncode == 1 and "scope" in refused.stderr
    made_public = _modhub("visibility", "cliteam/secret", "public", env={**base, "MODHUB_TOKEN": owner})
    assert made_public.returncode == 0, made_public.stderr
    assert made_public.stdout.strip() == "cliteam/secret is public"
    assert httpx.get(f"{live_hub.url}{API}/modules/cliteam/secret").status_code == 200
    again = _modhub("visibility", "cliteam/secret", "private", env={**base, "MODHUB_TOKEN": owner})
    assert again.stdout.strip() == "cliteam/secret is private"
    assert httpx.get(f"{live_hub.url}{API}/modules/cliteam/secret").status_code == 404
