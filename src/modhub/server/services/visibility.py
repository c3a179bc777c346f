"""Who may see a module: the one access rule for reading, used by every route.

A public module is readable by anyone. A private one only by a token that may
``read`` for its publisher (``tokens.allows``: scope read, publish or admin on
that publisher, or admin); for everyone else it does not exist: lookups raise
the same NotFound as for an unknown module, and listings (search, publisher
pages, facets, 404 suggestions, blobs) leave it out.

Two forms of the same rule, side by side so they cannot drift apart:

    may_read(reader, module)  -> bool                for one module already loaded
    readable(reader)          -> SQL condition       for queries over ``Module``
    may_read_private_of(reader, publisher) -> bool   for in-memory lists (404 suggestions)

``reader`` is the request's token, or None for an anonymous request. Every
query function in ``queries`` and ``web_queries`` takes ``reader=`` and
defaults to anonymous, so a route that forgets to pass it can only hide
private modules, never show them.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select, true

from modhub.server.models import Module, Publisher, Token
from modhub.server.services.tokens import allows

# No publisher can have this name: allows(token, "read", _EVERY) is True only for a token
# that may read for every publisher (admin).
_EVERY = "*"


def may_read(reader: Token | None, module: Module) -> bool:
    """May ``reader`` (None: anonymous) see ``module``?"""
    return not module.private or allows(reader, "read", module.publisher.name)


def may_read_private_of(reader: Token | None, publisher: str) -> bool:
    """May ``reader`` see the private modules of ``publisher`` (for lists kept outside the database)?"""
    return allows(reader, "read", publisher)


def readable(reader: Token | None) -> ColumnElement[bool]:
    """The SQL form of ``may_read``, for a query that selects ``Module``."""
    if reader is not None and allows(reader, "read", _EVERY):
        return true()
    names = [p for p in (reader.publishers if reader is not None else []) if allows(reader, "read", p)]
    if not names:
        return Module.private.is_(False)
    own = select(Publisher.id).where(Publisher.name.in_(names))
    return or_(Module.private.is_(False), Module.publisher_id.in_(own))
