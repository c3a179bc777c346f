"""What the services return: plain pydantic models, also the API's response schemas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from modhub.format.manifest import TensorSpec
from modhub.handles import PUBLISHER_PATTERN

SortKey = Literal["name", "newest", "downloads"]
# What a token may do, each including the ones before it: read < publish < admin.
Scope = Literal["read", "publish", "admin"]
# Longest lifetime a token can be given (seconds): ten years.
MAX_TOKEN_LIFETIME = 10 * 365 * 86400


@dataclass(frozen=True)
class SearchQuery:
    """A search. Empty strings / None mean "no filter"."""

    # Free text; every word must occur in the name, title, description or tags.
    q: str = ""
    task: str | None = None
    # "pt2" or "onnx".
    format: str | None = None
    publisher: str | None = None
    license: str | None = None
    framework: str | None = None
    sort: SortKey = "downloads"
    page: int = 1
    per_page: int = 20


class ModuleSummary(BaseModel):
    publisher: str
    name: str
    # "publisher/name" (add "/<version>" for a concrete version).
    handle: str
    # Highest non-yanked version; None when every version is yanked.
    latest_version: int | None
    task: str
    # Graph formats the latest version ships: "pt2", "onnx".
    formats: list[str]
    framework: str
    license: str
    title: str
    description: str
    tags: list[str]
    # Times a modhub client fetched a version's manifest.
    downloads: int
    created_at: datetime
    updated_at: datetime
    # Readable only with a token that may read for the publisher (others get 404).
    private: bool = False


class SearchPage(BaseModel):
    items: list[ModuleSummary]
    total: int
    page: int
    per_page: int
    # Modules per task for this search without its task filter (the facet a task filter picks
    # from): tasks of the vocabulary that have modules, in the vocabulary's order.
    tasks: dict[str, int] = Field(default_factory=dict)


class TaskCount(BaseModel):
    # A task id of the vocabulary (TF Hub's, plus "other").
    task: str
    # Visible modules whose latest version has this task.
    count: int
    # Whether the task has a contract (a common signature checked at export and publish).
    contract: bool


class TaskList(BaseModel):
    # Every task of the vocabulary, in its order (TF Hub's, by number of models there).
    tasks: list[TaskCount]


class VersionInfo(BaseModel):
    version: int
    yanked: bool
    yank_reason: str = ""
    created_at: datetime
    # Bytes of all files (manifest excluded).
    size: int


class ModuleDetail(ModuleSummary):
    versions: list[VersionInfo]


class FileInfo(BaseModel):
    path: str
    size: int
    sha256: str


class SignatureDetail(BaseModel):
    # sha256 fingerprint of the signer's public key (SubjectPublicKeyInfo DER), "sha256:<hex>".
    fingerprint: str
    # The model-signing bundle, served as the file modhub.sig of the version.
    sha256: str
    size: int


class CallSignature(BaseModel):
    """One call signature of a version: what ``hub.load(h)(...)`` (or ``.signatures[name]``) takes
    and gives. Tensors as in modhub.json; ``kind`` is filled in for the original tasks' inputs."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class VersionDetail(BaseModel):
    publisher: str
    name: str
    version: int
    # "publisher/name/version".
    handle: str
    yanked: bool
    yank_reason: str = ""
    created_at: datetime
    size: int
    # The parsed modhub.json.
    manifest: dict[str, Any]
    # sha256 of the exact modhub.json bytes (served at .../files/modhub.json).
    manifest_sha256: str
    # README.md text (model card), "" if none.
    card: str
    # Set when the version was published signed (checked at publish against its files).
    signature: SignatureDetail | None = None
    # The task id (from the vocabulary) and every call signature, "default" first.
    task: str = ""
    signatures: dict[str, CallSignature] = Field(default_factory=dict)


class PublisherDetail(BaseModel):
    name: str
    created_at: datetime
    modules: list[ModuleSummary]


class PublishResult(BaseModel):
    # "publisher/name/version".
    handle: str
    version: int


class VisibilityRequest(BaseModel):
    # True: only tokens that may read for the publisher see the module; False: everyone.
    private: bool


class VisibilityResult(BaseModel):
    handle: str
    private: bool


class YankRequest(BaseModel):
    # Request bodies are strict: 0 is not false, "3" is not 3 (what the schema says is what is accepted).
    model_config = ConfigDict(strict=True)

    reason: str = Field(default="", max_length=2000)


class YankResult(BaseModel):
    handle: str
    version: int
    yanked: bool
    yank_reason: str


# A publisher name as the spec states it: the pattern of handles.validate_name, which the route
# applies (with its own message), so that what the schema accepts is what the route accepts.
PublisherName = Annotated[
    str, WithJsonSchema({"type": "string", "pattern": PUBLISHER_PATTERN, "minLength": 1, "maxLength": 64})
]


class TokenCreate(BaseModel):
    # ``admin: true`` with a narrower ``scope`` is refused (400): the spec says so too.
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "not": {
                "required": ["admin", "scope"],
                "properties": {"admin": {"const": True}, "scope": {"enum": ["read", "publish"]}},
            }
        },
    )

    name: str = Field(default="", max_length=200)
    publishers: list[PublisherName] = Field(default_factory=list, max_length=100)
    # Same as scope "admin" (kept for older clients).
    admin: bool = False
    # Default: "admin" if admin is true, else "publish".
    scope: Scope | None = None
    # Lifetime in seconds (None: as long as the creating token lives, or forever for the operator).
    expires_in: int | None = Field(default=None, ge=1, le=MAX_TOKEN_LIFETIME)


class TokenInfo(BaseModel):
    id: int
    name: str
    publishers: list[str]
    admin: bool
    created_at: datetime
    scope: Scope
    # None: never expires.
    expires_at: datetime | None = None
    # The token that created this one (None: the hub's operator).
    created_by: int | None = None


class TokenRow(TokenInfo):
    revoked: bool


class CreatedToken(TokenInfo):
    # The secret, shown once; the hub stores only its sha256.
    token: str


class RevokedToken(BaseModel):
    id: int
    revoked: bool
