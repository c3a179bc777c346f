"""Bad input from the future (issue 28): a manifest of a newer format, a module that needs a newer
modhub or onnxruntime: each a one-line error that says what to upgrade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modhub as hub
from modhub.exporting.onnx import ONNXRUNTIME_FOR_OPSET, required_onnxruntime
from tests.tiny_models import make_module


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_module("image-feature-vector", tmp_path_factory.mktemp("future") / "m", onnx=True)


def _edited(module: Path, tmp_path: Path, **changes: object) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(module, copy)
    manifest = json.loads((copy / "modhub.json").read_text())
    manifest.update(changes)
    (copy / "modhub.json").write_text(json.dumps(manifest))
    return copy


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def test_export_records_the_onnxruntime_its_opset_needs(module: Path) -> None:
    manifest = json.loads((module / "modhub.json").read_text())
    assert manifest["requires"]["onnxruntime"] == required_onnxruntime(module)
    assert manifest["requires"]["onnxruntime"] in ONNXRUNTIME_FOR_OPSET.values()


def test_a_manifest_from_the_future(module: Path, tmp_path: Path) -> None:
    copy = _edited(module, tmp_path, format_version=2, requires={"modhub": "9.1"})
    with pytest.raises(hub.ManifestError) as exc:
        hub.load(str(copy))
    message = _one_line(exc)
    assert "needs modhub >= 9.1" in message and "pip install -U modhub" in message


def test_a_module_needing_a_newer_modhub(module: Path, tmp_path: Path) -> None:
    copy = _edited(module, tmp_path, requires={"modhub": "9.1"})
    with pytest.raises(hub.ManifestError) as exc:
        hub.load(str(copy))
    assert _one_line(exc).endswith("pip install -U modhub")


def test_a_module_needing_a_newer_onnxruntime(module: Path, tmp_path: Path) -> None:
    copy = _edited(module, tmp_path, requires={"onnxruntime": "99.0"})
    with pytest.raises(hub.HubError) as exc:
        hub.load(str(copy), runtime="onnx")
    message = _one_line(exc)
    assert "onnxruntime >= 99.0" in message and message.endswith("pip install -U onnxruntime")


def test_a_format_older_releases_cannot_parse_names_the_release_that_reads_it(module: Path) -> None:
    from modhub.format.manifest import FORMAT_SINCE, FileEntry, read_manifest

    manifest = read_manifest(module)
    model_json = FileEntry(path="tfjs/model.json", size=2, sha256="0" * 64)
    with_tfjs = manifest.model_copy(
        update={"files": (*manifest.files, model_json), "formats": (*manifest.formats, "tfjs")}
    )
    written = json.loads(with_tfjs.to_json())
    # Releases before FORMAT_SINCE["tfjs"] refuse the "formats" list; they read requires first.
    assert written["requires"]["modhub"] == FORMAT_SINCE["tfjs"]
    assert written["requires"]["onnxruntime"] == manifest.requires.onnxruntime  # type: ignore[union-attr]
    # A module without it says nothing new, and a higher requirement is kept.
    assert "modhub" not in json.loads(manifest.to_json()).get("requires", {})
    newer = with_tfjs.model_copy(update={"requires": manifest.requires.model_copy(update={"modhub": "9.1"})})  # type: ignore[union-attr]
    assert json.loads(newer.to_json())["requires"]["modhub"] == "9.1"
