"""All of the hub's database logic. Routes and pages call these; they hold no SQL themselves.

Read side (used by the JSON API and the website), in ``queries``:

    search_modules(session, SearchQuery(...)) -> SearchPage
    get_module(session, publisher, name) -> ModuleDetail          (NotFound)
    get_version(session, publisher, name, version | "latest") -> VersionDetail   (NotFound)
    list_publisher(session, publisher) -> PublisherDetail         (NotFound)

Write side: ``publishing.publish_version`` / ``publishing.yank_version``,
``tokens.create_token`` / ``tokens.revoke_token`` / ``tokens.authenticate``,
``downloads.record_download``. Return types live in ``schemas``.
"""

from modhub.server.services.queries import get_module, get_version, list_publisher, search_modules
from modhub.server.services.schemas import (
    ModuleDetail,
    ModuleSummary,
    PublisherDetail,
    SearchPage,
    SearchQuery,
    VersionDetail,
    VersionInfo,
)

__all__ = [
    "ModuleDetail",
    "ModuleSummary",
    "PublisherDetail",
    "SearchPage",
    "SearchQuery",
    "VersionDetail",
    "VersionInfo",
    "get_module",
    "get_version",
    "list_publisher",
    "search_modules",
]
