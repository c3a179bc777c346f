"""The module page of a module of any signature, on a real hub: every signature in the table, the
snippet written for its inputs (run as pasted, with the real modhub client), the task filter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import numpy as np
import pytest

import modhub as hub
from tests.harness import LiveHub, running_hub
from tests.server.conftest import publish
from tests.tiny_models import ARCHITECTURES

SNIPPET = re.compile(r'<code id="(snippet-[a-z]+)" class="language-python">(.*?)</code>', flags=re.S)


@pytest.fixture(scope="module")
def style_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveHub, Path]]:
    arch = ARCHITECTURES["style-transfer"]()
    work = tmp_path_factory.mktemp("snippets")
    module = hub.export(arch.model, arch.example_inputs, work / "style", license="MIT", **arch.options)
    with running_hub(work / "data", token_for="acme") as live:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            assert publish(client, live.token, module, "acme/style").status_code == 201
        yield live, module


def test_the_page_shows_every_signature_and_a_snippet_that_runs(
    style_hub: tuple[LiveHub, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    live, module = style_hub
    html = httpx.get(f"{live.url}/acme/style/1").text
    table = unescape(html[html.index('id="signatures"') : html.index('id="card"')])
    for text in (
        "default",
        "style_vector",
        "content",
        "style",
        "stylized_image",
        "[batch, 3, height, width]",
    ):
        assert text in table, text
    assert 'module.signatures["style_vector"](...)' in table and "module(content=..., style=...)" in table
    assert "image; RGB, NCHW; values in [0, 1]" in table

    snippets = {key: unescape(code) for key, code in SNIPPET.findall(html)}
    assert list(snippets) == ["snippet-load"]  # two inputs: no Layer-under-a-head snippet
    code = snippets["snippet-load"]
    assert "out = module(content=content, style=style)" in code
    monkeypatch.setenv("MODHUB_ENDPOINT", live.url)
    namespace: dict[str, object] = {}
    exec(code, namespace)  # what a user pastes: loads from the live hub with the real client
    printed = capsys.readouterr().out.split("\n")
    assert printed[:2] == ["(2, 3, 224, 224)", "(2, 8)"], printed
    # The snippet's call gives what the module computes on those inputs, locally.
    local = hub.load(module)
    inputs = {"content": namespace["content"], "style": namespace["style"]}
    assert np.allclose(namespace["out"], local(**inputs), atol=1e-5)  # type: ignore[arg-type]


def test_the_task_filter_counts_modules_per_task(style_hub: tuple[LiveHub, Path]) -> None:
    live, _ = style_hub
    html = unescape(httpx.get(f"{live.url}/").text)
    task_select = html[html.index('<select name="task"') : html.index("</select>", html.index('name="task"'))]
    assert '<option value="image-style-transfer">image-style-transfer (1)</option>' in task_select
    filtered = unescape(httpx.get(f"{live.url}/", params={"task": "image-style-transfer"}).text)
    assert "acme/style" in filtered
    assert "acme/style" not in unescape(httpx.get(f"{live.url}/", params={"task": "text-embedding"}).text)
