"""Settings: read once from MODHUB_*; one rule for "draw a progress bar?"."""

from __future__ import annotations

import io
import sys

import pytest

from modhub.settings import Settings


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize(
    ("explicit", "env", "tty", "small", "shown"),
    [
        # Unset: only on a terminal, and not for small work.
        (None, None, True, False, True),
        (None, None, False, False, False),
        (None, None, True, True, False),
        # MODHUB_PROGRESS decides when the caller does not.
        (None, "1", False, True, True),
        (None, "0", True, False, False),
        # The caller's progress= / --progress wins over everything.
        (True, "0", False, True, True),
        (False, "1", True, False, False),
    ],
)
def test_show_progress(
    monkeypatch: pytest.MonkeyPatch,
    explicit: bool | None,
    env: str | None,
    tty: bool,
    small: bool,
    shown: bool,
) -> None:
    if env is not None:
        monkeypatch.setenv("MODHUB_PROGRESS", env)
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    assert Settings.from_env().show_progress(explicit, small=small) is shown


def test_show_progress_without_a_usable_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()  # isatty() on a closed stream raises ValueError
    monkeypatch.setattr(sys, "stderr", closed)
    assert Settings().show_progress() is False
    monkeypatch.setattr(sys, "stderr", None)
    assert Settings().show_progress() is False


def test_settings_are_frozen_and_read_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    before = Settings.from_env()
    monkeypatch.setenv("MODHUB_ENDPOINT", "http://hub.example")
    assert before.endpoint != "http://hub.example"
    assert Settings.from_env().endpoint == "http://hub.example"
    with pytest.raises(ValueError):
        before.endpoint = "http://other.example"  # type: ignore[misc]
