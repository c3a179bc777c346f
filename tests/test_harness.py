"""The suite's own harness: no MODHUB_* setting of the developer reaches a test or a hub it starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import HARNESS_VARS, clean_env, hub_process_env

# A variable no modhub release reads yet: the cleaner must clear names it has never heard of.
# (Built at run time so that the docs test does not take it for a setting to document.)
UNKNOWN = "MODHUB_" + "A_FUTURE_SETTING"
DEVELOPERS = {
    "MODHUB_TRUSTED_KEYS": "/home/dev/keys",
    "MODHUB_ENDPOINT": "https://hub.example",
    "MODHUB_SERVER_WORKERS": "8",
    UNKNOWN: "1",
}


def test_every_modhub_setting_is_cleared_and_the_harness_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name, value in {**DEVELOPERS, "MODHUB_TEST_POSTGRES": "postgresql://kept"}.items():
        monkeypatch.setenv(name, value)
    clean_env(monkeypatch, tmp_path_factory)
    left = {name for name in os.environ if name.startswith("MODHUB_")}
    assert left - HARNESS_VARS == {"MODHUB_CACHE", "MODHUB_CONFIG_DIR"}
    assert os.environ["MODHUB_TEST_POSTGRES"] == "postgresql://kept"
    base = tmp_path_factory.getbasetemp()
    assert Path(os.environ["MODHUB_CACHE"]).is_relative_to(base)
    assert Path(os.environ["MODHUB_CONFIG_DIR"]).is_relative_to(base)


def test_a_hub_process_gets_only_the_settings_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DEVELOPERS.items():
        monkeypatch.setenv(name, value)
    env = hub_process_env({"MODHUB_SERVER_KEEP_ALIVE_SECONDS": "8"})
    assert {name for name in env if name.startswith("MODHUB_")} - HARNESS_VARS == {
        "MODHUB_SERVER_KEEP_ALIVE_SECONDS"
    }
    assert env["PYTHONPATH"].split(os.pathsep)[0].endswith("src")
