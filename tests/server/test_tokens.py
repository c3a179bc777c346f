"""API tokens: created via API, scope rules, stored hashed, revocation."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient
from sqlalchemy import select

from modhub.server.models import Token
from tests.server.conftest import API, error_code


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_are_stored_hashed_and_shown_once(client: TestClient, admin_token: str) -> None:
    response = client.post(
        f"{API}/tokens", json={"name": "ci", "publishers": ["acme"]}, headers=_auth(admin_token)
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert (
        created["token"].startswith("mh_") and created["publishers"] == ["acme"] and created["admin"] is False
    )
    hub = client.app.state.hub  # type: ignore[attr-defined]
    with hub.db.session() as session:
        rows = session.scalars(select(Token)).all()
    stored = {row.token_hash for row in rows}
    assert hashlib.sha256(created["token"].encode()).hexdigest() in stored
    assert all(created["token"] not in (row.token_hash, row.name) for row in rows)
    me = client.get(f"{API}/tokens/me", headers=_auth(created["token"])).json()
    assert me == {k: created[k] for k in ("id", "name", "publishers", "admin", "created_at")}
    assert "token" not in me


def test_scope_rules_for_creating_tokens(client: TestClient, token: str) -> None:
    # An 'acme' token may create a narrower acme token, but not other publishers or admins.
    ok = client.post(f"{API}/tokens", json={"publishers": ["acme"]}, headers=_auth(token))
    assert ok.status_code == 201
    for body in ({"publishers": ["other"]}, {"admin": True}):
        response = client.post(f"{API}/tokens", json=body, headers=_auth(token))
        assert (response.status_code, error_code(response)) == (403, "forbidden")
    response = client.post(f"{API}/tokens", json={"publishers": []}, headers=_auth(token))
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    response = client.post(f"{API}/tokens", json={"publishers": ["Bad Name"]}, headers=_auth(token))
    assert (response.status_code, error_code(response)) == (400, "invalid_name")
    response = client.post(f"{API}/tokens", json={"publishers": ["acme"]})
    assert (response.status_code, error_code(response)) == (401, "auth_required")


def test_revocation(client: TestClient, token: str, admin_token: str) -> None:
    child = client.post(f"{API}/tokens", json={"publishers": ["acme"]}, headers=_auth(token)).json()
    # A token may revoke the tokens it created, and itself; not others.
    other = client.post(f"{API}/tokens", json={"publishers": ["x"]}, headers=_auth(admin_token)).json()
    response = client.delete(f"{API}/tokens/{other['id']}", headers=_auth(token))
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    response = client.delete(f"{API}/tokens/{child['id']}", headers=_auth(token))
    assert response.json() == {"id": child["id"], "revoked": True}
    response = client.get(f"{API}/tokens/me", headers=_auth(child["token"]))
    assert (response.status_code, error_code(response)) == (401, "invalid_token")
    response = client.delete(f"{API}/tokens/999", headers=_auth(admin_token))
    assert (response.status_code, error_code(response)) == (404, "token_not_found")
    me = client.get(f"{API}/tokens/me", headers=_auth(token)).json()
    assert client.delete(f"{API}/tokens/{me['id']}", headers=_auth(token)).status_code == 200
    assert client.get(f"{API}/tokens/me", headers=_auth(token)).status_code == 401


def test_malformed_authorization(client: TestClient) -> None:
    for header in ("Basic abc", "Bearer", "Bearer   ", "token"):
        response = client.get(f"{API}/tokens/me", headers={"Authorization": header})
        assert response.status_code == 401, header
