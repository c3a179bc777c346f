"""``create_app(settings)``: the hub as an ASGI app.

Creating the app prepares the data directory and runs the database
migrations (idempotent), so a fresh directory becomes a working hub and an
existing one is upgraded in place. The website (``modhub.server.web``), when
installed, is mounted after the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from modhub.server.api import router as api_router
from modhub.server.config import ServerSettings
from modhub.server.db import Database, migrate
from modhub.server.deps import Hub
from modhub.server.errors import install_handlers
from modhub.server.openapi import install_openapi
from modhub.server.protocols.hf import router as hf_router
from modhub.server.protocols.tfhub import router as tfhub_router
from modhub.server.protocols.tfjs import router as tfjs_router
from modhub.server.ratelimit import FailureLimiter
from modhub.server.services.gc import serving_lock
from modhub.server.storage import open_storage

log = logging.getLogger(__name__)


def create_hub(settings: ServerSettings, *, clean_staging: bool = False) -> Hub:
    """Open (and migrate) the hub's database and blob storage (``settings.data_dir``, or the
    PostgreSQL and object store that MODHUB_SERVER_DATABASE_URL / _BLOB_URL name).

    ``clean_staging`` removes uploads a crashed server left behind; only a
    starting server asks for it (an admin command next to a running server must not).
    """
    db = Database(settings)
    migrate(db, settings)
    hub = Hub(
        settings=settings,
        db=db,
        storage=open_storage(settings),
        auth_limiter=FailureLimiter(db, settings.auth_failure_limit, settings.auth_failure_window),
    )
    if clean_staging:
        hub.clean_staging()
    return hub


def settings_env(settings: ServerSettings) -> dict[str, str]:
    """``settings`` as MODHUB_SERVER_* variables: what a worker process reads them back from."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"MODHUB_SERVER_{name.upper()}"] = str(value)
    return env


def create_worker_app() -> FastAPI:
    """The app of one of several ``modhub serve --workers N`` processes (settings from the
    environment; the parent already migrated and cleaned the staging area)."""
    return create_app(ServerSettings(), clean_staging=False)


async def _housekeeping(hub: Hub) -> None:
    """Write the batched download counts every ``download_flush_seconds`` (see services.downloads),
    and delete failed authentications that aged out of the limiter's window once per window."""
    loop = asyncio.get_running_loop()
    pruned_at = loop.time()
    while True:
        await asyncio.sleep(hub.settings.download_flush_seconds)
        try:
            await run_in_threadpool(hub.downloads.flush, hub.db)
        except Exception:  # a busy or unreachable database: the counts wait for the next round
            log.exception("could not write download counts; retrying")
        if loop.time() - pruned_at >= hub.auth_limiter.window:
            pruned_at = loop.time()
            try:
                await run_in_threadpool(hub.auth_limiter.prune)
            except Exception:
                log.exception("could not prune old authentication failures; retrying")


def create_app(settings: ServerSettings, *, clean_staging: bool = True) -> FastAPI:
    hub = create_hub(settings, clean_staging=clean_staging)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Held while serving: `modhub admin gc` then keeps leftovers a publish in progress may need.
        with serving_lock(settings, exclusive=False):
            flusher = asyncio.create_task(_housekeeping(hub))
            try:
                yield
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                await run_in_threadpool(hub.downloads.flush, hub.db)
        hub.db.dispose()

    app = FastAPI(
        title="modhub",
        summary="A hub of reusable, pretrained machine-learning modules.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.hub = hub
    install_handlers(app)
    app.include_router(api_router)
    # Before the site: the tensorflow_hub route claims only URLs with ?tf-hub-format=, and
    # the Hugging Face routes use paths the site would answer with its 404 page.
    app.include_router(tfhub_router)
    app.include_router(tfjs_router)  # only ?tfjs-format= requests, as tfhub_router
    app.include_router(hf_router)
    try:
        from modhub.server.web import router as web_router
    except ImportError as exc:
        if exc.name is not None and not exc.name.startswith("modhub.server.web"):
            raise
        log.info("modhub.server.web is not installed: serving the API only")
    else:
        app.include_router(web_router)
    install_openapi(app)
    return app
