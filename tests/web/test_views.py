"""The module page's view model and template, from answers the services could give (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modhub.server.services.queries import call_signatures
from modhub.server.services.schemas import CallSignature, ModuleDetail, VersionDetail, VersionInfo
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
        signatures=call_signatures(manifest),
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


def _sig(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> CallSignature:
    return CallSignature.model_validate({"inputs": inputs, "outputs": outputs})


IMAGE = {"name": "images", "dtype": "float32", "shape": ["batch", 3, "height", "width"], "kind": "image"}


def test_signature_rows_default_first_with_their_meaning() -> None:
    spec = {"name": "x", "dtype": "float32", "shape": ["batch", 3], "value_range": [0, 1]}
    boxes = {
        "name": "boxes",
        "dtype": "float32",
        "shape": ["batch", 6, 4],
        "box_format": "yxyx",
        "normalized": True,
    }
    views = signature_views({"b": _sig([spec], [spec]), "default": _sig([IMAGE], [spec, boxes])})
    assert [v.name for v in views] == ["default", "b"]
    assert [v.call for v in views] == ["module(...)", 'module.signatures["b"](...)']
    rows = views[0].rows
    assert [(r.kind, r.name) for r in rows] == [("input", "images"), ("output", "x"), ("output", "boxes")]
    assert rows[0].shape == "[batch, 3, height, width]" and rows[0].description == "image; RGB, NCHW"
    assert rows[1].description == "values in [0, 1]"
    assert rows[2].description == "boxes yxyx, normalized"


def _run(code: str) -> dict[str, Any]:
    """Run a snippet with ``hub`` standing in for modhub: a module that echoes what it was given."""
    import numpy as np

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    class Fake:
        def __init__(self, name: str = "default") -> None:
            self.name = name
            self.signatures = {n: Fake(n) for n in ("style_vector", "other")} if name == "default" else {}

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            calls.append((self.name, args, kwargs))
            return np.zeros((2, 4))

    class FakeHub:
        @staticmethod
        def load(url: str) -> Fake:
            return Fake()

    import sys
    import types

    saved = sys.modules.get("modhub")
    sys.modules["modhub"] = types.SimpleNamespace(load=FakeHub.load)  # type: ignore[assignment]
    try:
        exec(code, {})
    finally:
        if saved is not None:
            sys.modules["modhub"] = saved
    return {"calls": calls}


def test_the_load_snippet_is_written_for_the_module_inputs() -> None:
    content = {**IMAGE, "name": "content", "value_range": [0, 1]}
    style = {"name": "style", "dtype": "float32", "shape": ["batch", 3, 8, 8], "kind": "image"}
    stylized = {**IMAGE, "name": "stylized_image"}
    signatures = {
        "default": _sig([content, style], [stylized]),
        "style_vector": _sig([style], [{"name": "vector", "dtype": "float32", "shape": ["batch", 8]}]),
    }
    manifest = {"formats": ["pt2"], "preprocessing": {"image": {"height": 64, "width": 48}}}
    load, *rest = usage_snippets(signatures, manifest, "http://hub.example/p/n/1")
    assert rest == []  # two inputs: no Layer-under-a-head snippet
    assert 'hub.load("http://hub.example/p/n/1")' in load.code
    assert "out = module(content=content, style=style)" in load.code
    assert 'style_vector = module.signatures["style_vector"](style)' in load.code
    calls = _run(load.code)["calls"]
    assert [c[0] for c in calls] == ["default", "style_vector"]
    assert calls[0][2]["content"].shape == (2, 3, 64, 48) and calls[0][2]["style"].shape == (2, 3, 8, 8)
    assert calls[1][1][0] is calls[0][2]["style"]  # the same style images for both signatures

    ints = {
        "name": "pixels",
        "dtype": "uint8",
        "shape": ["batch", "h", "w", 3],
        "kind": "image",
        "layout": "NHWC",
    }
    flags = {"name": "lambda", "dtype": "bool", "shape": ["batch"]}
    ids = {"name": "ids", "dtype": "int64", "shape": ["batch", "sequence"], "value_range": [0, 99]}
    code = usage_snippets({"default": _sig([ints, flags, ids], [stylized])}, {"formats": ["onnx"]}, "u")[
        0
    ].code
    assert "**{" in code  # an input named like a Python keyword
    given = _run(code)["calls"][0][2]
    assert given["pixels"].dtype.name == "uint8" and given["pixels"].shape == (2, 224, 224, 3)
    assert given["lambda"].dtype.name == "bool" and given["ids"].max() <= 99


def test_snippets_use_the_page_url_the_output_width_and_strings() -> None:
    manifest = {"task": "image-feature-vector", "preprocessing": {"image": {"height": 224, "width": 160}}}
    features = {"name": "features", "dtype": "float32", "shape": ["batch", 1280]}
    load, layer = usage_snippets({"default": _sig([IMAGE], [features])}, manifest, "http://hub.example/p/n/1")
    assert 'hub.load("http://hub.example/p/n/1")' in load.code and "(2, 3, 224, 160)" in load.code
    assert "out = module(images)" in load.code
    assert "torch.nn.Linear(1280, 10)" in layer.code and "trainable=False" in layer.code
    texts = {"name": "texts", "dtype": "string", "shape": ["batch"], "kind": "text"}
    (text, _layer) = usage_snippets({"default": _sig([texts], [features])}, {}, "h")
    assert 'module(["The quick brown fox.", "A lazy dog sleeps."])' in text.code
    assert "numpy" not in text.code
    # A published SavedModel of two inputs: tensorflow_hub's signature call, by keyword.
    two = {
        "default": _sig(
            [{**IMAGE, "layout": "NHWC", "shape": ["batch", 8, 8, 3]}, texts], [features, features]
        )
    }
    (tf_code,) = [
        s.code for s in usage_snippets(two, {"framework": "tensorflow", "formats": ["savedmodel"]}, "u")
    ]
    assert (
        'module.signatures["serving_default"](images=tf.constant(images), texts=tf.constant(texts))'
        in tf_code
    )


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
