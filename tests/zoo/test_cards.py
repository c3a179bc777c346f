"""The usage snippet in every starter's model card runs as written (against the built module)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modhub.zoo import starter_names

# Needs the real starter modules: built once (minutes), then reused from the zoo cache.
pytestmark = pytest.mark.slow


def _snippet(card: str) -> str:
    usage = card.split("## Usage", 1)[1]
    match = re.search(r"```python\n(.*?)```", usage, re.S)
    assert match, "the Usage section has no python code block"
    return match.group(1)


@pytest.mark.parametrize("name", starter_names(include_optional=False))
def test_card_usage_snippet_runs(zoo_dir: Path, tmp_path: Path, name: str) -> None:
    from PIL import Image
    from skimage import data

    module_dir = zoo_dir / name
    if not module_dir.is_dir():
        pytest.skip(f"{name} is built only with MODHUB_TF_PYTHON")
    code = _snippet((module_dir / "README.md").read_text(encoding="utf-8"))
    handle = f'hub.load("modhub/{name}/1")'
    assert handle in code
    photo = tmp_path / "cat.jpg"
    Image.fromarray(data.chelsea()).save(photo)
    code = code.replace(handle, f"hub.load({str(module_dir)!r})").replace('"cat.jpg"', repr(str(photo)))
    namespace: dict[str, object] = {"print": lambda *args: None}
    exec(compile(code, f"{name}/README.md", "exec"), namespace)
    if name.endswith("-classification"):
        top5 = namespace["top5"]
        labels = namespace["module"].labels  # type: ignore[attr-defined]
        assert {labels[i] for i in top5.indices[0].tolist()} & {"tabby", "tiger cat", "Egyptian cat"}  # type: ignore[attr-defined]
    elif name.endswith("-feature-vector"):
        assert tuple(namespace["features"].shape) == (1, 1280)  # type: ignore[attr-defined]
    elif "embeddings" in namespace:
        assert namespace["embeddings"].shape[0] == 3  # type: ignore[attr-defined]
