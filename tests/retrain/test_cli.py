"""`modhub retrain images|text` on the command line: summary, report, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modhub.cli import app
from tests.retrain.conftest import write_photos


def test_retrain_images_command(
    feature_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODHUB_PROGRESS", "1")  # progress bars even though stderr is not a terminal
    data = write_photos(tmp_path / "data", per_class=4)
    (data / "red" / "broken.png").write_bytes(b"\x89PNG but not really")
    out = tmp_path / "colours"
    result = CliRunner().invoke(
        app,
        [
            "retrain",
            "images",
            str(data),
            "--module",
            str(feature_module),
            "--out",
            str(out),
            "--epochs",
            "3",
            "--lr",
            "0.1",
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "validation accuracy" in result.stdout
    assert "red/broken.png" in result.stderr  # skipped, listed, not a crash
    assert "features: 100%" in result.stderr and "fold CV: 100%" in result.stderr
    assert "features: 12 computed, 0 from the cache" in result.stdout
    assert (out / "assets" / "report" / "metrics.json").is_file()
    assert (out / "modhub.json").is_file()


def test_retrain_text_command_reports_missing_columns(
    text_module: Path, text_csv: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "retrain",
            "text",
            str(text_csv),
            "--module",
            str(text_module),
            "--out",
            str(tmp_path / "x"),
            "--text-column",
            "review",
        ],
    )
    assert result.exit_code == 1
    assert "error: topics.csv has no column(s) 'review', 'label'" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_retrain_images_with_a_text_module(text_module: Path, photo_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["retrain", "images", str(photo_dir), "-m", str(text_module), "-o", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    assert "use `modhub retrain text`" in result.stderr
