"""API tokens: a random secret shown once, stored as its sha256, with a scope over publishers.

A token secret looks like ``mh_<43 url-safe characters>``. Every token has a
scope, each level including the ones before it:

    read     read the private modules of its publishers
    publish  read, plus publish and yank under its publishers
    admin    everything, for every publisher, and manage every token

A token may expire (``expires_at``), and remembers the token that created it
(``created_by_id``). A token can create only tokens narrower than itself (no
wider scope, a subset of its publishers, expiring no later than it does), and
revoking a token revokes every token it created, and theirs, in the same
transaction.

``allows(token, action, publisher)`` is the one place that answers "may this
token read/publish for publisher P"; ``require`` raises 403 when it may not.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from modhub.errors import InvalidHandle
from modhub.handles import validate_name
from modhub.server.errors import BadRequest, Forbidden, NotFound, Unauthorized
from modhub.server.models import Token, utcnow
from modhub.server.ratelimit import FailureLimiter
from modhub.server.services.schemas import (
    MAX_TOKEN_LIFETIME,
    CreatedToken,
    RevokedToken,
    Scope,
    TokenInfo,
    TokenRow,
)

TOKEN_PREFIX = "mh_"
SCOPES: tuple[Scope, ...] = get_args(Scope)
# What a route asks of a token (admin-only actions check ``token.scope == "admin"``).
Action = Literal["read", "publish"]
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
_LOGIN_HINT = (
    "Run `modhub login` (or set MODHUB_TOKEN) with a token for this hub; the hub's operator "
    "creates one with `modhub admin create-token --data-dir DIR --publisher NAME`."
)
# Token ids are 32-bit integers on every database; larger ids name no token (and must not reach SQL).
_MAX_ID = 2**31 - 1
_DURATION_RE = re.compile(r"^\s*([0-9]{1,12})\s*([smhdw])\s*$", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600s`` as a timedelta (ValueError saying the form)."""
    match = _DURATION_RE.match(text.lower())
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else 0
    if not match or not 0 < seconds <= MAX_TOKEN_LIFETIME:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit s, m, h, d or w (e.g. 30d, 12h), "
            f"at most {MAX_TOKEN_LIFETIME // 86400} days"
        )
    return timedelta(seconds=seconds)


def _info(token: Token) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        name=token.name,
        publishers=list(token.publishers),
        admin=token.admin,
        created_at=token.created_at,
        scope=token.scope,  # type: ignore[arg-type]
        expires_at=token.expires_at,
        created_by=token.created_by_id,
    )


def _scope_of(scope: Scope | None, admin: bool) -> Scope:
    if scope is None:
        return "admin" if admin else "publish"
    if admin and scope != "admin":
        raise BadRequest(f"admin: true contradicts scope {scope!r}; send one of them", code="invalid_request")
    if scope not in _RANK:
        raise BadRequest(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}", code="invalid_request")
    return scope


def create_token(
    session: Session,
    *,
    name: str = "",
    publishers: Iterable[str] = (),
    admin: bool = False,
    scope: Scope | None = None,
    expires_in: timedelta | None = None,
    created_by: Token | None = None,
) -> CreatedToken:
    """Create a token and return it with its secret (the only time the secret is available).

    ``created_by`` None means the server operator (CLI); otherwise the new token
    must be no wider than its creator: scope, publishers (default: the
    creator's) and lifetime. Without ``expires_in`` it expires with its creator
    (never, for the operator's tokens).
    The caller commits.
    """
    level = _scope_of(scope, admin)
    scopes = sorted(set(publishers))
    if not scopes and level != "admin" and created_by is not None:
        scopes = sorted(created_by.publishers)  # by default, the creator's publishers
    for publisher in scopes:
        try:
            validate_name(publisher, "publisher name")
        except InvalidHandle as exc:
            raise BadRequest(str(exc), code="invalid_name") from None
    if level != "admin" and not scopes:
        raise BadRequest(
            "a token needs at least one publisher (publishers: ['name']) or scope 'admin'",
            code="invalid_request",
        )
    now = utcnow()
    expires_at = now + expires_in if expires_in is not None else None
    if created_by is not None:
        if _RANK[level] > _RANK[_level(created_by)]:
            raise Forbidden(
                f"a {_level(created_by)!r} token may not create a {level!r} token; "
                "ask the hub's operator for a wider one",
                code="forbidden",
            )
        if not _is_admin(created_by):
            missing = [p for p in scopes if p not in created_by.publishers]
            if missing:
                held = sorted(created_by.publishers)
                raise Forbidden(
                    f"your token may not grant publishers {missing}; it holds {held}", code="forbidden"
                )
        if created_by.expires_at is not None:
            if expires_at is None:
                expires_at = created_by.expires_at
            elif expires_at > created_by.expires_at:
                raise Forbidden(
                    f"a token may not outlive the token that creates it (yours expires at "
                    f"{created_by.expires_at.isoformat()}); ask for a shorter expires_in",
                    code="forbidden",
                )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        name=name,
        token_hash=hash_token(secret),
        publishers=scopes,
        admin=level == "admin",
        scope=level,
        expires_at=expires_at,
        created_at=now,
        created_by_id=created_by.id if created_by is not None else None,
    )
    session.add(token)
    session.flush()
    return CreatedToken(**_info(token).model_dump(), token=secret)


def _level(token: Token) -> Scope:
    return "admin" if token.admin else token.scope  # type: ignore[return-value]


def _is_admin(token: Token) -> bool:
    return _level(token) == "admin"


def _unauthorized(message: str, code: str) -> Unauthorized:
    return Unauthorized(f"{message}. {_LOGIN_HINT}", code=code)


def authenticate(
    session: Session,
    authorization: str | None,
    *,
    limiter: FailureLimiter | None = None,
    client: str = "",
) -> Token:
    """The token named by an ``Authorization: Bearer <secret>`` header, or Unauthorized.

    With a ``limiter``, a ``client`` (address) that failed too often recently is
    refused with 429 before the token is even looked up, and every failure counts
    (written in the limiter's own transaction: ``session`` must not be one that holds
    the write lock).
    """
    if limiter is not None:
        limiter.check(session, client)
    try:
        return _authenticate(session, authorization)
    except Unauthorized:
        if limiter is not None:
            limiter.failed(client)
        raise


def authenticate_optional(
    session: Session,
    authorization: str | None,
    *,
    limiter: FailureLimiter | None = None,
    client: str = "",
) -> Token | None:
    """None when no ``Authorization`` header was sent (anonymous reader), else as ``authenticate``."""
    if not authorization:
        return None
    return authenticate(session, authorization, limiter=limiter, client=client)


def _authenticate(session: Session, authorization: str | None) -> Token:
    if not authorization:
        raise _unauthorized("this needs an API token", "auth_required")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise _unauthorized("send the token as 'Authorization: Bearer <token>'", "auth_required")
    token = session.scalar(select(Token).where(Token.token_hash == hash_token(secret)))
    if token is None or token.revoked_at is not None:
        raise _unauthorized("the hub does not accept this token (unknown or revoked)", "invalid_token")
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise _unauthorized(
            f"this token expired at {token.expires_at.isoformat()}; get a new one", "token_expired"
        )
    return token


def allows(token: Token | None, action: Action, publisher: str) -> bool:
    """May ``token`` (None: anonymous) ``read`` private modules of / ``publish`` under ``publisher``?

    The one rule for every route. Public modules need no token to read; callers
    ask ``allows(token, "read", p)`` only for private ones.
    """
    if token is None:
        return False
    level = _level(token)
    if level == "admin":
        return True
    return _RANK[level] >= _RANK[action] and publisher in token.publishers


def require(token: Token, action: Action, publisher: str) -> None:
    """Forbidden (403) unless ``allows(token, action, publisher)``."""
    if allows(token, action, publisher):
        return
    held = ", ".join(sorted(token.publishers)) or "none"
    if publisher in token.publishers:
        raise Forbidden(
            f"this token has scope {_level(token)!r}; {action} under {publisher!r} needs scope "
            f"{action!r} or wider. Ask the hub's operator for one "
            f"(modhub admin create-token --publisher {publisher} --scope {action}).",
            code="forbidden",
        )
    raise Forbidden(
        f"this token may {action} only under: {held}; not under {publisher!r}. Ask the hub's operator "
        f"for a token scoped to {publisher!r} (modhub admin create-token --publisher {publisher}).",
        code="forbidden",
    )


def require_publisher(token: Token, publisher: str) -> None:
    """Forbidden unless ``token`` may publish (and yank) under ``publisher``."""
    require(token, "publish", publisher)


def describe(token: Token) -> TokenInfo:
    return _info(token)


def _revoke_tree(session: Session, root: Token) -> None:
    """Revoke ``root`` and every token it created, and theirs (breadth first)."""
    now = utcnow()
    frontier = [root.id]
    seen = set(frontier)
    if root.revoked_at is None:
        root.revoked_at = now
    while frontier:
        children = session.scalars(select(Token).where(Token.created_by_id.in_(frontier))).all()
        frontier = []
        for child in children:
            if child.id in seen:
                continue
            seen.add(child.id)
            frontier.append(child.id)
            if child.revoked_at is None:
                child.revoked_at = now
    session.flush()


def revoke_token(session: Session, token_id: int, *, by: Token) -> RevokedToken:
    """Revoke a token and its descendants: admins any, others themselves or tokens they created.

    The caller commits.
    """
    target = _find(session, token_id)
    if not (_is_admin(by) or target.id == by.id or _descends_from(session, target, by.id)):
        raise Forbidden("you may revoke only your own token or tokens it created", code="forbidden")
    _revoke_tree(session, target)
    return RevokedToken(id=target.id, revoked=True)


def _find(session: Session, token_id: int) -> Token:
    target = session.get(Token, token_id) if 1 <= token_id <= _MAX_ID else None
    if target is None:
        raise NotFound(f"no token with id {token_id}", code="token_not_found")
    return target


def _descends_from(session: Session, token: Token, ancestor_id: int) -> bool:
    seen: set[int] = set()
    parent_id = token.created_by_id
    while parent_id is not None and parent_id not in seen:
        if parent_id == ancestor_id:
            return True
        seen.add(parent_id)
        parent_id = session.scalar(select(Token.created_by_id).where(Token.id == parent_id))
    return False


def revoke_token_as_operator(session: Session, token_id: int) -> None:
    """Revoke any token and its descendants (the server operator, from the CLI). The caller commits."""
    target = _find(session, token_id)
    _revoke_tree(session, target)


def token_state(row: Token, now: datetime | None = None) -> str:
    """``active``, ``revoked`` or ``expired``."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def list_tokens(session: Session) -> list[TokenRow]:
    """Every token, oldest first (no secrets: only their hashes are stored)."""
    return [
        TokenRow(**_info(t).model_dump(), revoked=t.revoked_at is not None)
        for t in session.scalars(select(Token).order_by(Token.id))
    ]
