"""The app as a whole: JSON errors under /api/, the OpenAPI spec, health."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.server.conftest import API, error_code


def test_unknown_api_paths_answer_json(client: TestClient) -> None:
    for path in (f"{API}/nope", f"{API}/a/b/c/d/e", f"{API}/modules/acme/tiny/versions/1/yank/x"):
        response = client.get(path)
        assert response.status_code in (404, 405), path
        assert error_code(response) in ("not_found", "method_not_allowed"), path


def test_wrong_method_answers_json_with_allow(client: TestClient) -> None:
    response = client.put(f"{API}/modules")
    assert (response.status_code, error_code(response)) == (405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


def test_openapi_and_health(client: TestClient) -> None:
    spec = client.get(f"{API}/openapi.json").json()
    assert spec["info"]["title"] == "modhub"
    assert all(path.startswith(API) for path in spec["paths"])  # the website stays out of the spec
    health = client.get(f"{API}/health").json()
    assert health["status"] == "ok"
    assert health["limits"]["max_file_bytes"] > 0
