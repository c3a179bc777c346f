"""Signing modules: ``modhub keygen`` (a P-256 key pair) and ``modhub sign`` (OpenSSF model-signing).

``sign_module`` signs a module directory with ``model_signing``'s key-based
signer (offline, never the Sigstore network path) into ``DIR/modhub.sig``; the
checks of a signature at load and publish live in :mod:`modhub.format.signature`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modhub.errors import SigningError
from modhub.format.atomic import write_bytes
from modhub.format.manifest import SIGNATURE_NAME
from modhub.format.signature import fingerprint

__all__ = ["generate_keys", "sign_module"]


def generate_keys(private_path: Path, public_path: Path | None = None) -> tuple[Path, Path, str]:
    """Write a new P-256 private key (PEM, mode 0600) and its public key; returns paths and fingerprint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_path = Path(private_path)
    public_path = Path(public_path) if public_path is not None else private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise SigningError(f"{path} exists; choose another name or remove it first", path=path)
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path, fingerprint(public_pem)


def sign_module(module_dir: Path, private_key: Path) -> Path:
    """Sign a module directory into ``module_dir/modhub.sig`` (offline, EC key); returns its path.

    The module is checked first (a signature vouches for a module modhub would load).
    """
    from model_signing import hashing, signing

    from modhub.format.verify import check_module

    root = Path(module_dir)
    check_module(root)
    if not Path(private_key).is_file():
        raise SigningError(f"no private key at {private_key}; make one with modhub keygen", path=private_key)
    target = root / SIGNATURE_NAME
    config = hashing.Config().use_file_serialization(
        hashing_algorithm="sha256", ignore_paths=[Path(SIGNATURE_NAME)]
    )
    try:
        signer = signing.Config().use_elliptic_key_signer(private_key=private_key)
        # Signed outside the module (a temporary file inside it would be hashed too), then moved in.
        with tempfile.TemporaryDirectory() as tmp:
            signer.set_hashing_config(config).sign(root, Path(tmp) / SIGNATURE_NAME)
            data = (Path(tmp) / SIGNATURE_NAME).read_bytes()
    except (ValueError, TypeError) as exc:
        raise SigningError(f"cannot sign with {private_key}: {exc}", path=private_key) from None
    # Atomic, through a uniquely named temp file (two signers at once never mix their bytes).
    return write_bytes(target, data)
