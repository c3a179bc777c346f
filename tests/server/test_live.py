"""Against a REAL hub: `python -m modhub serve` on loopback, the CLI, the Python client, concurrency."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from modhub.client.api import client_headers
from modhub.client.publish import publish, yank
from modhub.client.tokens import load_token, token_path
from modhub.errors import AuthenticationError, Conflict, PermissionDenied
from modhub.format.digests import sha256_file
from modhub.format.manifest import read_manifest
from modhub.settings import Settings
from tests.harness import API, LiveHub, serve_env
from tests.server.conftest import with_description


@pytest.fixture(scope="module")
def acme_token(live_hub: LiveHub) -> str:
    """Created with the CLI on the running hub's data dir (as an operator would)."""
    token = live_hub.admin("--publisher", "acme", "--name", "tests")
    assert token.startswith("mh_")
    return token


def _settings(live_hub: LiveHub, token: str | None = None, **kw: object) -> Settings:
    return Settings(endpoint=live_hub.url, token=token, progress=False, **kw)  # type: ignore[arg-type]


def _cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = serve_env()
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "modhub", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=120,
        check=False,
    )


def test_health_and_openapi(live_hub: LiveHub) -> None:
    health = httpx.get(f"{live_hub.url}{API}/health").json()
    assert health["status"] == "ok"
    spec = httpx.get(f"{live_hub.url}{API}/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/modules",
        "/api/v1/modules/{publisher}/{name}",
        "/api/v1/modules/{publisher}/{name}/versions/{version}",
        "/api/v1/modules/{publisher}/{name}/versions/{version}/files/{path}",
        "/api/v1/modules/{publisher}/{name}/versions",
        "/api/v1/modules/{publisher}/{name}/versions/{version}/yank",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
        "/api/v1/blobs/{sha256}",
        "/api/v1/publishers/{publisher}",
    ):
        assert path in paths, path
    assert (
        "multipart/form-data"
        in paths["/api/v1/modules/{publisher}/{name}/versions"]["post"]["requestBody"]["content"]
    )
    assert httpx.get(f"{live_hub.url}{API}/docs").status_code == 200


def test_publish_resolve_and_download_over_http(
    live_hub: LiveHub, acme_token: str, feature_module: Path, tmp_path: Path
) -> None:
    from modhub.client.resolve import resolve

    handle = publish(feature_module, "acme/roundtrip", settings=_settings(live_hub, acme_token))
    assert handle == "acme/roundtrip/1"
    local = resolve(handle, settings=_settings(live_hub, cache=tmp_path / "cache"))
    for entry in read_manifest(feature_module).files:
        assert sha256_file(local / entry.path) == entry.sha256
    # The client's manifest fetch counted as a download.
    deadline = time.monotonic() + 10  # counts are written in batches, about once a second
    while httpx.get(f"{live_hub.url}{API}/modules/acme/roundtrip").json()["downloads"] < 1:
        assert time.monotonic() < deadline, "the download was never counted"
        time.sleep(0.1)
    # Range over real HTTP.
    url = f"{live_hub.url}{API}/modules/acme/roundtrip/versions/1/files/graph.pt2"
    part = httpx.get(url, headers={"Range": "bytes=2-5"})
    assert part.status_code == 206
    assert part.content == (feature_module / "graph.pt2").read_bytes()[2:6]


def test_publish_errors_map_to_exceptions(live_hub: LiveHub, acme_token: str, feature_module: Path) -> None:
    with pytest.raises(AuthenticationError, match="modhub login"):
        publish(feature_module, "acme/errs", settings=_settings(live_hub, "mh_wrong"))
    with pytest.raises(PermissionDenied, match="acme"):
        publish(feature_module, "other/errs", settings=_settings(live_hub, acme_token))
    publish(feature_module, "acme/errs", version=3, settings=_settings(live_hub, acme_token))
    with pytest.raises(Conflict) as info:
        publish(feature_module, "acme/errs/3", settings=_settings(live_hub, acme_token))
    assert info.value.code == "version_exists" and info.value.status == 409


def test_concurrent_publishes_of_one_version_have_one_winner(
    live_hub: LiveHub, acme_token: str, feature_module: Path, tmp_path: Path
) -> None:
    variants = [with_description(feature_module, tmp_path / f"v{i}", f"variant {i}") for i in range(6)]

    def attempt(module: Path) -> int:
        from tests.server.conftest import multipart

        response = httpx.post(
            f"{live_hub.url}{API}/modules/acme/race/versions",
            files=multipart(module),
            data={"version": "1"},
            headers={"Authorization": f"Bearer {acme_token}"},
            timeout=60,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=len(variants)) as pool:
        statuses = sorted(pool.map(attempt, variants))
    assert statuses == [201] + [409] * (len(variants) - 1)
    versions = httpx.get(f"{live_hub.url}{API}/modules/acme/race").json()["versions"]
    assert [v["version"] for v in versions] == [1]


def test_concurrent_publishes_without_version_each_get_a_number(
    live_hub: LiveHub, acme_token: str, feature_module: Path
) -> None:
    def attempt(_: int) -> str:
        return publish(feature_module, "acme/crowd", settings=_settings(live_hub, acme_token))

    with ThreadPoolExecutor(max_workers=4) as pool:
        handles = sorted(pool.map(attempt, range(4)))
    assert handles == ["acme/crowd/1", "acme/crowd/2", "acme/crowd/3", "acme/crowd/4"]


@pytest.mark.slow  # several CLI processes (each imports torch for the local safety check)
def test_cli_login_publish_yank(
    live_hub: LiveHub, acme_token: str, feature_module: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    env = {"MODHUB_ENDPOINT": live_hub.url, "MODHUB_CONFIG_DIR": str(config)}
    env.pop("MODHUB_TOKEN", None)

    refused = _cli("login", env=env, stdin="mh_bogus\n")
    assert refused.returncode == 1 and "error:" in refused.stderr
    assert not token_path(config).exists()

    login = _cli("login", env=env, stdin=acme_token + "\n")
    assert login.returncode == 0, login.stderr
    path = token_path(config)
    assert json.loads(path.read_text()) == {"tokens": {live_hub.url: acme_token}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(Settings(token=None, endpoint=live_hub.url + "/"), config) == acme_token
    assert load_token(Settings(token="from-env"), config) == "from-env"  # MODHUB_TOKEN overrides
    # The stored token is bound to its hub: another endpoint never gets it.
    assert load_token(Settings(token=None, endpoint="http://evil.example:8000"), config) is None
    elsewhere = _cli(
        "publish", str(feature_module), "acme/cli-mod", "--endpoint", "http://127.0.0.1:9", env=env
    )
    assert elsewhere.returncode == 1 and "needs an API token for http://127.0.0.1:9" in elsewhere.stderr

    published = _cli("publish", str(feature_module), "acme/cli-mod", "--version", "2", env=env)
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == "acme/cli-mod/2"
    again = _cli("publish", str(feature_module), "acme/cli-mod", "--version", "2", env=env)
    assert again.returncode == 1 and "already published" in again.stderr

    yanked = _cli("yank", "acme/cli-mod/2", "--reason", "test", env=env)
    assert yanked.returncode == 0, yanked.stderr
    latest = httpx.get(f"{live_hub.url}{API}/modules/acme/cli-mod/versions/latest")
    assert latest.status_code == 404

    assert _cli("logout", env=env).returncode == 0
    assert not path.exists()
    no_token = _cli("publish", str(feature_module), "acme/cli-mod", env=env)
    assert no_token.returncode == 1 and "modhub login" in no_token.stderr


def test_yank_function(live_hub: LiveHub, acme_token: str, feature_module: Path) -> None:
    publish(feature_module, "acme/to-yank", settings=_settings(live_hub, acme_token))
    result = yank("acme/to-yank/1", reason="bad", settings=_settings(live_hub, acme_token))
    assert result["yanked"] is True
    url = f"{live_hub.url}{API}/modules/acme/to-yank/versions/1"
    assert httpx.get(url, headers=client_headers()).json()["yanked"] is True


def test_restart_keeps_data_and_migrations_are_idempotent(
    live_hub: LiveHub, acme_token: str, feature_module: Path
) -> None:
    publish(feature_module, "acme/persist", settings=_settings(live_hub, acme_token))
    live_hub.stop()
    live_hub.start()
    response = httpx.get(f"{live_hub.url}{API}/modules/acme/persist")
    assert response.status_code == 200
    assert response.json()["latest_version"] == 1
    # Starting is fast enough for `make serve` (imports + migrations check).
    assert live_hub.startup_s < 30


def test_admin_list_and_revoke_tokens(live_hub: LiveHub) -> None:
    token = live_hub.admin("--publisher", "temp")
    me = httpx.get(f"{live_hub.url}{API}/tokens/me", headers={"Authorization": f"Bearer {token}"}).json()
    listing = live_hub.admin(command="list-tokens")
    assert f"{me['id']}\tactive\ttemp" in listing
    assert token not in listing
    live_hub.admin(str(me["id"]), command="revoke-token")
    response = httpx.get(f"{live_hub.url}{API}/tokens/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_size_limit_over_real_http(feature_module: Path, tmp_path: Path) -> None:
    """A server with small limits refuses early (413), and the client raises HubHTTPError saying so."""
    from modhub.errors import HubHTTPError

    graph = (feature_module / "graph.pt2").stat().st_size
    hub = LiveHub(tmp_path / "small", env={"MODHUB_SERVER_MAX_FILE_BYTES": str(graph - 1)})
    hub.start()
    try:
        token = hub.admin("--publisher", "acme")
        with pytest.raises(HubHTTPError, match="MODHUB_SERVER_MAX_FILE_BYTES") as info:
            publish(feature_module, "acme/big", settings=_settings(hub, token))
        assert info.value.status == 413
        assert list((hub.data_dir / "tmp").iterdir()) == []
    finally:
        hub.stop()


def test_admin_create_token_needs_a_scope(tmp_path: Path) -> None:
    result = _cli("admin", "create-token", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "publisher" in result.stderr
    admin = _cli("admin", "create-token", "--data-dir", str(tmp_path / "d"), "--admin")
    assert admin.returncode == 0 and admin.stdout.strip().startswith("mh_")
    assert "admin" in admin.stderr
    assert os.path.isfile(tmp_path / "d" / "modhub.db")


def test_stored_tokens_are_bound_to_their_hub(tmp_path: Path) -> None:
    from modhub.client.tokens import endpoint_key, forget_token, save_token

    config = tmp_path / "config"
    assert endpoint_key("HTTP://Hub.Example:80/prefix/") == "http://hub.example/prefix"
    assert endpoint_key("https://hub.example:443") == "https://hub.example"
    assert endpoint_key("http://[::1]:8000") == "http://[::1]:8000"
    save_token("mh_one", config, endpoint="http://a.example:8000")
    save_token("mh_two", config, endpoint="https://b.example")
    assert load_token(Settings(token=None, endpoint="http://a.example:8000/"), config) == "mh_one"
    assert load_token(Settings(token=None, endpoint="https://b.example:443"), config) == "mh_two"
    for other in (
        "http://b.example",
        "https://a.example:8000",
        "http://a.example:8001",
        "http://a.example:8000/x",
    ):
        assert load_token(Settings(token=None, endpoint=other), config) is None, other
    assert forget_token("http://a.example:8000", config)
    assert load_token(Settings(token=None, endpoint="http://a.example:8000"), config) is None
    assert forget_token("https://b.example", config) and not token_path(config).exists()
    # A file from an older modhub (one bare token, no hub) is never sent anywhere.
    token_path(config).write_text("mh_legacy\n")
    assert load_token(Settings(token=None, endpoint="http://a.example:8000"), config) is None
