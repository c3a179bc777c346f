"""``modhub admin seed``: publish module directories into a data dir, idempotently (make serve)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from modhub.cli import app
from modhub.server.app import create_hub
from modhub.server.config import ServerSettings
from modhub.server.services.queries import get_version
from tests.server.conftest import copy_module


def _seed(*args: str) -> str:
    result = CliRunner().invoke(app, ["admin", "seed", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_seed_publishes_once_and_then_skips(feature_module: Path, tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    copy_module(feature_module, zoo / "tiny-a")
    copy_module(feature_module, zoo / "tiny-b")
    data = tmp_path / "hub"
    first = _seed(str(zoo), "--publisher", "starter", "--data-dir", str(data))
    assert "published  starter/tiny-a/1" in first
    assert "published  starter/tiny-b/1" in first
    second = _seed(str(zoo), "--publisher", "starter", "--data-dir", str(data))
    assert second.split() == ["unchanged", "starter/tiny-a", "unchanged", "starter/tiny-b"]

    hub = create_hub(ServerSettings(data_dir=data))
    try:
        with hub.db.session() as session:
            detail = get_version(session, "starter", "tiny-a", "latest")
            assert detail.version == 1
            assert detail.manifest["task"] == "image-feature-vector"
            # The seed token was revoked after use: nothing can publish with it.
            from sqlalchemy import select

            from modhub.server.models import Token

            tokens = session.scalars(select(Token)).all()
            assert tokens and all(t.revoked_at is not None for t in tokens)
    finally:
        hub.db.dispose()


def test_seed_refuses_a_tampered_module_and_publishes_nothing(feature_module: Path, tmp_path: Path) -> None:
    module = copy_module(feature_module, tmp_path / "zoo" / "broken")
    (module / "README.md").write_text("changed after export")
    result = CliRunner().invoke(
        app, ["admin", "seed", str(module), "-p", "starter", "--data-dir", str(tmp_path / "hub")]
    )
    assert result.exit_code == 1
    assert "sha256" in result.output
    hub = create_hub(ServerSettings(data_dir=tmp_path / "hub"))
    try:
        with hub.db.session() as session:
            from sqlalchemy import func, select

            from modhub.server.models import Version

            assert session.scalar(select(func.count()).select_from(Version)) == 0
    finally:
        hub.db.dispose()
