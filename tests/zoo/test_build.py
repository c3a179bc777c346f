"""build_zoo: requirements, caching by build key, reproducibility, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modhub.errors import ZooError
from modhub.format.manifest import FORMAT_FILES, read_manifest
from modhub.format.verify import verify_files
from modhub.zoo import build_key, build_zoo, get_starter, registry, starter_names
from modhub.zoo.build import STAMP_NAME

MISSING = registry.Requirement("modhub-test-no-such-package", "modhub_test_no_such_package")


@dataclasses.dataclass(frozen=True)
class FakeStarter:
    """Writes a file instead of exporting a model; counts its builds."""

    name: str = "fake-starter"
    task: str = "image-feature-vector"
    summary: str = "a test double"
    requires: tuple[registry.Requirement, ...] = ()
    optional: bool = True
    revision: int = 1
    builds: list[Path] = dataclasses.field(default_factory=list, compare=False, hash=False)

    def build(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "modhub.json").write_text("{}")
        self.builds.append(out_dir)
        return out_dir


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeStarter:
    starter = FakeStarter()
    registry.starters()  # register the built-in starters first
    monkeypatch.setitem(registry._REGISTRY, starter.name, starter)
    return starter


def test_missing_package_names_it_and_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    starter = FakeStarter(name="needs-missing", requires=(MISSING,))
    registry.starters()
    monkeypatch.setitem(registry._REGISTRY, starter.name, starter)
    out = tmp_path / "zoo"
    with pytest.raises(ZooError, match="modhub-test-no-such-package") as caught:
        build_zoo(out, only=["needs-missing"], progress=False)
    assert "pip install modhub-test-no-such-package" in str(caught.value)
    assert not out.exists() and starter.builds == []


def test_unknown_starter_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="minilm-l6"):
        build_zoo(tmp_path, only=["no-such-starter"], progress=False)


def test_default_selection_is_the_required_starters() -> None:
    names = starter_names(include_optional=False)
    assert names == [
        "arbitrary-image-stylization",
        "centernet-coco",
        "crepe-pitch",
        "efficientnet-lite0-classification",
        "efficientnet-lite0-feature-vector",
        "glove-6b-50",
        "minilm-l6",
        "mobilenet-v2-classification",
        "mobilenet-v2-feature-vector",
        "movenet-lightning",
        "movenet-thunder",
        "mpnet-base",
        "selfie-segmentation",
        "silero-vad",
        "speech-embedding",
        "use-multilingual",
    ]
    assert "efficientnet-lite1-classification" in starter_names()


def test_builds_once_then_reuses_until_forced(fake: FakeStarter, tmp_path: Path) -> None:
    for _ in range(2):
        paths = build_zoo(tmp_path, only=[fake.name], progress=False)
    assert paths == [tmp_path / fake.name] and len(fake.builds) == 1
    assert (tmp_path / fake.name / STAMP_NAME).read_text().strip() == build_key(fake)
    build_zoo(tmp_path, only=[fake.name], force=True, progress=True)
    assert len(fake.builds) == 2


def test_stale_stamp_rebuilds(fake: FakeStarter, tmp_path: Path) -> None:
    build_zoo(tmp_path, only=[fake.name], progress=False)
    (tmp_path / fake.name / STAMP_NAME).write_text("built from other package versions\n")
    build_zoo(tmp_path, only=[fake.name], progress=False)
    assert len(fake.builds) == 2


def test_build_key_follows_revision_and_packages() -> None:
    base = FakeStarter()
    assert build_key(base) == build_key(FakeStarter())
    assert build_key(base) != build_key(dataclasses.replace(base, revision=2))
    with_pkg = dataclasses.replace(base, requires=(registry.Requirement("pytest", "pytest"),))
    assert build_key(base) != build_key(with_pkg)


def _digests(module_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(module_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(module_dir.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.slow
def test_build_is_reproducible(zoo_dir: Path, tmp_path: Path) -> None:
    """A fresh build gives the same bytes (every file's sha256) as the cached one."""
    name = "efficientnet-lite0-feature-vector"
    (fresh,) = build_zoo(tmp_path, only=[name], progress=False)
    assert _digests(fresh) == _digests(zoo_dir / name)


@pytest.mark.slow
def test_built_modules_are_complete(zoo_dir: Path) -> None:
    for name in starter_names(include_optional=False):
        module_dir = zoo_dir / name
        manifest = read_manifest(module_dir)
        verify_files(module_dir, manifest)  # the stamp is hidden, so not part of the module
        paths = {entry.path for entry in manifest.files}
        # Each listed format has its file; every starter runs on torch or onnx (or both). mpnet-base
        # carries no model.onnx (it would double its 420 MB); the catalog's converted vision
        # starters are ONNX only.
        formats = set(manifest.formats)
        assert {"README.md", *(FORMAT_FILES[fmt] for fmt in formats)} <= paths
        assert formats & {"pt2", "onnx"}, name
        assert ("onnx" in formats) == getattr(get_starter(name), "onnx", True), name
        card = (module_dir / "README.md").read_text()
        for section in (
            "## Where the weights come from",
            "## Licence",
            "## Intended use",
            "## Limitations",
            "## Usage",
        ):
            assert section in card, (name, section)
        assert f'hub.load("modhub/{name}/1")' in card
        assert manifest.task == get_starter(name).task
        assert manifest.metadata.source.startswith(("PyPI ", "npm ")), name


def test_cli_list_and_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from modhub.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["zoo", "list"])
    assert listed.exit_code == 0 and "minilm-l6" in listed.output and "text-embedding" in listed.output

    starter = FakeStarter(name="needs-missing", requires=(MISSING,))
    registry.starters()
    monkeypatch.setitem(registry._REGISTRY, starter.name, starter)
    result = runner.invoke(app, ["zoo", "build", str(tmp_path / "zoo"), "--only", "needs-missing"])
    assert result.exit_code == 1
    assert "pip install modhub-test-no-such-package" in result.output


def test_build_key_code_patterns_each_name_files() -> None:
    """A file moved away from a pattern would silently stop invalidating built modules."""
    from modhub.zoo import build

    root = Path(build.__file__).resolve().parents[1]
    empty = [pattern for pattern in build._CODE if not list(root.glob(pattern))]
    assert not empty, f"build._CODE patterns that match no file: {empty}"
