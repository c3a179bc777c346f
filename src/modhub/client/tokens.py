"""The API token ``modhub login`` stores, bound to the hub it was stored for.

The token comes from ``MODHUB_TOKEN`` (``Settings.token``) or else from the
file ``modhub login`` writes: ``<config dir>/token``, mode 0600, where the
config dir is ``$MODHUB_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/modhub``, else
``~/.config/modhub``. A stored token is bound to the hub it was stored for
(``{"tokens": {"<endpoint>": "<token>"}}``): it is sent only to that hub, so
``modhub publish --endpoint X`` never hands one hub's token to another.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from modhub.errors import AuthenticationError
from modhub.format.atomic import write_text
from modhub.handles import hub_key as endpoint_key  # the hub a token belongs to
from modhub.settings import Settings

__all__ = [
    "config_dir",
    "endpoint_key",
    "forget_token",
    "load_token",
    "require_token",
    "save_token",
    "token_path",
]

TOKEN_FILE = "token"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``modhub login`` keeps the token (read from the environment when called, not at import)."""
    env = os.environ if environ is None else environ
    if env.get("MODHUB_CONFIG_DIR"):
        return Path(env["MODHUB_CONFIG_DIR"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modhub"


def token_path(directory: Path | None = None) -> Path:
    return (directory if directory is not None else config_dir()) / TOKEN_FILE


def _read_tokens(path: Path) -> dict[str, str]:
    """Stored tokens by hub; a file from an older modhub (one bare token, no hub) yields none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, dict):
        return {}
    return {str(k): str(v) for k, v in tokens.items() if isinstance(v, str) and v}


def _write_tokens(target: Path, tokens: dict[str, str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Mode 0600 from the file's creation on: the secret is never readable by others.
    write_text(target, json.dumps({"tokens": tokens}, indent=1, sort_keys=True) + "\n", mode=0o600)


def save_token(token: str, directory: Path | None = None, *, endpoint: str) -> Path:
    """Store ``token`` for the hub at ``endpoint`` (mode 0600, written atomically); return the file."""
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise AuthenticationError(
            "that is not a token: paste the single line `modhub admin create-token` printed"
        )
    target = token_path(directory)
    tokens = _read_tokens(target)
    tokens[endpoint_key(endpoint)] = token
    _write_tokens(target, tokens)
    return target


def forget_token(endpoint: str, directory: Path | None = None) -> bool:
    """Remove the token stored for ``endpoint`` (the file goes with the last one); whether one was."""
    target = token_path(directory)
    tokens = _read_tokens(target)
    found = tokens.pop(endpoint_key(endpoint), None) is not None
    if tokens:
        _write_tokens(target, tokens)
    else:
        target.unlink(missing_ok=True)
    return found


def load_token(settings: Settings, directory: Path | None = None) -> str | None:
    """``MODHUB_TOKEN`` if set, else the token stored for ``settings.endpoint``, else None."""
    if settings.token:
        return settings.token.strip()
    return _read_tokens(token_path(directory)).get(endpoint_key(settings.endpoint))


def require_token(settings: Settings, directory: Path | None = None) -> str:
    """The token for publishing (see ``load_token``), or ``AuthenticationError`` saying how to get one."""
    token = load_token(settings, directory)
    if token is None:
        raise AuthenticationError(
            f"publishing needs an API token for {endpoint_key(settings.endpoint)}: run `modhub login "
            "--endpoint URL` for that hub (a stored token is only ever sent to the hub it was stored "
            "for), or set MODHUB_TOKEN. The hub's operator creates one with `modhub admin "
            "create-token --data-dir DIR --publisher NAME`."
        )
    return token
