"""No input gives a 5xx: odd path parameters, Unicode digits, NUL bytes, huge numbers, on API and site."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import API, publish

ODD = [
    "²",
    "٣",
    "1_0",
    " 1",
    "+1",
    "1.0",
    "0",
    "01",
    "-1",
    "99999999999",
    str(2**31),
    "latest",
    "\x00",
    "a\x00b",
    "\u202e",
    "é",
    "\uff21\uff22\uff23",
    "..",
    "%",
    "a" * 5000,
    "💥",
    "\udcff",
]


def _routes(value: str) -> list[tuple[str, str]]:
    v = quote(value, safe="", errors="replace")
    return [
        ("GET", f"{API}/modules/acme/tiny/versions/{v}"),
        ("GET", f"{API}/modules/acme/tiny/versions/{v}/files/graph.pt2"),
        ("GET", f"{API}/modules/acme/tiny/versions/1/files/{v}"),
        ("GET", f"{API}/modules/{v}/tiny"),
        ("GET", f"{API}/modules/acme/{v}"),
        ("GET", f"{API}/modules/{v}/{v}/versions/latest"),
        ("GET", f"{API}/publishers/{v}"),
        ("GET", f"{API}/blobs/{v}"),
        ("GET", f"{API}/modules?q={v}&publisher={v}&task={v}&license={v}&format={v}&framework={v}"),
        ("POST", f"{API}/modules/acme/tiny/versions/{v}/yank"),
        ("DELETE", f"{API}/tokens/{v}"),
        ("GET", f"/{v}"),
        ("GET", f"/acme/{v}"),
        ("GET", f"/acme/tiny/{v}"),
        ("GET", f"/{v}/{v}/{v}"),
        ("GET", f"/?q={v}&page={v}&sort={v}"),
    ]


def _check(client: TestClient, method: str, url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/html"}
    response = client.request(method, url, headers=headers)
    assert response.status_code < 500, (method, url, response.status_code, response.text[:300])
    if url.startswith(API) and response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"], url


def test_odd_path_parameters_never_give_5xx(client_and_token: tuple[TestClient, str]) -> None:
    client, token = client_and_token
    for value in ODD:
        for method, url in _routes(value):
            _check(client, method, url, token)


def test_unicode_digit_version_is_404_with_the_error_body(client: TestClient, published: str) -> None:
    for version in ("²", "٣", "1_0", "+1", " 1"):
        response = client.get(f"{API}/modules/acme/tiny/versions/{quote(version)}")
        assert response.status_code == 404, version
        assert response.json()["error"]["code"] == "version_not_found"
    assert client.get(f"{API}/modules/acme/tiny/versions/1").status_code == 200


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(min_size=1, max_size=40))
def test_any_text_in_any_path_parameter(client_and_token: tuple[TestClient, str], value: str) -> None:
    client, token = client_and_token
    for method, url in _routes(value):
        _check(client, method, url, token)


@pytest.fixture(scope="module")
def client_and_token(tmp_path_factory: pytest.TempPathFactory, feature_module: Path) -> object:
    """One hub for every hypothesis example (function-scoped fixtures do not reset between them)."""
    from modhub.server.app import create_app
    from modhub.server.config import ServerSettings
    from tests.server.conftest import new_token

    settings_ = ServerSettings(data_dir=tmp_path_factory.mktemp("hostile") / "hub", auth_failure_limit=10**6)
    with TestClient(create_app(settings_)) as client:
        token = new_token(client, "acme")
        assert publish(client, token, feature_module).status_code == 201
        yield client, token
