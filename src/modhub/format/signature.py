"""Checking signed modules: OpenSSF ``model-signing`` with elliptic-curve keys, fully offline.

``modhub keygen`` writes a P-256 key pair; ``modhub sign DIR --key KEY`` signs
the module directory with ``model_signing`` (key-based signer, never the
Sigstore network path) into ``DIR/modhub.sig``, a Sigstore bundle that the
stock ``model_signing verify key`` command also checks. The signature covers
every file, ``modhub.json`` included; ``modhub.sig`` is not a listed file.

Checking at load costs no second read of the module: the signed statement
lists a sha256 per file, and :func:`check_signature` compares it with the
bytes of ``modhub.json`` that were read and the sha256s that manifest lists
(which :func:`modhub.format.verify.read_module_file` checks on every read).
With trusted keys configured (``MODHUB_TRUSTED_KEYS``), an unsigned module or
one signed by another key is refused with :class:`UnsafeModuleError`.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modhub.errors import SigningError, UnsafeModuleError
from modhub.format._files import MAX_SIGNATURE_BYTES
from modhub.format.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, is_hidden

__all__ = [
    "SignatureInfo",
    "check_published_signature",
    "check_signature",
    "fingerprint",
    "load_trusted_keys",
]


@dataclass(frozen=True)
class SignatureInfo:
    """Who signed a module: the sha256 fingerprint of the public key (SubjectPublicKeyInfo DER)."""

    fingerprint: str
    key_path: Path


def fingerprint(public_key_pem: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_key_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_trusted_keys(location: Path) -> list[Path]:
    """The public keys (PEM) in a file or a directory (``*.pub``, ``*.pem``)."""
    location = Path(location).expanduser()
    if location.is_dir():
        keys = sorted(p for p in location.iterdir() if p.suffix in (".pub", ".pem") and p.is_file())
    elif location.is_file():
        keys = [location]
    else:
        raise SigningError(f"MODHUB_TRUSTED_KEYS names {location}, which does not exist", path=location)
    if not keys:
        raise SigningError(f"no public keys (*.pub, *.pem) in {location}", path=location)
    return keys


def _signed_digests(signature: bytes, key: Path) -> dict[str, str] | None:
    """The per-file sha256 the signature vouches for, if ``key`` made it; None otherwise."""
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    with tempfile.TemporaryDirectory() as tmp:
        sig_path = Path(tmp) / SIGNATURE_NAME
        sig_path.write_bytes(signature)
        try:
            parsed = sign_sigstore_pb.Signature.read(sig_path)
            manifest = sign_ec_key.Verifier(key).verify(parsed)
        except Exception:  # model_signing raises ValueError, KeyError, InvalidSignature, ...
            return None
    if manifest.serialization_type.get("method") != "files":
        return None
    digests = {}
    for descriptor in manifest.resource_descriptors():
        if is_hidden(descriptor.identifier):
            continue  # hidden files are not part of a module (tools' and caches' own)
        if descriptor.digest.algorithm != "sha256":
            return None
        digests[descriptor.identifier] = descriptor.digest.digest_hex
    return digests


def _changed_files(manifest: Manifest, manifest_bytes: bytes, digests: dict[str, str]) -> list[str]:
    """The paths whose signed sha256 differs from the module's (``modhub.json`` and every listed file)."""
    expected = {MANIFEST_NAME: hashlib.sha256(manifest_bytes).hexdigest()}
    expected.update({entry.path: entry.sha256 for entry in manifest.files})
    return sorted(p for p in expected.keys() | digests.keys() if expected.get(p) != digests.get(p))


def check_published_signature(
    signature: bytes, public_key_pem: bytes, manifest: Manifest, manifest_bytes: bytes
) -> str:
    """The hub's check at publish: ``public_key_pem`` signed exactly this module; returns its fingerprint.

    Raises :class:`SigningError` (a key that is not a P-256/P-384 public key, a
    signature it did not make, or one that covers other files than the manifest's).
    """
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise SigningError(f"{SIGNATURE_NAME} is over {MAX_SIGNATURE_BYTES} bytes")
    try:
        print_ = fingerprint(public_key_pem)
    except (ValueError, TypeError):
        raise SigningError(
            "the signing key is not a PEM public key; send the .pub file modhub keygen wrote"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        key_path = Path(tmp) / "signer.pub"
        key_path.write_bytes(public_key_pem)
        digests = _signed_digests(signature, key_path)
    if digests is None:
        raise SigningError(
            f"{SIGNATURE_NAME} is not a valid model-signing signature by the key {print_}. Sign the "
            "module again (modhub sign DIR --key KEY) and publish with that key's public half."
        )
    changed = _changed_files(manifest, manifest_bytes, digests)
    if changed:
        raise SigningError(
            f"{SIGNATURE_NAME} does not cover the published files as they are: {changed[:5]}. The module "
            "changed after it was signed; sign it again (modhub sign DIR --key KEY), then publish."
        )
    return print_


def check_signature(
    root: Path, manifest: Manifest, manifest_bytes: bytes, signature: bytes | None, keys: list[Path]
) -> SignatureInfo:
    """Raise UnsafeModuleError unless one of ``keys`` signed exactly this module."""
    if signature is None:
        raise UnsafeModuleError(
            f"{root} is not signed, and MODHUB_TRUSTED_KEYS asks for modules signed by a trusted key. "
            "Ask the publisher for a signed version (modhub sign DIR --key KEY), or unset "
            "MODHUB_TRUSTED_KEYS to load unsigned modules.",
            path=root,
        )
    for key in keys:
        digests = _signed_digests(signature, key)
        if digests is None:
            continue
        changed = _changed_files(manifest, manifest_bytes, digests)
        if changed:
            raise UnsafeModuleError(
                f"{root}: the signature by {fingerprint(key.read_bytes())} does not cover these files as "
                f"they are: {changed[:5]}. The module was changed after it was signed; do not use it.",
                path=root,
            )
        return SignatureInfo(fingerprint(key.read_bytes()), key)
    raise UnsafeModuleError(
        f"{root}: {SIGNATURE_NAME} is not a valid signature by any key in MODHUB_TRUSTED_KEYS "
        f"({len(keys)} key(s)). Check that you trust the publisher's public key, or ask for a module "
        "signed with it.",
        path=root,
    )
