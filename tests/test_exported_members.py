"""The public surface stays short, and each documented package's ``__all__`` is sorted and names
exactly its public members (as httpx tests its own)."""

from __future__ import annotations

import importlib
import inspect
import re
import types

import pytest

import modhub

# The packages users import from (docs/), each with an __all__.
DOCUMENTED = [
    "modhub",
    "modhub.errors",
    "modhub.exporting",
    "modhub.loading",
    "modhub.predict",
    "modhub.retrain",
]
# Dunder names that are public all the same.
INCLUDED_PRIVATE = {"__version__"}


def public_names(module: types.ModuleType) -> set[str]:
    """What ``module`` itself offers: its public globals that are neither submodules nor things it
    only imported for its own use (typing helpers, the standard library's, other libraries'), and
    the names it builds lazily (its ``_LAZY`` table; ``dir()`` cannot show them, or shows __all__)."""
    names = set(getattr(module, "_LAZY", {}))
    for name, value in vars(module).items():
        if name.startswith("_") and name not in INCLUDED_PRIVATE:
            continue
        if isinstance(value, types.ModuleType) or name == "TYPE_CHECKING":
            continue
        if type(value).__module__ == "__future__":
            continue  # `from __future__ import annotations` binds a name as well
        if (inspect.isclass(value) or callable(value)) and not getattr(value, "__module__", "").startswith(
            "modhub"
        ):
            continue  # imported from elsewhere: Any, Path, dataclass, Mapping, ...
        names.add(name)
    return names


def ruff_order(name: str) -> tuple[int, list[int | str]]:
    """The order ruff's RUF022 keeps __all__ in: SCREAMING_CASE, then CamelCase, then the rest,
    each in natural order (so this test and the linter never ask for different orders)."""
    group = 0 if len(name) > 1 and name.isupper() else 1 if name[:1].isupper() else 2
    return group, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@pytest.mark.parametrize("package", DOCUMENTED)
def test_all_is_sorted_and_names_every_public_member(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=ruff_order), f"{package}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{package}.__all__ names something twice"
    # A name the module's __getattr__ builds on first use is public too (test_all_names_exist
    # checks that it resolves); every other public global must be exported, and nothing else.
    lazy = {name for name in exported if name not in vars(module)}
    assert set(exported) == public_names(module) | lazy, f"{package}.__all__ differs from its public names"


@pytest.mark.parametrize("package", DOCUMENTED)
def test_all_names_exist(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_public_surface() -> None:
    functions = {n for n in modhub.__all__ if not n[0].isupper() and n != "__version__"}
    assert functions == {"export", "load", "resolve", "wrap_onnx"}
    classes = {
        n for n in modhub.__all__ if n[0].isupper() and not issubclass(getattr(modhub, n), modhub.HubError)
    }
    assert classes == {"Layer", "KerasLayer"}


def test_errors_share_one_root() -> None:
    errors = [
        getattr(modhub, n)
        for n in modhub.__all__
        if isinstance(getattr(modhub, n), type) and issubclass(getattr(modhub, n), Exception)
    ]
    assert len(errors) >= 10
    assert all(issubclass(e, modhub.HubError) for e in errors)
    assert issubclass(modhub.ModuleNotFound, LookupError)
    assert issubclass(modhub.IntegrityError, OSError)
    assert issubclass(modhub.UnsafeModuleError, ValueError)


def test_export_stays_a_function_after_submodule_imports() -> None:
    import subprocess
    import sys

    code = (
        "import modhub as hub\n"
        "from modhub.exporting.pytorch import export\n"
        "import modhub.loading.loader, modhub.client.resolve\n"
        "assert callable(hub.export) and hub.export is export, type(hub.export)\n"
        "assert callable(hub.load) and callable(hub.resolve)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
