"""API tokens: created with a random secret shown once, stored as its sha256, scoped to publishers.

A token secret looks like ``mh_<43 url-safe characters>``. Admin tokens may
act for every publisher and manage every token; other tokens publish and yank
only under their publishers, and may create narrower tokens for those.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from modhub.errors import InvalidHandle
from modhub.handles import validate_name
from modhub.server.errors import BadRequest, Forbidden, NotFound, Unauthorized
from modhub.server.models import Token, utcnow
from modhub.server.services.schemas import CreatedToken, RevokedToken, TokenInfo, TokenRow

TOKEN_PREFIX = "mh_"
_LOGIN_HINT = (
    "Run `modhub login` (or set MODHUB_TOKEN) with a token for this hub; the hub's operator "
    "creates one with `modhub admin create-token --data-dir DIR --publisher NAME`."
)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(token: Token) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        name=token.name,
        publishers=list(token.publishers),
        admin=token.admin,
        created_at=token.created_at,
    )


def create_token(
    session: Session,
    *,
    name: str = "",
    publishers: Iterable[str] = (),
    admin: bool = False,
    created_by: Token | None = None,
) -> CreatedToken:
    """Create a token and return it with its secret (the only time the secret is available).

    ``created_by`` None means the server operator (CLI); otherwise the creator
    must be admin to create admin tokens, and may grant only publishers it holds.
    The caller commits.
    """
    scopes = sorted(set(publishers))
    for publisher in scopes:
        try:
            validate_name(publisher, "publisher name")
        except InvalidHandle as exc:
            raise BadRequest(str(exc), code="invalid_name") from None
    if not admin and not scopes:
        raise BadRequest(
            "a token needs at least one publisher (publishers: ['name']) or admin: true",
            code="invalid_request",
        )
    if created_by is not None and not created_by.admin:
        if admin:
            raise Forbidden("only an admin token can create admin tokens", code="forbidden")
        missing = [p for p in scopes if p not in created_by.publishers]
        if missing:
            raise Forbidden(
                f"your token may not grant publishers {missing}; it holds {sorted(created_by.publishers)}",
                code="forbidden",
            )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        name=name,
        token_hash=hash_token(secret),
        publishers=scopes,
        admin=admin,
        created_by_id=created_by.id if created_by is not None else None,
    )
    session.add(token)
    session.flush()
    return CreatedToken(**_info(token).model_dump(), token=secret)


def authenticate(session: Session, authorization: str | None) -> Token:
    """The token named by an ``Authorization: Bearer <secret>`` header, or Unauthorized."""
    if not authorization:
        raise Unauthorized(f"this needs an API token. {_LOGIN_HINT}", code="auth_required")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized(
            f"send the token as 'Authorization: Bearer <token>'. {_LOGIN_HINT}", code="auth_required"
        )
    token = session.scalar(select(Token).where(Token.token_hash == hash_token(secret)))
    if token is None or token.revoked_at is not None:
        raise Unauthorized(
            f"the hub does not accept this token (unknown or revoked). {_LOGIN_HINT}", code="invalid_token"
        )
    return token


def require_publisher(token: Token, publisher: str) -> None:
    if token.admin or publisher in token.publishers:
        return
    held = ", ".join(sorted(token.publishers)) or "none"
    raise Forbidden(
        f"this token may publish only under: {held}; not under {publisher!r}. Ask the hub's operator "
        f"for a token scoped to {publisher!r} (modhub admin create-token --publisher {publisher}).",
        code="forbidden",
    )


def describe(token: Token) -> TokenInfo:
    return _info(token)


def revoke_token(session: Session, token_id: int, *, by: Token) -> RevokedToken:
    """Revoke a token: admins any, others themselves or tokens they created. The caller commits."""
    target = session.get(Token, token_id)
    if target is None:
        raise NotFound(f"no token with id {token_id}", code="token_not_found")
    if not (by.admin or target.id == by.id or target.created_by_id == by.id):
        raise Forbidden("you may revoke only your own token or tokens it created", code="forbidden")
    if target.revoked_at is None:
        target.revoked_at = utcnow()
    return RevokedToken(id=target.id, revoked=True)


def revoke_token_as_operator(session: Session, token_id: int) -> None:
    """Revoke any token (the server operator, from the CLI). The caller commits."""
    target = session.get(Token, token_id)
    if target is None:
        raise NotFound(f"no token with id {token_id}", code="token_not_found")
    if target.revoked_at is None:
        target.revoked_at = utcnow()


def list_tokens(session: Session) -> list[TokenRow]:
    """Every token, oldest first (no secrets: only their hashes are stored)."""
    return [
        TokenRow(**_info(t).model_dump(), revoked=t.revoked_at is not None)
        for t in session.scalars(select(Token).order_by(Token.id))
    ]
