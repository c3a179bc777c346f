"""Hub commands: ``serve``, ``admin create-token|gc|...``, ``login``, ``logout``, ``publish``, ``yank``."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error
from modhub.errors import missing_extra

if TYPE_CHECKING:
    from modhub.server.config import ServerSettings
    from modhub.server.deps import Hub
    from modhub.settings import Settings

admin_app = typer.Typer(
    help="Operate a hub's data directory directly (run on the hub's machine).", no_args_is_help=True
)
app.add_typer(admin_app, name="admin")

EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", help="hub base URL (default: MODHUB_ENDPOINT or http://127.0.0.1:8000)"),
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="the hub's data directory")]


def _server_settings(**overrides: Any) -> ServerSettings:
    """Settings from MODHUB_SERVER_* with the command's options (those given) on top."""
    from modhub.server.config import ServerSettings

    try:
        import fastapi  # noqa: F401
    except ImportError as exc:
        error = missing_extra(exc, "the hub")
        typer.secho(f"error: {error or exc}", err=True)
        raise typer.Exit(1) from None
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return ServerSettings(**given)


@contextlib.contextmanager
def _operator_hub(data_dir: Path | None) -> Iterator[Hub]:
    """The hub of a data directory, for admin commands: errors become one line and exit 1."""
    from modhub.server.app import create_hub
    from modhub.server.errors import ApiError

    hub = create_hub(_server_settings(data_dir=data_dir))
    try:
        with fail_on_hub_error():
            yield hub
    except ApiError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        hub.db.dispose()


def _client_settings(endpoint: str | None) -> Settings:
    from modhub.settings import Settings

    settings = Settings.from_env()
    return settings.model_copy(update={"endpoint": endpoint}) if endpoint else settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="database + blobs (default: MODHUB_SERVER_DATA_DIR or ~/.local/share/modhub/server)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="server processes sharing the port, one database and one blob store "
            "(default: MODHUB_SERVER_WORKERS or 1)",
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="proxies whose X-Forwarded-Proto/-For headers are trusted, comma-separated or * "
            "(default: MODHUB_SERVER_FORWARDED_ALLOW_IPS or 127.0.0.1)",
        ),
    ] = None,
) -> None:
    """Run the hub: API under /api/v1/, website at /. Migrates the database on start."""
    settings = _server_settings(
        host=host, port=port, data_dir=data_dir, workers=workers, forwarded_allow_ips=forwarded_allow_ips
    )
    import uvicorn

    from modhub.server.app import create_app, create_hub, settings_env

    where = "MODHUB_SERVER_DATABASE_URL" if settings.database_url else f"data in {settings.data_dir}"
    typer.echo(
        f"modhub hub on http://{settings.host}:{settings.port} ({where}, {settings.workers} worker(s))",
        err=True,
    )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        # Behind a reverse proxy: the scheme (and client address) come from its X-Forwarded-*
        # headers, so the URLs in snippets and redirects are the ones users see.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "timeout_keep_alive": settings.keep_alive_seconds,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Several processes: migrate and clean the staging area once, here, before any worker
    # serves (a worker doing it would delete another's upload in progress). The workers build
    # their app from the same settings, handed over in the environment they inherit.
    create_hub(settings, clean_staging=True).db.dispose()
    os.environ.update(settings_env(settings))
    uvicorn.run("modhub.server.app:create_worker_app", factory=True, workers=settings.workers, **common)


@admin_app.command("create-token")
def create_token_cmd(
    data_dir: DataDirOpt = None,
    publisher: Annotated[
        list[str] | None,
        typer.Option("--publisher", "-p", help="publisher the token may publish under (repeat)"),
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="may act for every publisher and manage tokens (= --scope admin)")
    ] = False,
    name: Annotated[str, typer.Option(help="a note on what the token is for")] = "",
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            help="read (private modules), publish (read + publish/yank; the default) or admin (everything)",
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="lifetime, e.g. 30d, 12h, 2w (default: never expires)"),
    ] = None,
) -> None:
    """Create an API token in the hub's database and print it (shown once; only its hash is stored)."""
    from modhub.server.services.tokens import SCOPES, create_token, parse_duration

    if scope is not None and scope not in SCOPES:
        typer.secho(f"error: --scope must be one of {', '.join(SCOPES)}, not {scope!r}", err=True)
        raise typer.Exit(2)
    try:
        lifetime = parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        typer.secho(f"error: --expires: {exc}", err=True)
        raise typer.Exit(2) from None
    with _operator_hub(data_dir) as hub, hub.db.write_session() as session:
        created = create_token(
            session,
            name=name,
            publishers=publisher or [],
            admin=admin,
            scope=scope,  # type: ignore[arg-type]
            expires_in=lifetime,
        )
        session.commit()
    where = "all publishers" if created.scope == "admin" else ", ".join(created.publishers)
    until = f", expires {created.expires_at.isoformat(timespec='seconds')}" if created.expires_at else ""
    typer.echo(
        f"token {created.id} ({created.scope}: {where}{until}); store it now, it is not shown again:",
        err=True,
    )
    typer.echo(created.token)


@admin_app.command("revoke-token")
def revoke_token_cmd(
    token_id: Annotated[int, typer.Argument(help="the token's id (from create-token or list-tokens)")],
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a token, and every token it created, in the hub's database; they stop working at once."""
    from modhub.server.services.tokens import revoke_token_as_operator

    with _operator_hub(data_dir) as hub, hub.db.write_session() as session:
        revoke_token_as_operator(session, token_id)
        session.commit()
    typer.echo(f"revoked token {token_id}", err=True)


@admin_app.command("list-tokens")
def list_tokens_cmd(
    data_dir: DataDirOpt = None,
) -> None:
    """List the tokens in the hub's database (ids, names, scopes; never the secrets)."""
    from modhub.server.models import utcnow
    from modhub.server.services.tokens import list_tokens

    with _operator_hub(data_dir) as hub, hub.db.session() as session:
        rows = list_tokens(session)
    now = utcnow()
    for row in rows:
        where = "admin" if row.scope == "admin" else ",".join(row.publishers)
        state = "revoked" if row.revoked else "active"
        if state == "active" and row.expires_at is not None and row.expires_at <= now:
            state = "expired"
        until = row.expires_at.isoformat(timespec="seconds") if row.expires_at else "never"
        typer.echo(f"{row.id}\t{state}\t{where}\t{row.name}\t{row.scope}\t{until}")


@app.command()
def login(
    token: Annotated[
        str | None, typer.Option(help="the token (default: read from stdin or a prompt)")
    ] = None,
    endpoint: EndpointOpt = None,
    verify: Annotated[bool, typer.Option(help="check the token with the hub first")] = True,
) -> None:
    """Store an API token for this hub only (mode 0600, user config dir; MODHUB_TOKEN overrides it)."""
    from modhub.client.publish import whoami
    from modhub.client.tokens import save_token

    if token is None:
        token = sys.stdin.readline() if not sys.stdin.isatty() else typer.prompt("API token", hide_input=True)
    token = token.strip()
    settings = _client_settings(endpoint)
    with fail_on_hub_error():
        if verify:
            info = whoami(token, settings=settings)
            scope = "admin" if info.get("admin") else ", ".join(info.get("publishers", []))
            typer.echo(f"token {info.get('id')} accepted by {settings.endpoint} ({scope})", err=True)
        path = save_token(token, endpoint=settings.endpoint)
    typer.echo(f"token for {settings.endpoint} stored in {path}", err=True)


@app.command()
def logout(endpoint: EndpointOpt = None) -> None:
    """Delete the token `modhub login` stored for the hub (MODHUB_TOKEN, if set, is not affected)."""
    from modhub.client.tokens import forget_token, token_path

    settings = _client_settings(endpoint)
    found = forget_token(settings.endpoint)
    where = token_path()
    if found:
        typer.echo(f"removed the token for {settings.endpoint} from {where}", err=True)
    else:
        typer.echo(f"no token stored for {settings.endpoint} in {where}", err=True)


@app.command()
def publish(
    module_dir: Annotated[
        Path,
        typer.Argument(
            help="a module directory (with modhub.json), a SavedModel directory or an ONNX file (model.onnx, "
            "with its external data beside it)"
        ),
    ],
    repo: Annotated[str, typer.Argument(help="where to publish: publisher/name")],
    version: Annotated[int | None, typer.Option(help="version number (default: the next one)", min=1)] = None,
    private: Annotated[
        bool | None,
        typer.Option(
            "--private/--public",
            help="make the module private (only tokens that may read for the publisher see it) or "
            "public; default: unchanged (a new module is public)",
        ),
    ] = None,
    endpoint: EndpointOpt = None,
    task: Annotated[
        str | None,
        typer.Option(help="for a SavedModel or ONNX file: its task, e.g. image-feature-vector, or other"),
    ] = None,
    license: Annotated[
        str | None,
        typer.Option("--license", help="for a SavedModel or ONNX file: SPDX licence (Apache-2.0)"),
    ] = None,
    meaning: Annotated[
        str | None,
        typer.Option(
            help="for a SavedModel or ONNX file: what tensors hold, as JSON or a JSON file, e.g. "
            '\'{"image": {"kind": "image", "layout": "NHWC", "value_range": [0, 255]}}\''
        ),
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            help="for a signed module (DIR/modhub.sig from modhub sign): the public key (KEY.pub) "
            "the hub checks the signature with",
        ),
    ] = None,
    tfjs: Annotated[
        bool,
        typer.Option(
            "--tfjs",
            help="for a SavedModel: also convert it to TF.js (tfjs/, for tf.loadGraphModel), in the "
            "TensorFlow venv that MODHUB_TF_PYTHON names",
        ),
    ] = False,
) -> None:
    """Check a module locally, upload it, and print its handle (publisher/name/version).

    A plain SavedModel directory (saved_model.pb, variables/) or ONNX file is wrapped into a
    module first; its signatures are read from the model, --task and --license say the rest.
    """
    import tempfile

    from modhub.client.publish import publish as publish_module
    from modhub.exporting.wrapping import parse_meaning, plain_model, wrap

    settings = _client_settings(endpoint)
    with fail_on_hub_error(), tempfile.TemporaryDirectory(prefix="modhub-wrap-") as tmp:
        plain = plain_model(module_dir)
        if plain is not None:
            kind, source = plain
            what = "a SavedModel" if kind == "savedmodel" else "an ONNX model"
            if task is None or license is None:
                typer.secho(
                    f"error: {module_dir} is {what}; say what it is with --task TASK --license SPDX "
                    "(e.g. --task image-feature-vector --license Apache-2.0)",
                    err=True,
                )
                raise typer.Exit(2)
            if tfjs and (kind != "savedmodel" or settings.tf_python is None):
                typer.secho(
                    "error: --tfjs converts a SavedModel directory to TF.js in the TensorFlow venv: "
                    + (
                        "set MODHUB_TF_PYTHON to its python (make venv-tf builds .venv-tf)"
                        if kind == "savedmodel"
                        else f"{module_dir} is not a SavedModel"
                    ),
                    err=True,
                )
                raise typer.Exit(2)
            module_dir = wrap(
                kind,
                source,
                Path(tmp) / "module",
                task=task,
                license=license,
                title=repo.split("/")[-1],
                meaning=parse_meaning(meaning),
                tfjs_python=settings.tf_python if tfjs else None,
            )
        elif task is not None or license is not None or meaning is not None or tfjs:
            typer.secho(
                "error: --task, --license, --meaning and --tfjs are for SavedModel directories and ONNX "
                "files only; a module directory says them in its modhub.json (and carries its own tfjs/)",
                err=True,
            )
            raise typer.Exit(2)
        handle = publish_module(
            module_dir, repo, version=version, private=private, signing_key=signing_key, settings=settings
        )
    typer.echo(f"published {settings.endpoint.rstrip('/')}/{handle}", err=True)
    typer.echo(handle)


@app.command()
def yank(
    handle: Annotated[str, typer.Argument(help="publisher/name/version")],
    reason: Annotated[str, typer.Option(help="why, shown to users of the version")] = "",
    endpoint: EndpointOpt = None,
) -> None:
    """Hide a version from "latest" and search; it stays downloadable by its full handle."""
    from modhub.client.publish import yank as yank_version

    settings = _client_settings(endpoint)
    with fail_on_hub_error():
        result = yank_version(handle, reason=reason, settings=settings)
    typer.echo(f"yanked {result['handle']}")


@admin_app.command("seed")
def seed_cmd(
    module_dirs: Annotated[list[Path], typer.Argument(help="module directories, or folders of them")],
    publisher: Annotated[
        str, typer.Option("--publisher", "-p", help="publish as PUBLISHER/<directory name>")
    ],
    data_dir: DataDirOpt = None,
) -> None:
    """Publish module directories into the hub's data directory; identical ones are skipped."""
    from modhub.format.manifest import MANIFEST_NAME
    from modhub.server.services.seeding import seed

    dirs: list[Path] = []
    for path in module_dirs:
        if (path / MANIFEST_NAME).is_file():
            dirs.append(path)
        else:
            dirs += sorted(p.parent for p in path.glob(f"*/{MANIFEST_NAME}"))
    if not dirs:
        typer.secho(f"error: no module directories (with {MANIFEST_NAME}) in {module_dirs}", err=True)
        raise typer.Exit(1)
    with _operator_hub(data_dir) as hub:
        results = seed(hub, dirs, publisher)
    for result in results:
        typer.echo(f"{result.status:>10}  {result.handle}")


@admin_app.command("gc")
def gc_cmd(
    data_dir: DataDirOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would be removed")] = False,
    min_age: Annotated[
        str | None,
        typer.Option(
            "--min-age",
            help="keep leftovers modified more recently, e.g. 1h or 0 (default: 0 when no hub is "
            "serving the data directory, else 1h)",
        ),
    ] = None,
) -> None:
    """Remove blobs no version references, dead staged uploads and incomplete writes, in one pass."""
    from modhub.server.services.gc import collect_garbage
    from modhub.server.services.tokens import parse_duration

    age: float | None = None
    if min_age is not None:
        try:
            age = 0.0 if min_age.strip() == "0" else parse_duration(min_age).total_seconds()
        except ValueError as exc:
            typer.secho(f"error: --min-age: {exc}", err=True)
            raise typer.Exit(2) from None
    with _operator_hub(data_dir) as hub:
        report = collect_garbage(hub, dry_run=dry_run, min_age=age)
    verb = "would remove" if dry_run else "removed"
    for blob in report.blobs:
        typer.echo(f"{verb} blob {blob.sha256} ({blob.size} bytes)")
    for staged in report.staged:
        typer.echo(f"{verb} staged upload {staged.path} ({staged.size} bytes)")
    for leftover in report.incomplete:
        typer.echo(f"{verb} incomplete write {leftover.key} ({leftover.size} bytes)")
    count = len(report.blobs) + len(report.staged) + len(report.incomplete)
    kept = (
        f"; kept {report.kept_young} younger than {report.min_age:.0f} s (a hub is serving this data "
        "directory: a publish in progress may need them; --min-age 0 removes them too)"
        if report.kept_young
        else ""
    )
    typer.echo(f"{verb} {count} item(s), {report.freed_bytes} bytes{kept}", err=True)
