"""``modhub cache ls|verify|rm`` on a cache filled through the fake hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modhub.cli import app
from modhub.client.cache import ModuleCache
from modhub.client.resolve import Resolver
from modhub.settings import Settings
from tests.client.fakehub import FakeHub

runner = CliRunner()


@pytest.fixture
def filled(settings: Settings, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> ModuleCache:
    resolver = Resolver(settings, transport=fake_hub.transport())
    resolver.resolve("acme/tiny/1")
    resolver.resolve("acme/tiny/2")
    monkeypatch.setenv("MODHUB_CACHE", str(settings.cache))
    return ModuleCache(settings.cache)


def test_ls_lists_versions(filled: ModuleCache) -> None:
    result = runner.invoke(app, ["cache", "ls"])
    assert result.exit_code == 0, result.output
    assert "acme/tiny/1" in result.stdout and "acme/tiny/2" in result.stdout
    data = json.loads(runner.invoke(app, ["cache", "ls", "--json"]).stdout)
    assert [v["handle"] for v in data["versions"]] == ["acme/tiny/1", "acme/tiny/2"]
    assert all(v["hub"] == "hub.test" and v["size"] > 300_000 for v in data["versions"])


def test_ls_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODHUB_CACHE", str(tmp_path / "none"))
    result = runner.invoke(app, ["cache", "ls"])
    assert result.exit_code == 0
    assert "empty" in result.stderr


def test_verify_passes_then_catches_damage(filled: ModuleCache) -> None:
    result = runner.invoke(app, ["cache", "verify"])
    assert result.exit_code == 0, result.output
    assert "2 version(s) verified" in result.stdout
    # Same size, other bytes: only a full hash notices.
    labels = filled.modules / "hub.test" / "acme" / "tiny" / "1" / "assets" / "labels.txt"
    labels.chmod(0o644)
    labels.write_bytes(b"x\ny\n")
    result = runner.invoke(app, ["cache", "verify"])
    assert result.exit_code == 1
    assert "labels.txt" in result.stderr and "modhub cache rm" in result.stderr


def test_rm_one_version_keeps_shared_blobs(filled: ModuleCache) -> None:
    v2 = filled.modules / "hub.test" / "acme" / "tiny" / "2"
    blobs_before = {p.name for p in filled.blobs.iterdir()}
    result = runner.invoke(app, ["cache", "rm", "acme/tiny/1"])
    assert result.exit_code == 0, result.output
    assert "removed acme/tiny/1" in result.stdout
    assert [c.handle for c in filled.iter_versions()] == ["acme/tiny/2"]
    blobs_after = {p.name for p in filled.blobs.iterdir()}
    assert len(blobs_before - blobs_after) == 1  # only v1's README.md
    assert blobs_after == filled.referenced_blobs()
    assert runner.invoke(app, ["cache", "verify"]).exit_code == 0
    assert v2.is_dir()


def test_rm_all_versions_of_a_module(filled: ModuleCache) -> None:
    result = runner.invoke(app, ["cache", "rm", "acme/tiny"])
    assert result.exit_code == 0, result.output
    assert list(filled.iter_versions()) == []
    assert list(filled.blobs.iterdir()) == []
    assert not (filled.modules / "hub.test").exists()


def test_rm_all(filled: ModuleCache) -> None:
    assert runner.invoke(app, ["cache", "rm", "--all"]).exit_code == 0
    assert list(filled.iter_versions()) == []
    assert list(filled.blobs.iterdir()) == []


def test_rm_needs_a_target(filled: ModuleCache) -> None:
    result = runner.invoke(app, ["cache", "rm"])
    assert result.exit_code == 1
    assert "--all" in result.stderr


def test_rm_unknown_handle_says_so(filled: ModuleCache) -> None:
    result = runner.invoke(app, ["cache", "rm", "acme/other/3"])
    assert result.exit_code == 0
    assert "not in the cache" in result.stderr
    assert len(list(filled.iter_versions())) == 2


def test_search_offline_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODHUB_OFFLINE", "1")
    result = runner.invoke(app, ["search", "cats"])
    assert result.exit_code == 1
    assert "modhub cache ls" in result.stderr


ROWS = [
    ("handle", "task", "formats", "license", "downloads", "title"),
    (
        "modhub/minilm-l6/1",
        "text-embedding",
        "pt2,onnx",
        "Apache-2.0",
        "12",
        "all-MiniLM-L6-v2 sentence embedding",
    ),
]


def test_search_columns_piped_are_never_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    from modhub.cli.client_cmds import _columns

    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    lines = _columns(ROWS)
    assert len(lines) == 2
    assert lines[1].endswith("all-MiniLM-L6-v2 sentence embedding")
    assert lines[0].index("task") == lines[1].index("text-embedding")


@pytest.mark.parametrize(
    ("columns", "title_line"),
    [
        (60, "    all-MiniLM-L6-v2 sentence embedding"),  # little room: the title gets its own line
        (80, "    all-MiniLM-L6-v2 sentence embedding"),
        (95, None),  # cut with an ellipsis
        (200, None),  # fits
    ],
)
def test_search_columns_fit_the_terminal(
    monkeypatch: pytest.MonkeyPatch, columns: int, title_line: str | None
) -> None:
    import os

    from modhub.cli.client_cmds import _columns

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.setattr("shutil.get_terminal_size", lambda *args, **kwargs: os.terminal_size((columns, 24)))
    lines = _columns(ROWS)
    assert "all-MiniLM-L6-v2" in "\n".join(lines)  # readable, not one letter per line
    if title_line is not None:
        assert title_line in lines
    else:
        assert len(lines) == 2
        assert all(len(line) <= columns for line in lines)
        assert lines[1].endswith("…") == (columns < 110)
