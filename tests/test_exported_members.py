"""The public surface stays short and every name in __all__ exists (as httpx tests it)."""

from __future__ import annotations

import modhub


def test_all_names_exist() -> None:
    for name in modhub.__all__:
        assert getattr(modhub, name) is not None, name


def test_public_surface() -> None:
    functions = {n for n in modhub.__all__ if not n[0].isupper() and n != "__version__"}
    assert functions == {"export", "load", "resolve"}
    classes = {
        n
        for n in modhub.__all__
        if n[0].isupper() and not n.endswith(("Error", "Found", "Denied", "Conflict", "Handle"))
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
