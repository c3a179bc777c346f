"""Signed modules: keygen, sign (offline, model-signing EC keys), loads that need a trusted signature."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import modhub as hub
from modhub.errors import UnsafeModuleError
from modhub.exporting.signing import generate_keys, sign_module
from modhub.format.manifest import SIGNATURE_NAME, list_files, read_manifest, write_manifest
from modhub.format.signature import fingerprint
from modhub.settings import Settings


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modhub", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A trusted pair made with the CLI, and another public key nobody trusts."""
    root = tmp_path_factory.mktemp("keys")
    done = _cli("keygen", str(root / "alice.key"))
    assert done.returncode == 0, done.stderr
    assert "fingerprint: sha256:" in done.stdout
    assert (root / "alice.key").stat().st_mode & 0o077 == 0
    _, mallory_pub, _ = generate_keys(root / "mallory.key")
    return root / "alice.key", root / "alice.pub", mallory_pub


@pytest.fixture
def signed(image_module: Path, keys: tuple[Path, Path, Path], tmp_path: Path) -> Path:
    module = tmp_path / "signed"
    shutil.copytree(image_module, module)
    for path in module.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert sign_module(module, keys[0]) == module / SIGNATURE_NAME
    return module


def test_modhub_sign_on_the_command_line(
    image_module: Path, keys: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    module = tmp_path / "m"
    shutil.copytree(image_module, module)
    done = _cli("sign", str(module), "--key", str(keys[0]))
    assert done.returncode == 0, done.stderr
    assert hub.load(module, settings=_settings(keys[1])).signed_by == fingerprint(keys[1].read_bytes())


def _settings(trusted: Path) -> Settings:
    return Settings(trusted_keys=trusted)


def test_a_signed_module_loads_and_says_who_signed_it(signed: Path, keys: tuple[Path, Path, Path]) -> None:
    module = hub.load(signed, settings=_settings(keys[1]))
    assert module.signed_by == fingerprint(keys[1].read_bytes())
    assert hub.resolve(signed, settings=_settings(keys[1].parent)) == signed  # a directory of keys works


def test_without_trusted_keys_signatures_are_not_required(image_module: Path) -> None:
    assert hub.load(image_module).signed_by is None


def test_unsigned_and_wrongly_signed_modules_are_refused(
    image_module: Path, signed: Path, keys: tuple[Path, Path, Path]
) -> None:
    with pytest.raises(UnsafeModuleError, match="not signed"):
        hub.load(image_module, settings=_settings(keys[1]))
    with pytest.raises(UnsafeModuleError, match="not a valid signature by any key"):
        hub.load(signed, settings=_settings(keys[2]))
    with pytest.raises(UnsafeModuleError, match="not signed"):
        hub.resolve(image_module, settings=_settings(keys[1]))


def test_the_stock_model_signing_verifier_accepts_the_signature(
    signed: Path, keys: tuple[Path, Path, Path]
) -> None:
    from model_signing import verifying

    verifying.Config().use_elliptic_key_verifier(public_key=keys[1]).verify(signed, signed / SIGNATURE_NAME)


@pytest.mark.parametrize(
    "victim", ["graph.pt2", "assets/labels.txt", "README.md", "model.onnx", "modhub.json"]
)
def test_tampering_any_file_of_a_signed_module_is_refused(
    signed: Path, keys: tuple[Path, Path, Path], victim: str
) -> None:
    """Changed bytes and a manifest re-hashed to match (what an attacker controlling the files does)."""
    path = signed / victim
    if victim == "modhub.json":
        manifest = read_manifest(signed)
        write_manifest(signed, manifest.model_copy(update={"license": "Proprietary"}))
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        manifest = read_manifest(signed)
        write_manifest(signed, manifest.model_copy(update={"files": list_files(signed)}))
    with pytest.raises(UnsafeModuleError, match=r"changed after it was signed|not a valid signature"):
        hub.load(signed, settings=_settings(keys[1]))


def test_signing_refuses_a_broken_module_and_a_missing_key(image_module: Path, tmp_path: Path) -> None:
    with pytest.raises(hub.HubError, match="keygen"):
        sign_module(image_module, tmp_path / "nope.key")
    assert _cli("sign", str(tmp_path), "--key", str(tmp_path / "nope.key")).returncode == 1
