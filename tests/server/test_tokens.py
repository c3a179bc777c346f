"""API tokens: created via API, scope rules, stored hashed, revocation."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
    assert me == {k: v for k, v in created.items() if k != "token"}
    assert me["scope"] == "publish" and me["expires_at"] is None and me["created_by"] is not None
    assert "token" not in me


def test_scope_rules_for_creating_tokens(client: TestClient, token: str) -> None:
    # An 'acme' token may create a narrower acme token, but not other publishers or admins.
    ok = client.post(f"{API}/tokens", json={"publishers": ["acme"]}, headers=_auth(token))
    assert ok.status_code == 201
    for body in ({"publishers": ["other"]}, {"admin": True}, {"scope": "admin"}):
        response = client.post(f"{API}/tokens", json=body, headers=_auth(token))
        assert (response.status_code, error_code(response)) == (403, "forbidden")
    # Without publishers, the new token gets its creator's.
    response = client.post(f"{API}/tokens", json={"publishers": []}, headers=_auth(token))
    assert response.status_code == 201 and response.json()["publishers"] == ["acme"]
    admin = client.app.state.hub  # type: ignore[attr-defined]
    with admin.db.write_session() as session:
        from modhub.server.services.tokens import create_token

        root = create_token(session, scope="admin")
        session.commit()
    response = client.post(f"{API}/tokens", json={}, headers=_auth(root.token))
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
    for missing in ("999", "0", str(2**31), "82265480652055166976"):
        response = client.delete(f"{API}/tokens/{missing}", headers=_auth(admin_token))
        assert (response.status_code, error_code(response)) == (404, "token_not_found"), missing
    me = client.get(f"{API}/tokens/me", headers=_auth(token)).json()
    assert client.delete(f"{API}/tokens/{me['id']}", headers=_auth(token)).status_code == 200
    assert client.get(f"{API}/tokens/me", headers=_auth(token)).status_code == 401


def test_malformed_authorization(client: TestClient) -> None:
    for header in ("Basic abc", "Bearer", "Bearer   ", "token"):
        response = client.get(f"{API}/tokens/me", headers={"Authorization": header})
        assert response.status_code == 401, header


def _create(client: TestClient, token: str, **body: object) -> dict[str, object]:
    response = client.post(f"{API}/tokens", json=body, headers=_auth(token))
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def test_revocation_cascades_to_every_descendant(client: TestClient, token: str, admin_token: str) -> None:
    child = _create(client, token, publishers=["acme"])
    grandchild = _create(client, str(child["token"]), publishers=["acme"], scope="read")
    great = _create(client, str(grandchild["token"]), publishers=["acme"], scope="read")
    sibling = _create(client, token, publishers=["acme"])
    assert grandchild["created_by"] == child["id"] and great["created_by"] == grandchild["id"]
    # The root may revoke a grandchild it did not create directly: it is in its tree.
    response = client.delete(f"{API}/tokens/{great['id']}", headers=_auth(token))
    assert response.status_code == 200
    response = client.delete(f"{API}/tokens/{child['id']}", headers=_auth(admin_token))
    assert response.status_code == 200
    for revoked in (child, grandchild, great):
        response = client.get(f"{API}/tokens/me", headers=_auth(str(revoked["token"])))
        assert (response.status_code, error_code(response)) == (401, "invalid_token")
    for alive in (token, str(sibling["token"])):
        assert client.get(f"{API}/tokens/me", headers=_auth(alive)).status_code == 200
    # A token outside the tree may not revoke into it.
    response = client.delete(f"{API}/tokens/{sibling['id']}", headers=_auth(str(child["token"])))
    assert response.status_code == 401


def test_operator_revocation_cascades(client: TestClient, token: str) -> None:
    from modhub.server.services.tokens import revoke_token_as_operator

    child = _create(client, token, publishers=["acme"])
    hub = client.app.state.hub  # type: ignore[attr-defined]
    me = client.get(f"{API}/tokens/me", headers=_auth(token)).json()
    with hub.db.write_session() as session:
        revoke_token_as_operator(session, me["id"])
        session.commit()
    assert client.get(f"{API}/tokens/me", headers=_auth(str(child["token"]))).status_code == 401


def test_scopes_read_publish_admin(client: TestClient, admin_token: str, feature_module: Path) -> None:
    from tests.server.conftest import publish

    reader = _create(client, admin_token, publishers=["acme"], scope="read")
    response = publish(client, str(reader["token"]), feature_module)
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    assert "scope 'publish'" in response.json()["error"]["message"]
    # A read token can create only read tokens.
    response = client.post(
        f"{API}/tokens",
        json={"publishers": ["acme"], "scope": "publish"},
        headers=_auth(str(reader["token"])),
    )
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    _create(client, str(reader["token"]), publishers=["acme"], scope="read")
    publisher = _create(client, admin_token, publishers=["acme"], scope="publish")
    assert publish(client, str(publisher["token"]), feature_module).status_code == 201
    response = client.post(
        f"{API}/modules/acme/tiny/versions/1/yank", json={}, headers=_auth(str(reader["token"]))
    )
    assert response.status_code == 403
    # admin: true and a narrower scope contradict each other.
    response = client.post(f"{API}/tokens", json={"admin": True, "scope": "read"}, headers=_auth(admin_token))
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    admin = _create(client, admin_token, scope="admin")
    assert admin["admin"] is True and admin["publishers"] == []


def test_allows_is_the_one_rule() -> None:
    from modhub.server.models import Token
    from modhub.server.services.tokens import allows

    def tok(scope: str, *publishers: str) -> Token:
        return Token(scope=scope, admin=scope == "admin", publishers=list(publishers))

    assert not allows(None, "read", "acme")
    assert allows(tok("read", "acme"), "read", "acme")
    assert not allows(tok("read", "acme"), "publish", "acme")
    assert not allows(tok("read", "acme"), "read", "other")
    assert allows(tok("publish", "acme"), "read", "acme")
    assert allows(tok("publish", "acme"), "publish", "acme")
    assert not allows(tok("publish", "acme"), "publish", "other")
    assert allows(tok("admin"), "publish", "anyone")


def test_expiry(client: TestClient, admin_token: str) -> None:
    from datetime import UTC, datetime, timedelta

    hub = client.app.state.hub  # type: ignore[attr-defined]
    short = _create(client, admin_token, publishers=["acme"], expires_in=3600)
    expires = datetime.fromisoformat(str(short["expires_at"]))
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    # Children expire with their parent by default, and may not outlive it.
    child = _create(client, str(short["token"]), publishers=["acme"])
    assert child["expires_at"] == short["expires_at"]
    response = client.post(
        f"{API}/tokens", json={"publishers": ["acme"], "expires_in": 7200}, headers=_auth(str(short["token"]))
    )
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    for bad in (0, -5, 10**12, "soon"):
        response = client.post(
            f"{API}/tokens", json={"publishers": ["acme"], "expires_in": bad}, headers=_auth(admin_token)
        )
        assert response.status_code == 400, bad
    # Move the clock past expiry by rewriting the stored instant.
    with hub.db.write_session() as session:
        row = session.get(Token, short["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    response = client.get(f"{API}/tokens/me", headers=_auth(str(short["token"])))
    assert (response.status_code, error_code(response)) == (401, "token_expired")


def test_parse_duration() -> None:
    from datetime import timedelta

    import pytest

    from modhub.server.services.tokens import parse_duration

    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration(" 2W ") == timedelta(weeks=2)
    for bad in ("", "30", "d", "0d", "-1d", "1.5d", "30 days", "99999w", "\u0663d"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


def test_failed_authentication_is_rate_limited(tmp_path: Path) -> None:
    from modhub.server.app import create_app
    from modhub.server.config import ServerSettings
    from tests.server.conftest import new_token

    settings = ServerSettings(data_dir=tmp_path / "hub", auth_failure_limit=3, auth_failure_window=60)
    with TestClient(create_app(settings)) as client:
        good = new_token(client, "acme")
        for _ in range(3):
            assert client.get(f"{API}/tokens/me", headers=_auth("mh_wrong")).status_code == 401
        response = client.get(f"{API}/tokens/me", headers=_auth("mh_wrong"))
        assert (response.status_code, error_code(response)) == (429, "rate_limited")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        # The address is blocked for the window, valid token or not; reads need no token.
        assert client.get(f"{API}/tokens/me", headers=_auth(good)).status_code == 429
        assert client.get(f"{API}/health").status_code == 200


def test_limiter_window_slides(tmp_path: Path, database_url: str | None) -> None:
    import pytest

    from modhub.server.app import create_hub
    from modhub.server.config import ServerSettings
    from modhub.server.errors import TooManyRequests
    from modhub.server.ratelimit import FailureLimiter

    hub = create_hub(ServerSettings(data_dir=tmp_path, database_url=database_url))
    now = [1000.0]
    limiter = FailureLimiter(hub.db, 2, 10.0, clock=lambda: now[0])
    # A second limiter on the same database: another worker process sees the same failures.
    other = FailureLimiter(hub.db, 2, 10.0, clock=lambda: now[0])
    with hub.db.session() as session:
        limiter.failed("a")
        now[0] = 1004.0
        other.failed("a")
        with pytest.raises(TooManyRequests) as info:
            limiter.check(session, "a")
        assert info.value.headers["Retry-After"] == "6"
        with pytest.raises(TooManyRequests):
            other.check(session, "a")
        limiter.check(session, "b")
        now[0] = 1010.5
        limiter.check(session, "a")  # the first failure aged out
    assert limiter.prune() == 1  # only the one that aged out
    now[0] = 1014.5
    assert other.prune() == 1
    hub.db.dispose()


def test_admin_create_token_cli_scope_and_expiry(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app

    runner = CliRunner()
    data = str(tmp_path / "hub")
    result = runner.invoke(
        app,
        ["admin", "create-token", "--data-dir", data, "-p", "acme", "--scope", "read", "--expires", "30d"],
    )
    assert result.exit_code == 0, result.output
    assert "read: acme, expires 20" in result.stderr
    listing = runner.invoke(app, ["admin", "list-tokens", "--data-dir", data])
    fields = listing.stdout.strip().split("\t")
    assert fields[:3] == ["1", "active", "acme"] and fields[4] == "read" and fields[5].startswith("20")
    for bad in (["--scope", "root"], ["--expires", "soon"], ["--expires", "0d"]):
        result = runner.invoke(app, ["admin", "create-token", "--data-dir", data, "-p", "acme", *bad])
        assert result.exit_code == 2 and "error:" in result.stderr, bad
