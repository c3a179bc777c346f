"""Imports users wrote before the package took its layers keep working, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest

import modhub


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("modhub.publishing", "publish", "modhub.client.publish"),
        ("modhub.publishing", "save_token", "modhub.client.tokens"),
        ("modhub.images", "prepare_images", "modhub.runtimes.images"),
        ("modhub.signing", "sign_module", "modhub.exporting.signing"),
        ("modhub.signing", "check_signature", "modhub.format.signature"),
        ("modhub.saved_model_module", "wrap_saved_model", "modhub.exporting.savedmodel"),
    ],
)
def test_old_module_names_forward_with_a_warning(old: str, name: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="moved to"):
        _ = module.no_such_name
    sys.modules.pop(old, None)


def test_every_moved_module_points_at_existing_modules() -> None:
    from importlib.machinery import PathFinder

    for old, homes in modhub._MOVED.items():
        parent = importlib.import_module(old.rsplit(".", 1)[0])
        assert PathFinder.find_spec(old, parent.__path__) is None, f"{old} exists again: drop it from _MOVED"
        for home in homes:
            assert importlib.util.find_spec(home) is not None, f"{old} forwards to {home}: it does not exist"


def test_unknown_modules_still_fail() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("modhub.no_such_module")
