"""The hub's tables (SQLAlchemy 2 typed ORM). Portable: SQLite and PostgreSQL.

    Publisher 1─* Module 1─* Version 1─* File *─1 Blob
    Token (hashed; a scope (read < publish < admin) over publishers; may expire;
           created_by_id is its parent: revoking a token revokes its descendants)
    AuthFailure (one failed authentication of a client address; server.ratelimit)

A Module row caches the summary of its latest non-yanked version (task,
licence, title, ...) plus ``search_text``, a lower-cased blob of
name/title/description/tags that search matches with LIKE (works on both
databases). ``latest_version`` is None when every version is yanked: such a
module is hidden from search.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Publisher(Base):
    __tablename__ = "publishers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    modules: Mapped[list[Module]] = relationship(back_populates="publisher")


class Module(Base):
    __tablename__ = "modules"
    __table_args__ = (UniqueConstraint("publisher_id", "name", name="uq_modules_publisher_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # fold_name(publisher) + "/" + fold_name(name): unique, so look-alikes cannot coexist.
    folded: Mapped[str] = mapped_column(String(140), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Counted when a modhub client fetches a version's manifest.
    downloads: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    # Summary of the latest non-yanked version (None: all yanked, hidden from search).
    latest_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    task: Mapped[str] = mapped_column(String(64), default="", index=True)
    framework: Mapped[str] = mapped_column(String(32), default="")
    license: Mapped[str] = mapped_column(String(64), default="", index=True)
    # Space-padded list of formats, e.g. " pt2 onnx " (LIKE '% onnx %' filters).
    formats: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(300), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    search_text: Mapped[str] = mapped_column(Text, default="")
    # Private: readable only with a token that may read for its publisher (services.visibility);
    # everyone else gets 404, as for a module that does not exist.
    private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    publisher: Mapped[Publisher] = relationship(back_populates="modules")
    versions: Mapped[list[Version]] = relationship(back_populates="module", order_by="Version.version")


class Version(Base):
    __tablename__ = "versions"
    # The rule that makes concurrent publishes of one version resolve to exactly one winner.
    __table_args__ = (UniqueConstraint("module_id", "version", name="uq_versions_module_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    module_id: Mapped[int] = mapped_column(ForeignKey("modules.id", ondelete="RESTRICT"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The exact modhub.json bytes are a blob too; this is its sha256.
    manifest_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    # Parsed manifest (JSON) for the API.
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    # README.md (model card) text, "" when the module has none.
    card: Mapped[str] = mapped_column(Text, default="")
    # Sum of file sizes (manifest excluded).
    size: Mapped[int] = mapped_column(BigInteger)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yank_reason: Mapped[str] = mapped_column(Text, default="")
    yanked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Token that published it (audit), kept if the token is revoked.
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"), nullable=True)
    # modhub.sig (model-signing bundle) as a blob, checked at publish against the manifest's files,
    # and the sha256 fingerprint of the public key that made it; None: unsigned.
    signature_sha256: Mapped[str | None] = mapped_column(
        ForeignKey("blobs.sha256", name="fk_versions_signature_blob"), nullable=True
    )
    signature_fingerprint: Mapped[str | None] = mapped_column(String(80), nullable=True)

    module: Mapped[Module] = relationship(back_populates="versions")
    files: Mapped[list[File]] = relationship(back_populates="version", order_by="File.path")


class Blob(Base):
    """One stored content; identical files of any module are stored once."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class File(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("version_id", "path", name="uq_files_version_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)

    version: Mapped[Version] = relationship(back_populates="files")


class Token(Base):
    """An API token. Only the sha256 of the secret is stored; the secret is shown once."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Publisher names this token may publish and yank under.
    publishers: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Admin tokens may act for every publisher and manage every token.
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The token that created this one (None: the operator, from the CLI); revocation cascades down.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"), nullable=True, index=True)
    # "read" (private modules of its publishers), "publish" (read + publish/yank), "admin" (everything).
    # ``admin`` is kept equal to ``scope == "admin"``.
    scope: Mapped[str] = mapped_column(String(16), default="publish")
    # After this instant the token is refused (None: never expires).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TfHubArchive(Base):
    """The tar.gz of a version's ``saved_model/`` that tensorflow_hub downloads, built once.

    Its bytes are a blob like any file (``sha256``), so every later request streams it.
    """

    __tablename__ = "tfhub_archives"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthFailure(Base):
    """One failed authentication: shared by every server process (server.ratelimit).

    Rows older than the limiter's window are pruned; at most about ``limit`` rows per
    client address are younger (a limited address is refused before it can fail again).
    """

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_client_at", "client", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The client's address (as the server sees it, after trusted proxies).
    client: Mapped[str] = mapped_column(String(100))
    # When, in seconds since the epoch (wall clock: the same for every process).
    at: Mapped[float] = mapped_column(Float, index=True)
