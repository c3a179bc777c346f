"""Signed modules through a real hub: publish modhub.sig, serve it, resolve and load with trusted keys.

``modhub serve`` runs in a subprocess on loopback; keygen, sign and publish are the CLI;
``hub.load`` resolves from the hub into a fresh cache with ``MODHUB_TRUSTED_KEYS``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import modhub as hub
from modhub.errors import UnsafeModuleError
from modhub.exporting.signing import generate_keys, sign_module
from modhub.format.manifest import SIGNATURE_NAME
from modhub.format.signature import fingerprint
from modhub.settings import Settings
from tests.harness import API, LiveHub, database_env, running_hub, serve_env
from tests.server.conftest import auth, error_code, multipart

pytestmark = pytest.mark.slow


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modhub", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**serve_env(), **env},
        timeout=300,
    )


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[tuple[LiveHub, str]]:
    """A hub on SQLite, and on PostgreSQL (migration 0017's columns on both)."""
    data = tmp_path_factory.mktemp("signed-hub") / "data"
    data.mkdir()
    with running_hub(data, database_env(module_database_url), token_for="acme") as server:
        yield server, server.token


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Alice's pair (made with the CLI) and Mallory's, whom nobody trusts."""
    root = tmp_path_factory.mktemp("signed-keys")
    done = _cli("keygen", str(root / "alice.key"), env={})
    assert done.returncode == 0, done.stderr
    generate_keys(root / "mallory.key")
    return root / "alice.key", root / "alice.pub", root / "mallory.pub"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for path in dst.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst


def _publish(
    live: tuple[LiveHub, str], module: Path, repo: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    server, token = live
    return _cli(
        "publish", str(module), repo, *extra, env={"MODHUB_ENDPOINT": server.url, "MODHUB_TOKEN": token}
    )


def _trusting(live: tuple[LiveHub, str], cache: Path, trusted: Path | None) -> Settings:
    return Settings(endpoint=live[0].url, cache=cache, trusted_keys=trusted)


def test_signed_module_round_trip(
    live: tuple[LiveHub, str], keys: tuple[Path, Path, Path], image_module: Path, tmp_path: Path
) -> None:
    alice_key, alice_pub, mallory_pub = keys
    module = _copy(image_module, tmp_path / "signed")
    assert _cli("sign", str(module), "--key", str(alice_key), env={}).returncode == 0

    # Signed but no public key: the client says what to pass, and nothing is sent.
    refused = _publish(live, module, "acme/signed")
    assert refused.returncode != 0 and "--signing-key" in refused.stderr
    done = _publish(live, module, "acme/signed", "--signing-key", str(alice_pub))
    assert done.returncode == 0, done.stderr
    handle = done.stdout.strip().splitlines()[-1]
    assert handle == "acme/signed/1"

    # The API says who signed it; the signature is a file of the version, byte for byte.
    url = live[0].url
    detail = httpx.get(f"{url}{API}/modules/acme/signed/versions/1").json()
    print_ = fingerprint(alice_pub.read_bytes())
    sig = (module / SIGNATURE_NAME).read_bytes()
    assert detail["signature"] == {
        "fingerprint": print_,
        "sha256": hashlib.sha256(sig).hexdigest(),
        "size": len(sig),
    }
    served = httpx.get(f"{url}{API}/modules/acme/signed/versions/1/files/{SIGNATURE_NAME}")
    assert served.status_code == 200 and served.content == sig
    # The Hugging Face protocol lists and serves it too: a snapshot verifies as a hub load does.
    tree = httpx.get(f"{url}/api/models/acme/signed/tree/main").json()
    assert SIGNATURE_NAME in [item["path"] for item in tree]
    assert httpx.get(f"{url}/acme/signed/resolve/main/{SIGNATURE_NAME}").content == sig

    # Resolved from the hub with Alice trusted: loads, and says who signed it.
    loaded = hub.load(handle, settings=_trusting(live, tmp_path / "cache-a", alice_pub))
    assert loaded.signed_by == print_
    assert (
        hub.resolve(handle, settings=_trusting(live, tmp_path / "cache-a", alice_pub)) / SIGNATURE_NAME
    ).is_file()
    # Only Mallory trusted: the same module is refused.
    with pytest.raises(UnsafeModuleError, match="not a valid signature"):
        hub.load(handle, settings=_trusting(live, tmp_path / "cache-m", mallory_pub))

    # The page shows the signer.
    page = httpx.get(f"{url}/acme/signed/1", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Signed by" in page.text and print_ in page.text


def test_unsigned_module_from_the_hub_is_refused_with_trusted_keys(
    live: tuple[LiveHub, str], keys: tuple[Path, Path, Path], image_module: Path, tmp_path: Path
) -> None:
    done = _publish(live, image_module, "acme/unsigned")
    assert done.returncode == 0, done.stderr
    handle = done.stdout.strip().splitlines()[-1]
    detail = httpx.get(f"{live[0].url}{API}/modules/acme/unsigned/versions/1").json()
    assert detail["signature"] is None
    assert (
        httpx.get(f"{live[0].url}{API}/modules/acme/unsigned/versions/1/files/{SIGNATURE_NAME}").status_code
        == 404
    )
    with pytest.raises(UnsafeModuleError, match="is not signed"):
        hub.load(handle, settings=_trusting(live, tmp_path / "cache", keys[1]))
    assert hub.load(handle, settings=_trusting(live, tmp_path / "cache", None)).signed_by is None


def test_signature_by_another_key_is_refused_at_publish(
    live: tuple[LiveHub, str], keys: tuple[Path, Path, Path], image_module: Path, tmp_path: Path
) -> None:
    alice_key, _, mallory_pub = keys
    module = _copy(image_module, tmp_path / "m")
    sign_module(module, alice_key)
    done = _publish(live, module, "acme/claimed", "--signing-key", str(mallory_pub))
    assert done.returncode != 0
    assert "not a valid model-signing signature" in done.stderr
    assert httpx.get(f"{live[0].url}{API}/modules/acme/claimed").status_code == 404


def _raw_publish(
    live: tuple[LiveHub, str], module: Path, repo: str, signature: bytes, key: bytes
) -> httpx.Response:
    server, token = live
    parts = multipart(module)
    parts += [("signature", (SIGNATURE_NAME, signature)), ("signing_key", ("k.pub", key))]
    return httpx.post(
        f"{server.url}{API}/modules/{repo}/versions", files=parts, headers=auth(token), timeout=60
    )


def test_tampered_signature_is_refused_at_publish(
    live: tuple[LiveHub, str], keys: tuple[Path, Path, Path], image_module: Path, tmp_path: Path
) -> None:
    alice_key, alice_pub, _ = keys
    module = _copy(image_module, tmp_path / "m")
    sign_module(module, alice_key)
    sig = (module / SIGNATURE_NAME).read_bytes()
    pub = alice_pub.read_bytes()
    # A byte of the bundle flipped, garbage, and a key that is not a key: 422 or 400, nothing stored.
    flipped = bytearray(sig)
    flipped[len(flipped) // 2] ^= 0x01
    for signature, key in ((bytes(flipped), pub), (b"{}", pub), (sig, b"not a key")):
        response = _raw_publish(live, module, "acme/tampered", signature, key)
        assert response.status_code == 422, response.text
        assert error_code(response) == "invalid_signature"
    # A valid signature of other bytes: a file changed after signing.
    other = _copy(image_module, tmp_path / "other")
    (other / "labels.txt").write_text("ant\nbee\ncat\ndog\nfox\n")
    sign_module_allowing_change(other, alice_key)
    response = _raw_publish(live, module, "acme/tampered", (other / SIGNATURE_NAME).read_bytes(), pub)
    assert response.status_code == 422 and "does not cover" in response.text
    # Only one of the two parts: 400.
    server, token = live
    half = httpx.post(
        f"{server.url}{API}/modules/acme/tampered/versions",
        files=[*multipart(module), ("signature", (SIGNATURE_NAME, sig))],
        headers=auth(token),
    )
    assert half.status_code == 400 and error_code(half) == "invalid_signature"
    assert httpx.get(f"{server.url}{API}/modules/acme/tampered").status_code == 404


def sign_module_allowing_change(module: Path, key: Path) -> None:
    """Sign a module whose labels changed: relist it first so that it is a valid module."""
    from tests.server.conftest import relist

    relist(module)
    sign_module(module, key)


def test_signature_of_a_private_module_stays_hidden(
    live: tuple[LiveHub, str], keys: tuple[Path, Path, Path], image_module: Path, tmp_path: Path
) -> None:
    module = _copy(image_module, tmp_path / "m")
    sign_module(module, keys[0])
    done = _publish(live, module, "acme/secret-signed", "--private", "--signing-key", str(keys[1]))
    assert done.returncode == 0, done.stderr
    url = f"{live[0].url}{API}/modules/acme/secret-signed/versions/1/files/{SIGNATURE_NAME}"
    assert httpx.get(url).status_code == 404
    seen = httpx.get(url, headers=auth(live[1]))
    assert seen.status_code == 200 and seen.content == (module / SIGNATURE_NAME).read_bytes()
