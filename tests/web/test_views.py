"""The module page's view model and template, from answers the services could give (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modhub.server.services.schemas import ModuleDetail, VersionDetail, VersionInfo
from modhub.server.web.render import ago, environment, human_count, human_size
from modhub.server.web.views import module_page, signature_views, usage_snippets

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "ab" * 32


def detail(
    manifest: dict[str, Any], card: str = "", *, yanked: bool = False
) -> tuple[ModuleDetail, VersionDetail]:
    module = ModuleDetail(
        publisher="p",
        name="n",
        handle="p/n",
        latest_version=None if yanked else 1,
        task=str(manifest.get("task", "")),
        formats=["pt2"],
        framework="pytorch",
        license="MIT",
        title="",
        description="",
        tags=[],
        downloads=0,
        created_at=NOW,
        updated_at=NOW,
        versions=[VersionInfo(version=1, yanked=yanked, created_at=NOW, size=10)],
    )
    version = VersionDetail(
        publisher="p",
        name="n",
        version=1,
        handle="p/n/1",
        yanked=yanked,
        created_at=NOW,
        size=10,
        manifest=manifest,
        manifest_sha256=SHA,
        card=card,
    )
    return module, version


ODD_MANIFESTS: list[dict[str, Any]] = [
    {},
    {"task": "something-new", "signatures": "not a dict", "files": "nope", "metadata": None},
    {"signatures": {"default": {"inputs": [None, 3], "outputs": None}}, "preprocessing": None},
    {
        "signatures": {"extra": {"inputs": [{"name": "x", "shape": "dynamic"}]}},
        "files": [{"path": "a b/ü.bin"}],
    },
    {"task": "image-feature-vector", "preprocessing": {"image": {}}, "fine_tunable": False},
    {
        "metadata": [1],
        "preprocessing": "x",
        "signatures": {"default": [1]},
        "files": [{"path": "a", "size": "?"}],
    },
]


@pytest.mark.parametrize("manifest", ODD_MANIFESTS)
def test_odd_manifests_still_render(manifest: dict[str, Any]) -> None:
    module, version = detail(manifest, card="---\n: [\n---\n# T\n", yanked=True)
    view = module_page(module, version, base_url="http://hub.example/", is_latest_view=True)
    html = environment().get_template("module.html").render(request=None, page=view)
    assert "p/n" in html and "Version 1 is yanked." in html
    assert f'<code class="hash">{SHA}</code>' in html


def test_signature_rows_default_first() -> None:
    spec = {"name": "x", "dtype": "float32", "shape": ["batch", 3], "value_range": [0, 1]}
    views = signature_views({"signatures": {"b": {"inputs": [spec]}, "default": {"outputs": [spec]}}})
    assert [v.name for v in views] == ["default", "b"]
    row = views[0].rows[0]
    assert (row.kind, row.shape, row.description) == ("output", "[batch, 3]", "values in [0, 1]")


def test_snippets_use_the_page_url_and_the_output_width() -> None:
    manifest = {
        "task": "image-feature-vector",
        "preprocessing": {"image": {"height": 224, "width": 160}},
        "signatures": {"default": {"outputs": [{"name": "features", "shape": ["batch", 1280]}]}},
    }
    load, layer = usage_snippets(manifest, "http://hub.example/p/n/1")
    assert 'hub.load("http://hub.example/p/n/1")' in load.code and "torch.rand(2, 3, 224, 160)" in load.code
    assert "torch.nn.Linear(1280, 10)" in layer.code and "trainable=False" in layer.code
    text = usage_snippets({"preprocessing": {"tokenizer": {"max_length": 8}}}, "h")[0]
    assert 'module(["' in text.code


def test_formatting_filters() -> None:
    assert [human_size(n) for n in (None, 0, 1023, 1536, 5 * 1024**3)] == [
        "\u2013",
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 GiB",
    ]
    assert [human_count(n) for n in (0, 999, 1000, 12345, 2_500_000)] == ["0", "999", "1k", "12.3k", "2.5M"]
    assert ago(NOW, now=NOW) == "just now"
    assert ago(datetime(2024, 12, 30, tzinfo=UTC), now=NOW) == "3 days ago"
    assert ago(datetime(2022, 1, 1, tzinfo=UTC), now=NOW) == "3 years ago"
