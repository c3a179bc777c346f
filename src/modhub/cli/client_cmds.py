"""Client commands: ``modhub download``, ``modhub search``, ``modhub cache ls|verify|rm``."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error, notes

cache_app = typer.Typer(help="Inspect and clean the local module cache (MODHUB_CACHE).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@app.command()
def download(
    handle: Annotated[
        str, typer.Argument(help="publisher/name/version, publisher/name (latest) or a hub URL")
    ],
) -> None:
    """Download a module into the cache (verified) and print its local directory."""
    from modhub.client.resolve import resolve

    with fail_on_hub_error(), notes():
        path = resolve(handle)
    typer.echo(str(path))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="words to look for in names, titles, descriptions, tags")] = "",
    task: Annotated[str | None, typer.Option(help="only this task, e.g. image-feature-vector")] = None,
    publisher: Annotated[str | None, typer.Option(help="only this publisher")] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="only modules with this format, e.g. onnx")
    ] = None,
    license: Annotated[str | None, typer.Option(help="only this licence (SPDX id)")] = None,
    sort: Annotated[str | None, typer.Option(help="name, newest or downloads")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print the hub's answer as JSON")] = False,
) -> None:
    """Search the hub (MODHUB_ENDPOINT) for modules."""
    from modhub.client.api import HubClient, open_http_client
    from modhub.errors import OfflineError
    from modhub.settings import Settings

    settings = Settings.from_env()
    with fail_on_hub_error():
        if settings.offline:
            raise OfflineError(
                "search asks the hub, and MODHUB_OFFLINE=1 forbids requests. "
                "`modhub cache ls` lists the modules you have."
            )
        with open_http_client(timeout=settings.timeout, token=settings.token) as http:
            result = HubClient(http, settings.endpoint).search(
                query,
                task=task,
                publisher=publisher,
                format=format,
                license=license,
                sort=sort,
                page=page,
                per_page=per_page,
            )
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    if not result.items:
        typer.echo("no modules found", err=True)
        return
    rows: list[tuple[str, ...]] = [("handle", "task", "formats", "license", "downloads", "title")]
    for item in result.items:
        latest = f"{item.handle}/{item.latest_version}" if item.latest_version else item.handle
        rows.append(
            (latest, item.task, ",".join(item.formats), item.license, str(item.downloads), item.title)
        )
    for line in _columns(rows):
        typer.echo(line)
    shown = (result.page - 1) * result.per_page + len(result.items)
    if shown < result.total:
        typer.echo(f"{shown} of {result.total} shown; next: --page {result.page + 1}", err=True)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Aligned columns; the last one (free text) is cut to the terminal's width, or gets its own
    indented line when little room is left. Piped output is never cut."""
    import shutil
    import sys

    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lead = sum(widths) + 2 * len(widths)
    room = shutil.get_terminal_size().columns - lead if sys.stdout.isatty() else None
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i == 4 else cell.ljust(w)  # downloads (a number) right-aligned
            for i, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        text = row[-1]
        if room is not None and room < 20:
            lines.append("  ".join(cells).rstrip())
            if text:
                lines.append(f"    {text}")
            continue
        if room is not None and len(text) > room:
            text = text[: max(room - 1, 0)] + "…"
        lines.append("  ".join([*cells, text]).rstrip())
    return lines


@cache_app.command("ls")
def cache_ls(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List cached module versions with their size and directory.

    A partial version (only the files loads needed so far, e.g. an int8 variant without the
    exact graphs) shows the size it holds, marked "partial"; `modhub download HANDLE` completes it.
    """
    from modhub.client.cache import ModuleCache, present_files
    from modhub.errors import ManifestError
    from modhub.format.manifest import read_manifest
    from modhub.settings import Settings

    cache = ModuleCache(Settings.from_env().cache)
    rows: list[dict[str, Any]] = []
    for cached in cache.iter_versions():
        partial = cached.partial
        try:
            manifest = read_manifest(cached.path)
            held = present_files(cached.path, manifest) if partial else None
            size: int | None = sum(e.size for e in manifest.files if held is None or e.path in held)
        except ManifestError:
            size = None
        rows.append(
            {
                "hub": cached.host,
                "handle": cached.handle,
                "size": size,
                "partial": partial,
                "path": str(cached.path),
            }
        )
    if as_json:
        typer.echo(json.dumps({"cache": str(cache.root), "versions": rows, "blob_bytes": cache.blob_bytes()}))
        return
    if not rows:
        typer.echo(f"the cache at {cache.root} is empty", err=True)
        return
    width = max(len(r["handle"]) for r in rows)
    for row in rows:
        size_text = _size(row["size"]) if row["size"] is not None else "damaged"
        state = "partial" if row["partial"] else "whole"
        typer.echo(f"{row['handle']:<{width}}  {size_text:>10}  {state:<7}  {row['hub']}  {row['path']}")
    typer.echo(f"{len(rows)} version(s); {_size(cache.blob_bytes())} on disk in {cache.root}", err=True)


@cache_app.command("verify")
def cache_verify(
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="also run each version's formats (graph.pt2, model.onnx) on probe inputs and check "
            "that they compute the same outputs (seconds per version)",
        ),
    ] = False,
) -> None:
    """Check every cached file against its sha256 (exit status 1 if anything is damaged).

    A partial version is checked for the files it holds; that it lacks others is not damage.
    """
    from modhub.client.cache import ModuleCache
    from modhub.runtimes.onnx_optimised import verify_optimised
    from modhub.settings import Settings

    cache = ModuleCache(Settings.from_env().cache)
    problems = cache.verify() + verify_optimised(cache)
    if deep:
        from modhub.loading.agree import check_formats_agree

        damaged = {path for path, _ in problems}
        for cached in cache.iter_versions():
            if cached.path in damaged:
                continue
            if cached.partial:
                typer.echo(
                    f"{cached.handle}: partial, formats not compared (`modhub download "
                    f"{cached.handle}` fetches the rest)",
                    err=True,
                )
                continue
            report = check_formats_agree(cached.path)
            problems += [(cached.path, f"formats disagree: {line}") for line in report.problems]
            if report.unchecked is not None:
                problems.append((cached.path, f"formats not compared: {report.unchecked}"))
            elif report.seconds:
                typer.echo(f"{cached.handle}: formats compared in {report.seconds:.1f} s", err=True)
    for path, problem in problems:
        typer.secho(f"damaged: {path}: {problem}", err=True, fg=typer.colors.RED)
    if problems:
        typer.echo(
            "remove damaged versions with `modhub cache rm HANDLE` (or --all) and resolve again", err=True
        )
        raise typer.Exit(1)
    versions = list(cache.iter_versions())
    partial = sum(1 for cached in versions if cached.partial)
    partial_note = f" ({partial} partial: the files loads needed so far)" if partial else ""
    typer.echo(f"ok: {len(versions)} version(s) verified{partial_note} in {cache.root}")


@cache_app.command("rm")
def cache_rm(
    handles: Annotated[
        list[str] | None,
        typer.Argument(help="publisher/name[/version] or hub URL; without a version, every cached version"),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="empty the whole cache")] = False,
) -> None:
    """Remove cached versions, then the blobs no remaining version uses."""
    from modhub.client.cache import ModuleCache
    from modhub.errors import InvalidHandle
    from modhub.handles import parse_handle
    from modhub.settings import Settings

    cache = ModuleCache(Settings.from_env().cache)
    with fail_on_hub_error():
        if not handles and not all_:
            raise InvalidHandle("name what to remove (e.g. `modhub cache rm acme/tiny/1`), or pass --all")
        targets = list(cache.iter_versions()) if all_ else []
        for text in handles or []:
            parsed = parse_handle(text)
            found = cache.matching(parsed, parsed.endpoint)
            if not found:
                typer.echo(f"{text} is not in the cache", err=True)
            targets += found
    if targets:
        cache.ensure()
    from modhub.errors import HubError
    from modhub.format.manifest import ONNX_NAME, read_manifest
    from modhub.runtimes.onnx_optimised import prune_optimised

    graphs: set[str] = set()
    for cached in targets:
        with contextlib.suppress(HubError):
            # Every graph: the root's, other signatures' and variants' (each may have a copy).
            graphs.update(
                e.sha256 for e in read_manifest(cached.path).files if e.path.rsplit("/", 1)[-1] == ONNX_NAME
            )
    for cached in targets:
        # Wait for a process that may be assembling this version right now.
        with cache.cached_version_lock(cached):
            cache.remove_version(cached.path)
        typer.echo(f"removed {cached.handle} ({cached.host})")
    freed = cache.prune_blobs() if cache.blobs.is_dir() else 0
    # This machine's optimised ONNX copies of what was removed (of everything, with --all).
    freed += prune_optimised(cache, None if all_ else graphs - cache.referenced_blobs())
    typer.echo(f"freed {_size(freed)}", err=True)
