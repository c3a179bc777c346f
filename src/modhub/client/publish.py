"""Publish a module directory to a hub (the client's side of ``modhub.server.services.publishing``).

``publish`` checks the module locally first (manifest, every file's size and
sha256, the task contract, the graph safety validator: the same checks the
hub repeats), then uploads it as one streamed multipart request. Errors from
the hub go through ``modhub.client.api.raise_for_status``.

The API token comes from :mod:`modhub.client.tokens`.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from modhub.client.api import API_PREFIX, open_http_client, raise_for_status, request
from modhub.client.tokens import require_token
from modhub.errors import InvalidHandle, ManifestError, SigningError
from modhub.format.manifest import MANIFEST_NAME, SIGNATURE_NAME
from modhub.format.verify import check_module, read_signature
from modhub.handles import Handle, parse_handle, parse_version
from modhub.settings import Settings

__all__ = [
    "publish",
    "repo_handle",
    "set_visibility",
    "whoami",
    "yank",
]


def repo_handle(repo: str) -> Handle:
    """``publisher/name`` (optionally with a version) as a Handle; a URL is refused (``InvalidHandle``)."""
    handle = parse_handle(repo)
    if handle.endpoint is not None:
        raise InvalidHandle(
            f"give publisher/name, not a URL ({repo!r}); choose the hub with MODHUB_ENDPOINT or --endpoint",
            handle=repo,
        )
    return handle


# The old private names, used below.
_require_token = require_token
_repo = repo_handle


def publish(
    module_dir: str | os.PathLike[str],
    repo: str,
    *,
    version: int | None = None,
    private: bool | None = None,
    signing_key: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    config: Path | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """Upload ``module_dir`` as ``repo`` (``publisher/name``) and return the published handle.

    ``version`` None takes the next number; a given version must not exist yet
    (versions never change). ``private`` True makes the module private (only
    tokens that may read for the publisher see it), False public; None keeps
    its visibility (a new module is public). A module signed with ``modhub sign``
    (``DIR/modhub.sig``) is published signed: ``signing_key`` is the public key
    (``KEY.pub``) the hub checks the signature with. Raises the modhub error that says what to fix.
    """
    handle = _repo(repo)
    if handle.version is not None:
        if version is not None and version != handle.version:
            raise InvalidHandle(
                f"{repo!r} names version {handle.version} but --version is {version}", handle=repo
            )
        version = handle.version
    if version is not None:
        version = parse_version(version, handle=repo)
    settings = settings if settings is not None else Settings.from_env()
    root = Path(module_dir)
    if root.is_file():
        raise ManifestError(
            f"{root} is a file, not a module directory. Wrap a model file into a module first: "
            f"hub.wrap_onnx({str(root)!r}, OUT_DIR, task=..., license=...), or let the command do it: "
            f"modhub publish {root} {repo} --task TASK --license SPDX",
            path=root,
        )
    manifest = check_module(root)
    signature = read_signature(root)
    if signature is not None and signing_key is None:
        raise SigningError(
            f"{root} is signed ({SIGNATURE_NAME}); pass its public key so the hub can check it: "
            "modhub publish DIR REPO --signing-key KEY.pub",
            path=root / SIGNATURE_NAME,
        )
    if signature is None and signing_key is not None:
        raise SigningError(
            f"{root} has no {SIGNATURE_NAME}; sign it first (modhub sign DIR --key KEY) "
            "or drop --signing-key",
            path=root,
        )
    key = None
    if signing_key is not None:
        if not Path(signing_key).is_file():
            raise SigningError(f"no public key at {signing_key}; it is the KEY.pub modhub keygen wrote")
        key = Path(signing_key).read_bytes()
    token = _require_token(settings, config)
    url = f"{settings.endpoint.rstrip('/')}{API_PREFIX}/modules/{handle.publisher}/{handle.name}/versions"
    data = {"version": str(version)} if version is not None else {}
    if private is not None:
        data["private"] = "true" if private else "false"
    with ExitStack() as stack:
        files: list[tuple[str, Any]] = [
            (
                "manifest",
                (MANIFEST_NAME, stack.enter_context(open(root / MANIFEST_NAME, "rb")), "application/json"),
            )
        ]
        for entry in manifest.files:
            fh = stack.enter_context(open(root / entry.path, "rb"))
            files.append(("files", (entry.path, fh, "application/octet-stream")))
        if signature is not None and key is not None:
            files.append(("signature", (SIGNATURE_NAME, bytes(signature), "application/octet-stream")))
            files.append(("signing_key", ("signing_key.pub", key, "application/x-pem-file")))
        http = stack.enter_context(
            open_http_client(timeout=settings.timeout, token=token, transport=transport)
        )
        response = request(http, "POST", url, handle=handle.repo, data=data, files=files)
    raise_for_status(response, handle=handle.repo)
    return str(response.json()["handle"])


def yank(
    handle_text: str,
    *,
    reason: str = "",
    settings: Settings,
    config: Path | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Yank ``publisher/name/version``: hidden from "latest" and search, still downloadable by full handle."""
    handle = _repo(handle_text)
    if handle.version is None:
        raise InvalidHandle(
            f"yank needs a full handle publisher/name/version, not {handle_text!r}", handle=handle_text
        )
    token = _require_token(settings, config)
    url = (
        f"{settings.endpoint.rstrip('/')}{API_PREFIX}/modules/{handle.publisher}/{handle.name}"
        f"/versions/{handle.version}/yank"
    )
    with open_http_client(timeout=settings.timeout, token=token, transport=transport) as http:
        response = request(http, "POST", url, handle=str(handle), json={"reason": reason})
    raise_for_status(response, handle=str(handle))
    result: dict[str, Any] = response.json()
    return result


def set_visibility(
    repo: str,
    *,
    private: bool,
    settings: Settings,
    config: Path | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Make ``publisher/name`` private (True) or public (False); needs a token that may publish there."""
    handle = _repo(repo)
    if handle.version is not None:
        raise InvalidHandle(
            f"visibility belongs to the whole module: give publisher/name, not {repo!r}", handle=repo
        )
    token = _require_token(settings, config)
    url = f"{settings.endpoint.rstrip('/')}{API_PREFIX}/modules/{handle.publisher}/{handle.name}/visibility"
    with open_http_client(timeout=settings.timeout, token=token, transport=transport) as http:
        response = request(http, "PUT", url, handle=handle.repo, json={"private": private})
    raise_for_status(response, handle=handle.repo)
    result: dict[str, Any] = response.json()
    return result


def whoami(token: str, *, settings: Settings, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """What the hub knows about ``token`` (id, name, publishers, admin); AuthenticationError if nothing."""
    url = f"{settings.endpoint.rstrip('/')}{API_PREFIX}/tokens/me"
    with open_http_client(timeout=settings.timeout, token=token, transport=transport) as http:
        response = request(http, "GET", url)
    raise_for_status(response)
    result: dict[str, Any] = response.json()
    return result
