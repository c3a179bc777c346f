"""Fixtures shared by the whole suite: a clean environment, tiny modules made in the test, and
a real hub on loopback (the harness itself is in ``tests/harness.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from tests import harness
from tests.harness import DATABASES, LiveHub, database_env
from tests.tiny_models import WORDS, TinyCNN, TinyTextEncoder, make_module


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's own cache, token, hub or any other MODHUB_* setting."""
    harness.clean_env(monkeypatch, tmp_path_factory)


# --- tiny modules ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_cnn() -> TinyCNN:
    torch.manual_seed(0)
    model = TinyCNN()
    # Non-trivial BatchNorm statistics, so train/eval differences show.
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="session")
def image_module(tiny_cnn: TinyCNN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image-classification module (5 classes, 32x32) with model.onnx."""
    return make_module(
        "image-classification",
        tmp_path_factory.mktemp("modules") / "tiny-cnn",
        model=tiny_cnn,
        metadata={"title": "Tiny CNN", "tags": ["test"]},
        onnx=True,
    )


@pytest.fixture(scope="session")
def tiny_text_encoder() -> TinyTextEncoder:
    torch.manual_seed(0)
    return TinyTextEncoder(vocab=len(WORDS) + 2).eval()


def export_tiny_text(
    encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory, name: str, *, onnx: bool = False
) -> Path:
    """The tiny text encoder exported as a text-embedding module (with model.onnx if ``onnx``)."""
    out = tmp_path_factory.mktemp("modules") / name
    return make_module("text-embedding", out, model=encoder, license="MIT", onnx=onnx)


@pytest.fixture(scope="session")
def text_module(tiny_text_encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_text(tiny_text_encoder, tmp_path_factory, "tiny-text")


# --- databases and a real hub --------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL server of MODHUB_TEST_POSTGRES (skipped without one, failed in CI)."""
    return harness.postgres_admin_url()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the embedded SQLite; else the URL of a fresh PostgreSQL database."""
    with harness.database(request.param, request) as url:
        yield url


@pytest.fixture(scope="module", params=DATABASES)
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The same, shared by the tests of one module (for a live server started once per module)."""
    with harness.database(request.param, request) as url:
        yield url


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Iterator[LiveHub]:
    """``python -m modhub serve`` on a free loopback port with a fresh data dir (SQLite or
    PostgreSQL), one per test module."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    with harness.running_hub(data_dir, database_env(module_database_url)) as hub:
        yield hub


@pytest.fixture
def start_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveHub]]:
    """``start_hub(data_dir=None, env=None, workers=1, token_for=None)``: another live hub for
    this test (a setting under test, a restored data dir), stopped after it."""
    with contextlib.ExitStack() as stack:

        def start(
            data_dir: Path | None = None,
            env: dict[str, str] | None = None,
            *,
            workers: int = 1,
            token_for: str | None = None,
        ) -> LiveHub:
            where = data_dir or tmp_path_factory.mktemp("hub") / "data"
            return stack.enter_context(harness.running_hub(where, env, workers=workers, token_for=token_for))

        yield start
